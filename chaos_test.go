package breach_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// chaos decides, call by call, whether a plugin fails (30%), panics (1%),
// hangs until its context ends (1%) or works. It is seeded, so a failing
// run can be replayed.
type chaos struct {
	mu    sync.Mutex
	rnd   *rand.Rand
	calls map[string]int
}

func newChaos(seed uint64) *chaos {
	return &chaos{rnd: rand.New(rand.NewPCG(seed, seed)), calls: map[string]int{}}
}

func (c *chaos) call(ctx context.Context, what string) error {
	c.mu.Lock()
	c.calls[what]++
	roll := c.rnd.IntN(100)
	c.mu.Unlock()
	switch {
	case roll < 1:
		panic("chaos: " + what + " panicked")
	case roll < 2:
		<-ctx.Done()
		return ctx.Err()
	case roll < 32:
		return errors.New("chaos: " + what + " failed")
	}
	return nil
}

// TestChaos drives 1,000 incidents through plugins that fail, panic and
// hang at random: every incident ends closed, dismissed or escalated, none
// is stuck and none is lost.
func TestChaos(t *testing.T) {
	const n = 1000
	synctest.Test(t, func(t *testing.T) {
		c := newChaos(20261129)
		policy := incident.Policy{Attempts: 3, Timeout: 10 * time.Second, Backoff: time.Second}
		container := func(name string) containment.Container {
			return &chaosContainer{c: c, name: name}
		}
		pb := breach.Playbook{
			Kind:     "apikey.compromised",
			Strategy: breach.ContainFirst,
			Containment: []containment.Action{
				{Name: "disable-key", Container: container("disable-key"), Policy: policy},
				{Name: "block-addresses", Container: container("block-addresses"), Policy: policy},
			},
			Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
				if err := c.call(ctx, "investigate"); err != nil {
					return incident.Findings{}, err
				}
				return incident.Findings{Impact: incident.Impact{
					Customers: []incident.Customer{{ID: "acct_" + inc.Subject}},
					Data:      []incident.DataCategory{incident.DataAPIAccess},
				}}, nil
			}),
			Investigation: policy,
			Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
				return c.call(ctx, "notify")
			})}},
			Delivery:    policy,
			AutoResolve: true,
			AutoClose:   true,
		}
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithConcurrency(16),
			breach.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()

		ids := make([]string, n)
		for i := range n {
			sig := leak()
			sig.Subject = fmt.Sprintf("key_%04d", i)
			rc, err := o.Report(ctx, sig)
			require.NoError(t, err)
			require.True(t, rc.Opened)
			ids[i] = rc.IncidentID
		}
		time.Sleep(time.Hour) // virtual: every retry, backoff and timeout plays out
		synctest.Wait()

		// People dismiss half of the escalated incidents as false positives.
		dismissed := 0
		for i, id := range ids {
			inc, err := store.Head(ctx, id)
			require.NoError(t, err)
			if inc.State == incident.StateEscalated && i%2 == 0 {
				_ = o.Dismiss(ctx, id, "carol", "false positive") // release failures are recorded; it is dismissed anyway
				dismissed++
			}
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)

		states := map[incident.State]int{}
		for _, id := range ids {
			inc, err := incident.Load(context.Background(), store, id)
			require.NoError(t, err, "no incident is lost")
			states[inc.State]++
			require.NoError(t, inc.Timeline.Verify())
			switch inc.State {
			case incident.StateClosed:
				assert.Len(t, inc.Deliveries, 1)
				assert.Equal(t, incident.DeliverySent, inc.Deliveries[0].Status)
			case incident.StateEscalated:
				require.NotNil(t, inc.Escalation)
				assert.NotEmpty(t, inc.Escalation.Reason)
			case incident.StateDismissed:
			default:
				t.Errorf("incident %s stuck in %s", id, inc.State)
			}
		}
		assert.Equal(t, n, states[incident.StateClosed]+states[incident.StateEscalated]+states[incident.StateDismissed])
		assert.Equal(t, dismissed, states[incident.StateDismissed])
		assert.Greater(t, states[incident.StateClosed], n/2, "most incidents get through on retries")
		assert.Positive(t, states[incident.StateEscalated]+states[incident.StateDismissed], "some exhaust their retries")
		c.mu.Lock()
		t.Logf("end states %v; plugin calls %v", states, c.calls)
		c.mu.Unlock()
	})
}

type chaosContainer struct {
	c    *chaos
	name string
}

func (cc *chaosContainer) Contain(ctx context.Context, req containment.Request) error {
	return cc.c.call(ctx, "contain")
}

func (cc *chaosContainer) Release(ctx context.Context, req containment.Request) error {
	return cc.c.call(ctx, "release")
}

// TestRunLeavesNoGoroutine checks, after Run returns, that every goroutine
// it started has ended: the count is back to what it was before. (Every
// synctest test also fails if a goroutine stays blocked when it ends.)
func TestRunLeavesNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		before := runtime.NumGoroutine()
		f := &fakes{}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))),
			breach.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ch := make(chan incident.Signal, 10)
		for i := range 10 {
			s := leak()
			s.Subject = fmt.Sprintf("key_%d", i)
			ch <- s
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx, incident.ChanDetector(ch, nil)) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Greater(t, runtime.NumGoroutine(), before, "Run has workers while it runs")
		assert.NotEmpty(t, bubbleGoroutines(), "Run has workers while it runs")
		cancel()
		require.NoError(t, <-done)
		synctest.Wait()
		// runtime.NumGoroutine counts the whole process, where timers of
		// earlier tests may start goroutines: count this bubble's alone.
		assert.Empty(t, bubbleGoroutines(), "Run left goroutines behind")
	})
}

// bubbleGoroutines returns the stacks of the goroutines of the calling
// goroutine's synctest bubble that run the library's code, the caller
// excepted.
func bubbleGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "synctest bubble") && !strings.Contains(header, "[running") && strings.Contains(g, "breachkit/breach.") {
			out = append(out, g)
		}
	}
	return out
}
