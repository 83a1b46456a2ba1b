package incident

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Store keeps incidents durably. It is the source of truth: the
// orchestrator holds nothing a restart would lose, and several orchestrators
// (replicas) may share one Store.
//
// An incident is kept in three parts (see Change): a bounded head replaced
// under a compare-and-swap on Version, an append-only hash-chained
// timeline, and effects (deliveries and affected customers) written by key.
// Every write is one Change, applied atomically at a cost proportional to
// it; every read that can be large is paginated.
//
// Implementations must be safe for concurrent use, must honour ctx (return
// its error when it ends before the operation does, having applied nothing
// or all of it), and must never return or keep an alias of a caller's
// data: they store and hand out copies (a frozen Change's head excepted,
// which a store may keep: see Change.Frozen). incidenttest.TestStore checks all
// of this for a host's implementation.
type Store interface {
	// Create stores a new incident from ch: its head with Version 1 (it
	// sets ch.Head.Version to 1 on success), its first entries and
	// effects. It returns an error matching ErrDuplicate when an open
	// incident (State.Open) with the same DedupKey exists, preferably a
	// *DuplicateError naming it, and ErrInvalidIncident when ch.Check(Chain{})
	// fails or the ID exists.
	Create(ctx context.Context, ch Change) error
	// Apply writes ch to the incident ch.Head.ID if the stored Version
	// still equals ch.Head.Version, and then sets ch.Head.Version to the
	// stored Version plus one. Otherwise it changes nothing and returns an
	// error matching ErrConflict. It returns ErrNotFound for an unknown ID,
	// ErrInvalidIncident when ch.Check fails against the stored chain, and
	// ErrDuplicate when the head would leave two open incidents with one
	// dedup key (a reopen, or a changed DedupKey, onto a key another open
	// incident holds).
	Apply(ctx context.Context, ch Change) error
	// Head returns a copy of the incident's head (no Timeline, Deliveries
	// or affected customers), or an error matching ErrNotFound.
	Head(ctx context.Context, id string) (*Incident, error)
	// FindOpen returns the head of the open incident with the dedup key,
	// or an error matching ErrNotFound.
	FindOpen(ctx context.Context, dedupKey string) (*Incident, error)
	// ListOpen returns the heads of every open incident, oldest DetectedAt
	// first (ties by ID).
	ListOpen(ctx context.Context) ([]*Incident, error)
	// Entries returns the timeline entries from position from (0 is the
	// first) on, at most PartPage(limit) of them; fewer (or none) at the
	// end. It returns ErrNotFound for an unknown incident and a
	// *FilterError for a negative from or a bad limit (CheckLimit).
	Entries(ctx context.Context, id string, from, limit int) (Timeline, error)
	// Deliveries returns the incident's deliveries that q selects, in the
	// order they were first written (q.Keys: in the order of q.Keys). It
	// returns ErrNotFound for an unknown incident, a *FilterError for an
	// invalid q (q.Validate), and an empty page for an After that is no
	// delivery's key.
	Deliveries(ctx context.Context, id string, q DeliveryQuery) ([]Delivery, error)
	// Customers returns the incident's affected customers after the one
	// whose RecipientID is after (from the first when empty), in the
	// order they were first written, at most PartPage(limit) of them. It
	// returns ErrNotFound for an unknown incident and a *FilterError for a
	// bad limit.
	Customers(ctx context.Context, id string, after string, limit int) ([]Customer, error)
}

