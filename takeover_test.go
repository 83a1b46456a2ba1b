package breach_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// lateLeaseStore is a leasing MemStore whose next Lease by owner, once armed,
// takes the lease and then fails: with a panic, or with an error (the
// answer lost after the write landed, as a timeout would lose it).
type lateLeaseStore struct {
	*incident.MemStore
	owner string
	mode  string // "panic" or "err"
	armed atomic.Bool
	fired atomic.Int64
}

func (s *lateLeaseStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	ok, err := s.MemStore.Lease(ctx, id, owner, ttl)
	if owner == s.owner && s.armed.CompareAndSwap(true, false) {
		s.fired.Add(1)
		if s.mode == "panic" {
			panic("lease: driver bug after COMMIT")
		}
		return false, errors.New("lease: connection reset after COMMIT")
	}
	return ok, err
}

// TestTakeOverWhoseLeaseLandsButFails: an orphaned incident (opened by a
// replica that only reports) is taken over by replica b, whose Lease lands
// in the store but fails on the way back (panic, or an error). b's Renew
// keeps extending the lease it does not know it holds, so the incident is
// never an orphan again: it must still be driven.
func TestTakeOverWhoseLeaseLandsButFails(t *testing.T) {
	for _, mode := range []string{"panic", "err"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &lateLeaseStore{MemStore: incident.NewMemStore(), owner: "b", mode: mode}
				pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
				b := leasedReplica(t, s, "b", 3*time.Second, pb)
				running(t, b)
				synctest.Wait() // b's Run has resumed (nothing open yet)

				reporter, err := breach.New(s, breach.WithLease("reporter", 3*time.Second), quiet, breach.WithPlaybook(pb))
				require.NoError(t, err)
				s.armed.Store(true)
				rc, err := reporter.Report(context.Background(), leak()) // opened, unleased: an orphan
				require.NoError(t, err)

				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				_, err = b.Await(ctx, rc.IncidentID, func(inc *incident.Incident) bool { return inc.State == incident.StateResolving })
				h, _ := s.MemStore.Head(context.Background(), rc.IncidentID)
				orphans, _ := s.MemStore.Orphans(context.Background(), 0)
				require.NoError(t, err, "after 10 minutes the incident is still %s (late lease fired %d time(s); orphans now %v)",
					h.State, s.fired.Load(), orphans)
			})
		})
	}
}
