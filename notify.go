package breach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"golang.org/x/sync/semaphore"
)

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

func (o *Orchestrator) notify(st *stepRun, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	if inc.Decision == nil || !inc.Decision.Notify {
		return true, o.escalate(st.write, inc, from, "notification started but the decision is not to notify customers")
	}
	if len(pb.Notifiers) == 0 {
		return true, o.escalate(st.write, inc, from, "customers must be notified but the playbook has no notifier")
	}
	plan := o.plan(inc, pb)
	if len(plan) == 0 {
		return true, o.escalate(st.write, inc, from, "customers must be notified but no affected customer is known: the investigation named none")
	}
	todo := o.unsent(inc, pb)
	if len(todo) > 0 {
		// Claim before sending: a crash after this point re-sends only what
		// is not marked sent, with the same key. A claim folded into the
		// write that entered notification stands.
		if !claimed(inc, todo) {
			err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
				if inc.State != from || inc.Dismissal != nil {
					return errStale
				}
				o.claimDeliveries(inc, todo)
				return nil
			})
			if err != nil {
				return false, err
			}
		}
		failed, err := o.send(st, inc, pb, todo)
		if err != nil {
			return false, err
		}
		if st.stop.Err() != nil {
			return false, nil
		}
		if failed != nil {
			return true, o.escalate(st.write, inc, from, "customer notification failed: "+failed.Error())
		}
		if inc.State != from {
			return true, nil // the last notice's write moved it on
		}
		if !o.allDelivered(inc, pb) {
			return true, o.escalate(st.write, inc, from, "customer notification incomplete: the step ran out of time before every notice was sent")
		}
	}
	return true, o.advance(st.write, inc, from, incident.EventNotified, "every affected customer notified")
}

// unsent returns the planned deliveries not yet sent.
func (o *Orchestrator) unsent(inc *incident.Incident, pb *Playbook) []plannedDelivery {
	var todo []plannedDelivery
	for _, p := range o.plan(inc, pb) {
		if d := inc.Delivery(p.key); d == nil || d.Status != incident.DeliverySent {
			todo = append(todo, p)
		}
	}
	return todo
}

// claimed reports whether every delivery of todo is on the record as
// claimed.
func claimed(inc *incident.Incident, todo []plannedDelivery) bool {
	for _, p := range todo {
		if d := inc.Delivery(p.key); d == nil || d.Status != incident.DeliveryClaimed {
			return false
		}
	}
	return true
}

// claimDeliveries puts the deliveries of todo on inc's record as claimed.
func (o *Orchestrator) claimDeliveries(inc *incident.Incident, todo []plannedDelivery) {
	now := o.cfg.now()
	for _, p := range todo {
		if d := inc.Delivery(p.key); d != nil {
			d.Status, d.ClaimedAt = incident.DeliveryClaimed, now
			continue
		}
		inc.Deliveries = append(inc.Deliveries, incident.Delivery{Recipient: recipientID(p.customer),
			Channel: p.route.Channel, IdempotencyKey: p.key, Status: incident.DeliveryClaimed, ClaimedAt: now})
	}
}

