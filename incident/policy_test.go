package incident_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
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

// assertWithin checks that got is base ±20%.
func assertWithin(t *testing.T, base, got time.Duration) {
	t.Helper()
	assert.GreaterOrEqual(t, got, base-base/5, "want %v ±20%%", base)
	assert.LessOrEqual(t, got, base+base/5, "want %v ±20%%", base)
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

func TestRetryAfter(t *testing.T) {
	base := errors.New("503")
	marked := incident.RetryAfter(base, 2*time.Minute)
	assert.NoError(t, incident.RetryAfter(nil, time.Second))
	assert.Same(t, base, incident.RetryAfter(base, 0), "no delay, no mark")
	assert.Same(t, base, incident.RetryAfter(base, -time.Second))
	assert.ErrorIs(t, marked, base)
	assert.Equal(t, "503", marked.Error(), "the mark does not change the message")
	assert.False(t, incident.IsPermanent(marked))

	other := incident.RetryAfter(errors.New("429"), 10*time.Second)
	tests := []struct {
		name  string
		err   error
		want  time.Duration
		found bool
	}{
		{"nil", nil, 0, false},
		{"unmarked", base, 0, false},
		{"marked", marked, 2 * time.Minute, true},
		{"wrapped", fmt.Errorf("webhook: %w", marked), 2 * time.Minute, true},
		{"joined: the longest", errors.Join(other, errors.New("x"), marked), 2 * time.Minute, true},
		{"joined without a mark", errors.Join(base, errors.New("x")), 0, false},
		{"multi %w", fmt.Errorf("%w; %w", other, base), 10 * time.Second, true},
		{"permanent keeps the delay readable", incident.Permanent(marked), 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := incident.RetryDelay(tt.err)
			assert.Equal(t, tt.found, ok)
			assert.Equal(t, tt.want, d)
		})
	}
}
