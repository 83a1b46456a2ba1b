package breach

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// act runs a person's change to an incident: it applies change with a
// compare-and-swap (re-read and applied again on a conflict) and schedules
// the incident to be driven on. It takes no slot: a step running on the
// incident finds the change when it next writes, and decides again. A
// person's action therefore never waits for automation.
func (o *Orchestrator) act(ctx context.Context, id, actor string, change func(*incident.Incident) error) (*incident.Incident, error) {
	inc, err := o.amend(ctx, id, actor, change)
	if err != nil {
		return nil, err
	}
	o.sched.addAt(id, o.priorityOf(inc))
	return inc, nil
}

// dismissing refuses a change of course while a dismissal is under way: the
// dismissal is finished first (by the driver, or by calling Dismiss again).
func dismissing(inc *incident.Incident) error {
	if inc.Dismissal != nil && inc.State.Open() {
		return fmt.Errorf("%w: incident %s", ErrDismissalPending, inc.ID)
	}
	return nil
}

// Reopen sends a resolved, closed or dismissed incident back to
// investigation: the findings and the notify decision are cleared (they
// stay on the timeline), containment is re-applied where it is not in
// force, and customers not yet told are notified. It returns an error
// matching incident.ErrDuplicate when another open incident holds the
// dedup key, and a *incident.TransitionError from any other state.
func (o *Orchestrator) Reopen(ctx context.Context, id, actor, reason string) error {
	reason, err := o.personsText(id, "reason", reason, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := o.fire(inc, incident.EventReopen, actor, reason); err != nil {
			return err
		}
		inc.Investigation, inc.Decision, inc.Dismissal, inc.Escalation = nil, nil, nil, nil
		inc.ResolvedAt, inc.ClosedAt, inc.ReopenedAt = time.Time{}, time.Time{}, o.cfg.now()
		o.forgetCredential(inc.ID) // a credential of its earlier life
		// Containment undone at dismissal is applied again as a new effect,
		// under a new key: the old one names the effect that was released.
		inc.Reopens++
		gen := inc.Reopens
		for i := range inc.Actions {
			if r := &inc.Actions[i]; r.Status == incident.ActionReleased || r.Status == incident.ActionReleaseFailed {
				r.Status, r.Attempts, r.LastError = incident.ActionPending, 0, ""
				r.IdempotencyKey = incident.IdempotencyKey(inc.ID, "contain/"+strconv.Itoa(gen), r.Name)
			}
		}
		return nil
	})
	return err
}

// Retry hands an escalated incident back to automation, at the step where
// it stopped: containment, investigation or notification is attempted
// again, with the same idempotency keys. It returns ErrNotEscalated for an
// incident that is not escalated.
func (o *Orchestrator) Retry(ctx context.Context, id, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := dismissing(inc); err != nil {
			return err
		}
		if inc.State != incident.StateEscalated {
			return fmt.Errorf("%w: incident %s is %s", ErrNotEscalated, inc.ID, inc.State)
		}
		from := incident.StateDetected
		if inc.Escalation != nil {
			from = inc.Escalation.From
		}
		ev := incident.EventInvestigate
		switch from {
		case incident.StateContaining:
			ev = incident.EventContain
		case incident.StateNotifying:
			ev = incident.EventNotify
			if inc.Decision != nil && !inc.Decision.Notify {
				ev = incident.EventRemediate // a person decided since: no notice
			}
		case incident.StateResolving:
			ev = incident.EventRemediate
		case incident.StateInvestigating:
			inc.Investigation = nil
			if inc.Decision != nil && !inc.Decision.Override {
				inc.Decision = nil // a person's override outlives the investigation
			}
		}
		return o.fire(inc, ev, actor, "retry: "+note)
	})
	return err
}

// OverrideDecision replaces the notify / do-not-notify decision with a
// person's, recorded with the reason. An investigation that finishes later
// does not replace it. Overriding to notify an incident in resolution sends
// it back to notification. It returns an error matching ErrDecisionLocked
// while notices are being sent or once the incident is resolved.
func (o *Orchestrator) OverrideDecision(ctx context.Context, id string, notifyCustomers bool, actor, reason string) error {
	reason, err := o.personsText(id, "reason", reason, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := dismissing(inc); err != nil {
			return err
		}
		switch inc.State {
		case incident.StateNotifying, incident.StateResolved, incident.StateClosed, incident.StateDismissed, incident.StateMerged:
			return fmt.Errorf("%w: incident %s is %s", ErrDecisionLocked, inc.ID, inc.State)
		}
		prev := "none"
		if inc.Decision != nil {
			prev = strconv.FormatBool(inc.Decision.Notify) + " (" + inc.Decision.Reason + ")"
		}
		inc.Decision = &incident.Decision{Notify: notifyCustomers, Reason: reason, By: actor, At: o.cfg.now(), Override: true}
		if notifyCustomers {
			if pb := o.cfg.playbooks[inc.Kind]; pb != nil && len(inc.Recommendations) == 0 {
				inc.Recommendations = append([]string(nil), pb.Recommendations...)
			}
		}
		o.record(inc, actor, incident.EntryDecision, "decision overridden: notify customers = "+
			strconv.FormatBool(notifyCustomers)+" (was "+prev+"): "+reason)
		if notifyCustomers && inc.State == incident.StateResolving {
			return o.fire(inc, incident.EventNotify, actor, "customers to be notified after all: "+reason)
		}
		return nil
	})
	return err
}
