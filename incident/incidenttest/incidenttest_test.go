package incidenttest_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
)

func TestMemStore(t *testing.T) {
	incidenttest.TestStore(t, func(*testing.T) incident.Store { return incident.NewMemStore() })
}

func TestMemStoreZeroValue(t *testing.T) {
	incidenttest.TestStore(t, func(*testing.T) incident.Store { return &incident.MemStore{} })
}

// TestNaiveStore runs the suite on the test's own reference store without
// bugs, so that each broken variant below fails for its bug alone.
func TestNaiveStore(t *testing.T) {
	incidenttest.TestStore(t, func(*testing.T) incident.Store { return &naiveStore{} })
}

// brokenEnv names the bug TestBrokenStore injects; it is set only in the
// child processes TestSuiteCatchesBrokenStores starts.
const brokenEnv = "INCIDENTTEST_BROKEN_STORE"

// TestBrokenStore runs the suite on a naiveStore with one bug. It runs only
// in a child process: its failure is the expected outcome.
func TestBrokenStore(t *testing.T) {
	b := bug(os.Getenv(brokenEnv))
	if b == "" {
		t.Skip("runs in a child process of TestSuiteCatchesBrokenStores")
	}
	incidenttest.TestStore(t, func(*testing.T) incident.Store { return &naiveStore{bug: b} })
}

func TestSuiteCatchesBrokenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, tc := range []struct {
		bug bug
		// skip is a -test.skip pattern: subtests whose outcome the bug makes
		// racy (an aliasing store shared by goroutines is a data race).
		skip string
		// failing subtests of TestBrokenStore, and a message each must show.
		want map[string]string
	}{
		{bug: bugAliasIn, skip: "TestBrokenStore/Concurrency", want: map[string]string{
			"Copies/Create": "changing the incident passed to Create must not change the store",
			"Copies/Update": "changing the incident passed to Update must not change the store",
		}},
		{bug: bugAliasOut, skip: "TestBrokenStore/Concurrency", want: map[string]string{
			"Copies/Get":      "Get must return a copy",
			"Copies/FindOpen": "FindOpen must return a copy",
			"Copies/ListOpen": "ListOpen must return copies",
		}},
		{bug: bugNoCAS, want: map[string]string{
			"Update/StaleVersion":  "Update with a stale Version must fail with ErrConflict",
			"Update/FutureVersion": "Update with a Version ahead of the store must fail with ErrConflict",
		}},
		{bug: bugNoDedup, want: map[string]string{
			"Create/DuplicateOpenKey":   "must fail with ErrDuplicate",
			"Concurrency/CreateSameKey": "exactly one must succeed",
		}},
		{bug: bugReopenDup, want: map[string]string{
			"Update/ReopenDuplicate": "reopening while another open incident holds the dedup key must fail with ErrDuplicate",
		}},
		{bug: bugKeepsClosedKey, want: map[string]string{
			"Create/ClosedKeyReusable": "must be free for a new incident",
		}},
		{bug: bugNoCallerVersion, want: map[string]string{
			"Create/SetsVersion": "Create must set Version 1 on the caller's incident",
		}},
		{bug: bugIgnoreCtx, want: map[string]string{
			"Context/Create":   "Create with a cancelled context must return its error",
			"Context/Get":      "Get with a cancelled context must return its error",
			"Context/Update":   "Update with a cancelled context must return its error",
			"Context/FindOpen": "FindOpen with a cancelled context must return its error",
			"Context/ListOpen": "ListOpen with a cancelled context must return its error",
		}},
		{bug: bugUnordered, want: map[string]string{
			"ListOpen/Order": "ListOpen must order by DetectedAt",
		}},
		{bug: bugMilliseconds, want: map[string]string{
			"RoundTrip/FullIncident":         "Get must return every field as stored",
			"RoundTrip/MicrosecondPrecision": "a store must keep times to the microsecond",
		}},
		{bug: bugDropsTasks, want: map[string]string{
			"RoundTrip/FullIncident": "Get must return every field as stored",
		}},
		{bug: bugOffsetCursor, want: map[string]string{
			"List/CursorSurvivesInserts": "every incident of before must be visited once, in order",
		}},
		{bug: bugTiesAscending, want: map[string]string{
			"List/Filters/none": "List {States:[] Kind: Account: DetectedFrom:",
			"List/Pages":        "must visit each of 120 incidents exactly once, in order",
		}},
		{bug: bugNoStateFilter, want: map[string]string{
			"List/Filters/one_state": "List {States:[closed]",
		}},
		{bug: bugLaxCursor, want: map[string]string{
			"List/InvalidFilter/garbage_cursor": "must fail with ErrInvalidFilter",
		}},
	} {
		t.Run(string(tc.bug), func(t *testing.T) {
			t.Parallel()
			args := []string{"-test.run=^TestBrokenStore$", "-test.v", "-test.count=1"}
			if tc.skip != "" {
				args = append(args, "-test.skip="+tc.skip)
			}
			cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
			cmd.Env = append(os.Environ(), brokenEnv+"="+string(tc.bug))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite must fail on a store with bug %s; output:\n%s", tc.bug, out)
			require.Contains(t, string(out), "--- FAIL: TestBrokenStore ", "the child must have run the suite")
			require.NotContains(t, string(out), "panic:", "the suite must fail, not panic, on a broken store; output:\n%s", out)
			for sub, msg := range tc.want {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenStore/"+sub+" ") {
					t.Errorf("bug %s: subtest %s did not fail; output:\n%s", tc.bug, sub, out)
					continue
				}
				if section := subtestOutput(string(out), "TestBrokenStore/"+sub); !strings.Contains(section, msg) {
					t.Errorf("bug %s: subtest %s failed without %q; its output:\n%s", tc.bug, sub, msg, section)
				}
			}
			// The bug is the only reason: subtests about something else pass.
			assert.Contains(t, string(out), "--- PASS: TestBrokenStore/Get/NotFound ")
		})
	}
}

