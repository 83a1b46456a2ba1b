package breach_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // America/New_York without the host's zoneinfo

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// manualClock is a clock the test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// pager records what was sent to the on-call notifier.
type pager struct {
	mu   sync.Mutex
	msgs []notify.Page
}

func (p *pager) notifier() notify.Pager {
	return notify.PagerFunc(func(ctx context.Context, m notify.Page) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.msgs = append(p.msgs, m)
		return nil
	})
}

// count returns how many pages had a subject starting with prefix.
func (p *pager) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.msgs {
		if m.Action == notify.PageTrigger && (strings.HasPrefix(m.Reason, prefix) || strings.HasPrefix(m.Needed, prefix)) {
			n++
		}
	}
	return n
}

// all returns the pages that called for a person (triggers).
func (p *pager) all() []notify.Page {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []notify.Page
	for _, m := range p.msgs {
		if m.Action == notify.PageTrigger {
			out = append(out, m)
		}
	}
	return out
}

const (
	pageWarning  = "deadline approaching: "
	pageMissed   = "deadline missed: "
	pageApproval = "containment waits for approval: "
	pageEscalate = "take over incident "
)

// t0 is when the leak is detected in the manual-clock tests: a Monday.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clockedIncident opens an incident of a playbook that has only the given
// clocks, on an orchestrator whose clock is clk (set to t0) and which is
// never Run: the test drives the checks with CheckDeadlines.
func clockedIncident(t *testing.T, clocks ...breach.Clock) (*breach.Orchestrator, *manualClock, *pager, string) {
	t.Helper()
	clk := &manualClock{t: t0}
	p := &pager{}
	o, err := breach.New(incident.NewMemStore(),
		breach.WithNow(clk.Now), breach.WithOnCall(p.notifier()), breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithPlaybook(breach.Playbook{Kind: "apikey.compromised", Clocks: clocks}))
	require.NoError(t, err)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	require.True(t, rc.Opened)
	return o, clk, p, rc.IncidentID
}

// checkAt sets the clock to t0+d and checks the deadlines.
func checkAt(t *testing.T, o *breach.Orchestrator, clk *manualClock, d time.Duration) {
	t.Helper()
	clk.Set(t0.Add(d))
	require.NoError(t, o.CheckDeadlines(context.Background()))
}

func deadlineOf(t *testing.T, o *breach.Orchestrator, id, name string) incident.Deadline {
	t.Helper()
	inc, err := o.Get(context.Background(), id)
	require.NoError(t, err)
	d := inc.Deadline(name)
	require.NotNil(t, d, "incident has clock %q", name)
	return *d
}

// hasEntry reports whether the timeline has an entry by actor whose detail
// contains all of parts.
func hasEntry(inc *incident.Incident, actor string, parts ...string) bool {
	for _, e := range inc.Timeline {
		if actor != "" && e.Actor != actor {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(e.Detail, p)
		}
		if all {
			return true
		}
	}
	return false
}

func sameInstant(t *testing.T, want, got time.Time, msg string) {
	t.Helper()
	assert.True(t, want.Equal(got), "%s: want %v, got %v", msg, want, got)
}

const gdprName = "GDPR Art. 33: notify the supervisory authority"