// Leaser is implemented by stores that several orchestrators (replicas)
// share. A lease gives one owner the right to drive an incident for a while,
// so that two replicas never step one incident at once; when the owner dies
// its lease runs out and another replica takes the incident over. Leases
// guard against duplicated work; the Version check of Apply still guards
// the record. A replica acts on a lease for less than its TTL after the
// call that took or renewed it was sent, by its own clock, so the store's
// clock must run at the replicas' rate (their readings may differ).
//
// A replica keeps the leases of every incident it adopted, idle or not,
// and renews them all with one Renew; it looks for incidents to take over
// with one Orphans. Idle load is then a few statements per lease period,
// whatever the number of open incidents.
//
// An Apply whose head is not State.Open (the one that ends the incident,
// or a later change to it) gives up every lease on it in the same change:
// the replica that ended it, and any other that held it, makes no Unlease
// for it. (A Leaser that does not leaves
// the lease to run out by itself.)
type Leaser interface {
	// Lease takes the lease on incident id for owner, or renews it if owner
	// holds it, until ttl from now by the store's clock. It reports false,
	// with a nil error, when another owner holds a lease that has not run
	// out. A lease may be taken on an incident that does not exist.
	Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error)
	// Unlease gives the lease up if owner holds it; otherwise it does
	// nothing. (Leases on an incident also go with the Apply that ends
	// it: see Leaser.)
	Unlease(ctx context.Context, id, owner string) error
	// Renew extends, in one operation, every lease owner holds that has
	// not run out to ttl from now, and returns those it extended: each
	// incident's ID with the Version of its head (0 when the incident
	// does not exist), so that the owner sees which of its incidents
	// another replica wrote to. A lease that ran out is not renewed, even
	// if no other owner took it: the owner must Lease it again.
	Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error)
	// Orphans returns the IDs of open incidents that no lease covers (none
	// was taken, or it ran out), oldest DetectedAt first, at most limit of
	// them (every one when limit is 0).
	Orphans(ctx context.Context, limit int) ([]string, error)
}

// MemStore is an in-memory Store, Leaser and Lister: for tests, examples
// and single-process hosts that accept losing incidents on exit. It is safe
// for concurrent use. The zero value is ready to use.
//
// It is copy-on-write: a head is copied once when written and once when
// read; timeline entries, deliveries and customers, once written, are kept
// where they are and copied only into the page a read returns. A change
// costs what it holds, however large the incident.
//
// Writes to different incidents do not wait for each other: each incident
// has its own lock, and a change is cloned and packed before it is taken.
// Only a Create, or an Apply that changes whether an incident is open or
// under which dedup key, takes the store-wide lock, and then only to file
// the change; leases have a lock of their own.
type MemStore struct {
	// Lock order: mu, then a record's mu, then lmu; names.mu is taken
	// under any of them or none.
	mu    sync.RWMutex // guards byID and open
	byID  map[string]*record
	open  map[string]string // dedup key → ID of the open incident
	names names

	lmu    sync.Mutex // guards leases
	leases map[string]lease
}

// record is one incident in a MemStore.
type record struct {
	head atomic.Pointer[Incident] // never changed once stored: replaced, under mu

	mu        sync.RWMutex // guards what follows; a write holds it for its swap
	tl        packedTimeline
	dels      []Delivery
	delAt     map[string]int // idempotency key → index in dels; nil while there are few (see indexed)
	customers []Customer
	custAt    map[string]int // recipient ID → index in customers; nil while there are few
}

// indexed is how many deliveries (or customers) a record holds before it
// keeps a map from key to position: below it a scan is as quick, and most
// incidents (one account, a notice or two) are spared two maps of a few
// hundred bytes each.
const indexed = 8

// find returns the position of the item whose key is k, with the index
// when there is one, else by a scan.
func find[T any](items []T, at map[string]int, k string, key func(*T) string) (int, bool) {
	if at != nil {
		i, ok := at[k]
		return i, ok
	}
	for i := range items {
		if key(&items[i]) == k {
			return i, true
		}
	}
	return 0, false
}

// file puts item under its key in items, replacing the one there, and
// keeps the index once items outgrow a scan.
func file[T any](items []T, at map[string]int, item T, key func(*T) string) ([]T, map[string]int) {
	k := key(&item)
	if i, ok := find(items, at, k, key); ok {
		items[i] = item
		return items, at
	}
	items = append(items, item)
	switch {
	case at != nil:
		at[k] = len(items) - 1
	case len(items) > indexed:
		at = make(map[string]int, len(items))
		for i := range items {
			at[key(&items[i])] = i
		}
	}
	return items, at
}

func deliveryKey(d *Delivery) string { return d.IdempotencyKey }
func customerKey(c *Customer) string { return RecipientID(*c) }

