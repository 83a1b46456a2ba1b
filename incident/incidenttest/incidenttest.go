// Package incidenttest checks that an incident.Store keeps its contract, as
// testing/fstest does for an fs.FS: a host that stores incidents in its own
// database runs TestStore from a test of its own.
//
//	func TestPostgresStore(t *testing.T) {
//		incidenttest.TestStore(t, func(t *testing.T) incident.Store {
//			db := newTestDatabase(t) // empty; dropped in t.Cleanup
//			return pgstore.New(db)
//		})
//	}
//
// The package also has helpers for a host's own store tests: NewIncident,
// FullIncident, Normalize and SortByDetected.
package incidenttest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestStore runs the conformance suite for incident.Store: each check is a
// subtest (t.Run) on a store of its own from newStore, so a failure names
// the rule broken, for example "TestStore/Apply/StaleVersion".
//
// newStore must return an empty store, and is called once per subtest; it
// may register clean-up with t.Cleanup. The subtests run one after another,
// never in parallel, so several stores may share one database server as
// long as each starts empty.
//
// The suite checks the whole contract written on incident.Store, writing
// incidents as incident.Change values (built with incident.Split and
// Incident.Record) and reading them back with Head, the part reads and
// incident.Load:
//
//   - versions and compare-and-swap: Create sets Version 1, each Apply adds
//     one, an Apply from a stale or future Version fails with ErrConflict,
//     and of concurrent Applys from one Version exactly one succeeds;
//   - one open incident per dedup key (ErrDuplicate, on Create, reopen and
//     a changed key), FindOpen, and the order of ListOpen;
//   - ErrNotFound for unknown incidents, and ErrInvalidIncident for a head
//     that is not storable, that carries parts (Timeline, Deliveries,
//     customers), whose Chain the entries do not continue from the stored
//     one, or for a delivery or customer without a key;
//   - atomicity: a Change refused for any reason (conflict, invalid,
//     duplicate, cancelled context) writes none of its parts, and leaves
//     the head, entries, deliveries and customers as they were;
//   - the parts: entries appended in order and paged by Entries exactly
//     once with their hashes intact; deliveries written by IdempotencyKey
//     (a second write replaces the first and keeps its position), selected
//     by Keys, Status, After and Limit; customers written by recipient ID
//     and paged the same way; the limits of a page (ErrInvalidFilter, as a
//     *FilterError, for a negative or too large limit or a negative
//     position) and the empty page after an unknown key;
//   - a large incident (5,000 deliveries and 5,000 customers written 500 at
//     a time, several hundred entries) reads back whole, and an Apply costs
//     about the same on it as on a small one (not checked with -short);
//   - that incidents are copied in and out, never aliased, but for a
//     frozen head (incident.Change.Frozen), which the store may keep but
//     changes nothing of except its Version, neither when it refuses the
//     change nor through the writes after it;
//   - that every field survives a round trip with the timeline still
//     verifying, that concurrent Creates and Applys are safe and readers
//     never see half a change, and that each method returns ctx's error for
//     a cancelled context without acting.
//
// When the store also implements incident.Leaser, the Lease group checks
// that contract too: one owner at a time per incident, renewal by Lease
// and by Renew (which extends only the owner's live leases and names
// them; a lease that ran out is not renewed), Unlease by the owner only,
// leases on incidents not stored, expiry, Orphans (open incidents without
// a live lease, oldest first, at most limit, ended incidents left out),
// the Apply that ends an incident giving up its leases, and concurrent
// takers. Expiry is checked with TTLs of 50ms, waited for
// in real time (polling the store, at most a few seconds). Stores that do
// not implement it skip the group.
//
// When the store implements incident.Lister, the List group checks the
// register: every incident, open or ended, newest first with ties by ID;
// the filters by state, kind, account and detection range (from
// inclusive, to exclusive); paging 120 incidents 7 at a time visits each
// exactly once, in order, also while incidents are created between pages;
// Limit's default and cap; ErrInvalidFilter for a negative Limit, a range
// that ends before it starts and a malformed cursor; copies; and ctx.
// Stores that do not implement it skip the group.
//
// Compared incidents go through Normalize first: a store may drop time
// zones and monotonic clock readings and return nil for an empty slice or
// map, but must keep times to the microsecond. A *DuplicateError or
// *ConflictError is optional; when a store returns one, its fields are
// checked.
func TestStore(t *testing.T, newStore func(t *testing.T) incident.Store) {
	t.Helper()
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.checks {
				t.Run(c.name, func(t *testing.T) {
					s := newStore(t)
					require.NotNil(t, s, "newStore returned nil")
					open, err := s.ListOpen(t.Context())
					require.NoError(t, err, "ListOpen on the store from newStore")
					require.Empty(t, open, "newStore must return an empty store")
					c.fn(t, s)
				})
			}
		})
	}
}

type check struct {
	name string
	fn   func(t *testing.T, s incident.Store)
}

