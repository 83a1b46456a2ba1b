package containment

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/relay"
	"github.com/breachkit/breach/internal/retry"
	"golang.org/x/sync/semaphore"
)

// DefaultConcurrency is how many actions a Runner with Concurrency 0 runs at
// once.
const DefaultConcurrency = 4

// Runner applies or releases actions with bounded concurrency. The zero
// value is ready to use. A Runner holds no state between runs and is safe
// for concurrent use.
type Runner struct {
	// Concurrency bounds the actions running at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Now reads the clock for Result timestamps; nil means time.Now.
	Now func() time.Time
	// OnResult, when set, is called with each Result as its action
	// finishes, one call at a time, before Apply or Release returns, on
	// the goroutine that ran the action (each action but the last runs on
	// one of its own, the last on the caller's). The orchestrator uses it
	// to persist each action's outcome as soon as it is known.
	OnResult func(Result)
	// OnCall, when set, is called just before each attempt's call (Contain,
	// or Release), with its request, on the goroutine that makes the call;
	// calls for actions running at once may overlap. The orchestrator uses
	// it to know when a containment call has started.
	OnCall func(Request)
	// Stop, when closed, ends a run gracefully: actions not yet started are
	// not started and failed attempts are not retried (their Result.Err
	// matches incident.ErrStopped), while attempts in flight finish under
	// their own context. nil never closes.
	Stop <-chan struct{}
}

// Apply runs each action's Container (and its Verifier, if it is one) under
// the action's Policy, at most Concurrency at a time. base is the request
// every action starts from; Apply fills in Action, IdempotencyKey (from
// keyOf) and Attempt. Apply returns when every action has finished; when ctx
// ends, actions not yet started get ctx's error without being called. A
// panic in the caller's code (OnResult, Now) is raised on the
// caller's goroutine once every action has ended, as an
// *incident.PanicError when it happened on another action's goroutine; a
// panic in a Container or in OnCall, which run in the attempt's isolated
// call, is the action's error (see incident.PanicError).
func (r Runner) Apply(ctx context.Context, actions []Action, base Request, keyOf func(Action) string) Results {
	return r.run(ctx, actions, base, keyOf, func(ctx context.Context, a Action, req Request) error {
		if err := a.Container.Contain(ctx, req); err != nil {
			return err
		}
		if v, ok := a.Container.(Verifier); ok {
			if err := v.Verify(ctx, req); err != nil {
				if ve := (*VerifyError)(nil); errors.As(err, &ve) {
					return err // the Verifier said so itself; do not say it twice
				}
				return &VerifyError{Err: err}
			}
		}
		return nil
	})
}

// Release undoes each action whose Container is a Releaser, the same way
// Apply applies them; actions whose Container is not a Releaser are left
// out of the Results.
func (r Runner) Release(ctx context.Context, actions []Action, base Request, keyOf func(Action) string) Results {
	var rel []Action
	for _, a := range actions {
		if _, ok := a.Container.(Releaser); ok {
			rel = append(rel, a)
		}
	}
	return r.run(ctx, rel, base, keyOf, func(ctx context.Context, a Action, req Request) error {
		return a.Container.(Releaser).Release(ctx, req)
	})
}

// VerifyError is a Verifier's complaint that a contained effect does not
// hold. Apply wraps a Verifier's error in one; a Verifier may also return
// one itself (wrapped or marked Permanent, too), which Apply then passes on
// as it is rather than wrapping it again.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "containment not verified: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func (r Runner) run(ctx context.Context, actions []Action, base Request, keyOf func(Action) string,
	do func(context.Context, Action, Request) error) Results {
	n := r.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	if keyOf == nil {
		keyOf = func(a Action) string { return Key(base.IncidentID, a) }
	}
	results := make(Results, len(actions))
	sem := semaphore.NewWeighted(int64(n))
	// Every action's goroutine is waited for, even when the last action,
	// which runs on this one, panics in the caller's code (OnResult, Now):
	// OnResult is never called after Apply or Release returns. A panic in
	// that code on another action's goroutine is raised again here, once
	// they have all ended, where the caller recovers its own.
	var g relay.Group
	returned := false
	defer g.End(&returned)
	var mu sync.Mutex // serialises OnResult
	finish := func(i int, res Result) {
		results[i] = res
		if r.OnResult != nil {
			mu.Lock()
			defer mu.Unlock()
			r.OnResult(res)
		}
	}
	for i, a := range actions {
		key := keyOf(a)
		err := sem.Acquire(ctx, 1)
		if err == nil && r.stopped() {
			sem.Release(1)
			err = incident.ErrStopped
		}
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			t := now()
			finish(i, Result{Action: a.Name, IdempotencyKey: key, Err: err, Started: t, Finished: t})
			continue
		}
		apply := func() {
			defer sem.Release(1)
			res := Result{Action: a.Name, IdempotencyKey: key, Started: now()}
			out := retry.Do(ctx, a.Policy, r.Stop, func(ctx context.Context, attempt int) error {
				req := base
				req.Action, req.IdempotencyKey, req.Attempt = a.Name, key, attempt
				req.Attributes = maps.Clone(base.Attributes) // the container may keep its request
				if r.OnCall != nil {
					r.OnCall(req)
				}
				return do(ctx, a, req)
			})
			res.Attempts, res.Err, res.Finished = out.Attempts, out.Err, now()
			finish(i, res)
		}
		if i == len(actions)-1 {
			// The last action runs on the caller's goroutine, which would
			// only wait for it otherwise (each attempt is still a call of
			// its own: see retry.Call).
			apply()
		} else {
			g.Go(apply)
		}
	}
	returned = true
	return results
}

func (r Runner) stopped() bool {
	select {
	case <-r.Stop:
		return true
	default:
		return false
	}
}

// Key is the idempotency key the orchestrator gives action on incident: a
// stable function of both, see incident.IdempotencyKey.
func Key(incidentID string, a Action) string {
	return incident.IdempotencyKey(incidentID, "contain", a.Name)
}
