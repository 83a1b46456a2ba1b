package breach_test

import (
	"context"
	"strings"
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

// Tests of ChangeSeverity (collab.go); the helpers are in collab_test.go.

func TestChangeSeverityRefused(t *testing.T) {
	o, store := desk(t)
	id := file(t, o, bruteforce("alice")) // high
	ended := file(t, o, bruteforce("bob"))
	require.NoError(t, o.Dismiss(context.Background(), ended, "carol", "a penetration test"))
	child := file(t, o, bruteforce("carol"))
	require.NoError(t, o.Merge(context.Background(), id, child, "dana", "one attacker"))
	dismissing := file(t, o, bruteforce("dave"))
	setHead(t, store, dismissing, func(h *incident.Incident) {
		h.Dismissal = &incident.Dismissal{By: "carol", Reason: "under way", At: h.DetectedAt}
	})
	tests := []struct {
		name, id, actor, reason string
		sev                     incident.Severity
		errs                    []error
	}{
		{"no actor", id, "", "why", incident.SeverityCritical, []error{breach.ErrInvalidInput}},
		{"no reason", id, "alice", "", incident.SeverityCritical, []error{breach.ErrInvalidInput}},
		{"blank reason", id, "alice", "\n", incident.SeverityCritical, []error{breach.ErrInvalidInput}},
		{"reason too long", id, "alice", strings.Repeat("r", breach.MaxNoteLen+1), incident.SeverityCritical, []error{breach.ErrInvalidInput}},
		{"unknown severity", id, "alice", "why", incident.SeverityUnknown, []error{breach.ErrInvalidInput, incident.ErrUnknownSeverity}},
		{"out of range", id, "alice", "why", incident.Severity(9), []error{breach.ErrInvalidInput, incident.ErrUnknownSeverity}},
		{"same severity", id, "alice", "why", incident.SeverityHigh, []error{breach.ErrSameSeverity}},
		{"ended", ended, "alice", "why", incident.SeverityCritical, []error{breach.ErrIncidentEnded}},
		{"merged", child, "alice", "why", incident.SeverityCritical, []error{breach.ErrIncidentEnded, breach.ErrMerged}},
		{"dismissal under way", dismissing, "alice", "why", incident.SeverityCritical, []error{breach.ErrDismissalPending}},
		{"unknown incident", "inc_nope", "alice", "why", incident.SeverityCritical, []error{incident.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before int64
			if tt.id != "inc_nope" {
				before = version(t, o, tt.id)
			}
			err := o.ChangeSeverity(context.Background(), tt.id, tt.sev, tt.actor, tt.reason)
			checkRefused(t, o, tt.id, before, err, tt.errs...)
		})
	}
	if errMsg := o.ChangeSeverity(context.Background(), child, incident.SeverityLow, "alice", "why"); assert.Error(t, errMsg) {
		assert.Contains(t, errMsg.Error(), "merged into "+id, "the error names the parent")
	}
}

// TestChangeSeverityApprovals: an action that waits for approval runs once
// the severity no longer asks for one, and the alert that waited for it is
// resolved; containment applied stays applied when the severity drops.
func TestChangeSeverityApprovals(t *testing.T) {
	tests := []struct {
		name     string
		from, to incident.Severity
		applied  bool // disable-key ends applied (else it still waits)
		calls    int
	}{
		{"raised to AutoFrom: it runs", incident.SeverityHigh, incident.SeverityCritical, true, 1},
		{"raised, still below AutoFrom: it waits", incident.SeverityLow, incident.SeverityHigh, false, 0},
		{"lowered: applied stays applied", incident.SeverityCritical, incident.SeverityMedium, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, stop := startRig(t, critical, tt.from, nil)
				defer stop()
				want := incident.ActionAwaiting
				if tt.from >= incident.SeverityCritical {
					want = incident.ActionApplied
				}
				r.awaitAction(t, want)
				require.NoError(t, r.o.ChangeSeverity(context.Background(), r.id, tt.to, "alice", "confirmed with the customer"))
				synctest.Wait()
				inc := r.get(t)
				assert.Equal(t, tt.to, inc.Severity)
				verb := "raised"
				if tt.to < tt.from {
					verb = "lowered"
				}
				assert.True(t, hasEntry(inc, "alice", "severity "+verb+" from "+tt.from.String()+" to "+tt.to.String()+
					": confirmed with the customer"))
				assert.Equal(t, tt.calls, r.containCalls())
				a := inc.Action("disable-key")
				require.NotNil(t, a)
				if !tt.applied {
					assert.Equal(t, incident.ActionAwaiting, a.Status)
					assert.True(t, inc.Paging.Open(), "the alert still waits for a person")
					return
				}
				assert.Equal(t, incident.ActionApplied, a.Status)
				assert.Equal(t, incident.StateResolving, inc.State, "automation went on")
				if tt.from < incident.SeverityCritical {
					require.NotNil(t, a.Approval)
					assert.Equal(t, incident.ActorSystem, a.Approval.By)
					assert.True(t, a.Approval.Approved)
					assert.Equal(t, "no approval needed at severity critical", a.Approval.Note)
					assert.True(t, hasEntry(inc, incident.ActorSystem, `containment action "disable-key" needs no approval at severity critical`))
					require.NotNil(t, inc.Paging)
					assert.False(t, inc.Paging.ResolvedAt.IsZero(), "nobody is needed any more")
				}
			})
		})
	}
}