var groups = []struct {
	name   string
	checks []check
}{
	{"Create", []check{
		{"SetsVersion", createSetsVersion},
		{"ExistingID", createExistingID},
		{"Invalid", createInvalid},
		{"DuplicateOpenKey", createDuplicateOpenKey},
		{"ClosedKeyReusable", createClosedKeyReusable},
		{"ClosedDoesNotHoldKey", createClosedDoesNotHoldKey},
		{"WithParts", createWithParts},
	}},
	{"Apply", []check{
		{"BumpsVersion", applyBumpsVersion},
		{"StaleVersion", applyStaleVersion},
		{"FutureVersion", applyFutureVersion},
		{"NotFound", applyNotFound},
		{"Invalid", applyInvalid},
		{"AppendsEntries", applyAppendsEntries},
		{"CloseFreesKey", applyCloseFreesKey},
		{"Reopen", applyReopen},
		{"ReopenDuplicate", applyReopenDuplicate},
		{"MoveDedupKey", applyMoveDedupKey},
	}},
	{"Chain", chainChecks},
	{"Atomic", atomicChecks},
	{"Head", []check{
		{"NotFound", headNotFound},
		{"NoParts", headNoParts},
	}},
	{"FindOpen", []check{
		{"Found", findOpenFound},
		{"NotFound", findOpenNotFound},
	}},
	{"ListOpen", []check{
		{"OnlyOpen", listOpenOnlyOpen},
		{"Order", listOpenOrder},
	}},
	{"Entries", entriesChecks},
	{"Deliveries", deliveriesChecks},
	{"Customers", customersChecks},
	{"Large", largeChecks},
	{"Copies", []check{
		{"Create", copiesCreate},
		{"Apply", copiesApply},
		{"Head", copiesHead},
		{"FindOpen", copiesFindOpen},
		{"ListOpen", copiesListOpen},
		{"Entries", copiesEntries},
		{"Deliveries", copiesDeliveries},
		{"Customers", copiesCustomers},
	}},
	{"Frozen", []check{
		{"Create", frozenCreate},
		{"Apply", frozenApply},
		{"Refused", frozenRefused},
		{"KeptAfterLaterWrites", frozenKept},
	}},
	{"RoundTrip", []check{
		{"FullIncident", roundTripFull},
		{"MicrosecondPrecision", roundTripPrecision},
	}},
	{"Concurrency", []check{
		{"CreateSameKey", concurrentCreateSameKey},
		{"ApplyFromOneVersion", concurrentApplyFromOneVersion},
		{"ApplyRetry", concurrentApplyRetry},
	}},
	{"Context", []check{
		{"Create", ctxCreate},
		{"Head", ctxHead},
		{"Apply", ctxApply},
		{"FindOpen", ctxFindOpen},
		{"ListOpen", ctxListOpen},
		{"Entries", ctxEntries},
		{"Deliveries", ctxDeliveries},
		{"Customers", ctxCustomers},
	}},
	// Stores that implement incident.Leaser; the others skip these.
	{"Lease", leaseChecks},
	// Stores that implement incident.Lister; the others skip these.
	{"List", listChecks},
}

// ---- helpers ----

// setState applies a change of r's state to state, with its transition
// entry.
func setState(t *testing.T, s incident.Store, r *record, state incident.State) {
	t.Helper()
	h := r.next()
	h.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryTransition, From: h.State, To: state})
	h.State = state
	mustApply(t, s, r, h)
}

func assertSame(t *testing.T, want, got *incident.Incident, msgAndArgs ...any) bool {
	t.Helper()
	return assert.Equal(t, Normalize(want), Normalize(got), msgAndArgs...)
}

func assertNotFound(t *testing.T, inc *incident.Incident, err error, what string) {
	t.Helper()
	if assert.ErrorIs(t, err, incident.ErrNotFound, "%s must fail with ErrNotFound", what) {
		assert.Nil(t, inc, "%s returned an incident with ErrNotFound", what)
	}
}

// assertAbsent checks that nothing is stored under id: Head and every part
// read fail with ErrNotFound.
func assertAbsent(t *testing.T, s incident.Store, id, what string) {
	t.Helper()
	ctx := t.Context()
	got, err := s.Head(ctx, id)
	assertNotFound(t, got, err, fmt.Sprintf("Head %s %s", id, what))
	_, err = s.Entries(ctx, id, 0, 0)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Entries %s %s", id, what)
	_, err = s.Deliveries(ctx, id, incident.DeliveryQuery{})
	assert.ErrorIs(t, err, incident.ErrNotFound, "Deliveries %s %s", id, what)
	_, err = s.Customers(ctx, id, "", 0)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Customers %s %s", id, what)
}

// assertOpenIs checks that FindOpen(key) returns the incident id.
func assertOpenIs(t *testing.T, s incident.Store, key, id string) {
	t.Helper()
	got, err := s.FindOpen(t.Context(), key)
	if assert.NoError(t, err, "FindOpen %q", key) && assert.NotNil(t, got, "FindOpen %q", key) {
		assert.Equal(t, id, got.ID, "FindOpen %q returned the wrong incident", key)
	}
}

func assertNoOpen(t *testing.T, s incident.Store, key string) {
	t.Helper()
	got, err := s.FindOpen(t.Context(), key)
	assertNotFound(t, got, err, fmt.Sprintf("FindOpen %q with no open incident", key))
}

func assertDuplicateOf(t *testing.T, err error, key, existingID, what string) {
	t.Helper()
	if !assert.ErrorIs(t, err, incident.ErrDuplicate, "%s must fail with ErrDuplicate", what) {
		return
	}
	var dup *incident.DuplicateError
	if errors.As(err, &dup) {
		assert.Equal(t, existingID, dup.ExistingID, "%s: DuplicateError.ExistingID", what)
		assert.Equal(t, key, dup.DedupKey, "%s: DuplicateError.DedupKey", what)
	}
}

func ids(incs []*incident.Incident) []string {
	out := make([]string, len(incs))
	for i, inc := range incs {
		if inc != nil {
			out[i] = inc.ID
		}
	}
	return out
}

func allStates() []incident.State { return incident.Standard().States() }

// mutate changes every part of inc that a shallow copy would share, and a
// few plain fields, so that a store keeping an alias shows the change. It
// skips what is missing: a store that lost a part fails elsewhere, and the
// suite must not panic on it.
func mutate(inc *incident.Incident) {
	inc.Summary = "mutated"
	inc.State = incident.StateEscalated
	inc.DetectedAt = inc.DetectedAt.Add(time.Hour)
	inc.Outreach.Sent++
	inc.Outreach.Cursor = "mutated"
	inc.Chain.Len++
	if inc.Attributes != nil {
		inc.Attributes["region"] = "mutated"
		inc.Attributes["added"] = "mutated"
	}
	if len(inc.Signals.Samples) > 0 {
		inc.Signals.Samples[0].Summary = "mutated"
	}
	if inv := inc.Investigation; inv != nil {
		inv.RootCause = "mutated"
		inv.Impact.Affected++
		if len(inv.Notes) > 0 {
			inv.Notes[0] = "mutated"
		}
		if len(inv.Impact.Customers) > 0 {
			inv.Impact.Customers[0].Email = "mutated@example.com"
		}
		if len(inv.Impact.Data) > 0 {
			inv.Impact.Data[0] = "mutated"
		}
	}
	if d := inc.Decision; d != nil {
		d.Reason = "mutated"
		d.Notify = !d.Notify
	}
	if len(inc.Actions) > 0 {
		inc.Actions[0].Status = incident.ActionReleased
	}
	for i := range inc.Actions {
		if a := inc.Actions[i].Approval; a != nil {
			a.By = "mutated"
			a.Approved = !a.Approved
		}
	}
	if len(inc.Deadlines) > 0 {
		inc.Deadlines[0].Status = incident.DeadlineMissed
		inc.Deadlines[0].LateReason = "mutated"
	}
	if inc.Milestones != nil {
		for m, at := range inc.Milestones {
			inc.Milestones[m] = at.Add(time.Hour)
		}
		inc.Milestones["mutated"] = inc.DetectedAt
	}
	if len(inc.Deliveries) > 0 {
		inc.Deliveries[0].Status = incident.DeliveryFailed
	}
	if len(inc.Tasks) > 0 {
		inc.Tasks[0].Done = !inc.Tasks[0].Done
	}
	if len(inc.Recommendations) > 0 {
		inc.Recommendations[0] = "mutated"
	}
	if inc.Escalation != nil {
		inc.Escalation.Reason = "mutated"
	}
	if inc.Dismissal != nil {
		inc.Dismissal.By = "mutated"
	}
	if len(inc.Timeline) > 0 {
		inc.Timeline[0].Detail = "mutated"
	}
	inc.Timeline.Append(incident.Entry{At: inc.DetectedAt, Actor: "mutator", Type: incident.EntryNote})
}