// subtestOutput returns the lines between a subtest's "=== RUN" line and
// the next "=== RUN" line: its log output in -test.v mode when subtests
// run one after another.
func subtestOutput(out, name string) string {
	_, after, ok := strings.Cut(out, "=== RUN   "+name+"\n")
	if !ok {
		return ""
	}
	section, _, _ := strings.Cut(after, "=== RUN   ")
	return section
}

// ---- naiveStore: a simple, obviously correct Store with injectable bugs ----

type bug string

const (
	bugAliasIn         bug = "alias-in"          // keeps the caller's pointer on Create and Update
	bugAliasOut        bug = "alias-out"         // returns its own pointer from the readers
	bugNoCAS           bug = "no-cas"            // Update ignores Version
	bugNoDedup         bug = "no-dedup"          // Create allows two open incidents per key
	bugReopenDup       bug = "reopen-dup"        // Update does not check the key on reopen
	bugKeepsClosedKey  bug = "keeps-closed-key"  // a closed incident still holds its key
	bugNoCallerVersion bug = "no-caller-version" // Create and Update leave the caller's Version alone
	bugIgnoreCtx       bug = "ignore-ctx"        // no method looks at ctx
	bugUnordered       bug = "unordered"         // ListOpen in reverse order
	bugMilliseconds    bug = "milliseconds"      // times kept to the millisecond
	bugDropsTasks      bug = "drops-tasks"       // Tasks are not stored
	bugOffsetCursor    bug = "offset-cursor"     // List pages by offset, not by position
	bugTiesAscending   bug = "ties-ascending"    // List breaks DetectedAt ties by ID ascending
	bugNoStateFilter   bug = "no-state-filter"   // List ignores ListFilter.States
	bugLaxCursor       bug = "lax-cursor"        // List starts over on a malformed cursor
)

type naiveStore struct {
	bug  bug
	mu   sync.Mutex
	byID map[string]*incident.Incident
}

func (s *naiveStore) ctxErr(ctx context.Context) error {
	if s.bug == bugIgnoreCtx {
		return nil
	}
	return ctx.Err()
}

