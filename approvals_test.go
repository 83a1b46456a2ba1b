package breach_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
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
)

// rig is an orchestrator running the API-key playbook inside a synctest
// bubble, with an on-call pager, and the incident of one reported leak.
type rig struct {
	f  *fakes
	p  *pager
	o  *breach.Orchestrator
	id string
}

// startRig runs the API-key playbook with rule on its disable-key action
// and inv as investigator (nil: no impact), and reports a leak of severity
// sev. Call it inside synctest.Test; defer the returned stop.
func startRig(t *testing.T, rule *containment.ApprovalRule, sev incident.Severity, inv incident.Investigator, opts ...breach.Option) (rig, func()) {
	t.Helper()
	r := rig{f: &fakes{}, p: &pager{}}
	if inv == nil {
		inv = impactInvestigator(incident.Impact{})
	}
	pb := apiKeyPlaybook(r.f, inv)
	pb.Containment[0].Approval = rule
	opts = append([]breach.Option{breach.WithPlaybook(pb), breach.WithOnCall(r.p.notifier()),
		breach.WithLogger(slog.New(slog.DiscardHandler)), breach.WithFlushInterval(time.Minute)}, opts...)
	o, err := breach.New(incident.NewMemStore(), opts...)
	require.NoError(t, err)
	r.o = o
	stop := running(t, o)
	sig := leak()
	sig.Severity = sev
	rc, err := o.Report(context.Background(), sig)
	require.NoError(t, err)
	r.id = rc.IncidentID
	return r, stop
}

func (r rig) get(t *testing.T) *incident.Incident {
	t.Helper()
	inc, err := r.o.Get(context.Background(), r.id)
	require.NoError(t, err)
	return inc
}

func (r rig) containCalls() int {
	contained, _, _ := r.f.snapshot()
	return len(contained)
}

// awaitAction waits until the disable-key action has status s, then until
// everything in the bubble is idle.
func (r rig) awaitAction(t *testing.T, s incident.ActionStatus) *incident.Incident {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err := r.o.Await(ctx, r.id, func(inc *incident.Incident) bool {
		a := inc.Action("disable-key")
		return a != nil && a.Status == s
	})
	require.NoError(t, err, "disable-key never became %s", s)
	synctest.Wait()
	return r.get(t)
}

var critical = &containment.ApprovalRule{AutoFrom: incident.SeverityCritical}

func TestApprovalBySeverity(t *testing.T) {
	tests := []struct {
		name  string
		rule  *containment.ApprovalRule
		sev   incident.Severity
		waits bool
	}{
		{"critical at AutoFrom critical runs at once", critical, incident.SeverityCritical, false},
		{"high below AutoFrom waits", critical, incident.SeverityHigh, true},
		{"low below AutoFrom waits", critical, incident.SeverityLow, true},
		{"no AutoFrom: even critical waits", &containment.ApprovalRule{}, incident.SeverityCritical, true},
		{"no rule: low runs at once", nil, incident.SeverityLow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, stop := startRig(t, tt.rule, tt.sev, nil)
				defer stop()
				if !tt.waits {
					inc := await(t, r.o, r.id, incident.StateResolving)
					synctest.Wait()
					assert.Equal(t, 1, r.containCalls())
					assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
					assert.Nil(t, inc.Actions[0].Approval)
					assert.Zero(t, r.p.count(pageApproval))
					assert.False(t, hasEntry(inc, incident.ActorSystem, "needs approval"))
					return
				}
				requested := time.Now()
				inc := r.awaitAction(t, incident.ActionAwaiting)
				assert.Equal(t, incident.StateContaining, inc.State)
				assert.Zero(t, r.containCalls())
				a := inc.Actions[0].Approval
				require.NotNil(t, a)
				sameInstant(t, requested, a.RequestedAt, "requested")
				assert.True(t, a.Due.IsZero(), "no timeout: waits for ever")
				assert.True(t, a.DecidedAt.IsZero(), "not decided")
				assert.True(t, hasEntry(inc, incident.ActorSystem, `containment action "disable-key" needs approval at severity `+tt.sev.String()))
				msgs := r.p.all()
				require.Len(t, msgs, 1)
				assert.True(t, strings.HasPrefix(msgs[0].Reason, pageApproval+"disable-key"), msgs[0].Reason)
				assert.Equal(t, r.id, msgs[0].IncidentID)

				// Nobody answers for a day: nothing moves, nobody is paged again.
				time.Sleep(24 * time.Hour)
				synctest.Wait()
				inc = r.get(t)
				assert.Equal(t, incident.StateContaining, inc.State)
				assert.Equal(t, incident.ActionAwaiting, inc.Actions[0].Status)
				assert.Zero(t, r.containCalls())
				assert.Len(t, r.p.all(), 1)
			})
		})
	}
}

