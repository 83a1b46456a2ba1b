package breach

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// GameDay is a rehearsal of a playbook: the orchestrator runs it end to end
// on a simulated clock, with every plugin replaced by a fake that only
// records what it would have done, so nothing real is revoked or sent.
// People's actions happen at set times. The result is the timeline and the
// deadline compliance the real response would produce.
type GameDay struct {
	// Playbook is the playbook to rehearse. Its containers, investigator
	// and notifiers are not called.
	Playbook Playbook
	// Signal is what the detector reports at Start.
	Signal incident.Signal
	// Findings is what the simulated investigation finds.
	Findings incident.Findings
	// Start is the simulated time of the signal; zero means
	// 2026-01-05 09:00 UTC, a Monday morning.
	Start time.Time
	// StepTime is how long each simulated plugin call takes; 0 means one
	// minute.
	StepTime time.Duration
	// Steps are what people do, at offsets from Start.
	Steps []Step
	// Horizon is how long after Start the rehearsal runs; 0 means until
	// every clock is done and every step taken, at most 90 days.
	Horizon time.Duration
}

// Step is a person's action in a GameDay, At after the start.
type Step struct {
	At   time.Duration
	Name string
	Do   func(ctx context.Context, o *Orchestrator, id string) error
}

// MilestoneStep records milestone m at the offset at, as actor.
func MilestoneStep(at time.Duration, m incident.Milestone, actor, note string) Step {
	return Step{At: at, Name: "record " + string(m), Do: func(ctx context.Context, o *Orchestrator, id string) error {
		return o.RecordMilestone(ctx, id, m, actor, note)
	}}
}

// ResolveStep completes every open task and resolves the incident at the
// offset at, then closes it (the post-incident review).
func ResolveStep(at time.Duration, actor, note string) Step {
	return Step{At: at, Name: "resolve and close", Do: func(ctx context.Context, o *Orchestrator, id string) error {
		inc, err := o.Get(ctx, id)
		if err != nil {
			return err
		}
		for _, t := range inc.Tasks {
			if !t.Done {
				if err := o.CompleteTask(ctx, id, t.ID, actor, "done in the rehearsal"); err != nil {
					return err
				}
			}
		}
		if err := o.Resolve(ctx, id, actor, note); err != nil {
			return err
		}
		return o.Close(ctx, id, actor, "post-incident review held")
	}}
}

// GameDayResult is what a rehearsal produced.
type GameDayResult struct {
	// Incident is the final record: its Timeline and Deadlines are the
	// point of the exercise.
	Incident *incident.Incident
	// Calls lists, in order, what the plugins would have been asked to do.
	Calls []string
	// Pages are the pages on-call would have received.
	Pages []notify.Page
	// Report is the post-incident report in Markdown.
	Report string
}

