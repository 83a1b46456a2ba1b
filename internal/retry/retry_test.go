package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

// fastPolicy retries quickly (in virtual time) with a long timeout.
var fastPolicy = incident.Policy{Attempts: 3, Timeout: time.Minute, Backoff: time.Second, MaxBackoff: 10 * time.Second}

func TestDoSuccessFirstTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		out := retry.Do(t.Context(), fastPolicy, nil, func(ctx context.Context, attempt int) error {
			calls++
			assert.Equal(t, 1, attempt)
			return nil
		})
		assert.Equal(t, retry.Outcome{Attempts: 1}, out)
		assert.Equal(t, 1, calls)
		assert.Zero(t, time.Since(start), "no wait after a success")
	})
}

func TestDoFailsTwiceThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var attempts []int
		var starts []time.Duration
		out := retry.Do(t.Context(), fastPolicy, nil, func(ctx context.Context, attempt int) error {
			attempts = append(attempts, attempt)
			starts = append(starts, time.Since(start))
			if attempt < 3 {
				return fmt.Errorf("flaky %d", attempt)
			}
			return nil
		})
		require.NoError(t, out.Err)
		assert.Equal(t, 3, out.Attempts)
		assert.Equal(t, []int{1, 2, 3}, attempts)

		// Backoff 1s then 2s, each within ±20%.
		require.Len(t, starts, 3)
		assert.Zero(t, starts[0])
		assertWithin(t, time.Second, starts[1]-starts[0])
		assertWithin(t, 2*time.Second, starts[2]-starts[1])
		assert.Equal(t, starts[2], time.Since(start), "no wait after the success")
	})
}

func TestDoAlwaysFails(t *testing.T) {
	for _, attempts := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := fastPolicy
				p.Attempts = attempts
				errs := make([]error, attempts+1)
				calls := 0
				out := retry.Do(t.Context(), p, nil, func(ctx context.Context, attempt int) error {
					calls++
					errs[attempt] = fmt.Errorf("failure %d", attempt)
					return errs[attempt]
				})
				assert.Equal(t, attempts, out.Attempts)
				assert.Equal(t, attempts, calls)
				assert.Same(t, errs[attempts], out.Err, "Err is the last error")
				assert.False(t, incident.IsPermanent(out.Err))
			})
		})
	}
	t.Run("zero policy makes three attempts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			out := retry.Do(t.Context(), incident.Policy{}, nil, func(context.Context, int) error { return errors.New("no") })
			assert.Equal(t, 3, out.Attempts)
			// Default backoff: 1s then 2s, ±20%.
			assert.GreaterOrEqual(t, time.Since(start), 2400*time.Millisecond)
			assert.LessOrEqual(t, time.Since(start), 3600*time.Millisecond)
		})
	})
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprint("code ", e.code) }

func TestDoPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		orig := &codeError{code: 404}
		start := time.Now()
		calls := 0
		out := retry.Do(t.Context(), fastPolicy, nil, func(context.Context, int) error {
			calls++
			return fmt.Errorf("revoke: %w", incident.Permanent(orig))
		})
		assert.Equal(t, 1, out.Attempts)
		assert.Equal(t, 1, calls)
		assert.True(t, incident.IsPermanent(out.Err))
		assert.ErrorIs(t, out.Err, orig)
		var ce *codeError
		require.ErrorAs(t, out.Err, &ce)
		assert.Equal(t, 404, ce.code)
		assert.Equal(t, "revoke: code 404", out.Err.Error(), "the mark does not change the message")
		assert.Zero(t, time.Since(start))
	})
}

func TestDoPermanentAfterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := retry.Do(t.Context(), fastPolicy, nil, func(_ context.Context, attempt int) error {
			if attempt == 2 {
				return incident.Permanent(errors.New("gone"))
			}
			return errors.New("flaky")
		})
		assert.Equal(t, 2, out.Attempts)
		assert.True(t, incident.IsPermanent(out.Err))
	})
}