func (s *naiveStore) in(inc *incident.Incident) *incident.Incident {
	if s.bug == bugAliasIn {
		return inc
	}
	c := inc.Clone()
	switch s.bug {
	case bugMilliseconds:
		c.DetectedAt = c.DetectedAt.Truncate(time.Millisecond)
	case bugDropsTasks:
		c.Tasks = nil
	}
	return c
}

func (s *naiveStore) out(inc *incident.Incident) *incident.Incident {
	if s.bug == bugAliasOut {
		return inc
	}
	return inc.Clone()
}

// openWith returns the ID of an open incident with key other than id.
func (s *naiveStore) openWith(key, id string) (string, bool) {
	if s.bug == bugNoDedup {
		return "", false
	}
	for _, inc := range s.byID {
		if inc.ID != id && inc.DedupKey == key && (inc.State.Open() || s.bug == bugKeepsClosedKey) {
			return inc.ID, true
		}
	}
	return "", false
}

func valid(inc *incident.Incident) error {
	if inc == nil || inc.ID == "" || inc.DedupKey == "" || inc.State == "" {
		return fmt.Errorf("naive: %w", incident.ErrInvalidIncident)
	}
	return nil
}

func (s *naiveStore) Create(ctx context.Context, inc *incident.Incident) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	if err := valid(inc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[string]*incident.Incident)
	}
	if _, ok := s.byID[inc.ID]; ok {
		return fmt.Errorf("naive: ID exists: %w", incident.ErrInvalidIncident)
	}
	if id, ok := s.openWith(inc.DedupKey, inc.ID); ok && inc.State.Open() {
		return &incident.DuplicateError{DedupKey: inc.DedupKey, ExistingID: id}
	}
	c := s.in(inc)
	c.Version = 1
	s.byID[inc.ID] = c
	if s.bug != bugNoCallerVersion {
		inc.Version = 1
	}
	return nil
}

func (s *naiveStore) Get(ctx context.Context, id string) (*incident.Incident, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inc, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("naive: %s: %w", id, incident.ErrNotFound)
	}
	return s.out(inc), nil
}

func (s *naiveStore) Update(ctx context.Context, inc *incident.Incident) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	if err := valid(inc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.byID[inc.ID]
	if !ok {
		return fmt.Errorf("naive: %s: %w", inc.ID, incident.ErrNotFound)
	}
	if cur.Version != inc.Version && s.bug != bugNoCAS {
		return fmt.Errorf("naive: %w", incident.ErrConflict)
	}
	if id, ok := s.openWith(inc.DedupKey, inc.ID); ok && inc.State.Open() &&
		(s.bug != bugReopenDup || cur.State.Open()) {
		return &incident.DuplicateError{DedupKey: inc.DedupKey, ExistingID: id}
	}
	c := s.in(inc)
	c.Version = cur.Version + 1
	s.byID[inc.ID] = c
	if s.bug != bugNoCallerVersion {
		inc.Version = c.Version
	}
	return nil
}

func (s *naiveStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inc := range s.byID {
		if inc.DedupKey == key && inc.State.Open() {
			return s.out(inc), nil
		}
	}
	return nil, fmt.Errorf("naive: key %s: %w", key, incident.ErrNotFound)
}

func (s *naiveStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*incident.Incident
	for _, inc := range s.byID {
		if inc.State.Open() {
			out = append(out, s.out(inc))
		}
	}
	incidenttest.SortByDetected(out)
	if s.bug == bugUnordered {
		slices.Reverse(out)
	}
	return out, nil
}

