package breach

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// Dismiss closes an incident as a false positive. It may be called in any
// open state but resolving, while automation runs: the step running on the
// incident in this process is interrupted (its remaining attempts are
// cancelled through their context, with a cause saying why), and Dismiss
// waits for it to record what it knows, at most one step. With a
// incident.Leaser store it also waits for another replica stepping the
// incident to finish its step. Then the dismissal is recorded, containment
// that was applied is released (each action whose container is a
// containment.Releaser, with the action's idempotency key), each release is
// recorded, and the incident moves to dismissed.
//
// Once Dismiss returns nil no further customer notice leaves: notices the
// interruption cut mid-call are recorded as incident.DeliveryUnknown, those
// never tried as incident.DeliveryCancelled; notices already sent stay
// recorded as sent.
//
// It returns an error matching ErrInvalidInput, with nothing recorded, for
// an empty actor or reason, or a reason AddNote would refuse (a call that
// finishes a dismissal already on record needs one too, and records it
// nowhere); a *incident.TransitionError, with nothing recorded, when the
// incident cannot be dismissed in its state (resolving, or already ended),
// and the release failures joined (each a *containment.ActionError) when
// some containment could not be undone; the incident is dismissed either
// way. When ctx ends after the dismissal was recorded, the error matches
// both ErrDismissalPending and ctx's error: the dismissal stands and the
// next Run (or another call of Dismiss) finishes it. When ctx ends before,
// nothing was recorded. When another replica, stepping the incident, found
// the dismissal and finished it while this call waited for its lease,
// Dismiss returns nil: the record holds that replica's releases, each made
// and recorded once.
func (o *Orchestrator) Dismiss(ctx context.Context, id, actor, reason string) error {
	// Every error names no credential: a release's, or the reason a
	// dismissal is pending (a plugin's error quoting the key), included.
	// The credentials are taken first: the write that ends the incident
	// forgets them, and the releases' errors from before it may quote one.
	secrets := o.credentials(id)
	return redactWith(secrets, o.redactErr(id, o.dismiss(ctx, id, actor, reason)))
}

func (o *Orchestrator) dismiss(ctx context.Context, id, actor, reason string) error {
	reason, err := o.personsText(id, "reason", reason, true) // credentials never enter the record
	if err != nil {
		return err
	}
	if err := checkActor(actor); err != nil {
		return err
	}
	release, err := o.slots.interrupt(ctx, id, errDismissing)
	if err != nil {
		return err
	}
	// Queuing the incident while this call holds its slot is safe: a
	// worker that takes it off the queue meanwhile finds the slot taken,
	// and the slot's release queues it again (slots.release).
	defer release()
	// The interruption cut the step running, which queues itself again
	// only when it was not cut: from here on, a Dismiss that records
	// nothing (refused, or a store that failed) queues the incident for
	// the step it cut, and one that records the dismissal leaves it to the
	// driver to finish should this call not.
	inc, err := o.store.Head(ctx, id)
	if err != nil {
		o.sched.add(id)
		return err
	}
	err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.Dismissal != nil && inc.State.Open() {
			return nil // under way: finish it
		}
		if _, err := o.lc.Next(inc.State, incident.EventDismiss); err != nil {
			return refusedIfMerged(inc, err)
		}
		inc.Dismissal = &incident.Dismissal{By: actor, Reason: reason, At: o.cfg.now()}
		o.record(inc, actor, incident.EntryNote, "dismissed as a false positive: "+reason+"; releasing containment")
		return nil
	})
	if err != nil {
		// Refused or failed: the cut step is taken again; or, when ctx
		// ended, the write may have landed and the driver finishes what is
		// on record.
		o.sched.add(id)
		return err
	}
	pending := func(err error) error {
		o.sched.add(id) // the driver finishes a dismissal that is on record
		return fmt.Errorf("breach: incident %s: %w: %w", id, ErrDismissalPending, err)
	}
	if o.leaser != nil {
		since, err := o.awaitLease(ctx, id)
		if err != nil {
			return pending(err)
		}
		// Fenced like a step: should the lease be lost (or its time run
		// out unrenewed), the releases and writes stop before another
		// replica may take the incident and release as well.
		l := o.adopt(id, since)
		fenced, fence := context.WithCancelCause(ctx)
		defer fence(nil)
		if !l.attachFence(fence) {
			return pending(errors.New("breach: the lease on incident " + id + " ran out before the dismissal could go on"))
		}
		defer l.detach()
		ctx = fenced
		// Another replica stepping the incident while this one waited for
		// the lease found the dismissal and may have finished it, its
		// releases included: go on from what is stored now.
		fresh, err := o.store.Head(ctx, id)
		if err != nil {
			o.giveUpLease(id, false)
			return pending(err)
		}
		if inc = fresh; !inc.State.Open() {
			o.giveUpLease(id, true)
			return nil // finished there
		}
	}
	failed, err := o.finishDismissal(ctx, nil, inc, o.cfg.playbooks[inc.Kind])
	if o.leaser != nil {
		// Kept while the incident is open and this replica drives it;
		// given up otherwise.
		o.giveUpLease(id, !inc.State.Open() || !o.running.Load())
	}
	if err != nil {
		return errors.Join(o.redactErr(id, failed), pending(err))
	}
	return o.redactErr(id, failed)
}

