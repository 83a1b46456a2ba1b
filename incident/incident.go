package incident

import (
	"maps"
	"slices"
	"time"
)

// MaxSignalSamples bounds SignalSummary.Samples: a storm of a million signals
// keeps the first few and a count, not a million records.
const MaxSignalSamples = 8

// Incident is the durable record of one security incident: everything
// needed to resume its response after a restart and to report on it.
//
// An Incident is plain data. Stores hand out copies (see Clone); a copy may
// be changed freely and written back with Store.Update, which checks
// Version.
//
// Its JSON form (encoding/json) is the register's export format and what
// JSON stores keep. The field names are the snake_case names of the struct
// tags, here and in every type the record holds ("dedup_key",
// "detected_at", "idempotency_key"), and stay stable: a field may be
// added, none is renamed without the old name still being read (see
// UnmarshalJSON). Times are RFC 3339 with their fraction, severities and
// states their names, hashes hex, Deadline's "paused_ns" nanoseconds; a
// field tagged omitempty or omitzero is left out when empty. The fields of
// Investigation's Findings sit in "investigation" itself. Collaboration
// adds "commander", "evidence" (each observable's "type", "value",
// "source", "seen_at", "added_at", "added_by"), "merged_into" and
// "merged"; records written before them read back with those empty.
type Incident struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Subject  string   `json:"subject"` // what is affected, e.g. an API key's ID; never a secret
	Account  string   `json:"account"` // the customer account concerned, when known
	DedupKey string   `json:"dedup_key"`
	Severity Severity `json:"severity"`
	State    State    `json:"state"`
	// Version is bumped by the store on every successful write and checked
	// on every update (compare-and-swap).
	Version int64  `json:"version"`
	Summary string `json:"summary"`
	// CredentialFingerprint identifies the compromised credential (see
	// Secret.Fingerprint); the credential itself is never stored.
	CredentialFingerprint string            `json:"credential_fingerprint,omitempty"`
	Attributes            map[string]string `json:"attributes,omitempty"`

	// Phase timestamps; zero until the phase is reached.
	DetectedAt  time.Time `json:"detected_at"`
	ContainedAt time.Time `json:"contained_at,omitzero"`
	NotifiedAt  time.Time `json:"notified_at,omitzero"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	// ReopenedAt is when the incident was last reopened.
	ReopenedAt time.Time `json:"reopened_at,omitzero"`
	// Reopens counts the times it was reopened.
	Reopens int `json:"reopens,omitempty"`
	// EnteredAt is when the incident entered its State.
	EnteredAt time.Time `json:"entered_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`

	Signals       SignalSummary  `json:"signals"`
	Investigation *Investigation `json:"investigation,omitempty"`
	// Decision is the notify / do-not-notify decision and its reason,
	// recorded either way.
	Decision   *Decision      `json:"decision,omitempty"`
	Actions    []ActionRecord `json:"actions,omitempty"`
	Deliveries []Delivery     `json:"deliveries,omitempty"`
	Tasks      []Task         `json:"tasks,omitempty"`
	// Deadlines are the notification clocks that apply, from the playbook.
	Deadlines []Deadline `json:"deadlines,omitempty"`
	// Milestones records when each milestone was first reached.
	Milestones      map[Milestone]time.Time `json:"milestones,omitempty"`
	Recommendations []string                `json:"recommendations,omitempty"`
	// Escalation says why automation stopped, while State is
	// StateEscalated (and afterwards, for the record).
	Escalation *Escalation `json:"escalation,omitempty"`
	// Dismissal records who dismissed the incident as a false positive and
	// why. While the incident is still open it means the dismissal is under
	// way: containment is being released.
	Dismissal *Dismissal `json:"dismissal,omitempty"`
	// Paging is the on-call alert the incident holds open or last held:
	// who was paged, and whether someone took it.
	Paging *Paging `json:"paging,omitempty"`
	// Commander is the person who leads the response, "" until one is
	// assigned; a hand-over replaces it (the timeline keeps who held it).
	Commander string `json:"commander,omitempty"`
	// Evidence are the observables people attached (addresses, URLs,
	// hashes, users, key IDs), at most MaxEvidence, oldest first; never a
	// credential (see Observable.Validate).
	Evidence []Observable `json:"evidence,omitempty"`
	// MergedInto is, on an incident merged into another (StateMerged), the
	// ID of that incident: its parent.
	MergedInto string `json:"merged_into,omitempty"`
	// Merged are the IDs of the incidents merged into this one, its
	// children, in the order they were merged; at most MaxMerged.
	Merged []string `json:"merged,omitempty"`
	// Merging are the IDs of the incidents being merged into this one:
	// each holds a place among Merged until its merge is finished (the ID
	// moves to Merged) or refused (the ID is dropped). One left by a
	// merge that stopped half way stays until the merge is called again.
	// Merged and Merging together hold at most MaxMerged IDs.
	Merging []string `json:"merging,omitempty"`
	// Outreach counts the customer notices by status. Deliveries holds the
	// notices themselves only in a whole record (see Load); a head leaves
	// them to Store.Deliveries.
	Outreach Outreach `json:"outreach,omitzero"`
	// Chain is where the timeline stands: its length and last hash. A head
	// (what Store.Head returns) carries Chain and no Timeline; Record
	// appends to a head as well as to a whole record.
	Chain    Chain    `json:"chain,omitzero"`
	Timeline Timeline `json:"timeline"`
}

