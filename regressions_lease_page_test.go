package breach_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// TestReopenedIncidentPagesCustomersFromTheStore: after a reopen, the
// store holds the first life's customers first; the notify step reads its
// pages from the store and every customer of the new findings is notified
// once.
func TestReopenedIncidentPagesCustomersFromTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		inv := incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
			if calls.Add(1) == 1 {
				return incident.Findings{Impact: incident.Impact{Customers: []incident.Customer{{ID: "y"}}}}, nil // no data: no notice
			}
			return incident.Findings{Impact: incident.Impact{Customers: []incident.Customer{{ID: "z"}, {ID: "y"}},
				Data: []incident.DataCategory{incident.DataAPIAccess}}}, nil
		})
		var mu sync.Mutex
		sent := map[string]int{}
		n := notify.Func(func(_ context.Context, m notify.Message) error {
			mu.Lock()
			sent[m.Recipient.ID]++
			mu.Unlock()
			return nil
		})
		pb := breach.Playbook{Kind: "apikey.compromised", Investigator: inv, AutoResolve: true,
			Notifiers: []notify.Route{{Channel: "email", Notifier: n}}}
		o, err := breach.New(incident.NewMemStore(), quiet, breach.WithPlaybook(pb), breach.WithDelivery(1, 1))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, o, rc.IncidentID, incident.StateResolved)
		require.NoError(t, o.Reopen(context.Background(), rc.IncidentID, "alice", "more found"))
		h := await(t, o, rc.IncidentID, incident.StateResolved, incident.StateEscalated)
		assert.Equal(t, incident.StateResolved, h.State)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, map[string]int{"y": 1, "z": 1}, sent)
	})
}

// TestLeaseOnAnEndedIncidentIsGivenUp: a person's Close makes a worker
// drive the ended incident, taking a lease to do so; that lease is given
// up, so that once the incident is reopened on another replica, that
// replica drives it.
func TestLeaseOnAnEndedIncidentIsGivenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		store := incident.NewMemStore()
		pb := breach.Playbook{Kind: "apikey.compromised", Investigator: impactInvestigator(incident.Impact{}), AutoResolve: true}
		replica := func(name string) *breach.Orchestrator {
			return leasedReplica(t, store, name, ttl, pb)
		}
		a := replica("a")
		stopA := running(t, a)
		defer stopA()
		rc, err := a.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, a, rc.IncidentID, incident.StateResolved)
		require.NoError(t, a.Close(context.Background(), rc.IncidentID, "alice", "reviewed"))
		time.Sleep(10 * ttl)
		synctest.Wait()
		got, err := store.Lease(context.Background(), rc.IncidentID, "probe", ttl)
		require.NoError(t, err)
		require.True(t, got, "nobody holds a lease on the closed incident")
		require.NoError(t, store.Unlease(context.Background(), rc.IncidentID, "probe"))

		b := replica("b")
		stopB := running(t, b)
		defer stopB()
		require.NoError(t, b.Reopen(context.Background(), rc.IncidentID, "alice", "again"))
		h := await(t, b, rc.IncidentID, incident.StateResolved)
		assert.Equal(t, incident.StateResolved, h.State, "the reopened incident is driven")
	})
}
