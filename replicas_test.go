package breach_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// TestReplicasShareAStore runs two orchestrators on one store: one drives
// an incident with many deliveries while the other keeps reporting signals
// for it (its flushes conflict with the driver's writes). The incident
// ends closed with every notice sent once; -race watches the driver.
func TestReplicasShareAStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		var mu sync.Mutex
		sent := map[string]int{}
		slow := notify.Func(func(ctx context.Context, m notify.Message) error {
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			sent[m.IncidentID+"/"+m.IdempotencyKey]++
			mu.Unlock()
			return nil
		})
		pb := breach.Playbook{
			Kind: "apikey.compromised",
			Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
				var cs []incident.Customer
				for i := range 8 {
					cs = append(cs, incident.Customer{ID: fmt.Sprint("acct_", i)})
				}
				return incident.Findings{Impact: incident.Impact{Customers: cs, Data: []incident.DataCategory{incident.DataAPIAccess}}}, nil
			}),
			Notifiers:   []notify.Route{{Channel: "email", Notifier: slow}, {Channel: "webhook", Notifier: slow}},
			AutoResolve: true, AutoClose: true,
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		replica := func(name string) *breach.Orchestrator {
			o, err := breach.New(store, breach.WithLease(name, 3*time.Second), breach.WithFlushInterval(time.Millisecond),
				breach.WithLogger(slog.New(slog.DiscardHandler)), breach.WithPlaybook(pb))
			require.NoError(t, err)
			wg.Go(func() { assert.NoError(t, o.Run(ctx)) })
			return o
		}
		a, b := replica("a"), replica("b")
		sig := leak()
		sig.Credential = incident.Secret{}
		rc, err := a.Report(ctx, sig)
		require.NoError(t, err)
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = b.Report(ctx, sig)
				time.Sleep(100 * time.Microsecond)
			}
		})
		// Bounded: b's reports keep the bubble's clock moving, so an
		// incident that never ends would keep Await waiting for ever.
		actx, acancel := context.WithTimeout(ctx, time.Minute)
		inc, err := a.Await(actx, rc.IncidentID, func(inc *incident.Incident) bool {
			return !inc.State.Open() || inc.State == incident.StateEscalated
		})
		acancel()
		close(stop)
		if err != nil {
			cancel()
			wg.Wait()
		}
		require.NoError(t, err, "the incident never ended")
		time.Sleep(10 * time.Second) // virtual: let b's last flush and resume run
		synctest.Wait()

		assert.Equal(t, incident.StateClosed, inc.State)
		assert.Len(t, inc.Deliveries, 16)
		assert.Equal(t, incident.Outreach{Sent: 16}, outreachCounts(inc))
		for _, d := range inc.Deliveries {
			assert.Equal(t, incident.DeliverySent, d.Status, "notice %s", d.IdempotencyKey)
		}
		mu.Lock()
		mine := 0
		for k := range sent {
			if strings.HasPrefix(k, rc.IncidentID+"/") {
				mine++
			}
		}
		assert.Equal(t, 16, mine, "every notice of the incident under its own key")
		mu.Unlock()
		assert.NoError(t, inc.Timeline.Verify())

		cancel()
		wg.Wait()
	})
}
