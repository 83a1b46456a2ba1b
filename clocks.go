package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// Calendar says which days count for clocks measured in business days: it
// reports whether the calendar day containing t is a business day. It must
// be safe for concurrent use.
type Calendar func(t time.Time) bool

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
	return Calendar(func(t time.Time) bool {
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

// due returns when a clock started at start is due.
func (c Clock) due(start time.Time) time.Time {
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
			if c.Calendar(day) {
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
			d.Status, d.StartedAt, d.Due = incident.DeadlineRunning, at, c.due(at)
			d.WarnAt = d.Due.Add(-c.warnBefore(at, d.Due))
			o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" started; due "+d.Due.UTC().Format(time.RFC3339))
		}
		if d.Stop == m && !d.Status.Done() {
			if !d.PausedAt.IsZero() {
				d.Paused += at.Sub(d.PausedAt)
				d.Due = d.Due.Add(at.Sub(d.PausedAt))
				d.PausedAt = time.Time{}
			}
			d.MetAt, d.EndedAt = at, at
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

// endClocks ends every clock of an incident that ends (closed, dismissed
// or merged): one that is due and not met is missed; one that never started,
// or that ends before it is due, does not apply, for the reason given by
// how (such as "closed"). Each is recorded on the timeline.
func (o *Orchestrator) endClocks(inc *incident.Incident, now time.Time, actor, how string) {
	for i := range inc.Deadlines {
		d := &inc.Deadlines[i]
		if d.Status.Done() {
			continue
		}
		due := d.Due
		if !d.PausedAt.IsZero() {
			due = due.Add(now.Sub(d.PausedAt)) // paused time does not count
			d.Paused += now.Sub(d.PausedAt)
			d.PausedAt = time.Time{}
		}
		var verdict string
		switch {
		case d.Status == incident.DeadlineWaiting:
			d.Status = incident.DeadlineNotApplicable
			d.NotApplicableReason = "the incident was " + how + " before " + string(d.Start) + ", which starts the clock"
		case d.Status == incident.DeadlineMissed || !now.Before(due):
			d.Status = incident.DeadlineMissed
			verdict = "ended missed: the incident was " + how + " without " + string(d.Stop) + ", due by " + due.UTC().Format(time.RFC3339)
		default:
			d.Status = incident.DeadlineNotApplicable
			d.NotApplicableReason = "the incident was " + how + " " + roundDur(due.Sub(now)) + " before the due time, without " + string(d.Stop)
		}
		d.EndedAt = now
		if verdict == "" {
			verdict = "does not apply: " + d.NotApplicableReason
		}
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" "+verdict)
	}
}

// MarkClockNotApplicable records a person's judgement that a notification
// clock does not apply to the incident (no personal data was involved, the
// incident is not material), with the reason; the clock stops for good. It
// returns an error matching ErrNoSuchClock for a clock the incident does
// not have or that has already ended met or late, and ErrInvalidInput for an
// empty reason.
func (o *Orchestrator) MarkClockNotApplicable(ctx context.Context, id, clock, actor, reason string) error {
	reason, err := o.personsText(id, "reason", reason, false) // credentials never enter the record
	if err != nil {
		return err
	}
	if reason == "" {
		return fmt.Errorf("%w: a reason is required to mark clock %q not applicable", ErrInvalidInput, clock)
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		d := inc.Deadline(clock)
		if d == nil || d.Status.Done() {
			return fmt.Errorf("%w: %q on incident %s", ErrNoSuchClock, clock, inc.ID)
		}
		now := o.cfg.now()
		if !d.PausedAt.IsZero() {
			d.Paused += now.Sub(d.PausedAt)
			d.PausedAt = time.Time{}
		}
		d.Status, d.NotApplicableReason, d.EndedAt = incident.DeadlineNotApplicable, reason, now
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(clock)+" marked not applicable: "+reason)
		return nil
	})
	return err
}

// RecordMilestone records that a person reached a milestone, such as
// incident.MilestoneAuthorityNotified; the clocks waiting for it start or
// stop. note says what was done and, for a clock stopped late, why it was
// late. Only the first time a milestone is reached counts. It works on
// open and closed incidents alike.
func (o *Orchestrator) RecordMilestone(ctx context.Context, id string, m incident.Milestone, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	if m == "" {
		return fmt.Errorf("%w: empty milestone", ErrInvalidInput)
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		o.record(inc, actor, incident.EntryNote, withNote("milestone "+string(m), note))
		o.reach(inc, m, o.cfg.now(), actor, note)
		return nil
	})
	return err
}

// PauseClock stops a running notification clock, for a reason the law
// allows (a law-enforcement delay, for example); the time spent paused is
// added to its due time when it is resumed. A clock that missed its due
// time may be paused while the incident is open. It returns an error
// matching ErrNoSuchClock, with nothing recorded, for a clock the incident
// does not have or that is not running (waiting, paused, met), and for
// every clock of an incident that has ended (its clocks ended with it).
func (o *Orchestrator) PauseClock(ctx context.Context, id, clock, actor, reason string) error {
	reason, err := o.personsText(id, "reason", reason, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		d := inc.Deadline(clock)
		if d == nil || (d.Status != incident.DeadlineRunning && d.Status != incident.DeadlineMissed) || !inc.State.Open() {
			return fmt.Errorf("%w: %q on incident %s", ErrNoSuchClock, clock, inc.ID)
		}
		d.PausedAt, d.PauseReason, d.Status = o.cfg.now(), reason, incident.DeadlinePaused
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(clock)+" paused: "+reason)
		return nil
	})
	return err
}

// ResumeClock restarts a paused clock; its due and warning times move by the
// time it was paused. It returns an error matching ErrNoSuchClock, with
// nothing recorded, for a clock the incident does not have or that is not
// paused (a paused clock ends, unpaused, with the incident).
func (o *Orchestrator) ResumeClock(ctx context.Context, id, clock, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
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
		o.record(inc, actor, incident.EntryNote, withNote("clock "+strconv.Quote(clock)+" resumed after "+roundDur(paused)+
			"; due "+d.Due.UTC().Format(time.RFC3339), note))
		return nil
	})
	return err
}
