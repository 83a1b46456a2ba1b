package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"golang.org/x/sync/semaphore"
)

// errStale is returned by a mutation whose precondition no longer holds in
// the freshly read incident (a person or another replica moved it on). The
// driver re-reads and decides again.
var errStale = errors.New("breach: incident changed under the step")

// maxConflicts bounds the retries of one write that keeps losing the
// compare-and-swap.
const maxConflicts = 16

// mutate applies fn to inc and writes it with a compare-and-swap. On a
// version conflict it re-reads the incident into inc and applies fn again.
// On success inc holds what was stored. On error inc is unspecified and
// must be re-read. fn returning errStale ends mutate with errStale.
func (o *Orchestrator) mutate(ctx context.Context, inc *incident.Incident, fn func(*incident.Incident) error) error {
	for range maxConflicts {
		before := len(inc.Timeline)
		if err := fn(inc); err != nil {
			return err
		}
		inc.UpdatedAt = o.cfg.now()
		err := o.store.Update(ctx, inc)
		if err == nil {
			o.changed()
			o.announce(inc, before)
			if !inc.State.Open() {
				o.hot.remove(inc.ID)
				o.creds.Delete(inc.ID)
			}
			return nil
		}
		if !errors.Is(err, incident.ErrConflict) {
			return err
		}
		fresh, err := o.store.Get(ctx, inc.ID)
		if err != nil {
			return err
		}
		*inc = *fresh
	}
	return fmt.Errorf("breach: incident %s: %w: gave up after %d conflicting writes", inc.ID, incident.ErrConflict, maxConflicts)
}

// record appends a timeline entry stamped with the orchestrator's clock.
func (o *Orchestrator) record(inc *incident.Incident, actor string, typ incident.EntryType, detail string) {
	inc.Timeline.Append(incident.Entry{At: o.cfg.now(), Actor: actor, Type: typ, Detail: o.redact(inc.ID, detail)})
}

// fire applies a lifecycle event to inc in memory: the state, the phase
// timestamp and the timeline entry. It returns the lifecycle's error when
// the event is not allowed.
func (o *Orchestrator) fire(inc *incident.Incident, ev incident.Event, actor, detail string) error {
	to, err := o.lc.Next(inc.State, ev)
	if err != nil {
		return err
	}
	now := o.cfg.now()
	from := inc.State
	inc.State = to
	inc.Timeline.Append(incident.Entry{At: now, Actor: actor, Type: incident.EntryTransition,
		Event: ev, From: from, To: to, Detail: o.redact(inc.ID, detail)})
	switch to {
	case incident.StateContained:
		inc.ContainedAt = now
		o.reach(inc, incident.MilestoneContained, now, actor, "")
	case incident.StateResolving:
		o.openTasks(inc)
	case incident.StateResolved:
		inc.ResolvedAt = now
		o.reach(inc, incident.MilestoneResolved, now, actor, "")
	case incident.StateClosed:
		inc.ClosedAt = now
		o.reach(inc, incident.MilestoneClosed, now, actor, "")
	case incident.StateDismissed:
		cancelClocks(inc)
	}
	if ev == incident.EventNotified {
		inc.NotifiedAt = now
		o.reach(inc, incident.MilestoneCustomersNotified, now, actor, "")
	}
	return nil
}

// announce logs and observes the transitions a successful write recorded,
// the entries of inc.Timeline from index from on: only what was stored is
// told.
func (o *Orchestrator) announce(inc *incident.Incident, from int) {
	for i := from; i < len(inc.Timeline); i++ {
		e := &inc.Timeline[i]
		if e.Type != incident.EntryTransition {
			continue
		}
		o.log.Info("breach: incident "+string(e.Event), "incident", inc.ID, "from", string(e.From), "to", string(e.To), "actor", e.Actor)
		if o.cfg.observer == nil {
			continue
		}
		since := inc.DetectedAt
		for j := i - 1; j >= 0; j-- {
			if inc.Timeline[j].Type == incident.EntryTransition {
				since = inc.Timeline[j].At
				break
			}
		}
		o.observe(Observation{Kind: ObserveTransition, At: e.At, IncidentID: inc.ID, IncidentKind: inc.Kind,
			Severity: inc.Severity, Event: e.Event, From: e.From, To: e.To, Duration: e.At.Sub(since), Outcome: string(e.To)})
	}
}

