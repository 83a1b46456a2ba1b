package breach

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/ratelimit"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"golang.org/x/sync/semaphore"
)

// Customers are notified a batch at a time: one step reads a page of the
// affected customers after Outreach.Cursor, claims their notices in one
// write, sends them (at most deliveryConcurrency at once, within each
// route's rate), and records every result in one more write that moves the
// cursor on. 100,000 customers cost 100,000 sends and a few hundred writes,
// and people act between batches.

type plannedDelivery struct {
	customer incident.Customer
	route    notify.Route
	key      string
}

// Defaults of WithDelivery.
const (
	// deliveryConcurrency bounds the notices of one incident in flight.
	deliveryConcurrency = 16
	// notifyBatch is how many customers one notify step takes.
	notifyBatch = 500
)

// plan returns the notices owed to customers: one per customer and route.
func (o *Orchestrator) plan(inc *incident.Incident, pb *Playbook, customers []incident.Customer) []plannedDelivery {
	out := make([]plannedDelivery, 0, len(customers)*len(pb.Notifiers))
	for _, c := range customers {
		for _, r := range pb.Notifiers {
			out = append(out, plannedDelivery{customer: c, route: r,
				key: incident.IdempotencyKey(inc.ID, "notify/"+r.Channel, incident.RecipientID(c))})
		}
	}
	return out
}

// allDelivered reports whether every notice owed is sent, from the head's
// counts.
func (o *Orchestrator) allDelivered(inc *incident.Incident, pb *Playbook) bool {
	if len(pb.Notifiers) == 0 || inc.Investigation == nil {
		return false
	}
	owed := affected(inc) * len(pb.Notifiers)
	return owed > 0 && inc.Outreach.Sent >= owed
}

// affected is how many customers inc's investigation found affected.
func affected(inc *incident.Incident) int {
	if inc.Investigation == nil {
		return 0
	}
	return max(inc.Investigation.Impact.Affected, len(inc.Investigation.Impact.Customers))
}

// claimFirstBatch claims the first batch of notices in the write that
// records the findings, whose customers inc holds (they are written with
// it): the notify step that follows sends at once.
func (o *Orchestrator) claimFirstBatch(inc *incident.Incident, pb *Playbook) {
	cs := inc.Investigation.Impact.Customers
	if inc.Outreach.Cursor != "" || len(cs) == 0 {
		return
	}
	_ = o.claim(inc, o.plan(inc, pb, cs[:min(len(cs), o.cfg.notifyBatch)]), nil)
}

// claim puts the notices of todo on inc's next change as claimed, and
// returns them; had holds the records they had (it is not changed: a write
// that conflicts claims again from the same records).
func (o *Orchestrator) claim(inc *incident.Incident, todo []plannedDelivery, had map[string]incident.Delivery) []incident.Delivery {
	now := o.cfg.now()
	for _, p := range todo {
		d, ok := had[p.key]
		if ok && d.Status == incident.DeliveryClaimed {
			continue
		}
		if ok {
			inc.Outreach.Count(d.Status, -1)
		} else {
			d = incident.Delivery{Recipient: incident.RecipientID(p.customer), Channel: p.route.Channel, IdempotencyKey: p.key}
		}
		d.Status, d.ClaimedAt = incident.DeliveryClaimed, now
		inc.Outreach.Count(incident.DeliveryClaimed, 1)
		inc.Outreach.ClaimedAt = now
		inc.Deliveries = append(inc.Deliveries, d)
	}
	return inc.Deliveries
}