// mutateParts changes the first element of each part of ch.
func mutateParts(ch incident.Change) {
	if len(ch.Entries) > 0 {
		ch.Entries[0].Detail = "mutated"
		ch.Entries[0].Hash[0]++
	}
	if len(ch.Deliveries) > 0 {
		ch.Deliveries[0].Status = incident.DeliveryFailed
		ch.Deliveries[0].Attempts++
	}
	if len(ch.Customers) > 0 {
		ch.Customers[0].Name = "mutated"
	}
}

// ---- Create ----

func createSetsVersion(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Version = 42 // whatever the caller holds, a new incident starts at 1
	ch := incident.Split(inc)
	require.NoError(t, s.Create(t.Context(), ch))
	assert.EqualValues(t, 1, ch.Head.Version, "Create must set Version 1 on the change's head")

	got := mustHead(t, s, "inc-1")
	assert.EqualValues(t, 1, got.Version, "a created incident must be stored with Version 1")
	assertStored(t, s, newRecord(ch), "after Create")
}

func createExistingID(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateDetected, incident.StateClosed} {
		first := NewIncident("inc-"+string(state), "key-first-"+string(state))
		first.State = state
		r := mustCreate(t, s, first)

		again := NewIncident(first.ID, "key-again-"+string(state))
		err := s.Create(t.Context(), incident.Split(again))
		assert.ErrorIs(t, err, incident.ErrInvalidIncident,
			"Create with the ID of an existing %s incident must fail with ErrInvalidIncident", state)
		assertStored(t, s, r, "a failed Create must leave the existing incident alone")
		assertNoOpen(t, s, again.DedupKey)
	}
}

func createInvalid(t *testing.T, s incident.Store) {
	for _, tc := range []struct {
		name  string
		build func(*incident.Incident) incident.Change
	}{
		{"no head", func(*incident.Incident) incident.Change { return incident.Change{} }},
		{"empty ID", func(inc *incident.Incident) incident.Change { inc.ID = ""; return incident.Split(inc) }},
		{"empty DedupKey", func(inc *incident.Incident) incident.Change { inc.DedupKey = ""; return incident.Split(inc) }},
		{"empty State", func(inc *incident.Incident) incident.Change { inc.State = ""; return incident.Split(inc) }},
		{"delivery without idempotency key", func(inc *incident.Incident) incident.Change {
			inc.Deliveries = []incident.Delivery{delivery("del-1", "cust-1"), delivery("", "cust-2")}
			return incident.Split(inc)
		}},
		{"customer with neither ID nor Email", func(inc *incident.Incident) incident.Change {
			return incident.Split(withCustomers(inc, incident.Customer{ID: "cust-1"}, incident.Customer{Name: "nobody"}))
		}},
	} {
		err := s.Create(t.Context(), tc.build(NewIncident("inc-invalid", "key-invalid")))
		assert.ErrorIs(t, err, incident.ErrInvalidIncident, "Create with %s must fail with ErrInvalidIncident", tc.name)
	}
	assertAbsent(t, s, "inc-invalid", "after invalid Creates")
	open, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Empty(t, ids(open), "an invalid incident must not be stored")
}

func createDuplicateOpenKey(t *testing.T, s incident.Store) {
	for _, state := range allStates() {
		if !state.Open() {
			continue
		}
		key := "key-" + string(state)
		first := NewIncident("inc-first-"+string(state), key)
		first.State = state
		mustCreate(t, s, first)

		second := NewIncident("inc-second-"+string(state), key)
		err := s.Create(t.Context(), incident.Split(second))
		assertDuplicateOf(t, err, key, first.ID, fmt.Sprintf("Create while a %s incident holds the dedup key", state))

		got, err := s.Head(t.Context(), second.ID)
		assertNotFound(t, got, err, "Head of an incident whose Create failed with ErrDuplicate")
		assertOpenIs(t, s, key, first.ID)
	}
}

func createClosedKeyReusable(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateClosed, incident.StateDismissed, incident.StateMerged} {
		key := "key-" + string(state)
		old := mustCreate(t, s, NewIncident("inc-old-"+string(state), key))
		setState(t, s, old, state)

		next := NewIncident("inc-new-"+string(state), key)
		assert.NoError(t, s.Create(t.Context(), incident.Split(next)),
			"the dedup key of a %s incident must be free for a new incident", state)
		assertOpenIs(t, s, key, next.ID)
		assert.Equal(t, state, mustHead(t, s, old.id()).State, "the %s incident must be kept", state)
	}
}

func createClosedDoesNotHoldKey(t *testing.T, s incident.Store) {
	closed := NewIncident("inc-closed", "key-1")
	closed.State = incident.StateClosed
	mustCreate(t, s, closed)
	assertNoOpen(t, s, "key-1")

	open := NewIncident("inc-open", "key-1")
	assert.NoError(t, s.Create(t.Context(), incident.Split(open)), "an incident created closed must not hold its dedup key")
	assertOpenIs(t, s, "key-1", "inc-open")
}

