package incident

import "time"

// Milestone names a moment in a response that starts or stops a
// notification clock. The orchestrator records the automatic ones; people
// record the others (a regulator was told, materiality was determined).
type Milestone string

// Milestones the orchestrator records itself.
const (
	MilestoneDetected          Milestone = "detected" // awareness, discovery: the incident was opened
	MilestoneContained         Milestone = "contained"
	MilestoneCustomersNotified Milestone = "customers-notified"
	MilestoneResolved          Milestone = "resolved"
	MilestoneClosed            Milestone = "closed"
)

// Milestones people record.
const (
	// MilestoneMateriality: the incident was determined to be material
	// (starts the SEC Form 8-K clock).
	MilestoneMateriality Milestone = "materiality-determined"
	// MilestoneEarlyWarning: the NIS2 early warning went to the CSIRT or
	// competent authority.
	MilestoneEarlyWarning Milestone = "early-warning-sent"
	// MilestoneAuthorityNotified: the supervisory or competent authority was
	// notified (GDPR Art. 33, NIS2 incident notification).
	MilestoneAuthorityNotified Milestone = "authority-notified"
	// MilestoneFinalReport: the NIS2 final report was submitted.
	MilestoneFinalReport Milestone = "final-report-sent"
	// MilestoneDisclosureFiled: the public disclosure was filed (SEC Form
	// 8-K Item 1.05).
	MilestoneDisclosureFiled Milestone = "disclosure-filed"
)

// DeadlineStatus is where one notification clock stands.
type DeadlineStatus string

// The deadline statuses.
const (
	DeadlineWaiting DeadlineStatus = "waiting" // its start milestone has not happened
	DeadlineRunning DeadlineStatus = "running" // started, due in the future
	DeadlinePaused  DeadlineStatus = "paused"  // stopped with a reason, e.g. a law-enforcement delay
	DeadlineMissed  DeadlineStatus = "missed"  // due passed, stop milestone not yet reached
	DeadlineMet     DeadlineStatus = "met"     // stop milestone reached by the due time
	DeadlineLate    DeadlineStatus = "late"    // stop milestone reached after the due time
	// DeadlineNotApplicable: the clock does not apply (the incident was
	// dismissed, ended before the clock was due or before it started, or a
	// person said so); NotApplicableReason says why.
	DeadlineNotApplicable DeadlineStatus = "not_applicable"
)

// Done reports whether the clock no longer runs: met, late or not
// applicable. A missed clock still waits for its stop milestone while the
// incident is open.
func (s DeadlineStatus) Done() bool {
	return s == DeadlineMet || s == DeadlineLate || s == DeadlineNotApplicable
}

// Deadline is the durable record of one notification clock on an incident:
// when it started, when it is due, and whether it was met.
type Deadline struct {
	Name   string         `json:"name"`
	Start  Milestone      `json:"start"`
	Stop   Milestone      `json:"stop"`
	Status DeadlineStatus `json:"status"`
	// StartedAt is when the start milestone happened; Due when the stop
	// milestone must happen by, extended by the time spent paused.
	StartedAt time.Time `json:"started_at,omitzero"`
	Due       time.Time `json:"due,omitzero"`
	// WarnAt is when responders are warned that the deadline approaches.
	WarnAt      time.Time `json:"warn_at,omitzero"`
	WarnedAt    time.Time `json:"warned_at,omitzero"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	MetAt       time.Time `json:"met_at,omitzero"`
	// PausedAt is set while paused; Paused sums the time spent paused.
	PausedAt    time.Time     `json:"paused_at,omitzero"`
	Paused      time.Duration `json:"paused_ns,omitempty"`
	PauseReason string        `json:"pause_reason,omitempty"`
	// LateReason says why the deadline was missed, when a person said so.
	LateReason string `json:"late_reason,omitempty"`
	// NotApplicableReason says why the clock does not apply, with status
	// DeadlineNotApplicable.
	NotApplicableReason string `json:"not_applicable_reason,omitempty"`
	// EndedAt is when the clock stopped counting for good: met, late, not
	// applicable, or missed when the incident ended.
	EndedAt time.Time `json:"ended_at,omitzero"`
}

// Deadline returns the clock named name, or nil.
func (inc *Incident) Deadline(name string) *Deadline {
	for i := range inc.Deadlines {
		if inc.Deadlines[i].Name == name {
			return &inc.Deadlines[i]
		}
	}
	return nil
}

// Approval records a person's decision on a containment action that needs
// one.
type Approval struct {
	RequestedAt time.Time `json:"requested_at"`
	// Due is when the request times out; zero means it waits for ever.
	Due       time.Time `json:"due,omitzero"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	By        string    `json:"by,omitempty"`
	Approved  bool      `json:"approved,omitempty"`
	// ByTimeout is true when the playbook decided because nobody did in
	// time (break-glass).
	ByTimeout bool   `json:"by_timeout,omitempty"`
	Note      string `json:"note,omitempty"`
}

// decided reports whether the approval was granted or denied.
func (a *Approval) decided() bool { return a != nil && !a.DecidedAt.IsZero() }
