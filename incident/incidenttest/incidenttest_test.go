package incidenttest_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
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
		// skip names groups of checks whose outcome the bug makes racy (an
		// aliasing store shared by goroutines is a data race). The Large
		// group, which takes long, is skipped too unless want names it.
		skip []string
		// failing subtests of TestBrokenStore, and a message each must show.
		want map[string]string
	}{
		{bug: bugAliasIn, skip: []string{"Concurrency"}, want: map[string]string{
			"Copies/Create": "changing the change passed to Create must not change the store",
			"Copies/Apply":  "changing the change passed to Apply must not change the store",
		}},
		{bug: bugAliasOut, skip: []string{"Concurrency"}, want: map[string]string{
			"Copies/Head":       "Head must return a copy",
			"Copies/FindOpen":   "FindOpen must return a copy",
			"Copies/ListOpen":   "ListOpen must return copies",
			"Copies/Entries":    "Entries must return copies",
			"Copies/Deliveries": "Deliveries must return copies",
			"Copies/Customers":  "Customers must return copies",
		}},
		{bug: bugNoCAS, want: map[string]string{
			"Apply/StaleVersion":              "Apply with a stale Version must fail with ErrConflict",
			"Apply/FutureVersion":             "Apply with a Version ahead of the store must fail with ErrConflict",
			"Atomic/ApplyRejected":            "Apply refused for future version",
			"Concurrency/ApplyFromOneVersion": "only ErrConflict may fail a concurrent Apply",
		}},
		{bug: bugNoDedup, want: map[string]string{
			"Create/DuplicateOpenKey":   "must fail with ErrDuplicate",
			"Concurrency/CreateSameKey": "exactly one must succeed",
		}},
		{bug: bugReopenDup, want: map[string]string{
			"Apply/ReopenDuplicate": "reopening while another open incident holds the dedup key must fail with ErrDuplicate",
		}},
		{bug: bugKeepsClosedKey, want: map[string]string{
			"Create/ClosedKeyReusable": "must be free for a new incident",
		}},
		{bug: bugNoCallerVersion, want: map[string]string{
			"Create/SetsVersion": "Create must set Version 1 on the change's head",
		}},
		{bug: bugIgnoreCtx, want: map[string]string{
			"Context/Create":     "Create with a cancelled context must return its error",
			"Context/Head":       "Head with a cancelled context must return its error",
			"Context/Apply":      "Apply with a cancelled context must return its error",
			"Context/FindOpen":   "FindOpen with a cancelled context must return its error",
			"Context/ListOpen":   "ListOpen with a cancelled context must return its error",
			"Context/Entries":    "Entries with a cancelled context must return its error",
			"Context/Deliveries": "Deliveries with a cancelled context must return its error",
			"Context/Customers":  "Customers with a cancelled context must return its error",
			"Lease/Context":      "Renew with a cancelled context must return its error",
		}},
		{bug: bugUnordered, want: map[string]string{
			"ListOpen/Order": "ListOpen must order by DetectedAt",
		}},
		{bug: bugMilliseconds, want: map[string]string{
			"RoundTrip/FullIncident":         "Load must return every field as stored",
			"RoundTrip/MicrosecondPrecision": "a store must keep times to the microsecond",
		}},
		{bug: bugDropsTasks, want: map[string]string{
			"RoundTrip/FullIncident": "Load must return every field as stored",
		}},
		{bug: bugPartialWrite, want: map[string]string{
			"Atomic/CreateRejected": "a Create refused for existing ID must write none of its parts",
			"Atomic/ApplyRejected":  "an Apply refused for stale version must write none of its parts",
			"Apply/StaleVersion":    "write none of the loser's parts",
		}},
		{bug: bugNoChainCheck, want: map[string]string{
			"Chain/ApplyMismatch": "Apply whose entries do not continue the stored chain (entries recorded on a stale head)",
		}},
		{bug: bugHeadParts, want: map[string]string{
			"Chain/HeadWithParts": "Apply with a head that holds Deliveries must fail with ErrInvalidIncident",
		}},
		{bug: bugAppendsDeliveries, want: map[string]string{
			"Deliveries/ByKey": "a delivery written twice with one IdempotencyKey must be one delivery",
		}},
		{bug: bugReplacedMoves, want: map[string]string{
			"Deliveries/ByKey":       "in the place it was first written",
			"RoundTrip/FullIncident": "a replaced delivery keeps its place",
		}},
		{bug: bugUnknownAfter, want: map[string]string{
			"Deliveries/UnknownAfter": "must be an empty page",
		}},
		{bug: bugKeysUnordered, want: map[string]string{
			"Deliveries/Keys": "Deliveries in the order of Keys",
		}},
		{bug: bugDeliveriesGlobal, want: map[string]string{
			"Deliveries/PerIncident": "writing a delivery of one incident must not change another's with the same key",
		}},
		{bug: bugCustomersByID, want: map[string]string{
			"Customers/ByKey": "customers are keyed by ID, or Email when the ID is empty",
		}},
		{bug: bugEntriesLimit, want: map[string]string{
			"Entries/Limits": "Entries with a negative limit must fail with ErrInvalidFilter",
		}},
		{bug: bugRewritesWhole, want: map[string]string{
			"Large/ApplyCost": "a change must cost what it holds, not what the incident holds",
		}},
		{bug: bugRenewsExpired, want: map[string]string{
			"Lease/RenewSkipsExpired": "a lease that ran out must not be renewed",
		}},
		{bug: bugOrphansKeepEnded, want: map[string]string{
			"Lease/Orphans": "and no ended one",
		}},
		{bug: bugKeepsLeaseOnEnd, want: map[string]string{
			"Lease/EndingGivesUp": "the Apply that ended the incident must give up its lease",
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
		{bug: bugOverwritesKept, want: map[string]string{
			"Frozen/KeptAfterLaterWrites": "frozen version 2 must be left as it was by the writes after it",
		}},
		{bug: bugStampsHead, want: map[string]string{
			"Frozen/Create":  "Create must change nothing of a frozen head but its Version",
			"Frozen/Apply":   "Apply must change nothing of a frozen head but its Version",
			"Frozen/Refused": "a refused Apply must leave a frozen head as it was",
		}},
	} {
		t.Run(string(tc.bug), func(t *testing.T) {
			t.Parallel()
			skip := tc.skip
			if !slices.ContainsFunc(slices.Collect(maps.Keys(tc.want)), func(sub string) bool { return strings.HasPrefix(sub, "Large/") }) {
				skip = append(skip, "Large")
			}
			args := []string{"-test.run=^TestBrokenStore$", "-test.v", "-test.count=1",
				"-test.skip=^TestBrokenStore$/^(" + strings.Join(skip, "|") + ")$"}
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
			assert.Contains(t, string(out), "--- PASS: TestBrokenStore/Head/NotFound ")
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
	bugAliasIn           bug = "alias-in"           // keeps the caller's head and parts on Create and Apply
	bugAliasOut          bug = "alias-out"          // returns its own head and parts from the readers
	bugNoCAS             bug = "no-cas"             // Apply ignores Version
	bugNoDedup           bug = "no-dedup"           // Create allows two open incidents per key
	bugReopenDup         bug = "reopen-dup"         // Apply does not check the key on reopen
	bugKeepsClosedKey    bug = "keeps-closed-key"   // a closed incident still holds its key
	bugNoCallerVersion   bug = "no-caller-version"  // Create and Apply leave the change's Version alone
	bugIgnoreCtx         bug = "ignore-ctx"         // no method looks at ctx
	bugUnordered         bug = "unordered"          // ListOpen in reverse order
	bugMilliseconds      bug = "milliseconds"       // times kept to the millisecond
	bugDropsTasks        bug = "drops-tasks"        // Tasks are not stored
	bugPartialWrite      bug = "partial-write"      // a refused change still writes its parts
	bugNoChainCheck      bug = "no-chain-check"     // Apply does not check the chain against the stored one
	bugHeadParts         bug = "head-parts"         // a head holding parts is accepted (the parts dropped)
	bugAppendsDeliveries bug = "appends-deliveries" // a delivery written again is added, not replaced
	bugReplacedMoves     bug = "replaced-moves"     // a delivery written again moves to the end
	bugUnknownAfter      bug = "unknown-after"      // an After that is no key starts from the first delivery
	bugKeysUnordered     bug = "keys-unordered"     // Keys come back in the order written
	bugDeliveriesGlobal  bug = "deliveries-global"  // a delivery written replaces every incident's with its key
	bugCustomersByID     bug = "customers-by-id"    // customers keyed by ID alone, so those with only an Email collide
	bugEntriesLimit      bug = "entries-limit"      // Entries checks neither limit nor from
	bugRewritesWhole     bug = "rewrites-whole"     // every change rewrites (and re-verifies) the whole record
	bugRenewsExpired     bug = "renews-expired"     // Renew extends leases that ran out
	bugOrphansKeepEnded  bug = "orphans-keep-ended" // Orphans lists ended incidents
	bugKeepsLeaseOnEnd   bug = "keeps-lease-on-end" // the Apply that ends an incident keeps its leases
	bugOffsetCursor      bug = "offset-cursor"      // List pages by offset, not by position
	bugTiesAscending     bug = "ties-ascending"     // List breaks DetectedAt ties by ID ascending
	bugNoStateFilter     bug = "no-state-filter"    // List ignores ListFilter.States
	bugLaxCursor         bug = "lax-cursor"         // List starts over on a malformed cursor
	bugStampsHead        bug = "stamps-head"        // Create and Apply stamp the caller's head, as an ORM's hooks do
	bugOverwritesKept    bug = "overwrites-kept"    // a frozen head is kept, and a later write copied over it in place
)

// naiveRecord is one incident in a naiveStore.
type naiveRecord struct {
	head      *incident.Incident
	frozen    bool // head is a frozen head kept as it was handed in (bugOverwritesKept)
	entries   incident.Timeline
	dels      []incident.Delivery
	delAt     map[string]int // idempotency key → index in dels
	customers []incident.Customer
	custAt    map[string]int // customer key → index in customers
}

type naiveLease struct {
	owner string
	until time.Time
}

type naiveStore struct {
	bug    bug
	mu     sync.Mutex
	byID   map[string]*naiveRecord
	leases map[string]naiveLease
}

var (
	_ incident.Store  = (*naiveStore)(nil)
	_ incident.Leaser = (*naiveStore)(nil)
	_ incident.Lister = (*naiveStore)(nil)
)

func (s *naiveStore) ctxErr(ctx context.Context) error {
	if s.bug == bugIgnoreCtx {
		return nil
	}
	return ctx.Err()
}

func invalid(why string) error { return fmt.Errorf("naive: %s: %w", why, incident.ErrInvalidIncident) }

// storable checks the head's own fields.
func storable(h *incident.Incident) error {
	if h == nil || h.ID == "" || h.DedupKey == "" || h.State == "" {
		return invalid("not storable")
	}
	return nil
}

// check validates ch against the stored chain, as incident.Change.Check
// does, with the bugs that loosen it.
func (s *naiveStore) check(ch incident.Change, stored incident.Chain, create bool) error {
	h := ch.Head
	if err := storable(h); err != nil {
		return err
	}
	if s.bug != bugHeadParts && (len(h.Timeline) > 0 || len(h.Deliveries) > 0 ||
		h.Investigation != nil && len(h.Investigation.Impact.Customers) > 0) {
		return invalid("head holds parts")
	}
	if s.bug != bugNoChainCheck || create {
		want := stored.Head
		if len(ch.Entries) > 0 {
			want = ch.Entries[len(ch.Entries)-1].Hash
		}
		if h.Chain.Len != stored.Len+len(ch.Entries) || h.Chain.Head != want {
			return invalid("chain")
		}
	}
	for _, d := range ch.Deliveries {
		if d.IdempotencyKey == "" {
			return invalid("delivery without a key")
		}
	}
	for _, c := range ch.Customers {
		if incident.RecipientID(c) == "" {
			return invalid("customer without a key")
		}
	}
	return nil
}

func (s *naiveStore) in(h *incident.Incident) *incident.Incident {
	if s.bug == bugAliasIn {
		return h
	}
	c := h.Clone()
	c.Timeline, c.Deliveries = nil, nil // dropped, for bugHeadParts
	if c.Investigation != nil {
		c.Investigation.Impact.Customers = nil
	}
	switch s.bug {
	case bugMilliseconds:
		c.DetectedAt = c.DetectedAt.Truncate(time.Millisecond)
	case bugDropsTasks:
		c.Tasks = nil
	}
	return c
}

func (s *naiveStore) out(h *incident.Incident) *incident.Incident {
	if s.bug == bugAliasOut {
		return h
	}
	return h.Clone()
}

func (s *naiveStore) customerKey(c incident.Customer) string {
	if s.bug == bugCustomersByID {
		return c.ID
	}
	return incident.RecipientID(c)
}

// openWith returns the ID of an open incident with key other than id.
func (s *naiveStore) openWith(key, id string) (string, bool) {
	if s.bug == bugNoDedup {
		return "", false
	}
	for _, r := range s.byID {
		if r.head.ID != id && r.head.DedupKey == key && (r.head.State.Open() || s.bug == bugKeepsClosedKey) {
			return r.head.ID, true
		}
	}
	return "", false
}

// writeParts appends ch's entries to r and writes its deliveries and
// customers by key.
func (s *naiveStore) writeParts(r *naiveRecord, ch incident.Change) {
	if s.bug == bugAliasIn && r.entries == nil && r.dels == nil && r.customers == nil {
		r.entries, r.dels, r.customers = ch.Entries, ch.Deliveries, ch.Customers
		r.reindex(s)
		return
	}
	r.entries = append(r.entries, ch.Entries...)
	for _, d := range ch.Deliveries {
		if s.bug == bugDeliveriesGlobal {
			for _, other := range s.byID {
				if i, ok := other.delAt[d.IdempotencyKey]; ok && other != r {
					other.dels[i] = d
				}
			}
		}
		i, ok := r.delAt[d.IdempotencyKey]
		switch {
		case ok && s.bug == bugReplacedMoves:
			r.dels = append(slices.Delete(r.dels, i, i+1), d)
			r.reindex(s)
		case ok && s.bug != bugAppendsDeliveries:
			r.dels[i] = d
		default:
			if r.delAt == nil {
				r.delAt = map[string]int{}
			}
			r.delAt[d.IdempotencyKey] = len(r.dels)
			r.dels = append(r.dels, d)
		}
	}
	for _, c := range ch.Customers {
		k := s.customerKey(c)
		if i, ok := r.custAt[k]; ok {
			r.customers[i] = c
			continue
		}
		if r.custAt == nil {
			r.custAt = map[string]int{}
		}
		r.custAt[k] = len(r.customers)
		r.customers = append(r.customers, c)
	}
	if s.bug == bugRewritesWhole {
		r.entries = slices.Clone(r.entries)
		r.dels = slices.Clone(r.dels)
		r.customers = slices.Clone(r.customers)
		if err := r.entries.Verify(); err != nil {
			panic(err)
		}
		r.reindex(s)
	}
}

// reindex rebuilds r's maps from its slices.
func (r *naiveRecord) reindex(s *naiveStore) {
	r.delAt = make(map[string]int, len(r.dels))
	for i, d := range r.dels {
		r.delAt[d.IdempotencyKey] = i
	}
	r.custAt = make(map[string]int, len(r.customers))
	for i, c := range r.customers {
		r.custAt[s.customerKey(c)] = i
	}
}

func (s *naiveStore) Create(ctx context.Context, ch incident.Change) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	if err := s.check(ch, incident.Chain{}, true); err != nil {
		return err
	}
	h := ch.Head
	s.stamp(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[string]*naiveRecord)
	}
	if r, ok := s.byID[h.ID]; ok {
		if s.bug == bugPartialWrite {
			s.writeParts(r, ch)
		}
		return invalid("ID exists")
	}
	if id, ok := s.openWith(h.DedupKey, h.ID); ok && h.State.Open() {
		return &incident.DuplicateError{DedupKey: h.DedupKey, ExistingID: id}
	}
	r := &naiveRecord{head: s.in(h)}
	r.head.Version = 1
	s.writeParts(r, ch)
	s.byID[h.ID] = r
	if s.bug != bugNoCallerVersion {
		h.Version = 1
	}
	return nil
}

func (s *naiveStore) Apply(ctx context.Context, ch incident.Change) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	h := ch.Head
	if err := storable(h); err != nil {
		return err
	}
	s.stamp(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[h.ID]
	if !ok {
		return fmt.Errorf("naive: %s: %w", h.ID, incident.ErrNotFound)
	}
	if s.bug == bugPartialWrite {
		s.writeParts(r, ch)
	}
	if r.head.Version != h.Version && s.bug != bugNoCAS {
		return &incident.ConflictError{ID: h.ID, Expected: h.Version, Actual: r.head.Version}
	}
	if err := s.check(ch, r.head.Chain, false); err != nil {
		return err
	}
	if id, ok := s.openWith(h.DedupKey, h.ID); ok && h.State.Open() &&
		(s.bug != bugReopenDup || r.head.State.Open()) {
		return &incident.DuplicateError{DedupKey: h.DedupKey, ExistingID: id}
	}
	version := r.head.Version + 1
	switch next := s.in(h); {
	case s.bug == bugOverwritesKept && r.frozen:
		*r.head = *next // into the caller's frozen head, kept
	case s.bug == bugOverwritesKept && ch.Frozen:
		r.head, r.frozen = h, true
	default:
		r.head = next
	}
	r.head.Version = version
	if !h.State.Open() && s.bug != bugKeepsLeaseOnEnd {
		delete(s.leases, h.ID)
	}
	if s.bug != bugPartialWrite {
		s.writeParts(r, ch)
	}
	if s.bug != bugNoCallerVersion {
		h.Version = version
	}
	return nil
}

// stamp is bugStampsHead's: the time of the write set on the caller's
// head, before the write is checked.
func (s *naiveStore) stamp(h *incident.Incident) {
	if s.bug == bugStampsHead {
		h.UpdatedAt = h.UpdatedAt.Add(time.Second)
	}
}

func (s *naiveStore) record(id string) (*naiveRecord, error) {
	r, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("naive: %s: %w", id, incident.ErrNotFound)
	}
	return r, nil
}

func (s *naiveStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return nil, err
	}
	return s.out(r.head), nil
}

