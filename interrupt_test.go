package breach_test

import (
	"context"
	"errors"
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

// promptly is how long a person's action may take while a step hangs: on
// the bubble's clock, where store calls and CPU work take no time, a call
// that waits for no step returns at once.
const promptly = time.Second

// TestDismissInterruptsNotification: a notification to 50 customers hangs
// in a notifier that ignores its context. Dismiss returns without the
// notifier being released, within one step's bound; the notices never
// started are recorded cancelled and never sent, those cut mid-call
// unknown, those sent stay sent; containment is released and the incident
// is dismissed.
func TestDismissInterruptsNotification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const free, inFlight, total = 6, 4, 50 // 4: the delivery concurrency
		f := &fakes{}
		g := newGate(free)
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{Customers: customers(total),
			Data: []incident.DataCategory{incident.DataAPIAccess}}))
		pb.Notifiers = []notify.Route{{Channel: "email", Notifier: g.notifier()}}
		pb.Delivery = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
		pb.StepTimeout = 48 * time.Hour
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithDelivery(500, inFlight), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait() // the notifier holds four calls
		inc := get(t, o, rc.IncidentID)
		require.Equal(t, incident.StateNotifying, inc.State)
		calls, _ := g.counts()
		require.Equal(t, free+inFlight, calls)
		// The 50 customers are one batch: claimed in one write, their
		// results recorded in one more when the batch ends.
		require.Equal(t, map[incident.DeliveryStatus]int{incident.DeliveryClaimed: total}, deliveryCounts(inc))
		require.Equal(t, incident.Outreach{Claimed: total}, outreachOf(inc))

		returned, wait, err := returnsWithin(t, promptly, func() error {
			return o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key")
		})
		if !assert.True(t, returned, "Dismiss waits for the notifier") {
			g.release()
			require.NoError(t, wait())
		}
		require.NoError(t, err)
		callsAtDismiss, _ := g.counts()

		inc = get(t, o, rc.IncidentID)
		assert.Equal(t, incident.StateDismissed, inc.State)
		assert.Equal(t, map[incident.DeliveryStatus]int{
			incident.DeliverySent:      free,
			incident.DeliveryUnknown:   inFlight,
			incident.DeliveryCancelled: total - free - inFlight,
		}, deliveryCounts(inc))
		assert.Equal(t, incident.Outreach{Sent: free, Unknown: inFlight, Cancelled: total - free - inFlight},
			outreachCounts(inc), "the head counts what the deliveries hold")
		notices := deliveryEntries(inc)
		if assert.Len(t, notices, 1, "one entry sums the batch up") {
			assert.Contains(t, notices[0], "notices via email: 6 sent;")
			assert.Contains(t, notices[0], "40 notice(s) not sent, 4 cut mid-call")
		}
		_, released, _ := f.snapshot()
		assert.Len(t, released, 1, "containment released")
		assert.Equal(t, incident.ActionReleased, inc.Actions[0].Status)

		// The notifier lets its calls go: nothing more is sent or recorded.
		g.release()
		time.Sleep(time.Hour)
		synctest.Wait()
		calls, _ = g.counts()
		assert.Equal(t, callsAtDismiss, calls, "no notice starts after Dismiss returned")
		after := get(t, o, rc.IncidentID)
		assert.Equal(t, inc.Version, after.Version, "nothing is written after Dismiss returned")
		assert.NoError(t, after.Timeline.Verify())
	})
}

// TestDismissDuringContaining: Dismiss while a container hangs (ignoring
// its context), and while an action awaits approval.
func TestDismissDuringContaining(t *testing.T) {
	tests := []struct {
		name     string
		approval *containment.ApprovalRule
		calls    int // containment calls
		released int // releases made by Dismiss
	}{
		{"container hangs", nil, 1, 1}, // the claimed action may have taken effect: released
		{"awaiting approval", &containment.ApprovalRule{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate(0)
				c := &gatedContainer{g: g}
				pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
				pb.Containment[0].Container = c
				pb.Containment[0].Approval = tt.approval
				pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				synctest.Wait()
				inc := get(t, o, rc.IncidentID)
				require.Equal(t, incident.StateContaining, inc.State)

				returned, wait, err := returnsWithin(t, promptly, func() error {
					return o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key")
				})
				if !assert.True(t, returned, "Dismiss waits for the container") {
					g.release()
					require.NoError(t, wait())
				}
				require.NoError(t, err)
				g.release()
				time.Sleep(time.Hour)
				synctest.Wait()
				inc = get(t, o, rc.IncidentID)
				assert.Equal(t, incident.StateDismissed, inc.State)
				assert.Equal(t, tt.released, c.releases())
				if tt.released > 0 {
					assert.Equal(t, incident.ActionReleased, inc.Actions[0].Status)
				}
				calls, _ := g.counts()
				assert.Equal(t, tt.calls, calls, "the container runs only if approval is not needed")
			})
		})
	}
}

