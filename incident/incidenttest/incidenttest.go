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
// FullIncident and Normalize.
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
// the rule broken, for example "TestStore/Update/StaleVersion".
//
// newStore must return an empty store, and is called once per subtest; it
// may register clean-up with t.Cleanup. The subtests run one after another,
// never in parallel, so several stores may share one database server as
// long as each starts empty.
//
// The suite checks the whole contract written on incident.Store: versions
// and compare-and-swap on Create and Update, one open incident per dedup
// key, the errors for invalid, unknown, stale and duplicate incidents,
// FindOpen and the order of ListOpen, that incidents are copied in and out
// (never aliased), that every field survives a round trip with the Timeline
// still verifying, that concurrent Creates and Updates are safe, and that
// each method returns ctx's error for a cancelled context without acting.
//
// When the store also implements incident.Leaser, the Lease group checks
// that contract too: one owner at a time per incident, renewal, Unlease by
// the owner only, leases on incidents not stored, expiry (with TTLs of a
// second or less, waited for in real time, at most a few seconds), and
// concurrent takers. Stores that do not implement it skip the group.
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
	}},
	{"Update", []check{
		{"BumpsVersion", updateBumpsVersion},
		{"StaleVersion", updateStaleVersion},
		{"FutureVersion", updateFutureVersion},
		{"NotFound", updateNotFound},
		{"CloseFreesKey", updateCloseFreesKey},
		{"Reopen", updateReopen},
		{"ReopenDuplicate", updateReopenDuplicate},
		{"MoveDedupKey", updateMoveDedupKey},
	}},
	{"Get", []check{
		{"NotFound", getNotFound},
	}},
	{"FindOpen", []check{
		{"Found", findOpenFound},
		{"NotFound", findOpenNotFound},
	}},
	{"ListOpen", []check{
		{"OnlyOpen", listOpenOnlyOpen},
		{"Order", listOpenOrder},
	}},
	{"Copies", []check{
		{"Create", copiesCreate},
		{"Update", copiesUpdate},
		{"Get", copiesGet},
		{"FindOpen", copiesFindOpen},
		{"ListOpen", copiesListOpen},
	}},
	{"RoundTrip", []check{
		{"FullIncident", roundTripFull},
		{"MicrosecondPrecision", roundTripPrecision},
	}},
	{"Concurrency", []check{
		{"CreateSameKey", concurrentCreateSameKey},
		{"UpdateRetry", concurrentUpdateRetry},
	}},
	{"Context", []check{
		{"Create", ctxCreate},
		{"Get", ctxGet},
		{"Update", ctxUpdate},
		{"FindOpen", ctxFindOpen},
		{"ListOpen", ctxListOpen},
	}},
	// Stores that implement incident.Leaser; the others skip these.
	{"Lease", []check{
		{"TakeAndRenew", leaseTakeAndRenew},
		{"Unlease", leaseUnlease},
		{"PerIncident", leasePerIncident},
		{"MissingIncident", leaseMissingIncident},
		{"Expiry", leaseExpiry},
		{"RenewalExtends", leaseRenewalExtends},
		{"Concurrent", leaseConcurrent},
		{"Context", leaseContext},
	}},
	// Stores that implement incident.Lister; the others skip these.
	{"List", listChecks},
}

// ---- helpers ----

func mustCreate(t *testing.T, s incident.Store, inc *incident.Incident) {
	t.Helper()
	require.NoError(t, s.Create(t.Context(), inc), "Create %s", inc.ID)
}

func mustGet(t *testing.T, s incident.Store, id string) *incident.Incident {
	t.Helper()
	got, err := s.Get(t.Context(), id)
	require.NoError(t, err, "Get %s", id)
	require.NotNil(t, got, "Get %s returned nil without an error", id)
	return got
}

func mustUpdate(t *testing.T, s incident.Store, inc *incident.Incident) {
	t.Helper()
	require.NoError(t, s.Update(t.Context(), inc), "Update %s (Version %d)", inc.ID, inc.Version)
}

