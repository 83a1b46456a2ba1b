package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
)

// Calendar says which days count for clocks measured in business days.
type Calendar interface {
	// BusinessDay reports whether the calendar day containing t is a
	// business day.
	BusinessDay(t time.Time) bool
}

// CalendarFunc adapts a function to a Calendar.
type CalendarFunc func(t time.Time) bool

// BusinessDay calls f(t).
func (f CalendarFunc) BusinessDay(t time.Time) bool { return f(t) }

// Weekdays returns a Calendar whose business days are Monday to Friday in
// loc (nil means UTC), except the given holidays, each taken as the day it
// falls on in loc.
func Weekdays(loc *time.Location, holidays ...time.Time) Calendar {
	if loc == nil {
		loc = time.UTC
	}
	off := map[string]bool{}
	for _, h := range holidays {
		off[h.In(loc).Format(time.DateOnly)] = true
	}
	return CalendarFunc(func(t time.Time) bool {
		t = t.In(loc)
		wd := t.Weekday()
		return wd != time.Saturday && wd != time.Sunday && !off[t.Format(time.DateOnly)]
	})
}

// Clock is a notification deadline a playbook must keep: from the Start
// milestone, the Stop milestone must be reached within a window given as a
// duration (Within), calendar months (Months) or business days
// (BusinessDays with a Calendar). Exactly one of the three is set.
type Clock struct {
	Name        string
	Start, Stop incident.Milestone
	Within      time.Duration
	// Months: due on the same day of the month, months later, or on the
	// last day of a month that has no such day.
	Months int
	// BusinessDays: due at the end of the n-th business day after the day
	// the clock starts, in the calendar's sense of a day (for Weekdays,
	// midnight in its location; the day of the start does not count).
	BusinessDays int
	Calendar     Calendar
	// Location is the time zone business days end in; nil means UTC.
	Location *time.Location
	// Warn is how long before the due time responders are warned. 0 means
	// a quarter of the window, at most 24 hours.
	Warn time.Duration
}

// GDPR is Article 33 of the GDPR: notify the supervisory authority within
// 72 hours of becoming aware of a personal data breach.
func GDPR() Clock {
	return Clock{Name: "GDPR Art. 33: notify the supervisory authority", Start: incident.MilestoneDetected,
		Stop: incident.MilestoneAuthorityNotified, Within: 72 * time.Hour}
}

// NIS2 returns the three clocks of Article 23 of the NIS2 directive,
// counted from awareness of a significant incident: an early warning within
// 24 hours, an incident notification within 72 hours, and a final report
// within one month.
func NIS2() []Clock {
	return []Clock{
		{Name: "NIS2 Art. 23: early warning", Start: incident.MilestoneDetected, Stop: incident.MilestoneEarlyWarning, Within: 24 * time.Hour},
		{Name: "NIS2 Art. 23: incident notification", Start: incident.MilestoneDetected, Stop: incident.MilestoneAuthorityNotified, Within: 72 * time.Hour},
		{Name: "NIS2 Art. 23: final report", Start: incident.MilestoneDetected, Stop: incident.MilestoneFinalReport, Months: 1},
	}
}

// SEC8K is Item 1.05 of SEC Form 8-K: disclose a material cybersecurity
// incident within four business days of determining that it is material.
// cal is the business-day calendar (for example Weekdays with the
// exchange's holidays in America/New_York).
func SEC8K(cal Calendar, loc *time.Location) Clock {
	return Clock{Name: "SEC Form 8-K Item 1.05: disclose", Start: incident.MilestoneMateriality,
		Stop: incident.MilestoneDisclosureFiled, BusinessDays: 4, Calendar: cal, Location: loc}
}

// HIPAA is the breach notification rule (45 CFR 164.404): notify affected
// individuals within 60 days of discovering the breach.
func HIPAA() Clock {
	return Clock{Name: "HIPAA 164.404: notify individuals", Start: incident.MilestoneDetected,
		Stop: incident.MilestoneCustomersNotified, Within: 60 * 24 * time.Hour}
}