// TestChangeSeverityEscalationPolicy: an open alert moves to the policy of
// the new severity: the levels paged are told it is resolved, the new
// policy's first level is paged.
func TestChangeSeverityEscalationPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, oncall, leads := &fakes{}, &pager{}, &pager{}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Approval = &containment.ApprovalRule{} // always asks
		pb.EscalationBySeverity = map[incident.Severity]breach.EscalationPolicy{
			incident.SeverityCritical: {Levels: []breach.EscalationLevel{{Responder: "security-leads", Pager: leads.notifier()}}},
		}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithOnCall(oncall.notifier()), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		sig := leak()
		sig.Severity = incident.SeverityHigh
		id := file(t, o, sig)
		synctest.Wait()
		inc := get(t, o, id)
		require.Equal(t, incident.ActionAwaiting, inc.Actions[0].Status)
		require.Len(t, oncall.all(), 1)
		first := inc.Paging.AlertKey

		require.NoError(t, o.ChangeSeverity(context.Background(), id, incident.SeverityCritical, "alice", "billing data exposed"))
		synctest.Wait()
		inc = get(t, o, id)
		assert.Equal(t, incident.ActionAwaiting, inc.Actions[0].Status, "it still needs approval")
		require.True(t, inc.Paging.Open())
		assert.NotEqual(t, first, inc.Paging.AlertKey, "a new alert")
		if pages := leads.all(); assert.Len(t, pages, 1) {
			assert.Equal(t, "security-leads", pages[0].Responder)
			assert.Equal(t, incident.SeverityCritical, pages[0].Severity)
		}
		assert.Equal(t, 1, resolves(oncall, first), "the level paged before is told")
		assert.True(t, hasEntry(inc, incident.ActorSystem, "on-call alert raised again under the escalation policy for severity critical"))

		// Approving resolves the new alert with the level it paged.
		require.NoError(t, o.Approve(context.Background(), id, "disable-key", "bob", "go"))
		synctest.Wait()
		assert.Equal(t, 1, resolves(leads, inc.Paging.AlertKey))
		assert.Len(t, oncall.all(), 1, "the old policy is not paged again")
	})
}

// resolves counts the resolutions of alert key p was sent.
func resolves(p *pager, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.msgs {
		if m.Action == notify.PageResolve && m.AlertKey == key {
			n++
		}
	}
	return n
}

// TestChangeSeverityDuringContainment: while one containment call hangs,
// a severity change lets a second action, which waited for approval, run.
// The change returns at once; the incident is contained only once both
// actions are applied (the step in flight does not declare it contained
// with the second still to run).
func TestChangeSeverityDuringContainment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		g := newGate(0)
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = &gatedContainer{g: g}
		pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
		pb.Containment = append(pb.Containment, containment.Action{Name: "block-ip", Container: f.container(nil),
			Approval: critical})
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		sig := leak()
		sig.Severity = incident.SeverityHigh
		id := file(t, o, sig)
		synctest.Wait()
		inc := get(t, o, id)
		require.Equal(t, incident.ActionPending, inc.Action("disable-key").Status, "in flight")
		require.Equal(t, incident.ActionAwaiting, inc.Action("block-ip").Status)

		returned, wait, err := returnsWithin(t, promptly, func() error {
			return o.ChangeSeverity(context.Background(), id, incident.SeverityCritical, "alice", "the key reads billing data")
		})
		if !assert.True(t, returned, "ChangeSeverity waits for the container") {
			g.release()
			require.NoError(t, wait())
		}
		require.NoError(t, err)
		g.release()
		inc = await(t, o, id, incident.StateResolving)
		synctest.Wait()
		assert.Equal(t, incident.ActionApplied, inc.Action("disable-key").Status)
		assert.Equal(t, incident.ActionApplied, inc.Action("block-ip").Status)
		contained, blocked := -1, -1
		for i, e := range inc.Timeline {
			if e.Type == incident.EntryTransition && e.To == incident.StateContained && contained < 0 {
				contained = i
			}
			if strings.Contains(e.Detail, `"block-ip" applied`) {
				blocked = i
			}
		}
		require.Positive(t, blocked)
		assert.Greater(t, contained, blocked, "contained once every action is applied")
		assert.Equal(t, []string{"detected>containing", "containing>contained", "contained>investigating", "investigating>resolving"},
			transitions(inc), "contained once")
		assert.NoError(t, inc.Timeline.Verify())
	})
}

