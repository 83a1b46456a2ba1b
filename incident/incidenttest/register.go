package incidenttest

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// The List group: stores that implement incident.Lister (the register).

var listChecks = []check{
	{"EveryIncident", listEveryIncident},
	{"Filters", listFilters},
	{"Pages", listPages},
	{"CursorSurvivesInserts", listCursorSurvivesInserts},
	{"InvalidFilter", listInvalidFilter},
	{"DefaultLimit", listDefaultLimit},
	{"Copies", listCopies},
	{"Context", listContext},
}

// lister returns s as an incident.Lister, or skips the check.
func lister(t *testing.T, s incident.Store) incident.Lister {
	t.Helper()
	l, ok := s.(incident.Lister)
	if !ok {
		t.Skipf("%T does not implement incident.Lister", s)
	}
	return l
}

func mustList(t *testing.T, l incident.Lister, f incident.ListFilter) incident.Page {
	t.Helper()
	p, err := l.List(t.Context(), f)
	require.NoError(t, err, "List %+v", f)
	return p
}

// listAll pages through f with its Limit and returns every incident, in
// the order the pages gave them, and the number of pages.
func listAll(t *testing.T, l incident.Lister, f incident.ListFilter) ([]*incident.Incident, int) {
	t.Helper()
	var all []*incident.Incident
	pages := 0
	for {
		p := mustList(t, l, f)
		pages++
		require.LessOrEqual(t, len(p.Incidents), f.PageSize(), "a page holds at most PageSize incidents")
		all = append(all, p.Incidents...)
		if p.Next == "" {
			return all, pages
		}
		require.NotEmpty(t, p.Incidents, "a page with a Next cursor must not be empty")
		require.Less(t, pages, 10_000, "List keeps returning a Next cursor")
		f.Cursor = p.Next
	}
}

// registerIncident returns a small incident detected minutes after t0.
func registerIncident(id string, minutes int) *incident.Incident {
	inc := NewIncident(id, "key-"+id)
	inc.DetectedAt = t0.Add(time.Duration(minutes) * time.Minute)
	inc.UpdatedAt = inc.DetectedAt
	return inc
}

// newestFirst returns the IDs of incs in the register's order.
func newestFirst(incs []*incident.Incident) []string {
	c := slices.Clone(incs)
	slices.SortFunc(c, func(a, b *incident.Incident) int {
		if d := b.DetectedAt.Compare(a.DetectedAt); d != 0 {
			return d
		}
		return strings.Compare(b.ID, a.ID)
	})
	return ids(c)
}

func listEveryIncident(t *testing.T, s incident.Store) {
	l := lister(t, s)
	p := mustList(t, l, incident.ListFilter{})
	assert.Empty(t, p.Incidents, "an empty store")
	assert.Empty(t, p.Next, "an empty store has one page")

	var all []*incident.Incident
	for i, state := range allStates() {
		inc := registerIncident(fmt.Sprintf("inc-%02d", i), i)
		inc.State = state
		all = append(all, mustCreate(t, s, inc).head)
	}
	p = mustList(t, l, incident.ListFilter{})
	assert.Equal(t, newestFirst(all), ids(p.Incidents), "the zero filter lists every incident, open or ended, newest first")
	assert.Empty(t, p.Next)
	for _, got := range p.Incidents {
		want := all[slices.IndexFunc(all, func(inc *incident.Incident) bool { return inc.ID == got.ID })]
		assertSame(t, want, got, "List must return each incident's head")
	}
}