func (o *Orchestrator) notify(st *stepRun, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	if inc.Decision == nil || !inc.Decision.Notify {
		return true, o.escalate(st.write, inc, from, "notification started but the decision is not to notify customers")
	}
	if len(pb.Notifiers) == 0 {
		return true, o.escalate(st.write, inc, from, "customers must be notified but the playbook has no notifier")
	}
	if affected(inc) == 0 {
		return true, o.escalate(st.write, inc, from, "customers must be notified but no affected customer is known: the investigation named none")
	}
	customers, err := o.store.Customers(st.write, inc.ID, inc.Outreach.Cursor, o.cfg.notifyBatch)
	if err != nil {
		return false, err
	}
	if len(customers) == 0 {
		if !o.allDelivered(inc, pb) {
			return true, o.escalate(st.write, inc, from, fmt.Sprintf(
				"customer notification incomplete: %d of %d notice(s) sent", inc.Outreach.Sent, affected(inc)*len(pb.Notifiers)))
		}
		return true, o.advance(st.write, inc, from, incident.EventNotified, "every affected customer notified")
	}
	last := len(customers) < o.cfg.notifyBatch
	plan := o.plan(inc, pb, customers)
	had, ok := knownClaims(inc, plan)
	if !ok {
		if had, err = o.deliveries(st.write, inc.ID, plan); err != nil {
			return false, err
		}
	}
	var todo []plannedDelivery
	claimed := true
	for _, p := range plan {
		d, ok := had[p.key]
		if !ok || d.Status != incident.DeliverySent {
			todo = append(todo, p)
			claimed = claimed && ok && d.Status == incident.DeliveryClaimed
		}
	}
	if len(todo) > 0 && !claimed {
		// Claim before sending: a crash after this point re-sends only
		// what is not marked sent, with the same key.
		var claims []incident.Delivery
		err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			claims = o.claim(inc, todo, had)
			return nil
		})
		if err != nil {
			return false, err
		}
		for _, d := range claims {
			had[d.IdempotencyKey] = d
		}
	}
	results := o.send(st, inc, pb, todo)
	if st.stop.Err() != nil && !st.interrupted() {
		return false, nil // stopping: the claims stand, and a resumed run sends them with the same keys
	}
	var failed []error
	err = o.mutate(st.write, inc, func(inc *incident.Incident) error {
		failed = o.recordBatch(st, inc, results, had)
		if len(failed) > 0 || st.stop.Err() != nil || inc.State != from || inc.Dismissal != nil {
			return nil
		}
		inc.Outreach.Cursor = incident.RecipientID(customers[len(customers)-1])
		if last && o.allDelivered(inc, pb) {
			if err := o.fire(inc, incident.EventNotified, incident.ActorSystem, "every affected customer notified"); err != nil {
				return err
			}
			st.chain(inc)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, r := range results {
		if !r.cut {
			o.observe(st.calls, r.ob)
		}
	}
	if st.stop.Err() != nil {
		return false, nil
	}
	if len(failed) > 0 {
		return true, o.escalate(st.write, inc, from, "customer notification failed: "+joinErrs(failed))
	}
	return true, nil
}

// joinErrs joins at most a few failures' messages, with the count of the
// rest.
func joinErrs(errs []error) string {
	const most = 5
	var b strings.Builder
	for i, err := range errs[:min(len(errs), most)] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	if len(errs) > most {
		fmt.Fprintf(&b, "; and %d more", len(errs)-most)
	}
	return b.String()
}

// knownClaims returns the records of plan's notices when the head alone
// tells them: every delivery the incident has is claimed and there are as
// many as plan holds (the first batch, claimed in the findings' write and
// not yet sent; attempts are recorded only with results, so a claim holds
// none). A read is saved.
func knownClaims(inc *incident.Incident, plan []plannedDelivery) (map[string]incident.Delivery, bool) {
	o := inc.Outreach
	if o.Claimed != len(plan) || o.Total() != o.Claimed || o.Cursor != "" || o.ClaimedAt.IsZero() {
		return nil, false
	}
	had := make(map[string]incident.Delivery, len(plan))
	for _, p := range plan {
		had[p.key] = incident.Delivery{Recipient: incident.RecipientID(p.customer), Channel: p.route.Channel,
			IdempotencyKey: p.key, Status: incident.DeliveryClaimed, ClaimedAt: o.ClaimedAt}
	}
	return had, true
}

// deliveries reads the records of plan's notices, by key.
func (o *Orchestrator) deliveries(ctx context.Context, id string, plan []plannedDelivery) (map[string]incident.Delivery, error) {
	had := make(map[string]incident.Delivery, len(plan))
	for len(plan) > 0 {
		n := min(len(plan), incident.MaxPageSize)
		keys := make([]string, n)
		for i, p := range plan[:n] {
			keys[i] = p.key
		}
		ds, err := o.store.Deliveries(ctx, id, incident.DeliveryQuery{Keys: keys})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			had[d.IdempotencyKey] = d
		}
		plan = plan[n:]
	}
	return had, nil
}

// sendResult is what became of one notice of a batch.
type sendResult struct {
	p   plannedDelivery
	out retry.Outcome
	// cut: a person's action or Run stopping cut it off; tried says
	// whether an attempt had started.
	cut, tried bool
	ob         Observation
}

// send delivers the planned notices, at most deliveryConcurrency at once
// and within each route's rate, and returns what became of each; it
// writes nothing. When a person's action interrupts it (a dismissal) or
// Run stops, no further notice starts: the rest come back cut.
func (o *Orchestrator) send(st *stepRun, inc *incident.Incident, pb *Playbook, todo []plannedDelivery) []sendResult {
	sctx, cancel := st.callContext(pb)
	defer cancel()
	results := make([]sendResult, len(todo))
	notices := map[string]notify.Rendered{}
	// Nothing writes inc while the notices are out: the results are
	// recorded after the last of them.
	snap := inc
	actions := o.actionDescriptions(snap, pb)
	sem := semaphore.NewWeighted(int64(o.cfg.deliveryConcurrency))
	var wg sync.WaitGroup
	for n, p := range todo {
		results[n].p = p
		rid := incident.RecipientID(p.customer)
		r, ok := notices[rid]
		var rerr error
		if !ok {
			r, rerr = pb.template().Render(o.notice(snap, pb, p.customer, actions))
			if rerr == nil {
				notices[rid] = r
			}
		}
		if err := sem.Acquire(sctx, 1); err != nil || st.stop.Err() != nil {
			if err == nil {
				sem.Release(1)
			}
			for i := n; i < len(todo); i++ {
				results[i].p, results[i].cut = todo[i], true
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sem.Release(1)
			res := &results[n]
			msg := notify.Message{
				IdempotencyKey: p.key, Channel: p.route.Channel, Recipient: p.customer,
				Subject: r.Subject, Text: r.Text, HTML: r.HTML,
				IncidentID: snap.ID, Kind: snap.Kind, Severity: snap.Severity,
				Impact:          recipientImpact(snap.Investigation.Impact, p.customer),
				Recommendations: append([]string(nil), snap.Recommendations...),
			}
			started := o.cfg.now()
			res.out = retry.Outcome{Attempts: 0, Err: incident.Permanent(rerr)}
			if rerr == nil {
				lim := o.limiter(p.route)
				res.out = retry.Do(sctx, pb.Delivery, st.stop.Done(), func(ctx context.Context, attempt int) error {
					if err := lim.Wait(ctx); err != nil {
						return err
					}
					m := msg
					m.Attempt = attempt
					return p.route.Notifier.Notify(ctx, m)
				})
			}
			res.ob = Observation{Kind: ObserveStep, IncidentID: snap.ID, IncidentKind: snap.Kind, Severity: snap.Severity,
				Step: "notify", Target: p.route.Channel, Attempts: res.out.Attempts, Duration: o.cfg.now().Sub(started),
				Outcome: outcomeOf(res.out.Err), Err: o.redactErr(snap.ID, res.out.Err),
				Started: started, DetectedAt: snap.DetectedAt, Key: p.key}
			if st.cut(res.out.Err) {
				res.cut, res.tried = true, res.out.Attempts > 0
				res.ob.Outcome = outcomeInterrupted
				o.observe(st.calls, res.ob)
			}
		}()
	}
	wg.Wait()
	return results
}

// limiter returns the rate limit of route's channel, shared by every
// route of that channel name (nil, no limit, when the route sets none).
func (o *Orchestrator) limiter(r notify.Route) *ratelimit.Limiter {
	if r.PerSecond <= 0 {
		return nil
	}
	if l, ok := o.limiters.Load(r.Channel); ok {
		return l.(*ratelimit.Limiter)
	}
	l, _ := o.limiters.LoadOrStore(r.Channel, ratelimit.New(r.PerSecond))
	return l.(*ratelimit.Limiter)
}

// recordBatch puts the results of a batch on inc's next change: each
// delivery's status, and one timeline entry per channel summing it up.
// Notices a person's action cut off are recorded as cancelled (never tried)
// or unknown (cut mid-call: the recipient may have them); those Run's stop
// cut stay claimed. It returns the failures.
func (o *Orchestrator) recordBatch(st *stepRun, inc *incident.Incident, results []sendResult, had map[string]incident.Delivery) []error {
	type tally struct{ sent, failed, cancelled, unknown int }
	byChannel := map[string]*tally{}
	var channels []string
	var failed []error
	var firstErr = map[string]string{}
	now := o.cfg.now()
	interrupted := st.interrupted()
	why := context.Cause(st.stop)
	for _, r := range results {
		d, ok := had[r.p.key]
		if !ok || d.Status != incident.DeliveryClaimed {
			continue // not claimed: never on the record
		}
		t := byChannel[r.p.route.Channel]
		if t == nil {
			t = &tally{}
			byChannel[r.p.route.Channel] = t
			channels = append(channels, r.p.route.Channel)
		}
		d.Attempts += r.out.Attempts
		switch {
		case r.cut && !interrupted:
			continue
		case r.cut && r.tried:
			d.Status, d.LastError = incident.DeliveryUnknown, o.redact(inc.ID, why.Error())
			t.unknown++
		case r.cut:
			d.Status, d.LastError = incident.DeliveryCancelled, o.redact(inc.ID, why.Error())
			t.cancelled++
		case r.out.Err == nil:
			d.Status, d.SentAt, d.LastError = incident.DeliverySent, now, ""
			t.sent++
		default:
			d.Status, d.LastError = incident.DeliveryFailed, o.redact(inc.ID, r.out.Err.Error())
			t.failed++
			rid := incident.RecipientID(r.p.customer)
			failed = append(failed, fmt.Errorf("%s via %s: %w", rid, r.p.route.Channel, r.out.Err))
			if _, ok := firstErr[r.p.route.Channel]; !ok {
				firstErr[r.p.route.Channel] = "first failure: customer " + strconv.Quote(rid) + " after " +
					strconv.Itoa(r.out.Attempts) + " attempt(s): " + d.LastError + panicStack(r.out.Err)
			}
		}
		inc.Outreach.Count(incident.DeliveryClaimed, -1)
		inc.Outreach.Count(d.Status, 1)
		inc.Deliveries = append(inc.Deliveries, d)
	}
	for _, ch := range channels {
		t := byChannel[ch]
		if t.sent+t.failed+t.cancelled+t.unknown == 0 {
			continue
		}
		detail := fmt.Sprintf("notices via %s: %d sent", ch, t.sent)
		if t.failed > 0 {
			detail += fmt.Sprintf(", %d failed (%s)", t.failed, firstErr[ch])
		}
		if t.cancelled+t.unknown > 0 {
			detail += fmt.Sprintf("; notification cut off (%v): %d notice(s) not sent, %d cut mid-call (the recipient may have them)",
				why, t.cancelled, t.unknown)
		}
		o.record(inc, incident.ActorSystem, incident.EntryDelivery, detail)
	}
	return failed
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