func (s *naiveStore) List(ctx context.Context, f incident.ListFilter) (incident.Page, error) {
	if err := s.ctxErr(ctx); err != nil {
		return incident.Page{}, err
	}
	if f.Limit < 0 {
		return incident.Page{}, &incident.FilterError{Field: "Limit", Reason: "negative"}
	}
	if !f.DetectedTo.IsZero() && f.DetectedTo.Before(f.DetectedFrom) {
		return incident.Page{}, &incident.FilterError{Field: "DetectedTo", Reason: "before DetectedFrom"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bug == bugNoStateFilter {
		f.States = nil
	}
	var all []*incident.Incident
	for _, inc := range s.byID {
		if f.Matches(inc) {
			all = append(all, inc)
		}
	}
	slices.SortFunc(all, func(a, b *incident.Incident) int {
		if c := b.DetectedAt.Compare(a.DetectedAt); c != 0 {
			return c
		}
		if s.bug == bugTiesAscending {
			return cmp.Compare(a.ID, b.ID)
		}
		return cmp.Compare(b.ID, a.ID)
	})
	start := 0
	switch {
	case f.Cursor == "":
	case s.bug == bugOffsetCursor:
		n, err := strconv.Atoi(f.Cursor)
		if err != nil {
			return incident.Page{}, &incident.FilterError{Field: "Cursor", Reason: err.Error()}
		}
		start = min(n, len(all))
	default:
		c, err := incident.ParseCursor(f.Cursor)
		if err != nil && s.bug != bugLaxCursor {
			return incident.Page{}, err
		}
		if err == nil {
			start = len(all)
			for i, inc := range all {
				if c.Precedes(inc.DetectedAt, inc.ID) {
					start = i
					break
				}
			}
		}
	}
	end := min(start+f.PageSize(), len(all))
	var p incident.Page
	for _, inc := range all[start:end] {
		p.Incidents = append(p.Incidents, s.out(inc))
	}
	if end < len(all) {
		p.Next = incident.CursorAfter(all[end-1]).String()
		if s.bug == bugOffsetCursor {
			p.Next = strconv.Itoa(end)
		}
	}
	return p, nil
}

// ---- helpers ----

func TestNewIncidentIsValid(t *testing.T) {
	s := incident.NewMemStore()
	a := incidenttest.NewIncident("inc-1", "key-1")
	require.NoError(t, s.Create(t.Context(), a))
	assert.True(t, a.State.Open())
	assert.NoError(t, a.Timeline.Verify())

	a.Timeline[0].Detail = "changed"
	assert.Equal(t, "opened", incidenttest.NewIncident("inc-1", "key-1").Timeline[0].Detail, "each call returns a new value")
}

// TestFullIncidentSetsEveryField fails when incident.Incident (or a struct
// it holds) gains a field FullIncident leaves zero: the round trip would
// not check it.
func TestFullIncidentSetsEveryField(t *testing.T) {
	inc := incidenttest.FullIncident("inc-1", "key-1")
	set := map[string]bool{}
	nonZeroPaths(reflect.ValueOf(*inc), "Incident", set)
	var missing []string
	for _, p := range leafPaths(reflect.TypeFor[incident.Incident](), "Incident") {
		if !set[p] && p != "Incident.Version" {
			missing = append(missing, p)
		}
	}
	assert.Empty(t, missing, "FullIncident leaves these fields zero (in every element)")
	assert.True(t, inc.State.Open())
	assert.NoError(t, inc.Timeline.Verify())
	for _, tm := range []time.Time{inc.DetectedAt, inc.Timeline[1].At, inc.Decision.At} {
		assert.NotZero(t, tm.Nanosecond()%int(time.Millisecond), "times have a microsecond fraction")
		assert.Zero(t, tm.Nanosecond()%int(time.Microsecond), "times are whole microseconds")
		assert.NotEqual(t, time.UTC, tm.Location())
	}
}

var timeType = reflect.TypeFor[time.Time]()

// leafPaths lists the paths of the fields of t a value can set, with slice
// elements written as "[]".
func leafPaths(t reflect.Type, path string) []string {
	switch t.Kind() {
	case reflect.Pointer:
		return leafPaths(t.Elem(), path)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct && t.Elem() != timeType {
			return leafPaths(t.Elem(), path+"[]")
		}
	case reflect.Struct:
		if t == timeType {
			break
		}
		var out []string
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				out = append(out, leafPaths(f.Type, path+"."+f.Name)...)
			}
		}
		return out
	}
	return []string{path}
}

