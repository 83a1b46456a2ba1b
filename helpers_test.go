package breach_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// Helpers of the engine regression tests (interrupt, isolation, counts,
// clocks, observer, storm).

// returnsWithin calls fn on a goroutine of its own and reports whether it
// returned within d; inside a synctest bubble d is on the bubble's clock.
// When fn does not return in time, the caller must unblock it before the
// test ends.
func returnsWithin(t *testing.T, d time.Duration, fn func() error) (returned bool, wait func() error, err error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return true, func() error { return err }, err
	case <-time.After(d):
		return false, func() error { return <-done }, nil
	}
}

// customers returns n affected customers, acct_000 to acct_<n-1>.
func customers(n int) []incident.Customer {
	out := make([]incident.Customer, n)
	for i := range out {
		out[i] = incident.Customer{ID: fmt.Sprintf("acct_%03d", i), Email: fmt.Sprintf("sec%03d@example.com", i)}
	}
	return out
}

// gate is a plugin call that, after its first free calls, blocks until
// released, ignoring its context: the worst a host plugin can do.
type gate struct {
	mu       sync.Mutex
	free     int // calls that return at once
	calls    int // calls started
	returned int // calls that returned
	open     chan struct{}
	once     sync.Once
}

func newGate(free int) *gate { return &gate{free: free, open: make(chan struct{})} }

// pass is the plugin call; it reports the number of the call.
func (g *gate) pass() int {
	g.mu.Lock()
	g.calls++
	n := g.calls
	g.mu.Unlock()
	if n > g.free {
		<-g.open
	}
	g.mu.Lock()
	g.returned++
	g.mu.Unlock()
	return n
}

// release lets every call through, now and later; it may be called again.
func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) counts() (calls, returned int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.returned
}

func (g *gate) notifier() notify.Notifier {
	return notify.Func(func(ctx context.Context, m notify.Message) error {
		g.pass()
		return nil
	})
}

// gatedContainer contains through g and releases at once.
type gatedContainer struct {
	g        *gate
	mu       sync.Mutex
	released []containment.Request
}

func (c *gatedContainer) Contain(ctx context.Context, req containment.Request) error {
	c.g.pass()
	return nil
}

func (c *gatedContainer) Release(ctx context.Context, req containment.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = append(c.released, req)
	return nil
}

func (c *gatedContainer) releases() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.released)
}

// outreachCounts is inc's Outreach without its cursor: the counts alone.
func outreachCounts(inc *incident.Incident) incident.Outreach {
	o := inc.Outreach
	o.Cursor, o.ClaimedAt = "", time.Time{}
	return o
}

// outreachOf is inc's Outreach without its claim time.
func outreachOf(inc *incident.Incident) incident.Outreach {
	o := inc.Outreach
	o.ClaimedAt = time.Time{}
	return o
}

// deliveryEntries returns the details of inc's delivery entries, in order:
// one per channel per batch of notices.
func deliveryEntries(inc *incident.Incident) []string {
	var out []string
	for _, e := range inc.Timeline {
		if e.Type == incident.EntryDelivery {
			out = append(out, e.Detail)
		}
	}
	return out
}

// deliveryCounts counts an incident's deliveries by status.
func deliveryCounts(inc *incident.Incident) map[incident.DeliveryStatus]int {
	out := map[incident.DeliveryStatus]int{}
	for _, d := range inc.Deliveries {
		out[d.Status]++
	}
	return out
}
