package breach

// Delivering a batch of customer notices: each rendered and sent (at most
// deliveryConcurrency at once, within its route's rate), and what became of
// each recorded in one write (see notify.go for the step around it).

import (
	"context"
	"fmt"
	"strconv"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/ratelimit"
	"github.com/breachkit/breach/internal/relay"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"golang.org/x/sync/semaphore"
)

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
	// Every notice's goroutine is waited for, also when the last notice,
	// sent from here, panics; a panic in the library's or the host's code
	// (the clock) on another's is raised again here, where the step's
	// driver recovers it.
	var g relay.Group
	returned := false
	defer g.End(&returned)
	for n, p := range todo {
		results[n].p = p
		rid := incident.RecipientID(p.customer)
		r, ok := notices[rid]
		var rerr error
		if !ok {
			r, rerr = o.render(sctx, pb, o.notice(snap, pb, p.customer, actions))
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
		deliver := func() {
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
		}
		if n == len(todo)-1 {
			// The last notice is sent from this goroutine, which would
			// only wait for it otherwise (each attempt is still a call of
			// its own: see retry.Call).
			deliver()
		} else {
			g.Go(deliver)
		}
	}
	returned = true
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
		sent := !r.cut && r.out.Err == nil
		switch {
		case !ok, d.Status == incident.DeliverySent:
			continue // not claimed (never on the record), or recorded sent already
		case d.Status != incident.DeliveryClaimed && !sent:
			continue // another writer recorded its outcome; this one adds nothing
		}
		prev := d.Status // claimed, or failed, cancelled or unknown by another writer: a send overrides it
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
		inc.Outreach.Count(prev, -1)
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

// render renders a customer's notice. A host's template (Playbook.Template)
// is host code, and runs as an isolated call, bounded by the Delivery
// policy's timeout and by ctx: a template that is slow (or loops) fails
// its notices, or is cut when Run stops, instead of holding the step past
// the shutdown grace. The library's own renders inline.
func (o *Orchestrator) render(ctx context.Context, pb *Playbook, n notify.Notice) (notify.Rendered, error) {
	if pb.Template == nil {
		return notify.DefaultTemplate().Render(n)
	}
	var r notify.Rendered
	err := retry.Call(ctx, pb.Delivery.Defaults().Timeout, func(context.Context) error {
		var err error
		r, err = pb.Template.Render(n)
		return err
	})
	if err != nil {
		return notify.Rendered{}, fmt.Errorf("breach: rendering the notice: %w", err)
	}
	return r, nil
}