func TestClockWarnsOnceThenEscalatesOnce(t *testing.T) {
	custom := breach.Clock{Name: "contract: tell the partner", Start: incident.MilestoneDetected,
		Stop: incident.MilestoneAuthorityNotified, Within: 8 * time.Hour}
	explicit := custom
	explicit.Within, explicit.Warn = 72*time.Hour, 2*time.Hour
	tests := []struct {
		name        string
		clock       breach.Clock
		warnAt, due time.Duration // after detection
	}{
		{"GDPR 72h: warned 18h (a quarter) before", breach.GDPR(), 54 * time.Hour, 72 * time.Hour},
		{"8h: warned a quarter before", custom, 6 * time.Hour, 8 * time.Hour},
		{"HIPAA 60 days: warned at most 24h before", breach.HIPAA(), 59 * 24 * time.Hour, 60 * 24 * time.Hour},
		{"explicit Warn", explicit, 70 * time.Hour, 72 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, clk, p, id := clockedIncident(t, tt.clock)
			d := deadlineOf(t, o, id, tt.clock.Name)
			assert.Equal(t, incident.DeadlineRunning, d.Status, "started at detection")
			sameInstant(t, t0, d.StartedAt, "started")
			sameInstant(t, t0.Add(tt.due), d.Due, "due")
			sameInstant(t, t0.Add(tt.warnAt), d.WarnAt, "warn at")

			for _, at := range []time.Duration{0, tt.warnAt / 2, tt.warnAt - time.Second} {
				checkAt(t, o, clk, at)
			}
			assert.Empty(t, p.all(), "no page before the warning time")
			assert.True(t, deadlineOf(t, o, id, tt.clock.Name).WarnedAt.IsZero())

			for _, at := range []time.Duration{tt.warnAt, tt.warnAt + time.Second, tt.due - time.Second} {
				checkAt(t, o, clk, at)
			}
			assert.Equal(t, 1, p.count(pageWarning), "warned once")
			assert.Zero(t, p.count(pageMissed))
			d = deadlineOf(t, o, id, tt.clock.Name)
			assert.Equal(t, incident.DeadlineRunning, d.Status)
			sameInstant(t, t0.Add(tt.warnAt), d.WarnedAt, "warned")

			for _, at := range []time.Duration{tt.due, tt.due + time.Hour, tt.due + 30*24*time.Hour} {
				checkAt(t, o, clk, at)
			}
			assert.Equal(t, 1, p.count(pageWarning))
			assert.Equal(t, 1, p.count(pageMissed), "escalated once")
			d = deadlineOf(t, o, id, tt.clock.Name)
			assert.Equal(t, incident.DeadlineMissed, d.Status)
			sameInstant(t, t0.Add(tt.due), d.EscalatedAt, "escalated")

			msgs := p.all()
			require.Len(t, msgs, 2)
			for _, m := range msgs {
				assert.Equal(t, id, m.IncidentID)
				assert.Equal(t, "on-call", m.Responder)
				assert.Contains(t, m.Reason, tt.clock.Name)
				assert.Contains(t, m.Needed, string(tt.clock.Stop))
			}
			assert.NotEqual(t, msgs[0].IdempotencyKey, msgs[1].IdempotencyKey)

			inc, err := o.Get(context.Background(), id)
			require.NoError(t, err)
			assert.True(t, hasEntry(inc, incident.ActorSystem, tt.clock.Name, "missed", string(tt.clock.Stop)+" was due by"))
			assert.True(t, hasEntry(inc, incident.ActorSystem, tt.clock.Name, "warned on-call"))
			assert.Equal(t, incident.StateInvestigating, inc.State, "a missed clock pages; it does not move the incident")
			assert.NoError(t, inc.Timeline.Verify())
		})
	}
}

func TestRecordMilestoneStopsClock(t *testing.T) {
	tests := []struct {
		name      string
		checks    []time.Duration // CheckDeadlines before the milestone
		at        time.Duration
		note      string
		status    incident.DeadlineStatus
		late      string
		pages     int
		verdict   string
		neverWarn bool
	}{
		{"before the warning", []time.Duration{time.Hour}, 10 * time.Hour, "told the DPA by form", incident.DeadlineMet, "", 0, "met", true},
		{"after the warning", []time.Duration{54 * time.Hour}, 60 * time.Hour, "told the DPA", incident.DeadlineMet, "", 1, "met", false},
		{"exactly at the due time", nil, 72 * time.Hour, "just in time", incident.DeadlineMet, "", 0, "met", true},
		{"late, never checked", nil, 80 * time.Hour, "DPA portal was down", incident.DeadlineLate, "DPA portal was down", 0,
			"met late, 8h0m0s after the due time: DPA portal was down", true},
		{"late, after the escalation", []time.Duration{54 * time.Hour, 72 * time.Hour}, 73 * time.Hour, "legal review took longer",
			incident.DeadlineLate, "legal review took longer", 2, "met late, 1h0m0s after the due time: legal review took longer", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, clk, p, id := clockedIncident(t, breach.GDPR())
			for _, at := range tt.checks {
				checkAt(t, o, clk, at)
			}
			clk.Set(t0.Add(tt.at))
			require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneAuthorityNotified, "dpo@example.com", tt.note))

			d := deadlineOf(t, o, id, gdprName)
			assert.Equal(t, tt.status, d.Status)
			sameInstant(t, t0.Add(tt.at), d.MetAt, "met at")
			assert.Equal(t, tt.late, d.LateReason)

			// A stopped clock is not checked any more.
			for _, at := range []time.Duration{54 * time.Hour, 72 * time.Hour, 200 * time.Hour} {
				if at >= tt.at {
					checkAt(t, o, clk, at)
				}
			}
			assert.Len(t, p.all(), tt.pages, "no page after the milestone")
			d = deadlineOf(t, o, id, gdprName)
			assert.Equal(t, tt.status, d.Status)
			assert.Equal(t, tt.neverWarn, d.WarnedAt.IsZero())

			inc, err := o.Get(context.Background(), id)
			require.NoError(t, err)
			sameInstant(t, t0.Add(tt.at), inc.Milestones[incident.MilestoneAuthorityNotified], "milestone")
			assert.True(t, hasEntry(inc, "dpo@example.com", "milestone authority-notified: "+tt.note))
			assert.True(t, hasEntry(inc, "dpo@example.com", `clock "`+gdprName+`" `+tt.verdict), "verdict %q on the timeline", tt.verdict)

			// Only the first time a milestone is reached counts.
			clk.Set(t0.Add(tt.at + 500*time.Hour))
			require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneAuthorityNotified, "bob", "again"))
			d = deadlineOf(t, o, id, gdprName)
			assert.Equal(t, tt.status, d.Status)
			sameInstant(t, t0.Add(tt.at), d.MetAt, "met at, unchanged")
		})
	}
}

