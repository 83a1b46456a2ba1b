package breach

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"golang.org/x/sync/singleflight"
)

// Errors of the orchestrator. Store and lifecycle errors are passed through
// wrapped, so errors.Is(err, incident.ErrNotFound) and errors.As(err,
// new(*incident.TransitionError)) work on what the human actions return.
var (
	// ErrRunning: Run was called while another Run of the same
	// Orchestrator is going on.
	ErrRunning = errors.New("breach: orchestrator already running")
	// ErrInvalidOption: New was given a bad option.
	ErrInvalidOption = errors.New("breach: invalid option")
	// ErrOpenTasks: Resolve was refused because mandatory tasks are open.
	// The error is an *OpenTasksError.
	ErrOpenTasks = errors.New("breach: mandatory tasks open")
	// ErrNoSuchTask: CompleteTask named a task the incident does not have.
	ErrNoSuchTask = errors.New("breach: no such task")
	// ErrNotEscalated: Retry was called on an incident that is not
	// escalated.
	ErrNotEscalated = errors.New("breach: incident is not escalated")
)

// OpenTasksError lists the mandatory tasks that keep an incident from being
// resolved. It matches ErrOpenTasks.
type OpenTasksError struct {
	IncidentID string
	Tasks      []string
}

func (e *OpenTasksError) Error() string {
	return fmt.Sprintf("breach: incident %s: mandatory tasks open: %v", e.IncidentID, e.Tasks)
}

// Is makes an *OpenTasksError match ErrOpenTasks.
func (e *OpenTasksError) Is(target error) bool { return target == ErrOpenTasks }

// Option configures an Orchestrator in New.
type Option func(*config) error

type config struct {
	playbooks           map[string]*Playbook
	logger              *slog.Logger
	now                 func() time.Time
	newID               func() string
	concurrency         int
	grace               time.Duration
	flushInterval       time.Duration
	retryDelay          time.Duration
	deadlineInterval    time.Duration
	oncall              notify.Notifier
	deliveryConcurrency int
	owner               string
	observer            Observer
	leaseTTL            time.Duration
	resumeInterval      time.Duration
}

// WithPlaybook registers the response to one kind of incident. Playbooks
// are validated in New: a missing Kind, a duplicate Kind, an action without a
// container, a route without a notifier and the like make New fail with an
// error matching ErrInvalidPlaybook. The playbook is copied.
func WithPlaybook(p Playbook) Option {
	return func(c *config) error {
		if err := p.validate(); err != nil {
			return err
		}
		if _, dup := c.playbooks[p.Kind]; dup {
			return fmt.Errorf("%w: two playbooks for kind %q", ErrInvalidPlaybook, p.Kind)
		}
		p.Containment = slices.Clone(p.Containment)
		p.Notifiers = slices.Clone(p.Notifiers)
		p.Recommendations = slices.Clone(p.Recommendations)
		p.Tasks = slices.Clone(p.Tasks)
		p.Clocks = slices.Clone(p.Clocks)
		c.playbooks[p.Kind] = &p
		return nil
	}
}

// WithLogger sets the logger; the default is slog.Default(). Credentials
// never reach it.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock that timestamps the timeline and phases; the
// default is time.Now. Waits between retries use timers, not this clock.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithIDs sets the generator of incident IDs; the default makes "inc_" and
// 16 random hex digits. IDs must be unique across every process sharing the
// store.
func WithIDs(newID func() string) Option {
	return func(c *config) error {
		if newID == nil {
			return fmt.Errorf("%w: nil ID generator", ErrInvalidOption)
		}
		c.newID = newID
		return nil
	}
}

// WithConcurrency bounds how many incidents Run drives at once; the default
// is 8.
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency %d < 1", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithShutdownGrace bounds how long Run keeps going after its context ends:
// a plugin call already started may finish within it (its own timeout
// permitting) and its result is persisted; then everything still running is
// cancelled. The default is 10s.
func WithShutdownGrace(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: negative shutdown grace", ErrInvalidOption)
		}
		c.grace = d
		return nil
	}
}

// WithFlushInterval sets how often signals that joined open incidents are
// written to the store (count, last seen, samples) while Run runs; the
// default is 1s. Between flushes they cost a map lookup and a counter.
func WithFlushInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: flush interval must be positive", ErrInvalidOption)
		}
		c.flushInterval = d
		return nil
	}
}

