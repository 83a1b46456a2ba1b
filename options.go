package breach

import (
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// WithObserver sets the observer; the default observes nothing. A nil
// observer is an error matching ErrInvalidOption.
func WithObserver(obs Observer) Option {
	return func(c *config) error {
		if obs == nil {
			return fmt.Errorf("%w: nil observer", ErrInvalidOption)
		}
		c.observer = obs
		return nil
	}
}

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
	oncall              notify.Pager
	consoleURL          string
	deliveryConcurrency int
	notifyBatch         int
	owner               string
	observer            Observer
	leaseTTL            time.Duration
	storeTimeout        time.Duration
	credentialTTL       time.Duration
	unsafeAcks          bool
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
// never reach it. Its handler is host code, isolated as the rest is: a
// handler that panics loses that record, and nothing else.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithNow sets the time source that timestamps the timeline, the phases
// and the notification clocks; the default is time.Now. Waits between
// retries use timers, not this source.
func WithNow(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil time source", ErrInvalidOption)
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

// WithDelivery sets how customers are notified: batch customers a step
// (their notices claimed in one write and recorded in one more; default
// 500, at most incident.MaxPageSize) and at most concurrency notices of one
// incident in flight at once (default 16). A route's own rate
// (notify.Route.PerSecond) applies as well.
func WithDelivery(batch, concurrency int) Option {
	return func(c *config) error {
		if batch < 1 || batch > incident.MaxPageSize {
			return fmt.Errorf("%w: delivery batch %d is not between 1 and %d", ErrInvalidOption, batch, incident.MaxPageSize)
		}
		if concurrency < 1 {
			return fmt.Errorf("%w: delivery concurrency %d < 1", ErrInvalidOption, concurrency)
		}
		c.notifyBatch, c.deliveryConcurrency = batch, concurrency
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

// WithFlushInterval sets the group commit interval: signals that join open
// incidents are written to the store (count, last seen, samples) in batches,
// one change per incident per batch, at most this often; every Report
// waiting for its signal is answered when its batch is written. The default
// is 5ms. With WithUnsafeAcks it is how often Run writes the counts kept in
// memory (a longer one, such as a second, then saves writes).
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
// incident. The defaults are a random owner name and 30s. Without a Leaser
// store the option has no effect. An empty owner or a TTL under 30ms is an
// error matching ErrInvalidOption.
func WithLease(owner string, ttl time.Duration) Option {
	return func(c *config) error {
		if owner == "" || ttl < minLeaseTTL {
			return fmt.Errorf("%w: lease needs an owner and a TTL of at least %v", ErrInvalidOption, minLeaseTTL)
		}
		c.owner, c.leaseTTL = owner, ttl
		return nil
	}
}

// WithDeadlineInterval sets how often Run checks notification clocks and
// approval timeouts; the default is one minute.
func WithDeadlineInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: deadline interval must be positive", ErrInvalidOption)
		}
		c.deadlineInterval = d
		return nil
	}
}

// WithOnCall sets the pager of responders: the pager of every level of an
// escalation policy that names none (see Playbook.Escalation), and of the
// one-level policy of playbooks without one. It is paged when an incident
// is escalated, when an action waits for approval, and when a notification
// clock is about to run out or has run out. Each page carries an
// idempotency key and is retried per the policy; a failure is logged and
// put on the timeline, and never stops the response.
func WithOnCall(p notify.Pager) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("%w: nil on-call pager", ErrInvalidOption)
		}
		c.oncall = p
		return nil
	}
}

// WithConsoleURL sets the base URL of the console (where the host mounts
// it), so that pages link to the incident: base + "/incidents/" + ID.
func WithConsoleURL(base string) Option {
	return func(c *config) error {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%w: console URL %q is not an absolute http(s) URL", ErrInvalidOption, base)
		}
		c.consoleURL = strings.TrimSuffix(base, "/")
		return nil
	}
}

// minLeaseTTL is the shortest lease WithLease takes: renewals every third of
// it must leave a store time to answer.
const minLeaseTTL = 30 * time.Millisecond

// WithStoreTimeout bounds every call into the host's Store (and Leaser);
// the default is 30s. A call that outlives it fails with an
// *incident.TimeoutError, and one that panics with an *incident.PanicError:
// the step is retried later, and the process goes on. A non-positive
// duration is an error matching ErrInvalidOption.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: store timeout must be positive", ErrInvalidOption)
		}
		c.storeTimeout = d
		return nil
	}
}

// WithCredentialTTL bounds how long this process keeps a credential that
// came with a signal, for containers to use; the default is 24 hours. It
// runs from the credential's last arrival, give or take an eighth of it
// (a second at most): a credential that comes again within that is not
// kept again. A credential is forgotten sooner when its incident ends,
// whichever replica ends it (this one learns it at its next resume or
// flush). A non-positive duration is an error matching ErrInvalidOption.
func WithCredentialTTL(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: credential TTL must be positive", ErrInvalidOption)
		}
		c.credentialTTL = d
		return nil
	}
}

// WithUnsafeAcks makes Report acknowledge a signal that joins an open
// incident as soon as it is counted in memory, without waiting for the
// count to be stored: a storm then costs a lookup and a counter per signal,
// but a process that dies loses the counts it acknowledged since the last
// flush (never an incident: opening one is always durable). Run writes the
// counts every flush interval. Without it (the default), acknowledged
// means durable.
func WithUnsafeAcks() Option {
	return func(c *config) error {
		c.unsafeAcks = true
		return nil
	}
}
