package breach

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// drive moves one incident forward until it waits for a person, ends, or
// ctx ends. Plugin calls and writes run under grace, which outlives ctx by
// the shutdown grace.
func (o *Orchestrator) drive(ctx, grace context.Context, id string) error {
	release, err := o.slots.acquire(ctx, id)
	if err != nil {
		return nil // shutting down
	}
	defer release()
	if o.leaser != nil {
		var unlease func()
		var ok bool
		ctx, grace, unlease, ok, err = o.lease(ctx, grace, id)
		if err != nil {
			return err
		}
		if !ok {
			// Another replica drives it now; look again soon, in case it
			// stops before seeing what made this one want to drive it.
			o.sched.later(min(o.cfg.leaseTTL/3, time.Second), id)
			return nil
		}
		defer unlease()
	}
	inc, err := o.store.Get(grace, id)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		more, err := o.step(ctx, grace, inc)
		if errors.Is(err, errStale) {
			if inc, err = o.store.Get(grace, id); err != nil {
				return err
			}
			continue
		}
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// step takes the next step for inc and reports whether there may be another.
func (o *Orchestrator) step(ctx, grace context.Context, inc *incident.Incident) (bool, error) {
	pb := o.cfg.playbooks[inc.Kind]
	if inc.Dismissal != nil && inc.State.Open() {
		_, err := o.finishDismissal(grace, stopOf(ctx), inc, pb)
		return false, err
	}
	if pb == nil {
		if o.lc.Can(inc.State, incident.EventEscalate) {
			return true, o.escalate(grace, inc, inc.State, "no playbook is registered for incidents of kind "+strconv.Quote(inc.Kind))
		}
		return false, nil
	}
	switch inc.State {
	case incident.StateDetected:
		if pb.containFirst(inc.Severity) && len(pb.Containment) > 0 {
			return true, o.advance(grace, inc, inc.State, incident.EventContain,
				pb.Strategy.String()+" playbook: containing before investigating")
		}
		return true, o.advance(grace, inc, inc.State, incident.EventInvestigate, "investigating before containing")
	case incident.StateInvestigating:
		if inc.Investigation == nil {
			return o.investigate(ctx, grace, inc, pb)
		}
		ev, why := o.afterInvestigation(inc, pb, true)
		return true, o.advance(grace, inc, inc.State, ev, why)
	case incident.StateContaining:
		return o.contain(ctx, grace, inc, pb)
	case incident.StateContained:
		if inc.Investigation == nil {
			return true, o.advance(grace, inc, inc.State, incident.EventInvestigate, "containment holds; investigating root cause and impact")
		}
		ev, why := o.afterInvestigation(inc, pb, false)
		return true, o.advance(grace, inc, inc.State, ev, why)
	case incident.StateNotifying:
		return o.notify(ctx, grace, inc, pb)
	case incident.StateResolving:
		if pb.AutoResolve && len(inc.OpenTasks()) == 0 {
			return true, o.advance(grace, inc, inc.State, incident.EventResolve, "no mandatory task open; resolved by the playbook")
		}
		return false, nil
	case incident.StateResolved:
		if pb.AutoClose {
			return true, o.advance(grace, inc, inc.State, incident.EventClose, "closed by the playbook")
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