// TestPersonsSeverityStandsAgainstAnEarlierSignal: a duplicate signal
// is counted (acknowledged) before a person lowers the severity; when the
// count is written, the person's severity must stand. The signal came
// first: it is no "later signal".
func TestPersonsSeverityStandsAgainstAnEarlierSignal(t *testing.T) {
	o, err := breach.New(incident.NewMemStore(), quiet, breach.WithUnsafeAcks(),
		breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))))
	require.NoError(t, err)
	ctx := context.Background()
	id := file(t, o, leak()) // critical
	dup, err := o.Report(ctx, leak())
	require.NoError(t, err)
	require.False(t, dup.Opened)
	require.Equal(t, id, dup.IncidentID)

	require.NoError(t, o.ChangeSeverity(ctx, id, incident.SeverityLow, "alice", "a test key: overstated"))
	require.NoError(t, o.Flush(ctx)) // the group commit of the signal counted before
	inc := get(t, o, id)
	assert.EqualValues(t, 2, inc.Signals.Count)
	assert.Equal(t, incident.SeverityLow, inc.Severity, "the person's severity was overwritten by the flush of an earlier signal")
}

// TestPersonsSeverityStandsAgainstASignalWaitingForItsCommit: the same with
// durable acknowledgements and Run: a duplicate signal waits for its group
// commit while a person lowers the severity.
func TestPersonsSeverityStandsAgainstASignalWaitingForItsCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := breach.New(incident.NewMemStore(), quiet, breach.WithFlushInterval(time.Second),
			breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		ctx := context.Background()
		id := file(t, o, leak()) // critical
		await(t, o, id, incident.StateResolving)
		reported := make(chan error, 1)
		go func() { _, err := o.Report(ctx, leak()); reported <- err }()
		synctest.Wait() // the duplicate is counted and waits for its commit
		require.NoError(t, o.ChangeSeverity(ctx, id, incident.SeverityLow, "alice", "a test key: overstated"))
		require.NoError(t, <-reported)
		inc := get(t, o, id)
		assert.EqualValues(t, 2, inc.Signals.Count)
		assert.Equal(t, incident.SeverityLow, inc.Severity, "the person's severity was overwritten by the commit of an earlier signal")
	})
}

// TestSignalRaisingTheSeverityReapproves: a later signal raises the
// severity to one whose rule needs no approval; the waiting action runs,
// as a severity change re-evaluates the playbook.
func TestSignalRaisingTheSeverityReapproves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, stop := startRig(t, critical, incident.SeverityHigh, nil, breach.WithFlushInterval(time.Millisecond))
		defer stop()
		r.awaitAction(t, incident.ActionAwaiting)
		_, err := r.o.Report(context.Background(), leak()) // critical
		require.NoError(t, err)
		time.Sleep(time.Minute)
		synctest.Wait()
		inc := r.get(t)
		require.Equal(t, incident.SeverityCritical, inc.Severity)
		assert.NotEqual(t, incident.ActionAwaiting, inc.Action("disable-key").Status, "still waits for an approval the severity no longer needs")
	})
}

// TestSignalMoreSevereThanAnyRaisesAPersonsSeverity: after a person lowered
// the severity, more signals as severe as those before leave it as they
// set it; a signal more severe than every one before is news, and raises
// it, on the record as a severity change by the system.
func TestSignalMoreSevereThanAnyRaisesAPersonsSeverity(t *testing.T) {
	o, err := breach.New(incident.NewMemStore(), quiet, breach.WithUnsafeAcks(),
		breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))))
	require.NoError(t, err)
	ctx := context.Background()
	high := leak()
	high.Severity = incident.SeverityHigh
	id := file(t, o, high)
	require.NoError(t, o.ChangeSeverity(ctx, id, incident.SeverityLow, "alice", "a test key: overstated"))

	_, err = o.Report(ctx, high) // as severe as the first: what alice judged
	require.NoError(t, err)
	require.NoError(t, o.Flush(ctx))
	inc := get(t, o, id)
	assert.Equal(t, incident.SeverityLow, inc.Severity)
	assert.Equal(t, incident.SeverityHigh, inc.Signals.MaxSeverity)

	_, err = o.Report(ctx, leak()) // critical: more severe than any before
	require.NoError(t, err)
	require.NoError(t, o.Flush(ctx))
	inc = get(t, o, id)
	assert.Equal(t, incident.SeverityCritical, inc.Severity)
	assert.Equal(t, incident.SeverityCritical, inc.Signals.MaxSeverity)
	assert.EqualValues(t, 3, inc.Signals.Count)
	last := inc.Timeline[len(inc.Timeline)-1]
	assert.Equal(t, incident.EntrySeverity, last.Type)
	assert.Equal(t, incident.ActorSystem, last.Actor)
	assert.Equal(t, "severity raised from low to critical by a later signal", last.Detail)
}