// setState reads id, sets its state and writes it back.
func setState(t *testing.T, s incident.Store, id string, state incident.State) *incident.Incident {
	t.Helper()
	inc := mustGet(t, s, id)
	inc.State = state
	mustUpdate(t, s, inc)
	return inc
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
	if inc.Attributes != nil {
		inc.Attributes["region"] = "mutated"
		inc.Attributes["added"] = "mutated"
	}
	if len(inc.Signals.Samples) > 0 {
		inc.Signals.Samples[0].Summary = "mutated"
	}
	if inv := inc.Investigation; inv != nil {
		inv.RootCause = "mutated"
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

// ---- Create ----

func createSetsVersion(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	inc.Version = 42 // whatever the caller holds, a new incident starts at 1
	mustCreate(t, s, inc)
	assert.EqualValues(t, 1, inc.Version, "Create must set Version 1 on the caller's incident")

	got := mustGet(t, s, "inc-1")
	assert.EqualValues(t, 1, got.Version, "a created incident must be stored with Version 1")
	assertSame(t, inc, got, "Get after Create")
}

func createExistingID(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateDetected, incident.StateClosed} {
		first := NewIncident("inc-"+string(state), "key-first-"+string(state))
		first.State = state
		mustCreate(t, s, first)

		again := NewIncident(first.ID, "key-again-"+string(state))
		err := s.Create(t.Context(), again)
		assert.ErrorIs(t, err, incident.ErrInvalidIncident,
			"Create with the ID of an existing %s incident must fail with ErrInvalidIncident", state)
		assertSame(t, first, mustGet(t, s, first.ID), "a failed Create must leave the existing incident alone")
		assertNoOpen(t, s, again.DedupKey)
	}
}

func createInvalid(t *testing.T, s incident.Store) {
	for _, tc := range []struct {
		name  string
		clear func(*incident.Incident)
	}{
		{"empty ID", func(inc *incident.Incident) { inc.ID = "" }},
		{"empty DedupKey", func(inc *incident.Incident) { inc.DedupKey = "" }},
		{"empty State", func(inc *incident.Incident) { inc.State = "" }},
	} {
		inc := NewIncident("inc-invalid", "key-invalid")
		tc.clear(inc)
		err := s.Create(t.Context(), inc)
		assert.ErrorIs(t, err, incident.ErrInvalidIncident, "Create with %s must fail with ErrInvalidIncident", tc.name)
	}
	got, err := s.Get(t.Context(), "inc-invalid")
	assertNotFound(t, got, err, "Get after invalid Creates")
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
		err := s.Create(t.Context(), second)
		assertDuplicateOf(t, err, key, first.ID, fmt.Sprintf("Create while a %s incident holds the dedup key", state))

		got, err := s.Get(t.Context(), second.ID)
		assertNotFound(t, got, err, "Get of an incident whose Create failed with ErrDuplicate")
		assertOpenIs(t, s, key, first.ID)
	}
}

func createClosedKeyReusable(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateClosed, incident.StateDismissed} {
		key := "key-" + string(state)
		old := NewIncident("inc-old-"+string(state), key)
		mustCreate(t, s, old)
		setState(t, s, old.ID, state)

		next := NewIncident("inc-new-"+string(state), key)
		assert.NoError(t, s.Create(t.Context(), next),
			"the dedup key of a %s incident must be free for a new incident", state)
		assertOpenIs(t, s, key, next.ID)
		assert.Equal(t, state, mustGet(t, s, old.ID).State, "the %s incident must be kept", state)
	}
}

func createClosedDoesNotHoldKey(t *testing.T, s incident.Store) {
	closed := NewIncident("inc-closed", "key-1")
	closed.State = incident.StateClosed
	mustCreate(t, s, closed)
	assertNoOpen(t, s, "key-1")

	open := NewIncident("inc-open", "key-1")
	assert.NoError(t, s.Create(t.Context(), open), "an incident created closed must not hold its dedup key")
	assertOpenIs(t, s, "key-1", "inc-open")
}

// ---- Update ----

func updateBumpsVersion(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	for v := int64(2); v <= 4; v++ {
		inc.Summary = fmt.Sprintf("summary %d", v)
		mustUpdate(t, s, inc)
		assert.Equal(t, v, inc.Version, "Update must set the new Version on the caller's incident")
		got := mustGet(t, s, "inc-1")
		assert.Equal(t, v, got.Version, "stored Version after Update")
		assertSame(t, inc, got, "Get after Update")
	}
}

