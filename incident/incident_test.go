package incident_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// fullIncident sets every slice, map and pointer field.
func fullIncident() *incident.Incident {
	inc := &incident.Incident{
		ID:                    "i1",
		Kind:                  "apikey.compromised",
		Subject:               "key_1",
		Account:               "acct_1",
		DedupKey:              "k1",
		Severity:              incident.SeverityCritical,
		State:                 incident.StateContained,
		Version:               3,
		Summary:               "leaked",
		CredentialFingerprint: incident.NewSecret(canary).Fingerprint(),
		Attributes:            map[string]string{"region": "eu"},
		DetectedAt:            t0,
		Signals: incident.SignalSummary{Count: 2, FirstSeen: t0, LastSeen: t0,
			Samples: []incident.SignalSample{{At: t0, Source: "s"}}},
		Investigation: &incident.Investigation{
			Findings: incident.Findings{
				RootCause: "commit",
				Notes:     []string{"n1"},
				Impact: incident.Impact{
					Customers: []incident.Customer{{ID: "c1", Email: "c1@example.com"}},
					Data:      []incident.DataCategory{incident.DataConversion},
					Summary:   "s",
				},
			},
			At:       t0,
			Attempts: 1,
		},
		Decision: &incident.Decision{Notify: true, Reason: "r", By: "system", At: t0},
		Actions: []incident.ActionRecord{{Name: "revoke", Status: incident.ActionApplied,
			Approval: &incident.Approval{RequestedAt: t0, By: "alice", Approved: true, DecidedAt: t0}}},
		Deadlines: []incident.Deadline{{Name: "gdpr", Start: incident.MilestoneDetected,
			Stop: incident.MilestoneAuthorityNotified, Status: incident.DeadlineRunning, StartedAt: t0, Due: t0.Add(72 * time.Hour)}},
		Milestones:      map[incident.Milestone]time.Time{incident.MilestoneDetected: t0},
		Deliveries:      []incident.Delivery{{Recipient: "c1", Channel: "email", IdempotencyKey: "d1"}},
		Tasks:           []incident.Task{{ID: "t1", Title: "rotate", Mandatory: true}},
		Recommendations: []string{"use a vault"},
		Escalation:      &incident.Escalation{From: incident.StateContaining, Reason: "x", At: t0},
		Dismissal:       &incident.Dismissal{By: "alice", Reason: "test key", At: t0},
		Paging:          &incident.Paging{AlertKey: "a1", Level: 1, OpenedAt: t0, PagedAt: t0},
		Commander:       "alice",
		Evidence: []incident.Observable{{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "gateway",
			SeenAt: t0, AddedAt: t0, AddedBy: "alice"}},
		MergedInto: "i0",
		Merged:     []string{"i2"},
		Merging:    []string{"i4"},
	}
	inc.Timeline.Append(incident.Entry{At: t0, Actor: "system", Type: incident.EntrySignal})
	return inc
}

