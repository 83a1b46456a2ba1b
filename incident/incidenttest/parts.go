package incidenttest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// The parts of a record: the chain that Apply checks, the atomicity of a
// change, and the paginated reads of entries, deliveries and customers.

var chainChecks = []check{
	{"CreateMismatch", chainCreateMismatch},
	{"ApplyMismatch", chainApplyMismatch},
	{"HeadWithParts", chainHeadWithParts},
}

var atomicChecks = []check{
	{"CreateRejected", atomicCreateRejected},
	{"ApplyRejected", atomicApplyRejected},
}

var entriesChecks = []check{
	{"Pages", entriesPages},
	{"Limits", entriesLimits},
	{"PastEnd", entriesPastEnd},
	{"NotFound", entriesNotFound},
}

var deliveriesChecks = []check{
	{"ByKey", deliveriesByKey},
	{"PerIncident", deliveriesPerIncident},
	{"Keys", deliveriesKeys},
	{"Status", deliveriesStatus},
	{"Pages", deliveriesPages},
	{"UnknownAfter", deliveriesUnknownAfter},
	{"InvalidQuery", deliveriesInvalidQuery},
	{"NotFound", deliveriesNotFound},
}

var customersChecks = []check{
	{"ByKey", customersByKey},
	{"PerIncident", customersPerIncident},
	{"Pages", customersPages},
	{"UnknownAfter", customersUnknownAfter},
	{"InvalidLimit", customersInvalidLimit},
	{"NotFound", customersNotFound},
}

var largeChecks = []check{
	{"Load", largeLoad},
	{"ApplyCost", largeApplyCost},
}

// assertFilterError checks that err is a *FilterError matching
// ErrInvalidFilter.
func assertFilterError(t *testing.T, err error, what string) bool {
	t.Helper()
	if !assert.ErrorIs(t, err, incident.ErrInvalidFilter, "%s must fail with ErrInvalidFilter", what) {
		return false
	}
	var fe *incident.FilterError
	return assert.ErrorAs(t, err, &fe, "%s must fail with a *FilterError", what)
}

// ---- Chain ----

func chainCreateMismatch(t *testing.T, s incident.Store) {
	for _, tc := range []struct {
		name  string
		spoil func(ch *incident.Change)
	}{
		{"length beyond the entries", func(ch *incident.Change) { ch.Head.Chain.Len++ }},
		{"length short of the entries", func(ch *incident.Change) { ch.Head.Chain.Len-- }},
		{"head not the last entry's hash", func(ch *incident.Change) { ch.Head.Chain.Head = ch.Entries[0].Hash }},
		{"zero head", func(ch *incident.Change) { ch.Head.Chain.Head = incident.Hash{} }},
		{"a chain without its entries", func(ch *incident.Change) { ch.Entries = nil }},
		{"entries without a chain", func(ch *incident.Change) { ch.Head.Chain = incident.Chain{} }},
	} {
		inc := NewIncident("inc-1", "key-1")
		inc.Record(note("second"))
		ch := incident.Split(inc)
		tc.spoil(&ch)
		err := s.Create(t.Context(), ch)
		assert.ErrorIs(t, err, incident.ErrInvalidIncident,
			"Create with a Chain the entries do not reach (%s) must fail with ErrInvalidIncident", tc.name)
		assertAbsent(t, s, "inc-1", "after a Create refused for its chain ("+tc.name+")")
	}
	assertNoOpen(t, s, "key-1")
}

func chainApplyMismatch(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	h := r.next()
	h.Record(note("second"))
	mustApply(t, s, r, h)
	stale := r.next() // a head from before the next Apply
	h = r.next()
	h.Record(note("third"))
	mustApply(t, s, r, h)

	for _, tc := range []struct {
		name  string
		build func() incident.Change
	}{
		{"length one short", func() incident.Change {
			h := r.next()
			h.Record(note("new"))
			h.Chain.Len--
			return incident.Split(h)
		}},
		{"length one beyond", func() incident.Change {
			h := r.next()
			h.Record(note("new"))
			h.Chain.Len++
			return incident.Split(h)
		}},
		{"head not the last entry's hash", func() incident.Change {
			h := r.next()
			h.Record(note("new"))
			h.Record(note("newer"))
			ch := incident.Split(h)
			ch.Head.Chain.Head = ch.Entries[0].Hash
			return ch
		}},
		{"head left at the stored one", func() incident.Change {
			h := r.next()
			h.Record(note("new"))
			ch := incident.Split(h)
			ch.Head.Chain.Head = r.head.Chain.Head
			return ch
		}},
		{"no entries, length moved", func() incident.Change {
			h := r.next()
			h.Chain.Len++
			return incident.Split(h)
		}},
		{"no entries, head moved", func() incident.Change {
			h := r.next()
			h.Chain.Head = r.entries[0].Hash
			return incident.Split(h)
		}},
		{"entries recorded on a stale head", func() incident.Change {
			h := stale.Clone()
			h.Version = r.head.Version
			h.Record(note("on a stale head"))
			return incident.Split(h)
		}},
		{"the whole record written again", func() incident.Change {
			h := r.whole()
			h.Summary = "rewritten"
			return incident.Split(h)
		}},
	} {
		err := s.Apply(t.Context(), tc.build())
		assert.ErrorIs(t, err, incident.ErrInvalidIncident,
			"Apply whose entries do not continue the stored chain (%s) must fail with ErrInvalidIncident", tc.name)
		assertStored(t, s, r, "an Apply refused for its chain (%s) must change nothing", tc.name)
	}
}