// Paging is an incident's on-call alert: what a person is needed for,
// which level of the escalation policy was paged last and when, and who
// acknowledged it. It is resolved when nobody is needed any more.
type Paging struct {
	// AlertKey names the alert across its pages (notify.Page.AlertKey).
	AlertKey string `json:"alert_key"`
	Reason   string `json:"reason"`
	Needed   string `json:"needed"`
	// Level is the level paged last, from 1; Round counts the times the
	// policy started again from its first level after its last.
	Level int `json:"level"`
	Round int `json:"round,omitempty"`
	// PagedAt is when Level was paged; OpenedAt when the alert opened.
	OpenedAt time.Time `json:"opened_at"`
	PagedAt  time.Time `json:"paged_at"`
	// Exhausted is set once every level of every round was paged without
	// an acknowledgement.
	Exhausted  bool      `json:"exhausted,omitempty"`
	AckedBy    string    `json:"acked_by,omitempty"`
	AckedAt    time.Time `json:"acked_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// Open reports whether the alert still calls for a person: neither
// acknowledged nor resolved.
func (p *Paging) Open() bool { return p != nil && p.AckedAt.IsZero() && p.ResolvedAt.IsZero() }

// Chain is where an incident's timeline stands: how many entries it has
// and the hash of the last one (the zero Hash when it has none). The store
// checks it on every change, so that entries are appended in order and
// none is lost or written twice.
type Chain struct {
	Len  int  `json:"len"`
	Head Hash `json:"head"`
}

// Outreach counts an incident's customer notices by status, so that a
// head tells how notification stands without reading every delivery. The
// orchestrator keeps it in step with the deliveries it records.
type Outreach struct {
	Claimed   int `json:"claimed,omitempty"`
	Sent      int `json:"sent,omitempty"`
	Failed    int `json:"failed,omitempty"`
	Cancelled int `json:"cancelled,omitempty"`
	Unknown   int `json:"unknown,omitempty"`
	// Cursor is the recipient ID of the last affected customer whose
	// notices are all sent: notification goes on after it.
	Cursor string `json:"cursor,omitempty"`
	// ClaimedAt is when the notices last claimed were claimed.
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
}

// Total is the number of deliveries counted.
func (o Outreach) Total() int { return o.Claimed + o.Sent + o.Failed + o.Cancelled + o.Unknown }

// Count adds n to the count of status.
func (o *Outreach) Count(status DeliveryStatus, n int) {
	switch status {
	case DeliveryClaimed:
		o.Claimed += n
	case DeliverySent:
		o.Sent += n
	case DeliveryFailed:
		o.Failed += n
	case DeliveryCancelled:
		o.Cancelled += n
	case DeliveryUnknown:
		o.Unknown += n
	}
}

// Record appends e to the incident's timeline, chained to Chain, and
// returns it as stored. On a head, Timeline then holds the entries
// recorded since it was read: the entries of the next Change.
func (inc *Incident) Record(e Entry) Entry {
	e = e.seal(inc.Chain.Head, inc.Chain.Len)
	inc.Timeline = append(inc.Timeline, e)
	inc.Chain = Chain{Len: inc.Chain.Len + 1, Head: e.Hash}
	return e
}

// SignalSummary counts the signals an incident absorbed, with a bounded
// sample of them.
type SignalSummary struct {
	Count     int64          `json:"count"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
	Samples   []SignalSample `json:"samples,omitempty"` // at most MaxSignalSamples, oldest first
	// MaxSeverity is the highest severity of the signals counted (of a
	// merged incident's too); SeverityUnknown on records written before it
	// was kept. A signal raises the incident's severity only when it is
	// more severe than both the incident and every signal before it: a
	// person who lowered the severity is not overruled by more of what
	// they judged.
	MaxSeverity Severity `json:"max_severity,omitempty"`
}

