package breach_test

import (
	"context"
	"strings"
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

// hangingLeases is a MemStore whose Renew and Lease (Renew alone with
// renewOnly), for one owner and once hang is set, never answer until their
// context ends: a store (or a process) too slow to keep a lease.
type hangingLeases struct {
	*incident.MemStore
	owner     string
	renewOnly bool
	hang      atomic.Bool
}

func (s *hangingLeases) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	if owner == s.owner && s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.MemStore.Renew(ctx, owner, ttl)
}

func (s *hangingLeases) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if owner == s.owner && s.hang.Load() && !s.renewOnly {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return s.MemStore.Lease(ctx, id, owner, ttl)
}

// callSpan is when one replica's containment call ran.
type callSpan struct {
	replica    string
	start, end time.Time
	cause      error // why its context ended, if it did
}

// spanContainer returns, for a replica's name, a container that records
// its calls in spans (under mu), running hold for the call's length.
func spanContainer(mu *sync.Mutex, spans *[]callSpan, hold func(ctx context.Context, name string)) func(name string) containment.Container {
	return func(name string) containment.Container {
		return containment.Func(func(ctx context.Context, req containment.Request) error {
			return recordSpan(ctx, mu, spans, name, func() { hold(ctx, name) })
		})
	}
}

// recordSpan records in spans (under mu) one call of replica name, which
// runs hold, and returns its context's error.
func recordSpan(ctx context.Context, mu *sync.Mutex, spans *[]callSpan, name string, hold func()) error {
	mu.Lock()
	*spans = append(*spans, callSpan{replica: name, start: time.Now()})
	n := len(*spans) - 1
	mu.Unlock()
	hold()
	mu.Lock()
	(*spans)[n].end, (*spans)[n].cause = time.Now(), context.Cause(ctx)
	mu.Unlock()
	return ctx.Err()
}

// assertNoOverlap checks that no call of one replica in spans started
// before a call of another, recorded earlier, had ended (a call that has
// not ended lasts until now).
func assertNoOverlap(t *testing.T, spans []callSpan, what string) {
	t.Helper()
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			if spans[i].replica == spans[j].replica {
				continue
			}
			end := spans[i].end
			if end.IsZero() {
				end = time.Now()
			}
			assert.False(t, spans[j].start.Before(end), "%s's %s (from %v) overlaps %s's (until %v)",
				spans[j].replica, what, spans[j].start, spans[i].replica, end)
		}
	}
}

// TestLateRenewFencesTheStep: replica a holds an incident's lease and is
// in its containment call when its Renews (and Leases) stop answering. a stops acting
// on the lease before the store lets replica b take it (the TTL by the
// store's clock): its call's context ends with the lease's cause, and b's
// call of the same action starts only after a's ended. Two live replicas
// never run one incident's step at once, however late a Renew is.
func TestLateRenewFencesTheStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		store := &hangingLeases{MemStore: incident.NewMemStore(), owner: "a"}
		var mu sync.Mutex
		var spans []callSpan
		container := spanContainer(&mu, &spans, func(ctx context.Context, name string) {
			if name == "a" {
				<-ctx.Done() // a slow call: it ends only when fenced
			}
		})
		replica := func(name string) *breach.Orchestrator {
			pb := breach.Playbook{
				Kind:        "apikey.compromised",
				Containment: []containment.Action{{Name: "disable-key", Container: container(name)}},
			}
			return leasedReplica(t, store, name, ttl, pb)
		}
		a := replica("a")
		stopA := running(t, a)
		defer stopA()
		leased := time.Now()
		_, err := a.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		store.hang.Store(true)
		b := replica("b")
		stopB := running(t, b)
		defer stopB()

		time.Sleep(3 * ttl) // virtual: a's lease runs out and b takes the incident
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, spans, 2, "a's call, then b's")
		first, second := spans[0], spans[1]
		require.Equal(t, "a", first.replica)
		require.Equal(t, "b", second.replica)
		require.False(t, first.end.IsZero(), "a's call never ended")
		assert.LessOrEqual(t, first.end.Sub(leased), ttl*3/4, "a acted on its lease past three quarters of the TTL")
		assert.ErrorContains(t, first.cause, "ran out before it was renewed")
		assert.False(t, second.start.Before(first.end), "b's call started at %v, before a's ended at %v",
			second.start.Sub(leased), first.end.Sub(leased))
		assert.GreaterOrEqual(t, second.start.Sub(leased), ttl, "b took the lease before it ran out")
	})
}