func chainHeadWithParts(t *testing.T, s incident.Store) {
	parts := []struct {
		name string
		put  func(ch incident.Change) // puts a part back into the head
	}{
		{"Timeline", func(ch incident.Change) { ch.Head.Timeline = slices.Clone(ch.Entries) }},
		{"Deliveries", func(ch incident.Change) { ch.Head.Deliveries = slices.Clone(ch.Deliveries) }},
		{"customers", func(ch incident.Change) {
			ch.Head.Investigation.Impact.Customers = slices.Clone(ch.Customers)
		}},
	}
	for _, p := range parts {
		ch := incident.Split(FullIncident("inc-new", "key-new"))
		p.put(ch)
		err := s.Create(t.Context(), ch)
		assert.ErrorIs(t, err, incident.ErrInvalidIncident, "Create with a head that holds %s must fail with ErrInvalidIncident", p.name)
		assertAbsent(t, s, "inc-new", "after a Create refused for a head holding "+p.name)
	}

	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	for _, p := range parts {
		h := r.next()
		h.Record(note("with parts"))
		h.Deliveries = []incident.Delivery{delivery("del-new", "cust_1")}
		withCustomers(h, incident.Customer{ID: "cust_new"})
		ch := incident.Split(h)
		p.put(ch)
		err := s.Apply(t.Context(), ch)
		assert.ErrorIs(t, err, incident.ErrInvalidIncident, "Apply with a head that holds %s must fail with ErrInvalidIncident", p.name)
		assertStored(t, s, r, "an Apply refused for a head holding %s must change nothing", p.name)
	}
}

// ---- Atomic ----

// withParts adds to h one entry, a delivery replacing del-a, a new
// delivery, a customer replacing cust-a and a new customer: a change that
// touches every part, for the checks that it is refused whole.
func withParts(h *incident.Incident, tag string) *incident.Incident {
	h.Summary = "refused: " + tag
	h.Record(note("refused: " + tag))
	d := delivery("del-a", "cust-a")
	d.Status, d.Attempts, d.LastError = incident.DeliveryFailed, 9, "refused: "+tag
	h.Deliveries = []incident.Delivery{d, delivery("del-"+tag, "cust-a")}
	return withCustomers(h, incident.Customer{ID: "cust-a", Name: "refused: " + tag}, incident.Customer{ID: "cust-" + tag})
}

// atomicIncident returns an incident with one entry, delivery del-a and
// customer cust-a.
func atomicIncident(id, key string) *incident.Incident {
	inc := NewIncident(id, key)
	inc.Deliveries = []incident.Delivery{delivery("del-a", "cust-a")}
	return withCustomers(inc, incident.Customer{ID: "cust-a", Name: "Ada"})
}

func atomicCreateRejected(t *testing.T, s incident.Store) {
	a := mustCreate(t, s, atomicIncident("inc-a", "key-a"))
	for _, tc := range []struct {
		name  string
		id    string // of the refused incident
		build func() incident.Change
		want  error
	}{
		{"duplicate dedup key", "inc-b", func() incident.Change {
			return incident.Split(withParts(NewIncident("inc-b", "key-a"), "dup"))
		}, incident.ErrDuplicate},
		{"existing ID", "inc-a", func() incident.Change {
			return incident.Split(withParts(NewIncident("inc-a", "key-b"), "id"))
		}, incident.ErrInvalidIncident},
		{"chain the entries do not reach", "inc-b", func() incident.Change {
			ch := incident.Split(withParts(NewIncident("inc-b", "key-b"), "chain"))
			ch.Head.Chain.Len++
			return ch
		}, incident.ErrInvalidIncident},
		{"last delivery without a key", "inc-b", func() incident.Change {
			ch := incident.Split(withParts(NewIncident("inc-b", "key-b"), "delivery"))
			ch.Deliveries = append(ch.Deliveries, delivery("", "cust-a"))
			return ch
		}, incident.ErrInvalidIncident},
		{"last customer without a key", "inc-b", func() incident.Change {
			ch := incident.Split(withParts(NewIncident("inc-b", "key-b"), "customer"))
			ch.Customers = append(ch.Customers, incident.Customer{Name: "nobody"})
			return ch
		}, incident.ErrInvalidIncident},
		{"cancelled context", "inc-b", func() incident.Change {
			return incident.Split(withParts(NewIncident("inc-b", "key-b"), "ctx"))
		}, context.Canceled},
	} {
		ctx := t.Context()
		if tc.want == context.Canceled {
			ctx = cancelled(t)
		}
		err := s.Create(ctx, tc.build())
		assert.ErrorIs(t, err, tc.want, "Create refused for %s", tc.name)
		if tc.id != a.id() {
			assertAbsent(t, s, tc.id, "after a Create refused for "+tc.name)
		}
		assertStored(t, s, a, "a Create refused for %s must write none of its parts", tc.name)
		assertNoOpen(t, s, "key-b")
	}
	open, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"inc-a"}, ids(open), "refused Creates store no incident")
}

