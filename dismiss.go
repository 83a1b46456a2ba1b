package breach

import (
	"context"
	"errors"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

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

// finishDismissal releases what was contained and then dismisses the
// incident. It returns the release failures, joined.
func (o *Orchestrator) finishDismissal(ctx context.Context, stop <-chan struct{}, inc *incident.Incident, pb *Playbook) (error, error) {
	var applied []containment.Action
	if pb != nil {
		for _, a := range pb.Containment {
			if r := inc.Action(a.Name); r != nil && (r.Status == incident.ActionApplied || r.Status == incident.ActionPending) {
				applied = append(applied, a)
			}
		}
	}
	var werr error
	runner := containment.Runner{
		Concurrency: pb.containConcurrency(),
		Now:         o.cfg.now,
		Stop:        stop,
		OnResult: func(res containment.Result) {
			if errors.Is(res.Err, incident.ErrStopped) {
				return
			}
			werr = errors.Join(werr, o.mutate(ctx, inc, func(inc *incident.Incident) error {
				o.recordAction(inc, res, incident.ActionReleased, incident.ActionReleaseFailed, "released", "release failed")
				return nil
			}))
		},
	}
	results := runner.Release(ctx, applied, o.baseRequest(inc), recordedKeys(inc))
	if werr != nil {
		return nil, werr
	}
	for _, r := range results {
		if errors.Is(r.Err, incident.ErrStopped) {
			return nil, nil // resumed later
		}
	}
	d := inc.Dismissal
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if !inc.State.Open() {
			return nil
		}
		return o.fire(inc, incident.EventDismiss, d.By, d.Reason)
	})
	return results.Err(), err
}

func (p *Playbook) containConcurrency() int {
	if p == nil {
		return 0
	}
	return p.ContainConcurrency
}
