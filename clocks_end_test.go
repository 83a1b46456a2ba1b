package breach_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// endingClocks has one clock for each way a clock can end when the
// incident is closed at t0+3h after the milestones recordEndingMilestones
// records.
var endingClocks = []breach.Clock{
	{Name: "met", Start: incident.MilestoneDetected, Stop: incident.MilestoneAuthorityNotified, Within: 24 * time.Hour},
	{Name: "late", Start: incident.MilestoneDetected, Stop: incident.MilestoneEarlyWarning, Within: time.Hour},
	{Name: "missed", Start: incident.MilestoneDetected, Stop: incident.MilestoneFinalReport, Within: 2 * time.Hour},
	{Name: "running", Start: incident.MilestoneDetected, Stop: incident.MilestoneDisclosureFiled, Within: 72 * time.Hour},
	{Name: "never started", Start: incident.MilestoneMateriality, Stop: incident.MilestoneDisclosureFiled, Within: 96 * time.Hour},
}

// clocksRun runs a playbook with the ending clocks and no plugin on clock
// clk (at t0) until the incident waits in resolution.
func clocksRun(t *testing.T) (*breach.Orchestrator, *manualClock, string, func()) {
	t.Helper()
	clk := &manualClock{t: t0}
	o, err := breach.New(incident.NewMemStore(), breach.WithNow(clk.Now), quiet,
		breach.WithPlaybook(breach.Playbook{Kind: "apikey.compromised", Clocks: endingClocks}))
	require.NoError(t, err)
	stop := running(t, o)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	await(t, o, rc.IncidentID, incident.StateResolving)
	return o, clk, rc.IncidentID, stop
}

// TestClocksEndWithClose: when the incident closes, every clock is met,
// late, missed or not applicable (with a reason), and ended.
func TestClocksEndWithClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, clk, id, stop := clocksRun(t)
		defer stop()
		ctx := context.Background()
		clk.Set(t0.Add(time.Hour - time.Minute))
		require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneAuthorityNotified, "dora", "filed"))
		clk.Set(t0.Add(2 * time.Hour))
		require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneEarlyWarning, "dora", "sent late"))
		clk.Set(t0.Add(3 * time.Hour))
		require.NoError(t, o.Resolve(ctx, id, "alice", "done"))
		require.NoError(t, o.Close(ctx, id, "bob", "reviewed"))

		inc := get(t, o, id)
		require.Equal(t, incident.StateClosed, inc.State)
		want := map[string]incident.DeadlineStatus{
			"met": incident.DeadlineMet, "late": incident.DeadlineLate, "missed": incident.DeadlineMissed,
			"running": incident.DeadlineNotApplicable, "never started": incident.DeadlineNotApplicable,
		}
		require.Len(t, inc.Deadlines, len(want))
		for _, d := range inc.Deadlines {
			assert.Equal(t, want[d.Name], d.Status, d.Name)
			assert.False(t, d.EndedAt.IsZero(), "%s ended", d.Name)
			if d.Status == incident.DeadlineNotApplicable {
				assert.NotEmpty(t, d.NotApplicableReason, d.Name)
				assert.Contains(t, d.NotApplicableReason, "closed", d.Name)
			}
			assert.True(t, hasEntry(inc, "", "clock \""+d.Name+"\""), "%s is on the timeline", d.Name)
		}
		assert.NoError(t, inc.Timeline.Verify())
	})
}

// TestClocksEndWithDismiss: a dismissed incident's clocks do not apply.
func TestClocksEndWithDismiss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &manualClock{t: t0}
		pb := apiKeyPlaybook(&fakes{}, nil)
		pb.Containment[0].Approval = &containment.ApprovalRule{} // it waits in containing
		pb.Clocks = endingClocks
		o, err := breach.New(incident.NewMemStore(), breach.WithNow(clk.Now), quiet, breach.WithPlaybook(pb))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		ctx := context.Background()
		rc, err := o.Report(ctx, leak())
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, incident.StateContaining, get(t, o, rc.IncidentID).State)
		clk.Set(t0.Add(30 * time.Minute))
		require.NoError(t, o.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
		inc := get(t, o, rc.IncidentID)
		require.Equal(t, incident.StateDismissed, inc.State)
		require.Len(t, inc.Deadlines, len(endingClocks))
		for _, d := range inc.Deadlines {
			assert.Equal(t, incident.DeadlineNotApplicable, d.Status, d.Name)
			assert.Contains(t, d.NotApplicableReason, "dismissed", d.Name)
			assert.Equal(t, t0.Add(30*time.Minute), d.EndedAt, d.Name)
		}
	})
}

// TestMarkClockNotApplicable: a person stops a clock for good, with a
// reason; without one, or for a clock the incident does not have or that
// ended, nothing changes.
func TestMarkClockNotApplicable(t *testing.T) {
	o, clk, _, id := clockedIncident(t, breach.GDPR(), breach.HIPAA())
	ctx := context.Background()
	gdpr, hipaa := breach.GDPR().Name, breach.HIPAA().Name
	clk.Set(t0.Add(time.Hour))
	require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneCustomersNotified, "dora", "told")) // HIPAA met

	tests := []struct {
		name, clock, reason string
		want                error
	}{
		{"no reason", gdpr, "", breach.ErrInvalidInput},
		{"unknown clock", "SOX", "not a public company", breach.ErrNoSuchClock},
		{"met clock", hipaa, "no health data", breach.ErrNoSuchClock},
		{"running clock", gdpr, "no personal data involved", nil},
		{"ended clock", gdpr, "still no personal data", breach.ErrNoSuchClock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := get(t, o, id)
			err := o.MarkClockNotApplicable(ctx, id, tt.clock, "legal", tt.reason)
			after := get(t, o, id)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
				assert.Equal(t, before.Version, after.Version, "nothing recorded")
				return
			}
			require.NoError(t, err)
			d := after.Deadline(tt.clock)
			assert.Equal(t, incident.DeadlineNotApplicable, d.Status)
			assert.Equal(t, tt.reason, d.NotApplicableReason)
			assert.Equal(t, t0.Add(time.Hour), d.EndedAt)
			assert.True(t, hasEntry(after, "legal", "marked not applicable", tt.reason))
		})
	}
}

// TestGameDayEndsWhenTheIncidentCloses: a rehearsal with a GDPR clock whose
// incident is closed after an hour without notifying the authority ends
// quickly, the clock not applicable.
func TestGameDayEndsWhenTheIncidentCloses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	res, err := breach.RunGameDay(ctx, breach.GameDay{
		Playbook: breach.Playbook{Kind: "apikey.compromised", Clocks: []breach.Clock{breach.GDPR()},
			Tasks: []breach.TaskSpec{{ID: "scan", Title: "Scan repositories", Mandatory: true}}},
		Signal:  leak(),
		Steps:   []breach.Step{breach.ResolveStep(time.Hour, "alice", "key rotated")},
		Horizon: 5 * 24 * time.Hour,
	})
	require.NoError(t, err)
	t.Logf("rehearsal took %v", time.Since(start))
	assert.Equal(t, incident.StateClosed, res.Incident.State)
	d := res.Incident.Deadline(breach.GDPR().Name)
	require.NotNil(t, d)
	assert.Equal(t, incident.DeadlineNotApplicable, d.Status)
	assert.NotEmpty(t, d.NotApplicableReason)
	assert.Empty(t, res.Pages, "no warning or miss for a clock that ended with the incident")
}