// TestApproveAfterDismissChangesNothing: an action that awaited approval
// when its incident was dismissed can no longer be approved: nothing is
// recorded on the ended incident, and nothing runs.
func TestApproveAfterDismissChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		pb := apiKeyPlaybook(f, nil)
		pb.Containment[0].Approval = &containment.ApprovalRule{}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		ctx := context.Background()
		rc, err := o.Report(ctx, leak())
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, o.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
		before := get(t, o, rc.IncidentID)
		err = o.Approve(ctx, rc.IncidentID, "disable-key", "frank", "go")
		synctest.Wait()
		after := get(t, o, rc.IncidentID)
		assert.ErrorIs(t, err, breach.ErrNoApprovalPending)
		assert.Equal(t, before.Version, after.Version)
		contained, _, _ := f.snapshot()
		assert.Empty(t, contained)
	})
}

// TestPeopleActWhileContainmentHangs: RecordMilestone, CompleteTask and
// PauseClock take no slot: they return at once while a containment call
// hangs, and the step finds their changes when it writes.
func TestPeopleActWhileContainmentHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(0)
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = &gatedContainer{g: g}
		pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
		pb.Clocks = []breach.Clock{breach.GDPR()}
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		ctx := context.Background()
		rc, err := o.Report(ctx, leak())
		require.NoError(t, err)
		synctest.Wait()
		id := rc.IncidentID
		// Give the incident an open task now, so that CompleteTask has
		// something to complete while containment hangs.
		inc, err := store.Head(ctx, id)
		require.NoError(t, err)
		require.Equal(t, incident.StateContaining, inc.State)
		inc.Tasks = append(inc.Tasks, incident.Task{ID: "scan", Title: "Scan repositories", Mandatory: true})
		require.NoError(t, store.Apply(ctx, incident.Change{Head: inc}))

		for _, act := range []struct {
			name string
			do   func() error
		}{
			{"RecordMilestone", func() error {
				return o.RecordMilestone(ctx, id, incident.MilestoneEarlyWarning, "dora", "early warning sent")
			}},
			{"CompleteTask", func() error { return o.CompleteTask(ctx, id, "scan", "dora", "no other key") }},
			{"PauseClock", func() error { return o.PauseClock(ctx, id, breach.GDPR().Name, "dora", "law enforcement") }},
		} {
			returned, wait, err := returnsWithin(t, promptly, act.do)
			if !assert.True(t, returned, "%s waits for the containment step", act.name) {
				g.release()
				require.NoError(t, wait())
				continue
			}
			assert.NoError(t, err, act.name)
		}

		g.release()
		inc = await(t, o, id, incident.StateResolving)
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
		assert.Contains(t, inc.Milestones, incident.MilestoneEarlyWarning)
		require.Len(t, inc.Tasks, 1)
		assert.True(t, inc.Tasks[0].Done)
		assert.Equal(t, incident.DeadlinePaused, inc.Deadline(breach.GDPR().Name).Status)
		assert.NoError(t, inc.Timeline.Verify())
	})
}

// TestDismissalPendingIsNeverAWedge: an incident escalated from notifying
// is dismissed with a context that ends while containment is released
// (the releaser blocks until its context ends). Dismiss reports the
// dismissal pending, Retry refuses to change course, and a fresh Dismiss,
// or Run, finishes it.
func TestDismissalPendingIsNeverAWedge(t *testing.T) {
	for _, finisher := range []string{"Dismiss", "Run"} {
		t.Run("finished by "+finisher, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rel := &blockingReleaser{releasing: make(chan struct{}), proceed: make(chan struct{})}
				pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{Customers: []incident.Customer{customer},
					Data: []incident.DataCategory{incident.DataAPIAccess}}))
				pb.Containment[0].Container = rel
				pb.Notifiers = []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
					return incident.Permanent(errors.New("mail relay rejected the message"))
				})}}
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
				require.NoError(t, err)
				stop := running(t, o)
				stopped := false
				defer func() {
					if !stopped {
						stop()
					}
				}()
				ctx := context.Background()
				rc, err := o.Report(ctx, leak())
				require.NoError(t, err)
				inc := await(t, o, rc.IncidentID, incident.StateEscalated)
				require.Equal(t, incident.StateNotifying, inc.Escalation.From)
				if finisher == "Dismiss" {
					stop() // no driver: only public calls finish it
					stopped = true
				}

				dctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- o.Dismiss(dctx, rc.IncidentID, "carol", "test key") }()
				<-rel.releasing
				cancel()
				err = <-done
				assert.ErrorIs(t, err, breach.ErrDismissalPending)
				assert.ErrorIs(t, err, context.Canceled)
				inc = get(t, o, rc.IncidentID)
				require.NotNil(t, inc.Dismissal, "the dismissal stands")
				assert.Equal(t, incident.StateEscalated, inc.State)

				assert.ErrorIs(t, o.Retry(ctx, rc.IncidentID, "dave", "go on"), breach.ErrDismissalPending)
				assert.ErrorIs(t, o.Resolve(ctx, rc.IncidentID, "dave", "done"), breach.ErrDismissalPending)

				close(rel.proceed)
				if finisher == "Dismiss" {
					require.NoError(t, o.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
				}
				inc = await(t, o, rc.IncidentID, incident.StateDismissed)
				assert.Equal(t, incident.ActionReleased, inc.Actions[0].Status)
				assert.Equal(t, "carol", inc.Dismissal.By)
				assert.NoError(t, inc.Timeline.Verify())
			})
		})
	}
}

