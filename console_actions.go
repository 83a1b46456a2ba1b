package breach

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/breachkit/breach/incident"
)

// The console's actions: the ConsoleAction of each post, and the table
// that maps it to its fields and to the orchestrator call it makes.

// ConsoleAction names what a console request does, for
// ConsoleConfig.Authorize: ConsoleView for reading, and one action per
// route that posts. The names are the last element of the routes'
// paths (POST incidents/{id}/approve) and stay stable.
type ConsoleAction string

// The console's actions. Each post calls the Orchestrator method named
// beside it with the actor ConsoleConfig.Actor names.
const (
	ConsoleView               ConsoleAction = "view"                 // every page and GET of the JSON API
	ConsoleApprove            ConsoleAction = "approve"              // Approve: fields action, note
	ConsoleDeny               ConsoleAction = "deny"                 // Deny: fields action, reason
	ConsoleCompleteTask       ConsoleAction = "complete_task"        // CompleteTask: fields task, note
	ConsoleAcknowledge        ConsoleAction = "acknowledge"          // Acknowledge: no field
	ConsolePauseClock         ConsoleAction = "pause_clock"          // PauseClock: fields clock, reason
	ConsoleResumeClock        ConsoleAction = "resume_clock"         // ResumeClock: fields clock, reason
	ConsoleClockNotApplicable ConsoleAction = "clock_not_applicable" // MarkClockNotApplicable: fields clock, reason
	ConsoleMilestone          ConsoleAction = "milestone"            // RecordMilestone: fields milestone, note
	ConsoleDismiss            ConsoleAction = "dismiss"              // Dismiss: field reason
	ConsoleRetry              ConsoleAction = "retry"                // Retry: field note
	ConsoleResolve            ConsoleAction = "resolve"              // Resolve: field note
	ConsoleClose              ConsoleAction = "close"                // Close: field note
	ConsoleReopen             ConsoleAction = "reopen"               // Reopen: field reason

	// People working an incident together: the methods beside them say
	// what each records and refuses. A severity is named as
	// incident.ParseSeverity reads it (low, medium, high or critical);
	// seen_at is optional, RFC 3339 ("2026-03-01T10:00:00Z") or what an
	// HTML datetime-local input sends ("2026-03-01T10:00", with or
	// without seconds), read as UTC.
	ConsoleNote      ConsoleAction = "note"      // AddNote: field text; ended incidents too
	ConsoleCommander ConsoleAction = "commander" // AssignCommander: fields commander, note
	ConsoleSeverity  ConsoleAction = "severity"  // ChangeSeverity: fields severity, reason; also ConsoleApprove while an action awaits approval
	ConsoleEvidence  ConsoleAction = "evidence"  // AttachEvidence: fields type (ip, url, hash, user, key_id), value, source, seen_at

	// ConsoleMerge merges the incident the field child names into the one
	// posted to, its parent (Merge(id, child, actor, reason)): fields
	// child, reason. Authorize is asked for both incidents, with
	// ConsoleMerge: the parent first, then the child; either refusal
	// refuses the merge, with nothing recorded. While an action of the
	// parent awaits approval, ConsoleApprove is asked for the parent too:
	// the merge may raise its severity past the approval's need, as a
	// severity change may.
	ConsoleMerge ConsoleAction = "merge"
)

// consoleCall is what an action's run gets: the request's context, the
// incident, the actor, and the fields of the form or JSON body.
type consoleCall struct {
	ctx   context.Context
	o     *Orchestrator
	id    string
	actor string
	in    map[string]string
	// may asks Authorize whether the actor may also do action on the
	// incident: for a post whose effect includes another action's.
	may func(action ConsoleAction) error
}

// mayApproveWaiting asks for ConsoleApprove when incident id has an
// action waiting for approval: a severity change or a merge can make the
// approval needless and let the action run, which only those who may
// approve may bring about.
func (c consoleCall) mayApproveWaiting(id string) error {
	h, err := c.o.Head(c.ctx, id)
	if err != nil {
		return err
	}
	for _, a := range h.Actions {
		if a.Status == incident.ActionAwaiting {
			return c.may(ConsoleApprove)
		}
	}
	return nil
}