func (c Clock) validate() error {
	set := 0
	for _, b := range []bool{c.Within > 0, c.Months > 0, c.BusinessDays > 0} {
		if b {
			set++
		}
	}
	switch {
	case c.Name == "":
		return errors.New("clock without a name")
	case c.Start == "" || c.Stop == "" || c.Start == c.Stop:
		return fmt.Errorf("clock %q needs distinct Start and Stop milestones", c.Name)
	case set != 1 || c.Within < 0 || c.Months < 0 || c.BusinessDays < 0:
		return fmt.Errorf("clock %q needs exactly one of Within, Months, BusinessDays", c.Name)
	case c.BusinessDays > 0 && c.Calendar == nil:
		return fmt.Errorf("clock %q counts business days but has no Calendar", c.Name)
	case c.Warn < 0:
		return fmt.Errorf("clock %q has a negative Warn", c.Name)
	}
	return nil
}

// Due returns when a clock started at start is due.
func (c Clock) Due(start time.Time) time.Time {
	switch {
	case c.Months > 0:
		due := start.AddDate(0, c.Months, 0)
		if due.Day() != start.Day() {
			// AddDate overflowed a shorter month (January 31 + 1 month is
			// March 3): the period ends on that month's last day.
			due = due.AddDate(0, 0, -due.Day())
		}
		return due
	case c.BusinessDays > 0:
		loc := c.Location
		if loc == nil {
			loc = time.UTC
		}
		d := start.In(loc)
		day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		for n, tried := 0, 0; n < c.BusinessDays; tried++ {
			if tried > maxCalendarDays {
				return start.AddDate(1000, 0, 0) // a calendar with no business day: never due
			}
			day = day.AddDate(0, 0, 1)
			if c.Calendar.BusinessDay(day) {
				n++
			}
		}
		return day.AddDate(0, 0, 1).Add(-time.Microsecond) // the end of that day
	}
	return start.Add(c.Within)
}

// maxCalendarDays bounds the search for business days in a calendar that
// may have none.
const maxCalendarDays = 3660

func (c Clock) warnBefore(start, due time.Time) time.Duration {
	if c.Warn > 0 {
		return c.Warn
	}
	return min(due.Sub(start)/4, 24*time.Hour)
}

func (p *Playbook) clock(name string) (Clock, bool) {
	if p != nil {
		for _, c := range p.Clocks {
			if c.Name == name {
				return c, true
			}
		}
	}
	return Clock{}, false
}

// openClocks puts the playbook's clocks on a new incident.
func (o *Orchestrator) openClocks(inc *incident.Incident) {
	pb := o.cfg.playbooks[inc.Kind]
	if pb == nil {
		return
	}
	for _, c := range pb.Clocks {
		inc.Deadlines = append(inc.Deadlines, incident.Deadline{Name: c.Name, Start: c.Start, Stop: c.Stop, Status: incident.DeadlineWaiting})
	}
}

// reach records the first time inc reaches milestone m, and starts and
// stops the clocks that wait for it. note becomes the late reason of a
// clock it stops late.
func (o *Orchestrator) reach(inc *incident.Incident, m incident.Milestone, at time.Time, actor, note string) {
	if _, done := inc.Milestones[m]; done {
		return
	}
	if inc.Milestones == nil {
		inc.Milestones = map[incident.Milestone]time.Time{}
	}
	inc.Milestones[m] = at
	pb := o.cfg.playbooks[inc.Kind]
	for i := range inc.Deadlines {
		d := &inc.Deadlines[i]
		c, ok := pb.clock(d.Name)
		if d.Start == m && d.Status == incident.DeadlineWaiting && ok {
			d.Status, d.StartedAt, d.Due = incident.DeadlineRunning, at, c.Due(at)
			d.WarnAt = d.Due.Add(-c.warnBefore(at, d.Due))
			o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" started; due "+d.Due.UTC().Format(time.RFC3339))
		}
		if d.Stop == m && !d.Status.Done() {
			if !d.PausedAt.IsZero() {
				d.Paused += at.Sub(d.PausedAt)
				d.Due = d.Due.Add(at.Sub(d.PausedAt))
				d.PausedAt = time.Time{}
			}
			d.MetAt = at
			verdict := "met"
			if d.Status == incident.DeadlineWaiting || !at.After(d.Due) {
				d.Status = incident.DeadlineMet
			} else {
				d.Status, d.LateReason = incident.DeadlineLate, note
				verdict = "met late, " + roundDur(at.Sub(d.Due)) + " after the due time"
				if note != "" {
					verdict += ": " + note
				}
			}
			o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" "+verdict)
		}
	}
}

