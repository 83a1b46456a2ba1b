package retry

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/breachkit/breach/incident"
)

// Delay returns the jittered wait of policy p after failed attempt n (1
// for the first), as incident.Policy documents it.
func Delay(p incident.Policy, n int) time.Duration {
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