// record returns the record of incident id, or nil.
func (m *MemStore) record(id string) *record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byID[id]
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
	m.lmu.Lock()
	defer m.lmu.Unlock()
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
	m.lmu.Lock()
	defer m.lmu.Unlock()
	if l, ok := m.leases[id]; ok && l.owner == owner {
		delete(m.leases, id)
	}
	return nil
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Renew implements Leaser, with time.Now as the clock.
func (m *MemStore) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	// The store-wide lock for reading, so that no incident ends (which
	// gives up its leases) between a renewal and the Version it returns.
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.lmu.Lock()
	defer m.lmu.Unlock()
	held := map[string]int64{}
	for id, l := range m.leases {
		if l.owner == owner && now.Before(l.until) {
			m.leases[id] = lease{owner: owner, until: now.Add(ttl)}
			held[id] = 0
			if r, ok := m.byID[id]; ok {
				held[id] = r.head.Load().Version
			}
		}
	}
	return held, nil
}

// Orphans implements Leaser, with time.Now as the clock.
func (m *MemStore) Orphans(ctx context.Context, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	m.mu.RLock()
	m.lmu.Lock()
	var heads []*Incident
	for _, id := range m.open {
		if l, ok := m.leases[id]; ok && now.Before(l.until) {
			continue
		}
		heads = append(heads, m.byID[id].head.Load())
	}
	m.lmu.Unlock()
	m.mu.RUnlock()
	slices.SortFunc(heads, byDetected)
	if limit > 0 && len(heads) > limit {
		heads = heads[:limit]
	}
	ids := make([]string, len(heads))
	for i, h := range heads {
		ids[i] = h.ID
	}
	return ids, nil
}

// Create implements Store.
func (m *MemStore) Create(ctx context.Context, ch Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ch.Check(Chain{}); err != nil {
		return err
	}
	inc := ch.Head
	// The record is made before the lock is taken: under it, a Create
	// only checks the ID and the dedup key and files the record. A frozen
	// head is kept as it is (see Change.Frozen), and its Version set once
	// the Create succeeds, before anyone can read it.
	head := inc
	if !ch.Frozen {
		head = inc.Clone()
		head.Version = 1
	}
	r := &record{tl: m.names.pack(ch.Entries, false)}
	r.head.Store(head)
	r.addEffects(ch)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = make(map[string]*record)
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
	m.byID[inc.ID] = r
	return nil
}