func atomicApplyRejected(t *testing.T, s incident.Store) {
	for i, tc := range []struct {
		name string
		// build returns the record of an incident it stored and a change
		// to it that must be refused.
		build func(id, key string) (*record, incident.Change)
		want  error
	}{
		{"stale version", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			stale := r.next()
			h := r.next()
			h.Summary = "first"
			mustApply(t, s, r, h)
			stale.Version = r.head.Version - 1
			return r, incident.Split(withParts(stale, "stale"))
		}, incident.ErrConflict},
		{"future version", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			h := r.next()
			h.Version++
			return r, incident.Split(withParts(h, "future"))
		}, incident.ErrConflict},
		{"chain the entries do not reach", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			ch := incident.Split(withParts(r.next(), "chain"))
			ch.Head.Chain.Len++
			return r, ch
		}, incident.ErrInvalidIncident},
		{"reopen onto a held dedup key", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			setState(t, s, r, incident.StateClosed)
			mustCreate(t, s, NewIncident(id+"-holder", key))
			h := r.next()
			h.State = incident.StateInvestigating
			return r, incident.Split(withParts(h, "reopen"))
		}, incident.ErrDuplicate},
		{"dedup key moved onto a held one", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			mustCreate(t, s, NewIncident(id+"-holder", key+"-held"))
			h := r.next()
			h.DedupKey = key + "-held"
			return r, incident.Split(withParts(h, "move"))
		}, incident.ErrDuplicate},
		{"last delivery without a key", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			ch := incident.Split(withParts(r.next(), "delivery"))
			ch.Deliveries = append(ch.Deliveries, delivery("", "cust-a"))
			return r, ch
		}, incident.ErrInvalidIncident},
		{"last customer without a key", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			ch := incident.Split(withParts(r.next(), "customer"))
			ch.Customers = append(ch.Customers, incident.Customer{Name: "nobody"})
			return r, ch
		}, incident.ErrInvalidIncident},
		{"head holding a part", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			ch := incident.Split(withParts(r.next(), "head"))
			ch.Head.Deliveries = slices.Clone(ch.Deliveries)
			return r, ch
		}, incident.ErrInvalidIncident},
		{"cancelled context", func(id, key string) (*record, incident.Change) {
			r := mustCreate(t, s, atomicIncident(id, key))
			return r, incident.Split(withParts(r.next(), "ctx"))
		}, context.Canceled},
	} {
		id, key := fmt.Sprintf("inc-%d", i), fmt.Sprintf("key-%d", i)
		r, ch := tc.build(id, key)
		ctx := t.Context()
		if tc.want == context.Canceled {
			ctx = cancelled(t)
		}
		err := s.Apply(ctx, ch)
		assert.ErrorIs(t, err, tc.want, "Apply refused for %s", tc.name)
		assertStored(t, s, r, "an Apply refused for %s must write none of its parts: head, entries, deliveries and customers as before", tc.name)
	}
}

// ---- Entries ----

// longTimeline stores an incident whose timeline has n entries, written
// in Applys of batch entries, and returns its record.
func longTimeline(t *testing.T, s incident.Store, id string, n, batch int) *record {
	t.Helper()
	r := mustCreate(t, s, NewIncident(id, "key-"+id))
	for len(r.entries) < n {
		h := r.next()
		for range min(batch, n-len(r.entries)) {
			h.Record(incident.Entry{At: t0.Add(time.Duration(h.Chain.Len) * time.Second), Actor: incident.ActorSystem,
				Type: incident.EntryNote, Detail: fmt.Sprintf("entry %d", h.Chain.Len)})
		}
		mustApply(t, s, r, h)
	}
	return r
}

func entriesPages(t *testing.T, s incident.Store) {
	const n = 250
	r := longTimeline(t, s, "inc-1", n, 31)
	head := mustHead(t, s, "inc-1")
	require.Equal(t, n, head.Chain.Len)
	for _, limit := range []int{7, 0, incident.DefaultPageSize, incident.MaxPageSize} {
		var all incident.Timeline
		for from := 0; ; {
			page, err := s.Entries(t.Context(), "inc-1", from, limit)
			require.NoError(t, err, "Entries from %d, limit %d", from, limit)
			want := min(incident.PartPage(limit), n-from)
			require.Len(t, page, want, "Entries from %d, limit %d: a page holds PartPage(limit) entries, fewer only at the end", from, limit)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			from += len(page)
		}
		assert.Equal(t, normEntries(r.entries), normEntries(all),
			"paging by %d must return every entry exactly once, in order, as written", limit)
		assert.NoError(t, all.VerifyHead(head.Chain.Head), "the pages of %d together must verify up to Head's Chain.Head", limit)
	}
	for _, from := range []int{0, 1, 99, 100, 101, n - 1} {
		page, err := s.Entries(t.Context(), "inc-1", from, 1)
		require.NoError(t, err)
		if assert.Len(t, page, 1, "Entries from %d, limit 1", from) {
			assert.Equal(t, r.entries[from].Hash, page[0].Hash, "Entries from %d must start at position %d", from, from)
		}
	}
}

