package breach

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/breachkit/breach/incident"
)

// SignalError is the error of one signal of a ReportAll batch: Index is
// its place in the batch, Err what Report would have returned for it.
type SignalError struct {
	Index int
	Err   error
}

func (e *SignalError) Error() string { return fmt.Sprintf("signal %d: %v", e.Index, e.Err) }

// Unwrap returns the signal's error, so that errors.Is and errors.As see
// it through the batch's.
func (e *SignalError) Unwrap() error { return e.Err }

// ReportAll files every signal of sigs as Report files each, and returns
// their receipts in the same order. It is for callers that gather signals
// (a log scanner, a gateway's batch of rejected requests): the batch waits
// once for the group commits that store its signals, instead of each
// signal waiting for its own, so a storm costs no goroutine switch per
// signal.
//
// While new containment work waits for its first call, ReportAll pauses
// as Report does (10ms at most from the latest such work, or until ctx
// ends) after each signal it counts on an open incident, and before its
// first signal when that one is for an open incident; opening an incident
// never pauses. It reads sigs and changes none of them: a caller may
// file the same slice again, or from several goroutines at once.
//
// Acknowledged means durable, as with Report: ReportAll returns once every
// signal it accepted is stored. A signal that fails (invalid, of an unknown
// kind, not stored) does not stop the others: the error is the errors.Join
// of a *SignalError per failed signal, whose receipt is the zero Receipt,
// so errors.Is(err, incident.ErrInvalidSignal) and errors.As(err,
// &signalErr) see through it. When ctx ends before a signal's outcome is
// known, that signal's error matches ErrOutcomeUnknown and ctx's error:
// reporting it again is safe (at worst it is counted twice); the signals
// not yet filed when ctx ends are not recorded, and their errors match
// ctx's error alone.
//
// ReportAll is safe for concurrent use and works whether Run is running or
// not. An empty batch returns nil, nil.
func (o *Orchestrator) ReportAll(ctx context.Context, sigs []incident.Signal) ([]incident.Receipt, error) {
	if len(sigs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A batch for open incidents that comes while containment work waits
	// for its first call waits before any of its work, not after its
	// first signal: a storm's reporters, woken together by a group commit,
	// come back together. One that opens an incident does not wait.
	if o.gate.shut.Load() && o.hot.cached(hotKeyOf(&sigs[0])) != nil {
		o.gate.wait(ctx)
	}
	receipts := make([]incident.Receipt, len(sigs))
	var errs []error
	fail := func(i int, err error) { errs = append(errs, &SignalError{Index: i, Err: err}) }
	// The signals counted in memory, waiting for their batch's commit:
	// most signals of a storm wait, so the list is as long as the batch,
	// and taken from a pool, since a storm files batch after batch.
	wp := waitsPool.Get().(*[]waiting)
	waits := (*wp)[:0]
	if cap(waits) < len(sigs) {
		waits = make([]waiting, 0, len(sigs))
	}
	defer func() {
		clear(waits) // let go of the batches
		*wp = waits[:0]
		waitsPool.Put(wp)
	}()
	for i := range sigs {
		if err := ctx.Err(); err != nil {
			// What is left is not recorded, as a Report whose ctx has
			// ended records nothing.
			for j := i; j < len(sigs); j++ {
				fail(j, err)
			}
			break
		}
		sig := &sigs[i]
		if err := o.admit(sig); err != nil {
			fail(i, err)
			continue
		}
		e, b := o.count(sig)
		if e == nil {
			// Not known here: opened or found in the store, its count
			// (when it joined an open incident) waited for with the rest.
			rc, b, err := o.fileSlow(ctx, *sig)
			if err != nil {
				fail(i, err)
				continue
			}
			receipts[i] = rc
			if b != nil {
				waits = append(waits, waiting{i, b})
			} else {
				o.observeSignal(ctx, sig, rc)
			}
			continue
		}
		if !sig.Credential.IsZero() {
			o.keepSignalCredential(e, sig)
		}
		o.gate.wait(ctx)
		receipts[i].IncidentID = e.id
		if b != nil {
			waits = append(waits, waiting{i, b})
		} else {
			o.observeSignal(ctx, sig, receipts[i])
		}
	}
	if len(waits) > 0 {
		o.commit()
	}
	// Many signals share a batch (one per incident per commit): the wait
	// parks once per batch, the rest find it done.
	for _, w := range waits {
		if !w.b.ended.Load() {
			select {
			case <-w.b.done:
			case <-ctx.Done():
			}
			if !w.b.ended.Load() { // ctx ended first
				receipts[w.i] = incident.Receipt{}
				fail(w.i, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err()))
				continue
			}
		}
		if w.b.err != nil {
			receipts[w.i] = incident.Receipt{}
			fail(w.i, fmt.Errorf("breach: signal not recorded: %w", w.b.err))
			continue
		}
		receipts[w.i].IncidentID = w.b.id
		o.observeSignal(ctx, &sigs[w.i], receipts[w.i])
	}
	return receipts, errors.Join(errs...)
}

// waiting is a signal of a ReportAll batch counted in memory: its index,
// and the batch whose commit stores it.
type waiting struct {
	i int
	b *batch
}

// waitsPool holds the waiting lists of ReportAll calls that returned.
var waitsPool = sync.Pool{New: func() any { return new([]waiting) }}

// admit validates sig as Report does: an invalid signal, or one of a kind
// no playbook answers, is refused.
func (o *Orchestrator) admit(sig *incident.Signal) error {
	var err error
	if sig.At.IsZero() { // only a dated signal needs the clock read
		err = sig.Validate()
	} else {
		err = sig.ValidateAt(o.cfg.now())
	}
	if err != nil {
		return err
	}
	if _, ok := o.cfg.playbooks[sig.Kind]; !ok {
		return fmt.Errorf("%w: %w: %q", incident.ErrInvalidSignal, ErrUnknownKind, sig.Kind)
	}
	return nil
}

// observeSignal tells the observer of a signal filed as rc says.
func (o *Orchestrator) observeSignal(ctx context.Context, sig *incident.Signal, rc incident.Receipt) {
	if o.cfg.observer == nil {
		return
	}
	out := "joined"
	if rc.Opened {
		out = "opened"
	}
	o.observe(ctx, Observation{Kind: ObserveSignal, At: sig.At, IncidentID: rc.IncidentID, IncidentKind: sig.Kind,
		Severity: sig.Severity, Outcome: out})
}
