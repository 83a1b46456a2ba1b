package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// ErrNoActor is returned when a person's action is called without saying who acts. Every
// step on the timeline names its actor.
var ErrNoActor = errors.New("breach: actor required")

// act runs a person's change to an incident: it waits for any step this
// process is running on the incident, applies change with a
// compare-and-swap, and schedules the incident to be driven on.
func (o *Orchestrator) act(ctx context.Context, id, actor string, change func(*incident.Incident) error) (*incident.Incident, error) {
	if actor == "" {
		return nil, ErrNoActor
	}
	release, err := o.slots.acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer release()
	inc, err := o.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := o.mutate(ctx, inc, change); err != nil {
		return nil, err
	}
	o.sched.add(id)
	return inc, nil
}

// Dismiss closes an incident as a false positive. Containment that was
// applied is released first (each action whose container is a
// containment.Releaser, with the action's idempotency key), and each release
// is recorded; then the incident moves to dismissed. A crash part way is
// finished by the next Run.
//
// Dismiss waits for a step this process is running on the incident. It
// returns a *incident.TransitionError when the incident cannot be dismissed
// in its state (containing, notifying, resolving, or already ended), and the
// release failures joined (each a *containment.ActionError) when some
// containment could not be undone; the incident is dismissed either way.
func (o *Orchestrator) Dismiss(ctx context.Context, id, actor, reason string) error {
	if actor == "" {
		return ErrNoActor
	}
	release, err := o.slots.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	inc, err := o.store.Get(ctx, id)
	if err != nil {
		return err
	}
	err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if _, err := o.lc.Next(inc.State, incident.EventDismiss); err != nil {
			return err
		}
		inc.Dismissal = &incident.Dismissal{By: actor, Reason: reason, At: o.cfg.now()}
		o.record(inc, actor, incident.EntryNote, "dismissed as a false positive: "+reason+"; releasing containment")
		return nil
	})
	if err != nil {
		return err
	}
	failed, err := o.finishDismissal(ctx, nil, inc, o.cfg.playbooks[inc.Kind])
	if err != nil {
		o.sched.add(id) // the driver finishes a dismissal that is on record
	}
	return errors.Join(o.redactErr(id, failed), err)
}

// Resolve marks the corrective work of an incident done. From investigating,
// contained or escalated it opens the playbook's tasks and resolves in one
// go when none is mandatory. It returns an *OpenTasksError (matching
// ErrOpenTasks) naming the mandatory tasks still open, and a
// *incident.TransitionError when the incident cannot be resolved in its
// state.
func (o *Orchestrator) Resolve(ctx context.Context, id, actor, note string) error {
	var open []string
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		open = nil
		if inc.State != incident.StateResolving && o.lc.Can(inc.State, incident.EventRemediate) {
			if err := o.fire(inc, incident.EventRemediate, actor, "resolution started: "+note); err != nil {
				return err
			}
		}
		if open = inc.OpenTasks(); len(open) > 0 && inc.State == incident.StateResolving {
			// Keep the move into resolution (it opened the tasks); refuse
			// only the resolve itself.
			return nil
		}
		return o.fire(inc, incident.EventResolve, actor, note)
	})
	if err == nil && len(open) > 0 {
		return &OpenTasksError{IncidentID: id, Tasks: open}
	}
	return err
}

// Close records that the post-incident review of a resolved incident is
// done. It returns a *incident.TransitionError for an incident that is not
// resolved.
func (o *Orchestrator) Close(ctx context.Context, id, actor, note string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		return o.fire(inc, incident.EventClose, actor, note)
	})
	return err
}

// Reopen sends a resolved, closed or dismissed incident back to
// investigation: the findings and the notify decision are cleared (they
// stay on the timeline), containment is re-applied where it is not in
// force, and customers not yet told are notified. It returns an error
// matching incident.ErrDuplicate when another open incident holds the
// dedup key, and a *incident.TransitionError from any other state.
func (o *Orchestrator) Reopen(ctx context.Context, id, actor, reason string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := o.fire(inc, incident.EventReopen, actor, reason); err != nil {
			return err
		}
		inc.Investigation, inc.Decision, inc.Dismissal, inc.Escalation = nil, nil, nil, nil
		inc.ResolvedAt, inc.ClosedAt = time.Time{}, time.Time{}
		// Containment undone at dismissal is applied again as a new effect,
		// under a new key: the old one names the effect that was released.
		gen := 0
		for _, e := range inc.Timeline {
			if e.Event == incident.EventReopen {
				gen++
			}
		}
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
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
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

// CompleteTask marks a prevention task done. It returns an error matching
// ErrNoSuchTask for an unknown task; completing a done task again changes
// nothing.
func (o *Orchestrator) CompleteTask(ctx context.Context, id, taskID, actor, note string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		for i := range inc.Tasks {
			t := &inc.Tasks[i]
			if t.ID != taskID {
				continue
			}
			if !t.Done {
				t.Done, t.DoneBy, t.DoneAt, t.Note = true, actor, o.cfg.now(), note
				o.record(inc, actor, incident.EntryTask, "task "+strconv.Quote(taskID)+" done: "+note)
			}
			return nil
		}
		return fmt.Errorf("%w: incident %s has no task %q", ErrNoSuchTask, inc.ID, taskID)
	})
	return err
}

// ErrNoApprovalPending is returned when Approve or Deny names an action that
// does not wait for approval.
var ErrNoApprovalPending = errors.New("breach: no approval pending for that action")

// Approve lets a containment action that waits for approval run. It returns
// an error matching ErrNoApprovalPending when the action does not wait for
// approval. An escalated incident (approval timed out) still needs Retry to
// resume containment.
func (o *Orchestrator) Approve(ctx context.Context, id, action, actor, note string) error {
	return o.decide(ctx, id, action, actor, note, true)
}

// Deny refuses a containment action that waits for approval: it will not
// run, and containment completes without it. Errors as for Approve.
func (o *Orchestrator) Deny(ctx context.Context, id, action, actor, note string) error {
	return o.decide(ctx, id, action, actor, note, false)
}

func (o *Orchestrator) decide(ctx context.Context, id, action, actor, note string, approved bool) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		r := inc.Action(action)
		if r == nil || r.Status != incident.ActionAwaiting || r.Approval == nil {
			return fmt.Errorf("%w: %q on incident %s", ErrNoApprovalPending, action, inc.ID)
		}
		r.Approval.DecidedAt, r.Approval.By, r.Approval.Approved, r.Approval.Note = o.cfg.now(), actor, approved, note
		verdict := "denied"
		r.Status = incident.ActionDenied
		if approved {
			verdict, r.Status = "approved", incident.ActionPending
		}
		o.record(inc, actor, incident.EntryContainment, "containment action "+strconv.Quote(action)+" "+verdict+": "+note)
		return nil
	})
	return err
}

// ErrDecisionLocked is returned when OverrideDecision comes too late (notices are going out,
// or the incident is resolved: reopen it first).
var ErrDecisionLocked = errors.New("breach: notify decision can no longer change")

// OverrideDecision replaces the notify / do-not-notify decision with a
// person's, recorded with the reason. An investigation that finishes later
// does not replace it. Overriding to notify an incident in resolution sends
// it back to notification. It returns an error matching ErrDecisionLocked
// while notices are being sent or once the incident is resolved.
func (o *Orchestrator) OverrideDecision(ctx context.Context, id string, notifyCustomers bool, actor, reason string) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		switch inc.State {
		case incident.StateNotifying, incident.StateResolved, incident.StateClosed, incident.StateDismissed:
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