// awaitLease takes the lease on id for this replica, waiting while another
// replica holds it (it is stepping the incident), and returns when the
// Lease that took it was sent. It returns ctx's error when ctx ends first.
func (o *Orchestrator) awaitLease(ctx context.Context, id string) (since time.Time, err error) {
	wait := min(o.cfg.leaseTTL/3, 100*time.Millisecond)
	for {
		since = time.Now()
		ok, err := o.leaser.Lease(ctx, id, o.cfg.owner, o.cfg.leaseTTL)
		if err != nil || ok {
			return since, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

// giveUpLease gives up the lease on id that awaitLease took. When a worker
// of this replica holds it for its steps (awaitLease renewed it), it is
// the worker's: given up only when the incident ended, and otherwise left
// to the worker, whose step it still guards.
func (o *Orchestrator) giveUpLease(id string, ended bool) {
	o.leasesMu.Lock()
	_, held := o.leases[id]
	o.leasesMu.Unlock()
	if held {
		if ended {
			o.dropLease(id)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.leaseTTL)
	defer cancel()
	o.unlease(ctx, id)
}

// finishDismissal releases what was contained and then dismisses the
// incident. It returns the release failures, joined, and separately why the
// dismissal is not finished: a write failed, or ctx ended or stop closed
// before every release was tried (what was not tried is tried again by the
// next call).
func (o *Orchestrator) finishDismissal(ctx context.Context, stop <-chan struct{}, inc *incident.Incident, pb *Playbook) (failed, err error) {
	if !o.lc.Can(inc.State, incident.EventDismiss) {
		// A dismissal on record in a state that cannot be dismissed would
		// wedge the incident: drop it, on the record, rather than retry
		// for ever.
		return nil, o.mutate(ctx, inc, func(inc *incident.Incident) error {
			if inc.Dismissal == nil || !inc.State.Open() || o.lc.Can(inc.State, incident.EventDismiss) {
				return errStale
			}
			o.record(inc, incident.ActorSystem, incident.EntryNote, "dismissal by "+inc.Dismissal.By+
				" dropped: an incident cannot be dismissed while "+string(inc.State))
			inc.Dismissal = nil
			return nil
		})
	}
	var applied []containment.Action
	if pb != nil {
		for _, a := range pb.Containment {
			if r := inc.Action(a.Name); r != nil && (r.Status == incident.ActionApplied || r.Status == incident.ActionPending) {
				applied = append(applied, a)
			}
		}
	}
	var werr, unfinished error
	runner := containment.Runner{
		Concurrency: pb.containConcurrency(),
		Now:         o.cfg.now,
		Stop:        stop,
		OnResult: func(res containment.Result) {
			if errors.Is(res.Err, incident.ErrStopped) || ctx.Err() != nil {
				unfinished = errors.Join(unfinished, res.Err) // tried again next time
				o.observeAction(ctx, inc, "release", res, outcomeInterrupted)
				return
			}
			err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
				if r := inc.Action(res.Action); !inc.State.Open() || r != nil && r.Status == incident.ActionReleased {
					return errUnchanged // released and recorded by another writer meanwhile
				}
				o.recordAction(inc, res, incident.ActionReleased, incident.ActionReleaseFailed, "released", "release failed")
				return nil
			})
			if errors.Is(err, errUnchanged) {
				return
			}
			if err == nil {
				o.observeAction(ctx, inc, "release", res, outcomeOf(res.Err))
			}
			werr = errors.Join(werr, err)
		},
	}
	results := runner.Release(ctx, applied, o.baseRequest(inc), recordedKeys(inc))
	if werr != nil || unfinished != nil {
		return nil, errors.Join(werr, unfinished)
	}
	d := inc.Dismissal
	err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if !inc.State.Open() {
			return nil
		}
		if inc.Dismissal != nil {
			d = inc.Dismissal
		}
		if d == nil {
			return errStale
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