func TestRecordMilestoneChecksInput(t *testing.T) {
	o, _, _, id := clockedIncident(t, breach.GDPR())
	ctx := context.Background()
	assert.ErrorIs(t, o.RecordMilestone(ctx, id, "", "alice", "x"), breach.ErrInvalidInput)
	assert.ErrorIs(t, o.RecordMilestone(ctx, id, incident.MilestoneAuthorityNotified, "", "x"), breach.ErrInvalidInput)
	assert.ErrorIs(t, o.RecordMilestone(ctx, "inc_nope", incident.MilestoneAuthorityNotified, "alice", "x"), incident.ErrNotFound)
	assert.Equal(t, incident.DeadlineRunning, deadlineOf(t, o, id, gdprName).Status)
}

func TestNIS2Clocks(t *testing.T) {
	clocks := breach.NIS2()
	require.Len(t, clocks, 3)
	early, notif, final := clocks[0].Name, clocks[1].Name, clocks[2].Name
	o, clk, p, id := clockedIncident(t, clocks...)

	month := t0.AddDate(0, 1, 0)
	require.Equal(t, time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC), month)
	for _, c := range []struct {
		name   string
		due    time.Time
		warnAt time.Time
	}{
		{early, t0.Add(24 * time.Hour), t0.Add(18 * time.Hour)},
		{notif, t0.Add(72 * time.Hour), t0.Add(54 * time.Hour)},
		{final, month, month.Add(-24 * time.Hour)},
	} {
		d := deadlineOf(t, o, id, c.name)
		assert.Equal(t, incident.DeadlineRunning, d.Status, c.name)
		sameInstant(t, c.due, d.Due, c.name+" due")
		sameInstant(t, c.warnAt, d.WarnAt, c.name+" warn at")
	}

	checkAt(t, o, clk, 18*time.Hour)
	assert.Equal(t, 1, p.count(pageWarning+early))
	clk.Set(t0.Add(20 * time.Hour))
	require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneEarlyWarning, "csirt-liaison", "early warning via portal"))
	d := deadlineOf(t, o, id, early)
	assert.Equal(t, incident.DeadlineMet, d.Status)
	sameInstant(t, t0.Add(20*time.Hour), d.MetAt, "early warning met")

	checkAt(t, o, clk, 24*time.Hour)
	assert.Zero(t, p.count(pageMissed), "the early warning was sent in time")
	checkAt(t, o, clk, 72*time.Hour)
	assert.Equal(t, 1, p.count(pageMissed+notif), "the incident notification was not")
	assert.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, notif).Status)
	assert.Equal(t, incident.DeadlineRunning, deadlineOf(t, o, id, final).Status)

	clk.Set(month.Add(2 * time.Hour))
	require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneFinalReport, "ciso", "root cause analysis took longer"))
	d = deadlineOf(t, o, id, final)
	assert.Equal(t, incident.DeadlineLate, d.Status)
	assert.Equal(t, "root cause analysis took longer", d.LateReason)
	assert.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, notif).Status, "the other clocks are untouched")
	assert.Equal(t, incident.DeadlineMet, deadlineOf(t, o, id, early).Status)
	assert.Zero(t, p.count(pageMissed+final), "never checked past its due time")
}