func TestApproveOrDeny(t *testing.T) {
	tests := []struct {
		name    string
		decide  func(o *breach.Orchestrator, ctx context.Context, id, action, actor, note string) error
		status  incident.ActionStatus
		calls   int
		verdict string
	}{
		{"approve", (*breach.Orchestrator).Approve, incident.ActionApplied, 1, "approved"},
		{"deny", (*breach.Orchestrator).Deny, incident.ActionDenied, 0, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, stop := startRig(t, critical, incident.SeverityLow, impactInvestigator(incident.Impact{
					Customers: []incident.Customer{customer}, Data: []incident.DataCategory{incident.DataAPIAccess}}))
				defer stop()
				r.awaitAction(t, incident.ActionAwaiting)
				time.Sleep(time.Hour) // the approver takes an hour
				decided := time.Now()
				require.NoError(t, tt.decide(r.o, context.Background(), r.id, "disable-key", "alice", "owner agreed"))

				inc := await(t, r.o, r.id, incident.StateResolving)
				synctest.Wait()
				assert.Equal(t, tt.calls, r.containCalls())
				assert.Equal(t, []string{"detected>containing", "containing>contained", "contained>investigating",
					"investigating>notifying", "notifying>resolving"}, transitions(inc), "the incident proceeds either way")
				rec := inc.Action("disable-key")
				require.NotNil(t, rec)
				assert.Equal(t, tt.status, rec.Status)
				a := rec.Approval
				require.NotNil(t, a)
				assert.Equal(t, "alice", a.By)
				assert.Equal(t, "owner agreed", a.Note)
				assert.Equal(t, tt.calls == 1, a.Approved)
				assert.False(t, a.ByTimeout)
				sameInstant(t, decided, a.DecidedAt, "decided")
				assert.True(t, hasEntry(inc, "alice", `containment action "disable-key" `+tt.verdict+": owner agreed"))

				// The customer notice only claims what was done.
				_, _, sent := r.f.snapshot()
				require.Len(t, sent, 1)
				assert.Equal(t, tt.calls == 1, strings.Contains(sent[0].Text, "We disabled the API key."))
				assert.Equal(t, 1, r.p.count(pageApproval))
				assert.Zero(t, r.p.count(pageEscalate))
			})
		})
	}
}

func TestApprovalTimeoutProceeds(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration // of Run's deadline loop
		direct   bool          // the test calls CheckDeadlines itself
	}{
		{"Run's deadline loop", time.Minute, false},
		{"CheckDeadlines", 1000 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rule := &containment.ApprovalRule{AutoFrom: incident.SeverityCritical, Timeout: 10 * time.Minute,
					OnTimeout: containment.ProceedOnTimeout}
				r, stop := startRig(t, rule, incident.SeverityLow, nil, breach.WithDeadlineInterval(tt.interval))
				defer stop()
				inc := r.awaitAction(t, incident.ActionAwaiting)
				a := inc.Actions[0].Approval
				require.NotNil(t, a)
				sameInstant(t, a.RequestedAt.Add(10*time.Minute), a.Due, "due")

				if tt.direct {
					time.Sleep(10*time.Minute - time.Second)
					require.NoError(t, r.o.CheckDeadlines(context.Background()))
					synctest.Wait()
					assert.Equal(t, incident.ActionAwaiting, r.get(t).Actions[0].Status, "not yet timed out")
					assert.Zero(t, r.containCalls())
					time.Sleep(time.Second)
					require.NoError(t, r.o.CheckDeadlines(context.Background()))
				}

				inc = await(t, r.o, r.id, incident.StateResolving)
				synctest.Wait()
				assert.Equal(t, 1, r.containCalls(), "break-glass: the action ran")
				rec := inc.Actions[0]
				assert.Equal(t, incident.ActionApplied, rec.Status)
				a = rec.Approval
				require.NotNil(t, a)
				assert.True(t, a.ByTimeout)
				assert.True(t, a.Approved)
				assert.Equal(t, incident.ActorSystem, a.By)
				waited := a.DecidedAt.Sub(a.RequestedAt)
				assert.GreaterOrEqual(t, waited, 10*time.Minute)
				assert.Less(t, waited, 10*time.Minute+tt.interval)
				assert.True(t, hasEntry(inc, incident.ActorSystem, `containment action "disable-key" approved by timeout (break-glass)`))
				assert.Equal(t, []string{"detected>containing", "containing>contained", "contained>investigating",
					"investigating>resolving"}, transitions(inc))
				assert.Equal(t, 1, r.p.count(pageApproval))
				assert.Zero(t, r.p.count(pageEscalate))
			})
		})
	}
}

