package incident_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

func TestPolicyDefaults(t *testing.T) {
	def := incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Second, MaxBackoff: 30 * time.Second}
	tests := []struct {
		name string
		in   incident.Policy
		want incident.Policy
	}{
		{"zero", incident.Policy{}, def},
		{"negative", incident.Policy{Attempts: -1, Timeout: -1, Backoff: -1, MaxBackoff: -1}, def},
		{"explicit kept", incident.Policy{Attempts: 1, Timeout: time.Second, Backoff: time.Millisecond, MaxBackoff: time.Minute},
			incident.Policy{Attempts: 1, Timeout: time.Second, Backoff: time.Millisecond, MaxBackoff: time.Minute}},
		{"partial", incident.Policy{Attempts: 7},
			incident.Policy{Attempts: 7, Timeout: 30 * time.Second, Backoff: time.Second, MaxBackoff: 30 * time.Second}},
		{"MaxBackoff raised to Backoff", incident.Policy{Backoff: time.Minute, MaxBackoff: time.Second},
			incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Minute, MaxBackoff: time.Minute}},
		{"large Backoff, default MaxBackoff", incident.Policy{Backoff: time.Hour},
			incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Hour, MaxBackoff: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Defaults()
			assert.Equal(t, tt.want, got)
			assert.Equal(t, got, got.Defaults(), "idempotent")
		})
	}
}

// fastPolicy retries quickly (in virtual time) with a long timeout.
var fastPolicy = incident.Policy{Attempts: 3, Timeout: time.Minute, Backoff: time.Second, MaxBackoff: 10 * time.Second}

func TestDoSuccessFirstTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		out := fastPolicy.Do(t.Context(), func(ctx context.Context, attempt int) error {
			calls++
			assert.Equal(t, 1, attempt)
			return nil
		})
		assert.Equal(t, incident.Outcome{Attempts: 1}, out)
		assert.Equal(t, 1, calls)
		assert.Zero(t, time.Since(start), "no wait after a success")
	})
}

func TestDoFailsTwiceThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var attempts []int
		var starts []time.Duration
		out := fastPolicy.Do(t.Context(), func(ctx context.Context, attempt int) error {
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

// assertWithin checks that got is base ±20%.
func assertWithin(t *testing.T, base, got time.Duration) {
	t.Helper()
	assert.GreaterOrEqual(t, got, base-base/5, "want %v ±20%%", base)
	assert.LessOrEqual(t, got, base+base/5, "want %v ±20%%", base)
}

func TestDoAlwaysFails(t *testing.T) {
	for _, attempts := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := fastPolicy
				p.Attempts = attempts
				errs := make([]error, attempts+1)
				calls := 0
				out := p.Do(t.Context(), func(ctx context.Context, attempt int) error {
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
			out := incident.Policy{}.Do(t.Context(), func(context.Context, int) error { return errors.New("no") })
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
		out := fastPolicy.Do(t.Context(), func(context.Context, int) error {
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
		out := fastPolicy.Do(t.Context(), func(_ context.Context, attempt int) error {
			if attempt == 2 {
				return incident.Permanent(errors.New("gone"))
			}
			return errors.New("flaky")
		})
		assert.Equal(t, 2, out.Attempts)
		assert.True(t, incident.IsPermanent(out.Err))
	})
}

func TestPermanent(t *testing.T) {
	assert.NoError(t, incident.Permanent(nil))
	assert.False(t, incident.IsPermanent(nil))
	base := errors.New("base")
	assert.False(t, incident.IsPermanent(base))
	p := incident.Permanent(base)
	assert.True(t, incident.IsPermanent(p))
	assert.ErrorIs(t, p, base)
	assert.Equal(t, "base", p.Error())
	assert.True(t, incident.IsPermanent(fmt.Errorf("wrapped: %w", p)))
	assert.True(t, incident.IsPermanent(fmt.Errorf("a: %w", fmt.Errorf("b: %w", p))))

	// A joined error is permanent only when every part is.
	p2 := incident.Permanent(errors.New("other"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"join of permanents", errors.Join(p, p2), true},
		{"join with a retryable part", errors.Join(errors.New("x"), p), false},
		{"join with nil parts", errors.Join(nil, p, nil), true},
		{"multi %w all permanent", fmt.Errorf("%w; %w", p, p2), true},
		{"multi %w mixed", fmt.Errorf("%w; %w", p, base), false},
		{"wrapped join", fmt.Errorf("outer: %w", errors.Join(p, p2)), true},
		{"permanent wrapping a join", incident.Permanent(errors.Join(base, base)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, incident.IsPermanent(tt.err))
		})
	}
}

func TestDoPanic(t *testing.T) {
	t.Run("recovered and retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := fastPolicy.Do(t.Context(), func(_ context.Context, attempt int) error {
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
			out := fastPolicy.Do(t.Context(), func(_ context.Context, attempt int) error {
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
			out := incident.Policy{Attempts: 1}.Do(t.Context(), func(context.Context, int) error {
				panic(fmt.Errorf("wrapped: %w", sentinel))
			})
			assert.ErrorIs(t, out.Err, incident.ErrPanic)
			assert.ErrorIs(t, out.Err, sentinel)
		})
	})
	t.Run("panic(nil)", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := incident.Policy{Attempts: 1}.Do(t.Context(), func(context.Context, int) error {
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
		out := p.Do(t.Context(), func(context.Context, int) error {
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
				out := p.Do(t.Context(), func(ctx context.Context, _ int) error {
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
		out := p.Do(t.Context(), func(ctx context.Context, attempt int) error {
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
		out := incident.Policy{Attempts: 1}.Do(ctx, func(ctx context.Context, _ int) error {
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
		done := make(chan incident.Outcome)
		go func() {
			done <- p.Do(ctx, func(context.Context, int) error {
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
		done := make(chan incident.Outcome)
		go func() {
			done <- p.Do(ctx, func(context.Context, int) error {
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
		out := fastPolicy.Do(ctx, func(context.Context, int) error { calls++; return nil })
		assert.Equal(t, 0, out.Attempts)
		assert.Equal(t, 0, calls)
		assert.ErrorIs(t, out.Err, cause)
	})
}

func TestCall(t *testing.T) {
	t.Run("no timeout means no deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := incident.Call(t.Context(), 0, func(ctx context.Context) error {
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
			err := incident.Call(t.Context(), time.Second, func(context.Context) error { return want })
			assert.Same(t, want, err)
		})
	})
	t.Run("own deadline error is not a timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := incident.Call(t.Context(), time.Minute, func(ctx context.Context) error {
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
			err := incident.Call(t.Context(), 250*time.Millisecond, func(context.Context) error {
				<-release
				return nil
			})
			assert.Equal(t, 250*time.Millisecond, time.Since(start))
			var te *incident.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, 250*time.Millisecond, te.After)
		})
	})
	t.Run("panic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := incident.Call(t.Context(), 0, func(context.Context) error { panic(42) })
			var pe *incident.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 42, pe.Value)
			assert.NoError(t, errors.Unwrap(pe), "a non-error value unwraps to nil")
		})
	})
}

func TestDelay(t *testing.T) {
	p := incident.Policy{Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	bases := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	const samples = 2000
	for i, b := range bases {
		base := b * time.Millisecond
		n := i + 1
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			distinct := map[time.Duration]bool{}
			for range samples {
				d := p.Delay(n)
				lo, hi = min(lo, d), max(hi, d)
				distinct[d] = true
			}
			assert.GreaterOrEqual(t, lo, base-base/5, "min %v for base %v", lo, base)
			assert.LessOrEqual(t, hi, base+base/5, "max %v for base %v", hi, base)
			// Jitter spreads the delays over most of the ±20% band.
			assert.Less(t, lo, base-base/10, "jitter reaches below -10%%")
			assert.Greater(t, hi, base+base/10, "jitter reaches above +10%%")
			assert.Greater(t, len(distinct), samples/2)
		})
	}
	t.Run("capped for large n", func(t *testing.T) {
		for _, n := range []int{9, 20, 64, 65, 1000, math.MaxInt} {
			for range 200 {
				d := p.Delay(n)
				assert.GreaterOrEqual(t, d, p.MaxBackoff-p.MaxBackoff/5, "n=%d", n)
				assert.LessOrEqual(t, d, p.MaxBackoff+p.MaxBackoff/5, "n=%d", n)
			}
		}
	})
	t.Run("n below 1 is the first delay", func(t *testing.T) {
		for _, n := range []int{0, -1} {
			d := p.Delay(n)
			assert.GreaterOrEqual(t, d, 80*time.Millisecond)
			assert.LessOrEqual(t, d, 120*time.Millisecond)
		}
	})
	t.Run("zero policy", func(t *testing.T) {
		for range 200 {
			assertWithin(t, time.Second, incident.Policy{}.Delay(1))
			assertWithin(t, 30*time.Second, incident.Policy{}.Delay(10))
		}
	})
	t.Run("uncapped MaxBackoff does not overflow", func(t *testing.T) {
		// Regression: doubling past 2^63ns wrapped negative and Delay
		// panicked in rand.Int64N.
		uncapped := incident.Policy{Backoff: time.Second, MaxBackoff: math.MaxInt64}
		prev := time.Duration(0)
		for n := 1; n <= 200; n++ {
			var d time.Duration
			require.NotPanics(t, func() { d = uncapped.Delay(n) }, "n=%d", n)
			assert.Positive(t, d, "n=%d", n)
			assert.GreaterOrEqual(t, d, prev*8/12, "n=%d: does not shrink beyond jitter", n) // 0.8/1.2
			prev = d
		}
	})
	t.Run("tiny backoff", func(t *testing.T) {
		assert.Equal(t, time.Nanosecond, incident.Policy{Backoff: 1, MaxBackoff: 1}.Delay(5))
	})
}

func TestPanicErrorUnwrapStops(t *testing.T) {
	pe := &incident.PanicError{Value: "x"}
	assert.NotErrorIs(t, pe, incident.ErrTimeout)
	assert.ErrorIs(t, pe, incident.ErrPanic)
	assert.True(t, strings.HasPrefix(pe.Error(), "plugin panicked: "))
}

func TestDoUntil(t *testing.T) {
	t.Run("nil stop behaves like Do", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := fastPolicy.DoUntil(t.Context(), nil, func(_ context.Context, attempt int) error {
				if attempt < 3 {
					return errors.New("flaky")
				}
				return nil
			})
			assert.Equal(t, incident.Outcome{Attempts: 3}, out)
		})
	})
	t.Run("stopped before the first attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := make(chan struct{})
			close(stop)
			calls := 0
			out := fastPolicy.DoUntil(t.Context(), stop, func(context.Context, int) error { calls++; return nil })
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
			done := make(chan incident.Outcome)
			go func() {
				done <- p.DoUntil(t.Context(), stop, func(context.Context, int) error { calls.Add(1); return fail })
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
			done := make(chan incident.Outcome)
			go func() {
				done <- fastPolicy.DoUntil(t.Context(), stop, func(ctx context.Context, _ int) error {
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
				t.Error("DoUntil returned while the attempt was still running")
			default:
			}
			close(release)
			out := <-done
			assert.Equal(t, incident.Outcome{Attempts: 1}, out, "the attempt in flight completes and counts")
			assert.False(t, sawCancel.Load(), "stop does not cancel the attempt's context")
		})
	})
}