// advance fires ev if inc is still in state from, and persists it.
func (o *Orchestrator) advance(ctx context.Context, inc *incident.Incident, from incident.State, ev incident.Event, detail string) error {
	return o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.State != from || inc.Dismissal != nil {
			return errStale
		}
		return o.fire(inc, ev, incident.ActorSystem, detail)
	})
}

// redact removes the incident's credential from text bound for the record,
// the logs or a person, should a plugin have put it in an error message.
func (o *Orchestrator) redact(id, s string) string {
	if c := o.credential(id).Reveal(); c != "" && strings.Contains(s, c) {
		return strings.ReplaceAll(s, c, incident.Redacted)
	}
	return s
}

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

// lease takes the store's lease on the incident for this orchestrator and
// renews it every third of its TTL until unlease is called. The contexts it
// returns end when a renewal fails, so that a replica which lost its lease
// stops driving the incident (plugin calls in flight are cancelled).
func (o *Orchestrator) lease(ctx, grace context.Context, id string) (lctx, lgrace context.Context, unlease func(), ok bool, err error) {
	ttl := o.cfg.leaseTTL
	if ok, err = o.leaser.Lease(grace, id, o.cfg.owner, ttl); err != nil || !ok {
		return ctx, grace, nil, ok, err
	}
	lost := errors.New("breach: lease on incident " + id + " lost")
	lctx, cancel := context.WithCancelCause(ctx)
	lgrace, cancelGrace := context.WithCancelCause(grace)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if ok, err := o.leaser.Lease(lgrace, id, o.cfg.owner, ttl); err != nil || !ok {
					o.log.Warn("breach: lost the lease on an incident; stopping to drive it",
						"incident", id, "held by another", !ok && err == nil, "err", err)
					cancel(lost)
					cancelGrace(lost)
					return
				}
			}
		}
	}()
	return lctx, lgrace, func() {
		close(done)
		wg.Wait()
		cancel(nil)
		cancelGrace(nil)
		if err := o.leaser.Unlease(grace, id, o.cfg.owner); err != nil {
			o.log.Warn("breach: giving up the lease failed; it runs out by itself", "incident", id, "err", err)
		}
	}, true, nil
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

func stopOf(ctx context.Context) <-chan struct{} { return ctx.Done() }

func (o *Orchestrator) stepContext(grace context.Context, pb *Playbook) (context.Context, context.CancelFunc) {
	if pb != nil && pb.StepTimeout > 0 {
		return context.WithTimeout(grace, pb.StepTimeout)
	}
	return context.WithCancel(grace)
}

// escalate hands the incident to a person, recording why, and tells the
// on-call notifier.
func (o *Orchestrator) escalate(ctx context.Context, inc *incident.Incident, from incident.State, reason string) error {
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.State != from {
			return errStale
		}
		inc.Escalation = &incident.Escalation{From: from, Reason: o.redact(inc.ID, reason), At: o.cfg.now()}
		return o.fire(inc, incident.EventEscalate, incident.ActorSystem, reason)
	})
	if err != nil {
		return err
	}
	o.log.Warn("breach: incident escalated", "incident", inc.ID, "from", string(from), "reason", o.redact(inc.ID, reason))
	if o.cfg.oncall == nil {
		return nil
	}
	nerr := o.page(ctx, inc, alert{
		key:     incident.IdempotencyKey(inc.ID, "escalate", strconv.Itoa(len(inc.Timeline))),
		subject: "Incident " + inc.ID + " (" + inc.Kind + ", " + inc.Severity.String() + ") needs a person",
		text: "Incident " + inc.ID + " about " + inc.Subject + " was escalated from " + string(from) + ".\n\nReason: " +
			o.redact(inc.ID, reason) + "\n",
	})
	detail := "on-call notified of the escalation"
	if nerr != nil {
		detail = "telling on-call of the escalation failed: " + nerr.Error()
	}
	return o.mutate(ctx, inc, func(inc *incident.Incident) error {
		o.record(inc, incident.ActorSystem, incident.EntryNote, detail)
		return nil
	})
}

// maxStack bounds the panic stack kept on a timeline entry.
const maxStack = 4096

// panicStack returns "\nstack:\n" and the (bounded) stack of the last
// panic in err, or "" when err holds no *incident.PanicError.
func panicStack(err error) string {
	var pe *incident.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 {
		return ""
	}
	st := pe.Stack
	if len(st) > maxStack {
		st = st[:maxStack]
	}
	return "\nstack:\n" + string(st)
}