// blockingReleaser contains at once; its first release blocks until its
// context ends, the others until proceed is closed.
type blockingReleaser struct {
	releasing chan struct{} // closed when the first release starts
	proceed   chan struct{}
	mu        sync.Mutex
	releases  int
}

func (r *blockingReleaser) Contain(ctx context.Context, req containment.Request) error { return nil }

func (r *blockingReleaser) Release(ctx context.Context, req containment.Request) error {
	r.mu.Lock()
	r.releases++
	n := r.releases
	r.mu.Unlock()
	if n == 1 {
		close(r.releasing)
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-r.proceed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slowApply is a MemStore whose Apply takes a second while slow is set.
type slowApply struct {
	*incident.MemStore
	slow atomic.Bool
}

func (s *slowApply) Apply(ctx context.Context, ch incident.Change) error {
	if s.slow.CompareAndSwap(true, false) {
		time.Sleep(time.Second)
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestAbandonedDismissDoesNotWedge: a Dismiss whose ctx ends while it
// waits for the running step to wind down (its record write is slow)
// returns ctx's error with nothing recorded. The step it cut does not
// queue itself again, so the slot's release does: the incident is driven
// on.
func TestAbandonedDismissDoesNotWedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		store := &slowApply{MemStore: incident.NewMemStore()}
		started := make(chan struct{}, 1)
		pb.Containment[0].Container = containment.Func(func(ctx context.Context, req containment.Request) error {
			store.slow.Store(true) // the write recording this result takes a second
			started <- struct{}{}
			return nil
		})
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		<-started
		time.Sleep(10 * time.Millisecond) // the record write is under way
		dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err = o.Dismiss(dctx, rc.IncidentID, "carol", "false positive")
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		ctx, cancel2 := context.WithTimeout(context.Background(), time.Hour)
		defer cancel2()
		_, err = o.Await(ctx, rc.IncidentID, func(inc *incident.Incident) bool {
			return inc.State == incident.StateResolving || inc.State == incident.StateEscalated
		})
		if !assert.NoError(t, err, "the incident is never driven again") {
			inc := get(t, o, rc.IncidentID)
			t.Logf("stuck in %s for an hour, dismissal=%v", inc.State, inc.Dismissal)
		}
	})
}

type spanReleaser struct {
	name  string
	mu    *sync.Mutex
	spans *[]callSpan
}

func (r spanReleaser) Contain(ctx context.Context, req containment.Request) error { return nil }
func (r spanReleaser) Release(ctx context.Context, req containment.Request) error {
	return recordSpan(ctx, r.mu, r.spans, r.name, func() {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	})
}

// TestDismissReleaseIsFenced: a Dismiss's releases run on the lease it
// took, fenced as a step's: replica a's Renews stop answering while its
// Dismiss releases, and a's release is cut before the store lets b take
// the incident; b's release of the same action never overlaps a's.
func TestDismissReleaseIsFenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		store := &hangingLeases{MemStore: incident.NewMemStore(), owner: "a", renewOnly: true}
		var mu sync.Mutex
		var spans []callSpan
		replica := func(name string) *breach.Orchestrator {
			pb := breach.Playbook{Kind: "apikey.compromised", Strategy: breach.ContainFirst,
				Containment: []containment.Action{{Name: "disable-key", Container: spanReleaser{name, &mu, &spans}}},
				Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
					return incident.Findings{}, incident.Permanent(errors.New("no findings"))
				}),
			}
			return leasedReplica(t, store, name, ttl, pb)
		}
		a := replica("a")
		stopA := running(t, a)
		defer stopA()
		rc, err := a.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, a, rc.IncidentID, incident.StateEscalated)
		b := replica("b")
		stopB := running(t, b)
		defer stopB()
		store.hang.Store(true)
		done := make(chan error, 1)
		go func() { done <- a.Dismiss(context.Background(), rc.IncidentID, "carol", "false positive") }()
		time.Sleep(4 * ttl)
		synctest.Wait()
		mu.Lock()
		got := append([]callSpan(nil), spans...)
		mu.Unlock()
		assertNoOverlap(t, got, "release")
		t.Logf("spans: %+v", got)
		<-done
	})
}
