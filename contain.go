package breach

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/relay"
)

// uncontained returns the playbook's actions that are neither applied nor
// denied on inc.
func (o *Orchestrator) uncontained(inc *incident.Incident, pb *Playbook) []containment.Action {
	var out []containment.Action
	for _, a := range pb.Containment {
		if r := inc.Action(a.Name); r == nil || (r.Status != incident.ActionApplied && r.Status != incident.ActionDenied) {
			out = append(out, a)
		}
	}
	return out
}

func (o *Orchestrator) baseRequest(inc *incident.Incident) containment.Request {
	return containment.Request{
		IncidentID:            inc.ID,
		Kind:                  inc.Kind,
		Subject:               inc.Subject,
		Account:               inc.Account,
		Severity:              inc.Severity,
		Attributes:            inc.Attributes,
		Credential:            o.credentialFor(inc),
		CredentialFingerprint: inc.CredentialFingerprint,
	}
}

func (o *Orchestrator) contain(st *stepRun, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	todo := o.uncontained(inc, pb)
	if len(todo) > 0 {
		// Claim: every action is on the record, with its key, before it
		// runs; actions that need a person's approval ask for it. A claim
		// folded into the write that entered containment stands.
		var asked []string
		var pages []pageOut
		if unclaimed(inc, todo) {
			err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
				if inc.State != from || inc.Dismissal != nil {
					return errStale
				}
				asked = o.claimActions(inc, o.uncontained(inc, pb))
				pages = nil
				if len(asked) > 0 {
					pages = o.openAlert(inc, "approval/"+strings.Join(asked, ","),
						"containment waits for approval: "+strings.Join(asked, ", "),
						"approve or deny containment action(s) "+strings.Join(asked, ", ")+" of incident "+inc.ID, o.cfg.now())
				}
				return nil
			})
			if err != nil {
				return false, err
			}
		}
		for _, name := range asked {
			o.log.Warn("breach: containment action waits for approval", "incident", inc.ID, "action", name)
		}
		var run []containment.Action
		for _, a := range todo {
			if r := inc.Action(a.Name); r != nil && r.Status == incident.ActionPending {
				run = append(run, a)
			}
		}
		// The pages asking for approvals go out beside the actions that
		// need none, not before them: a pager that is slow, or down for
		// its whole retry policy, never delays disabling the key. They
		// record their outcome on a copy of their own, through their own
		// compare-and-swap.
		var paging sync.WaitGroup
		var pagingPanics relay.Panics
		defer paging.Wait()
		if len(run) > 0 && len(pages) > 0 {
			own := inc.Clone()
			pagingPanics.Go(&paging, func() { o.sendPages(st.write, own, pages) })
		} else {
			o.sendPages(st.write, inc, pages)
		}
		if len(run) > 0 {
			sctx, cancel := st.callContext(pb)
			defer cancel()
			var werr error
			runner := containment.Runner{
				Concurrency: pb.ContainConcurrency,
				Now:         o.cfg.now,
				Stop:        st.stop.Done(),
				// The first call opens the containment gate, once it runs.
				OnCall: func(r containment.Request) { o.gate.releaseFor(r.IncidentID) },
				OnResult: func(res containment.Result) {
					if st.cut(res.Err) {
						// Not failed, only unfinished: a resumed run retries
						// it, a dismissal releases it.
						o.observeAction(st.calls, inc, "contain", res, outcomeInterrupted)
						return
					}
					err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
						if r := inc.Action(res.Action); r != nil && recordedElsewhere(r, res) {
							// Recorded since by someone else (a write that
							// conflicted reads this): decide again.
							return errStale
						}
						o.recordAction(inc, res, incident.ActionApplied, incident.ActionFailed, "applied", "failed")
						st.chain(inc) // the last result moves the incident on in the same write
						return nil
					})
					if err == nil {
						o.observeAction(st.calls, inc, "contain", res, outcomeOf(res.Err))
					}
					werr = errors.Join(werr, err)
				},
			}
			results := runner.Apply(sctx, run, o.baseRequest(inc), recordedKeys(inc))
			paging.Wait()
			pagingPanics.Repanic()
			if werr != nil {
				return false, werr
			}
			if st.stop.Err() != nil {
				return false, nil
			}
			if err := results.Err(); err != nil {
				return true, o.escalate(st.write, inc, from, "containment failed: "+err.Error())
			}
			if inc.State != from {
				return true, nil // the last result's write moved it on
			}
		}
	}
	for _, a := range pb.Containment {
		if r := inc.Action(a.Name); r != nil && r.Status == incident.ActionAwaiting {
			return false, nil // a person approves or denies; that schedules the incident again
		}
	}
	// Contained only if nothing is left to run: an action a person (or a
	// severity change) let run while this step ran is run by the next.
	return true, o.mutate(st.write, inc, func(inc *incident.Incident) error {
		if inc.State != from || inc.Dismissal != nil || len(o.uncontained(inc, pb)) > 0 {
			return errStale
		}
		return o.fire(inc, incident.EventContained, incident.ActorSystem, "every containment action applied or denied")
	})
}

