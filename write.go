package breach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/breachkit/breach/incident"
)

// maxConflicts bounds the retries of one write that keeps losing the
// compare-and-swap.
const maxConflicts = 16

// mutate applies fn to inc and writes it with a compare-and-swap. On a
// version conflict it re-reads the incident into inc and applies fn again.
// On success inc holds what was stored. On error inc is unspecified and
// must be re-read. fn returning errStale ends mutate with errStale.
//
// inc is a head (see incident.Store.Head): fn records entries on it with
// Incident.Record (they land in inc.Timeline), adds deliveries to
// inc.Deliveries and may set an investigation whose Impact holds its
// customers; mutate writes those as the parts of one incident.Change and
// leaves inc a head again. On error inc is as it was before the call.
func (o *Orchestrator) mutate(ctx context.Context, inc *incident.Incident, fn func(*incident.Incident) error) error {
	pages, err := o.mutateLeavingPages(ctx, inc, fn)
	if err == nil {
		o.sendPages(ctx, inc, pages)
	}
	return err
}

// mutateLeavingPages is mutate without the pages the write decided (an
// alert nobody needs any more, resolved): it returns them, for its caller
// to send when it can wait for a pager (the group commit cannot).
func (o *Orchestrator) mutateLeavingPages(ctx context.Context, inc *incident.Incident, fn func(*incident.Incident) error) ([]pageOut, error) {
	saved := o.savedHead(inc)
	for range maxConflicts {
		inc.Timeline, inc.Deliveries = nil, nil
		o.adoptMerged(inc)
		if err := fn(inc); err != nil {
			*inc = *saved.Clone()
			return nil, err
		}
		inc.UpdatedAt = o.cfg.now()
		// An alert nobody needs any more (the incident moved on, or
		// ended) is resolved in the same write.
		var resolved []pageOut
		if inc.Paging.Open() && !needsPerson(inc) {
			resolved = o.resolveAlert(inc, inc.UpdatedAt)
		}
		unmark := func() {}
		if !inc.State.Open() {
			// Before the write, so before anyone can read that it ended:
			// the next signal for its key takes the slow path and opens a
			// new incident. (Should the write fail, that path finds the
			// incident still open and joins it.)
			o.hot.remove(inc.ID)
			unmark = o.ending(inc.ID)
		}
		ch := changeOf(inc)
		// The version written is made once, frozen: the store and the
		// next step keep it as it is, sharing with the version before it
		// the parts this write left as they were.
		v := inc.CloneSharing(saved)
		ch.Head, ch.Frozen = v, true
		err := o.store.Apply(ctx, ch)
		if err == nil {
			inc.Version = v.Version
			o.wrote(inc.ID, inc.Version)
			o.keepWritten(v)
			// The store's first customers are these only if it holds
			// none from before: the head had no findings, and none were
			// ever cleared (a reopen clears them; a retry clears findings
			// only of an investigation that failed, which stored none).
			o.keepFirstPage(inc, saved.Investigation == nil && saved.Reopens == 0, ch.Customers)
			if !inc.State.Open() {
				o.endCredentials(inc)
				o.retarget(inc)
				if o.leaser != nil {
					o.forgetLease(inc.ID) // the write gave it up
				}
			}
			o.changed()
			o.announce(ctx, inc, enteredAt(saved), ch.Entries)
			return resolved, nil
		}
		unmark()
		o.dropKept(inc.ID, saved.Version+1) // what was read is stale, or may be
		*inc = *saved.Clone()
		if !errors.Is(err, incident.ErrConflict) {
			return nil, err
		}
		fresh, err := o.store.Head(ctx, inc.ID)
		if err != nil {
			return nil, err
		}
		*inc, saved = *fresh, fresh.Clone()
	}
	return nil, fmt.Errorf("breach: incident %s: %w: gave up after %d conflicting writes", inc.ID, incident.ErrConflict, maxConflicts)
}

