package incidenttest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// record is what the suite expects a store to hold for one incident after
// the changes it applied: the head and the three parts, written by the
// rules of incident.Change. It is the suite's reference model.
type record struct {
	head       *incident.Incident
	entries    incident.Timeline
	deliveries []incident.Delivery
	customers  []incident.Customer
	delAt      map[string]int // idempotency key → index in deliveries
	custAt     map[string]int // recipient ID → index in customers
}

// newRecord returns the record a successful Create of ch leaves.
func newRecord(ch incident.Change) *record {
	r := &record{}
	r.apply(ch)
	return r
}

// apply writes ch, which a store accepted (its Head carries the new
// Version), to r: the head is replaced, the entries appended, deliveries
// and customers inserted or replaced by key, keeping their first position.
// r keeps copies.
func (r *record) apply(ch incident.Change) {
	r.head = ch.Head.Clone()
	r.entries = append(r.entries, ch.Entries...)
	if r.delAt == nil {
		r.delAt, r.custAt = map[string]int{}, map[string]int{}
	}
	for _, d := range ch.Deliveries {
		if i, ok := r.delAt[d.IdempotencyKey]; ok {
			r.deliveries[i] = d
			continue
		}
		r.delAt[d.IdempotencyKey] = len(r.deliveries)
		r.deliveries = append(r.deliveries, d)
	}
	for _, c := range ch.Customers {
		id := incident.RecipientID(c)
		if i, ok := r.custAt[id]; ok {
			r.customers[i] = c
			continue
		}
		r.custAt[id] = len(r.customers)
		r.customers = append(r.customers, c)
	}
}

// id is the incident's ID.
func (r *record) id() string { return r.head.ID }

// next returns a copy of the head to change for the next Apply.
func (r *record) next() *incident.Incident { return r.head.Clone() }

// whole returns the incident as incident.Load reads it: the head with every
// part.
func (r *record) whole() *incident.Incident {
	inc := r.head.Clone()
	inc.Timeline = slices.Clone(r.entries)
	inc.Deliveries = slices.Clone(r.deliveries)
	if inc.Investigation != nil {
		inc.Investigation.Impact.Customers = slices.Clone(r.customers)
	}
	return inc
}

// mustCreate stores inc whole, with Create(Split(inc)), and returns the
// record the store must then hold.
func mustCreate(t *testing.T, s incident.Store, inc *incident.Incident) *record {
	t.Helper()
	ch := incident.Split(inc)
	require.NoError(t, s.Create(t.Context(), ch), "Create %s", inc.ID)
	return newRecord(ch)
}

// mustApply applies Split(h), h being r's head changed (see record.next),
// and records it in r. It returns the change as applied.
func mustApply(t *testing.T, s incident.Store, r *record, h *incident.Incident) incident.Change {
	t.Helper()
	ch := incident.Split(h)
	mustApplyChange(t, s, r, ch)
	return ch
}

// mustApplyChange applies ch and records it in r.
func mustApplyChange(t *testing.T, s incident.Store, r *record, ch incident.Change) {
	t.Helper()
	require.NoError(t, s.Apply(t.Context(), ch), "Apply %s (Version %d)", ch.Head.ID, ch.Head.Version)
	r.apply(ch)
}

func mustHead(t *testing.T, s incident.Store, id string) *incident.Incident {
	t.Helper()
	got, err := s.Head(t.Context(), id)
	require.NoError(t, err, "Head %s", id)
	require.NotNil(t, got, "Head %s returned nil without an error", id)
	return got
}

// mustLoad reads the whole incident with incident.Load.
func mustLoad(t *testing.T, s incident.Store, id string) *incident.Incident {
	t.Helper()
	got, err := incident.Load(t.Context(), s, id)
	require.NoError(t, err, "Load %s", id)
	require.NotNil(t, got, "Load %s returned nil without an error", id)
	return got
}

// assertStored checks that the store holds r: Head returns r's head and
// Load its whole record, whose timeline verifies up to the head's chain.
func assertStored(t *testing.T, s incident.Store, r *record, format string, args ...any) bool {
	t.Helper()
	head, err := s.Head(t.Context(), r.id())
	if !assert.NoError(t, err, "Head %s", r.id()) {
		return false
	}
	what := fmt.Sprintf(format, args...)
	ok := assertSame(t, r.head, head, "Head: %s", what)
	got, err := incident.Load(t.Context(), s, r.id())
	if !assert.NoError(t, err, "Load %s", r.id()) {
		return false
	}
	ok = assertSame(t, r.whole(), got, "Load: %s", what) && ok
	return assert.NoError(t, got.Timeline.VerifyHead(r.head.Chain.Head),
		"Load %s: the timeline must verify up to the head's Chain.Head: %s", r.id(), what) && ok
}

// note returns the entry the checks record: a note at t0 with detail.
func note(detail string) incident.Entry {
	return incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: detail}
}

// delivery returns a claimed delivery with key to recipient.
func delivery(key, recipient string) incident.Delivery {
	return incident.Delivery{Recipient: recipient, Channel: "email", IdempotencyKey: key,
		Status: incident.DeliveryClaimed, Attempts: 1, ClaimedAt: t0}
}

// withCustomers gives h an investigation, if it has none, and adds cs to
// its customers (and to Impact.Affected), for Split to move into the
// change. It returns h.
func withCustomers(h *incident.Incident, cs ...incident.Customer) *incident.Incident {
	if h.Investigation == nil {
		h.Investigation = &incident.Investigation{At: t0, Attempts: 1,
			Findings: incident.Findings{Impact: incident.Impact{Data: []incident.DataCategory{incident.DataAPIAccess}}}}
	}
	h.Investigation.Impact.Customers = append(h.Investigation.Impact.Customers, cs...)
	h.Investigation.Impact.Affected += len(cs)
	return h
}

// normDeliveries returns ds normalised as Normalize does.
func normDeliveries(ds []incident.Delivery) []incident.Delivery {
	return Normalize(&incident.Incident{Deliveries: ds}).Deliveries
}

// normEntries returns tl normalised as Normalize does.
func normEntries(tl incident.Timeline) incident.Timeline {
	return Normalize(&incident.Incident{Timeline: tl}).Timeline
}

func deliveryKeys(ds []incident.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.IdempotencyKey
	}
	return out
}

func recipientIDs(cs []incident.Customer) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = incident.RecipientID(c)
	}
	return out
}