func entriesLimits(t *testing.T, s incident.Store) {
	n := incident.MaxPageSize + 5
	r := longTimeline(t, s, "inc-1", n, 200)
	page, err := s.Entries(t.Context(), "inc-1", 0, 0)
	require.NoError(t, err)
	assert.Len(t, page, incident.DefaultPageSize, "limit 0 means DefaultPageSize")
	page, err = s.Entries(t.Context(), "inc-1", 0, incident.MaxPageSize)
	require.NoError(t, err, "limit MaxPageSize is valid")
	assert.Len(t, page, incident.MaxPageSize)
	page, err = s.Entries(t.Context(), "inc-1", incident.MaxPageSize, incident.MaxPageSize)
	require.NoError(t, err)
	assert.Len(t, page, 5, "the last page")
	for _, tc := range []struct {
		name        string
		from, limit int
	}{
		{"negative limit", 0, -1},
		{"limit above MaxPageSize", 0, incident.MaxPageSize + 1},
		{"negative from", -1, 10},
	} {
		page, err := s.Entries(t.Context(), "inc-1", tc.from, tc.limit)
		if assertFilterError(t, err, "Entries with a "+tc.name) {
			assert.Empty(t, page)
		}
	}
	assertStored(t, s, r, "after the reads")
}

func entriesPastEnd(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	for _, from := range []int{len(r.entries), len(r.entries) + 10} {
		page, err := s.Entries(t.Context(), "inc-1", from, 0)
		assert.NoError(t, err, "Entries from %d of %d: the end is no error", from, len(r.entries))
		assert.Empty(t, page, "Entries from %d of %d", from, len(r.entries))
	}
}

func entriesNotFound(t *testing.T, s incident.Store) {
	_, err := s.Entries(t.Context(), "inc-missing", 0, 0)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Entries of an unknown incident must fail with ErrNotFound")
}

// ---- Deliveries ----

// mustDeliveries reads the deliveries of id that q selects.
func mustDeliveries(t *testing.T, s incident.Store, id string, q incident.DeliveryQuery) []incident.Delivery {
	t.Helper()
	page, err := s.Deliveries(t.Context(), id, q)
	require.NoError(t, err, "Deliveries %s %+v", id, q)
	return page
}

// allDeliveries pages through the deliveries of id that q selects, with
// q's Limit, checking that every page but the last is full.
func allDeliveries(t *testing.T, s incident.Store, id string, q incident.DeliveryQuery) []incident.Delivery {
	t.Helper()
	var all []incident.Delivery
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "Deliveries keeps returning pages")
		page := mustDeliveries(t, s, id, q)
		require.LessOrEqual(t, len(page), q.PageSize(), "a page holds at most PageSize deliveries")
		all = append(all, page...)
		if len(page) < q.PageSize() {
			return all
		}
		q.After = page[len(page)-1].IdempotencyKey
	}
}

// manyDeliveries returns n claimed deliveries, keys del-000 on, each
// with the status statuses[i%len(statuses)].
func manyDeliveries(n int, statuses ...incident.DeliveryStatus) []incident.Delivery {
	ds := make([]incident.Delivery, n)
	for i := range ds {
		ds[i] = delivery(fmt.Sprintf("del-%03d", i), fmt.Sprintf("cust-%03d", i))
		if len(statuses) > 0 {
			ds[i].Status = statuses[i%len(statuses)]
		}
	}
	return ds
}

var everyStatus = []incident.DeliveryStatus{incident.DeliveryClaimed, incident.DeliverySent, incident.DeliveryFailed,
	incident.DeliveryCancelled, incident.DeliveryUnknown}

func deliveriesByKey(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = []incident.Delivery{delivery("k1", "cust-1"), delivery("k2", "cust-2"), delivery("k3", "cust-3")}
	r := mustCreate(t, s, inc)

	h := r.next()
	again := delivery("k2", "cust-2")
	again.Status, again.Attempts, again.SentAt, again.LastError = incident.DeliverySent, 2, t0.Add(time.Minute), "retried"
	h.Deliveries = []incident.Delivery{again, delivery("k4", "cust-4")}
	mustApply(t, s, r, h)
	got := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{})
	assert.Equal(t, []string{"k1", "k2", "k3", "k4"}, deliveryKeys(got),
		"a delivery written twice with one IdempotencyKey must be one delivery, in the place it was first written")
	assert.Equal(t, normDeliveries(r.deliveries), normDeliveries(got), "the delivery written again must hold the latest content")

	h = r.next()
	first := delivery("k1", "cust-1")
	first.Status, first.Attempts = incident.DeliveryFailed, 5
	h.Deliveries = []incident.Delivery{first}
	mustApply(t, s, r, h)
	got = mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{})
	assert.Equal(t, []string{"k1", "k2", "k3", "k4"}, deliveryKeys(got), "replacing the first delivery keeps it first")
	assert.Equal(t, normDeliveries(r.deliveries), normDeliveries(got), "the delivery written again must hold the latest content")
	assertStored(t, s, r, "after deliveries written again")
}

