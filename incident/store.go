package incident

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Store keeps incidents durably. It is the source of truth: the
// orchestrator holds nothing a restart would lose, and several orchestrators
// (replicas) may share one Store.
//
// Implementations must be safe for concurrent use, must honour ctx (return
// its error when it ends before the operation does), and must never return
// or keep an alias of a caller's *Incident: they store and hand out copies.
// incidenttest.TestStore checks all of this for a host's implementation.
type Store interface {
	// Create stores a new incident with Version 1 (it sets inc.Version to
	// 1 on success). It returns an error matching ErrDuplicate when an
	// open incident (State.Open) with the same DedupKey exists, preferably
	// a *DuplicateError naming it, and ErrInvalidIncident for an empty ID,
	// DedupKey or State. Creating an ID that exists also returns
	// ErrInvalidIncident.
	Create(ctx context.Context, inc *Incident) error
	// Get returns a copy of the incident, or an error matching ErrNotFound.
	Get(ctx context.Context, id string) (*Incident, error)
	// Update replaces the stored incident if its Version still equals
	// inc.Version, and then sets inc.Version to the stored Version plus one.
	// Otherwise it changes nothing and returns an error matching
	// ErrConflict. It returns ErrNotFound for an unknown ID, and
	// ErrDuplicate when the update would leave two open incidents with one
	// dedup key (a reopen, or a changed DedupKey, onto a key another open
	// incident holds).
	Update(ctx context.Context, inc *Incident) error
	// FindOpen returns a copy of the open incident with the dedup key, or
	// an error matching ErrNotFound.
	FindOpen(ctx context.Context, dedupKey string) (*Incident, error)
	// ListOpen returns copies of every open incident, oldest DetectedAt
	// first (ties by ID).
	ListOpen(ctx context.Context) ([]*Incident, error)
}

// Leaser is implemented by stores that several orchestrators (replicas)
// share. A lease gives one owner the right to drive an incident for a while,
// so that two replicas never step one incident at once; when the owner dies
// its lease runs out and another replica takes the incident over. Leases
// guard against duplicated work; the Version check of Update still guards
// the record.
type Leaser interface {
	// Lease takes the lease on incident id for owner, or renews it if owner
	// holds it, until ttl from now by the store's clock. It reports false,
	// with a nil error, when another owner holds a lease that has not run
	// out. A lease may be taken on an incident that does not exist.
	Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error)
	// Unlease gives the lease up if owner holds it; otherwise it does
	// nothing.
	Unlease(ctx context.Context, id, owner string) error
}

// MemStore is an in-memory Store: for tests, examples and single-process
// hosts that accept losing incidents on exit. It is safe for concurrent use;
// every method copies incidents in and out. The zero value is ready to use.
type MemStore struct {
	mu     sync.RWMutex
	byID   map[string]*stored
	names  names
	open   map[string]string // dedup key → ID of the open incident
	leases map[string]lease
}

type lease struct {
	owner string
	until time.Time
}

var (
	_ Store  = (*MemStore)(nil)
	_ Leaser = (*MemStore)(nil)
)

// Lease implements Leaser, with time.Now as the clock.
func (m *MemStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[id]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	if m.leases == nil {
		m.leases = map[string]lease{}
	}
	m.leases[id] = lease{owner: owner, until: now.Add(ttl)}
	return true, nil
}

// Unlease implements Leaser.
func (m *MemStore) Unlease(ctx context.Context, id, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[id]; ok && l.owner == owner {
		delete(m.leases, id)
	}
	return nil
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Create implements Store.
func (m *MemStore) Create(ctx context.Context, inc *Incident) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkStorable(inc); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = make(map[string]*stored)
		m.open = make(map[string]string)
	}
	if _, ok := m.byID[inc.ID]; ok {
		return &invalidIncidentError{reason: "ID " + inc.ID + " exists"}
	}
	if inc.State.Open() {
		if id, ok := m.open[inc.DedupKey]; ok {
			return &DuplicateError{DedupKey: inc.DedupKey, ExistingID: id}
		}
		m.open[inc.DedupKey] = inc.ID
	}
	inc.Version = 1
	m.byID[inc.ID] = m.names.store(inc)
	return nil
}

// Get implements Store.
func (m *MemStore) Get(ctx context.Context, id string) (*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.byID[id]
	if !ok {
		return nil, notFound(id)
	}
	return m.names.load(s), nil
}

// Update implements Store.
func (m *MemStore) Update(ctx context.Context, inc *Incident) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkStorable(inc); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.byID[inc.ID]
	if !ok {
		return notFound(inc.ID)
	}
	cur := st.inc
	if cur.Version != inc.Version {
		return &ConflictError{ID: inc.ID, Expected: inc.Version, Actual: cur.Version}
	}
	wasOpen, isOpen := cur.State.Open(), inc.State.Open()
	if isOpen {
		if id, ok := m.open[inc.DedupKey]; ok && id != inc.ID {
			return &DuplicateError{DedupKey: inc.DedupKey, ExistingID: id}
		}
	}
	if wasOpen && m.open[cur.DedupKey] == cur.ID {
		delete(m.open, cur.DedupKey)
	}
	if isOpen {
		m.open[inc.DedupKey] = inc.ID
	}
	inc.Version = cur.Version + 1
	m.byID[inc.ID] = m.names.store(inc)
	return nil
}

// FindOpen implements Store.
func (m *MemStore) FindOpen(ctx context.Context, dedupKey string) (*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.open[dedupKey]
	if !ok {
		return nil, &notFoundError{what: "open incident with dedup key " + dedupKey}
	}
	return m.names.load(m.byID[id]), nil
}

// ListOpen implements Store.
func (m *MemStore) ListOpen(ctx context.Context) ([]*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	out := make([]*Incident, 0, len(m.open))
	for _, id := range m.open {
		out = append(out, m.names.load(m.byID[id]))
	}
	m.mu.RUnlock()
	slices.SortFunc(out, byDetected)
	return out, nil
}

// byDetected orders incidents oldest DetectedAt first, ties by ID: the
// order Store.ListOpen promises.
func byDetected(a, b *Incident) int {
	if c := a.DetectedAt.Compare(b.DetectedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func checkStorable(inc *Incident) error {
	switch {
	case inc == nil:
		return &invalidIncidentError{reason: "nil incident"}
	case inc.ID == "":
		return &invalidIncidentError{reason: "empty ID"}
	case inc.DedupKey == "":
		return &invalidIncidentError{reason: "empty dedup key"}
	case inc.State == "":
		return &invalidIncidentError{reason: "empty state"}
	}
	return nil
}

type notFoundError struct{ what string }

func (e *notFoundError) Error() string        { return "incident: not found: " + e.what }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(id string) error { return &notFoundError{what: "incident " + id} }

type invalidIncidentError struct{ reason string }

func (e *invalidIncidentError) Error() string        { return "incident: invalid incident: " + e.reason }
func (e *invalidIncidentError) Is(target error) bool { return target == ErrInvalidIncident }