// interrupted reports whether err only says that the run is stopping: the
// work is unfinished, not failed, and a resumed run takes it up again.
func interrupted(ctx context.Context, err error) bool {
	return err != nil && (errors.Is(err, incident.ErrStopped) || ctx.Err() != nil)
}

// ---- investigation ----

func (o *Orchestrator) investigate(ctx, grace context.Context, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	if pb.Investigator == nil {
		return true, o.mutate(grace, inc, func(inc *incident.Incident) error {
			if inc.State != from {
				return errStale
			}
			o.recordFindings(inc, pb, incident.Findings{Summary: "no investigator configured"}, 0,
				&incident.Decision{Notify: false, Reason: "impact not assessed: the playbook has no investigator"})
			return nil
		})
	}
	sctx, cancel := o.stepContext(grace, pb)
	defer cancel()
	var findings incident.Findings
	snapshot := inc.Clone()
	snapshot.Timeline = nil // investigators need the facts, not the history
	out := retry.Do(sctx, pb.Investigation, stopOf(ctx), func(ctx context.Context, attempt int) error {
		f, err := pb.Investigator.Investigate(ctx, snapshot.Clone())
		if err != nil {
			return err
		}
		if err := checkFindings(f); err != nil {
			return incident.Permanent(err)
		}
		findings = f
		return nil
	})
	if out.Err != nil {
		if interrupted(ctx, out.Err) {
			return false, nil
		}
		if stack := panicStack(out.Err); stack != "" {
			if err := o.mutate(grace, inc, func(inc *incident.Incident) error {
				o.record(inc, incident.ActorSystem, incident.EntryInvestigation, "investigator panicked"+stack)
				return nil
			}); err != nil {
				return false, err
			}
		}
		return true, o.escalate(grace, inc, from, fmt.Sprintf("investigation failed after %d attempt(s): %v", out.Attempts, out.Err))
	}
	return true, o.mutate(grace, inc, func(inc *incident.Incident) error {
		if inc.State != from {
			return errStale
		}
		o.recordFindings(inc, pb, findings, out.Attempts, decide(findings.Impact))
		return nil
	})
}

// redactFindings removes the incident's credential from what an
// investigator wrote, before it is stored, reported or sent to customers.
func (o *Orchestrator) redactFindings(id string, f incident.Findings) incident.Findings {
	if o.credential(id).IsZero() {
		return f
	}
	r := func(s string) string { return o.redact(id, s) }
	f.RootCause, f.Summary, f.Impact.Summary = r(f.RootCause), r(f.Summary), r(f.Impact.Summary)
	f.Notes = append([]string(nil), f.Notes...)
	for i := range f.Notes {
		f.Notes[i] = r(f.Notes[i])
	}
	f.Impact.Customers = append([]incident.Customer(nil), f.Impact.Customers...)
	for i := range f.Impact.Customers {
		c := &f.Impact.Customers[i]
		c.ID, c.Name, c.Email = r(c.ID), r(c.Name), r(c.Email)
	}
	return f
}

func checkFindings(f incident.Findings) error {
	seen := map[string]bool{}
	for i, c := range f.Impact.Customers {
		id := recipientID(c)
		if id == "" {
			return fmt.Errorf("investigator returned customer %d with neither ID nor Email", i)
		}
		if seen[id] {
			return fmt.Errorf("investigator returned customer %q twice", id)
		}
		seen[id] = true
	}
	return nil
}

func recipientID(c incident.Customer) string {
	if c.ID != "" {
		return c.ID
	}
	return c.Email
}

func (o *Orchestrator) recordFindings(inc *incident.Incident, pb *Playbook, f incident.Findings, attempts int, d *incident.Decision) {
	now := o.cfg.now()
	f = o.redactFindings(inc.ID, f)
	inc.Investigation = &incident.Investigation{Findings: f, At: now, Attempts: attempts}
	detail := "investigation done"
	if f.RootCause != "" {
		detail += "; root cause: " + f.RootCause
	}
	if f.Summary != "" {
		detail += "; " + f.Summary
	}
	detail += "; impact: " + describeImpact(f.Impact)
	o.record(inc, incident.ActorSystem, incident.EntryInvestigation, detail)
	if inc.Decision != nil && inc.Decision.Override {
		o.record(inc, incident.ActorSystem, incident.EntryDecision, "automatic decision would be notify customers = "+
			strconv.FormatBool(d.Notify)+" ("+d.Reason+"); the override by "+inc.Decision.By+" stands")
		return
	}
	d.By, d.At = incident.ActorSystem, now
	inc.Decision = d
	if d.Notify {
		inc.Recommendations = append([]string(nil), pb.Recommendations...)
	}
	verdict := "do not notify customers: "
	if d.Notify {
		verdict = "notify customers: "
	}
	o.record(inc, incident.ActorSystem, incident.EntryDecision, verdict+d.Reason)
}