func updateStaleVersion(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	winner, loser := mustGet(t, s, "inc-1"), mustGet(t, s, "inc-1")

	winner.Summary = "winner"
	mustUpdate(t, s, winner)

	loser.Summary = "loser"
	loser.Signals.Count = 99
	err := s.Update(t.Context(), loser)
	if assert.ErrorIs(t, err, incident.ErrConflict, "Update with a stale Version must fail with ErrConflict") {
		var ce *incident.ConflictError
		if errors.As(err, &ce) {
			assert.Equal(t, "inc-1", ce.ID, "ConflictError.ID")
			assert.EqualValues(t, 1, ce.Expected, "ConflictError.Expected")
			assert.EqualValues(t, 2, ce.Actual, "ConflictError.Actual")
		}
	}
	assert.EqualValues(t, 1, loser.Version, "a failed Update must leave the caller's Version alone")
	got := mustGet(t, s, "inc-1")
	assert.EqualValues(t, 2, got.Version, "a failed Update must not change the stored Version")
	assertSame(t, winner, got, "a failed Update must keep the winner's data")

	// The loser re-reads and applies its change again.
	retry := mustGet(t, s, "inc-1")
	retry.Summary = "loser"
	mustUpdate(t, s, retry)
	assert.EqualValues(t, 3, retry.Version)
}

func updateFutureVersion(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	want := inc.Clone()
	inc.Version = 5
	inc.Summary = "from the future"
	err := s.Update(t.Context(), inc)
	assert.ErrorIs(t, err, incident.ErrConflict, "Update with a Version ahead of the store must fail with ErrConflict")
	assertSame(t, want, mustGet(t, s, "inc-1"), "a failed Update must change nothing")
}

func updateNotFound(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-missing", "key-missing")
	inc.Version = 1
	err := s.Update(t.Context(), inc)
	assert.ErrorIs(t, err, incident.ErrNotFound, "Update of an unknown ID must fail with ErrNotFound")
	got, err := s.Get(t.Context(), "inc-missing")
	assertNotFound(t, got, err, "Get after an Update of an unknown ID")
	assertNoOpen(t, s, "key-missing")
}

func updateCloseFreesKey(t *testing.T, s incident.Store) {
	for _, state := range []incident.State{incident.StateClosed, incident.StateDismissed} {
		key := "key-" + string(state)
		inc := NewIncident("inc-"+string(state), key)
		mustCreate(t, s, inc)
		setState(t, s, inc.ID, state)
		assertNoOpen(t, s, key)
		got := mustGet(t, s, inc.ID)
		assert.Equal(t, state, got.State, "a %s incident must still be readable with Get", state)
	}
	open, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Empty(t, ids(open), "ListOpen must leave out closed and dismissed incidents")
}

func updateReopen(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	setState(t, s, "inc-1", incident.StateClosed)
	reopened := setState(t, s, "inc-1", incident.StateInvestigating)
	assert.EqualValues(t, 3, reopened.Version)
	assertOpenIs(t, s, "key-1", "inc-1")
}

func updateReopenDuplicate(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-old", "key-1"))
	closed := setState(t, s, "inc-old", incident.StateClosed)
	mustCreate(t, s, NewIncident("inc-new", "key-1"))

	reopen := closed.Clone()
	reopen.State = incident.StateInvestigating
	err := s.Update(t.Context(), reopen)
	assertDuplicateOf(t, err, "key-1", "inc-new", "reopening while another open incident holds the dedup key")

	assertSame(t, closed, mustGet(t, s, "inc-old"), "a refused reopen must change nothing")
	assertOpenIs(t, s, "key-1", "inc-new")
}

func updateMoveDedupKey(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	inc.DedupKey = "key-2"
	mustUpdate(t, s, inc)
	assertNoOpen(t, s, "key-1")
	assertOpenIs(t, s, "key-2", "inc-1")
	mustCreate(t, s, NewIncident("inc-2", "key-1")) // key-1 is free again

	// Moving onto a key another open incident holds would leave two open
	// incidents with one dedup key.
	inc.DedupKey = "key-1"
	err := s.Update(t.Context(), inc)
	assertDuplicateOf(t, err, "key-1", "inc-2", "Update onto a dedup key another open incident holds")
	assertOpenIs(t, s, "key-1", "inc-2")
	assertOpenIs(t, s, "key-2", "inc-1")
}

// ---- Get, FindOpen, ListOpen ----

func getNotFound(t *testing.T, s incident.Store) {
	got, err := s.Get(t.Context(), "inc-missing")
	assertNotFound(t, got, err, "Get of an unknown ID")
}

