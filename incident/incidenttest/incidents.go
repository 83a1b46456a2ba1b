package incidenttest

import (
	"reflect"
	"time"

	"github.com/breachkit/breach/incident"
)

// t0 is the DetectedAt of NewIncident: a fixed instant with a microsecond
// fraction, in UTC.
var t0 = time.Date(2025, time.March, 14, 9, 26, 53, 123456000, time.UTC)

// NewIncident returns a small valid incident, whole, that any Store must
// accept: ID id, DedupKey dedupKey, State incident.StateDetected, a fixed
// DetectedAt, one signal and a one-entry Timeline recorded with
// Incident.Record, so that Chain is where the timeline stands. Version is
// 0; no deliveries, no investigation. incident.Split(NewIncident(id, key))
// is a valid Change for Store.Create. Each call returns a new value the
// caller may change freely.
func NewIncident(id, dedupKey string) *incident.Incident {
	inc := &incident.Incident{
		ID:         id,
		Kind:       "test.incident",
		Subject:    "subject-" + id,
		DedupKey:   dedupKey,
		Severity:   incident.SeverityMedium,
		State:      incident.StateDetected,
		Summary:    "test incident " + id,
		DetectedAt: t0,
		UpdatedAt:  t0,
		Signals:    incident.SignalSummary{Count: 1, FirstSeen: t0, LastSeen: t0},
	}
	inc.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened"})
	return inc
}