// rogueWriter writes to a MemStore what another replica would, between a
// step's claim and its record: the delivery marked sent, or the action
// marked applied, with its entry.
func rogueWriter(t *testing.T, store *incident.MemStore, id string, change func(h *incident.Incident)) {
	t.Helper()
	h, err := store.Head(context.Background(), id)
	require.NoError(t, err)
	change(h)
	ch := incident.Change{Head: h, Entries: h.Timeline, Deliveries: h.Deliveries}
	h.Timeline, h.Deliveries = nil, nil
	require.NoError(t, store.Apply(context.Background(), ch))
}

// TestRecordAfterAConflictSkipsWhatWasRecorded: while a step's plugin call
// runs, another writer records its result (a replica that took the
// incident over). The step's own record conflicts, reads again, and
// records neither the notice nor the action a second time: one entry
// each, counts as they are.
func TestRecordAfterAConflictSkipsWhatWasRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		var contained, notified sync.Once
		pb := breach.Playbook{
			Kind: "apikey.compromised",
			Containment: []containment.Action{{Name: "disable-key", Container: containment.Func(func(ctx context.Context, req containment.Request) error {
				contained.Do(func() {
					rogueWriter(t, store, req.IncidentID, func(h *incident.Incident) {
						r := h.Action("disable-key")
						r.Status, r.Attempts = incident.ActionApplied, 1
						h.Record(incident.Entry{Type: incident.EntryContainment, Actor: "replica-b",
							Detail: `containment action "disable-key" applied (attempt 1, key ` + r.IdempotencyKey + ")"})
					})
				})
				return nil
			})}},
			Investigator: impactInvestigator(incident.Impact{Customers: customers(1), Data: []incident.DataCategory{incident.DataAPIAccess}}),
			Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
				notified.Do(func() {
					rogueWriter(t, store, m.IncidentID, func(h *incident.Incident) {
						h.Outreach.Count(incident.DeliveryClaimed, -1)
						h.Outreach.Count(incident.DeliverySent, 1)
						h.Deliveries = []incident.Delivery{{Recipient: m.Recipient.ID, Channel: m.Channel, IdempotencyKey: m.IdempotencyKey,
							Status: incident.DeliverySent, Attempts: 1, SentAt: time.Now()}}
						h.Record(incident.Entry{Type: incident.EntryDelivery, Actor: "replica-b", Detail: "notices via email: 1 sent"})
					})
				})
				return nil
			})}},
			AutoResolve: true, AutoClose: true,
		}
		o, err := breach.New(store, breach.WithLease("a", time.Minute), quiet, breach.WithPlaybook(pb))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc, err := o.Await(context.Background(), rc.IncidentID, func(inc *incident.Incident) bool { return !inc.State.Open() })
		require.NoError(t, err)

		assert.Equal(t, incident.StateClosed, inc.State)
		assert.Equal(t, incident.Outreach{Sent: 1}, outreachCounts(inc), "the notice counted once")
		assert.Equal(t, []string{"notices via email: 1 sent"}, deliveryEntries(inc), "the notice recorded once")
		require.Len(t, inc.Actions, 1)
		assert.Equal(t, 1, inc.Actions[0].Attempts, "the action's attempt counted once")
		applied := 0
		for _, e := range inc.Timeline {
			if e.Type == incident.EntryContainment && strings.Contains(e.Detail, "applied") {
				applied++
			}
		}
		assert.Equal(t, 1, applied, "the action recorded applied once")
		assert.NoError(t, inc.Timeline.Verify())
	})
}

