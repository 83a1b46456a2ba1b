package breach

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// Approve lets a containment action that waits for approval run. It returns
// an error matching ErrNoApprovalPending when the action does not wait for
// approval, or the incident has ended (closed or dismissed: nothing would
// run it). An escalated incident (approval timed out) still needs Retry to
// resume containment.
func (o *Orchestrator) Approve(ctx context.Context, id, action, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	return o.decide(ctx, id, action, actor, note, true)
}

// Deny refuses a containment action that waits for approval: it will not
// run, and containment completes without it. Errors as for Approve.
func (o *Orchestrator) Deny(ctx context.Context, id, action, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	return o.decide(ctx, id, action, actor, note, false)
}

func (o *Orchestrator) decide(ctx context.Context, id, action, actor, note string, approved bool) error {
	_, err := o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := dismissing(inc); err != nil {
			return err
		}
		if !inc.State.Open() {
			return fmt.Errorf("%w: %q on incident %s, which is %s", ErrNoApprovalPending, action, inc.ID, inc.State)
		}
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
		o.record(inc, actor, incident.EntryContainment, withNote("containment action "+strconv.Quote(action)+" "+verdict, note))
		return nil
	})
	return err
}

// approvalTimeouts applies the timeout rule of approval requests nobody
// answered in time. It returns the reason to escalate, if any.
func (o *Orchestrator) approvalTimeouts(inc *incident.Incident, now time.Time) string {
	pb := o.cfg.playbooks[inc.Kind]
	var reasons []string
	for i := range inc.Actions {
		r := &inc.Actions[i]
		if r.Status != incident.ActionAwaiting || r.Approval == nil || r.Approval.Due.IsZero() || now.Before(r.Approval.Due) {
			continue
		}
		a, ok := pb.action(r.Name)
		if ok && a.Approval != nil && a.Approval.OnTimeout == containment.ProceedOnTimeout {
			r.Approval.DecidedAt, r.Approval.By, r.Approval.Approved, r.Approval.ByTimeout = now, incident.ActorSystem, true, true
			r.Status = incident.ActionPending
			o.record(inc, incident.ActorSystem, incident.EntryContainment, "containment action "+strconv.Quote(r.Name)+
				" approved by timeout (break-glass): nobody decided within "+roundDur(now.Sub(r.Approval.RequestedAt)))
			continue
		}
		r.Approval.Due = time.Time{} // escalate once; the request stays open for a person
		reason := "approval for containment action " + strconv.Quote(r.Name) + " not given in time"
		o.record(inc, incident.ActorSystem, incident.EntryContainment, reason)
		reasons = append(reasons, reason)
	}
	return strings.Join(reasons, "; ")
}