// WithLease names this orchestrator among the replicas sharing a store that
// implements incident.Leaser, and sets how long its lease on an incident
// lasts without renewal (renewed every third of it while it drives the
// incident). A replica that dies holds its incidents until its leases run
// out, and the others' periodic resume (every ttl) takes them over: within
// two TTLs. A replica that fails to renew a lease stops driving that
// incident. The defaults are
// a random owner name and 30s. Without a Leaser store the option has no
// effect.
func WithLease(owner string, ttl time.Duration) Option {
	return func(c *config) error {
		if owner == "" || ttl <= 0 {
			return fmt.Errorf("%w: lease needs an owner and a positive TTL", ErrInvalidOption)
		}
		c.owner, c.leaseTTL = owner, ttl
		return nil
	}
}

// WithDeadlineInterval sets how often Run checks notification clocks and
// approval timeouts (see CheckDeadlines); the default is one minute.
func WithDeadlineInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: deadline interval must be positive", ErrInvalidOption)
		}
		c.deadlineInterval = d
		return nil
	}
}

// WithOnCall sets the notifier that tells responders when an incident is
// escalated to them, when an action waits for their approval, and when a
// notification clock is about to run out or has run out. Pages are sent at
// most once, each with an idempotency key; a failure is logged (and, for an
// escalation, put on the timeline) and never stops the response.
func WithOnCall(n notify.Notifier) Option {
	return func(c *config) error {
		if n == nil {
			return fmt.Errorf("%w: nil on-call notifier", ErrInvalidOption)
		}
		c.oncall = n
		return nil
	}
}

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
	store     incident.Store
	lc        *incident.Lifecycle
	cfg       config
	log       *slog.Logger
	sf        singleflight.Group
	running   atomic.Bool
	hot       hotIndex
	creds     sync.Map // incident ID → incident.Secret, never persisted
	sched     scheduler
	slots     slots
	leaser    incident.Leaser // the store, when it leases
	changesMu sync.Mutex
	changes   chan struct{}
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
		flushInterval:       time.Second,
		retryDelay:          time.Second,
		deadlineInterval:    time.Minute,
		deliveryConcurrency: deliveryConcurrency,
		leaseTTL:            30 * time.Second,
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
	o := &Orchestrator{
		store:   store,
		lc:      incident.Standard(),
		cfg:     cfg,
		log:     cfg.logger,
		changes: make(chan struct{}),
	}
	o.sched.init()
	o.slots.init()
	if l, ok := store.(incident.Leaser); ok {
		o.leaser = l
		if o.cfg.owner == "" {
			o.cfg.owner = "replica_" + randomID()[4:]
		}
		o.cfg.resumeInterval = o.cfg.leaseTTL
	}
	return o, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "inc_" + hex.EncodeToString(b[:])
}

// Lifecycle returns the lifecycle the orchestrator drives.
func (o *Orchestrator) Lifecycle() *incident.Lifecycle { return o.lc }

// Get returns a copy of the incident from the store.
func (o *Orchestrator) Get(ctx context.Context, id string) (*incident.Incident, error) {
	return o.store.Get(ctx, id)
}

// ListOpen returns copies of the open incidents from the store, oldest
// first.
func (o *Orchestrator) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	return o.store.ListOpen(ctx)
}

// Await blocks until cond holds for the stored incident, and returns it. It
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
		inc, err := o.store.Get(ctx, id)
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

