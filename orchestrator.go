package breach

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
	"golang.org/x/sync/singleflight"
)

// Orchestrator drives incidents through the Standard lifecycle: it turns
// signals into incidents, runs the playbook of each incident's kind, and
// takes the decisions of people (dismiss, resolve, close, reopen, retry).
//
// Every step is written to the Store, with a compare-and-swap on Version,
// before the next one starts, so a new Orchestrator on the same store
// resumes where another stopped. Side effects run at least once with stable
// idempotency keys. A plugin that fails, panics or hangs is retried per its
// policy and then escalates the incident; it never takes the orchestrator
// down.
//
// An Orchestrator is safe for concurrent use. Report and the human actions
// work whether or not Run is running; incidents advance only while it is.
type Orchestrator struct {
	store      *guardedStore // the host's, isolated
	lc         *incident.Lifecycle
	cfg        config
	log        *slog.Logger
	sf         singleflight.Group
	running    atomic.Bool
	stopping   atomic.Bool // Run is giving its leases up: none is taken any more
	hot        hotIndex
	creds      sync.Map // incident ID → keptCredential, never persisted
	merged     sync.Map // incident ID → *mergedCredentials: those of incidents merged into it, for redaction
	sched      scheduler
	gate       gate // shut while containment work waits for its first call (gate.go)
	slots      slots
	leaser     incident.Leaser // the store, when it leases
	leasesMu   sync.Mutex
	leases     map[string]*heldLease // the leases this replica holds
	flushMu    sync.Mutex
	batches    atomic.Int64 // batches of reports waiting for a flush
	committing atomic.Bool  // the group committer runs
	commitPoke chan struct{}
	changesMu  sync.Mutex
	changes    chan struct{}
	limiters   sync.Map // channel name → *ratelimit.Limiter
	heads      sync.Map // incident ID → *kept: the head kept for the next step (write.go)
	floorsMu   sync.Mutex
	floors     []keptFloor // the floors drops left in heads, oldest first, for the sweep
	pages      sync.Map    // incident ID → *firstPage: the first customers, kept from the write of the findings (write.go)
	aliases    sync.Map    // dedup key of a merged incident → its parent's ID (merge.go)
}

// New returns an Orchestrator on store. It fails with an error matching
// ErrInvalidOption or ErrInvalidPlaybook when an option is bad.
func New(store incident.Store, opts ...Option) (*Orchestrator, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidOption)
	}
	cfg := config{
		playbooks:           map[string]*Playbook{},
		logger:              slog.Default(),
		now:                 time.Now,
		newID:               randomID,
		concurrency:         8,
		grace:               10 * time.Second,
		flushInterval:       5 * time.Millisecond,
		retryDelay:          time.Second,
		deadlineInterval:    time.Minute,
		deliveryConcurrency: deliveryConcurrency,
		notifyBatch:         notifyBatch,
		leaseTTL:            30 * time.Second,
		storeTimeout:        30 * time.Second,
		credentialTTL:       24 * time.Hour,
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	// Stores keep microseconds; so does the record, so that what is read
	// back equals what was written.
	clock := cfg.now
	cfg.now = func() time.Time { return clock().Truncate(time.Microsecond) }
	_, mem := store.(*incident.MemStore)
	g := &guardedStore{s: store, timeout: cfg.storeTimeout, inline: mem}
	o := &Orchestrator{
		store:      g,
		lc:         incident.Standard(),
		cfg:        cfg,
		log:        slog.New(safeHandler{cfg.logger.Handler()}),
		leases:     map[string]*heldLease{},
		commitPoke: make(chan struct{}, 1),
		changes:    make(chan struct{}),
	}
	o.sched.init()
	o.sched.onUrgent = o.gate.holdFor
	o.slots.init(func(id string) { o.sched.add(id) })
	if l, ok := store.(incident.Leaser); ok {
		g.l = l
		o.leaser = g
		if o.cfg.owner == "" {
			o.cfg.owner = "replica_" + randomID()[4:]
		}
	}
	return o, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "inc_" + hex.EncodeToString(b[:])
}