// SignalSample is what an incident keeps of one signal: never its
// credential.
type SignalSample struct {
	At       time.Time `json:"at"`
	Source   string    `json:"source,omitempty"`
	Severity Severity  `json:"severity"`
	Summary  string    `json:"summary,omitempty"`
}

// DataCategory is a kind of customer data an incident may have exposed.
type DataCategory string

// The categories of customer data the library knows by name. Hosts may use
// others; any category counts as customer data.
const (
	DataConversion      DataCategory = "conversion_data"
	DataCampaignReports DataCategory = "campaign_reports"
	DataAPIAccess       DataCategory = "api_access"
	DataPartnerDetails  DataCategory = "partner_details"
	DataFinancial       DataCategory = "financial_information"
)

// Describe returns a phrase for customer notices, such as "campaign
// reports". Unknown categories are returned as they are.
func (c DataCategory) Describe() string {
	switch c {
	case DataConversion:
		return "conversion data"
	case DataCampaignReports:
		return "campaign reports"
	case DataAPIAccess:
		return "API access"
	case DataPartnerDetails:
		return "partner details"
	case DataFinancial:
		return "financial information"
	}
	return string(c)
}

// Customer is someone who may have to be told about an incident.
type Customer struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Impact is the assessed effect of an incident on customers.
type Impact struct {
	// Customers are the affected customers. In a head they are left out
	// (Store.Customers pages them) and Affected counts them.
	Customers []Customer `json:"customers,omitempty"`
	// Affected is how many customers the investigation found affected.
	Affected int            `json:"affected,omitempty"`
	Data     []DataCategory `json:"data,omitempty"`
	// Summary says in a sentence what was exposed, for the notice.
	Summary string `json:"summary,omitempty"`
}

// CustomerDataAffected reports whether the impact includes customer data:
// at least one affected customer and at least one data category.
func (i Impact) CustomerDataAffected() bool {
	return (len(i.Customers) > 0 || i.Affected > 0) && len(i.Data) > 0
}

