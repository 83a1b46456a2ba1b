package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// checkDeadlines looks at every open incident: it warns the on-call
// notifier of notification clocks about to run out and escalates those
// that ran out, and applies the timeout rule of approvals nobody gave in
// time. Run calls it every deadline interval (WithDeadlineInterval), and a
// game day at every due time. Failures are returned joined; an incident
// that fails is checked again next time.
func (o *Orchestrator) checkDeadlines(ctx context.Context) error {
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
	var pages []pageOut
	var escalation string
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		alerts, escalation = alerts[:0], ""
		if !inc.State.Open() || inc.Dismissal != nil {
			// Ended, or being dismissed (its clocks end with the
			// dismissal): nothing to warn, escalate or approve by timeout.
			return errUnchanged
		}
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
					title:  "Deadline missed: " + d.Name,
					reason: "deadline missed: " + d.Name + ": the clock ran out at " + d.Due.UTC().Format(time.RFC3339),
					needed: "record " + string(d.Stop) + " as soon as it is done, with the reason for the delay",
					key:    incident.IdempotencyKey(inc.ID, "deadline-missed", d.Name),
				})
			case !now.Before(d.WarnAt) && d.WarnedAt.IsZero():
				d.WarnedAt = now
				o.record(inc, incident.ActorSystem, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" due in "+
					roundDur(d.Due.Sub(now))+": warned on-call")
				alerts = append(alerts, alert{
					title: "Deadline approaching: " + d.Name,
					reason: "deadline approaching: " + d.Name + ": the clock is due at " +
						d.Due.UTC().Format(time.RFC3339) + " (in " + roundDur(d.Due.Sub(now)) + ")",
					needed: string(d.Stop) + " is still to do",
					key:    incident.IdempotencyKey(inc.ID, "deadline-warning", d.Name+"@"+d.Due.UTC().Format(time.RFC3339)),
				})
			}
		}
		escalation = o.approvalTimeouts(inc, now)
		climbed, _ := o.climb(inc, now)
		pages = climbed
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, a := range alerts {
		o.log.Warn("breach: "+a.reason, "incident", inc.ID)
		pages = append(pages, o.oneShot(inc, a)...)
	}
	o.sendPages(ctx, inc, pages)
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
	if due := o.climbDue(inc); !due.IsZero() && !now.Before(due) {
		return true
	}
	return false
}
