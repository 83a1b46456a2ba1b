package incident

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// Policy says how a plugin call (a containment action, a delivery, an
// investigation) is attempted. Every zero field has a documented default,
// so the zero Policy is a sensible one.
type Policy struct {
	// Attempts is the most calls made, the first included. 0 means 3;
	// 1 means no retry.
	Attempts int
	// Timeout bounds each attempt; each gets a fresh context derived from
	// the caller's. 0 means 30s.
	Timeout time.Duration
	// Backoff is the wait before the second attempt; it doubles for each
	// one after, up to MaxBackoff, and is jittered by up to ±20% so that
	// many incidents retrying at once spread out. 0 means 1s.
	Backoff time.Duration
	// MaxBackoff caps the doubling of the wait; the jittered wait may be up
	// to 20% longer. 0 means 30s.
	MaxBackoff time.Duration
}

// Defaults returns p with every zero field replaced by its default.
func (p Policy) Defaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = 3
	}
	if p.Timeout <= 0 {
		p.Timeout = 30 * time.Second
	}
	if p.Backoff <= 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.MaxBackoff < p.Backoff {
		p.MaxBackoff = p.Backoff
	}
	return p
}

// Delay returns the jittered wait after failed attempt n (1 for the
// first).
func (p Policy) Delay(n int) time.Duration {
	p = p.Defaults()
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		if d > p.MaxBackoff/2 { // doubling would pass the cap, or overflow
			d = p.MaxBackoff
			break
		}
		d *= 2
	}
	// maxDelayBase keeps d plus 20% jitter within a Duration.
	d = min(d, p.MaxBackoff, maxDelayBase)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}

// maxDelayBase is the largest backoff Delay jitters: up to 20% more still
// fits in a time.Duration.
const maxDelayBase = time.Duration(math.MaxInt64 / 6 * 5)

// Outcome is the result of Policy.Do.
type Outcome struct {
	Attempts int   // calls made
	Err      error // nil on success; otherwise the last error (see Do)
}

// Do calls fn until it succeeds, returns an error marked Permanent, or the
// policy's attempts are spent, waiting Delay between attempts. Each call
// gets its 1-based attempt number and a fresh context with the policy's
// Timeout, derived from ctx.
//
// A call that panics is recovered into a *PanicError (with the stack) and
// counts as a failed attempt; so does one that outlives its timeout, as a
// *TimeoutError, even if fn ignores its context (Do stops waiting for it;
// the goroutine running fn ends when fn returns). When ctx ends, Do stops
// and returns ctx's cause joined with the last error. Do never panics.
func (p Policy) Do(ctx context.Context, fn func(ctx context.Context, attempt int) error) Outcome {
	return p.DoUntil(ctx, nil, fn)
}

// ErrStopped is joined into DoUntil's error when stop closed before the
// policy was spent: the work is unfinished, not failed.
var ErrStopped = errors.New("stopped before the retry policy was spent")

// DoUntil is Do with a second way to stop, for graceful shutdown: once stop
// is closed, no further attempt starts and a wait between attempts ends at
// once, with ErrStopped joined to the last error; an attempt in flight is
// not interrupted by stop, only by ctx and its timeout. A nil stop never
// closes.
func (p Policy) DoUntil(ctx context.Context, stop <-chan struct{}, fn func(ctx context.Context, attempt int) error) Outcome {
	p = p.Defaults()
	var last error
	for attempt := 1; ; attempt++ {
		if err := context.Cause(ctx); err != nil {
			return Outcome{Attempts: attempt - 1, Err: errors.Join(err, last)}
		}
		select {
		case <-stop:
			return Outcome{Attempts: attempt - 1, Err: errors.Join(ErrStopped, last)}
		default:
		}
		last = Call(ctx, p.Timeout, func(ctx context.Context) error { return fn(ctx, attempt) })
		if last == nil {
			return Outcome{Attempts: attempt}
		}
		if IsPermanent(last) || attempt >= p.Attempts {
			return Outcome{Attempts: attempt, Err: last}
		}
		t := time.NewTimer(p.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return Outcome{Attempts: attempt, Err: errors.Join(context.Cause(ctx), last)}
		case <-stop:
			t.Stop()
			return Outcome{Attempts: attempt, Err: errors.Join(ErrStopped, last)}
		case <-t.C:
		}
	}
}

// Call runs fn once with a context that ends after timeout (no limit when
// timeout <= 0), recovering a panic into a *PanicError and giving up on a
// call that outlives the timeout with a *TimeoutError. fn runs on its own
// goroutine, which ends when fn returns: after a timeout that goroutine may
// still be running, so a plugin that ignores its context can overlap with
// the next attempt and must guard what it shares.
func Call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- &PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		done <- fn(cctx)
	}()
	select {
	case err := <-done:
		if err != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil &&
			errors.Is(err, context.DeadlineExceeded) {
			return &TimeoutError{After: timeout}
		}
		return err
	case <-cctx.Done():
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return &TimeoutError{After: timeout}
	}
}

// Permanent marks err as not worth retrying (a 4xx answer, a key that does
// not exist): Policy.Do stops at it. errors.Is and errors.As see through the
// mark to err. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent: err itself or
// an error it wraps. A joined error (errors.Join, or fmt.Errorf with several
// %w) is permanent only when every one of its parts is, so one permanent
// failure among retryable ones does not stop the retries.
func IsPermanent(err error) bool {
	for err != nil {
		switch e := err.(type) {
		case *permanentError:
			return true
		case interface{ Unwrap() []error }:
			parts := e.Unwrap()
			for _, p := range parts {
				if !IsPermanent(p) {
					return false
				}
			}
			return len(parts) > 0
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return false
		}
	}
	return false
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