// Findings is what an Investigator reports.
type Findings struct {
	RootCause string   `json:"root_cause,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	Notes     []string `json:"notes,omitempty"`
	Impact    Impact   `json:"impact"`
}

// Investigation records an investigator's findings on the incident.
type Investigation struct {
	Findings
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
}

// Decision records whether affected customers are to be notified, and why.
type Decision struct {
	Notify bool      `json:"notify"`
	Reason string    `json:"reason"`
	By     string    `json:"by"` // "system" or the person who decided
	At     time.Time `json:"at"`
	// Override is true when a person replaced the automatic decision; an
	// investigation that finishes later does not replace an override.
	Override bool `json:"override,omitempty"`
}

// ActionStatus is where one containment action stands.
type ActionStatus string

// The containment action statuses.
const (
	ActionPending       ActionStatus = "pending"           // claimed, not yet applied
	ActionAwaiting      ActionStatus = "awaiting_approval" // waits for a person's approval
	ActionDenied        ActionStatus = "denied"            // a person refused it; it will not run
	ActionApplied       ActionStatus = "applied"           // the container succeeded
	ActionFailed        ActionStatus = "failed"            // the retry policy is spent
	ActionReleased      ActionStatus = "released"          // undone on dismissal
	ActionReleaseFailed ActionStatus = "release_failed"    // undo failed; a person must check
)

// ActionRecord is the durable record of one containment action.
type ActionRecord struct {
	Name           string       `json:"name"`
	IdempotencyKey string       `json:"idempotency_key"`
	Status         ActionStatus `json:"status"`
	Attempts       int          `json:"attempts"`
	LastError      string       `json:"last_error,omitempty"`
	StartedAt      time.Time    `json:"started_at,omitzero"`
	FinishedAt     time.Time    `json:"finished_at,omitzero"`
	// Approval is set for actions that need a person's approval.
	Approval *Approval `json:"approval,omitempty"`
}

// DeliveryStatus is where one customer notice stands.
type DeliveryStatus string

// The delivery statuses.
const (
	// DeliveryClaimed: about to be sent, or sent without the result being
	// recorded. A resumed orchestrator sends it again with the same key.
	DeliveryClaimed DeliveryStatus = "claimed"
	DeliverySent    DeliveryStatus = "sent"
	DeliveryFailed  DeliveryStatus = "failed"
	// DeliveryCancelled: claimed, never attempted, and not to be sent: the
	// incident was dismissed (or otherwise stopped) first.
	DeliveryCancelled DeliveryStatus = "cancelled"
	// DeliveryUnknown: an attempt was cut off (the incident was dismissed
	// while it ran) before the channel answered: the recipient may or may
	// not have the notice. It is not sent again.
	DeliveryUnknown DeliveryStatus = "unknown"
)

// Delivery is the durable record of one notice to one recipient on one
// channel.
type Delivery struct {
	Recipient      string         `json:"recipient"` // the customer's ID
	Channel        string         `json:"channel"`
	IdempotencyKey string         `json:"idempotency_key"`
	Status         DeliveryStatus `json:"status"`
	Attempts       int            `json:"attempts"`
	LastError      string         `json:"last_error,omitempty"`
	ClaimedAt      time.Time      `json:"claimed_at,omitzero"`
	SentAt         time.Time      `json:"sent_at,omitzero"`
}

// Task is a corrective or preventive task tracked on the incident.
type Task struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Mandatory bool      `json:"mandatory,omitempty"`
	Done      bool      `json:"done,omitempty"`
	DoneBy    string    `json:"done_by,omitempty"`
	DoneAt    time.Time `json:"done_at,omitzero"`
	Note      string    `json:"note,omitempty"`
}

// Escalation says why automation handed the incident to a person.
type Escalation struct {
	From   State     `json:"from"` // the state the incident was in
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Dismissal records a person's decision that an incident is a false
// positive.
type Dismissal struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Clone returns a deep copy: changing the copy never changes the original.
// Clone of nil is nil.
func (inc *Incident) Clone() *Incident {
	if inc == nil {
		return nil
	}
	c := *inc
	c.Attributes = maps.Clone(inc.Attributes)
	c.Signals.Samples = slices.Clone(inc.Signals.Samples)
	if inc.Investigation != nil {
		inv := *inc.Investigation
		inv.Notes = slices.Clone(inv.Notes)
		inv.Impact = inv.Impact.clone()
		c.Investigation = &inv
	}
	if inc.Decision != nil {
		d := *inc.Decision
		c.Decision = &d
	}
	if inc.Escalation != nil {
		e := *inc.Escalation
		c.Escalation = &e
	}
	if inc.Dismissal != nil {
		d := *inc.Dismissal
		c.Dismissal = &d
	}
	if inc.Paging != nil {
		p := *inc.Paging
		c.Paging = &p
	}
	c.Actions = slices.Clone(inc.Actions)
	for i := range c.Actions {
		if a := c.Actions[i].Approval; a != nil {
			cp := *a
			c.Actions[i].Approval = &cp
		}
	}
	c.Deadlines = slices.Clone(inc.Deadlines)
	c.Milestones = maps.Clone(inc.Milestones)
	c.Deliveries = slices.Clone(inc.Deliveries)
	c.Tasks = slices.Clone(inc.Tasks)
	c.Recommendations = slices.Clone(inc.Recommendations)
	c.Evidence = slices.Clone(inc.Evidence)
	c.Merged = slices.Clone(inc.Merged)
	c.Merging = slices.Clone(inc.Merging)
	c.Timeline = slices.Clone(inc.Timeline)
	return &c
}

func (i Impact) clone() Impact {
	i.Customers = slices.Clone(i.Customers)
	i.Data = slices.Clone(i.Data)
	return i
}

// Action returns the containment record named name, or nil.
func (inc *Incident) Action(name string) *ActionRecord {
	for i := range inc.Actions {
		if inc.Actions[i].Name == name {
			return &inc.Actions[i]
		}
	}
	return nil
}

// Delivery returns the delivery record with the idempotency key, or nil.
func (inc *Incident) Delivery(key string) *Delivery {
	for i := range inc.Deliveries {
		if inc.Deliveries[i].IdempotencyKey == key {
			return &inc.Deliveries[i]
		}
	}
	return nil
}

// OpenTasks returns the IDs of mandatory tasks not yet done, in order.
func (inc *Incident) OpenTasks() []string {
	var open []string
	for _, t := range inc.Tasks {
		if t.Mandatory && !t.Done {
			open = append(open, t.ID)
		}
	}
	return open
}
