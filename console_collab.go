package breach

import (
	"net/http"
	"time"

	"github.com/breachkit/breach/incident"
)

// The console's collaboration: the commander, notes, the severity,
// evidence and merges. Their actions are rows of consoleOps
// (console_actions.go); this file reads their fields and says what the
// incident page offers of them.

// stillOpen says an incident has not ended: it takes a commander and
// evidence.
func stillOpen(_ *Orchestrator, inc *incident.Incident) bool { return ended(inc) == nil }

// notDismissing says an incident is open and no dismissal is under way:
// its severity may change, and others may be merged into it.
func notDismissing(o *Orchestrator, inc *incident.Incident) bool {
	return stillOpen(o, inc) && dismissing(inc) == nil
}

// consoleSeverity reads the field severity: a name incident.ParseSeverity
// reads, low to critical. The refusal does not repeat what was sent.
func consoleSeverity(name string) (incident.Severity, error) {
	sev, err := incident.ParseSeverity(name)
	if err != nil || !sev.Valid() {
		return 0, refuse(http.StatusBadRequest, "invalid_input", "severity must be low, medium, high or critical")
	}
	return sev, nil
}

// evidenceTimeLayouts are the forms of seen_at, read in UTC when they
// name no zone: RFC 3339, and what an HTML datetime-local input sends.
var evidenceTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"}

// consoleObservable reads the fields of an evidence post. It checks only
// seen_at: AttachEvidence checks the rest. The refusal does not repeat
// what was sent (a credential pasted into the wrong field, perhaps).
func consoleObservable(in map[string]string) (incident.Observable, error) {
	ev := incident.Observable{Type: incident.ObservableType(in["type"]), Value: in["value"], Source: in["source"]}
	s := in["seen_at"]
	if s == "" {
		return ev, nil
	}
	for _, layout := range evidenceTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			ev.SeenAt = t
			return ev, nil
		}
	}
	return ev, refuse(http.StatusBadRequest, "invalid_input",
		"seen_at must be a time such as 2026-03-01T10:00:00Z or 2026-03-01T10:00 (UTC)")
}

// collabView is what the incident page offers of the collaboration
// actions: a flag per form the incident's state allows, and what the
// forms choose from.
type collabView struct {
	Note, Commander, Severity, Evidence, Merge bool
	Severities                                 []severityOption
	Types                                      []typeOption
	// Bounds of the fields, for the inputs' maxlength.
	NoteMax, CommanderMax, ValueMax int
}

type severityOption struct {
	Name    incident.Severity
	Current bool
}

type typeOption struct {
	Value incident.ObservableType
	Label string
}

// collab says what the incident page offers of the collaboration actions
// for inc.
func (c *console) collab(inc *incident.Incident) collabView {
	shown := func(a ConsoleAction) bool { return consoleOps[a].shown(c.o, inc) }
	v := collabView{Note: shown(ConsoleNote), Commander: shown(ConsoleCommander), Severity: shown(ConsoleSeverity),
		Evidence: shown(ConsoleEvidence), Merge: shown(ConsoleMerge),
		NoteMax: MaxNoteLen, CommanderMax: MaxCommanderLen, ValueMax: incident.MaxObservableValue}
	for s := incident.SeverityLow; s <= incident.SeverityCritical; s++ {
		v.Severities = append(v.Severities, severityOption{Name: s, Current: s == inc.Severity})
	}
	v.Types = []typeOption{{incident.ObservableIP, "IP address"}, {incident.ObservableURL, "URL"},
		{incident.ObservableHash, "hash"}, {incident.ObservableUser, "user"}, {incident.ObservableKeyID, "key ID"}}
	return v
}