// TestClockDueInMonths: a period of months ends on the same day of the
// month, or on the last day of a shorter month; it never runs into the
// month after.
func TestClockDueInMonths(t *testing.T) {
	tests := []struct {
		start  time.Time
		months int
		want   time.Time
	}{
		{time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), 1, time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC), 1, time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC)},
		{time.Date(2028, 1, 31, 9, 0, 0, 0, time.UTC), 1, time.Date(2028, 2, 29, 9, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC), 1, time.Date(2026, 4, 30, 23, 30, 0, 0, time.UTC)},
		{time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), 3, time.Date(2027, 2, 28, 8, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 31, 8, 0, 0, 0, time.UTC), 1, time.Date(2027, 1, 31, 8, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.start.Format(time.DateOnly), func(t *testing.T) {
			c := breach.Clock{Name: "n", Start: incident.MilestoneDetected, Stop: incident.MilestoneFinalReport, Months: tt.months}
			sameInstant(t, tt.want, breach.ClockDue(c, tt.start), "due")
		})
	}
}

// TestHIPAAStopsWhenCustomersNotified drives the whole playbook: the
// orchestrator records customers-notified itself when the notices are out.
// The clock is manual, so that 61 days pass without 61 days of tickers.
func TestHIPAAStopsWhenCustomersNotified(t *testing.T) {
	hipaa := breach.HIPAA().Name
	tests := []struct {
		name     string
		retryAt  time.Duration // 0: the investigation succeeds; else it fails, and a person retries then
		checksAt []time.Duration
		status   incident.DeadlineStatus
		pages    []string
	}{
		{"notified at once", 0, []time.Duration{59 * 24 * time.Hour, 61 * 24 * time.Hour}, incident.DeadlineMet, nil},
		{"notified after 61 days", 61 * 24 * time.Hour, []time.Duration{59 * 24 * time.Hour, 60 * 24 * time.Hour},
			incident.DeadlineLate, []string{pageWarning + hipaa, pageMissed + hipaa}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakes{}
				p := &pager{}
				clk := &manualClock{t: t0}
				var calls atomic.Int32
				inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
					if calls.Add(1) == 1 && tt.retryAt > 0 {
						return incident.Findings{}, incident.Permanent(assert.AnError)
					}
					return incident.Findings{Impact: incident.Impact{Customers: []incident.Customer{customer},
						Data: []incident.DataCategory{incident.DataFinancial}}}, nil
				})
				pb := apiKeyPlaybook(f, inv)
				pb.Clocks = []breach.Clock{breach.HIPAA()}
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithOnCall(p.notifier()),
					breach.WithNow(clk.Now), breach.WithDeadlineInterval(1000*time.Hour), breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				if tt.retryAt > 0 {
					await(t, o, rc.IncidentID, incident.StateEscalated)
				} else {
					await(t, o, rc.IncidentID, incident.StateResolving)
				}
				for _, at := range tt.checksAt {
					checkAt(t, o, clk, at)
				}
				if tt.retryAt > 0 {
					clk.Set(t0.Add(tt.retryAt))
					require.NoError(t, o.Retry(context.Background(), rc.IncidentID, "alice", "logs are back"))
				}
				inc := await(t, o, rc.IncidentID, incident.StateResolving)
				synctest.Wait()

				_, _, sent := f.snapshot()
				require.Len(t, sent, 1)
				require.False(t, inc.NotifiedAt.IsZero())
				sameInstant(t, t0.Add(tt.retryAt), inc.NotifiedAt, "notified")
				d := inc.Deadline(hipaa)
				require.NotNil(t, d)
				assert.Equal(t, tt.status, d.Status)
				sameInstant(t, inc.NotifiedAt, d.MetAt, "met when notification completed")
				sameInstant(t, t0, d.StartedAt, "started at detection")
				sameInstant(t, t0.Add(60*24*time.Hour), d.Due, "due")
				sameInstant(t, inc.NotifiedAt, inc.Milestones[incident.MilestoneCustomersNotified], "milestone")
				assert.Empty(t, d.LateReason, "the orchestrator gives no reason")
				for _, s := range tt.pages {
					assert.Equal(t, 1, p.count(s), s)
				}
				assert.Equal(t, len(tt.pages), p.count("deadline "))
			})
		})
	}
}