func findOpenFound(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	mustCreate(t, s, NewIncident("inc-2", "key-2"))
	got, err := s.FindOpen(t.Context(), "key-1")
	require.NoError(t, err, "FindOpen of an open incident's key")
	assertSame(t, inc, got, "FindOpen")
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
		mustCreate(t, s, inc)
		if state.Open() {
			want = append(want, inc)
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
	inc := FullIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	want := inc.Clone()
	mutate(inc)
	assertSame(t, want, mustGet(t, s, "inc-1"),
		"changing the incident passed to Create must not change the store: it must keep a copy")
}

func copiesUpdate(t *testing.T, s incident.Store) {
	mustCreate(t, s, FullIncident("inc-1", "key-1"))
	inc := mustGet(t, s, "inc-1")
	inc.Summary = "updated"
	mustUpdate(t, s, inc)
	want := inc.Clone()
	mutate(inc)
	assertSame(t, want, mustGet(t, s, "inc-1"),
		"changing the incident passed to Update must not change the store: it must keep a copy")
}

func copiesGet(t *testing.T, s incident.Store) {
	inc := FullIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	got := mustGet(t, s, "inc-1")
	mutate(got)
	assertSame(t, inc, mustGet(t, s, "inc-1"),
		"changing what Get returned must not change the store: Get must return a copy")
	assertOpenIs(t, s, "key-1", "inc-1")
}

func copiesFindOpen(t *testing.T, s incident.Store) {
	inc := FullIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	got, err := s.FindOpen(t.Context(), "key-1")
	require.NoError(t, err)
	require.NotNil(t, got)
	mutate(got)
	assertSame(t, inc, mustGet(t, s, "inc-1"),
		"changing what FindOpen returned must not change the store: FindOpen must return a copy")
}

func copiesListOpen(t *testing.T, s incident.Store) {
	inc := FullIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	got, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.NotNil(t, got[0])
	mutate(got[0])
	assertSame(t, inc, mustGet(t, s, "inc-1"),
		"changing what ListOpen returned must not change the store: ListOpen must return copies")
	got[0] = nil
	again, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"inc-1"}, ids(again))
}

// ---- RoundTrip ----

func roundTripFull(t *testing.T, s incident.Store) {
	inc := FullIncident("inc-full", "key-full")
	head := inc.Timeline.Head()
	mustCreate(t, s, inc)

	check := func(what string, got *incident.Incident) {
		t.Helper()
		if !assert.NotNil(t, got, what) {
			return
		}
		assertSame(t, inc, got, "%s must return every field as stored", what)
		assert.NoError(t, got.Timeline.VerifyHead(inc.Timeline.Head()), "%s: the Timeline's hash chain must still verify", what)
	}
	check("Get", mustGet(t, s, inc.ID))
	found, err := s.FindOpen(t.Context(), inc.DedupKey)
	require.NoError(t, err)
	check("FindOpen", found)
	list, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)
	check("ListOpen", list[0])

	// And again after an Update that changes most parts and extends the
	// Timeline.
	inc.State = incident.StateResolving
	inc.Summary = "updated"
	inc.Attributes["added"] = "yes"
	inc.Investigation.Impact.Customers = append(inc.Investigation.Impact.Customers, incident.Customer{ID: "cust_3"})
	inc.Decision.Reason = "updated"
	inc.Tasks[1].Done = true
	inc.Actions = append(inc.Actions, incident.ActionRecord{Name: "notify-owner", Status: incident.ActionPending})
	inc.Timeline.Append(incident.Entry{At: inc.UpdatedAt, Actor: "dave@example.com", Type: incident.EntryNote, Detail: "updated"})
	require.NotEqual(t, head, inc.Timeline.Head())
	mustUpdate(t, s, inc)
	check("Get after Update", mustGet(t, s, inc.ID))
}

func roundTripPrecision(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	at := time.Date(2025, time.March, 14, 9, 26, 53, 999999000, time.FixedZone("X", 5*3600+1800))
	inc.DetectedAt, inc.UpdatedAt = at, at.Add(time.Microsecond)
	inc.Timeline = nil
	inc.Timeline.Append(incident.Entry{At: at.Add(2 * time.Microsecond), Actor: incident.ActorSystem, Type: incident.EntryNote})
	mustCreate(t, s, inc)
	got := mustGet(t, s, "inc-1")
	assert.True(t, at.Equal(got.DetectedAt), "DetectedAt: want %s, got %s; a store must keep times to the microsecond",
		at.UTC().Format(time.RFC3339Nano), got.DetectedAt.UTC().Format(time.RFC3339Nano))
	assert.True(t, inc.UpdatedAt.Equal(got.UpdatedAt), "UpdatedAt: a store must keep times to the microsecond")
	if assert.Len(t, got.Timeline, 1) {
		assert.True(t, inc.Timeline[0].At.Equal(got.Timeline[0].At), "Timeline[0].At: a store must keep times to the microsecond")
	}
	assert.NoError(t, got.Timeline.Verify(), "the Timeline hashes At to the nanosecond: a store that rounds it breaks the chain")
}