func TestApprovalTimeoutEscalates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rule := &containment.ApprovalRule{AutoFrom: incident.SeverityCritical, Timeout: 10 * time.Minute} // EscalateOnTimeout
		r, stop := startRig(t, rule, incident.SeverityLow, nil, breach.WithDeadlineInterval(time.Minute))
		defer stop()
		r.awaitAction(t, incident.ActionAwaiting)

		inc := await(t, r.o, r.id, incident.StateEscalated)
		synctest.Wait()
		require.NotNil(t, inc.Escalation)
		assert.Equal(t, incident.StateContaining, inc.Escalation.From)
		assert.Contains(t, inc.Escalation.Reason, `approval for containment action "disable-key" not given in time`)
		assert.Equal(t, 1, r.p.count(pageApproval))
		assert.Equal(t, 1, r.p.count(pageEscalate+r.id))
		rec := inc.Actions[0]
		assert.Equal(t, incident.ActionAwaiting, rec.Status, "the request stays open for a person")
		assert.True(t, rec.Approval.DecidedAt.IsZero(), "not decided")

		// Escalated once, however long nobody acts.
		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Len(t, r.p.all(), 2)
		inc = r.get(t)
		assert.Equal(t, incident.StateEscalated, inc.State)
		timedOut := 0
		for _, e := range inc.Timeline {
			if strings.Contains(e.Detail, "not given in time") && e.Type == incident.EntryContainment {
				timedOut++
			}
		}
		assert.Equal(t, 1, timedOut, "the timeout is recorded once")

		// Approving does not resume containment by itself ...
		require.NoError(t, r.o.Approve(context.Background(), r.id, "disable-key", "alice", "go ahead"))
		synctest.Wait()
		inc = r.get(t)
		assert.Equal(t, incident.StateEscalated, inc.State)
		assert.Equal(t, incident.ActionPending, inc.Actions[0].Status)
		assert.Zero(t, r.containCalls())

		// ... Retry does.
		require.NoError(t, r.o.Retry(context.Background(), r.id, "alice", "approved now"))
		inc = await(t, r.o, r.id, incident.StateResolving)
		synctest.Wait()
		assert.Equal(t, 1, r.containCalls())
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
		assert.Equal(t, "alice", inc.Actions[0].Approval.By)
		assert.False(t, inc.Actions[0].Approval.ByTimeout)
		assert.Equal(t, []string{"detected>containing", "containing>escalated", "escalated>containing", "containing>contained",
			"contained>investigating", "investigating>resolving"}, transitions(inc))
		assert.Len(t, r.p.all(), 2)
	})
}

func TestNoApprovalPending(t *testing.T) {
	approve := (*breach.Orchestrator).Approve
	deny := (*breach.Orchestrator).Deny
	type decideFunc = func(o *breach.Orchestrator, ctx context.Context, id, action, actor, note string) error
	tests := []struct {
		name   string
		rule   *containment.ApprovalRule
		before []decideFunc // decisions taken first, which succeed
		call   decideFunc
		action string
		want   error
	}{
		{"unknown action", critical, nil, approve, "rotate-everything", breach.ErrNoApprovalPending},
		{"action that needs no approval", nil, nil, approve, "disable-key", breach.ErrNoApprovalPending},
		{"deny an action that needs no approval", nil, nil, deny, "disable-key", breach.ErrNoApprovalPending},
		{"approved twice", critical, []decideFunc{approve}, approve, "disable-key", breach.ErrNoApprovalPending},
		{"denied, then approved", critical, []decideFunc{deny}, approve, "disable-key", breach.ErrNoApprovalPending},
		{"approved, then denied", critical, []decideFunc{approve}, deny, "disable-key", breach.ErrNoApprovalPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, stop := startRig(t, tt.rule, incident.SeverityLow, nil)
				defer stop()
				if tt.rule != nil {
					r.awaitAction(t, incident.ActionAwaiting)
				}
				for _, d := range tt.before {
					require.NoError(t, d(r.o, context.Background(), r.id, "disable-key", "alice", "first"))
				}
				synctest.Wait() // the incident went as far as it goes
				inc := r.get(t)
				statuses := inc.Actions[0].Status

				assert.ErrorIs(t, tt.call(r.o, context.Background(), r.id, tt.action, "bob", "second"), tt.want)
				synctest.Wait()
				after := r.get(t)
				assert.Equal(t, inc.Version, after.Version, "nothing was written")
				assert.Equal(t, statuses, after.Actions[0].Status)
			})
		})
	}

	o, err := breach.New(incident.NewMemStore())
	require.NoError(t, err)
	assert.ErrorIs(t, o.Approve(context.Background(), "inc_nope", "disable-key", "", "x"), breach.ErrInvalidInput)
	assert.ErrorIs(t, o.Deny(context.Background(), "inc_nope", "disable-key", "alice", "x"), incident.ErrNotFound)
}