func TestDoPanic(t *testing.T) {
	t.Run("recovered and retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := retry.Do(t.Context(), fastPolicy, nil, func(_ context.Context, attempt int) error {
				if attempt < 3 {
					panic(fmt.Sprint("boom ", attempt))
				}
				return nil
			})
			assert.NoError(t, out.Err)
			assert.Equal(t, 3, out.Attempts)
		})
	})
	t.Run("always panics", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := retry.Do(t.Context(), fastPolicy, nil, func(_ context.Context, attempt int) error {
				panicker(attempt)
				return nil
			})
			assert.Equal(t, fastPolicy.Attempts, out.Attempts)
			require.ErrorIs(t, out.Err, incident.ErrPanic)
			var pe *incident.PanicError
			require.ErrorAs(t, out.Err, &pe)
			assert.Equal(t, "boom 3", pe.Value, "the last attempt's panic")
			assert.Equal(t, "plugin panicked: boom 3", pe.Error())
			require.NotEmpty(t, pe.Stack)
			assert.Contains(t, string(pe.Stack), "panicker", "the stack shows where it panicked")
			assert.NotContains(t, pe.Error(), "goroutine", "Error() gives the value only")
		})
	})
	t.Run("panic with an error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sentinel := errors.New("sentinel")
			out := retry.Do(t.Context(), incident.Policy{Attempts: 1}, nil, func(context.Context, int) error {
				panic(fmt.Errorf("wrapped: %w", sentinel))
			})
			assert.ErrorIs(t, out.Err, incident.ErrPanic)
			assert.ErrorIs(t, out.Err, sentinel)
		})
	})
	t.Run("panic(nil)", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := retry.Do(t.Context(), incident.Policy{Attempts: 1}, nil, func(context.Context, int) error {
				panic(nil)
			})
			assert.ErrorIs(t, out.Err, incident.ErrPanic)
		})
	})
}

//go:noinline
func panicker(attempt int) { panic(fmt.Sprint("boom ", attempt)) }

func TestDoTimeoutIgnoringContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release) // lets the abandoned calls end before the bubble does
		p := incident.Policy{Attempts: 2, Timeout: 5 * time.Second, Backoff: time.Second}
		start := time.Now()
		var calls atomic.Int32
		out := retry.Do(t.Context(), p, nil, func(context.Context, int) error {
			calls.Add(1)
			<-release // ignores its context
			return nil
		})
		elapsed := time.Since(start)
		assert.Equal(t, 2, out.Attempts)
		assert.Equal(t, int32(2), calls.Load())
		require.ErrorIs(t, out.Err, incident.ErrTimeout)
		assert.ErrorIs(t, out.Err, context.DeadlineExceeded)
		var te *incident.TimeoutError
		require.ErrorAs(t, out.Err, &te)
		assert.Equal(t, 5*time.Second, te.After)
		assert.Equal(t, "plugin call timed out after 5s", te.Error())
		// Two timeouts and one backoff of 1s ±20%.
		assert.GreaterOrEqual(t, elapsed, 10*time.Second+800*time.Millisecond)
		assert.LessOrEqual(t, elapsed, 11*time.Second+200*time.Millisecond)
	})
}

func TestDoTimeoutHonouringContext(t *testing.T) {
	for _, name := range []string{"returns ctx.Err", "wraps ctx.Err", "returns context.Cause"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := incident.Policy{Attempts: 1, Timeout: 3 * time.Second}
				start := time.Now()
				out := retry.Do(t.Context(), p, nil, func(ctx context.Context, _ int) error {
					<-ctx.Done()
					switch name {
					case "wraps ctx.Err":
						return fmt.Errorf("query: %w", ctx.Err())
					case "returns context.Cause":
						return context.Cause(ctx)
					}
					return ctx.Err()
				})
				assert.Equal(t, 3*time.Second, time.Since(start))
				assert.Equal(t, 1, out.Attempts)
				var te *incident.TimeoutError
				require.ErrorAs(t, out.Err, &te, "got %v", out.Err)
				assert.ErrorIs(t, out.Err, incident.ErrTimeout)
				assert.ErrorIs(t, out.Err, context.DeadlineExceeded)
			})
		})
	}
}

func TestDoFreshContextPerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type seen struct {
			attempt  int
			err      error
			deadline time.Duration // from the attempt's start
		}
		// Do does not wait for an attempt that outlived its timeout, so
		// nothing orders attempt 1's writes before attempt 2's: lock.
		var mu sync.Mutex
		var got []seen
		var ctxs []context.Context
		p := incident.Policy{Attempts: 3, Timeout: 2 * time.Second, Backoff: time.Second}
		out := retry.Do(t.Context(), p, nil, func(ctx context.Context, attempt int) error {
			dl, ok := ctx.Deadline()
			assert.True(t, ok, "each attempt has a deadline")
			mu.Lock()
			got = append(got, seen{attempt: attempt, err: ctx.Err(), deadline: time.Until(dl)})
			ctxs = append(ctxs, ctx)
			mu.Unlock()
			if attempt == 1 {
				<-ctx.Done() // attempt 1 runs into its timeout: its context ends
				return ctx.Err()
			}
			if attempt == 2 {
				return errors.New("flaky")
			}
			return nil
		})
		require.NoError(t, out.Err)
		assert.Equal(t, 3, out.Attempts)
		synctest.Wait() // attempt 1's goroutine has ended
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, got, 3)
		for i, s := range got {
			assert.Equal(t, i+1, s.attempt)
			assert.NoError(t, s.err, "attempt %d started with a live context", s.attempt)
			assert.Equal(t, 2*time.Second, s.deadline, "attempt %d gets the full timeout", s.attempt)
		}
		assert.NotSame(t, ctxs[0], ctxs[1])
		for i, ctx := range ctxs {
			assert.Error(t, ctx.Err(), "attempt %d's context is cancelled once the attempt is over", i+1)
		}
	})
}