func deliveriesPerIncident(t *testing.T, s incident.Store) {
	a, b := NewIncident("inc-a", "key-a"), NewIncident("inc-b", "key-b")
	a.Deliveries = []incident.Delivery{delivery("shared", "cust-a")}
	b.Deliveries = []incident.Delivery{delivery("shared", "cust-b"), delivery("own", "cust-b")}
	ra, rb := mustCreate(t, s, a), mustCreate(t, s, b)
	h := ra.next()
	d := delivery("shared", "cust-a")
	d.Status = incident.DeliverySent
	h.Deliveries = []incident.Delivery{d}
	mustApply(t, s, ra, h)
	assertStored(t, s, ra, "a delivery's key is the incident's own")
	assertStored(t, s, rb, "writing a delivery of one incident must not change another's with the same key")
	got := mustDeliveries(t, s, "inc-a", incident.DeliveryQuery{Keys: []string{"own", "shared"}})
	assert.Equal(t, []string{"shared"}, deliveryKeys(got), "Keys selects the incident's own deliveries")
}

func deliveriesKeys(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = manyDeliveries(10, incident.DeliveryClaimed, incident.DeliverySent)
	r := mustCreate(t, s, inc)
	byKey := func(keys ...string) []incident.Delivery {
		var out []incident.Delivery
		for _, k := range keys {
			out = append(out, r.deliveries[slices.IndexFunc(r.deliveries, func(d incident.Delivery) bool { return d.IdempotencyKey == k })])
		}
		return normDeliveries(out)
	}
	for _, tc := range []struct {
		name string
		q    incident.DeliveryQuery
		want []string
	}{
		{"in the order of Keys", incident.DeliveryQuery{Keys: []string{"del-007", "del-002", "del-005"}}, []string{"del-007", "del-002", "del-005"}},
		{"only those that exist", incident.DeliveryQuery{Keys: []string{"del-missing", "del-003", "del-010", "del-000"}}, []string{"del-003", "del-000"}},
		{"none that exist", incident.DeliveryQuery{Keys: []string{"del-missing"}}, nil},
		{"with Status", incident.DeliveryQuery{Keys: []string{"del-005", "del-004", "del-003"}, Status: incident.DeliverySent}, []string{"del-005", "del-003"}},
		{"Limit and After do not apply", incident.DeliveryQuery{Keys: []string{"del-009", "del-001", "del-008"}, Limit: 1, After: "del-008"}, []string{"del-009", "del-001", "del-008"}},
	} {
		got := mustDeliveries(t, s, "inc-1", tc.q)
		if assert.Equal(t, tc.want, nilIfEmpty(deliveryKeys(got)), "Deliveries %s: %+v", tc.name, tc.q) && len(tc.want) > 0 {
			assert.Equal(t, byKey(tc.want...), normDeliveries(got), "Deliveries %s: the deliveries whole", tc.name)
		}
	}
}

func deliveriesStatus(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = manyDeliveries(30, everyStatus...)
	r := mustCreate(t, s, inc)
	for _, st := range everyStatus {
		var want []string
		for _, d := range r.deliveries {
			if d.Status == st {
				want = append(want, d.IdempotencyKey)
			}
		}
		got := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{Status: st})
		assert.Equal(t, want, deliveryKeys(got), "Deliveries with Status %s, in the order written", st)
		got = allDeliveries(t, s, "inc-1", incident.DeliveryQuery{Status: st, Limit: 4})
		assert.Equal(t, want, deliveryKeys(got), "Deliveries with Status %s, 4 a page", st)
	}
	got := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{Status: "no-such-status"})
	assert.Empty(t, got, "a Status no delivery has selects none")
}

func deliveriesPages(t *testing.T, s incident.Store) {
	const n = 130
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = manyDeliveries(80, everyStatus...)
	r := mustCreate(t, s, inc)
	h := r.next()
	h.Deliveries = manyDeliveries(n, incident.DeliverySent)[80:] // written later, after the first 80
	mustApply(t, s, r, h)
	want := deliveryKeys(r.deliveries)

	for _, limit := range []int{7, 10, incident.MaxPageSize} {
		got := allDeliveries(t, s, "inc-1", incident.DeliveryQuery{Limit: limit})
		assert.Equal(t, want, deliveryKeys(got), "paging by %d must return every delivery exactly once, in the order written", limit)
	}
	page := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{})
	assert.Len(t, page, incident.DefaultPageSize, "Limit 0 means DefaultPageSize")
	rest := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{After: page[len(page)-1].IdempotencyKey})
	assert.Equal(t, want[incident.DefaultPageSize:], deliveryKeys(rest), "the page after the default page")
	last := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{After: want[n-1]})
	assert.Empty(t, last, "the page after the last delivery")
	got := allDeliveries(t, s, "inc-1", incident.DeliveryQuery{Limit: incident.MaxPageSize})
	assert.Equal(t, normDeliveries(r.deliveries), normDeliveries(got), "the deliveries whole")
}

