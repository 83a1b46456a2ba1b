package breach

import (
	"context"
	"fmt"
	"time"

	"github.com/breachkit/breach/incident"
)

// ObservationKind says what an Observation is about.
type ObservationKind string

// The kinds of observation.
const (
	// ObserveSignal: a signal was reported; Outcome is "opened" or
	// "joined".
	ObserveSignal ObservationKind = "signal"
	// ObserveTransition: the incident changed state; Duration is the time
	// spent in From.
	ObserveTransition ObservationKind = "transition"
	// ObserveStep: a plugin step finished (Step is "contain", "release",
	// "investigate" or "notify"); Duration is its run time over all
	// attempts.
	ObserveStep ObservationKind = "step"
)

// Observation describes one thing the orchestrator did, for metrics and
// tracing. It carries no secret and no customer data beyond IDs.
type Observation struct {
	Kind       ObservationKind
	At         time.Time
	IncidentID string
	// IncidentKind is the incident's kind (the playbook).
	IncidentKind string
	Severity     incident.Severity
	// For transitions.
	Event    incident.Event
	From, To incident.State
	// For steps: which one, and the action or channel it was about.
	Step   string
	Target string
	// Attempts made by a step.
	Attempts int
	Duration time.Duration
	// Outcome is "ok", "failed" or "interrupted" for steps, "opened" or
	// "joined" for signals, and the new state for transitions.
	Outcome string
	// Err is the step's failure, redacted; nil otherwise.
	Err error
	// Started is when a step's first plugin call began (At, when it was
	// observed, is after its result was written); a span of the step runs
	// from Started to Started+Duration.
	Started time.Time
	// DetectedAt is when the incident was detected (for steps and
	// transitions), so that times to contain or notify need no memory of
	// earlier observations.
	DetectedAt time.Time
	// Actor made a transition: incident.ActorSystem or the person.
	Actor string
	// Key is a step's idempotency key: the containment action's or the
	// customer notice's, which leads to its record (and holds no customer
	// data).
	Key string
}

// Observer is told about every signal, transition and step. Observe is
// called synchronously on the orchestrator's goroutines, possibly
// concurrently: it must be safe for concurrent use and fast (count, record a
// span, hand off to a channel), and must not call back into the
// Orchestrator. ctx is the context of the work observed (the caller's for a
// signal, the step's for a step or a transition), so that a tracer can
// parent its spans; Observe must not keep it. A panic in Observe is
// recovered and logged.
type Observer interface {
	Observe(ctx context.Context, ob Observation)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(ctx context.Context, ob Observation)

// Observe calls f(ctx, ob).
func (f ObserverFunc) Observe(ctx context.Context, ob Observation) { f(ctx, ob) }

// Outcomes of a step observation.
const (
	outcomeOK          = "ok"
	outcomeFailed      = "failed"
	outcomeInterrupted = "interrupted"
)

func (o *Orchestrator) observe(ctx context.Context, ob Observation) {
	if o.cfg.observer == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			o.log.Error("breach: observer panicked", "panic", fmt.Sprint(v))
		}
	}()
	if ob.At.IsZero() {
		ob.At = o.cfg.now()
	}
	o.cfg.observer.Observe(ctx, ob)
}

func outcomeOf(err error) string {
	if err == nil {
		return outcomeOK
	}
	return outcomeFailed
}
