package breach

import (
	"context"
	"errors"
	"strconv"

	"github.com/breachkit/breach/incident"
)

// drive takes the next step of one incident: it holds the incident's slot
// (and, with a Leaser store, the lease) for that step alone, then queues the
// incident again when there is more to do. People act between steps;
// Dismiss interrupts the running one. Plugin calls and writes outlive ctx
// by the shutdown grace (grace).
func (o *Orchestrator) drive(ctx, grace context.Context, id string) (more bool, err error) {
	st, release, ok := o.beginStep(ctx, grace, id)
	if !ok {
		return false, nil // a dismissal holds it, and queues it again
	}
	defer release()
	if o.leaser != nil {
		held, err := o.holdLease(st, id)
		if err != nil || !held {
			return false, err
		}
		defer func() {
			if !more || err != nil {
				o.dropLease(id)
			}
		}()
	}
	inc, err := o.store.Get(st.write, id)
	if err != nil {
		return false, err
	}
	more, err = o.step(st, inc)
	if errors.Is(err, errStale) {
		more, err = true, nil // someone moved it on: decide again from a fresh read
	}
	if err == nil && more && st.stop.Err() == nil {
		o.sched.addAt(id, o.priorityOf(inc))
	}
	return more, err
}

// settle steps the incident until it waits for a person or ends, in the
// caller's goroutine: for rehearsals and benchmarks, which drive without
// Run.
func (o *Orchestrator) settle(ctx context.Context, id string) error {
	for ctx.Err() == nil {
		more, err := o.drive(ctx, ctx, id)
		if err != nil || !more {
			return err
		}
	}
	return ctx.Err()
}

// priorityOf is the queue priority of an incident's next step: containment
// work is urgent.
func (o *Orchestrator) priorityOf(inc *incident.Incident) priority {
	switch inc.State {
	case incident.StateContaining:
		return urgent
	case incident.StateDetected:
		if pb := o.cfg.playbooks[inc.Kind]; pb != nil && pb.containFirst(inc.Severity) && len(pb.Containment) > 0 {
			return urgent
		}
	}
	return normal
}

// step takes the next step for inc and reports whether there may be another.
func (o *Orchestrator) step(st *stepRun, inc *incident.Incident) (bool, error) {
	pb := o.cfg.playbooks[inc.Kind]
	if inc.Dismissal != nil && inc.State.Open() {
		_, err := o.finishDismissal(st.write, st.stop.Done(), inc, pb)
		if err != nil && st.stop.Err() != nil {
			return false, nil // a person's Dismiss, or the next run, finishes it
		}
		return false, err
	}
	if pb == nil {
		if o.lc.Can(inc.State, incident.EventEscalate) {
			return true, o.escalate(st.write, inc, inc.State, "no playbook is registered for incidents of kind "+strconv.Quote(inc.Kind))
		}
		return false, nil
	}
	switch inc.State {
	case incident.StateDetected:
		if pb.containFirst(inc.Severity) && len(pb.Containment) > 0 {
			return true, o.advance(st.write, inc, inc.State, incident.EventContain,
				pb.Strategy.String()+" playbook: containing before investigating")
		}
		return true, o.advance(st.write, inc, inc.State, incident.EventInvestigate, "investigating before containing")
	case incident.StateInvestigating:
		if inc.Investigation == nil {
			return o.investigate(st, inc, pb)
		}
		ev, why := o.afterInvestigation(inc, pb, true)
		return true, o.advance(st.write, inc, inc.State, ev, why)
	case incident.StateContaining:
		return o.contain(st, inc, pb)
	case incident.StateContained:
		if inc.Investigation == nil {
			return true, o.advance(st.write, inc, inc.State, incident.EventInvestigate, "containment holds; investigating root cause and impact")
		}
		ev, why := o.afterInvestigation(inc, pb, false)
		return true, o.advance(st.write, inc, inc.State, ev, why)
	case incident.StateNotifying:
		return o.notify(st, inc, pb)
	case incident.StateResolving:
		if pb.AutoResolve && len(inc.OpenTasks()) == 0 {
			return true, o.advance(st.write, inc, inc.State, incident.EventResolve, "no mandatory task open; resolved by the playbook")
		}
		return false, nil
	case incident.StateResolved:
		if pb.AutoClose {
			return true, o.advance(st.write, inc, inc.State, incident.EventClose, "closed by the playbook")
		}
		return false, nil
	}
	return false, nil // escalated, closed, dismissed: a person acts next
}

// afterInvestigation picks the next event once the investigation is done.
func (o *Orchestrator) afterInvestigation(inc *incident.Incident, pb *Playbook, mayContain bool) (incident.Event, string) {
	if mayContain && len(o.uncontained(inc, pb)) > 0 {
		return incident.EventContain, "investigation done; applying containment"
	}
	if inc.Decision != nil && inc.Decision.Notify && !o.allDelivered(inc, pb) {
		return incident.EventNotify, "customer data affected; notifying customers"
	}
	return incident.EventRemediate, "no customer notice pending; opening corrective and preventive work"
}