// slowLeases is a MemStore whose Lease, for one owner, answers after d,
// and whose Renew, for that owner, never answers until its context ends.
type slowLeases struct {
	*incident.MemStore
	owner string
	d     time.Duration
}

func (s *slowLeases) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if owner == s.owner {
		time.Sleep(s.d)
	}
	return s.MemStore.Lease(ctx, id, owner, ttl)
}

func (s *slowLeases) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	if owner == s.owner {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.MemStore.Renew(ctx, owner, ttl)
}

// TestSlowLeaseIsNotUsedUnfenced: replica a's Leases answer after 0.8 of
// the TTL, past the time a replica may act on them, and its Renews never.
// a never runs a step on such a lease: no containment call of a overlaps
// one of b, which takes the incident once a's leases run out.
func TestSlowLeaseIsNotUsedUnfenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		store := &slowLeases{MemStore: incident.NewMemStore(), owner: "a", d: ttl * 8 / 10}
		var mu sync.Mutex
		var spans []callSpan
		container := spanContainer(&mu, &spans, func(ctx context.Context, _ string) {
			select {
			case <-ctx.Done():
			case <-time.After(10 * ttl):
			}
		})
		replica := func(name string) *breach.Orchestrator {
			pb := breach.Playbook{Kind: "apikey.compromised",
				Containment: []containment.Action{{Name: "disable-key", Container: container(name)}}}
			return leasedReplica(t, store, name, ttl, pb)
		}
		a := replica("a")
		stopA := running(t, a)
		defer stopA()
		_, err := a.Report(context.Background(), leak())
		require.NoError(t, err)
		time.Sleep(ttl + ttl/5) // virtual
		b := replica("b")
		stopB := running(t, b)
		defer stopB()
		time.Sleep(6 * ttl)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.NotEmpty(t, spans, "b contains the incident")
		assertNoOverlap(t, spans, "call")
		for _, s := range spans {
			assert.Equal(t, "b", s.replica, "a acted on a lease whose time was over")
		}
	})
}

// TestGraceIsNotCutByLeaseTimers: steps run on for the shutdown grace
// after Run's ctx ends, and their leases are renewed until they are done:
// a grace longer than the TTL (the postgres example: TTL 2s, grace 10s)
// does not fence a containment call that finishes within it, and its
// result is recorded.
func TestGraceIsNotCutByLeaseTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		started := make(chan struct{}, 1)
		var cause error
		pb.Containment[0].Container = containment.Func(func(ctx context.Context, req containment.Request) error {
			started <- struct{}{}
			select {
			case <-time.After(3 * time.Second): // a slow call, well within the grace
				return nil
			case <-ctx.Done():
				cause = context.Cause(ctx)
				return ctx.Err()
			}
		})
		pb.Containment[0].Policy = incident.Policy{Attempts: 1}
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithLease("a", 2*time.Second), breach.WithShutdownGrace(10*time.Second),
			quiet, breach.WithPlaybook(pb))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		<-started
		cancel()
		require.NoError(t, <-done)
		inc, err := store.Head(context.Background(), rc.IncidentID)
		require.NoError(t, err)
		t.Logf("call cut by: %v; action %s", cause, inc.Actions[0].Status)
		assert.NoError(t, cause, "the call was cut before the grace ended")
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status, "the call's result is recorded within the grace")
	})
}

// staleList is a MemStore whose first ListOpen answers what it held
// earlier: the list was read, then another replica wrote, ended the
// incident and gave its lease up, before this one's Lease.
type staleList struct {
	*incident.MemStore
	mu    sync.Mutex
	stale []*incident.Incident
}

func (s *staleList) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	s.mu.Lock()
	st := s.stale
	s.stale = nil
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	return s.MemStore.ListOpen(ctx)
}