// nonZeroPaths records in set the paths of the fields of v that are not
// zero, in any slice element.
func nonZeroPaths(v reflect.Value, path string, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nonZeroPaths(v.Elem(), path, set)
		}
		return
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() != timeType {
			for i := range v.Len() {
				nonZeroPaths(v.Index(i), path+"[]", set)
			}
			return
		}
		if v.Len() > 1 { // a list with more than one element
			set[path] = true
		}
		return
	case reflect.Map:
		if v.Len() > 1 {
			set[path] = true
		}
		return
	case reflect.Struct:
		if v.Type() != timeType {
			for i := range v.NumField() {
				if f := v.Type().Field(i); f.IsExported() {
					nonZeroPaths(v.Field(i), path+"."+f.Name, set)
				}
			}
			return
		}
	}
	if !v.IsZero() {
		set[path] = true
	}
}

func TestNormalize(t *testing.T) {
	assert.Nil(t, incidenttest.Normalize(nil))

	inc := incidenttest.FullIncident("inc-1", "key-1")
	inc.DetectedAt = time.Now() // monotonic reading, local zone, nanoseconds
	orig := inc.Clone()
	n := incidenttest.Normalize(inc)
	assert.Equal(t, orig, inc, "Normalize must not change its argument")

	assert.Equal(t, time.UTC, n.DetectedAt.Location())
	assert.True(t, n.DetectedAt.Equal(inc.DetectedAt.Truncate(time.Microsecond)))
	assert.Equal(t, n.DetectedAt, n.DetectedAt.Round(0), "no monotonic clock reading")
	assert.Equal(t, time.UTC, n.Timeline[0].At.Location(), "nested times are normalised")
	assert.Equal(t, time.UTC, n.Investigation.At.Location(), "times behind pointers are normalised")
	assert.True(t, n.Timeline[0].At.Equal(inc.Timeline[0].At))
	require.NotEmpty(t, n.Milestones)
	for m, at := range n.Milestones {
		assert.Equal(t, time.UTC, at.Location(), "times in maps are normalised: Milestones[%s]", m)
		assert.True(t, at.Equal(inc.Milestones[m]), "Milestones[%s] keeps its instant", m)
	}
	assert.Equal(t, time.UTC, n.Actions[0].Approval.DecidedAt.Location(), "times behind pointers in slices are normalised")
	assert.Equal(t, time.UTC, n.Deadlines[0].Due.Location())

	// What a database may do to an incident normalises to the same value.
	db := inc.Clone()
	db.DetectedAt = db.DetectedAt.Round(0).UTC().Truncate(time.Microsecond).In(time.FixedZone("elsewhere", 7200))
	db.ContainedAt = db.ContainedAt.UTC()
	for m, at := range db.Milestones {
		db.Milestones[m] = at.UTC()
	}
	db.Deadlines[1].MetAt = db.Deadlines[1].MetAt.UTC()
	assert.Equal(t, n, incidenttest.Normalize(db))

	empty := incidenttest.NewIncident("inc-2", "key-2")
	empty.Attributes, empty.Actions, empty.Timeline = map[string]string{}, []incident.ActionRecord{}, incident.Timeline{}
	none := incidenttest.NewIncident("inc-2", "key-2")
	none.Timeline = nil
	assert.Equal(t, incidenttest.Normalize(none), incidenttest.Normalize(empty), "empty and nil lists are the same")

	other := inc.Clone()
	other.DetectedAt = other.DetectedAt.Add(time.Microsecond)
	assert.NotEqual(t, n, incidenttest.Normalize(other), "a microsecond is a difference")

	other = inc.Clone()
	other.Milestones[incident.MilestoneContained] = other.Milestones[incident.MilestoneContained].Add(time.Microsecond)
	assert.NotEqual(t, n, incidenttest.Normalize(other), "a microsecond in a map value is a difference")
}

// The suite's order check agrees with incidenttest.SortByDetected.
func TestSortByDetectedTies(t *testing.T) {
	a := incidenttest.NewIncident("b", "k1")
	b := incidenttest.NewIncident("a", "k2")
	b.DetectedAt = a.DetectedAt.In(time.FixedZone("x", 3600))
	list := []*incident.Incident{a, b}
	incidenttest.SortByDetected(list)
	assert.True(t, slices.IsSortedFunc(list, func(x, y *incident.Incident) int { return cmp.Compare(x.ID, y.ID) }))
}