func TestSEC8KBusinessDays(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	thursday := time.Date(2026, 3, 5, 10, 0, 0, 0, ny)
	endOf := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 23, 59, 59, 999999000, ny) }
	tests := []struct {
		name     string
		material time.Time
		holidays []time.Time
		due      time.Time
	}{
		{"Thursday: Fri, Mon, Tue, Wed (across the weekend and the DST change)", thursday, nil, endOf(2026, 3, 11)},
		{"a Monday holiday pushes it a day", thursday, []time.Time{time.Date(2026, 3, 9, 0, 0, 0, 0, ny)}, endOf(2026, 3, 12)},
		{"a holiday is the day it falls on in New York", thursday, []time.Time{time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)}, endOf(2026, 3, 12)},
		{"a holiday on the start day changes nothing", thursday, []time.Time{time.Date(2026, 3, 5, 12, 0, 0, 0, ny)}, endOf(2026, 3, 11)},
		{"Saturday: Mon to Thu", time.Date(2026, 3, 7, 15, 0, 0, 0, ny), nil, endOf(2026, 3, 12)},
		{"late Friday evening in New York is still Friday", time.Date(2026, 3, 7, 3, 0, 0, 0, time.UTC), nil, endOf(2026, 3, 12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := breach.SEC8K(breach.Weekdays(ny, tt.holidays...), ny)
			o, clk, p, id := clockedIncident(t, sec)

			// The clock waits for materiality, however long that takes.
			for _, at := range []time.Duration{0, 24 * time.Hour, 72 * time.Hour} {
				checkAt(t, o, clk, at)
				d := deadlineOf(t, o, id, sec.Name)
				assert.Equal(t, incident.DeadlineWaiting, d.Status)
				assert.True(t, d.Due.IsZero())
			}
			assert.Empty(t, p.all())

			clk.Set(tt.material)
			require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneMateriality, "cfo", "the board found it material"))
			d := deadlineOf(t, o, id, sec.Name)
			assert.Equal(t, incident.DeadlineRunning, d.Status)
			sameInstant(t, tt.material, d.StartedAt, "started")
			sameInstant(t, tt.due, d.Due, "due")
			assert.Equal(t, tt.due.Format(time.DateOnly)+" 23:59:59.999999 EDT", d.Due.In(ny).Format("2006-01-02 15:04:05.000000 MST"),
				"due at the end of the day in New York")
			sameInstant(t, tt.due.Add(-24*time.Hour), d.WarnAt, "warned a day before")

			// Determining materiality again does not restart the clock.
			clk.Set(tt.material.Add(24 * time.Hour))
			require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneMateriality, "cfo", "confirmed"))
			sameInstant(t, tt.due, deadlineOf(t, o, id, sec.Name).Due, "due, unchanged")

			clk.Set(tt.due.Add(-time.Microsecond))
			require.NoError(t, o.CheckDeadlines(context.Background()))
			assert.Equal(t, incident.DeadlineRunning, deadlineOf(t, o, id, sec.Name).Status)
			clk.Set(tt.due)
			require.NoError(t, o.CheckDeadlines(context.Background()))
			assert.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, sec.Name).Status)
			assert.Equal(t, 1, p.count(pageWarning))
			assert.Equal(t, 1, p.count(pageMissed))
		})
	}
}

func TestWeekdays(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	tests := []struct {
		name string
		cal  breach.Calendar
		at   time.Time
		want bool
	}{
		{"Friday", breach.Weekdays(nil), time.Date(2026, 3, 6, 12, 0, 0, 0, time.UTC), true},
		{"Saturday", breach.Weekdays(nil), time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC), false},
		{"Sunday", breach.Weekdays(nil), time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC), false},
		{"Saturday 02:00 UTC is Friday in New York", breach.Weekdays(ny), time.Date(2026, 3, 7, 2, 0, 0, 0, time.UTC), true},
		{"holiday", breach.Weekdays(nil, time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC)), time.Date(2026, 12, 25, 18, 0, 0, 0, time.UTC), false},
		{"day after a holiday", breach.Weekdays(nil, time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)), time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC), true},
		{"func", breach.Calendar(func(time.Time) bool { return false }), time.Date(2026, 3, 6, 12, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.cal(tt.at))
		})
	}
}