func describeImpact(im incident.Impact) string {
	if len(im.Customers) == 0 && len(im.Data) == 0 {
		return "no customer or customer data affected"
	}
	var data []string
	for _, d := range im.Data {
		data = append(data, d.Describe())
	}
	s := strconv.Itoa(len(im.Customers)) + " customer(s)"
	if len(data) > 0 {
		s += "; data: " + strings.Join(data, ", ")
	}
	return s
}

// decide turns an assessed impact into the notify decision and its reason.
// Customers are notified only when customer data was affected.
func decide(im incident.Impact) *incident.Decision {
	switch {
	case im.CustomerDataAffected():
		return &incident.Decision{Notify: true, Reason: "customer data affected (" + describeImpact(im) + ")"}
	case len(im.Customers) == 0 && len(im.Data) == 0:
		return &incident.Decision{Reason: "the investigation found no customer data affected"}
	case len(im.Customers) == 0:
		return &incident.Decision{Reason: "data categories affected but no customer identified; a person should review (" + describeImpact(im) + ")"}
	default:
		return &incident.Decision{Reason: "customers identified but no customer data affected"}
	}
}

// ---- containment ----

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
		Credential:            o.credential(inc.ID),
		CredentialFingerprint: inc.CredentialFingerprint,
	}
}