func TestApprovalRuleValidated(t *testing.T) {
	noop := containment.Func(func(context.Context, containment.Request) error { return nil })
	tests := []struct {
		name string
		rule *containment.ApprovalRule
		ok   bool
	}{
		{"none", nil, true},
		{"always", &containment.ApprovalRule{}, true},
		{"break-glass", &containment.ApprovalRule{Timeout: time.Hour, OnTimeout: containment.ProceedOnTimeout}, true},
		{"negative timeout", &containment.ApprovalRule{Timeout: -time.Second}, false},
		{"unknown timeout action", &containment.ApprovalRule{Timeout: time.Hour, OnTimeout: 2}, false},
		{"negative timeout action", &containment.ApprovalRule{OnTimeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(breach.Playbook{Kind: "k",
				Containment: []containment.Action{{Name: "a", Container: noop, Approval: tt.rule}}}))
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, breach.ErrInvalidPlaybook)
			}
		})
	}
}

// verifyingContainer contains, and checks with Verify that it holds.
type verifyingContainer struct {
	contains, verifies atomic.Int32
	keys               chan string
	verify             func(attempt int) error
}

func (c *verifyingContainer) Contain(ctx context.Context, req containment.Request) error {
	c.contains.Add(1)
	return nil
}

func (c *verifyingContainer) Verify(ctx context.Context, req containment.Request) error {
	c.verifies.Add(1)
	c.keys <- req.IdempotencyKey
	return c.verify(req.Attempt)
}

func TestVerifiedContainment(t *testing.T) {
	stillAccepted := errors.New("the key is still accepted")
	tests := []struct {
		name     string
		verify   func(attempt int) error
		attempts int
		state    incident.State
		status   incident.ActionStatus
	}{
		{"verified on the second attempt", func(a int) error {
			if a == 1 {
				return stillAccepted
			}
			return nil
		}, 2, incident.StateResolving, incident.ActionApplied},
		{"never verified", func(int) error { return stillAccepted }, 3, incident.StateEscalated, incident.ActionFailed},
		{"verification fails for good", func(int) error { return incident.Permanent(stillAccepted) }, 1,
			incident.StateEscalated, incident.ActionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakes{}
				vc := &verifyingContainer{verify: tt.verify, keys: make(chan string, 10)}
				pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
				pb.Containment[0].Container = vc
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				inc := await(t, o, rc.IncidentID, incident.StateResolving, incident.StateEscalated)
				synctest.Wait()

				assert.Equal(t, tt.state, inc.State)
				rec := inc.Actions[0]
				assert.Equal(t, tt.status, rec.Status)
				assert.Equal(t, tt.attempts, rec.Attempts)
				assert.EqualValues(t, tt.attempts, vc.contains.Load(), "a failed verification fails the attempt")
				assert.EqualValues(t, tt.attempts, vc.verifies.Load())
				close(vc.keys)
				for k := range vc.keys {
					assert.Equal(t, rec.IdempotencyKey, k)
				}
				if tt.state == incident.StateEscalated {
					require.NotNil(t, inc.Escalation)
					assert.Contains(t, inc.Escalation.Reason, "not verified")
					assert.Contains(t, inc.Escalation.Reason, stillAccepted.Error())
					assert.Contains(t, rec.LastError, "not verified")
				} else {
					assert.Empty(t, rec.LastError)
				}
			})
		})
	}
}