// ---- Concurrency ----

func concurrentCreateSameKey(t *testing.T, s incident.Store) {
	const n = 50
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Create(ctx, NewIncident(fmt.Sprintf("inc-%02d", i), "key-shared"))
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

func concurrentUpdateRetry(t *testing.T, s incident.Store) {
	const (
		writers  = 20
		readers  = 3
		maxTries = 1000
	)
	ctx := t.Context()
	inc := NewIncident("inc-counter", "key-counter")
	mustCreate(t, s, inc)
	base := inc.Signals.Count

	// consistent checks that a read never sees half a write: every
	// successful Update adds one to both Version and Signals.Count.
	consistent := func(what string, got *incident.Incident) bool {
		if got == nil {
			return assert.Fail(t, what+" returned nil")
		}
		return assert.Equal(t, got.Version-1, got.Signals.Count-base,
			"%s saw Version %d with %d increments: a read must see whole writes", what, got.Version, got.Signals.Count-base)
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
				cur, err := s.Get(ctx, inc.ID)
				if !assert.NoError(t, err, "writer %d: Get", w) || !assert.NotNil(t, cur) {
					return
				}
				cur.Signals.Count++
				err = s.Update(ctx, cur)
				if err == nil {
					return
				}
				if !errors.Is(err, incident.ErrConflict) {
					assert.NoError(t, err, "writer %d: Update may fail only with ErrConflict", w)
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
				got, err := s.Get(ctx, inc.ID)
				if !assert.NoError(t, err, "concurrent Get") || !consistent("Get", got) {
					return
				}
				got, err = s.FindOpen(ctx, inc.DedupKey)
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

	got := mustGet(t, s, inc.ID)
	assert.Equal(t, base+writers, got.Signals.Count,
		"%d writers each added one with read-modify-Update and retry on ErrConflict: an update was lost", writers)
	assert.EqualValues(t, 1+writers, got.Version, "one Version per successful Update")
}

// ---- Context ----

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func ctxCreate(t *testing.T, s incident.Store) {
	err := s.Create(cancelled(t), NewIncident("inc-1", "key-1"))
	assert.ErrorIs(t, err, context.Canceled, "Create with a cancelled context must return its error")
	got, err := s.Get(t.Context(), "inc-1")
	assertNotFound(t, got, err, "Get after a Create with a cancelled context")
}

func ctxGet(t *testing.T, s incident.Store) {
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	got, err := s.Get(cancelled(t), "inc-1")
	assert.ErrorIs(t, err, context.Canceled, "Get with a cancelled context must return its error")
	assert.Nil(t, got, "Get with a cancelled context returned an incident")
}

func ctxUpdate(t *testing.T, s incident.Store) {
	inc := NewIncident("inc-1", "key-1")
	mustCreate(t, s, inc)
	want := inc.Clone()
	inc.Summary = "changed"
	err := s.Update(cancelled(t), inc)
	assert.ErrorIs(t, err, context.Canceled, "Update with a cancelled context must return its error")
	assert.EqualValues(t, 1, inc.Version, "a failed Update must leave the caller's Version alone")
	assertSame(t, want, mustGet(t, s, "inc-1"), "Update with a cancelled context must change nothing")
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

// ---- Lease ----

// leaser returns s as an incident.Leaser, or skips the check.
func leaser(t *testing.T, s incident.Store) incident.Leaser {
	t.Helper()
	l, ok := s.(incident.Leaser)
	if !ok {
		t.Skipf("%T does not implement incident.Leaser", s)
	}
	return l
}

func mustLease(t *testing.T, l incident.Leaser, id, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := l.Lease(t.Context(), id, owner, ttl)
	require.NoError(t, err, "Lease %s for %s", id, owner)
	return ok
}

func leaseTakeAndRenew(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "a free lease must be granted")
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "the owner must be able to renew its lease")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "a lease held by another owner must be refused")
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "a refused taker must not disturb the owner's lease")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "the lease must still be the owner's")
}