// changeOf splits the working head inc into the change that writes it: the
// entries recorded, the deliveries added and the customers of a new
// investigation travel as parts, taken out of inc, and the change's head is
// inc itself (the store keeps a copy, and sets inc's Version on success).
func changeOf(inc *incident.Incident) incident.Change {
	ch := incident.Change{Head: inc, Entries: inc.Timeline, Deliveries: inc.Deliveries}
	inc.Timeline, inc.Deliveries = nil, nil
	if inv := inc.Investigation; inv != nil && len(inv.Impact.Customers) > 0 {
		c := *inv
		ch.Customers, c.Impact.Customers = inv.Impact.Customers, nil
		inc.Investigation = &c
	}
	return ch
}

// enteredAt is when inc entered its state, or was detected.
func enteredAt(inc *incident.Incident) time.Time {
	if inc.EnteredAt.IsZero() {
		return inc.DetectedAt
	}
	return inc.EnteredAt
}

// record appends a timeline entry stamped with the orchestrator's clock.
func (o *Orchestrator) record(inc *incident.Incident, actor string, typ incident.EntryType, detail string) {
	inc.Record(incident.Entry{At: o.cfg.now(), Actor: actor, Type: typ, Detail: o.redact(inc.ID, detail)})
}

// fire applies a lifecycle event to inc in memory: the state, the phase
// timestamp and the timeline entry. It returns the lifecycle's error when
// the event is not allowed.
func (o *Orchestrator) fire(inc *incident.Incident, ev incident.Event, actor, detail string) error {
	to, err := o.lc.Next(inc.State, ev)
	if err != nil {
		return err
	}
	now := o.cfg.now()
	from := inc.State
	inc.State, inc.EnteredAt = to, now
	inc.Record(incident.Entry{At: now, Actor: actor, Type: incident.EntryTransition,
		Event: ev, From: from, To: to, Detail: o.redact(inc.ID, detail)})
	switch to {
	case incident.StateContained:
		inc.ContainedAt = now
		o.reach(inc, incident.MilestoneContained, now, actor, "")
	case incident.StateResolving:
		o.openTasks(inc)
	case incident.StateResolved:
		inc.ResolvedAt = now
		o.reach(inc, incident.MilestoneResolved, now, actor, "")
	case incident.StateClosed:
		inc.ClosedAt = now
		o.reach(inc, incident.MilestoneClosed, now, actor, "")
		o.endClocks(inc, now, actor, "closed")
	case incident.StateDismissed:
		o.endClocks(inc, now, actor, "dismissed as a false positive")
	case incident.StateMerged:
		o.endClocks(inc, now, actor, "merged into incident "+inc.MergedInto)
	}
	if ev == incident.EventNotified {
		inc.NotifiedAt = now
		o.reach(inc, incident.MilestoneCustomersNotified, now, actor, "")
	}
	return nil
}

// announce logs and observes the transitions a successful write recorded
// (entries): only what was stored is told. since is when the incident
// entered the state the first of them left.
func (o *Orchestrator) announce(ctx context.Context, inc *incident.Incident, since time.Time, entries incident.Timeline) {
	logged := o.log.Enabled(ctx, slog.LevelInfo) // no message built for a logger that drops it
	for i := range entries {
		e := &entries[i]
		if e.Type != incident.EntryTransition {
			continue
		}
		if logged {
			o.log.Info("breach: incident "+string(e.Event), "incident", inc.ID, "from", string(e.From), "to", string(e.To), "actor", e.Actor)
		}
		if o.cfg.observer == nil {
			since = e.At
			continue
		}
		o.observe(ctx, Observation{Kind: ObserveTransition, At: e.At, IncidentID: inc.ID, IncidentKind: inc.Kind,
			Severity: inc.Severity, Event: e.Event, From: e.From, To: e.To, Duration: e.At.Sub(since), Outcome: string(e.To),
			Actor: e.Actor, DetectedAt: inc.DetectedAt})
		since = e.At
	}
}