func roundDur(d time.Duration) string { return d.Round(time.Second).String() }

// cancelClocks stops the clocks of a dismissed incident.
func cancelClocks(inc *incident.Incident) {
	for i := range inc.Deadlines {
		if d := &inc.Deadlines[i]; !d.Status.Done() {
			d.Status = incident.DeadlineCancelled
		}
	}
}

// RecordMilestone records that a person reached a milestone, such as
// incident.MilestoneAuthorityNotified; the clocks waiting for it start or
// stop. note says what was done and, for a clock stopped late, why it was
// late. Only the first time a milestone is reached counts. It works on
// open and closed incidents alike.
func (o *Orchestrator) RecordMilestone(ctx context.Context, id string, m incident.Milestone, actor, note string) error {
	if m == "" {
		return fmt.Errorf("%w: empty milestone", ErrInvalidMilestone)
	}
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		o.record(inc, actor, incident.EntryNote, "milestone "+string(m)+": "+note)
		o.reach(inc, m, o.cfg.now(), actor, note)
		return nil
	})
	return err
}

// ErrInvalidMilestone is returned when RecordMilestone is given an empty
// milestone.
var ErrInvalidMilestone = errors.New("breach: invalid milestone")

// ErrNoSuchClock reports a clock name the incident does not have, or a pause
// or resume that does not fit the clock's status.
var ErrNoSuchClock = errors.New("breach: no such running clock")

// PauseClock stops a running notification clock, for a reason the law
// allows (a law-enforcement delay, for example); the time spent paused is
// added to its due time when it is resumed.
func (o *Orchestrator) PauseClock(ctx context.Context, id, clock, actor, reason string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		d := inc.Deadline(clock)
		if d == nil || (d.Status != incident.DeadlineRunning && d.Status != incident.DeadlineMissed) {
			return fmt.Errorf("%w: %q on incident %s", ErrNoSuchClock, clock, inc.ID)
		}
		d.PausedAt, d.PauseReason, d.Status = o.cfg.now(), reason, incident.DeadlinePaused
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(clock)+" paused: "+reason)
		return nil
	})
	return err
}

// ResumeClock restarts a paused clock; its due and warning times move by the
// time it was paused.
func (o *Orchestrator) ResumeClock(ctx context.Context, id, clock, actor, note string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		d := inc.Deadline(clock)
		if d == nil || d.Status != incident.DeadlinePaused {
			return fmt.Errorf("%w: %q is not paused on incident %s", ErrNoSuchClock, clock, inc.ID)
		}
		now := o.cfg.now()
		paused := now.Sub(d.PausedAt)
		d.Paused += paused
		d.Due, d.WarnAt = d.Due.Add(paused), d.WarnAt.Add(paused)
		d.PausedAt, d.Status = time.Time{}, incident.DeadlineRunning
		if !d.EscalatedAt.IsZero() && !now.Before(d.Due) {
			d.Status = incident.DeadlineMissed
		}
		if !d.WarnedAt.IsZero() && d.WarnedAt.Before(d.WarnAt) {
			d.WarnedAt = time.Time{} // the due time moved past the warning: warn again
		}
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(clock)+" resumed after "+roundDur(paused)+
			"; due "+d.Due.UTC().Format(time.RFC3339)+": "+note)
		return nil
	})
	return err
}

// alert is a message to responders decided during a check.
type alert struct {
	subject, text string
	key           string
}