func (s *naiveStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.byID {
		if r.head.DedupKey == key && r.head.State.Open() {
			return s.out(r.head), nil
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
	for _, r := range s.byID {
		if r.head.State.Open() {
			out = append(out, s.out(r.head))
		}
	}
	incidenttest.SortByDetected(out)
	if s.bug == bugUnordered {
		slices.Reverse(out)
	}
	return out, nil
}

// page returns all[start:end] as the readers hand it out.
func page[T any](s *naiveStore, all []T, start, end int) []T {
	if start >= end {
		return nil
	}
	if s.bug == bugAliasOut {
		return all[start:end]
	}
	return slices.Clone(all[start:end])
}

func (s *naiveStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	n := incident.PartPage(limit)
	if s.bug == bugEntriesLimit {
		from = max(from, 0)
		if n = limit; n <= 0 {
			n = incident.DefaultPageSize
		}
	} else {
		if err := incident.CheckLimit(limit); err != nil {
			return nil, err
		}
		if from < 0 {
			return nil, &incident.FilterError{Field: "from", Reason: "negative"}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return nil, err
	}
	return page(s, r.entries, from, min(len(r.entries), from+n)), nil
}

func (s *naiveStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return nil, err
	}
	keep := func(d incident.Delivery) bool { return q.Status == "" || d.Status == q.Status }
	var out []incident.Delivery
	if len(q.Keys) > 0 {
		if s.bug == bugKeysUnordered {
			for _, d := range r.dels {
				if slices.Contains(q.Keys, d.IdempotencyKey) && keep(d) {
					out = append(out, d)
				}
			}
			return out, nil
		}
		for _, k := range q.Keys {
			if i, ok := r.delAt[k]; ok && keep(r.dels[i]) {
				out = append(out, r.dels[i])
			}
		}
		return out, nil
	}
	start := 0
	if q.After != "" {
		i, ok := r.delAt[q.After]
		switch {
		case ok:
			start = i + 1
		case s.bug != bugUnknownAfter:
			return nil, nil
		}
	}
	if q.Status == "" {
		return page(s, r.dels, start, min(len(r.dels), start+q.PageSize())), nil
	}
	for i := start; i < len(r.dels) && len(out) < q.PageSize(); i++ {
		if keep(r.dels[i]) {
			out = append(out, r.dels[i])
		}
	}
	return out, nil
}

func (s *naiveStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := incident.CheckLimit(limit); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return nil, err
	}
	start := 0
	if after != "" {
		i, ok := r.custAt[after]
		if !ok {
			return nil, nil
		}
		start = i + 1
	}
	return page(s, r.customers, start, min(len(r.customers), start+incident.PartPage(limit))), nil
}

func (s *naiveStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if err := s.ctxErr(ctx); err != nil {
		return false, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[id]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	if s.leases == nil {
		s.leases = map[string]naiveLease{}
	}
	s.leases[id] = naiveLease{owner: owner, until: now.Add(ttl)}
	return true, nil
}

func (s *naiveStore) Unlease(ctx context.Context, id, owner string) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[id]; ok && l.owner == owner {
		delete(s.leases, id)
	}
	return nil
}

func (s *naiveStore) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	held := map[string]int64{}
	for id, l := range s.leases {
		if l.owner == owner && (now.Before(l.until) || s.bug == bugRenewsExpired) {
			s.leases[id] = naiveLease{owner: owner, until: now.Add(ttl)}
			held[id] = 0
			if r, ok := s.byID[id]; ok {
				held[id] = r.head.Version
			}
		}
	}
	return held, nil
}