func createWithParts(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Record(note("second"))
	inc.Record(note("third"))
	inc.Deliveries = []incident.Delivery{delivery("del-b", "cust-1"), delivery("del-a", "cust-2")}
	withCustomers(inc, incident.Customer{ID: "cust-2", Name: "Bea"}, incident.Customer{Email: "cy@example.com"})
	r := mustCreate(t, s, inc)
	assertStored(t, s, r, "Create must store the change's entries, deliveries and customers")
	assert.Equal(t, 3, mustHead(t, s, "inc-1").Chain.Len, "Head's Chain counts the entries created")
}

// ---- Apply ----

func applyBumpsVersion(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	for v := int64(2); v <= 4; v++ {
		h := r.next()
		h.Summary = fmt.Sprintf("summary %d", v)
		ch := incident.Split(h)
		require.NoError(t, s.Apply(t.Context(), ch), "Apply %d", v)
		assert.Equal(t, v, ch.Head.Version, "Apply must set the new Version on the change's head")
		r.apply(ch)
		assert.Equal(t, v, mustHead(t, s, "inc-1").Version, "stored Version after Apply")
		assertStored(t, s, r, "after Apply %d", v)
	}
}

func applyStaleVersion(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	winner, loser := r.next(), r.next()

	winner.Summary = "winner"
	winner.Record(note("winner"))
	mustApply(t, s, r, winner)

	loser.Summary = "loser"
	loser.Signals.Count = 99
	loser.Record(note("loser"))
	loser.Deliveries = []incident.Delivery{delivery("del-loser", "cust-1")}
	withCustomers(loser, incident.Customer{ID: "cust-loser"})
	ch := incident.Split(loser)
	err := s.Apply(t.Context(), ch)
	if assert.ErrorIs(t, err, incident.ErrConflict, "Apply with a stale Version must fail with ErrConflict") {
		var ce *incident.ConflictError
		if errors.As(err, &ce) {
			assert.Equal(t, "inc-1", ce.ID, "ConflictError.ID")
			assert.EqualValues(t, 1, ce.Expected, "ConflictError.Expected")
			assert.EqualValues(t, 2, ce.Actual, "ConflictError.Actual")
		}
	}
	assert.EqualValues(t, 1, ch.Head.Version, "a failed Apply must leave the change's Version alone")
	assert.EqualValues(t, 2, mustHead(t, s, "inc-1").Version, "a failed Apply must not change the stored Version")
	assertStored(t, s, r, "a failed Apply must keep the winner's record, and write none of the loser's parts")

	// The loser re-reads and applies its change again.
	retry := r.next()
	retry.Summary = "loser"
	retry.Record(note("loser"))
	ch = mustApply(t, s, r, retry)
	assert.EqualValues(t, 3, ch.Head.Version)
	assertStored(t, s, r, "after the retry")
}

func applyFutureVersion(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	h := r.next()
	h.Version = 5
	h.Summary = "from the future"
	h.Record(note("from the future"))
	err := s.Apply(t.Context(), incident.Split(h))
	assert.ErrorIs(t, err, incident.ErrConflict, "Apply with a Version ahead of the store must fail with ErrConflict")
	assertStored(t, s, r, "a failed Apply must change nothing")
}

func applyNotFound(t *testing.T, s incident.Store) {
	ch := incident.Split(NewIncident("inc-missing", "key-missing"))
	ch.Head.Version = 1
	err := s.Apply(t.Context(), ch)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Apply to an unknown ID must fail with ErrNotFound")
	assertAbsent(t, s, "inc-missing", "after an Apply to an unknown ID")
	assertNoOpen(t, s, "key-missing")
}

func applyInvalid(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	for _, tc := range []struct {
		name  string
		build func(h *incident.Incident) incident.Change
	}{
		{"no head", func(*incident.Incident) incident.Change { return incident.Change{} }},
		{"empty DedupKey", func(h *incident.Incident) incident.Change { h.DedupKey = ""; return incident.Split(h) }},
		{"empty State", func(h *incident.Incident) incident.Change { h.State = ""; return incident.Split(h) }},
		{"delivery without idempotency key", func(h *incident.Incident) incident.Change {
			h.Deliveries = []incident.Delivery{delivery("del-1", "cust-1"), delivery("", "cust-2")}
			return incident.Split(h)
		}},
		{"customer with neither ID nor Email", func(h *incident.Incident) incident.Change {
			return incident.Split(withCustomers(h, incident.Customer{ID: "cust-1"}, incident.Customer{Name: "nobody"}))
		}},
	} {
		h := r.next()
		h.Summary = "invalid"
		h.Record(note("invalid"))
		err := s.Apply(t.Context(), tc.build(h))
		assert.ErrorIs(t, err, incident.ErrInvalidIncident, "Apply with %s must fail with ErrInvalidIncident", tc.name)
		assertStored(t, s, r, "an invalid Apply (%s) must change nothing", tc.name)
	}
	assertOpenIs(t, s, "key-1", "inc-1")
}

func applyAppendsEntries(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	for i := range 3 {
		h := r.next()
		h.Record(note(fmt.Sprintf("apply %d, first", i)))
		h.Record(note(fmt.Sprintf("apply %d, second", i)))
		mustApply(t, s, r, h)
	}
	h := r.next()
	h.Summary = "a change of the head alone"
	mustApply(t, s, r, h)
	head := mustHead(t, s, "inc-1")
	assert.Equal(t, incident.Chain{Len: 7, Head: r.entries.Head()}, head.Chain, "Head's Chain after the Applys")
	assertStored(t, s, r, "entries of successive Applys follow one another in order")
}

func applyCloseFreesKey(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateClosed, incident.StateDismissed, incident.StateMerged} {
		key := "key-" + string(state)
		r := mustCreate(t, s, NewIncident("inc-"+string(state), key))
		setState(t, s, r, state)
		assertNoOpen(t, s, key)
		assert.Equal(t, state, mustHead(t, s, r.id()).State, "a %s incident must still be readable with Head", state)
	}
	open, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Empty(t, ids(open), "ListOpen must leave out closed, dismissed and merged incidents")
}

func applyReopen(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	setState(t, s, r, incident.StateClosed)
	setState(t, s, r, incident.StateInvestigating)
	assert.EqualValues(t, 3, r.head.Version)
	assertOpenIs(t, s, "key-1", "inc-1")
	assertStored(t, s, r, "after closing and reopening")
}