func (o *Orchestrator) contain(ctx, grace context.Context, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	todo := o.uncontained(inc, pb)
	if len(todo) > 0 {
		// Claim: every action is on the record, with its key, before it
		// runs; actions that need a person's approval ask for it.
		var asked []string
		err := o.mutate(grace, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			asked = asked[:0]
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
				case a.Approval.Required(inc.Severity) && !r.Approval.Decided():
					r.Status = incident.ActionAwaiting
					r.Approval = &incident.Approval{RequestedAt: now}
					if a.Approval.Timeout > 0 {
						r.Approval.Due = now.Add(a.Approval.Timeout)
					}
					o.record(inc, incident.ActorSystem, incident.EntryContainment, "containment action "+strconv.Quote(a.Name)+
						" needs approval at severity "+inc.Severity.String())
					asked = append(asked, a.Name)
				default:
					r.Status, r.StartedAt = incident.ActionPending, now
				}
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		for _, name := range asked {
			o.log.Warn("breach: containment action waits for approval", "incident", inc.ID, "action", name)
			_ = o.page(grace, inc, alert{ // at most once; a failure is logged
				subject: "Approval needed: " + name + " on incident " + inc.ID,
				text: "Containment action " + strconv.Quote(name) + " for incident " + inc.ID + " (" + inc.Kind + " about " +
					inc.Subject + ", " + inc.Severity.String() + ") waits for approval.\n",
				key: incident.IdempotencyKey(inc.ID, "approval", name),
			})
		}
		var run []containment.Action
		for _, a := range todo {
			if r := inc.Action(a.Name); r != nil && r.Status == incident.ActionPending {
				run = append(run, a)
			}
		}
		if len(run) > 0 {
			sctx, cancel := o.stepContext(grace, pb)
			defer cancel()
			var werr error
			runner := containment.Runner{
				Concurrency: pb.ContainConcurrency,
				Now:         o.cfg.now,
				Stop:        stopOf(ctx),
				OnResult: func(res containment.Result) {
					if interrupted(ctx, res.Err) {
						return // not failed, only unfinished: a resumed run retries it
					}
					err := o.mutate(grace, inc, func(inc *incident.Incident) error {
						o.recordAction(inc, res, incident.ActionApplied, incident.ActionFailed, "applied", "failed")
						return nil
					})
					werr = errors.Join(werr, err)
				},
			}
			results := runner.Apply(sctx, run, o.baseRequest(inc), recordedKeys(inc))
			if werr != nil {
				return false, werr
			}
			if ctx.Err() != nil {
				return false, nil
			}
			if err := results.Err(); err != nil {
				return true, o.escalate(grace, inc, from, "containment failed: "+err.Error())
			}
		}
	}
	for _, a := range pb.Containment {
		if r := inc.Action(a.Name); r != nil && r.Status == incident.ActionAwaiting {
			return false, nil // a person approves or denies; that schedules the incident again
		}
	}
	return true, o.advance(grace, inc, from, incident.EventContained, "every containment action applied or denied")
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
	step := "contain"
	if ok == incident.ActionReleased {
		step = "release"
	}
	o.observe(Observation{Kind: ObserveStep, IncidentID: inc.ID, IncidentKind: inc.Kind, Severity: inc.Severity,
		Step: step, Target: res.Action, Attempts: res.Attempts, Duration: res.Finished.Sub(res.Started),
		Outcome: outcome(res.Err, false), Err: o.redactErr(inc.ID, res.Err)})
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

// ---- notification ----

type plannedDelivery struct {
	customer incident.Customer
	route    notify.Route
	key      string
}

func (o *Orchestrator) plan(inc *incident.Incident, pb *Playbook) []plannedDelivery {
	if inc.Investigation == nil {
		return nil
	}
	var out []plannedDelivery
	for _, c := range inc.Investigation.Impact.Customers {
		for _, r := range pb.Notifiers {
			out = append(out, plannedDelivery{customer: c, route: r,
				key: incident.IdempotencyKey(inc.ID, "notify/"+r.Channel, recipientID(c))})
		}
	}
	return out
}

func (o *Orchestrator) allDelivered(inc *incident.Incident, pb *Playbook) bool {
	for _, p := range o.plan(inc, pb) {
		if d := inc.Delivery(p.key); d == nil || d.Status != incident.DeliverySent {
			return false
		}
	}
	return len(pb.Notifiers) > 0
}

// deliveryConcurrency bounds the notices of one incident in flight at once.
const deliveryConcurrency = 4

func (o *Orchestrator) notify(ctx, grace context.Context, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	if inc.Decision == nil || !inc.Decision.Notify {
		return true, o.escalate(grace, inc, from, "notification started but the decision is not to notify customers")
	}
	if len(pb.Notifiers) == 0 {
		return true, o.escalate(grace, inc, from, "customers must be notified but the playbook has no notifier")
	}
	plan := o.plan(inc, pb)
	if len(plan) == 0 {
		return true, o.escalate(grace, inc, from, "customers must be notified but no affected customer is known: the investigation named none")
	}
	var todo []plannedDelivery
	for _, p := range plan {
		if d := inc.Delivery(p.key); d == nil || d.Status != incident.DeliverySent {
			todo = append(todo, p)
		}
	}
	if len(todo) > 0 {
		// Claim before sending: a crash after this point re-sends only what
		// is not marked sent, with the same key.
		err := o.mutate(grace, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			now := o.cfg.now()
			for _, p := range todo {
				if d := inc.Delivery(p.key); d != nil {
					d.Status, d.ClaimedAt = incident.DeliveryClaimed, now
					continue
				}
				inc.Deliveries = append(inc.Deliveries, incident.Delivery{Recipient: recipientID(p.customer),
					Channel: p.route.Channel, IdempotencyKey: p.key, Status: incident.DeliveryClaimed, ClaimedAt: now})
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		failed, err := o.send(ctx, grace, inc, pb, todo)
		if err != nil {
			return false, err
		}
		if ctx.Err() != nil {
			return false, nil
		}
		if failed != nil {
			return true, o.escalate(grace, inc, from, "customer notification failed: "+failed.Error())
		}
		if !o.allDelivered(inc, pb) {
			return true, o.escalate(grace, inc, from, "customer notification incomplete: the step ran out of time before every notice was sent")
		}
	}
	return true, o.advance(grace, inc, from, incident.EventNotified, "every affected customer notified")
}

// send delivers the planned notices, at most deliveryConcurrency at once,
// and records each result as it comes. It returns the joined delivery
// failures, and separately an error writing the store.
func (o *Orchestrator) send(ctx, grace context.Context, inc *incident.Incident, pb *Playbook, todo []plannedDelivery) (failed, werr error) {
	sctx, cancel := o.stepContext(grace, pb)
	defer cancel()
	notices := map[string]notify.Rendered{}
	// The deliveries' goroutines record results into inc under mu, and a
	// conflicting write may replace *inc; messages are built from a copy.
	snap := inc.Clone()
	actions := o.actionDescriptions(snap, pb)
	sem := semaphore.NewWeighted(int64(o.cfg.deliveryConcurrency))
	var mu sync.Mutex // guards inc, failed, werr
	var wg sync.WaitGroup
	for _, p := range todo {
		rid := recipientID(p.customer)
		r, ok := notices[rid]
		var rerr error
		if !ok {
			r, rerr = pb.template().Render(o.notice(snap, pb, p.customer, actions))
			if rerr == nil {
				notices[rid] = r
			}
		}
		if err := sem.Acquire(sctx, 1); err != nil {
			break
		}
		if ctx.Err() != nil {
			sem.Release(1)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sem.Release(1)
			msg := notify.Message{
				IdempotencyKey: p.key, Channel: p.route.Channel, Recipient: p.customer,
				Subject: r.Subject, Text: r.Text, HTML: r.HTML,
				IncidentID: snap.ID, Kind: snap.Kind, Severity: snap.Severity,
				Impact:          recipientImpact(snap.Investigation.Impact, p.customer),
				Recommendations: append([]string(nil), snap.Recommendations...),
			}
			out := retry.Outcome{Attempts: 0, Err: incident.Permanent(rerr)}
			if rerr == nil {
				out = retry.Do(sctx, pb.Delivery, stopOf(ctx), func(ctx context.Context, attempt int) error {
					m := msg
					m.Attempt = attempt
					return p.route.Notifier.Notify(ctx, m)
				})
			}
			if interrupted(ctx, out.Err) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			err := o.mutate(grace, inc, func(inc *incident.Incident) error {
				d := inc.Delivery(p.key)
				if d == nil {
					return fmt.Errorf("breach: delivery %s vanished from incident %s", p.key, inc.ID)
				}
				d.Attempts += out.Attempts
				to := "notice to customer " + strconv.Quote(rid) + " via " + p.route.Channel
				if out.Err == nil {
					d.Status, d.SentAt, d.LastError = incident.DeliverySent, o.cfg.now(), ""
					o.record(inc, incident.ActorSystem, incident.EntryDelivery, to+" sent (key "+p.key+")")
				} else {
					d.Status, d.LastError = incident.DeliveryFailed, o.redact(inc.ID, out.Err.Error())
					o.record(inc, incident.ActorSystem, incident.EntryDelivery,
						to+" failed after "+strconv.Itoa(out.Attempts)+" attempt(s): "+d.LastError+panicStack(out.Err))
				}
				return nil
			})
			werr = errors.Join(werr, err)
			if out.Err != nil {
				failed = errors.Join(failed, fmt.Errorf("%s via %s: %w", rid, p.route.Channel, out.Err))
			}
		}()
	}
	wg.Wait()
	return failed, werr
}

// recipientImpact is the impact as one recipient may see it: the data
// involved, and only themselves among the affected customers.
func recipientImpact(im incident.Impact, c incident.Customer) incident.Impact {
	im.Customers = []incident.Customer{c}
	im.Data = append([]incident.DataCategory(nil), im.Data...)
	return im
}

func (o *Orchestrator) actionDescriptions(inc *incident.Incident, pb *Playbook) []string {
	var out []string
	for _, a := range pb.Containment {
		if r := inc.Action(a.Name); r != nil && r.Status == incident.ActionApplied && a.Description != "" {
			out = append(out, a.Description)
		}
	}
	return out
}

func (o *Orchestrator) notice(inc *incident.Incident, pb *Playbook, c incident.Customer, actions []string) notify.Notice {
	summary := inc.Investigation.Summary
	if summary == "" {
		summary = inc.Summary
	}
	return notify.Notice{
		IncidentID:      inc.ID,
		Kind:            inc.Kind,
		Severity:        inc.Severity,
		Customer:        c,
		Summary:         summary,
		DetectedAt:      inc.DetectedAt,
		ContainedAt:     inc.ContainedAt,
		Impact:          inc.Investigation.Impact,
		Actions:         actions,
		Recommendations: inc.Recommendations,
		Sender:          pb.Sender,
		Contact:         pb.Contact,
	}
}

// ---- resolution ----

func (o *Orchestrator) openTasks(inc *incident.Incident) {
	pb := o.cfg.playbooks[inc.Kind]
	if pb == nil {
		return
	}
	for _, t := range pb.Tasks {
		exists := false
		for _, have := range inc.Tasks {
			exists = exists || have.ID == t.ID
		}
		if !exists {
			inc.Tasks = append(inc.Tasks, incident.Task{ID: t.ID, Title: t.Title, Mandatory: t.Mandatory})
			kind := "optional"
			if t.Mandatory {
				kind = "mandatory"
			}
			o.record(inc, incident.ActorSystem, incident.EntryTask, "opened "+kind+" task "+strconv.Quote(t.ID)+": "+t.Title)
		}
	}
}

// ---- dismissal ----

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