func TestPauseAndResumeClock(t *testing.T) {
	const reason = "law-enforcement delay"
	tests := []struct {
		name           string
		pause, resume  time.Duration
		whilePaused    []time.Duration // checks while paused: nothing may happen
		afterResume    []time.Duration // checks after resuming, before the moved warning time
		warnAt, due    time.Duration   // moved
		statusOnResume incident.DeadlineStatus
	}{
		{"30h pause early on", 10 * time.Hour, 40 * time.Hour, []time.Duration{20 * time.Hour, 39 * time.Hour},
			[]time.Duration{54 * time.Hour, 72 * time.Hour, 83 * time.Hour}, 84 * time.Hour, 102 * time.Hour, incident.DeadlineRunning},
		{"paused past the original due time", 10 * time.Hour, 100 * time.Hour, []time.Duration{54 * time.Hour, 72 * time.Hour, 99 * time.Hour},
			[]time.Duration{120 * time.Hour, 143 * time.Hour}, 144 * time.Hour, 162 * time.Hour, incident.DeadlineRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, clk, p, id := clockedIncident(t, breach.GDPR())
			ctx := context.Background()
			clk.Set(t0.Add(tt.pause))
			require.NoError(t, o.PauseClock(ctx, id, gdprName, "legal", reason))
			d := deadlineOf(t, o, id, gdprName)
			assert.Equal(t, incident.DeadlinePaused, d.Status)
			assert.Equal(t, reason, d.PauseReason)
			sameInstant(t, t0.Add(tt.pause), d.PausedAt, "paused at")

			for _, at := range tt.whilePaused {
				checkAt(t, o, clk, at)
			}
			assert.Empty(t, p.all(), "no page while paused")
			assert.Equal(t, incident.DeadlinePaused, deadlineOf(t, o, id, gdprName).Status)

			clk.Set(t0.Add(tt.resume))
			require.NoError(t, o.ResumeClock(ctx, id, gdprName, "legal", "the police lifted the delay"))
			d = deadlineOf(t, o, id, gdprName)
			assert.Equal(t, tt.statusOnResume, d.Status)
			assert.Equal(t, tt.resume-tt.pause, d.Paused)
			assert.Equal(t, reason, d.PauseReason)
			assert.True(t, d.PausedAt.IsZero())
			sameInstant(t, t0.Add(tt.due), d.Due, "due moved by the pause")
			sameInstant(t, t0.Add(tt.warnAt), d.WarnAt, "warning moved by the pause")

			for _, at := range tt.afterResume {
				checkAt(t, o, clk, at)
			}
			assert.Empty(t, p.all(), "the original warning and due times no longer count")
			checkAt(t, o, clk, tt.warnAt)
			assert.Equal(t, 1, p.count(pageWarning))
			checkAt(t, o, clk, tt.due)
			assert.Equal(t, 1, p.count(pageMissed))
			assert.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, gdprName).Status)

			inc, err := o.Get(ctx, id)
			require.NoError(t, err)
			assert.True(t, hasEntry(inc, "legal", gdprName, "paused: "+reason))
			assert.True(t, hasEntry(inc, "legal", gdprName, "resumed after "+(tt.resume-tt.pause).String(), "the police lifted the delay"))
		})
	}
}

func TestStopWhilePausedCountsThePause(t *testing.T) {
	o, clk, _, id := clockedIncident(t, breach.GDPR())
	ctx := context.Background()
	clk.Set(t0.Add(10 * time.Hour))
	require.NoError(t, o.PauseClock(ctx, id, gdprName, "legal", "law-enforcement delay"))
	clk.Set(t0.Add(100 * time.Hour)) // past the original due time, within the moved one
	require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneAuthorityNotified, "dpo", "told the DPA"))
	d := deadlineOf(t, o, id, gdprName)
	assert.Equal(t, incident.DeadlineMet, d.Status)
	assert.Equal(t, 90*time.Hour, d.Paused)
	sameInstant(t, t0.Add(162*time.Hour), d.Due, "due moved by the pause")
	assert.True(t, d.PausedAt.IsZero())
	assert.ErrorIs(t, o.ResumeClock(ctx, id, gdprName, "legal", "x"), breach.ErrNoSuchClock, "a met clock is not paused")
}

// TestResumeMissedClockStaysMissed: a missed clock paused at its due time
// and resumed is due at the moment it resumes; it must stay missed, not
// run on unwatched.
func TestResumeMissedClockStaysMissed(t *testing.T) {
	o, clk, p, id := clockedIncident(t, breach.GDPR())
	ctx := context.Background()
	checkAt(t, o, clk, 72*time.Hour)
	require.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, gdprName).Status)
	require.NoError(t, o.PauseClock(ctx, id, gdprName, "legal", "law-enforcement delay"))
	clk.Set(t0.Add(80 * time.Hour))
	require.NoError(t, o.ResumeClock(ctx, id, gdprName, "legal", "lifted"))
	d := deadlineOf(t, o, id, gdprName)
	sameInstant(t, t0.Add(80*time.Hour), d.Due, "due")
	assert.Equal(t, incident.DeadlineMissed, d.Status)
	checkAt(t, o, clk, 200*time.Hour)
	assert.Equal(t, 1, p.count(pageMissed), "escalated once")
}