// advance fires ev if inc is still in state from, and persists it.
func (o *Orchestrator) advance(ctx context.Context, inc *incident.Incident, from incident.State, ev incident.Event, detail string) error {
	return o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.State != from || inc.Dismissal != nil {
			return errStale
		}
		return o.fire(inc, ev, incident.ActorSystem, detail)
	})
}

// stepRun is what one step runs under.
type stepRun struct {
	// stop ends when Run is stopping or the step is interrupted: no new
	// attempt starts, and waits between attempts end.
	stop context.Context
	// calls is the context of plugin calls: it outlives stop by the
	// shutdown grace, and ends at once, with the cause, when the step is
	// interrupted or its lease is lost.
	calls context.Context
	// write is the context of store writes: it ends after the shutdown
	// grace or when the lease is lost, but not on an interruption, so that
	// a cut step records what it knows.
	write context.Context
	// fence ends all three, with the cause.
	fence func(cause error)
	// chain folds into a write the transitions that follow without a
	// plugin call, and the claims of the calls that come next (set by the
	// driver; see Orchestrator.chain).
	chain func(inc *incident.Incident)
	ends  []func()
}

// onEnd runs fn when the step ends.
func (st *stepRun) onEnd(fn func()) { st.ends = append(st.ends, fn) }

// beginStep takes the slot of id for one step under Run's ctx and grace. It
// reports false when the slot is taken (a dismissal holds or waits for it).
func (o *Orchestrator) beginStep(ctx, grace context.Context, id string) (*stepRun, func(), bool) {
	stop, cancelStop := context.WithCancelCause(ctx)
	calls, cancelCalls := context.WithCancelCause(grace)
	write, cancelWrite := context.WithCancelCause(grace)
	interrupt := func(cause error) { cancelStop(cause); cancelCalls(cause) }
	st := &stepRun{stop: stop, calls: calls, write: write,
		fence: func(cause error) { interrupt(cause); cancelWrite(cause) }}
	release, ok := o.slots.begin(id, interrupt)
	if !ok {
		st.fence(nil)
		return nil, nil, false
	}
	return st, func() {
		for _, fn := range st.ends {
			fn()
		}
		release()
		st.fence(nil)
	}, true
}

// callContext is the context of one step's plugin calls, bounded by the
// playbook's StepTimeout. Without one it is the step's calls context
// itself, which ends when the step does (each call has its own timeout
// besides: see retry.Call).
func (st *stepRun) callContext(pb *Playbook) (context.Context, context.CancelFunc) {
	if pb != nil && pb.StepTimeout > 0 {
		return context.WithTimeout(st.calls, pb.StepTimeout)
	}
	return st.calls, func() {}
}

// maxStack bounds the panic stack kept on a timeline entry.
const maxStack = 4096

// panicStack returns "\nstack:\n" and the (bounded) stack of the last
// panic in err, or "" when err holds no *incident.PanicError.
func panicStack(err error) string {
	var pe *incident.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 {
		return ""
	}
	st := pe.Stack
	if len(st) > maxStack {
		st = st[:maxStack]
	}
	return "\nstack:\n" + string(st)
}

// errDismissing is the cause a step is cancelled with when a person
// dismisses its incident.
var errDismissing = errors.New("breach: the incident is being dismissed")

// cut reports whether err only says that the step was cut short: Run is
// stopping, the lease was lost, or a person's action made the step moot.
// The work is unfinished, not failed.
func (st *stepRun) cut(err error) bool {
	return err != nil && (errors.Is(err, incident.ErrStopped) || st.stop.Err() != nil)
}

// interrupted reports whether a person's action (a dismissal) cut the step,
// as opposed to Run stopping.
func (st *stepRun) interrupted() bool { return errors.Is(context.Cause(st.stop), errDismissing) }

// withNote is s followed by a person's note, when they gave one.
func withNote(s, note string) string {
	if note == "" {
		return s
	}
	return s + ": " + note
}