// CheckDeadlines looks at every open incident: it warns the on-call
// notifier of notification clocks about to run out and escalates those
// that ran out, and applies the timeout rule of approvals nobody gave in
// time. Run calls it every deadline interval (WithDeadlineInterval); a host
// without Run, or a game day, calls it directly. Failures are returned
// joined; an incident that fails is checked again next time.
func (o *Orchestrator) CheckDeadlines(ctx context.Context) error {
	open, err := o.store.ListOpen(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, inc := range open {
		if err := o.checkIncident(ctx, inc); err != nil {
			errs = append(errs, fmt.Errorf("incident %s: %w", inc.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (o *Orchestrator) checkIncident(ctx context.Context, inc *incident.Incident) error {
	now := o.cfg.now()
	if !o.dueForCheck(inc, now) {
		return nil
	}
	// No slot: a check changes the record under compare-and-swap and runs
	// no plugin, so it need not wait for a drive of the incident in
	// progress (which may be a long containment).
	var alerts []alert
	var escalation string
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		alerts, escalation = alerts[:0], ""
		for i := range inc.Deadlines {
			d := &inc.Deadlines[i]
			if d.Status != incident.DeadlineRunning {
				continue
			}
			switch {
			case !now.Before(d.Due) && d.EscalatedAt.IsZero():
				d.Status, d.EscalatedAt = incident.DeadlineMissed, now
				o.record(inc, incident.ActorSystem, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" missed: "+
					string(d.Stop)+" was due by "+d.Due.UTC().Format(time.RFC3339))
				alerts = append(alerts, alert{
					subject: "Deadline missed: " + d.Name + " (incident " + inc.ID + ")",
					text: "The clock " + strconv.Quote(d.Name) + " of incident " + inc.ID + " ran out at " +
						d.Due.UTC().Format(time.RFC3339) + ". Record " + string(d.Stop) + " as soon as it is done, with the reason for the delay.\n",
					key: incident.IdempotencyKey(inc.ID, "deadline-missed", d.Name),
				})
			case !now.Before(d.WarnAt) && d.WarnedAt.IsZero():
				d.WarnedAt = now
				o.record(inc, incident.ActorSystem, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" due in "+
					roundDur(d.Due.Sub(now))+": warned on-call")
				alerts = append(alerts, alert{
					subject: "Deadline approaching: " + d.Name + " (incident " + inc.ID + ")",
					text: "The clock " + strconv.Quote(d.Name) + " of incident " + inc.ID + " is due at " +
						d.Due.UTC().Format(time.RFC3339) + " (in " + roundDur(d.Due.Sub(now)) + "): " + string(d.Stop) + " is still to do.\n",
					key: incident.IdempotencyKey(inc.ID, "deadline-warning", d.Name+"@"+d.Due.UTC().Format(time.RFC3339)),
				})
			}
		}
		escalation = o.approvalTimeouts(inc, now)
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range alerts {
		o.log.Warn("breach: "+a.subject, "incident", inc.ID)
		_ = o.page(ctx, inc, a) // at most once; a failure is logged
	}
	if escalation != "" && o.lc.Can(inc.State, incident.EventEscalate) {
		if err := o.escalate(ctx, inc, inc.State, escalation); err != nil && !errors.Is(err, errStale) {
			return err
		}
	}
	o.sched.add(inc.ID)
	return nil
}

// dueForCheck reports whether a check of inc could change anything now.
func (o *Orchestrator) dueForCheck(inc *incident.Incident, now time.Time) bool {
	for _, d := range inc.Deadlines {
		if d.Status == incident.DeadlineRunning &&
			((!now.Before(d.WarnAt) && d.WarnedAt.IsZero()) || (!now.Before(d.Due) && d.EscalatedAt.IsZero())) {
			return true
		}
	}
	for _, a := range inc.Actions {
		if a.Status == incident.ActionAwaiting && a.Approval != nil && !a.Approval.Due.IsZero() && !now.Before(a.Approval.Due) {
			return true
		}
	}
	return false
}

// page tells the on-call notifier, best effort, and logs what it could not.
// It returns the failure, redacted, already logged; nil without an on-call
// notifier.
func (o *Orchestrator) page(ctx context.Context, inc *incident.Incident, a alert) error {
	if o.cfg.oncall == nil {
		return nil
	}
	msg := notify.Message{IdempotencyKey: a.key, Attempt: 1, Channel: "on-call", Recipient: incident.Customer{ID: "on-call"},
		Subject: a.subject, Text: a.text, IncidentID: inc.ID, Kind: inc.Kind, Severity: inc.Severity}
	err := o.redactErr(inc.ID, retry.Call(ctx, 30*time.Second, func(ctx context.Context) error { return o.cfg.oncall.Notify(ctx, msg) }))
	if err != nil {
		o.log.Error("breach: paging on-call failed", "incident", inc.ID, "subject", a.subject, "err", err)
	}
	return err
}