// Get returns a copy of the whole record of the incident: its head, its
// timeline, its deliveries and its affected customers (incident.Load). Its
// cost grows with the incident; for an incident with many customers, read
// the head with Head and page with Deliveries and Timeline. It returns an
// error matching incident.ErrNotFound for an unknown ID.
func (o *Orchestrator) Get(ctx context.Context, id string) (*incident.Incident, error) {
	return incident.Load(ctx, o.store, id)
}

// Head returns a copy of the incident's head: every field but Timeline,
// Deliveries and Investigation.Impact.Customers (Outreach counts the
// deliveries, Chain the timeline). Its cost does not grow with the
// incident. It returns an error matching incident.ErrNotFound for an
// unknown ID.
func (o *Orchestrator) Head(ctx context.Context, id string) (*incident.Incident, error) {
	return o.store.Head(ctx, id)
}

// Deliveries returns a page of the incident's customer notices that q
// selects, in the order they were first written (see
// incident.DeliveryQuery); q.After continues after the last one of the
// page before. It returns an error matching incident.ErrInvalidFilter for
// a bad q and incident.ErrNotFound for an unknown ID.
func (o *Orchestrator) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	return o.store.Deliveries(ctx, id, q)
}

// Timeline returns the incident's timeline entries from position from (0
// is the first) on, at most incident.PartPage(limit) of them. It returns
// an error matching incident.ErrInvalidFilter for a negative from or a bad
// limit and incident.ErrNotFound for an unknown ID.
func (o *Orchestrator) Timeline(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	return o.store.Entries(ctx, id, from, limit)
}

// List returns a page of the register: the incidents in the store, open
// or ended, that f selects, newest DetectedAt first (see incident.Lister
// for the order and the paging, incident.ListFilter for the filter). The
// call is isolated like every store call: a panic or a hang of the store
// comes back as an error. It returns an error matching
// incident.ErrInvalidFilter for a bad filter, and one matching
// incident.ErrNotSupported when the store does not implement
// incident.Lister.
func (o *Orchestrator) List(ctx context.Context, f incident.ListFilter) (incident.Page, error) {
	g := o.store
	l, ok := g.s.(incident.Lister)
	if !ok {
		return incident.Page{}, fmt.Errorf("breach: list: store %T: %w: it does not implement incident.Lister", g.s, incident.ErrNotSupported)
	}
	if err := f.Validate(); err != nil {
		return incident.Page{}, err
	}
	p, err := isolate(ctx, g.timeout, func(ctx context.Context) (incident.Page, error) { return l.List(ctx, f) })
	return p, storeErr("list", err)
}

// Await blocks until cond holds for the stored incident's whole record
// (incident.Load: each look costs a read of the whole incident), and
// returns it. It
// re-checks after every write this Orchestrator makes, and at least every
// awaitPoll (one second) for writes by other replicas. An incident that is
// not in the store yet is waited for. It returns ctx's error when ctx ends
// first, and other store errors as they are.
func (o *Orchestrator) Await(ctx context.Context, id string, cond func(*incident.Incident) bool) (*incident.Incident, error) {
	t := time.NewTicker(awaitPoll)
	defer t.Stop()
	for {
		o.changesMu.Lock()
		ch := o.changes
		o.changesMu.Unlock()
		inc, err := incident.Load(ctx, o.store, id)
		switch {
		case errors.Is(err, incident.ErrNotFound):
			// not created yet: a report in flight may open it
		case err != nil:
			return nil, err
		case cond(inc):
			return inc, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-t.C:
		}
	}
}

// awaitPoll is how often Await looks at the store for other replicas'
// writes.
const awaitPoll = time.Second

func (o *Orchestrator) changed() {
	o.changesMu.Lock()
	close(o.changes)
	o.changes = make(chan struct{})
	o.changesMu.Unlock()
}