func TestCloneDeepCopy(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*incident.Incident)
	}{
		{"Attributes", func(i *incident.Incident) { i.Attributes["region"] = "us" }},
		{"Attributes add", func(i *incident.Incident) { i.Attributes["x"] = "y" }},
		{"Signals.Samples", func(i *incident.Incident) { i.Signals.Samples[0].Source = "x" }},
		{"Investigation", func(i *incident.Incident) { i.Investigation.RootCause = "x" }},
		{"Investigation.Attempts", func(i *incident.Incident) { i.Investigation.Attempts++ }},
		{"Investigation.Notes", func(i *incident.Incident) { i.Investigation.Notes[0] = "x" }},
		{"Investigation.Impact.Customers", func(i *incident.Incident) { i.Investigation.Impact.Customers[0].Email = "x" }},
		{"Investigation.Impact.Data", func(i *incident.Incident) { i.Investigation.Impact.Data[0] = incident.DataFinancial }},
		{"Decision", func(i *incident.Incident) { i.Decision.Notify = false }},
		{"Escalation", func(i *incident.Incident) { i.Escalation.Reason = "y" }},
		{"Dismissal", func(i *incident.Incident) { i.Dismissal.By = "mallory" }},
		{"Paging", func(i *incident.Incident) { i.Paging.AckedBy = "mallory" }},
		{"Actions", func(i *incident.Incident) { i.Actions[0].Status = incident.ActionFailed }},
		{"Action()", func(i *incident.Incident) { i.Action("revoke").Attempts = 9 }},
		{"Actions.Approval", func(i *incident.Incident) { i.Actions[0].Approval.Approved = false }},
		{"Action().Approval", func(i *incident.Incident) { i.Action("revoke").Approval.By = "mallory" }},
		{"Deadlines", func(i *incident.Incident) { i.Deadlines[0].Status = incident.DeadlineMissed }},
		{"Deadline()", func(i *incident.Incident) { i.Deadline("gdpr").Paused = time.Hour }},
		{"Milestones", func(i *incident.Incident) { i.Milestones[incident.MilestoneDetected] = t0.Add(time.Hour) }},
		{"Milestones add", func(i *incident.Incident) { i.Milestones[incident.MilestoneContained] = t0 }},
		{"Deliveries", func(i *incident.Incident) { i.Deliveries[0].Status = incident.DeliverySent }},
		{"Delivery()", func(i *incident.Incident) { i.Delivery("d1").Attempts = 9 }},
		{"Tasks", func(i *incident.Incident) { i.Tasks[0].Done = true }},
		{"Recommendations", func(i *incident.Incident) { i.Recommendations[0] = "x" }},
		{"Evidence", func(i *incident.Incident) { i.Evidence[0].Value = "198.51.100.1" }},
		{"Merged", func(i *incident.Incident) { i.Merged[0] = "i3" }},
		{"Merging", func(i *incident.Incident) { i.Merging[0] = "i5" }},
		{"Timeline", func(i *incident.Incident) { i.Timeline[0].Detail = "x" }},
		{"scalar", func(i *incident.Incident) { i.State = incident.StateClosed }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			orig := fullIncident()
			want := fullIncident()
			c := orig.Clone()
			require.Equal(t, orig, c)
			require.NotSame(t, orig, c)

			tt.mutate(c)
			require.NotEqual(t, want, c, "the mutation must change the copy")
			assert.Equal(t, want, orig, "changing the clone changed the original")

			// And the other way round.
			c2 := orig.Clone()
			tt.mutate(orig)
			assert.Equal(t, want, c2, "changing the original changed the clone")
		})
	}
}

// TestFullIncidentSetsEveryReference makes TestCloneDeepCopy fail when a
// slice, map or pointer field is added to Incident (at any depth) without
// being set in fullIncident, and so without being checked for deep copying.
func TestFullIncidentSetsEveryReference(t *testing.T) {
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			if !assert.False(t, v.IsNil(), "fullIncident leaves %s nil: set it and add it to TestCloneDeepCopy", path) {
				return
			}
			switch v.Kind() {
			case reflect.Pointer, reflect.Interface:
				walk(path, v.Elem())
			case reflect.Slice:
				if assert.Positive(t, v.Len(), "%s is empty", path) {
					walk(path+"[0]", v.Index(0))
				}
			case reflect.Map:
				assert.Positive(t, v.Len(), "%s is empty", path)
			}
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(path+"."+v.Type().Field(i).Name, v.Field(i))
				}
			}
		}
	}
	walk("Incident", reflect.ValueOf(fullIncident()))
}

// TestCloneSharesNoMemory walks the original and the clone side by side:
// no pointer, slice or map reachable from the clone may be the original's.
// With TestFullIncidentSetsEveryReference it covers fields added later.
func TestCloneSharesNoMemory(t *testing.T) {
	orig := fullIncident()
	c := orig.Clone()
	require.Equal(t, orig, c)
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			if a.IsNil() {
				return
			}
			assert.NotEqual(t, a.Pointer(), b.Pointer(), "%s is shared between the original and the clone", path)
			switch a.Kind() {
			case reflect.Pointer:
				walk(path, a.Elem(), b.Elem())
			case reflect.Slice:
				for i := range a.Len() {
					walk(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
				}
			}
		case reflect.Struct:
			for i := range a.NumField() {
				if a.Type().Field(i).IsExported() {
					walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
				}
			}
		}
	}
	walk("Incident", reflect.ValueOf(orig), reflect.ValueOf(c))
}

func TestCloneNilAndEmpty(t *testing.T) {
	var inc *incident.Incident
	assert.Nil(t, inc.Clone())

	empty := &incident.Incident{ID: "x"}
	c := empty.Clone()
	assert.Equal(t, empty, c, "nil slices and maps stay nil")
	assert.Nil(t, c.Attributes)
	assert.Nil(t, c.Investigation)
	assert.Nil(t, c.Timeline)
}