// Apply implements Store. It also refuses, with an error matching
// ErrInvalidIncident, a head that is the stored version itself: a frozen
// head handed to a second write (see Change.Frozen).
//
// The new head is cloned and the entries packed before any lock is taken,
// against the head read then; under the incident's lock, Apply only checks
// that this head is still the stored one and swaps it. A change that raced
// another to the same incident then fails with the ConflictError the
// Version check would have given.
func (m *MemStore) Apply(ctx context.Context, ch Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkStorable(ch.Head); err != nil {
		return err
	}
	inc := ch.Head
	r := m.record(inc.ID)
	if r == nil {
		return notFound(inc.ID)
	}
	r.mu.RLock()
	cur, raw := r.head.Load(), r.tl.raw != nil
	r.mu.RUnlock()
	if inc == cur {
		// A frozen head written before, handed to a write again: setting
		// its Version would change the stored version in place.
		return &invalidIncidentError{reason: "head is the stored version itself: a frozen head goes to one write only"}
	}
	if cur.Version != inc.Version {
		return &ConflictError{ID: inc.ID, Expected: inc.Version, Actual: cur.Version}
	}
	if err := ch.Check(cur.Chain); err != nil {
		return err
	}
	// What is stored is never changed: versions share what they did not
	// change, and a frozen head (see Change.Frozen) is kept as it is, its
	// Version set once the swap below is won.
	next := inc
	if !ch.Frozen {
		next = inc.CloneSharing(cur)
		next.Version = cur.Version + 1
	}
	run := m.names.pack(ch.Entries, raw) // raw only changes with a write, which the head check below sees

	wasOpen, isOpen := cur.State.Open(), inc.State.Open()
	// An open incident's dedup key is in m.open (Create and Apply refuse a
	// second one), so a change that keeps it open under the same key leaves
	// m.open as it is.
	filed := wasOpen != isOpen || (isOpen && cur.DedupKey != inc.DedupKey)
	if filed {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.head.Load(); now != cur {
		return &ConflictError{ID: inc.ID, Expected: inc.Version, Actual: now.Version}
	}
	if filed {
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
	}
	if !isOpen {
		m.lmu.Lock()
		delete(m.leases, inc.ID) // see Leaser
		m.lmu.Unlock()
	}
	inc.Version = cur.Version + 1
	r.head.Store(next)
	r.tl.join(run)
	r.addEffects(ch)
	return nil
}

// addEffects files the deliveries and customers of a checked change in r,
// replacing those with the same key: under r.mu, or before r is filed.
func (r *record) addEffects(ch Change) {
	for _, d := range ch.Deliveries {
		r.dels, r.delAt = file(r.dels, r.delAt, d, deliveryKey)
	}
	for _, c := range ch.Customers {
		r.customers, r.custAt = file(r.customers, r.custAt, c, customerKey)
	}
}

// Head implements Store.
func (m *MemStore) Head(ctx context.Context, id string) (*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := m.record(id)
	if r == nil {
		return nil, notFound(id)
	}
	return r.head.Load().Clone(), nil
}

// FindOpen implements Store.
func (m *MemStore) FindOpen(ctx context.Context, dedupKey string) (*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	var h *Incident
	if id, ok := m.open[dedupKey]; ok {
		h = m.byID[id].head.Load() // open: a change that ends it waits for m.mu
	}
	m.mu.RUnlock()
	if h == nil {
		return nil, &notFoundError{what: "open incident with dedup key " + dedupKey}
	}
	return h.Clone(), nil
}

// ListOpen implements Store.
func (m *MemStore) ListOpen(ctx context.Context) ([]*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	out := make([]*Incident, 0, len(m.open))
	for _, id := range m.open {
		out = append(out, m.byID[id].head.Load())
	}
	m.mu.RUnlock()
	for i, h := range out {
		out[i] = h.Clone()
	}
	slices.SortFunc(out, byDetected)
	return out, nil
}

// Entries implements Store.
func (m *MemStore) Entries(ctx context.Context, id string, from, limit int) (Timeline, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := CheckLimit(limit); err != nil {
		return nil, err
	}
	if from < 0 {
		return nil, &FilterError{Field: "from", Reason: "negative: " + strconv.Itoa(from)}
	}
	r := m.record(id)
	if r == nil {
		return nil, notFound(id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return m.names.unpack(r.tl, from, PartPage(limit)), nil
}

// Deliveries implements Store.
func (m *MemStore) Deliveries(ctx context.Context, id string, q DeliveryQuery) ([]Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	r := m.record(id)
	if r == nil {
		return nil, notFound(id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Delivery
	if len(q.Keys) > 0 {
		for _, k := range q.Keys {
			if i, ok := find(r.dels, r.delAt, k, deliveryKey); ok && (q.Status == "" || r.dels[i].Status == q.Status) {
				out = append(out, r.dels[i])
			}
		}
		return out, nil
	}
	start := 0
	if q.After != "" {
		i, ok := find(r.dels, r.delAt, q.After, deliveryKey)
		if !ok {
			return nil, nil
		}
		start = i + 1
	}
	n := q.PageSize()
	for i := start; i < len(r.dels) && len(out) < n; i++ {
		if q.Status == "" || r.dels[i].Status == q.Status {
			out = append(out, r.dels[i])
		}
	}
	return out, nil
}

// Customers implements Store.
func (m *MemStore) Customers(ctx context.Context, id string, after string, limit int) ([]Customer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := CheckLimit(limit); err != nil {
		return nil, err
	}
	r := m.record(id)
	if r == nil {
		return nil, notFound(id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	start := 0
	if after != "" {
		i, ok := find(r.customers, r.custAt, after, customerKey)
		if !ok {
			return nil, nil
		}
		start = i + 1
	}
	end := min(len(r.customers), start+PartPage(limit))
	if start >= end {
		return nil, nil
	}
	return slices.Clone(r.customers[start:end]), nil
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