func deliveriesUnknownAfter(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = manyDeliveries(5)
	mustCreate(t, s, inc)
	other := NewIncident("inc-2", "key-2")
	other.Deliveries = []incident.Delivery{delivery("del-other", "cust-1")}
	mustCreate(t, s, other)
	for _, after := range []string{"del-missing", "del-other", "del-00"} {
		page, err := s.Deliveries(t.Context(), "inc-1", incident.DeliveryQuery{After: after})
		assert.NoError(t, err, "Deliveries after %q, no delivery's key", after)
		assert.Empty(t, page, "Deliveries after %q, no delivery's key, must be an empty page", after)
	}
}

func deliveriesInvalidQuery(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Deliveries = manyDeliveries(3)
	mustCreate(t, s, inc)
	tooMany := make([]string, incident.MaxPageSize+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("del-%03d", i)
	}
	for _, tc := range []struct {
		name string
		q    incident.DeliveryQuery
	}{
		{"negative Limit", incident.DeliveryQuery{Limit: -1}},
		{"Limit above MaxPageSize", incident.DeliveryQuery{Limit: incident.MaxPageSize + 1}},
		{"more Keys than MaxPageSize", incident.DeliveryQuery{Keys: tooMany}},
	} {
		page, err := s.Deliveries(t.Context(), "inc-1", tc.q)
		if assertFilterError(t, err, "Deliveries with a "+tc.name) {
			assert.Empty(t, page)
		}
	}
	got := mustDeliveries(t, s, "inc-1", incident.DeliveryQuery{Keys: tooMany[:incident.MaxPageSize]})
	assert.Equal(t, []string{"del-000", "del-001", "del-002"}, deliveryKeys(got), "MaxPageSize Keys are valid")
}

func deliveriesNotFound(t *testing.T, s incident.Store) {
	_, err := s.Deliveries(t.Context(), "inc-missing", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, incident.ErrNotFound, "Deliveries of an unknown incident must fail with ErrNotFound")
	_, err = s.Deliveries(t.Context(), "inc-missing", incident.DeliveryQuery{Keys: []string{"del-1"}})
	assert.ErrorIs(t, err, incident.ErrNotFound, "Deliveries by Keys of an unknown incident must fail with ErrNotFound")
}

// ---- Customers ----

func mustCustomers(t *testing.T, s incident.Store, id, after string, limit int) []incident.Customer {
	t.Helper()
	page, err := s.Customers(t.Context(), id, after, limit)
	require.NoError(t, err, "Customers %s after %q, limit %d", id, after, limit)
	return page
}

// allCustomers pages through the customers of id, limit a page, checking
// that every page but the last is full.
func allCustomers(t *testing.T, s incident.Store, id string, limit int) []incident.Customer {
	t.Helper()
	var all []incident.Customer
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "Customers keeps returning pages")
		page := mustCustomers(t, s, id, after, limit)
		require.LessOrEqual(t, len(page), incident.PartPage(limit), "a page holds at most PartPage(limit) customers")
		all = append(all, page...)
		if len(page) < incident.PartPage(limit) {
			return all
		}
		after = incident.RecipientID(page[len(page)-1])
	}
}

func customersByKey(t *testing.T, s incident.Store) {
	inc := withCustomers(NewIncident("inc-1", "key-1"),
		incident.Customer{ID: "cust-1", Name: "Ada"},
		incident.Customer{Email: "bea@example.com", Name: "Bea"}, // keyed by Email
		incident.Customer{ID: "cust-3", Email: "cy@example.com"},
	)
	r := mustCreate(t, s, inc)
	h := withCustomers(r.next(),
		incident.Customer{ID: "cust-1", Name: "Ada Lovelace", Email: "ada@example.com"},
		incident.Customer{Email: "bea@example.com", Name: "Bea Arthur"},
		incident.Customer{Email: "cy@example.com", Name: "another Cy"}, // no ID: keyed by Email, not cust-3
	)
	mustApply(t, s, r, h)
	got := mustCustomers(t, s, "inc-1", "", 0)
	assert.Equal(t, []string{"cust-1", "bea@example.com", "cust-3", "cy@example.com"}, recipientIDs(got),
		"customers are keyed by ID, or Email when the ID is empty, and keep the place they were first written in")
	assert.Equal(t, r.customers, got, "a customer written again must hold the latest content")
	assertStored(t, s, r, "after customers written again")
}

func customersPerIncident(t *testing.T, s incident.Store) {
	ra := mustCreate(t, s, withCustomers(NewIncident("inc-a", "key-a"), incident.Customer{ID: "cust-1", Name: "A's"}))
	rb := mustCreate(t, s, withCustomers(NewIncident("inc-b", "key-b"), incident.Customer{ID: "cust-1", Name: "B's"}))
	mustApply(t, s, ra, withCustomers(ra.next(), incident.Customer{ID: "cust-1", Name: "A's, again"}))
	assertStored(t, s, ra, "a customer's key is the incident's own")
	assertStored(t, s, rb, "writing a customer of one incident must not change another's with the same recipient ID")
}

