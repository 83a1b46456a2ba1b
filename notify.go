package breach

import (
	"context"
	"fmt"
	"strings"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
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
	customers, err := o.customersAt(st.write, inc)
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
	// had holds the records as of the head's Version base: a write that
	// conflicts reads them again (current), so that what another writer
	// recorded meanwhile is neither claimed nor recorded twice.
	base := inc.Version
	current := func(inc *incident.Incident) error {
		if inc.Version == base {
			return nil
		}
		fresh, err := o.deliveries(st.write, inc.ID, plan)
		if err == nil {
			had, base = fresh, inc.Version
		}
		return err
	}
	if len(todo) > 0 && !claimed {
		// Claim before sending: a crash after this point re-sends only
		// what is not marked sent, with the same key.
		var claims []incident.Delivery
		err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			if err := current(inc); err != nil {
				return err
			}
			claims = o.claim(inc, unsent(todo, had), had)
			return nil
		})
		if err != nil {
			return false, err
		}
		for _, d := range claims {
			had[d.IdempotencyKey] = d
		}
		base = inc.Version
		todo = unsent(todo, had)
	}
	results := o.send(st, inc, pb, todo)
	if st.stop.Err() != nil && !st.interrupted() {
		return false, nil // stopping: the claims stand, and a resumed run sends them with the same keys
	}
	var failed []error
	err = o.mutate(st.write, inc, func(inc *incident.Incident) error {
		if err := current(inc); err != nil {
			return err
		}
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

// unsent returns the notices of todo that had does not record sent.
func unsent(todo []plannedDelivery, had map[string]incident.Delivery) []plannedDelivery {
	out := todo[:0:0]
	for _, p := range todo {
		if d, ok := had[p.key]; !ok || d.Status != incident.DeliverySent {
			out = append(out, p)
		}
	}
	return out
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
