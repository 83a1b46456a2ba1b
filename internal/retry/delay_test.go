package retry_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

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
				d := retry.Delay(p, n)
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
				d := retry.Delay(p, n)
				assert.GreaterOrEqual(t, d, p.MaxBackoff-p.MaxBackoff/5, "n=%d", n)
				assert.LessOrEqual(t, d, p.MaxBackoff+p.MaxBackoff/5, "n=%d", n)
			}
		}
	})
	t.Run("n below 1 is the first delay", func(t *testing.T) {
		for _, n := range []int{0, -1} {
			d := retry.Delay(p, n)
			assert.GreaterOrEqual(t, d, 80*time.Millisecond)
			assert.LessOrEqual(t, d, 120*time.Millisecond)
		}
	})
	t.Run("zero policy", func(t *testing.T) {
		for range 200 {
			assertWithin(t, time.Second, retry.Delay(incident.Policy{}, 1))
			assertWithin(t, 30*time.Second, retry.Delay(incident.Policy{}, 10))
		}
	})
	t.Run("uncapped MaxBackoff does not overflow", func(t *testing.T) {
		// Regression: doubling past 2^63ns wrapped negative and Delay
		// panicked in rand.Int64N.
		uncapped := incident.Policy{Backoff: time.Second, MaxBackoff: math.MaxInt64}
		prev := time.Duration(0)
		for n := 1; n <= 200; n++ {
			var d time.Duration
			require.NotPanics(t, func() { d = retry.Delay(uncapped, n) }, "n=%d", n)
			assert.Positive(t, d, "n=%d", n)
			assert.GreaterOrEqual(t, d, prev*8/12, "n=%d: does not shrink beyond jitter", n) // 0.8/1.2
			prev = d
		}
	})
	t.Run("tiny backoff", func(t *testing.T) {
		assert.Equal(t, time.Nanosecond, retry.Delay(incident.Policy{Backoff: 1, MaxBackoff: 1}, 5))
	})
}