func applyReopenDuplicate(t *testing.T, s incident.Store) {
	old := mustCreate(t, s, NewIncident("inc-old", "key-1"))
	setState(t, s, old, incident.StateClosed)
	mustCreate(t, s, NewIncident("inc-new", "key-1"))

	reopen := old.next()
	reopen.State = incident.StateInvestigating
	reopen.Record(note("reopened"))
	err := s.Apply(t.Context(), incident.Split(reopen))
	assertDuplicateOf(t, err, "key-1", "inc-new", "reopening while another open incident holds the dedup key")

	assertStored(t, s, old, "a refused reopen must change nothing")
	assertOpenIs(t, s, "key-1", "inc-new")
}

func applyMoveDedupKey(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	h := r.next()
	h.DedupKey = "key-2"
	mustApply(t, s, r, h)
	assertNoOpen(t, s, "key-1")
	assertOpenIs(t, s, "key-2", "inc-1")
	mustCreate(t, s, NewIncident("inc-2", "key-1")) // key-1 is free again

	// Moving onto a key another open incident holds would leave two open
	// incidents with one dedup key.
	h = r.next()
	h.DedupKey = "key-1"
	err := s.Apply(t.Context(), incident.Split(h))
	assertDuplicateOf(t, err, "key-1", "inc-2", "Apply onto a dedup key another open incident holds")
	assertOpenIs(t, s, "key-1", "inc-2")
	assertOpenIs(t, s, "key-2", "inc-1")
	assertStored(t, s, r, "a refused move of the dedup key must change nothing")
}

// ---- Head, FindOpen, ListOpen ----

func headNotFound(t *testing.T, s incident.Store) {
	got, err := s.Head(t.Context(), "inc-missing")
	assertNotFound(t, got, err, "Head of an unknown ID")
}

func headNoParts(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	head := mustHead(t, s, "inc-1")
	assert.Empty(t, head.Timeline, "Head must return no Timeline")
	assert.Empty(t, head.Deliveries, "Head must return no Deliveries")
	if assert.NotNil(t, head.Investigation, "Head must return the Investigation") {
		assert.Empty(t, head.Investigation.Impact.Customers, "Head must return no customers")
		assert.Equal(t, 2, head.Investigation.Impact.Affected, "Head keeps Impact.Affected")
	}
	assert.Equal(t, r.head.Chain, head.Chain, "Head keeps Chain")
	wantOut, gotOut := r.head.Outreach, head.Outreach
	assert.True(t, wantOut.ClaimedAt.Equal(gotOut.ClaimedAt), "Head keeps Outreach.ClaimedAt")
	wantOut.ClaimedAt, gotOut.ClaimedAt = time.Time{}, time.Time{}
	assert.Equal(t, wantOut, gotOut, "Head keeps Outreach")
	assertSame(t, r.head, head, "Head must return every field of the head as stored")
}

func findOpenFound(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	mustCreate(t, s, NewIncident("inc-2", "key-2"))
	got, err := s.FindOpen(t.Context(), "key-1")
	require.NoError(t, err, "FindOpen of an open incident's key")
	assertSame(t, r.head, got, "FindOpen must return the head")
}

func findOpenNotFound(t *testing.T, s incident.Store) {
	assertNoOpen(t, s, "key-missing")
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	assertNoOpen(t, s, "key-")
	assertNoOpen(t, s, "KEY-1")
}

func listOpenOnlyOpen(t *testing.T, s incident.Store) {
	var want []*incident.Incident
	for _, state := range allStates() {
		inc := NewIncident("inc-"+string(state), "key-"+string(state))
		inc.State = state
		r := mustCreate(t, s, inc)
		if state.Open() {
			want = append(want, r.head)
		}
	}
	SortByDetected(want) // equal DetectedAt: by ID
	got, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	if assert.Equal(t, ids(want), ids(got), "ListOpen must return exactly the open incidents") {
		for i := range want {
			assertSame(t, want[i], got[i], "ListOpen element %d", i)
		}
	}
}

func listOpenOrder(t *testing.T, s incident.Store) {
	elsewhere := time.FixedZone("UTC-5", -5*3600)
	for _, x := range []struct {
		id    string
		at    time.Time
		state incident.State
	}{
		{"inc-c", t0.Add(2 * time.Second), incident.StateDetected},
		{"inc-b", t0.Add(time.Second).In(elsewhere), incident.StateContaining}, // same instant as inc-a
		{"inc-z", t0.Add(-time.Hour), incident.StateClosed},
		{"inc-a", t0.Add(time.Second), incident.StateEscalated},
		{"inc-d", t0, incident.StateInvestigating},
		{"inc-e", t0.Add(time.Microsecond), incident.StateResolved},
	} {
		inc := NewIncident(x.id, "key-"+x.id)
		inc.DetectedAt, inc.State = x.at, x.state
		mustCreate(t, s, inc)
	}
	got, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"inc-d", "inc-e", "inc-a", "inc-b", "inc-c"}, ids(got),
		"ListOpen must order by DetectedAt (the instant, to the microsecond), then by ID")
}

// ---- Copies ----

func copiesCreate(t *testing.T, s incident.Store) {
	ch := incident.Split(FullIncident("inc-1", "key-1"))
	require.NoError(t, s.Create(t.Context(), ch))
	r := newRecord(ch)
	mutate(ch.Head)
	mutateParts(ch)
	assertStored(t, s, r, "changing the change passed to Create must not change the store: it must keep a copy")
}

func copiesApply(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	h := r.next()
	h.Summary = "updated"
	h.Record(note("updated"))
	h.Deliveries = []incident.Delivery{delivery("del-new", "cust_1")}
	withCustomers(h, incident.Customer{ID: "cust_3", Name: "Cy"})
	ch := mustApply(t, s, r, h)
	mutate(ch.Head)
	mutateParts(ch)
	assertStored(t, s, r, "changing the change passed to Apply must not change the store: it must keep a copy")
}