func leaseUnlease(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	require.NoError(t, l.Unlease(t.Context(), "inc-1", "bob"), "Unlease by a non-owner")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "Unlease by a non-owner must do nothing")
	require.NoError(t, l.Unlease(t.Context(), "inc-1", "alice"), "Unlease by the owner")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "after the owner's Unlease another owner must get the lease")
	require.NoError(t, l.Unlease(t.Context(), "inc-never-leased", "alice"), "Unlease of a lease nobody holds")
	assert.Equal(t, incident.StateDetected, mustGet(t, s, "inc-1").State, "leases must leave the incident alone")
}

func leasePerIncident(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	mustCreate(t, s, NewIncident("inc-2", "key-2"))
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	assert.True(t, mustLease(t, l, "inc-2", "bob", time.Minute), "a lease on one incident must not hold another")
	assert.False(t, mustLease(t, l, "inc-2", "alice", time.Minute))
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute))
}

func leaseMissingIncident(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	assert.True(t, mustLease(t, l, "inc-missing", "alice", time.Minute), "a lease may be taken on an incident that does not exist")
	assert.False(t, mustLease(t, l, "inc-missing", "bob", time.Minute), "and it holds like any other")
	got, err := s.Get(t.Context(), "inc-missing")
	assertNotFound(t, got, err, "Get after leasing an incident that does not exist")
	mustCreate(t, s, NewIncident("inc-missing", "key-1"))
	assert.False(t, mustLease(t, l, "inc-missing", "bob", time.Minute), "creating the incident must not drop its lease")
}

// waitLease polls until owner gets the lease on id, for at most limit.
func waitLease(t *testing.T, l incident.Leaser, id, owner string, ttl, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if mustLease(t, l, id, owner, ttl) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaseExpiry(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	const ttl = 500 * time.Millisecond
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", ttl))
	if time.Since(start) < ttl/2 {
		assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "a lease must hold until its TTL runs out")
	}
	assert.True(t, waitLease(t, l, "inc-1", "bob", time.Minute, 5*time.Second),
		"a lease of %s must run out: another owner could not take it within 5s", ttl)
	assert.False(t, mustLease(t, l, "inc-1", "alice", time.Minute), "the old owner must not take a lease back from the new one")
}

func leaseRenewalExtends(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	const ttl = time.Second
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", ttl))
	time.Sleep(600 * time.Millisecond)
	renewed := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", ttl), "renewal")
	// Past the first TTL, within the renewed one.
	time.Sleep(time.Until(start.Add(ttl + 200*time.Millisecond)))
	if time.Since(renewed) < ttl-200*time.Millisecond {
		assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "renewing must extend the lease to TTL from the renewal")
	}
	assert.True(t, waitLease(t, l, "inc-1", "bob", time.Minute, 5*time.Second), "the renewed lease must run out in turn")
}

func leaseConcurrent(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	const n = 20
	ctx := t.Context()
	start := make(chan struct{})
	got := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = l.Lease(ctx, "inc-contended", fmt.Sprintf("owner-%02d", i), time.Minute)
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i := range n {
		if assert.NoError(t, errs[i], "concurrent Lease %d", i) && got[i] {
			winners = append(winners, i)
		}
	}
	require.Len(t, winners, 1, "%d owners leasing one incident at once: exactly one must get it", n)
	w := fmt.Sprintf("owner-%02d", winners[0])
	assert.True(t, mustLease(t, l, "inc-contended", w, time.Minute), "the winner holds the lease")
	assert.False(t, mustLease(t, l, "inc-contended", "owner-late", time.Minute))
}

func leaseContext(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	ok, err := l.Lease(cancelled(t), "inc-1", "alice", time.Minute)
	assert.ErrorIs(t, err, context.Canceled, "Lease with a cancelled context must return its error")
	assert.False(t, ok, "Lease with a cancelled context reported the lease taken")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "Lease with a cancelled context must not take the lease")
	err = l.Unlease(cancelled(t), "inc-1", "bob")
	assert.ErrorIs(t, err, context.Canceled, "Unlease with a cancelled context must return its error")
	assert.False(t, mustLease(t, l, "inc-1", "alice", time.Minute), "Unlease with a cancelled context must not give the lease up")
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