// decisionEntry reports whether inc has a decision entry by actor that
// contains detail.
func decisionEntry(inc *incident.Incident, actor, detail string) bool {
	for _, e := range inc.Timeline {
		if e.Type == incident.EntryDecision && e.Actor == actor && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

var (
	customersOnly  = incident.Impact{Customers: []incident.Customer{customer}}
	customerData   = incident.Impact{Customers: []incident.Customer{customer}, Data: []incident.DataCategory{incident.DataAPIAccess}}
	overrideReason = "the contract requires notice"
)

func TestOverrideToNotifyFromResolving(t *testing.T) {
	tests := []struct {
		name   string
		impact incident.Impact
		auto   string // the automatic decision's reason
		state  incident.State
		sent   int
	}{
		{"customers but no data: notices go out", customersOnly, "customers identified but no customer data affected",
			incident.StateResolving, 1},
		{"no customer known: escalated", incident.Impact{}, "the investigation found no customer data affected",
			incident.StateEscalated, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, stop := startRig(t, nil, incident.SeverityCritical, impactInvestigator(tt.impact))
				defer stop()
				inc := await(t, r.o, r.id, incident.StateResolving)
				synctest.Wait()
				require.NotNil(t, inc.Decision)
				require.False(t, inc.Decision.Notify)
				require.False(t, inc.Decision.Override)
				require.Equal(t, tt.auto, inc.Decision.Reason)
				_, _, sent := r.f.snapshot()
				require.Empty(t, sent)

				overridden := time.Now()
				require.NoError(t, r.o.OverrideDecision(context.Background(), r.id, true, "erin", overrideReason))
				await(t, r.o, r.id, tt.state)
				synctest.Wait()
				inc = r.get(t)
				assert.Equal(t, tt.state, inc.State)
				d := inc.Decision
				require.NotNil(t, d)
				assert.True(t, d.Notify)
				assert.True(t, d.Override)
				assert.Equal(t, "erin", d.By)
				assert.Equal(t, overrideReason, d.Reason)
				sameInstant(t, overridden, d.At, "decided")
				assert.True(t, decisionEntry(inc, "erin", "decision overridden: notify customers = true (was false ("+tt.auto+")): "+overrideReason))
				assert.Equal(t, []string{"Generate a new API key."}, inc.Recommendations)
				trs := transitions(inc)
				assert.Contains(t, trs, "resolving>notifying")

				_, _, sent = r.f.snapshot()
				assert.Len(t, sent, tt.sent)
				if tt.sent > 0 {
					assert.Equal(t, customer, sent[0].Recipient)
					assert.Contains(t, sent[0].Text, "Generate a new API key.")
					assert.Equal(t, "notifying>resolving", trs[len(trs)-1])
					assert.False(t, inc.NotifiedAt.IsZero())
					return
				}
				require.NotNil(t, inc.Escalation)
				assert.Equal(t, incident.StateNotifying, inc.Escalation.From)
				assert.Contains(t, inc.Escalation.Reason, "no affected customer is known")
				assert.Equal(t, 1, r.p.count(pageEscalate+r.id))
			})
		})
	}
}

// TestOverrideBeforeInvestigationFinishes: a person overrides the decision
// through a second replica while the investigation runs; the investigation
// that finishes afterwards does not replace it.
func TestOverrideBeforeInvestigationFinishes(t *testing.T) {
	tests := []struct {
		name        string
		impact      incident.Impact
		notify      bool
		auto        bool // what the automatic decision would have been
		sent        int
		transitions []string
	}{
		{"to notify", customersOnly, true, false, 1, []string{"detected>containing", "containing>contained",
			"contained>investigating", "investigating>notifying", "notifying>resolving"}},
		{"not to notify", customerData, false, true, 0, []string{"detected>containing", "containing>contained",
			"contained>investigating", "investigating>resolving"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				started, release := make(chan struct{}, 1), make(chan struct{})
				inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
					started <- struct{}{}
					select {
					case <-release:
						return incident.Findings{Impact: tt.impact}, nil
					case <-ctx.Done():
						return incident.Findings{}, ctx.Err()
					}
				})
				f := &fakes{}
				store := incident.NewMemStore()
				pb := apiKeyPlaybook(f, inv)
				o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				<-started

				replica, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				require.NoError(t, replica.OverrideDecision(context.Background(), rc.IncidentID, tt.notify, "erin", overrideReason))
				inc, err := replica.Get(context.Background(), rc.IncidentID)
				require.NoError(t, err)
				require.Equal(t, incident.StateInvestigating, inc.State)
				require.Nil(t, inc.Investigation, "the investigation is still running")

				close(release)
				inc = await(t, o, rc.IncidentID, incident.StateResolving)
				synctest.Wait()
				require.NotNil(t, inc.Investigation)
				d := inc.Decision
				require.NotNil(t, d)
				assert.Equal(t, tt.notify, d.Notify)
				assert.True(t, d.Override)
				assert.Equal(t, "erin", d.By)
				assert.Equal(t, overrideReason, d.Reason)
				assert.True(t, decisionEntry(inc, incident.ActorSystem, "the override by erin stands"))
				assert.True(t, decisionEntry(inc, incident.ActorSystem, "automatic decision would be notify customers = "+
					strconv.FormatBool(tt.auto)))
				assert.Equal(t, tt.transitions, transitions(inc))
				_, _, sent := f.snapshot()
				assert.Len(t, sent, tt.sent)
				assert.NoError(t, inc.Timeline.Verify())
			})
		})
	}
}

