package incident_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
)

func TestListFilterValidate(t *testing.T) {
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	valid := incident.Cursor{DetectedAt: at, ID: "inc-1"}.String()
	for _, tc := range []struct {
		name   string
		filter incident.ListFilter
		field  string // "" for valid
	}{
		{"zero", incident.ListFilter{}, ""},
		{"everything", incident.ListFilter{States: []incident.State{incident.StateClosed}, Kind: "k", Account: "a",
			DetectedFrom: at, DetectedTo: at.Add(time.Hour), Limit: 7, Cursor: valid}, ""},
		{"empty range", incident.ListFilter{DetectedFrom: at, DetectedTo: at}, ""},
		{"only to", incident.ListFilter{DetectedTo: at}, ""},
		{"limit above the cap", incident.ListFilter{Limit: incident.MaxListLimit * 10}, ""},
		{"negative limit", incident.ListFilter{Limit: -1}, "Limit"},
		{"to before from", incident.ListFilter{DetectedFrom: at, DetectedTo: at.Add(-time.Nanosecond)}, "DetectedTo"},
		{"garbage cursor", incident.ListFilter{Cursor: "%%%"}, "Cursor"},
		{"another version", incident.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("c9:1:0:inc-1"))}, "Cursor"},
		{"no ID", incident.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("c1:1:0:"))}, "Cursor"},
		{"nanoseconds out of range", incident.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("c1:1:1000000000:inc-1"))}, "Cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.filter.Validate()
			if tc.field == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, incident.ErrInvalidFilter)
			var fe *incident.FilterError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.field, fe.Field)
			assert.Contains(t, err.Error(), "invalid list filter: "+tc.field)
		})
	}
}

func TestListFilterPageSize(t *testing.T) {
	for limit, want := range map[int]int{
		0: incident.DefaultListLimit, 1: 1, 7: 7, incident.MaxListLimit: incident.MaxListLimit,
		incident.MaxListLimit + 1: incident.MaxListLimit, -3: incident.DefaultListLimit,
	} {
		assert.Equal(t, want, incident.ListFilter{Limit: limit}.PageSize(), "Limit %d", limit)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []incident.Cursor{
		{DetectedAt: time.Date(2025, 3, 14, 9, 26, 53, 123456789, time.FixedZone("X", 3600)), ID: "inc_0123"},
		{DetectedAt: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), ID: "id:with:colons and spaces ✓"},
		{ID: "zero-time"},
	} {
		s := c.String()
		assert.Regexp(t, `^[A-Za-z0-9_-]+$`, s, "URL-safe")
		got, err := incident.ParseCursor(s)
		require.NoError(t, err)
		assert.True(t, c.DetectedAt.Equal(got.DetectedAt), "%s: %s", c.ID, got.DetectedAt)
		assert.Equal(t, c.ID, got.ID)
	}
}

func TestCursorPrecedes(t *testing.T) {
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	c := incident.Cursor{DetectedAt: at, ID: "inc-5"}
	assert.True(t, c.Precedes(at.Add(-time.Nanosecond), "inc-9"), "older comes later")
	assert.True(t, c.Precedes(at, "inc-4"), "same instant, smaller ID comes later")
	assert.False(t, c.Precedes(at, "inc-5"), "the cursor's own incident is on the page before")
	assert.False(t, c.Precedes(at, "inc-6"))
	assert.False(t, c.Precedes(at.Add(time.Nanosecond), "inc-0"), "newer comes earlier")
}

