// Package retry runs the library's calls into host code (containers,
// investigators, notifiers, detectors, key sources): one attempt with
// [Call], and attempts under an [incident.Policy] with [Do]. It is the one
// retry layer of every call; plugins do not retry inside themselves, they
// say when to try again with [incident.RetryAfter].
package retry

import (
	"context"
	"errors"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
)

// Outcome is the result of Do.
type Outcome struct {
	Attempts int   // calls made
	Err      error // nil on success; otherwise the last error (see Do)
}

// Do calls fn until it succeeds, returns an error marked
// incident.Permanent, or p's attempts are spent. Each call gets its 1-based
// attempt number and a fresh context with p's Timeout, derived from ctx.
//
// Between attempts Do waits p.Delay, or, when the failed attempt's error
// carries a delay (incident.RetryAfter, such as a receiver's Retry-After),
// that delay instead: it is not capped by p.MaxBackoff, only by ctx. A
// delay that ends after ctx's deadline (the step's timeout) is not waited:
// Do returns the last error at once, since the next attempt could not run.
//
// A call that panics is recovered into an *incident.PanicError (with the
// stack) and counts as a failed attempt; so does one that outlives its
// timeout, as an *incident.TimeoutError, even if fn ignores its context (Do
// stops waiting for it; the goroutine running fn ends when fn returns).
// When ctx ends, Do stops and returns ctx's cause joined with the last
// error.
//
// stop is a second way to stop, for graceful shutdown: once it is closed, no
// further attempt starts and a wait between attempts ends at once, with
// incident.ErrStopped joined to the last error; an attempt in flight is not
// interrupted by stop, only by ctx and its timeout. A nil stop never
// closes. Do never panics.
func Do(ctx context.Context, p incident.Policy, stop <-chan struct{}, fn func(ctx context.Context, attempt int) error) Outcome {
	p = p.Defaults()
	var last error
	for attempt := 1; ; attempt++ {
		if err := context.Cause(ctx); err != nil {
			return Outcome{Attempts: attempt - 1, Err: errors.Join(err, last)}
		}
		select {
		case <-stop:
			return Outcome{Attempts: attempt - 1, Err: errors.Join(incident.ErrStopped, last)}
		default:
		}
		last = Call(ctx, p.Timeout, func(ctx context.Context) error { return fn(ctx, attempt) })
		if last == nil {
			return Outcome{Attempts: attempt}
		}
		if incident.IsPermanent(last) || attempt >= p.Attempts {
			return Outcome{Attempts: attempt, Err: last}
		}
		wait, asked := incident.RetryDelay(last)
		if !asked {
			wait = Delay(p, attempt)
		}
		if deadline, ok := ctx.Deadline(); ok && asked && time.Until(deadline) <= wait {
			return Outcome{Attempts: attempt, Err: last}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Outcome{Attempts: attempt, Err: errors.Join(context.Cause(ctx), last)}
		case <-stop:
			t.Stop()
			return Outcome{Attempts: attempt, Err: errors.Join(incident.ErrStopped, last)}
		case <-t.C:
		}
	}
}

// The claims on a call (see Call).
const (
	callPending int32 = iota
	callStarted
	callAbandoned
)

// Call runs fn once with a context that ends after timeout (no limit when
// timeout <= 0), recovering a panic into an *incident.PanicError and giving
// up on a call that outlives the timeout with an *incident.TimeoutError. fn
// runs on its own goroutine, which ends when fn returns: after a timeout
// that goroutine may still be running, so a plugin that ignores its context
// can overlap with the next attempt and must guard what it shares. A call
// given up on before its goroutine started (ctx ended first) never runs fn
// at all: once Call has returned so, fn cannot start later.
func Call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	done := make(chan error, 1)
	// The goroutine and a Call giving up race to claim the call: started,
	// fn runs; abandoned first (or found ended by the goroutine), it never
	// does.
	var claim atomic.Int32
	go func() {
		if cctx.Err() != nil || !claim.CompareAndSwap(callPending, callStarted) {
			return
		}
		defer func() {
			if v := recover(); v != nil {
				done <- &incident.PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		done <- fn(cctx)
	}()
	result := func(err error) error {
		if err != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil &&
			errors.Is(err, context.DeadlineExceeded) {
			return &incident.TimeoutError{After: timeout}
		}
		return err
	}
	select {
	case err := <-done:
		return result(err)
	case <-cctx.Done():
		select {
		case err := <-done:
			return result(err) // it finished as the context ended: what it did counts
		default:
		}
		claim.CompareAndSwap(callPending, callAbandoned) // not started: it never will
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return &incident.TimeoutError{After: timeout}
	}
}