func customersPages(t *testing.T, s incident.Store) {
	const n = 130
	cs := make([]incident.Customer, n)
	for i := range cs {
		cs[i] = incident.Customer{ID: fmt.Sprintf("cust-%03d", i), Name: fmt.Sprintf("Customer %d", i)}
		if i%3 == 0 {
			cs[i] = incident.Customer{Email: fmt.Sprintf("c%03d@example.com", i)} // keyed by Email
		}
	}
	r := mustCreate(t, s, withCustomers(NewIncident("inc-1", "key-1"), cs[:70]...))
	mustApply(t, s, r, withCustomers(r.next(), cs[70:]...))
	want := recipientIDs(r.customers)
	for _, limit := range []int{7, 10, incident.MaxPageSize} {
		got := allCustomers(t, s, "inc-1", limit)
		assert.Equal(t, want, recipientIDs(got), "paging by %d must return every customer exactly once, in the order written", limit)
	}
	page := mustCustomers(t, s, "inc-1", "", 0)
	assert.Len(t, page, incident.DefaultPageSize, "limit 0 means DefaultPageSize")
	rest := mustCustomers(t, s, "inc-1", incident.RecipientID(page[len(page)-1]), 0)
	assert.Equal(t, want[incident.DefaultPageSize:], recipientIDs(rest), "the page after the default page")
	assert.Empty(t, mustCustomers(t, s, "inc-1", want[n-1], 0), "the page after the last customer")
	assert.Equal(t, r.customers, allCustomers(t, s, "inc-1", incident.MaxPageSize), "the customers whole")
}

func customersUnknownAfter(t *testing.T, s incident.Store) {
	mustCreate(t, s, withCustomers(NewIncident("inc-1", "key-1"), incident.Customer{ID: "cust-1"}, incident.Customer{ID: "cust-2"}))
	mustCreate(t, s, withCustomers(NewIncident("inc-2", "key-2"), incident.Customer{ID: "cust-other"}))
	for _, after := range []string{"cust-missing", "cust-other", "cust-"} {
		page, err := s.Customers(t.Context(), "inc-1", after, 0)
		assert.NoError(t, err, "Customers after %q, no customer's recipient ID", after)
		assert.Empty(t, page, "Customers after %q, no customer's recipient ID, must be an empty page", after)
	}
}

func customersInvalidLimit(t *testing.T, s incident.Store) {
	mustCreate(t, s, withCustomers(NewIncident("inc-1", "key-1"), incident.Customer{ID: "cust-1"}))
	for _, limit := range []int{-1, incident.MaxPageSize + 1} {
		page, err := s.Customers(t.Context(), "inc-1", "", limit)
		if assertFilterError(t, err, fmt.Sprintf("Customers with limit %d", limit)) {
			assert.Empty(t, page)
		}
	}
	assert.Len(t, mustCustomers(t, s, "inc-1", "", incident.MaxPageSize), 1, "limit MaxPageSize is valid")
}

func customersNotFound(t *testing.T, s incident.Store) {
	_, err := s.Customers(t.Context(), "inc-missing", "", 0)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Customers of an unknown incident must fail with ErrNotFound")
}

// ---- Large ----

// The size of the large incident: deliveries and customers written
// largeBatch at a time, with largeEntries entries each time.
const (
	largeParts   = 5000
	largeBatch   = 500
	largeEntries = 40
)

// largeBatchOf adds to h batch i of the large incident: largeEntries
// entries and largeBatch deliveries and customers, the same keys whatever
// round; round 0 writes them first, a later round writes them again with
// other content.
func largeBatchOf(h *incident.Incident, i, round int) *incident.Incident {
	for j := range largeEntries {
		h.Record(incident.Entry{At: t0.Add(time.Duration(h.Chain.Len) * time.Millisecond), Actor: incident.ActorSystem,
			Type: incident.EntryDelivery, Detail: fmt.Sprintf("batch %d, round %d, entry %d", i, round, j)})
	}
	cs := make([]incident.Customer, largeBatch)
	for j := range largeBatch {
		k := i*largeBatch + j
		id := fmt.Sprintf("cust-%05d", k)
		h.Deliveries = append(h.Deliveries, incident.Delivery{Recipient: id, Channel: "email",
			IdempotencyKey: fmt.Sprintf("del-%05d", k), Status: everyStatus[(k+round)%len(everyStatus)], Attempts: 1 + round, ClaimedAt: t0})
		cs[j] = incident.Customer{ID: id, Name: fmt.Sprintf("Customer %d, round %d", k, round), Email: fmt.Sprintf("c%05d@example.com", k)}
	}
	if round == 0 {
		h.Outreach.Count(incident.DeliveryClaimed, largeBatch)
		return withCustomers(h, cs...)
	}
	withCustomers(h, cs...).Investigation.Impact.Affected -= largeBatch // written again: no more customers
	return h
}

// timedApply applies ch, records it in r and returns how long the Apply
// took. It collects garbage first, so that a collection the suite's own
// allocations owe does not land in the measure of an in-memory store.
func timedApply(t *testing.T, s incident.Store, r *record, ch incident.Change) time.Duration {
	t.Helper()
	runtime.GC()
	start := time.Now()
	err := s.Apply(t.Context(), ch)
	took := time.Since(start)
	require.NoError(t, err, "Apply to %s (Version %d)", r.id(), ch.Head.Version)
	r.apply(ch)
	return took
}