// registerSample is the register the golden files show: a notified
// incident, one not notified, one undecided with text that would break a
// table, and a dismissed one.
func registerSample() []*incident.Incident {
	full := incidenttest.FullIncident("inc-full", "key-full")
	full.State = incident.StateClosed
	full.Version = 9

	quiet := incidenttest.NewIncident("inc-quiet", "key-quiet")
	quiet.Kind, quiet.Account, quiet.Severity = "apikey.compromised", "acct_2", incident.SeverityHigh
	quiet.State = incident.StateClosed
	quiet.ClosedAt = quiet.DetectedAt.Add(2 * time.Hour)
	quiet.Decision = &incident.Decision{Notify: false, Reason: "the key was never used: no customer data affected",
		By: incident.ActorSystem, At: quiet.DetectedAt.Add(time.Hour)}
	quiet.Version = 4

	odd := incidenttest.NewIncident("inc-odd", "key-odd")
	odd.Subject = "a | pipe\nand a newline"
	odd.Account = "*bold* [link](http://x)"
	odd.Version = 1

	dismissed := incidenttest.NewIncident("inc-dismissed", "key-dismissed")
	dismissed.State = incident.StateDismissed
	dismissed.Dismissal = &incident.Dismissal{By: "carol@example.com", Reason: "false positive", At: dismissed.DetectedAt.Add(time.Minute)}
	dismissed.Decision = &incident.Decision{Notify: false, Reason: "dismissed", By: "carol@example.com", At: dismissed.DetectedAt.Add(time.Minute)}
	dismissed.Version = 2
	return []*incident.Incident{full, quiet, odd, dismissed}
}

func TestWriteJSONGolden(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, incident.WriteJSON(&b, registerSample()...))
	golden(t, "register.json", b.String())

	var back []*incident.Incident
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Len(t, back, 4)
	for i, want := range registerSample() {
		assert.Equal(t, incidenttest.Normalize(want), incidenttest.Normalize(back[i]), "%s round trip", want.ID)
		assert.NoError(t, back[i].Timeline.VerifyHead(want.Timeline.Head()))
	}

	b.Reset()
	require.NoError(t, incident.WriteJSON(&b))
	assert.Equal(t, "[]\n", b.String())
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONFieldNames: every field of the JSON form is snake_case; the
// keys of attributes and milestones are data and are left as they are.
func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(incidenttest.FullIncident("inc-1", "key-1"))
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				assert.Regexp(t, snakeCase, k, "field %s.%s", path, k)
				if k == "attributes" || k == "milestones" {
					continue
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("incident", v)
	assert.Contains(t, string(b), `"dedup_key":"key-1"`)
	assert.Contains(t, string(b), `"paused_ns":1800000000000`)
	assert.Contains(t, string(b), `"root_cause":`, "Findings' fields sit in investigation itself")
}

// TestJSONReadsOldFieldNames: testdata/incident_v0.json is FullIncident as
// releases before the register encoded it (Go's field names), plus an
// attribute whose key is a field's name, which must stay as it is. It
// predates what FullIncident has set since: the last three deliveries,
// Outreach, Chain, Impact.Affected and the collaboration fields
// (Commander, Evidence, MergedInto, Merged, Merging).
func TestJSONReadsOldFieldNames(t *testing.T) {
	b, err := os.ReadFile("testdata/incident_v0.json")
	require.NoError(t, err)
	require.Contains(t, string(b), `"DetectedAt":`)
	want := incidenttest.FullIncident("inc-legacy", "key-legacy")
	want.Version = 1
	want.Deliveries = want.Deliveries[:2]
	want.Outreach, want.Chain, want.Investigation.Impact.Affected = incident.Outreach{}, incident.Chain{}, 0
	want.Reopens, want.EnteredAt, want.Paging, want.Signals.MaxSeverity = 0, time.Time{}, nil, incident.SeverityUnknown
	want.Commander, want.Evidence, want.MergedInto, want.Merged, want.Merging = "", nil, "", nil, nil
	want.Attributes["DedupKey"] = "an attribute named like a field"

	var got incident.Incident
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, incidenttest.Normalize(want), incidenttest.Normalize(&got))
	assert.NoError(t, got.Timeline.VerifyHead(want.Timeline.Head()))

	// Written again, it is in the current form.
	again, err := json.Marshal(&got)
	require.NoError(t, err)
	assert.NotContains(t, string(again), `"DetectedAt":`)
	assert.Contains(t, string(again), `"DedupKey":"an attribute named like a field"`)
}