// RunGameDay rehearses g and returns what happened. It is deterministic for
// a given GameDay and performs no real side effect; it does not need Run.
func RunGameDay(ctx context.Context, g GameDay) (*GameDayResult, error) {
	start := g.Start
	if start.IsZero() {
		start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	step := g.StepTime
	if step <= 0 {
		step = time.Minute
	}
	sim := &simClock{t: start}
	res := &GameDayResult{}
	var mu sync.Mutex
	called := func(s string) {
		mu.Lock()
		res.Calls = append(res.Calls, s)
		mu.Unlock()
		sim.advance(step)
	}

	pb := g.Playbook
	pb.ContainConcurrency = 1 // one plugin call at a time: a deterministic rehearsal
	pb.Containment = slices.Clone(pb.Containment)
	for i, a := range pb.Containment {
		pb.Containment[i].Container = rehearsedContainer{name: a.Name, called: called}
	}
	findings := g.Findings
	pb.Investigator = incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		called("investigate " + inc.Subject)
		return findings, nil
	})
	pb.Notifiers = slices.Clone(pb.Notifiers)
	for i, r := range pb.Notifiers {
		pb.Notifiers[i].Notifier = notify.Func(func(ctx context.Context, m notify.Message) error {
			called("notify " + incident.RecipientID(m.Recipient) + " via " + r.Channel + ": " + m.Subject)
			return nil
		})
	}
	oncall := notify.PagerFunc(func(ctx context.Context, p notify.Page) error {
		mu.Lock()
		defer mu.Unlock()
		res.Pages = append(res.Pages, p)
		return nil
	})
	o, err := New(incident.NewMemStore(), WithPlaybook(pb), WithNow(sim.now), WithIDs(func() string { return "gameday" }),
		WithLogger(slog.New(slog.DiscardHandler)), WithOnCall(oncall),
		func(c *config) error { c.deliveryConcurrency = 1; return nil })
	if err != nil {
		return nil, fmt.Errorf("breach: game day: %w", err)
	}
	sig := g.Signal
	sig.At = start
	rc, err := o.Report(ctx, sig)
	if err != nil {
		return nil, fmt.Errorf("breach: game day: signal: %w", err)
	}
	id := rc.IncidentID
	settle := func() error { return o.settle(ctx, id) }
	if err := settle(); err != nil {
		return nil, fmt.Errorf("breach: game day: %w", err)
	}

	steps := slices.Clone(g.Steps)
	slices.SortStableFunc(steps, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	horizon := g.Horizon
	if horizon <= 0 {
		horizon = 90 * 24 * time.Hour
	}
	end := start.Add(horizon)
	// advanceTo moves the clock to t, stopping at every warning, due time
	// and approval timeout on the way to check them.
	advanceTo := func(t time.Time) error {
		lastVersion := int64(-1)
		for {
			inc, err := o.store.Head(ctx, id)
			if err != nil {
				return err
			}
			next, ok := nextCheck(inc, sim.now(), o.climbDue(inc))
			if !ok || next.After(t) {
				break
			}
			if !next.After(sim.now()) && inc.Version == lastVersion {
				break // the last check changed nothing: it would again
			}
			lastVersion = inc.Version
			sim.set(next)
			if err := o.checkDeadlines(ctx); err != nil {
				return err
			}
			if err := settle(); err != nil {
				return err
			}
		}
		if t.After(sim.now()) {
			sim.set(t)
		}
		return nil
	}
	for _, s := range steps {
		at := start.Add(s.At)
		if at.After(end) {
			break
		}
		if err := advanceTo(at); err != nil {
			return nil, fmt.Errorf("breach: game day: %w", err)
		}
		if err := s.Do(ctx, o, id); err != nil {
			return nil, fmt.Errorf("breach: game day: step %q at %s: %w", s.Name, s.At, err)
		}
		if err := settle(); err != nil {
			return nil, fmt.Errorf("breach: game day: %w", err)
		}
	}
	if g.Horizon > 0 {
		err = advanceTo(end)
	} else {
		err = advanceTo(end.Add(-time.Nanosecond))
	}
	if err != nil {
		return nil, fmt.Errorf("breach: game day: %w", err)
	}
	if res.Incident, err = incident.Load(ctx, o.store, id); err != nil {
		return nil, fmt.Errorf("breach: game day: %w", err)
	}
	res.Report = res.Incident.Markdown()
	return res, nil
}

// nextCheck returns the earliest time after now at which a check could
// change the incident: a clock's warning or due time, an approval timeout.
func nextCheck(inc *incident.Incident, now, climb time.Time) (time.Time, bool) {
	if !inc.State.Open() {
		return time.Time{}, false // its clocks ended with it; nothing is checked
	}
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, d := range inc.Deadlines {
		if d.Status != incident.DeadlineRunning {
			continue
		}
		if d.WarnedAt.IsZero() {
			consider(maxTime(d.WarnAt, now))
		}
		if d.EscalatedAt.IsZero() {
			consider(maxTime(d.Due, now))
		}
	}
	for _, a := range inc.Actions {
		if a.Status == incident.ActionAwaiting && a.Approval != nil {
			consider(maxTime(a.Approval.Due, now))
		}
	}
	if !climb.IsZero() {
		consider(maxTime(climb, now))
	}
	return next, !next.IsZero()
}

func maxTime(t, now time.Time) time.Time {
	if t.IsZero() || t.After(now) {
		return t
	}
	return now
}

type rehearsedContainer struct {
	name   string
	called func(string)
}

func (c rehearsedContainer) Contain(ctx context.Context, req containment.Request) error {
	c.called("contain " + c.name + " on " + req.Subject)
	return nil
}

func (c rehearsedContainer) Release(ctx context.Context, req containment.Request) error {
	c.called("release " + c.name + " on " + req.Subject)
	return nil
}

// simClock is the rehearsal's clock: it moves only when told.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *simClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Compliance summarises the clocks of a rehearsal, one line each.
func (r *GameDayResult) Compliance() string {
	var b strings.Builder
	for _, d := range r.Incident.Deadlines {
		fmt.Fprintf(&b, "%-45s %-14s due %s", d.Name, d.Status, d.Due.UTC().Format("2006-01-02 15:04 MST"))
		if !d.MetAt.IsZero() {
			fmt.Fprintf(&b, ", done %s", d.MetAt.UTC().Format("2006-01-02 15:04 MST"))
		}
		if d.LateReason != "" {
			fmt.Fprintf(&b, " (late: %s)", d.LateReason)
		}
		if d.NotApplicableReason != "" {
			fmt.Fprintf(&b, " (not applicable: %s)", d.NotApplicableReason)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