// awaitingDesk is an incident whose containment action awaits an approval
// its critical rule asks at high severity, not driven (Run stopped), with
// counts flushed only when the test says.
func awaitingDesk(t *testing.T) (*breach.Orchestrator, *incident.MemStore, *fakes, string) {
	f := &fakes{}
	pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
	pb.Containment[0].Approval = critical
	store := incident.NewMemStore()
	o, err := breach.New(store, quiet, breach.WithPlaybook(pb), breach.WithUnsafeAcks(), breach.WithFlushInterval(time.Hour))
	require.NoError(t, err)
	stop := running(t, o)
	sig := leak()
	sig.Severity = incident.SeverityHigh
	id := file(t, o, sig)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err = o.Await(ctx, id, func(inc *incident.Incident) bool {
		a := inc.Action("disable-key")
		return a != nil && a.Status == incident.ActionAwaiting
	})
	require.NoError(t, err)
	synctest.Wait()
	stop()
	return o, store, f, id
}

// TestSignalRaisingASeverityDuringADismissalApprovesNothing: a signal
// raising the severity while a dismissal is under way approves no awaiting
// action (ChangeSeverity refuses with ErrDismissalPending), so the driver
// finishing the dismissal releases nothing that never ran.
func TestSignalRaisingASeverityDuringADismissalApprovesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, store, f, id := awaitingDesk(t)
		setHead(t, store, id, func(h *incident.Incident) {
			h.Dismissal = &incident.Dismissal{By: "carol", Reason: "a test key", At: time.Now()}
		})
		_, err := o.Report(context.Background(), leak()) // critical
		require.NoError(t, err)
		require.NoError(t, o.Flush(context.Background()))
		inc := get(t, o, id)
		assert.Equal(t, incident.ActionAwaiting, inc.Action("disable-key").Status,
			"a signal approved an action of an incident being dismissed")
		stop := running(t, o)
		await(t, o, id, incident.StateDismissed)
		synctest.Wait()
		stop()
		contained, released, _ := f.snapshot()
		assert.Empty(t, released, "released an action that was never applied (contained %d)", len(contained))
	})
}

// TestSignalRaisingAnEndedIncidentsSeverityApprovesNothing: signals counted
// while the incident was open, written after it was dismissed, raise its
// severity on the record but approve no awaiting action on it.
func TestSignalRaisingAnEndedIncidentsSeverityApprovesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, _, _, id := awaitingDesk(t)
		_, err := o.Report(context.Background(), leak()) // critical, counted in memory
		require.NoError(t, err)
		require.NoError(t, o.Dismiss(context.Background(), id, "carol", "a test key"))
		require.NoError(t, o.Flush(context.Background()))
		inc := get(t, o, id)
		require.Equal(t, incident.StateDismissed, inc.State)
		t.Logf("severity %s, action %s", inc.Severity, inc.Action("disable-key").Status)
		assert.NotEqual(t, incident.ActionPending, inc.Action("disable-key").Status,
			"a dismissed incident's action was approved to run")
	})
}

// TestSignalRaisingTheSeverityDoesNotWaitForThePager: a signal that raises
// the severity (and so resolves the approval alert) does not hold the
// Report waiting for its group commit while the pager is down: the pages
// go out aside, after the batch is answered.
func TestSignalRaisingTheSeverityDoesNotWaitForThePager(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var down atomic.Bool
		pg := notify.PagerFunc(func(ctx context.Context, p notify.Page) error {
			if down.Load() {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		r, stop := startRig(t, critical, incident.SeverityHigh, nil,
			breach.WithFlushInterval(time.Millisecond), breach.WithOnCall(pg))
		defer stop()
		r.awaitAction(t, incident.ActionAwaiting)
		require.True(t, r.get(t).Paging.Open())
		down.Store(true)
		start := time.Now()
		_, err := r.o.Report(context.Background(), leak()) // critical: raises, approves, resolves the alert
		require.NoError(t, err)
		took := time.Since(start)
		assert.Less(t, took, time.Second, "a durable Report waited for on-call pages")
		time.Sleep(5 * time.Minute) // the pages' attempts run out (virtual time)
		synctest.Wait()
	})
}
