package breach_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// pageLog records the pages each level's pager received.
type pageLog struct {
	mu    sync.Mutex
	pages []notify.Page
}

func (l *pageLog) pager() notify.Pager {
	return notify.PagerFunc(func(_ context.Context, p notify.Page) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.pages = append(l.pages, p)
		return nil
	})
}

// got returns "action level responder" for each page, in order.
func (l *pageLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, p := range l.pages {
		out = append(out, string(p.Action)+" "+p.Responder)
	}
	return out
}

func (l *pageLog) all() []notify.Page {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]notify.Page(nil), l.pages...)
}

// ladder returns an orchestrator whose playbook escalates every incident
// (its investigator fails at once) under a two-level policy: primary, then
// secondary after 10 minutes, the whole ladder once more after 10 more.
func ladder(t *testing.T, clk *manualClock, log *pageLog) (*breach.Orchestrator, string) {
	t.Helper()
	pb := breach.Playbook{
		Kind:     "db.exfiltration",
		Strategy: breach.InvestigateFirst,
		Investigator: incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
			return incident.Findings{}, incident.Permanent(errors.New("the audit log is unreachable"))
		}),
		Escalation: breach.EscalationPolicy{
			Levels: []breach.EscalationLevel{
				{Responder: "primary", Pager: log.pager(), After: 10 * time.Minute},
				{Responder: "secondary", Pager: log.pager(), After: 10 * time.Minute},
			},
			Repeat: 1,
		},
	}
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithNow(clk.Now),
		breach.WithConsoleURL("https://admin.example.com/breach/"), breach.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx := context.Background()
	rc, err := o.Report(ctx, incident.Signal{Kind: "db.exfiltration", Subject: "db-7", Severity: incident.SeverityHigh})
	require.NoError(t, err)
	driveUntil(t, o, rc.IncidentID, func(inc *incident.Incident) bool { return inc.State == incident.StateEscalated })
	return o, rc.IncidentID
}

// driveUntil runs o until cond holds for the incident.
func driveUntil(t *testing.T, o *breach.Orchestrator, id string, cond func(*incident.Incident) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	_, err := o.Await(actx, id, cond)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, err)
}

func TestEscalationLadder(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	t.Run("climbs, repeats, and stops when acknowledged", func(t *testing.T) {
		clk := &manualClock{t: start}
		log := &pageLog{}
		o, id := ladder(t, clk, log)
		require.Equal(t, []string{"trigger primary"}, log.got(), "level 1 is paged with the escalation")
		first := log.all()[0]
		assert.Equal(t, "https://admin.example.com/breach/incidents/"+id, first.Link)
		assert.Contains(t, first.Reason, "the audit log is unreachable")
		assert.NotEmpty(t, first.Needed)
		assert.Equal(t, 1, first.Level)

		step := func(d time.Duration) {
			t.Helper()
			clk.Set(clk.Now().Add(d))
			require.NoError(t, o.CheckDeadlines(ctx))
		}
		step(9 * time.Minute)
		assert.Equal(t, []string{"trigger primary"}, log.got(), "level 1 still has time")
		step(time.Minute)
		assert.Equal(t, []string{"trigger primary", "trigger secondary"}, log.got(), "level 2 after 10 minutes unacknowledged")
		step(10 * time.Minute)
		assert.Equal(t, []string{"trigger primary", "trigger secondary", "trigger primary"}, log.got(), "the ladder again")

		require.NoError(t, o.Acknowledge(ctx, id, "alice@example.com"))
		assert.Equal(t, []string{"trigger primary", "trigger secondary", "trigger primary", "acknowledge primary"}, log.got(),
			"the levels paged in this round hear of the acknowledgement")
		step(time.Hour)
		assert.Len(t, log.got(), 4, "nobody is paged after an acknowledgement")
		assert.ErrorIs(t, o.Acknowledge(ctx, id, "bob@example.com"), breach.ErrNoAlert)

		inc, err := o.Head(ctx, id)
		require.NoError(t, err)
		require.NotNil(t, inc.Paging)
		assert.Equal(t, "alice@example.com", inc.Paging.AckedBy)
		assert.Equal(t, 1, inc.Paging.Round)

		// Keys: a page's key is stable per round, level and action, and
		// every page of the alert shares its alert key.
		keys := map[string]bool{}
		for _, p := range log.all() {
			assert.Equal(t, first.AlertKey, p.AlertKey)
			assert.False(t, keys[p.IdempotencyKey], "page keys differ: %s", p.IdempotencyKey)
			keys[p.IdempotencyKey] = true
		}
	})
	t.Run("exhausted when nobody answers", func(t *testing.T) {
		clk := &manualClock{t: start}
		log := &pageLog{}
		o, id := ladder(t, clk, log)
		for range 6 {
			clk.Set(clk.Now().Add(10 * time.Minute))
			require.NoError(t, o.CheckDeadlines(ctx))
		}
		assert.Equal(t, []string{"trigger primary", "trigger secondary", "trigger primary", "trigger secondary"}, log.got())
		inc, err := o.Get(ctx, id)
		require.NoError(t, err)
		assert.True(t, inc.Paging.Exhausted)
		assert.Contains(t, inc.Timeline[len(inc.Timeline)-1].Detail, "every level of the escalation policy was paged")
	})
	t.Run("resolved when nobody is needed", func(t *testing.T) {
		clk := &manualClock{t: start}
		log := &pageLog{}
		o, id := ladder(t, clk, log)
		clk.Set(clk.Now().Add(10 * time.Minute))
		require.NoError(t, o.CheckDeadlines(ctx))
		require.NoError(t, o.Dismiss(ctx, id, "alice@example.com", "a test database"))
		assert.Equal(t, []string{"trigger primary", "trigger secondary", "resolve primary", "resolve secondary"}, log.got())
		clk.Set(clk.Now().Add(time.Hour))
		require.NoError(t, o.CheckDeadlines(ctx))
		assert.Len(t, log.got(), 4)
		_, err := o.Head(ctx, id)
		require.NoError(t, err)
	})
}

func TestEscalationPolicyValidation(t *testing.T) {
	p := func(ep breach.EscalationPolicy) error {
		_, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(breach.Playbook{Kind: "k", Escalation: ep}))
		return err
	}
	assert.NoError(t, p(breach.EscalationPolicy{Levels: []breach.EscalationLevel{{Responder: "a"}}}))
	assert.ErrorIs(t, p(breach.EscalationPolicy{Levels: []breach.EscalationLevel{{Responder: "a"}, {Responder: "b"}}}),
		breach.ErrInvalidPlaybook, "a level followed by another needs After")
	assert.ErrorIs(t, p(breach.EscalationPolicy{Levels: []breach.EscalationLevel{{Responder: "a", After: -time.Second}}}),
		breach.ErrInvalidPlaybook)
	assert.ErrorIs(t, p(breach.EscalationPolicy{Levels: []breach.EscalationLevel{{Responder: "a"}}, Repeat: 1}),
		breach.ErrInvalidPlaybook, "a repeat needs After on the last level")
	_, err := breach.New(incident.NewMemStore(), breach.WithConsoleURL("admin"))
	assert.ErrorIs(t, err, breach.ErrInvalidOption)
}