// send delivers the planned notices, at most deliveryConcurrency at once,
// and records each result as it comes. It returns the joined delivery
// failures, and separately an error writing the store. When a person's
// action interrupts it (a dismissal), no further notice starts: the ones cut
// mid-call are recorded as unknown and the ones never tried as cancelled.
func (o *Orchestrator) send(st *stepRun, inc *incident.Incident, pb *Playbook, todo []plannedDelivery) (failed, werr error) {
	sctx, cancel := st.callContext(pb)
	defer cancel()
	notices := map[string]notify.Rendered{}
	// The deliveries' goroutines record results into inc under mu, and a
	// conflicting write may replace *inc; messages are built from a copy.
	snap := inc.Clone()
	actions := o.actionDescriptions(snap, pb)
	sem := semaphore.NewWeighted(int64(o.cfg.deliveryConcurrency))
	var mu sync.Mutex // guards inc, failed, werr, cut
	var cut []cutDelivery
	var wg sync.WaitGroup
	for n, p := range todo {
		rid := recipientID(p.customer)
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
			mu.Lock()
			for _, p := range todo[n:] {
				cut = append(cut, cutDelivery{p: p})
			}
			mu.Unlock()
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
			started := o.cfg.now()
			out := retry.Outcome{Attempts: 0, Err: incident.Permanent(rerr)}
			if rerr == nil {
				out = retry.Do(sctx, pb.Delivery, st.stop.Done(), func(ctx context.Context, attempt int) error {
					m := msg
					m.Attempt = attempt
					return p.route.Notifier.Notify(ctx, m)
				})
			}
			ob := Observation{Kind: ObserveStep, IncidentID: snap.ID, IncidentKind: snap.Kind, Severity: snap.Severity,
				Step: "notify", Target: p.route.Channel, Attempts: out.Attempts, Duration: o.cfg.now().Sub(started),
				Outcome: outcomeOf(out.Err), Err: o.redactErr(snap.ID, out.Err)}
			if st.cut(out.Err) {
				ob.Outcome = outcomeInterrupted
				o.observe(st.calls, ob)
				if st.interrupted() {
					mu.Lock()
					cut = append(cut, cutDelivery{p: p, attempts: out.Attempts})
					mu.Unlock()
				}
				return // a resumed run sends it again, with the same key
			}
			mu.Lock()
			defer mu.Unlock()
			err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
				d := inc.Delivery(p.key)
				if d == nil {
					return fmt.Errorf("breach: delivery %s vanished from incident %s", p.key, inc.ID)
				}
				d.Attempts += out.Attempts
				to := "notice to customer " + strconv.Quote(rid) + " via " + p.route.Channel
				if out.Err == nil {
					d.Status, d.SentAt, d.LastError = incident.DeliverySent, o.cfg.now(), ""
					o.record(inc, incident.ActorSystem, incident.EntryDelivery, to+" sent (key "+p.key+")")
					st.chain(inc) // the last notice moves the incident on in the same write
				} else {
					d.Status, d.LastError = incident.DeliveryFailed, o.redact(inc.ID, out.Err.Error())
					o.record(inc, incident.ActorSystem, incident.EntryDelivery,
						to+" failed after "+strconv.Itoa(out.Attempts)+" attempt(s): "+d.LastError+panicStack(out.Err))
				}
				return nil
			})
			werr = errors.Join(werr, err)
			if err == nil {
				o.observe(st.calls, ob)
			}
			if out.Err != nil {
				failed = errors.Join(failed, fmt.Errorf("%s via %s: %w", rid, p.route.Channel, out.Err))
			}
		}()
	}
	wg.Wait()
	if len(cut) > 0 && st.interrupted() {
		werr = errors.Join(werr, o.recordCut(st, inc, cut))
	}
	return failed, werr
}

// cutDelivery is a notice a person's action cut off, with the attempts it
// had started.
type cutDelivery struct {
	p        plannedDelivery
	attempts int
}

// recordCut records the notices a person's action cut off: those never
// tried are cancelled; those whose call was cut are unknown (the recipient
// may have them).
func (o *Orchestrator) recordCut(st *stepRun, inc *incident.Incident, cut []cutDelivery) error {
	why := context.Cause(st.stop)
	return o.mutate(st.write, inc, func(inc *incident.Incident) error {
		var cancelled, unknown int
		for _, c := range cut {
			d := inc.Delivery(c.p.key)
			if d == nil || d.Status != incident.DeliveryClaimed {
				continue
			}
			d.Attempts += c.attempts
			if c.attempts == 0 {
				d.Status = incident.DeliveryCancelled
				cancelled++
			} else {
				d.Status = incident.DeliveryUnknown
				unknown++
			}
			d.LastError = o.redact(inc.ID, why.Error())
		}
		if cancelled+unknown > 0 {
			o.record(inc, incident.ActorSystem, incident.EntryDelivery, fmt.Sprintf(
				"notification cut off (%v): %d notice(s) not sent, %d cut mid-call (the recipient may have them)", why, cancelled, unknown))
		}
		return nil
	})
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
