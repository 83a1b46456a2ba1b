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
	// The head kept from the last step is trusted when no other replica
	// can have written since: there is none (no Leaser), or this one held
	// the lease all along (a write made elsewhere while it held the lease
	// drops the kept head: see renewLeases).
	trust := true
	if o.leaser != nil {
		held, had, err := o.holdLease(st, id)
		if err != nil || !held {
			return false, err
		}
		trust = had
	}
	inc, err := o.head(st.write, id, trust)
	if err != nil {
		return false, err
	}
	o.wrote(id, inc.Version)
	if o.leaser != nil {
		// The lease is kept while the incident is open, idle or not (see
		// lease.go). The write that ends an incident gives up every lease
		// on it: one held when the incident was read open is gone once it
		// ended; one taken on an incident already ended (a person's Close
		// queues it, say) is given up here.
		wasOpen := inc.State.Open()
		defer func() {
			switch {
			case inc.State.Open():
			case wasOpen:
				o.forgetLease(id)
			default:
				o.dropLease(id)
			}
		}()
	}
	pb := o.cfg.playbooks[inc.Kind]
	st.chain = func(inc *incident.Incident) { o.chain(inc, pb) }
	more, err = o.step(st, inc)
	if errors.Is(err, errStale) {
		more, err = true, nil // someone moved it on: decide again from a fresh read
	} else if err == nil && !inc.State.Open() {
		more = false // it ended with this step: nothing follows
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

// containsFirst reports whether a new incident of kind at severity is
// contained before anything else.
func (o *Orchestrator) containsFirst(kind string, severity incident.Severity) bool {
	pb := o.cfg.playbooks[kind]
	return pb != nil && pb.containFirst(severity) && len(pb.Containment) > 0
}

// priorityOf is the queue priority of an incident's next step: containment
// work is urgent.
func (o *Orchestrator) priorityOf(inc *incident.Incident) priority {
	switch inc.State {
	case incident.StateContaining:
		return urgent
	case incident.StateDetected:
		if o.containsFirst(inc.Kind, inc.Severity) {
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
	if ev, why, ok := o.pureNext(inc, pb); ok {
		from := inc.State
		return true, o.mutate(st.write, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			if err := o.fire(inc, ev, incident.ActorSystem, why); err != nil {
				return err
			}
			o.chain(inc, pb)
			return nil
		})
	}
	switch inc.State {
	case incident.StateInvestigating:
		return o.investigate(st, inc, pb)
	case incident.StateContaining:
		return o.contain(st, inc, pb)
	case incident.StateNotifying:
		return o.notify(st, inc, pb)
	}
	return false, nil // waiting for a person (approval, tasks, review), or ended
}

// pureNext returns the event that follows inc's state without a plugin
// call, if there is one.
func (o *Orchestrator) pureNext(inc *incident.Incident, pb *Playbook) (incident.Event, string, bool) {
	switch inc.State {
	case incident.StateDetected:
		if pb.containFirst(inc.Severity) && len(pb.Containment) > 0 {
			return incident.EventContain, pb.Strategy.String() + " playbook: containing before investigating", true
		}
		return incident.EventInvestigate, "investigating before containing", true
	case incident.StateInvestigating:
		if inc.Investigation != nil {
			ev, why := o.afterInvestigation(inc, pb, true)
			return ev, why, true
		}
	case incident.StateContaining:
		if len(o.uncontained(inc, pb)) == 0 {
			return incident.EventContained, "every containment action applied or denied", true
		}
	case incident.StateContained:
		if inc.Investigation == nil {
			return incident.EventInvestigate, "containment holds; investigating root cause and impact", true
		}
		ev, why := o.afterInvestigation(inc, pb, false)
		return ev, why, true
	case incident.StateNotifying:
		// With nobody to notify the notify step escalates: not vacuously done.
		if inc.Decision != nil && inc.Decision.Notify && o.allDelivered(inc, pb) {
			return incident.EventNotified, "every affected customer notified", true
		}
	case incident.StateResolving:
		if pb.AutoResolve && len(inc.OpenTasks()) == 0 {
			return incident.EventResolve, "no mandatory task open; resolved by the playbook", true
		}
	case incident.StateResolved:
		if pb.AutoClose {
			return incident.EventClose, "closed by the playbook", true
		}
	}
	return "", "", false
}

// chain folds into the write being made the transitions that follow inc's
// state without a plugin call, and, when they enter containment or
// notification, the claims of the calls that come next: a step's result and
// the next step's intent are one write, and the first containment call of
// a new incident follows exactly one (its creation). Containment that needs
// a person's approval is claimed by its own step, which pages on-call.
func (o *Orchestrator) chain(inc *incident.Incident, pb *Playbook) {
	if pb == nil || inc.Dismissal != nil || !inc.State.Open() {
		return
	}
	entered := false
	for range maxChain {
		ev, why, ok := o.pureNext(inc, pb)
		if !ok || o.fire(inc, ev, incident.ActorSystem, why) != nil {
			break
		}
		entered = true
	}
	if !entered {
		return
	}
	switch inc.State {
	case incident.StateContaining:
		if todo := o.uncontained(inc, pb); !needsApproval(inc, todo) {
			o.claimActions(inc, todo)
		}
	case incident.StateNotifying:
		if inc.Decision != nil && inc.Decision.Notify && inc.Investigation != nil {
			o.claimFirstBatch(inc, pb)
		}
	}
}

// maxChain bounds the transitions one write folds (the lifecycle has no
// cycle without a plugin call, but a host's playbook is not to be trusted
// with the process).
const maxChain = 8

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