// consoleField is a field an action reads; a Required one may not be
// empty. Label is its label on a form.
type consoleField struct {
	Name, Label string
	Required    bool
}

// consoleOp is one action of the console: the fields it reads (the same
// names in a form and in a JSON body), the orchestrator call it makes,
// and, for actions on the incident as a whole, when the incident page
// offers its form (shown). The forms of the actions in consoleFormOrder
// are made from their fields and label, in the page's Actions; those of
// the collaboration actions are written out in their own sections
// (console_collab.go), and the other actions have theirs beside what they
// act on: an approval, a task, a clock, the alert. Adding an action is a
// row here, its ConsoleAction and, for a generic form, its place in
// consoleFormOrder.
type consoleOp struct {
	fields []consoleField
	run    func(c consoleCall) error
	label  string                                             // the generic form's button
	shown  func(o *Orchestrator, inc *incident.Incident) bool // nil: no incident-wide form
	// also names the field that names a second incident the action
	// changes (merge's child): Authorize is asked for it too.
	also string
}

// optional and needed make the fields of consoleOps.
func optional(name, label string) consoleField { return consoleField{Name: name, Label: label} }
func needed(name, label string) consoleField {
	return consoleField{Name: name, Label: label, Required: true}
}

// consoleOps are the console's actions.
var consoleOps = map[ConsoleAction]consoleOp{
	ConsoleApprove: {fields: []consoleField{needed("action", "Action"), optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.Approve(c.ctx, c.id, c.in["action"], c.actor, c.in["note"])
	}},
	ConsoleDeny: {fields: []consoleField{needed("action", "Action"), needed("reason", "Reason")}, run: func(c consoleCall) error {
		return c.o.Deny(c.ctx, c.id, c.in["action"], c.actor, c.in["reason"])
	}},
	ConsoleCompleteTask: {fields: []consoleField{needed("task", "Task"), optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.CompleteTask(c.ctx, c.id, c.in["task"], c.actor, c.in["note"])
	}},
	ConsoleAcknowledge: {run: func(c consoleCall) error { return c.o.Acknowledge(c.ctx, c.id, c.actor) }},
	ConsolePauseClock: {fields: []consoleField{needed("clock", "Clock"), needed("reason", "Reason")}, run: func(c consoleCall) error {
		return c.o.PauseClock(c.ctx, c.id, c.in["clock"], c.actor, c.in["reason"])
	}},
	ConsoleResumeClock: {fields: []consoleField{needed("clock", "Clock"), optional("reason", "Note")}, run: func(c consoleCall) error {
		return c.o.ResumeClock(c.ctx, c.id, c.in["clock"], c.actor, c.in["reason"])
	}},
	ConsoleClockNotApplicable: {fields: []consoleField{needed("clock", "Clock"), needed("reason", "Reason")}, run: func(c consoleCall) error {
		return c.o.MarkClockNotApplicable(c.ctx, c.id, c.in["clock"], c.actor, c.in["reason"])
	}},
	ConsoleMilestone: {fields: []consoleField{needed("milestone", "Milestone"), optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.RecordMilestone(c.ctx, c.id, incident.Milestone(c.in["milestone"]), c.actor, c.in["note"])
	}, label: "Record milestone", shown: func(*Orchestrator, *incident.Incident) bool { return true }},
	ConsoleRetry: {fields: []consoleField{optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.Retry(c.ctx, c.id, c.actor, c.in["note"])
	}, label: "Retry automation", shown: func(_ *Orchestrator, inc *incident.Incident) bool { return inc.State == incident.StateEscalated }},
	ConsoleResolve: {fields: []consoleField{optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.Resolve(c.ctx, c.id, c.actor, c.in["note"])
	}, label: "Resolve", shown: func(o *Orchestrator, inc *incident.Incident) bool {
		return o.lc.Can(inc.State, incident.EventResolve) || o.lc.Can(inc.State, incident.EventRemediate)
	}},
	ConsoleClose: {fields: []consoleField{optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.Close(c.ctx, c.id, c.actor, c.in["note"])
	}, label: "Close", shown: func(o *Orchestrator, inc *incident.Incident) bool { return o.lc.Can(inc.State, incident.EventClose) }},
	ConsoleReopen: {fields: []consoleField{needed("reason", "Reason")}, run: func(c consoleCall) error {
		return c.o.Reopen(c.ctx, c.id, c.actor, c.in["reason"])
	}, label: "Reopen", shown: func(o *Orchestrator, inc *incident.Incident) bool { return o.lc.Can(inc.State, incident.EventReopen) }},
	ConsoleDismiss: {fields: []consoleField{needed("reason", "Reason")}, run: func(c consoleCall) error {
		return c.o.Dismiss(c.ctx, c.id, c.actor, c.in["reason"])
	}, label: "Dismiss as a false positive", shown: func(o *Orchestrator, inc *incident.Incident) bool {
		return o.lc.Can(inc.State, incident.EventDismiss) || (inc.Dismissal != nil && inc.State.Open())
	}},
	ConsoleNote: {fields: []consoleField{needed("text", "Note")}, run: func(c consoleCall) error {
		return c.o.AddNote(c.ctx, c.id, c.actor, c.in["text"])
	}, shown: func(*Orchestrator, *incident.Incident) bool { return true }},
	ConsoleCommander: {fields: []consoleField{needed("commander", "Commander"), optional("note", "Note")}, run: func(c consoleCall) error {
		return c.o.AssignCommander(c.ctx, c.id, c.in["commander"], c.actor, c.in["note"])
	}, shown: stillOpen},
	ConsoleSeverity: {fields: []consoleField{needed("severity", "Severity"), needed("reason", "Reason")}, run: func(c consoleCall) error {
		sev, err := consoleSeverity(c.in["severity"])
		if err != nil {
			return err
		}
		if err := c.mayApproveWaiting(c.id); err != nil {
			return err
		}
		return c.o.ChangeSeverity(c.ctx, c.id, sev, c.actor, c.in["reason"])
	}, shown: notDismissing},
	ConsoleEvidence: {fields: []consoleField{needed("type", "Type"), needed("value", "Value"), optional("source", "Source"),
		optional("seen_at", "Seen at (UTC)")}, run: func(c consoleCall) error {
		ev, err := consoleObservable(c.in)
		if err != nil {
			return err
		}
		return c.o.AttachEvidence(c.ctx, c.id, ev, c.actor)
	}, shown: stillOpen},
	ConsoleMerge: {fields: []consoleField{needed("child", "Incident to merge into this one"), needed("reason", "Reason")}, run: func(c consoleCall) error {
		// The merge may raise the parent's severity to the child's.
		if err := c.mayApproveWaiting(c.id); err != nil {
			return err
		}
		return c.o.Merge(c.ctx, c.id, c.in["child"], c.actor, c.in["reason"])
	}, also: "child", shown: func(o *Orchestrator, inc *incident.Incident) bool {
		return notDismissing(o, inc) && len(inc.Merged)+len(inc.Merging) < incident.MaxMerged
	}},
}

// consoleFormOrder is the order of the incident-wide forms on the page.
var consoleFormOrder = []ConsoleAction{ConsoleResolve, ConsoleClose, ConsoleRetry, ConsoleMilestone, ConsoleReopen, ConsoleDismiss}

// input reads op's fields with get, trimmed of surrounding space, and
// refuses an empty required one.
func (op consoleOp) input(action ConsoleAction, get func(name string) string) (map[string]string, error) {
	in := make(map[string]string, len(op.fields))
	for _, f := range op.fields {
		v := strings.TrimSpace(get(f.Name))
		if v == "" && f.Required {
			return nil, refuse(http.StatusBadRequest, "invalid_input", fmt.Sprintf("%s needs the field %q", action, f.Name))
		}
		in[f.Name] = v
	}
	return in, nil
}