// FullIncident returns a whole open incident (incident.StateNotifying) with
// every field of incident.Incident and of the structs it holds set to a
// non-zero value, except Version (0, the store sets it): nested pointers,
// slices with more than one element, attributes, non-ASCII text, and times
// in a zone other than UTC with a microsecond fraction. Its Timeline is
// recorded with Incident.Record, so Timeline.Verify passes and Chain is
// where the timeline stands; its five deliveries have one of each status,
// as Outreach counts them, and Impact.Affected counts its two customers.
// incident.Split(FullIncident(id, key)) is a valid Change for
// Store.Create, and incident.Load reads the same incident back (with
// Version 1).
//
// TestStore uses it to check that a store keeps everything; a host may use
// it to test its own encoding of incidents. Each call returns a new value.
func FullIncident(id, dedupKey string) *incident.Incident {
	cet := time.FixedZone("CET", 3600)
	at := func(d time.Duration) time.Time {
		return time.Date(2025, time.March, 14, 10, 26, 53, 123456000, cet).Add(d)
	}
	const us = time.Microsecond
	inc := &incident.Incident{
		ID:                    id,
		Kind:                  "apikey.compromised",
		Subject:               "key_" + id,
		Account:               "acct_Zürich_✓",
		DedupKey:              dedupKey,
		Severity:              incident.SeverityCritical,
		State:                 incident.StateNotifying,
		Summary:               "API key seen in a public repository — « exposé »",
		CredentialFingerprint: incident.NewSecret("sk_live_" + id).Fingerprint(),
		Attributes:            map[string]string{"region": "eu-west-1", "ip": "203.0.113.7", "url": "https://example.com/leak?q=1&r=2"},
		DetectedAt:            at(0),
		ContainedAt:           at(1*time.Minute + 1*us),
		NotifiedAt:            at(2*time.Minute + 2*us),
		ResolvedAt:            at(3*time.Minute + 3*us),
		ClosedAt:              at(4*time.Minute + 4*us),
		ReopenedAt:            at(4*time.Minute + 30*time.Second),
		Reopens:               1,
		EnteredAt:             at(5 * time.Minute),
		UpdatedAt:             at(5*time.Minute + 5*us),
		Signals: incident.SignalSummary{
			Count:       3,
			FirstSeen:   at(-time.Hour),
			LastSeen:    at(-time.Minute),
			MaxSeverity: incident.SeverityCritical,
			Samples: []incident.SignalSample{
				{At: at(-time.Hour), Source: "github-scanner", Severity: incident.SeverityHigh, Summary: "key in commit 1a2b3c"},
				{At: at(-time.Minute), Source: "gateway", Severity: incident.SeverityCritical, Summary: "key used from 203.0.113.7"},
			},
		},
		Investigation: &incident.Investigation{
			Findings: incident.Findings{
				RootCause: "key committed to a public repository",
				Summary:   "the key read campaign reports of two customers",
				Notes:     []string{"first use 09:12 UTC", "no write calls"},
				Impact: incident.Impact{
					Customers: []incident.Customer{
						{ID: "cust_1", Name: "Ada Lovelace", Email: "ada@example.com"},
						{ID: "cust_2", Name: "Émile Zola", Email: "emile@example.org"},
					},
					Affected: 2,
					Data:     []incident.DataCategory{incident.DataCampaignReports, incident.DataAPIAccess},
					Summary:  "campaign reports of two customers were readable",
				},
			},
			At:       at(30 * time.Second),
			Attempts: 2,
		},
		Decision: &incident.Decision{
			Notify:   true,
			Reason:   "customer data affected",
			By:       "alice@example.com",
			At:       at(90 * time.Second),
			Override: true,
		},
		Actions: []incident.ActionRecord{
			{Name: "revoke-api-key", IdempotencyKey: "brk_1", Status: incident.ActionApplied, Attempts: 2,
				LastError: "503 from key service", StartedAt: at(40 * time.Second), FinishedAt: at(50 * time.Second),
				Approval: &incident.Approval{RequestedAt: at(35 * time.Second), Due: at(5*time.Minute + 35*time.Second),
					DecidedAt: at(39*time.Second + 7*us), By: "alice@example.com", Approved: true, Note: "approved on the bridge — ok"}},
			{Name: "block-ip", IdempotencyKey: "brk_2", Status: incident.ActionFailed, Attempts: 3,
				LastError: "firewall unreachable", StartedAt: at(41 * time.Second), FinishedAt: at(55 * time.Second),
				Approval: &incident.Approval{RequestedAt: at(36 * time.Second), Due: at(40 * time.Second),
					DecidedAt: at(40*time.Second + 8*us), By: incident.ActorSystem, Approved: true, ByTimeout: true,
					Note: "break-glass: nobody answered in time"}},
		},
		Deliveries: []incident.Delivery{
			{Recipient: "cust_1", Channel: "email", IdempotencyKey: "brk_3", Status: incident.DeliverySent, Attempts: 1,
				LastError: "soft bounce", ClaimedAt: at(100 * time.Second), SentAt: at(101 * time.Second)},
			{Recipient: "cust_2", Channel: "webhook", IdempotencyKey: "brk_4", Status: incident.DeliveryClaimed, Attempts: 2,
				ClaimedAt: at(102 * time.Second)},
			{Recipient: "cust_2", Channel: "email", IdempotencyKey: "brk_5", Status: incident.DeliveryFailed, Attempts: 5,
				LastError: "mailbox full", ClaimedAt: at(103 * time.Second)},
			{Recipient: "cust_1", Channel: "sms", IdempotencyKey: "brk_6", Status: incident.DeliveryCancelled,
				ClaimedAt: at(104 * time.Second)},
			{Recipient: "cust_1", Channel: "webhook", IdempotencyKey: "brk_7", Status: incident.DeliveryUnknown, Attempts: 1,
				LastError: "cut off by the dismissal", ClaimedAt: at(105 * time.Second)},
		},
		Outreach: incident.Outreach{Claimed: 1, Sent: 1, Failed: 1, Cancelled: 1, Unknown: 1, Cursor: "cust_2",
			ClaimedAt: at(2 * time.Minute)},
		Tasks: []incident.Task{
			{ID: "rotate", Title: "Rotate every key of the account", Mandatory: true, Done: true,
				DoneBy: "bob@example.com", DoneAt: at(200 * time.Second), Note: "done via console"},
			{ID: "scan", Title: "Add secret scanning to CI", Mandatory: false},
		},
		Deadlines: []incident.Deadline{
			{Name: "gdpr-art33", Start: incident.MilestoneDetected, Stop: incident.MilestoneAuthorityNotified,
				Status: incident.DeadlineMet, StartedAt: at(0), Due: at(72*time.Hour + 30*time.Minute),
				WarnAt: at(48 * time.Hour), WarnedAt: at(48*time.Hour + 9*us), MetAt: at(70 * time.Hour),
				EndedAt: at(70 * time.Hour), Paused: 30 * time.Minute, PauseReason: "law-enforcement request (« délai »)"},
			{Name: "nis2-early-warning", Start: incident.MilestoneDetected, Stop: incident.MilestoneEarlyWarning,
				Status: incident.DeadlineLate, StartedAt: at(0), Due: at(24 * time.Hour),
				WarnAt: at(18 * time.Hour), WarnedAt: at(18*time.Hour + 10*us), EscalatedAt: at(24*time.Hour + 11*us),
				MetAt: at(26 * time.Hour), LateReason: "CSIRT portal unreachable"},
			{Name: "sec-8k", Start: incident.MilestoneMateriality, Stop: incident.MilestoneDisclosureFiled,
				Status: incident.DeadlinePaused, StartedAt: at(2 * time.Hour), Due: at(98 * time.Hour),
				WarnAt: at(74 * time.Hour), PausedAt: at(3*time.Hour + 12*us), PauseReason: "Attorney General delay"},
			{Name: "hipaa", Start: incident.MilestoneDetected, Stop: incident.MilestoneCustomersNotified,
				Status: incident.DeadlineNotApplicable, NotApplicableReason: "no protected health information involved",
				EndedAt: at(time.Hour)},
		},
		Milestones: map[incident.Milestone]time.Time{
			incident.MilestoneDetected:          at(0),
			incident.MilestoneContained:         at(1*time.Minute + 1*us),
			incident.MilestoneCustomersNotified: at(2*time.Minute + 2*us),
			incident.MilestoneMateriality:       at(2 * time.Hour),
			incident.MilestoneEarlyWarning:      at(26 * time.Hour),
			incident.MilestoneAuthorityNotified: at(70 * time.Hour),
		},
		Recommendations: []string{"Rotate your API keys", "Review recent campaign exports"},
		Escalation:      &incident.Escalation{From: incident.StateContaining, Reason: "block-ip failed", At: at(56 * time.Second)},
		Dismissal:       &incident.Dismissal{By: "carol@example.com", Reason: "proposed, then withdrawn", At: at(57 * time.Second)},
		Paging: &incident.Paging{AlertKey: "brk_alert", Reason: "investigation failed", Needed: "take over the incident",
			Level: 2, Round: 1, OpenedAt: at(10 * time.Second), PagedAt: at(20 * time.Second), Exhausted: true,
			AckedBy: "dave@example.com", AckedAt: at(30 * time.Second), ResolvedAt: at(40 * time.Second)},
		Commander: "erin@example.com",
		Evidence: []incident.Observable{
			{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "gateway logs — « edge »",
				SeenAt: at(-time.Minute), AddedAt: at(60 * time.Second), AddedBy: "erin@example.com"},
			{Type: incident.ObservableKeyID, Value: "key_" + id, AddedAt: at(61*time.Second + 13*us), AddedBy: "bob@example.com"},
		},
		MergedInto: "inc_parent",
		Merged:     []string{"inc_child_1", "inc_child_2"},
		Merging:    []string{"inc_child_3", "inc_child_4"},
	}
	inc.Record(incident.Entry{At: at(0), Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened by github-scanner"})
	inc.Record(incident.Entry{At: at(1 * us), Actor: incident.ActorSystem, Type: incident.EntryTransition,
		Event: incident.EventInvestigate, From: incident.StateDetected, To: incident.StateInvestigating})
	inc.Record(incident.Entry{At: at(50 * time.Second), Actor: incident.ActorSystem, Type: incident.EntryContainment, Detail: "revoke-api-key applied"})
	inc.Record(incident.Entry{At: at(90 * time.Second), Actor: "alice@example.com", Type: incident.EntryDecision, Detail: "notify: customer data affected"})
	return inc
}

// Normalize returns a deep copy of inc in the form TestStore compares:
// every time.Time (in structs, slices and map values alike) in UTC,
// truncated to the microsecond and without its monotonic clock reading, and
// every empty slice or map set to nil.
//
// It states what a Store may lose: a database keeps instants, not zones or
// monotonic readings, usually to the microsecond (PostgreSQL's
// timestamptz), and may not tell an empty list from none. A Store must keep
// everything else, and times at least to the microsecond. Two incidents a
// store should treat as the same normalise to equal values (reflect.DeepEqual,
// assert.Equal). Normalize(nil) is nil.
func Normalize(inc *incident.Incident) *incident.Incident {
	c := inc.Clone()
	if c != nil {
		normalize(reflect.ValueOf(c).Elem())
	}
	return c
}

var timeType = reflect.TypeFor[time.Time]()

// normalize rewrites v, which must be settable, in place.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(normTime(v.Interface().(time.Time))))
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				normalize(f)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		// Map values are not addressable: normalise a copy of each and put
		// it back. The map is the clone's own (see Normalize).
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			normalize(e)
			v.SetMapIndex(k, e)
		}
	}
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