// frozenCreate: a store may keep a frozen head (incident.Change.Frozen)
// instead of a copy, but changes nothing of it except its Version: its
// caller keeps it too, as the version it wrote.
func frozenCreate(t *testing.T, s incident.Store) {
	ch := incident.Split(FullIncident("inc-1", "key-1"))
	ch.Frozen = true
	want := ch.Head.Clone()
	require.NoError(t, s.Create(t.Context(), ch))
	assert.EqualValues(t, 1, ch.Head.Version, "Create must set Version 1 on a frozen head")
	want.Version = 1
	assertSame(t, want, ch.Head, "Create must change nothing of a frozen head but its Version")
	assertStored(t, s, newRecord(ch), "a frozen Create stores the head as it was written")
}

// frozenApply: as frozenCreate, for Apply.
func frozenApply(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	for v := int64(2); v <= 3; v++ {
		h := r.next()
		h.Summary = fmt.Sprintf("summary %d", v)
		h.Record(note(h.Summary))
		ch := incident.Split(h)
		ch.Frozen = true
		want := ch.Head.Clone()
		require.NoError(t, s.Apply(t.Context(), ch), "Apply %d", v)
		assert.Equal(t, v, ch.Head.Version, "Apply must set the new Version on a frozen head")
		want.Version = v
		assertSame(t, want, ch.Head, "Apply must change nothing of a frozen head but its Version")
		r.apply(ch)
		assertStored(t, s, r, "after frozen Apply %d", v)
	}
}

// frozenKept: a frozen head the store kept stays as it was through the
// writes after it, frozen or not, which store versions of their own.
func frozenKept(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	var written, want []*incident.Incident
	for v := int64(2); v <= 5; v++ {
		h := r.next()
		h.Summary = fmt.Sprintf("summary %d", v)
		h.Milestones[incident.MilestoneResolved] = h.DetectedAt.Add(time.Duration(v) * time.Hour)
		h.Record(note(h.Summary))
		ch := incident.Split(h)
		ch.Frozen = v < 5 // the last write is not frozen
		require.NoError(t, s.Apply(t.Context(), ch), "Apply %d", v)
		r.apply(ch)
		if ch.Frozen {
			written, want = append(written, ch.Head), append(want, ch.Head.Clone())
		}
	}
	for i := range written {
		assertSame(t, want[i], written[i], "frozen version %d must be left as it was by the writes after it", want[i].Version)
	}
	assertStored(t, s, r, "after frozen and unfrozen writes")
}

// frozenRefused: a frozen change the store refuses leaves its head as it
// was, Version included, and writes nothing.
func frozenRefused(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	stale := r.next()
	mustApply(t, s, r, r.next())
	stale.Summary = "stale"
	stale.Record(note("stale"))
	ch := incident.Split(stale)
	ch.Frozen = true
	want := ch.Head.Clone()
	require.ErrorIs(t, s.Apply(t.Context(), ch), incident.ErrConflict, "Apply from a stale Version")
	assertSame(t, want, ch.Head, "a refused Apply must leave a frozen head as it was")
	assertStored(t, s, r, "a refused frozen Apply writes nothing")

	dup := incident.Split(FullIncident("inc-2", "key-1"))
	dup.Frozen = true
	want = dup.Head.Clone()
	require.ErrorIs(t, s.Create(t.Context(), dup), incident.ErrDuplicate, "Create of a second open incident for a key")
	assertSame(t, want, dup.Head, "a refused Create must leave a frozen head as it was")
}

func copiesHead(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	mutate(mustHead(t, s, "inc-1"))
	assertStored(t, s, r, "changing what Head returned must not change the store: Head must return a copy")
	assertOpenIs(t, s, "key-1", "inc-1")
}

func copiesFindOpen(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	got, err := s.FindOpen(t.Context(), "key-1")
	require.NoError(t, err)
	require.NotNil(t, got)
	mutate(got)
	assertStored(t, s, r, "changing what FindOpen returned must not change the store: FindOpen must return a copy")
}

func copiesListOpen(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	got, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.NotNil(t, got[0])
	mutate(got[0])
	assertStored(t, s, r, "changing what ListOpen returned must not change the store: ListOpen must return copies")
	got[0] = nil
	again, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"inc-1"}, ids(again))
}

func copiesEntries(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	page, err := s.Entries(t.Context(), "inc-1", 0, 0)
	require.NoError(t, err)
	require.NotEmpty(t, page)
	page[0].Detail = "mutated"
	page[0].Hash[0]++
	page[len(page)-1].Actor = "mutated"
	assertStored(t, s, r, "changing what Entries returned must not change the store: Entries must return copies")
}

func copiesDeliveries(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	for _, q := range []incident.DeliveryQuery{{}, {Keys: []string{"brk_4", "brk_3"}}} {
		page, err := s.Deliveries(t.Context(), "inc-1", q)
		require.NoError(t, err)
		require.NotEmpty(t, page)
		page[0].Status = incident.DeliveryUnknown
		page[0].Attempts += 10
		assertStored(t, s, r, "changing what Deliveries returned must not change the store: Deliveries must return copies (%+v)", q)
	}
}

func copiesCustomers(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	page, err := s.Customers(t.Context(), "inc-1", "", 0)
	require.NoError(t, err)
	require.NotEmpty(t, page)
	page[0].Name = "mutated"
	page[0].Email = "mutated@example.com"
	assertStored(t, s, r, "changing what Customers returned must not change the store: Customers must return copies")
}

// ---- RoundTrip ----