// TestOverrideSurvivesRetriedInvestigation: the investigation failed and
// escalated; a person decides to notify and retries. The retried
// investigation does not replace the person's decision.
func TestOverrideSurvivesRetriedInvestigation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			if calls.Add(1) == 1 {
				return incident.Findings{}, incident.Permanent(errors.New("activity logs unavailable"))
			}
			return incident.Findings{Impact: customersOnly}, nil
		})
		r, stop := startRig(t, nil, incident.SeverityCritical, inv)
		defer stop()
		inc := await(t, r.o, r.id, incident.StateEscalated)
		require.Equal(t, incident.StateInvestigating, inc.Escalation.From)

		require.NoError(t, r.o.OverrideDecision(context.Background(), r.id, true, "erin", overrideReason))
		require.NoError(t, r.o.Retry(context.Background(), r.id, "erin", "logs are back"))
		await(t, r.o, r.id, incident.StateResolving)
		synctest.Wait()
		inc = r.get(t)
		require.NotNil(t, inc.Decision)
		assert.True(t, inc.Decision.Override)
		assert.True(t, inc.Decision.Notify)
		assert.Equal(t, "erin", inc.Decision.By)
		assert.True(t, decisionEntry(inc, incident.ActorSystem, "the override by erin stands"))
		_, _, sent := r.f.snapshot()
		assert.Len(t, sent, 1)
		assert.EqualValues(t, 2, calls.Load())
	})
}

func TestOverrideDecisionLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, stop := startRig(t, nil, incident.SeverityCritical, impactInvestigator(customersOnly))
		ctx := context.Background()
		await(t, r.o, r.id, incident.StateResolving)
		stop() // nothing drives the incident on: it stays in notifying

		require.NoError(t, r.o.OverrideDecision(ctx, r.id, true, "erin", overrideReason))
		require.Equal(t, incident.StateNotifying, r.get(t).State)
		err := r.o.OverrideDecision(ctx, r.id, false, "frank", "changed my mind")
		assert.ErrorIs(t, err, breach.ErrDecisionLocked)
		inc := r.get(t)
		assert.True(t, inc.Decision.Notify)
		assert.Equal(t, "erin", inc.Decision.By)

		stop = running(t, r.o)
		defer stop()
		await(t, r.o, r.id, incident.StateResolving)
		_, _, sent := r.f.snapshot()
		assert.Len(t, sent, 1)

		require.NoError(t, r.o.CompleteTask(ctx, r.id, "scan", "erin", "scanned"))
		require.NoError(t, r.o.Resolve(ctx, r.id, "erin", "done"))
		assert.ErrorIs(t, r.o.OverrideDecision(ctx, r.id, false, "frank", "x"), breach.ErrDecisionLocked)
		require.NoError(t, r.o.Close(ctx, r.id, "erin", "reviewed"))
		assert.ErrorIs(t, r.o.OverrideDecision(ctx, r.id, false, "frank", "x"), breach.ErrDecisionLocked)
		assert.ErrorIs(t, r.o.OverrideDecision(ctx, r.id, false, "", "x"), breach.ErrInvalidInput)
		synctest.Wait()
		inc = r.get(t)
		assert.Equal(t, incident.StateClosed, inc.State)
		assert.True(t, inc.Decision.Notify, "the refused overrides changed nothing")
		assert.Equal(t, "erin", inc.Decision.By)
	})
}