// TestJSONCurrentFormWithOldLookingAttribute: an attribute named
// "DedupKey" on a record in the current form does not confuse decoding.
func TestJSONCurrentFormWithOldLookingAttribute(t *testing.T) {
	inc := incidenttest.FullIncident("inc-1", "key-1")
	inc.Attributes["DedupKey"] = "x"
	inc.Attributes["Summary"] = "y"
	b, err := json.Marshal(inc)
	require.NoError(t, err)
	var got incident.Incident
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, incidenttest.Normalize(inc), incidenttest.Normalize(&got))
}

func TestJSONOldFormBadInput(t *testing.T) {
	var got incident.Incident
	err := json.Unmarshal([]byte(`{"DedupKey": "k", "Severity": "apocalyptic"}`), &got)
	assert.ErrorIs(t, err, incident.ErrUnknownSeverity)
}

func TestWriteMarkdownRegisterGolden(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, incident.WriteMarkdownRegister(&b, registerSample()...))
	got := b.String()
	golden(t, "register.md", got)

	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| inc") {
			rows = append(rows, l)
		}
	}
	require.Len(t, rows, 4, "one row per incident")
	for _, r := range rows {
		assert.Equal(t, 10, strings.Count(r, "|")-strings.Count(r, `\|`), "nine cells: %s", r)
	}
	assert.Contains(t, rows[0], "yes: customer data affected")
	assert.Contains(t, rows[1], "no: the key was never used: no customer data affected")
	assert.Contains(t, rows[2], "undecided")

	b.Reset()
	require.NoError(t, incident.WriteMarkdownRegister(&b))
	assert.Equal(t, "# Register of incidents\n\nNo incidents.\n", b.String())
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestExportWriterErrors(t *testing.T) {
	assert.ErrorIs(t, incident.WriteJSON(failWriter{}, registerSample()...), errWrite)
	assert.ErrorIs(t, incident.WriteMarkdownRegister(failWriter{}, registerSample()...), errWrite)
	bad := incidenttest.NewIncident("inc-bad", "key-bad")
	bad.Severity = 99
	assert.ErrorIs(t, incident.WriteJSON(&bytes.Buffer{}, bad), incident.ErrUnknownSeverity)
}

// BenchmarkUnmarshalJSON: decoding the current form, and the form of
// before the register, which is renamed first.
func BenchmarkUnmarshalJSON(b *testing.B) {
	current, err := json.Marshal(incidenttest.FullIncident("inc-1", "key-1"))
	require.NoError(b, err)
	old, err := os.ReadFile("testdata/incident_v0.json")
	require.NoError(b, err)
	for _, bc := range []struct {
		name string
		data []byte
	}{{"current", current}, {"old_field_names", old}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var inc incident.Incident
				if err := json.Unmarshal(bc.data, &inc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemStoreList reads a page of 50 from a MemStore holding 100,000
// incidents: MemStore looks at every incident for each page.
func BenchmarkMemStoreList(b *testing.B) {
	const n = 100_000
	s := incident.NewMemStore()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		inc := incidenttest.NewIncident(fmt.Sprintf("inc_%06d", i), fmt.Sprintf("key_%06d", i))
		inc.DetectedAt = base.Add(time.Duration(i) * time.Minute)
		inc.State = incident.StateClosed
		inc.Kind = fmt.Sprintf("kind_%d", i%10)
		require.NoError(b, s.Create(b.Context(), incident.Split(inc)))
	}
	mid := incident.Cursor{DetectedAt: base.Add(n / 2 * time.Minute), ID: fmt.Sprintf("inc_%06d", n/2)}.String()
	for _, bc := range []struct {
		name string
		f    incident.ListFilter
	}{
		{"first_page", incident.ListFilter{}},
		{"half_way", incident.ListFilter{Cursor: mid}},
		{"kind", incident.ListFilter{Kind: "kind_3"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p, err := s.List(b.Context(), bc.f); err != nil || len(p.Incidents) != incident.DefaultListLimit {
					b.Fatal(len(p.Incidents), err)
				}
			}
		})
	}
}
