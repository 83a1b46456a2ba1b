package breach_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// slowStore is a MemStore whose every write takes d, so that every step
// (each writes) takes at least d; it tells when watch is first written.
type slowStore struct {
	*incident.MemStore
	d       time.Duration
	watch   string
	once    sync.Once
	written chan time.Time
}

func (s *slowStore) Apply(ctx context.Context, ch incident.Change) error {
	time.Sleep(s.d) // slow work, on the bubble's clock
	err := s.MemStore.Apply(ctx, ch)
	if err == nil && ch.Head.ID == s.watch {
		s.once.Do(func() { s.written <- time.Now() })
	}
	return err
}

func storedIncident(id, kind string, at time.Time) *incident.Incident {
	return &incident.Incident{ID: id, Kind: kind, Subject: id, DedupKey: kind + "/" + id, Severity: incident.SeverityHigh,
		State: incident.StateDetected, DetectedAt: at, UpdatedAt: at}
}

// TestDeadReplicaTakenOverWithinTwoTTLs: incident X is leased by a replica
// that died; 300 other open incidents wait in the queue, each step taking
// 50ms, with one worker. X is taken over within two lease TTLs of the dead
// lease's expiry, not after the whole queue (300 incidents of five steps:
// 75s), whether it is resumed before the 300 others or after them.
func TestDeadReplicaTakenOverWithinTwoTTLs(t *testing.T) {
	for _, place := range []string{"first", "last"} {
		t.Run("X queued "+place, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const ttl, others, step = 2 * time.Second, 300, 50 * time.Millisecond
				ctx := context.Background()
				mem := incident.NewMemStore()
				const kind = "queue.item"
				now := time.Now()
				xAt := now.Add(-time.Hour) // oldest: resumed first
				if place == "last" {
					xAt = now.Add(time.Hour) // newest: resumed after the 300 others
				}
				require.NoError(t, mem.Create(ctx, incident.Split(storedIncident("inc_x", kind, xAt))))
				for i := range others {
					require.NoError(t, mem.Create(ctx, incident.Split(storedIncident(fmt.Sprintf("inc_%03d", i), kind, now.Add(-time.Duration(others-i)*time.Second)))))
				}
				ok, err := mem.Lease(ctx, "inc_x", "dead-replica", ttl)
				require.NoError(t, err)
				require.True(t, ok)
				expiry := time.Now().Add(ttl)

				ss := &slowStore{MemStore: mem, d: step, watch: "inc_x", written: make(chan time.Time, 1)}
				o, err := breach.New(ss, breach.WithLease("b", ttl), breach.WithConcurrency(1), quiet,
					breach.WithPlaybook(breach.Playbook{Kind: kind, Strategy: breach.InvestigateFirst,
						Investigator: impactInvestigator(incident.Impact{}), AutoResolve: true, AutoClose: true}))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				select {
				case at := <-ss.written:
					took := at.Sub(expiry)
					t.Logf("X taken over %v after the dead lease expired (%.2f TTLs)", took, float64(took)/float64(ttl))
					assert.LessOrEqual(t, took, 2*ttl, "X waited for the queue")
				case <-time.After(5 * time.Minute):
					t.Fatal("X was never taken over")
				}
			})
		})
	}
}

// TestContainmentGoesFirst: with one worker busy notifying 200 customers of
// another incident and 100 new incidents of a signal storm queued, a new
// contain-first incident's container is called before any of the queued
// work, as soon as the running step ends.
func TestContainmentGoesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu           sync.Mutex
			reportedAt   time.Time // when the contain-first incident was reported
			containedAt  time.Time // when its container was first called
			stormAfter   int       // storm investigations started between the two
			noticeStarts = make(chan struct{})
			noticeOnce   sync.Once
		)
		container := containment.Func(func(ctx context.Context, req containment.Request) error {
			mu.Lock()
			defer mu.Unlock()
			if containedAt.IsZero() {
				containedAt = time.Now()
			}
			return nil
		})
		contain := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		contain.Containment[0].Container = container
		notices := breach.Playbook{Kind: "data.exposed", Strategy: breach.InvestigateFirst,
			Investigator: impactInvestigator(incident.Impact{Customers: customers(200), Data: []incident.DataCategory{incident.DataFinancial}}),
			Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
				noticeOnce.Do(func() { close(noticeStarts) })
				time.Sleep(5 * time.Millisecond) // a slow mail relay
				return nil
			})}}}
		storm := breach.Playbook{Kind: "login.anomaly", Strategy: breach.InvestigateFirst,
			Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
				mu.Lock()
				defer mu.Unlock()
				if !reportedAt.IsZero() && containedAt.IsZero() {
					stormAfter++
				}
				return incident.Findings{}, nil
			})}
		o, err := breach.New(incident.NewMemStore(), breach.WithConcurrency(1), breach.WithDelivery(500, 4), quiet,
			breach.WithPlaybook(contain), breach.WithPlaybook(notices), breach.WithPlaybook(storm))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		ctx := context.Background()
		_, err = o.Report(ctx, incident.Signal{Kind: "data.exposed", Subject: "bucket-7", Severity: incident.SeverityHigh})
		require.NoError(t, err)
		select { // the only worker is notifying
		case <-noticeStarts:
		case <-time.After(time.Hour): // virtual
			t.Fatal("the notification step never started")
		}
		var joined atomic.Int32
		for i := range 100 {
			for range 3 { // a storm: each key reported again and again
				rc, err := o.Report(ctx, incident.Signal{Kind: "login.anomaly", Subject: fmt.Sprintf("user-%03d", i), Severity: incident.SeverityLow})
				require.NoError(t, err)
				if !rc.Opened {
					joined.Add(1)
				}
			}
		}
		require.EqualValues(t, 200, joined.Load())
		mu.Lock()
		reportedAt = time.Now()
		mu.Unlock()
		rc, err := o.Report(ctx, leak())
		require.NoError(t, err)
		_, err = o.Await(ctx, rc.IncidentID, func(inc *incident.Incident) bool {
			return len(inc.Actions) > 0 && inc.Actions[0].Status == incident.ActionApplied
		})
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		t.Logf("container called %v after the report, behind the notification step in progress", containedAt.Sub(reportedAt))
		assert.Zero(t, stormAfter, "queued storm work ran before containment")
		assert.LessOrEqual(t, containedAt.Sub(reportedAt), time.Second, "within the running notification step (200 notices, 4 at a time, 5ms each)")
	})
}