func listFilters(t *testing.T, s incident.Store) {
	l := lister(t, s)
	type spec struct {
		id      string
		minutes int
		state   incident.State
		kind    string
		account string
	}
	specs := []spec{
		{"inc-a", 0, incident.StateDetected, "apikey.leaked", "acct-1"},
		{"inc-b", 10, incident.StateClosed, "apikey.leaked", "acct-2"},
		{"inc-c", 20, incident.StateDismissed, "login.bruteforce", "acct-1"},
		{"inc-d", 30, incident.StateContaining, "login.bruteforce", ""},
		{"inc-e", 40, incident.StateClosed, "apikey.leaked", "acct-1"},
		{"inc-f", 40, incident.StateNotifying, "data.export", "acct-3"}, // same instant as inc-e
	}
	for _, sp := range specs {
		inc := registerIncident(sp.id, sp.minutes)
		inc.State, inc.Kind, inc.Account = sp.state, sp.kind, sp.account
		mustCreate(t, s, inc)
	}
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	for _, tc := range []struct {
		name   string
		filter incident.ListFilter
		want   []string
	}{
		{"none", incident.ListFilter{}, []string{"inc-f", "inc-e", "inc-d", "inc-c", "inc-b", "inc-a"}},
		{"one state", incident.ListFilter{States: []incident.State{incident.StateClosed}}, []string{"inc-e", "inc-b"}},
		{"states", incident.ListFilter{States: []incident.State{incident.StateDismissed, incident.StateDetected}}, []string{"inc-c", "inc-a"}},
		{"state without incidents", incident.ListFilter{States: []incident.State{incident.StateResolved}}, nil},
		{"kind", incident.ListFilter{Kind: "apikey.leaked"}, []string{"inc-e", "inc-b", "inc-a"}},
		{"account", incident.ListFilter{Account: "acct-1"}, []string{"inc-e", "inc-c", "inc-a"}},
		{"from, inclusive", incident.ListFilter{DetectedFrom: at(30)}, []string{"inc-f", "inc-e", "inc-d"}},
		{"to, exclusive", incident.ListFilter{DetectedTo: at(20)}, []string{"inc-b", "inc-a"}},
		{"range", incident.ListFilter{DetectedFrom: at(10), DetectedTo: at(40)}, []string{"inc-d", "inc-c", "inc-b"}},
		{"empty range", incident.ListFilter{DetectedFrom: at(10), DetectedTo: at(10)}, nil},
		{"range in another zone", incident.ListFilter{DetectedFrom: at(40).In(time.FixedZone("X", -7*3600))}, []string{"inc-f", "inc-e"}},
		{"all together", incident.ListFilter{
			States: []incident.State{incident.StateClosed, incident.StateDetected}, Kind: "apikey.leaked",
			Account: "acct-1", DetectedFrom: at(0), DetectedTo: at(41),
		}, []string{"inc-e", "inc-a"}},
		{"nothing matches", incident.ListFilter{Kind: "apikey.leaked", Account: "acct-3"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := listAll(t, l, tc.filter)
			assert.Equal(t, tc.want, nilIfEmpty(ids(got)), "List %+v", tc.filter)
			// The same, two at a time.
			tc.filter.Limit = 2
			got, _ = listAll(t, l, tc.filter)
			assert.Equal(t, tc.want, nilIfEmpty(ids(got)), "List %+v, paged", tc.filter)
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// createRegister stores n incidents, three to a minute (so that ties on
// DetectedAt are common), in a shuffled order, and returns them (as
// whole incidents).
func createRegister(t *testing.T, s incident.Store, n int) []*incident.Incident {
	t.Helper()
	incs := make([]*incident.Incident, n)
	for i := range n {
		incs[i] = registerIncident(fmt.Sprintf("inc-%03d", i), i/3)
		if i%5 == 0 {
			incs[i].State = incident.StateClosed
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = (i * 37) % n // a fixed shuffle; 37 is prime to the sizes used
	}
	for _, i := range order {
		mustCreate(t, s, incs[i])
	}
	return incs
}

func listPages(t *testing.T, s incident.Store) {
	l := lister(t, s)
	const n, limit = 120, 7
	incs := createRegister(t, s, n)
	got, pages := listAll(t, l, incident.ListFilter{Limit: limit})
	assert.Equal(t, newestFirst(incs), ids(got), "paging by %d must visit each of %d incidents exactly once, in order", limit, n)
	assert.Equal(t, (n+limit-1)/limit, pages, "pages of %d for %d incidents", limit, n)

	// A page size that divides the total: the last full page may carry a
	// Next that leads to an empty page, or none; either way nothing is lost.
	got, _ = listAll(t, l, incident.ListFilter{Limit: 10})
	assert.Equal(t, newestFirst(incs), ids(got), "pages of 10")

	// Filters hold across pages.
	closed := incident.ListFilter{States: []incident.State{incident.StateClosed}, Limit: limit}
	got, _ = listAll(t, l, closed)
	var want []*incident.Incident
	for _, inc := range incs {
		if inc.State == incident.StateClosed {
			want = append(want, inc)
		}
	}
	assert.Equal(t, newestFirst(want), ids(got), "closed incidents, paged by %d", limit)
}

func listCursorSurvivesInserts(t *testing.T, s incident.Store) {
	l := lister(t, s)
	const n, limit = 120, 7
	incs := createRegister(t, s, n)
	f := incident.ListFilter{Limit: limit}
	var got []*incident.Incident
	extra := 0
	for page := 0; ; page++ {
		p := mustList(t, l, f)
		got = append(got, p.Incidents...)
		if p.Next == "" {
			break
		}
		require.Less(t, page, 1000)
		// Between pages, others create incidents: newer than all, at the
		// very instant of the cursor's position, and older than all.
		last := p.Incidents[len(p.Incidents)-1]
		for _, inc := range []*incident.Incident{
			registerIncident(fmt.Sprintf("new-%03d-newest", page), 10_000+page),
			registerIncident(fmt.Sprintf("new-%03d-tie", page), 0),
			registerIncident(fmt.Sprintf("new-%03d-oldest", page), -1-page),
		} {
			if strings.HasSuffix(inc.ID, "-tie") {
				inc.DetectedAt = last.DetectedAt
			}
			mustCreate(t, s, inc)
			extra++
		}
		f.Cursor = p.Next
	}
	seen := map[string]int{}
	var old []*incident.Incident
	for _, inc := range got {
		seen[inc.ID]++
		if strings.HasPrefix(inc.ID, "inc-") {
			old = append(old, inc)
		}
	}
	for id, k := range seen {
		assert.Equal(t, 1, k, "incident %s returned %d times", id, k)
	}
	assert.Equal(t, newestFirst(incs), ids(old),
		"with %d incidents created while paging, every incident of before must be visited once, in order", extra)
	assert.Equal(t, newestFirst(got), ids(got), "the pages together are in the register's order")
}

func listInvalidFilter(t *testing.T, s incident.Store) {
	l := lister(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	p := mustList(t, l, incident.ListFilter{Limit: 1})
	valid := p.Next
	if valid == "" {
		// One incident, one page: make a second so that there is a cursor.
		mustCreate(t, s, registerIncident("inc-2", 1))
		valid = mustList(t, l, incident.ListFilter{Limit: 1}).Next
	}
	require.NotEmpty(t, valid)
	for _, tc := range []struct {
		name   string
		filter incident.ListFilter
		field  string
	}{
		{"negative limit", incident.ListFilter{Limit: -1}, "Limit"},
		{"to before from", incident.ListFilter{DetectedFrom: t0, DetectedTo: t0.Add(-time.Microsecond)}, "DetectedTo"},
		{"garbage cursor", incident.ListFilter{Cursor: "not a cursor!"}, "Cursor"},
		{"base64 of garbage", incident.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("garbage"))}, "Cursor"},
		{"truncated cursor", incident.ListFilter{Cursor: valid[:len(valid)/2]}, "Cursor"},
		{"cursor with a bad position", incident.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("c1:x:y:inc-1"))}, "Cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.List(t.Context(), tc.filter)
			require.ErrorIs(t, err, incident.ErrInvalidFilter, "List with a bad filter must fail with ErrInvalidFilter: %+v", tc.filter)
			var fe *incident.FilterError
			if assert.ErrorAs(t, err, &fe) {
				assert.Equal(t, tc.field, fe.Field)
			}
		})
	}
}

func listDefaultLimit(t *testing.T, s incident.Store) {
	l := lister(t, s)
	n := incident.DefaultListLimit + 5
	createRegister(t, s, n)
	p := mustList(t, l, incident.ListFilter{})
	assert.Len(t, p.Incidents, incident.DefaultListLimit, "Limit 0 means DefaultListLimit")
	assert.NotEmpty(t, p.Next)
	rest := mustList(t, l, incident.ListFilter{Cursor: p.Next, Limit: incident.MaxListLimit + 1})
	assert.Len(t, rest.Incidents, 5, "a Limit above MaxListLimit is capped, not refused")
	assert.Empty(t, rest.Next)
}

func listCopies(t *testing.T, s incident.Store) {
	l := lister(t, s)
	r := mustCreate(t, s, FullIncident("inc-1", "key-1"))
	p := mustList(t, l, incident.ListFilter{})
	require.Len(t, p.Incidents, 1)
	assertSame(t, r.head, p.Incidents[0], "List must return every field of the head as stored")
	mutate(p.Incidents[0])
	assertStored(t, s, r, "changing what List returned must not change the store: List must return copies")
}

func listContext(t *testing.T, s incident.Store) {
	l := lister(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	_, err := l.List(cancelled(t), incident.ListFilter{})
	assert.ErrorIs(t, err, context.Canceled, "List with a cancelled context must return its error")
}