func TestActionAndDeliveryLookup(t *testing.T) {
	inc := fullIncident()
	a := inc.Action("revoke")
	require.NotNil(t, a)
	a.Attempts = 4
	assert.Equal(t, 4, inc.Actions[0].Attempts, "Action returns a pointer into the incident")
	assert.Nil(t, inc.Action("nope"))

	d := inc.Delivery("d1")
	require.NotNil(t, d)
	d.Status = incident.DeliveryFailed
	assert.Equal(t, incident.DeliveryFailed, inc.Deliveries[0].Status)
	assert.Nil(t, inc.Delivery("nope"))

	dl := inc.Deadline("gdpr")
	require.NotNil(t, dl)
	dl.Status = incident.DeadlineMet
	assert.Equal(t, incident.DeadlineMet, inc.Deadlines[0].Status, "Deadline returns a pointer into the incident")
	assert.Nil(t, inc.Deadline("nope"))
}

func TestImpactCustomerDataAffected(t *testing.T) {
	cust := []incident.Customer{{ID: "c1"}}
	data := []incident.DataCategory{incident.DataCampaignReports}
	tests := []struct {
		name string
		imp  incident.Impact
		want bool
	}{
		{"none", incident.Impact{}, false},
		{"customers only", incident.Impact{Customers: cust}, false},
		{"data only", incident.Impact{Data: data}, false},
		{"both", incident.Impact{Customers: cust, Data: data}, true},
		{"empty non-nil", incident.Impact{Customers: []incident.Customer{}, Data: []incident.DataCategory{}}, false},
		{"custom category", incident.Impact{Customers: cust, Data: []incident.DataCategory{"health"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.imp.CustomerDataAffected())
		})
	}
}

func TestDataCategoryDescribe(t *testing.T) {
	tests := []struct {
		c    incident.DataCategory
		want string
	}{
		{incident.DataConversion, "conversion data"},
		{incident.DataCampaignReports, "campaign reports"},
		{incident.DataAPIAccess, "API access"},
		{incident.DataPartnerDetails, "partner details"},
		{incident.DataFinancial, "financial information"},
		{"health_records", "health_records"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.c), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.c.Describe())
		})
	}
}

func TestOpenTasks(t *testing.T) {
	inc := &incident.Incident{Tasks: []incident.Task{
		{ID: "t1", Mandatory: true},
		{ID: "t2", Mandatory: true, Done: true},
		{ID: "t3"},
		{ID: "t4", Mandatory: true},
		{ID: "t5", Done: true},
	}}
	assert.Equal(t, []string{"t1", "t4"}, inc.OpenTasks())
	inc.Tasks[0].Done = true
	inc.Tasks[3].Done = true
	assert.Empty(t, inc.OpenTasks())
	assert.Empty(t, (&incident.Incident{}).OpenTasks())
}

var idemRE = regexp.MustCompile(`^brk_[0-9a-f]{32}$`)

func TestIdempotencyKey(t *testing.T) {
	k := incident.IdempotencyKey("inc_1", "contain", "revoke")
	assert.Regexp(t, idemRE, k)
	assert.Equal(t, k, incident.IdempotencyKey("inc_1", "contain", "revoke"), "stable")
	// Pinned: changing the derivation would make resumed incidents repeat
	// side effects under a new key.
	assert.Equal(t, "brk_"+idemRef("inc_1", "contain", "revoke"), k)

	parts := [][3]string{
		{"inc_1", "contain", "revoke"},
		{"inc_2", "contain", "revoke"},
		{"inc_1", "notify", "revoke"},
		{"inc_1", "contain", "revoke2"},
		{"", "", ""},
		{"a", "bc", ""},
		{"ab", "c", ""},
		{"", "abc", ""},
		{"abc", "", ""},
		{"", "", "abc"},
		{"a", "", "bc"},
		{"a\x00", "b", ""},
		{"a", "\x00b", ""},
	}
	seen := map[string][3]string{}
	for _, p := range parts {
		key := incident.IdempotencyKey(p[0], p[1], p[2])
		assert.Regexp(t, idemRE, key)
		if prev, dup := seen[key]; dup {
			t.Errorf("IdempotencyKey%q == IdempotencyKey%q", p, prev)
		}
		seen[key] = p
	}
	assert.NotEqual(t, incident.IdempotencyKey("a", "bc", ""), incident.IdempotencyKey("ab", "c", ""))
}

// idemRef restates the key derivation independently: SHA-256 over the three
// parts, each prefixed with its length as a big-endian uint64, cut to 16
// bytes.
func idemRef(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// TestMergingJSON: the merges under way into an incident keep their JSON
// name and come back as they were written; none, none written.
func TestMergingJSON(t *testing.T) {
	inc := fullIncident()
	b, err := json.Marshal(inc)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"merged":["i2"],"merging":["i4"]`)
	var back incident.Incident
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, []string{"i4"}, back.Merging)

	inc.Merging = nil
	b, err = json.Marshal(inc)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"merging"`)
}