// TestResumeReadsTheHeadAfterTheLease: resume lists the open incidents,
// then leases them one by one. Replica b dismissed an incident (its
// containment released) and gave the lease up after a's list was read:
// a's first step reads the head again rather than trust the list's, and
// does not contain again what b released.
func TestResumeReadsTheHeadAfterTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &staleList{MemStore: incident.NewMemStore()}
		fb := &fakes{}
		b, err := breach.New(store, breach.WithLease("b", 2*time.Second), quiet,
			breach.WithPlaybook(apiKeyPlaybook(fb, impactInvestigator(incident.Impact{}))))
		require.NoError(t, err)
		rc, err := b.Report(context.Background(), leak()) // b does not run: created containing, action claimed
		require.NoError(t, err)
		open, err := store.MemStore.ListOpen(context.Background())
		require.NoError(t, err)
		store.stale = open // a's ListOpen, read now
		require.NoError(t, b.Dismiss(context.Background(), rc.IncidentID, "carol", "false positive"))
		require.Equal(t, incident.StateDismissed, get(t, b, rc.IncidentID).State)

		fa := &fakes{}
		a, err := breach.New(store, breach.WithLease("a", 2*time.Second), quiet,
			breach.WithPlaybook(apiKeyPlaybook(fa, impactInvestigator(incident.Impact{}))))
		require.NoError(t, err)
		stop := running(t, a)
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		contained, _, _ := fa.snapshot()
		assert.Empty(t, contained, "a contained a dismissed incident from the head it read before its Lease")
		inc := get(t, a, rc.IncidentID)
		t.Logf("store: %s, actions %+v", inc.State, inc.Actions)
	})
}

type recContainer struct {
	mu                 sync.Mutex
	contained, release int
	onContain          func(req containment.Request)
}

func (c *recContainer) Contain(ctx context.Context, req containment.Request) error {
	c.mu.Lock()
	c.contained++
	c.mu.Unlock()
	if c.onContain != nil {
		c.onContain(req)
	}
	return nil
}

func (c *recContainer) Release(ctx context.Context, req containment.Request) error {
	c.mu.Lock()
	c.release++
	c.mu.Unlock()
	return nil
}

// TestSuccessOverridesAFailureRecordedElsewhere: another writer records
// the action failed (and escalates) while this step's call of it
// succeeds. The step's record, read again after the conflict, records
// the success over the failure: a later Dismiss releases what the call
// applied.
func TestSuccessOverridesAFailureRecordedElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		c := &recContainer{}
		var once sync.Once
		c.onContain = func(req containment.Request) {
			once.Do(func() {
				rogueWriter(t, store, req.IncidentID, func(h *incident.Incident) {
					r := h.Action("disable-key")
					r.Status, r.Attempts, r.LastError = incident.ActionFailed, 1, "timeout"
					h.Escalation = &incident.Escalation{From: h.State, Reason: "containment failed", At: time.Now()}
					h.Record(incident.Entry{Type: incident.EntryTransition, Actor: "replica-b", From: h.State, To: incident.StateEscalated,
						Detail: "containment failed"})
					h.State = incident.StateEscalated
				})
			})
		}
		pb := breach.Playbook{Kind: "apikey.compromised", Strategy: breach.ContainFirst,
			Containment: []containment.Action{{Name: "disable-key", Container: c}}}
		o, err := breach.New(store, breach.WithLease("a", time.Minute), quiet, breach.WithPlaybook(pb))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, o, rc.IncidentID, incident.StateEscalated)
		time.Sleep(time.Second)
		synctest.Wait()
		require.NoError(t, o.Dismiss(context.Background(), rc.IncidentID, "carol", "false positive"))
		c.mu.Lock()
		defer c.mu.Unlock()
		inc := get(t, o, rc.IncidentID)
		t.Logf("contained %d, released %d, action %+v", c.contained, c.release, inc.Actions)
		assert.Equal(t, c.contained > 0, c.release > 0, "an action this replica applied is released at dismissal")
	})
}