func TestPauseResumeRefused(t *testing.T) {
	sec := breach.SEC8K(breach.Weekdays(nil), nil)
	tests := []struct {
		name  string
		setup func(t *testing.T, o *breach.Orchestrator, id string)
		call  func(o *breach.Orchestrator, id string) error
	}{
		{"pause an unknown clock", nil, func(o *breach.Orchestrator, id string) error {
			return o.PauseClock(context.Background(), id, "CCPA", "legal", "x")
		}},
		{"pause a waiting clock", nil, func(o *breach.Orchestrator, id string) error {
			return o.PauseClock(context.Background(), id, sec.Name, "legal", "x")
		}},
		{"pause a paused clock", func(t *testing.T, o *breach.Orchestrator, id string) {
			require.NoError(t, o.PauseClock(context.Background(), id, gdprName, "legal", "x"))
		}, func(o *breach.Orchestrator, id string) error {
			return o.PauseClock(context.Background(), id, gdprName, "legal", "y")
		}},
		{"pause a met clock", func(t *testing.T, o *breach.Orchestrator, id string) {
			require.NoError(t, o.RecordMilestone(context.Background(), id, incident.MilestoneAuthorityNotified, "dpo", "done"))
		}, func(o *breach.Orchestrator, id string) error {
			return o.PauseClock(context.Background(), id, gdprName, "legal", "x")
		}},
		{"resume a running clock", nil, func(o *breach.Orchestrator, id string) error {
			return o.ResumeClock(context.Background(), id, gdprName, "legal", "x")
		}},
		{"resume an unknown clock", nil, func(o *breach.Orchestrator, id string) error {
			return o.ResumeClock(context.Background(), id, "CCPA", "legal", "x")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _, _, id := clockedIncident(t, breach.GDPR(), sec)
			if tt.setup != nil {
				tt.setup(t, o, id)
			}
			before, err := o.Get(context.Background(), id)
			require.NoError(t, err)
			assert.ErrorIs(t, tt.call(o, id), breach.ErrNoSuchClock)
			after, err := o.Get(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, before.Version, after.Version, "nothing was written")
			assert.Equal(t, before.Deadlines, after.Deadlines)
		})
	}
	o, _, _, id := clockedIncident(t, breach.GDPR())
	assert.ErrorIs(t, o.PauseClock(context.Background(), id, gdprName, "", "x"), breach.ErrInvalidInput)
}

func TestDismissalCancelsClocks(t *testing.T) {
	sec := breach.SEC8K(breach.Weekdays(nil), nil)
	clocks := append([]breach.Clock{breach.GDPR(), sec}, breach.NIS2()...)
	o, clk, p, id := clockedIncident(t, clocks...)
	ctx := context.Background()
	clk.Set(t0.Add(5 * time.Hour))
	require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneEarlyWarning, "liaison", "sent"))
	clk.Set(t0.Add(10 * time.Hour))
	require.NoError(t, o.Dismiss(ctx, id, "carol", "test key, not a real leak"))

	inc, err := o.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, incident.StateDismissed, inc.State)
	want := map[string]incident.DeadlineStatus{
		gdprName:              incident.DeadlineNotApplicable,
		sec.Name:              incident.DeadlineNotApplicable, // it was waiting
		breach.NIS2()[0].Name: incident.DeadlineMet,           // it was met before
		breach.NIS2()[1].Name: incident.DeadlineNotApplicable,
		breach.NIS2()[2].Name: incident.DeadlineNotApplicable,
	}
	for name, status := range want {
		d := inc.Deadline(name)
		require.NotNil(t, d, name)
		assert.Equal(t, status, d.Status, name)
	}

	for _, at := range []time.Duration{54 * time.Hour, 72 * time.Hour, 40 * 24 * time.Hour} {
		checkAt(t, o, clk, at)
	}
	assert.Empty(t, p.all(), "cancelled clocks are not checked")

	// A milestone after the dismissal does not revive a cancelled clock.
	require.NoError(t, o.RecordMilestone(ctx, id, incident.MilestoneAuthorityNotified, "dpo", "told anyway"))
	assert.Equal(t, incident.DeadlineNotApplicable, deadlineOf(t, o, id, gdprName).Status)
	assert.ErrorIs(t, o.PauseClock(ctx, id, gdprName, "legal", "x"), breach.ErrNoSuchClock)
}