func (s *naiveStore) Orphans(ctx context.Context, limit int) ([]string, error) {
	if err := s.ctxErr(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var heads []*incident.Incident
	for id, r := range s.byID {
		if l, ok := s.leases[id]; ok && now.Before(l.until) {
			continue
		}
		if r.head.State.Open() || s.bug == bugOrphansKeepEnded {
			heads = append(heads, r.head)
		}
	}
	incidenttest.SortByDetected(heads)
	if limit > 0 && len(heads) > limit {
		heads = heads[:limit]
	}
	ids := make([]string, len(heads))
	for i, h := range heads {
		ids[i] = h.ID
	}
	return ids, nil
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
	for _, r := range s.byID {
		if f.Matches(r.head) {
			all = append(all, r.head)
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
	require.NoError(t, s.Create(t.Context(), incident.Split(a)))
	assert.True(t, a.State.Open())
	assert.NoError(t, a.Timeline.VerifyHead(a.Chain.Head))
	assert.Equal(t, incident.Chain{Len: 1, Head: a.Timeline.Head()}, a.Chain)
	assert.Zero(t, a.Version, "Split copies: Create sets the Version of the change's head")

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
	assert.NoError(t, inc.Timeline.VerifyHead(inc.Chain.Head))
	assert.Equal(t, len(inc.Timeline), inc.Chain.Len)
	assert.Equal(t, len(inc.Deliveries), inc.Outreach.Total(), "Outreach counts the deliveries")
	assert.Equal(t, len(inc.Investigation.Impact.Customers), inc.Investigation.Impact.Affected, "Affected counts the customers")
	assert.NoError(t, incident.Split(inc).Check(incident.Chain{}), "Split(FullIncident) is a valid Create")
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