// buildLarge stores the large incident id, batch by batch, and returns its
// record and how long each batch's Apply took.
func buildLarge(t *testing.T, s incident.Store, id string) (*record, []time.Duration) {
	t.Helper()
	r := mustCreate(t, s, NewIncident(id, "key-"+id))
	var took []time.Duration
	for i := range largeParts / largeBatch {
		took = append(took, timedApply(t, s, r, incident.Split(largeBatchOf(r.next(), i, 0))))
	}
	return r, took
}

func largeLoad(t *testing.T, s incident.Store) {
	r, _ := buildLarge(t, s, "inc-large")
	head := mustHead(t, s, "inc-large")
	assert.Equal(t, 1+largeParts/largeBatch*largeEntries, head.Chain.Len, "Head's Chain counts every entry")
	assert.Empty(t, head.Deliveries, "Head of a large incident holds no deliveries")
	assert.Equal(t, largeParts, head.Investigation.Impact.Affected)
	got := mustLoad(t, s, "inc-large")
	assert.Len(t, got.Timeline, head.Chain.Len, "Load must return every entry")
	assert.Len(t, got.Deliveries, largeParts, "Load must return every delivery")
	assert.Len(t, got.Investigation.Impact.Customers, largeParts, "Load must return every customer")
	assertSame(t, r.whole(), got, "Load must return the large incident whole, each part in the order written")
	assert.NoError(t, got.Timeline.VerifyHead(head.Chain.Head))

	// And a batch written again: the same keys, in the same places.
	mustApply(t, s, r, largeBatchOf(r.next(), 3, 1))
	assertStored(t, s, r, "after a batch of a large incident written again")
}

// largeApplyCost checks that an Apply's cost does not grow with the
// incident. The same changes are applied alternately to a smaller
// incident and to the large one (10,000 deliveries and customers): a batch
// written again, against an incident of that one batch (1,000), and a
// single entry, delivery and customer, against an incident of none. The
// fastest of several tries on the large incident must be within a factor
// of 20 (the batch) or 10 (the single change), and a little slack, of the
// fastest on the other. The tries alternate, so that a loaded machine
// slows both sides, though not always alike (see the single change).
func largeApplyCost(t *testing.T, s incident.Store) {
	if testing.Short() {
		t.Skip("timing: not with -short")
	}
	const factor, smallFactor = 20, 10
	large, took := buildLarge(t, s, "inc-large")
	t.Logf("batches of %d deliveries and customers written to an incident that held none: %s; that held %d: %s",
		largeBatch, took[0], largeParts-largeBatch, took[len(took)-1])
	batch := mustCreate(t, s, NewIncident("inc-batch", "key-batch"))
	timedApply(t, s, batch, incident.Split(largeBatchOf(batch.next(), 0, 0)))
	small := mustCreate(t, s, NewIncident("inc-small", "key-small"))

	fastest := func(small *record, tries int, change func(r *record, try int) incident.Change) (onSmall, onLarge time.Duration) {
		onSmall, onLarge = time.Duration(1<<62), time.Duration(1<<62)
		for try := range tries {
			onSmall = min(onSmall, timedApply(t, s, small, change(small, try)))
			onLarge = min(onLarge, timedApply(t, s, large, change(large, try)))
		}
		return onSmall, onLarge
	}

	onSmall, onLarge := fastest(batch, 5, func(r *record, try int) incident.Change {
		return incident.Split(largeBatchOf(r.next(), 0, 1+try))
	})
	assert.LessOrEqual(t, onLarge, factor*onSmall+time.Millisecond,
		"a batch of %d deliveries and customers written again took %s on an incident of %d, %s on one of %d: a change must cost what it holds, not what the incident holds",
		largeBatch, onLarge, 2*largeParts, onSmall, 2*largeBatch)
	t.Logf("a batch written again: %s on the small incident, %s on the large one", onSmall, onLarge)

	onSmall, onLarge = fastest(small, 9, func(r *record, try int) incident.Change {
		h := r.next()
		h.Signals.Count++
		h.Record(note(fmt.Sprintf("probe %d", try)))
		h.Deliveries = []incident.Delivery{delivery(fmt.Sprintf("probe-%d", try), "cust-probe")}
		return incident.Split(withCustomers(h, incident.Customer{ID: fmt.Sprintf("probe-%d", try)}))
	})
	// A store whose change costs what it holds takes about as long on
	// both (MemStore: 4 µs and 4 µs); one that rewrites the incident 60
	// times as long on the large one, and, on a loaded machine, where the
	// small try slows more than the large, 28 times: under the factor of
	// 20 with 200 µs of slack, it passed in 3 of 40 runs beside a storm
	// benchmark. A tenth and 100 µs caught it in all.
	assert.LessOrEqual(t, onLarge, smallFactor*onSmall+100*time.Microsecond,
		"one entry, delivery and customer took %s on an incident of %d deliveries and customers, %s on one of none: a change must cost what it holds, not what the incident holds",
		onLarge, 2*largeParts, onSmall)
	t.Logf("a small change: %s on the small incident, %s on the large one", onSmall, onLarge)
}