func TestPlaybookClocksValidated(t *testing.T) {
	cal := breach.Weekdays(nil)
	base := breach.Clock{Name: "c", Start: incident.MilestoneDetected, Stop: incident.MilestoneAuthorityNotified, Within: time.Hour}
	with := func(change func(*breach.Clock)) []breach.Clock {
		c := base
		change(&c)
		return []breach.Clock{c}
	}
	tests := []struct {
		name   string
		clocks []breach.Clock
		ok     bool
	}{
		{"the regulations", append([]breach.Clock{breach.GDPR(), breach.HIPAA(), breach.SEC8K(cal, nil)}, breach.NIS2()...), true},
		{"custom", []breach.Clock{base}, true},
		{"no name", with(func(c *breach.Clock) { c.Name = "" }), false},
		{"no start", with(func(c *breach.Clock) { c.Start = "" }), false},
		{"no stop", with(func(c *breach.Clock) { c.Stop = "" }), false},
		{"start equals stop", with(func(c *breach.Clock) { c.Stop = c.Start }), false},
		{"no window", with(func(c *breach.Clock) { c.Within = 0 }), false},
		{"negative window", with(func(c *breach.Clock) { c.Within = -time.Hour }), false},
		{"Within and Months", with(func(c *breach.Clock) { c.Months = 1 }), false},
		{"Months and BusinessDays", with(func(c *breach.Clock) { c.Within, c.Months, c.BusinessDays, c.Calendar = 0, 1, 4, cal }), false},
		{"all three", with(func(c *breach.Clock) { c.Months, c.BusinessDays, c.Calendar = 1, 4, cal }), false},
		{"BusinessDays without Calendar", with(func(c *breach.Clock) { c.Within, c.BusinessDays = 0, 4 }), false},
		{"BusinessDays with Calendar", with(func(c *breach.Clock) { c.Within, c.BusinessDays, c.Calendar = 0, 4, cal }), true},
		{"negative Warn", with(func(c *breach.Clock) { c.Warn = -time.Minute }), false},
		{"duplicate names", []breach.Clock{base, base}, false},
		{"same regulation twice", []breach.Clock{breach.GDPR(), breach.GDPR()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(breach.Playbook{Kind: "k", Clocks: tt.clocks}))
			if tt.ok {
				assert.NoError(t, err)
				assert.NotNil(t, o)
				return
			}
			assert.ErrorIs(t, err, breach.ErrInvalidPlaybook)
			assert.Nil(t, o)
		})
	}
}

// TestPauseResumeRefusedOnceTheIncidentEnded: every clock ends with its
// incident, so neither a clock that ended missed nor one that was paused
// when the incident closed can be paused or resumed afterwards.
func TestPauseResumeRefusedOnceTheIncidentEnded(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(fmt.Sprint("paused=", paused), func(t *testing.T) {
			ctx := context.Background()
			o, clk, _, id := clockedIncident(t, breach.GDPR())
			checkAt(t, o, clk, 73*time.Hour)
			require.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, gdprName).Status)
			if paused {
				require.NoError(t, o.PauseClock(ctx, id, gdprName, "legal", "law-enforcement delay"))
			}
			require.NoError(t, o.Resolve(ctx, id, "alice", "done"))
			require.NoError(t, o.Close(ctx, id, "bob", "reviewed"))
			before, err := o.Get(ctx, id)
			require.NoError(t, err)
			require.False(t, before.Deadline(gdprName).EndedAt.IsZero(), "the clock ended with the incident")

			clk.Set(t0.Add(80 * time.Hour))
			assert.ErrorIs(t, o.PauseClock(ctx, id, gdprName, "legal", "x"), breach.ErrNoSuchClock)
			assert.ErrorIs(t, o.ResumeClock(ctx, id, gdprName, "legal", "x"), breach.ErrNoSuchClock)
			after, err := o.Get(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, before.Version, after.Version, "nothing was written")
			assert.Equal(t, before.Deadlines, after.Deadlines)

			// Reopened, the incident's missed clock may be paused again.
			require.NoError(t, o.Reopen(ctx, id, "alice", "the key was used again"))
			require.Equal(t, incident.DeadlineMissed, deadlineOf(t, o, id, gdprName).Status)
			assert.NoError(t, o.PauseClock(ctx, id, gdprName, "legal", "law-enforcement delay"))
		})
	}
}
