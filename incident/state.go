package incident

import (
	"fmt"
	"strconv"
)

// State is where an incident stands in its Lifecycle. The zero value is not
// a valid state.
type State string

// The states of the Standard lifecycle, one per phase of the response plus
// the exits.
const (
	// StateDetected: opened from a signal; nothing has been done yet.
	StateDetected State = "detected"
	// StateInvestigating: root cause and impact are being established.
	StateInvestigating State = "investigating"
	// StateContaining: containment actions are running.
	StateContaining State = "containing"
	// StateContained: every containment action was applied.
	StateContained State = "contained"
	// StateNotifying: affected customers are being told.
	StateNotifying State = "notifying"
	// StateResolving: corrective and preventive work is open.
	StateResolving State = "resolving"
	// StateResolved: the work is done; the incident awaits its review.
	StateResolved State = "resolved"
	// StateClosed: the post-incident review is done. Terminal until reopened.
	StateClosed State = "closed"
	// StateDismissed: a false positive; containment was released. Terminal
	// until reopened.
	StateDismissed State = "dismissed"
	// StateEscalated: automation stopped; a person must act.
	StateEscalated State = "escalated"
	// StateMerged: the incident was found to be part of another, its
	// parent (Incident.MergedInto), which carries on with its signals and
	// evidence. Terminal: a merge is not undone.
	StateMerged State = "merged"
)

// Open reports whether an incident in state s still counts as open: every
// state but StateClosed, StateDismissed and StateMerged. Signals with the
// dedup key of an open incident join it; a store keeps at most one open
// incident per dedup key.
func (s State) Open() bool {
	return s != StateClosed && s != StateDismissed && s != StateMerged && s != ""
}

// Event is a named input to the Lifecycle that moves an incident from one
// State to another.
type Event string

// The events of the Standard lifecycle.
const (
	EventInvestigate Event = "investigate" // start or restart the investigation
	EventContain     Event = "contain"     // start containment
	EventContained   Event = "contained"   // every containment action applied
	EventNotify      Event = "notify"      // start telling affected customers
	EventNotified    Event = "notified"    // every customer notice delivered
	EventRemediate   Event = "remediate"   // open corrective and preventive work
	EventResolve     Event = "resolve"     // the work is done
	EventClose       Event = "close"       // the review is done
	EventReopen      Event = "reopen"      // back to investigation
	EventDismiss     Event = "dismiss"     // false positive
	EventEscalate    Event = "escalate"    // automation gives up; a person acts
	EventMerge       Event = "merge"       // part of another incident: ends in it
)

// Severity ranks an incident. Its zero value, SeverityUnknown, is not valid
// on a Signal. Severities compare with < and >: SeverityCritical is the
// greatest.
type Severity int

// The severities, in increasing order.
const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"unknown", "low", "medium", "high", "critical"}

// Valid reports whether s is one of SeverityLow to SeverityCritical.
func (s Severity) Valid() bool { return s >= SeverityLow && s <= SeverityCritical }

// String returns "low", "medium", "high", "critical", "unknown" for the zero
// value, or "severity(N)" for anything else.
func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes s as its name. It fails for a severity out of range.
func (s Severity) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(severityNames) {
		return nil, fmt.Errorf("incident: %w: %d", ErrUnknownSeverity, int(s))
	}
	return []byte(severityNames[s]), nil
}

// UnmarshalText decodes a severity name as written by MarshalText. An unknown
// name returns an error that matches ErrUnknownSeverity.
func (s *Severity) UnmarshalText(b []byte) error {
	p, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// ParseSeverity returns the severity named name ("low", "medium", "high",
// "critical" or "unknown"). Any other name returns an error that matches
// ErrUnknownSeverity.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("incident: %w: %q", ErrUnknownSeverity, name)
}