// recordedElsewhere reports whether r, the record of res's action as a
// write that conflicted read it again, already holds what res would
// record, or more: the action was re-claimed under another key, it is
// settled (applied, denied, released), or it failed and so did res. A
// success overrides a failure another writer recorded: the action did
// take effect, and a dismissal must release it.
func recordedElsewhere(r *incident.ActionRecord, res containment.Result) bool {
	if r.IdempotencyKey != "" && res.IdempotencyKey != "" && r.IdempotencyKey != res.IdempotencyKey {
		return true
	}
	switch r.Status {
	case incident.ActionPending:
		return false
	case incident.ActionFailed:
		return res.Err != nil
	default:
		return true
	}
}

// recordedKeys returns the idempotency keys on inc's action records, read
// now: the runner calls it from its goroutines while results change inc.
func recordedKeys(inc *incident.Incident) func(containment.Action) string {
	keys := make(map[string]string, len(inc.Actions))
	for _, r := range inc.Actions {
		keys[r.Name] = r.IdempotencyKey
	}
	id := inc.ID
	return func(a containment.Action) string {
		if k := keys[a.Name]; k != "" {
			return k
		}
		return containment.Key(id, a)
	}
}

func (o *Orchestrator) recordAction(inc *incident.Incident, res containment.Result, ok, failed incident.ActionStatus, okWord, failWord string) {
	r := inc.Action(res.Action)
	if r == nil {
		inc.Actions = append(inc.Actions, incident.ActionRecord{Name: res.Action, IdempotencyKey: res.IdempotencyKey})
		r = &inc.Actions[len(inc.Actions)-1]
	}
	r.Attempts += res.Attempts
	r.FinishedAt = res.Finished
	detail := "containment action " + strconv.Quote(res.Action) + " "
	typ := incident.EntryContainment
	if ok == incident.ActionReleased {
		typ = incident.EntryRelease
	}
	if res.Err == nil {
		r.Status, r.LastError = ok, ""
		detail += okWord + " (attempt " + strconv.Itoa(r.Attempts) + ", key " + res.IdempotencyKey + ")"
	} else {
		r.Status, r.LastError = failed, o.redact(inc.ID, res.Err.Error())
		detail += failWord + " after " + strconv.Itoa(res.Attempts) + " attempt(s): " + r.LastError + panicStack(res.Err)
	}
	o.record(inc, incident.ActorSystem, typ, detail)
}

// observeAction tells the observer of a containment or release result, once
// it is recorded (or known to be cut).
func (o *Orchestrator) observeAction(ctx context.Context, inc *incident.Incident, step string, res containment.Result, outcome string) {
	o.observe(ctx, Observation{Kind: ObserveStep, IncidentID: inc.ID, IncidentKind: inc.Kind, Severity: inc.Severity,
		Step: step, Target: res.Action, Attempts: res.Attempts, Duration: res.Finished.Sub(res.Started),
		Outcome: outcome, Err: o.redactErr(inc.ID, res.Err), Started: res.Started, DetectedAt: inc.DetectedAt,
		Key: res.IdempotencyKey})
}

// unclaimed reports whether an action of todo is not yet on the record as
// pending or awaiting approval.
func unclaimed(inc *incident.Incident, todo []containment.Action) bool {
	for _, a := range todo {
		if r := inc.Action(a.Name); r == nil || (r.Status != incident.ActionPending && r.Status != incident.ActionAwaiting) {
			return true
		}
	}
	return false
}

// needsApproval reports whether an action of todo waits for a person's
// approval at inc's severity.
func needsApproval(inc *incident.Incident, todo []containment.Action) bool {
	for _, a := range todo {
		if r := inc.Action(a.Name); a.Approval.Required(inc.Severity) && (r == nil || r.Approval == nil || r.Approval.DecidedAt.IsZero()) {
			return true
		}
	}
	return false
}

// claimActions puts the actions of todo on inc's record, each with its
// idempotency key: pending, or awaiting approval where the action's rule
// asks for one. It returns the actions that now wait for approval.
func (o *Orchestrator) claimActions(inc *incident.Incident, todo []containment.Action) (asked []string) {
	now := o.cfg.now()
	for _, a := range todo {
		r := inc.Action(a.Name)
		if r == nil {
			inc.Actions = append(inc.Actions, incident.ActionRecord{Name: a.Name, IdempotencyKey: containment.Key(inc.ID, a)})
			r = &inc.Actions[len(inc.Actions)-1]
		}
		switch {
		case r.Status == incident.ActionAwaiting, r.Status == incident.ActionApplied, r.Status == incident.ActionDenied:
			// decided since the list was made (another replica, a person)
		case a.Approval.Required(inc.Severity) && (r.Approval == nil || r.Approval.DecidedAt.IsZero()):
			r.Status = incident.ActionAwaiting
			r.Approval = &incident.Approval{RequestedAt: now}
			if a.Approval.Timeout > 0 {
				r.Approval.Due = now.Add(a.Approval.Timeout)
			}
			o.record(inc, incident.ActorSystem, incident.EntryContainment, "containment action "+strconv.Quote(a.Name)+
				" needs approval at severity "+inc.Severity.String())
			asked = append(asked, a.Name)
		case r.Status != incident.ActionPending:
			r.Status, r.StartedAt = incident.ActionPending, now
		}
	}
	return asked
}