func roundTripFull(t *testing.T, s incident.Store) {
	inc := FullIncident("inc-full", "key-full")
	r := mustCreate(t, s, inc)

	want := inc.Clone()
	want.Version = 1
	got := mustLoad(t, s, inc.ID)
	assertSame(t, want, got, "Load must return every field as stored")
	assert.NoError(t, got.Timeline.VerifyHead(inc.Timeline.Head()), "Load: the Timeline's hash chain must still verify")

	head := func(what string, got *incident.Incident) {
		t.Helper()
		if assert.NotNil(t, got, what) {
			assertSame(t, r.head, got, "%s must return every field of the head as stored", what)
		}
	}
	head("Head", mustHead(t, s, inc.ID))
	found, err := s.FindOpen(t.Context(), inc.DedupKey)
	require.NoError(t, err)
	head("FindOpen", found)
	list, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)
	head("ListOpen", list[0])

	// And again after an Apply that changes most of the head, extends the
	// timeline, replaces a delivery and adds one, and adds a customer.
	h := r.next()
	h.State = incident.StateResolving
	h.Summary = "updated"
	h.Attributes["added"] = "yes"
	h.Decision.Reason = "updated"
	h.Tasks[1].Done = true
	h.Actions = append(h.Actions, incident.ActionRecord{Name: "notify-owner", Status: incident.ActionPending})
	h.Outreach.Claimed, h.Outreach.Sent = 1, 2
	h.Deliveries = []incident.Delivery{
		{Recipient: "cust_2", Channel: "webhook", IdempotencyKey: "brk_4", Status: incident.DeliverySent, Attempts: 3,
			ClaimedAt: h.UpdatedAt, SentAt: h.UpdatedAt.Add(time.Second)},
		delivery("brk_8", "cust_3"),
	}
	withCustomers(h, incident.Customer{ID: "cust_3", Name: "Ça Va", Email: "cava@example.com"})
	h.Record(incident.Entry{At: h.UpdatedAt, Actor: "dave@example.com", Type: incident.EntryNote, Detail: "updated"})
	require.NotEqual(t, inc.Timeline.Head(), h.Chain.Head)
	mustApply(t, s, r, h)
	assertStored(t, s, r, "after an Apply")
	got = mustLoad(t, s, inc.ID)
	assert.Equal(t, []string{"brk_3", "brk_4", "brk_5", "brk_6", "brk_7", "brk_8"}, deliveryKeys(got.Deliveries),
		"a replaced delivery keeps its place")
}

func roundTripPrecision(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	at := time.Date(2025, time.March, 14, 9, 26, 53, 999999000, time.FixedZone("X", 5*3600+1800))
	inc.DetectedAt, inc.UpdatedAt = at, at.Add(time.Microsecond)
	inc.Timeline, inc.Chain = nil, incident.Chain{}
	inc.Record(incident.Entry{At: at.Add(2 * time.Microsecond), Actor: incident.ActorSystem, Type: incident.EntryNote})
	inc.Deliveries = []incident.Delivery{delivery("del-1", "cust-1")}
	inc.Deliveries[0].ClaimedAt = at.Add(3 * time.Microsecond)
	mustCreate(t, s, inc)
	got := mustLoad(t, s, "inc-1")
	assert.True(t, at.Equal(got.DetectedAt), "DetectedAt: want %s, got %s; a store must keep times to the microsecond",
		at.UTC().Format(time.RFC3339Nano), got.DetectedAt.UTC().Format(time.RFC3339Nano))
	assert.True(t, inc.UpdatedAt.Equal(got.UpdatedAt), "UpdatedAt: a store must keep times to the microsecond")
	if assert.Len(t, got.Timeline, 1) {
		assert.True(t, inc.Timeline[0].At.Equal(got.Timeline[0].At), "Timeline[0].At: a store must keep times to the microsecond")
	}
	if assert.Len(t, got.Deliveries, 1) {
		assert.True(t, inc.Deliveries[0].ClaimedAt.Equal(got.Deliveries[0].ClaimedAt), "Deliveries[0].ClaimedAt: a store must keep times to the microsecond")
	}
	assert.NoError(t, got.Timeline.Verify(), "the Timeline hashes At to the microsecond: a store that rounds it breaks the chain")
}

// ---- Concurrency ----

func concurrentCreateSameKey(t *testing.T, s incident.Store) {
	const n = 50
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		ch := incident.Split(NewIncident(fmt.Sprintf("inc-%02d", i), "key-shared"))
		wg.Go(func() {
			<-start
			errs[i] = s.Create(ctx, ch)
		})
	}
	close(start)
	wg.Wait()

	var winners []string
	dups := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, fmt.Sprintf("inc-%02d", i))
		case errors.Is(err, incident.ErrDuplicate):
			dups++
		default:
			assert.NoError(t, err, "concurrent Create %d: only ErrDuplicate may fail it", i)
		}
	}
	require.Len(t, winners, 1, "%d concurrent Creates with one dedup key: exactly one must succeed", n)
	assert.Equal(t, n-1, dups, "the other concurrent Creates must fail with ErrDuplicate")
	assertOpenIs(t, s, "key-shared", winners[0])
	open, err := s.ListOpen(ctx)
	require.NoError(t, err)
	assert.Equal(t, winners, ids(open))
}

func concurrentApplyFromOneVersion(t *testing.T, s incident.Store) {
	const rounds, writers = 20, 4
	ctx := t.Context()
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	for round := range rounds {
		from := r.next()
		chs := make([]incident.Change, writers)
		for w := range chs {
			h := from.Clone()
			h.Summary = fmt.Sprintf("round %d, writer %d", round, w)
			h.Record(note(h.Summary))
			h.Deliveries = []incident.Delivery{delivery(fmt.Sprintf("del-%02d-%d", round, w), "cust-1")}
			withCustomers(h, incident.Customer{ID: fmt.Sprintf("cust-%02d-%d", round, w)})
			chs[w] = incident.Split(h)
		}
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range chs {
			wg.Go(func() {
				<-start
				errs[w] = s.Apply(ctx, chs[w])
			})
		}
		close(start)
		wg.Wait()
		var winners []int
		for w, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, w)
			case errors.Is(err, incident.ErrConflict):
			default:
				assert.NoError(t, err, "round %d, writer %d: only ErrConflict may fail a concurrent Apply", round, w)
			}
		}
		require.Len(t, winners, 1, "round %d: %d concurrent Applys from Version %d: exactly one must succeed",
			round, writers, from.Version)
		win := chs[winners[0]]
		require.Equal(t, from.Version+1, win.Head.Version, "round %d: the winner's Version", round)
		r.apply(win)
	}
	assert.EqualValues(t, 1+rounds, mustHead(t, s, "inc-1").Version, "one Version per successful Apply")
	assertStored(t, s, r, "the winners' changes, and none of the losers' parts")
}

