package breach_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// TestLateFindingsOfATimedOutAttemptAreDropped: the first investigation
// attempt ignores its context and hands over findings after the policy
// timed it out, while the second attempt runs; the second attempt's
// findings are recorded, and (under -race) the late hand-over does not race
// with them.
func TestLateFindingsOfATimedOutAttemptAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		secondStarted := make(chan struct{})
		var calls atomic.Int32
		inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			if calls.Add(1) == 1 {
				<-secondStarted // long after the policy's timeout
				return incident.Findings{RootCause: "first attempt", Impact: incident.Impact{
					Customers: customers(1), Data: []incident.DataCategory{incident.DataFinancial}}}, nil
			}
			close(secondStarted)
			time.Sleep(100 * time.Millisecond) // slow work, while the first attempt hands over
			return incident.Findings{RootCause: "second attempt"}, nil
		})
		pb := apiKeyPlaybook(&fakes{}, inv)
		pb.Investigation = incident.Policy{Attempts: 2, Timeout: time.Second, Backoff: time.Second}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateResolving, incident.StateEscalated)
		synctest.Wait()
		inc = get(t, o, inc.ID)
		assert.EqualValues(t, 2, calls.Load())
		require.NotNil(t, inc.Investigation)
		assert.Equal(t, "second attempt", inc.Investigation.RootCause)
		assert.Empty(t, inc.Investigation.Impact.Customers)
		assert.Equal(t, 2, inc.Investigation.Attempts)
		require.NotNil(t, inc.Decision)
		assert.False(t, inc.Decision.Notify, "the decision is the second attempt's")
		assert.Equal(t, incident.StateResolving, inc.State)
	})
}

// TestEachInvestigationAttemptHasItsOwnCopy: the first attempt changes
// every part of the incident it was handed and fails; the second is handed
// the incident as it was, and what the first changed reaches neither the
// record nor the next step.
func TestEachInvestigationAttemptHasItsOwnCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		var second *incident.Incident
		inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			if calls.Add(1) == 1 {
				inc.Summary = "changed by the first attempt"
				for i := range inc.Actions {
					inc.Actions[i].Status = incident.ActionFailed
				}
				for m := range inc.Milestones {
					inc.Milestones[m] = time.Time{}
				}
				for i := range inc.Signals.Samples {
					inc.Signals.Samples[i].Summary = "changed by the first attempt"
				}
				return incident.Findings{}, errors.New("transient")
			}
			second = inc.Clone()
			return incident.Findings{RootCause: "second attempt"}, nil
		})
		pb := apiKeyPlaybook(&fakes{}, inv)
		pb.Investigation = incident.Policy{Attempts: 2, Timeout: time.Second, Backoff: time.Millisecond}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateResolving, incident.StateEscalated)
		synctest.Wait()
		inc = get(t, o, inc.ID)
		require.EqualValues(t, 2, calls.Load())
		require.NotNil(t, second)
		for _, seen := range []*incident.Incident{second, inc} {
			assert.NotEqual(t, "changed by the first attempt", seen.Summary)
			require.NotEmpty(t, seen.Actions)
			assert.Equal(t, incident.ActionApplied, seen.Actions[0].Status)
			require.NotEmpty(t, seen.Milestones)
			for m, at := range seen.Milestones {
				assert.False(t, at.IsZero(), "milestone %s", m)
			}
			require.NotEmpty(t, seen.Signals.Samples)
			assert.NotEqual(t, "changed by the first attempt", seen.Signals.Samples[0].Summary)
		}
		require.NotNil(t, inc.Investigation)
		assert.Equal(t, "second attempt", inc.Investigation.RootCause)
	})
}