// Run starts the detectors and drives incidents, at most WithConcurrency at
// a time, until ctx ends. It first resumes every open incident in the
// store. When ctx ends, Run stops the detectors, lets plugin calls in flight
// finish within the shutdown grace (WithShutdownGrace), persists what
// happened and pending signal counts, and returns nil with no goroutine of
// its own left running. A detector that fails or panics is logged and not
// restarted; the rest go on. Run returns ErrRunning if called while already
// running.
func (o *Orchestrator) Run(ctx context.Context, detectors ...incident.Detector) error {
	if !o.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer o.running.Store(false)

	// grace outlives ctx by the shutdown grace, so that a started side
	// effect can finish and be recorded.
	grace, cancelGrace := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelGrace()

	var wg sync.WaitGroup
	for i, d := range detectors {
		if d == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.runDetector(ctx, i, d)
		}()
	}
	if err := o.resume(ctx); err != nil {
		o.log.ErrorContext(ctx, "breach: resuming open incidents failed; will retry", "err", err)
		o.sched.later(o.cfg.retryDelay, resumeAll)
	}
	for range o.cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.work(ctx, grace)
		}()
	}
	wg.Go(func() { o.every(ctx, o.cfg.flushInterval, "flushing signal counts", o.Flush) })
	wg.Go(func() { o.every(ctx, o.cfg.deadlineInterval, "checking deadlines", o.CheckDeadlines) })
	if o.cfg.resumeInterval > 0 {
		wg.Go(func() {
			o.every(ctx, o.cfg.resumeInterval, "", func(context.Context) error { o.sched.add(resumeAll); return nil })
		})
	}
	<-ctx.Done()
	graceTimer := time.AfterFunc(o.cfg.grace, cancelGrace)
	defer graceTimer.Stop()
	o.sched.wakeAll()
	wg.Wait()
	o.sched.stopTimers()
	// Persist signal counts gathered since the last flush, with time of its
	// own: the grace may be spent by now.
	fctx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancelFlush()
	if err := o.Flush(fctx); err != nil {
		o.log.Error("breach: final flush of signal counts failed", "err", err)
	}
	return nil
}

// every calls fn every d until ctx ends, logging its failures as what.
func (o *Orchestrator) every(ctx context.Context, d time.Duration, what string, fn func(context.Context) error) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				o.log.Warn("breach: "+what+" failed; will retry", "err", err)
			}
		}
	}
}

func (o *Orchestrator) runDetector(ctx context.Context, i int, d incident.Detector) {
	err := retry.Call(ctx, 0, func(ctx context.Context) error { return d.Detect(ctx, o) })
	var pe *incident.PanicError
	switch {
	case errors.As(err, &pe):
		o.log.ErrorContext(ctx, "breach: detector panicked; not restarted", "detector", i, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	case err != nil && ctx.Err() == nil:
		o.log.ErrorContext(ctx, "breach: detector stopped with an error; not restarted", "detector", i, "err", err)
	}
}

const resumeAll = "\x00resume"

// finalFlushTimeout bounds the flush of signal counts when Run stops.
const finalFlushTimeout = 10 * time.Second

func (o *Orchestrator) resume(ctx context.Context) error {
	mark := o.hot.mark()
	open, err := o.store.ListOpen(ctx)
	if err != nil {
		return err
	}
	ids := make(map[string]bool, len(open))
	for _, inc := range open {
		ids[inc.ID] = true
		o.sched.add(inc.ID)
	}
	// Another replica may have closed incidents this one still counts
	// signals for: forget them, so the next signal opens a new incident.
	o.hot.retain(ids, mark)
	return nil
}

// work takes incidents off the queue and drives each as far as it goes.
func (o *Orchestrator) work(ctx, grace context.Context) {
	for {
		id, ok := o.sched.next(ctx)
		if !ok {
			return
		}
		if id == resumeAll {
			if err := o.resume(ctx); err != nil && ctx.Err() == nil {
				o.log.ErrorContext(ctx, "breach: resuming open incidents failed; will retry", "err", err)
				o.sched.later(o.cfg.retryDelay, resumeAll)
			}
			o.sched.done(id)
			continue
		}
		o.driveSafely(ctx, grace, id)
		o.sched.done(id)
	}
}

// driveSafely drives one incident and never lets a bug or a store failure
// escape: the incident is scheduled again later instead.
func (o *Orchestrator) driveSafely(ctx, grace context.Context, id string) {
	defer func() {
		if v := recover(); v != nil {
			o.log.Error("breach: panic while driving incident; will retry", "incident", id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			o.sched.later(o.cfg.retryDelay, id)
		}
	}()
	if err := o.drive(ctx, grace, id); err != nil && ctx.Err() == nil {
		if errors.Is(err, incident.ErrNotFound) {
			o.log.Warn("breach: incident vanished from the store", "incident", id)
			return
		}
		o.log.Error("breach: driving incident failed; will retry", "incident", id, "err", err)
		o.sched.later(o.cfg.retryDelay, id)
	}
}