func TestDoContextValues(t *testing.T) {
	type key struct{}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.WithValue(t.Context(), key{}, "v")
		out := retry.Do(ctx, incident.Policy{Attempts: 1}, nil, func(ctx context.Context, _ int) error {
			assert.Equal(t, "v", ctx.Value(key{}), "attempt contexts derive from the caller's")
			return nil
		})
		assert.NoError(t, out.Err)
	})
}

func TestDoParentCancelledDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := incident.Policy{Attempts: 5, Timeout: time.Minute, Backoff: time.Hour, MaxBackoff: time.Hour}
		fail := errors.New("flaky")
		var calls atomic.Int32
		done := make(chan retry.Outcome)
		go func() {
			done <- retry.Do(ctx, p, nil, func(context.Context, int) error {
				calls.Add(1)
				return fail
			})
		}()
		synctest.Wait() // Do is now waiting out its first backoff
		require.Equal(t, int32(1), calls.Load())
		start := time.Now()
		cancel()
		out := <-done
		assert.Zero(t, time.Since(start), "Do returns at once, not after the backoff")
		assert.Equal(t, 1, out.Attempts)
		assert.Equal(t, int32(1), calls.Load())
		assert.ErrorIs(t, out.Err, context.Canceled)
		assert.ErrorIs(t, out.Err, fail, "the last error is kept")
	})
}

func TestDoParentCancelledDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := incident.Policy{Attempts: 3, Timeout: time.Minute}
		var calls atomic.Int32
		done := make(chan retry.Outcome)
		go func() {
			done <- retry.Do(ctx, p, nil, func(context.Context, int) error {
				calls.Add(1)
				<-release // ignores its context
				return nil
			})
		}()
		synctest.Wait()
		start := time.Now()
		cancel()
		out := <-done
		assert.Zero(t, time.Since(start))
		assert.Equal(t, int32(1), calls.Load())
		assert.Equal(t, 1, out.Attempts)
		assert.ErrorIs(t, out.Err, context.Canceled)
		assert.NotErrorIs(t, out.Err, incident.ErrTimeout)
	})
}

func TestDoParentAlreadyCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		calls := 0
		out := retry.Do(ctx, fastPolicy, nil, func(context.Context, int) error { calls++; return nil })
		assert.Equal(t, 0, out.Attempts)
		assert.Equal(t, 0, calls)
		assert.ErrorIs(t, out.Err, cause)
	})
}

func TestCall(t *testing.T) {
	t.Run("no timeout means no deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := retry.Call(t.Context(), 0, func(ctx context.Context) error {
				_, ok := ctx.Deadline()
				assert.False(t, ok)
				return nil
			})
			assert.NoError(t, err)
		})
	})
	t.Run("returns the error as is", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			want := errors.New("x")
			err := retry.Call(t.Context(), time.Second, func(context.Context) error { return want })
			assert.Same(t, want, err)
		})
	})
	t.Run("own deadline error is not a timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := retry.Call(t.Context(), time.Minute, func(ctx context.Context) error {
				inner, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				<-inner.Done()
				return inner.Err()
			})
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.NotErrorIs(t, err, incident.ErrTimeout, "the call's own shorter deadline is its error")
		})
	})
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			start := time.Now()
			err := retry.Call(t.Context(), 250*time.Millisecond, func(context.Context) error {
				<-release
				return nil
			})
			assert.Equal(t, 250*time.Millisecond, time.Since(start))
			var te *incident.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, 250*time.Millisecond, te.After)
		})
	})
	t.Run("given up on before it started, it never runs", func(t *testing.T) {
		// A person's interruption landing before the call's goroutine
		// runs: once Call has returned, the plugin must not start (a key
		// re-disabled after its dismissal released it).
		synctest.Test(t, func(t *testing.T) {
			for _, timeout := range []time.Duration{0, time.Minute} {
				ctx, cancel := context.WithCancelCause(t.Context())
				cause := errors.New("dismissed")
				cancel(cause)
				var calls atomic.Int32
				err := retry.Call(ctx, timeout, func(context.Context) error {
					calls.Add(1)
					return nil
				})
				assert.ErrorIs(t, err, cause)
				synctest.Wait() // the call's goroutine has done all it will
				assert.Zero(t, calls.Load(), "timeout %v", timeout)
			}
		})
	})
	t.Run("panic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := retry.Call(t.Context(), 0, func(context.Context) error { panic(42) })
			var pe *incident.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 42, pe.Value)
			assert.NoError(t, errors.Unwrap(pe), "a non-error value unwraps to nil")
		})
	})
}