func concurrentApplyRetry(t *testing.T, s incident.Store) {
	const (
		writers  = 20
		readers  = 3
		maxTries = 1000
	)
	ctx := t.Context()
	base := mustCreate(t, s, NewIncident("inc-counter", "key-counter"))
	id, count0, len0 := base.id(), base.head.Signals.Count, base.head.Chain.Len

	// consistent checks that a read never sees half a change: every
	// successful Apply adds one to Version and to Signals.Count, appends
	// one entry and writes one delivery.
	consistent := func(what string, got *incident.Incident) bool {
		if got == nil {
			return assert.Fail(t, what+" returned nil")
		}
		n := got.Version - 1
		if !assert.Equal(t, n, got.Signals.Count-count0,
			"%s saw Version %d with %d increments: a read must see whole changes", what, got.Version, got.Signals.Count-count0) ||
			!assert.EqualValues(t, len0+int(n), got.Chain.Len, "%s saw Version %d with Chain.Len %d", what, got.Version, got.Chain.Len) {
			return false
		}
		last, err := s.Entries(ctx, id, got.Chain.Len-1, 1)
		if !assert.NoError(t, err, "concurrent Entries") || !assert.Len(t, last, 1, "%s: the entry at Chain.Len-1 must be stored", what) ||
			!assert.Equal(t, got.Chain.Head, last[0].Hash, "%s: the entry at Chain.Len-1 must be the head's Chain.Head", what) {
			return false
		}
		dels, err := s.Deliveries(ctx, id, incident.DeliveryQuery{Limit: incident.MaxPageSize})
		return assert.NoError(t, err, "concurrent Deliveries") &&
			assert.GreaterOrEqual(t, len(dels), int(n), "%s saw Version %d: its deliveries must be stored", what, got.Version)
	}

	start, done := make(chan struct{}), make(chan struct{})
	var wg, rg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for try := 1; ; try++ {
				if try > maxTries {
					assert.Fail(t, fmt.Sprintf("writer %d: still conflicting after %d tries", w, maxTries))
					return
				}
				cur, err := s.Head(ctx, id)
				if !assert.NoError(t, err, "writer %d: Head", w) || !assert.NotNil(t, cur) {
					return
				}
				cur.Signals.Count++
				cur.Record(note(fmt.Sprintf("writer %d", w)))
				cur.Deliveries = []incident.Delivery{delivery(fmt.Sprintf("del-%02d", w), "cust-1")}
				err = s.Apply(ctx, incident.Split(cur))
				if err == nil {
					return
				}
				if !errors.Is(err, incident.ErrConflict) {
					assert.NoError(t, err, "writer %d: Apply may fail only with ErrConflict", w)
					return
				}
			}
		})
	}
	for range readers {
		rg.Go(func() {
			<-start
			for ok := true; ok; {
				select {
				case <-done:
					ok = false // one last round after the writers
				default:
				}
				got, err := s.Head(ctx, id)
				if !assert.NoError(t, err, "concurrent Head") || !consistent("Head", got) {
					return
				}
				got, err = s.FindOpen(ctx, "key-counter")
				if !assert.NoError(t, err, "concurrent FindOpen") || !consistent("FindOpen", got) {
					return
				}
				list, err := s.ListOpen(ctx)
				if !assert.NoError(t, err, "concurrent ListOpen") || !assert.Len(t, list, 1) || !consistent("ListOpen", list[0]) {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(done)
	rg.Wait()

	got := mustLoad(t, s, id)
	assert.Equal(t, count0+writers, got.Signals.Count,
		"%d writers each added one with read-modify-Apply and retry on ErrConflict: a change was lost", writers)
	assert.EqualValues(t, 1+writers, got.Version, "one Version per successful Apply")
	assert.Len(t, got.Timeline, len0+writers, "one entry per successful Apply")
	assert.NoError(t, got.Timeline.VerifyHead(got.Chain.Head), "the entries of concurrent Applys chain")
	assert.Len(t, got.Deliveries, writers, "one delivery per writer")
}

// ---- Context ----

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func ctxCreate(t *testing.T, s incident.Store) {
	err := s.Create(cancelled(t), incident.Split(FullIncident("inc-1", "key-1")))
	assert.ErrorIs(t, err, context.Canceled, "Create with a cancelled context must return its error")
	assertAbsent(t, s, "inc-1", "after a Create with a cancelled context")
	assertNoOpen(t, s, "key-1")
}

func ctxHead(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	got, err := s.Head(cancelled(t), "inc-1")
	assert.ErrorIs(t, err, context.Canceled, "Head with a cancelled context must return its error")
	assert.Nil(t, got, "Head with a cancelled context returned an incident")
}

func ctxApply(t *testing.T, s incident.Store) {
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	h := r.next()
	h.Summary = "changed"
	h.Record(note("changed"))
	h.Deliveries = []incident.Delivery{delivery("del-1", "cust-1")}
	withCustomers(h, incident.Customer{ID: "cust-1"})
	ch := incident.Split(h)
	err := s.Apply(cancelled(t), ch)
	assert.ErrorIs(t, err, context.Canceled, "Apply with a cancelled context must return its error")
	assert.EqualValues(t, 1, ch.Head.Version, "a failed Apply must leave the change's Version alone")
	assertStored(t, s, r, "Apply with a cancelled context must change nothing")
}

func ctxFindOpen(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	got, err := s.FindOpen(cancelled(t), "key-1")
	assert.ErrorIs(t, err, context.Canceled, "FindOpen with a cancelled context must return its error")
	assert.Nil(t, got, "FindOpen with a cancelled context returned an incident")
}

func ctxListOpen(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	_, err := s.ListOpen(cancelled(t))
	assert.ErrorIs(t, err, context.Canceled, "ListOpen with a cancelled context must return its error")
}

func ctxEntries(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	_, err := s.Entries(cancelled(t), "inc-1", 0, 0)
	assert.ErrorIs(t, err, context.Canceled, "Entries with a cancelled context must return its error")
}

func ctxDeliveries(t *testing.T, s incident.Store) {
	mustCreate(t, s, FullIncident("inc-1", "key-1"))
	_, err := s.Deliveries(cancelled(t), "inc-1", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, context.Canceled, "Deliveries with a cancelled context must return its error")
}

func ctxCustomers(t *testing.T, s incident.Store) {
	mustCreate(t, s, FullIncident("inc-1", "key-1"))
	_, err := s.Customers(cancelled(t), "inc-1", "", 0)
	assert.ErrorIs(t, err, context.Canceled, "Customers with a cancelled context must return its error")
}

// SortByDetected orders incidents oldest DetectedAt first, ties by ID: the
// order Store.ListOpen promises, which TestStore checks.
func SortByDetected(incs []*incident.Incident) {
	slices.SortFunc(incs, func(a, b *incident.Incident) int {
		if c := a.DetectedAt.Compare(b.DetectedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