func TestDoStop(t *testing.T) {
	t.Run("a nil stop never closes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := retry.Do(t.Context(), fastPolicy, nil, func(_ context.Context, attempt int) error {
				if attempt < 3 {
					return errors.New("flaky")
				}
				return nil
			})
			assert.Equal(t, retry.Outcome{Attempts: 3}, out)
		})
	})
	t.Run("stopped before the first attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			close(stop)
			calls := 0
			out := retry.Do(t.Context(), fastPolicy, stop, func(context.Context, int) error { calls++; return nil })
			assert.Equal(t, 0, out.Attempts)
			assert.Equal(t, 0, calls)
			assert.ErrorIs(t, out.Err, incident.ErrStopped)
		})
	})
	t.Run("stop ends the wait between attempts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			p := incident.Policy{Attempts: 5, Timeout: time.Minute, Backoff: time.Hour, MaxBackoff: time.Hour}
			fail := errors.New("flaky")
			var calls atomic.Int32
			done := make(chan retry.Outcome)
			go func() {
				done <- retry.Do(t.Context(), p, stop, func(context.Context, int) error { calls.Add(1); return fail })
			}()
			synctest.Wait()
			start := time.Now()
			close(stop)
			out := <-done
			assert.Zero(t, time.Since(start))
			assert.Equal(t, int32(1), calls.Load())
			assert.Equal(t, 1, out.Attempts)
			assert.ErrorIs(t, out.Err, incident.ErrStopped)
			assert.ErrorIs(t, out.Err, fail)
			assert.NotErrorIs(t, out.Err, context.Canceled)
			assert.False(t, incident.IsPermanent(out.Err))
		})
	})
	t.Run("stop does not interrupt an attempt in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			release := make(chan struct{})
			var sawCancel atomic.Bool
			done := make(chan retry.Outcome)
			go func() {
				done <- retry.Do(t.Context(), fastPolicy, stop, func(ctx context.Context, _ int) error {
					<-release
					sawCancel.Store(ctx.Err() != nil)
					return nil
				})
			}()
			synctest.Wait()
			close(stop)
			synctest.Wait()
			select {
			case <-done:
				t.Error("Do returned while the attempt was still running")
			default:
			}
			close(release)
			out := <-done
			assert.Equal(t, retry.Outcome{Attempts: 1}, out, "the attempt in flight completes and counts")
			assert.False(t, sawCancel.Load(), "stop does not cancel the attempt's context")
		})
	})
}

func assertWithin(t *testing.T, base, got time.Duration) {
	t.Helper()
	assert.GreaterOrEqual(t, got, base-base/5)
	assert.LessOrEqual(t, got, base+base/5)
}

// A delay carried by the error (incident.RetryAfter) replaces the backoff,
// even beyond MaxBackoff; one that would end after ctx's deadline is not
// waited for; a permanent error is not retried whatever delay it carries.
func TestDoRetryAfter(t *testing.T) {
	tests := []struct {
		name         string
		timeout      time.Duration // of ctx; 0 for none
		err          error
		wantAttempts int
		wantGaps     []time.Duration
	}{
		{"waits the delay asked for", 0, incident.RetryAfter(errors.New("busy"), 2*time.Minute), 3,
			[]time.Duration{2 * time.Minute, 2 * time.Minute}},
		{"a wrapped mark counts", 0, fmt.Errorf("webhook: %w", incident.RetryAfter(errors.New("busy"), 90*time.Second)), 3,
			[]time.Duration{90 * time.Second, 90 * time.Second}},
		{"not past the deadline", time.Minute, incident.RetryAfter(errors.New("busy"), 2*time.Minute), 1, nil},
		{"permanent wins", 0, incident.Permanent(incident.RetryAfter(errors.New("gone"), time.Second)), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				var starts []time.Time
				begin := time.Now()
				out := retry.Do(ctx, fastPolicy, nil, func(context.Context, int) error {
					starts = append(starts, time.Now())
					return tt.err
				})
				assert.Equal(t, tt.wantAttempts, out.Attempts)
				assert.ErrorIs(t, out.Err, tt.err)
				assert.NotErrorIs(t, out.Err, context.DeadlineExceeded, "it gave up, it was not cut")
				var gaps []time.Duration
				for i := 1; i < len(starts); i++ {
					gaps = append(gaps, starts[i].Sub(starts[i-1]))
				}
				assert.Equal(t, tt.wantGaps, gaps)
				if tt.wantGaps == nil {
					assert.Zero(t, time.Since(begin), "no wait that could not lead to an attempt")
				}
			})
		})
	}
}
