package breach

import (
	"errors"
	"fmt"
)

// ErrInvalidInput is returned when a person's action is called with a
// missing or bad argument: no actor (every step on the timeline names its
// actor), an actor that is not UTF-8 or holds a character a signal's
// identifiers may not hold (a control character, a line separator, a
// bidirectional control), no reason where one is required, an empty
// milestone. Nothing is recorded.
var ErrInvalidInput = errors.New("breach: invalid input")

// ErrNoAlert is returned by Acknowledge when the incident has no open
// on-call alert: none was raised, or it was acknowledged or resolved.
var ErrNoAlert = errors.New("breach: no open on-call alert")

// errNoActor is ErrInvalidInput for an action without an actor.
var errNoActor = fmt.Errorf("%w: actor required", ErrInvalidInput)

// ErrNoApprovalPending is returned when Approve or Deny names an action that
// does not wait for approval.
var ErrNoApprovalPending = errors.New("breach: no approval pending for that action")

// ErrDecisionLocked is returned when OverrideDecision comes too late (notices are going out,
// or the incident is resolved: reopen it first).
var ErrDecisionLocked = errors.New("breach: notify decision can no longer change")

// ErrNoSuchClock reports a clock name the incident does not have, or a pause
// or resume that does not fit the clock's status.
var ErrNoSuchClock = errors.New("breach: no such running clock")

// errStale is returned by a mutation whose precondition no longer holds in
// the freshly read incident (a person or another replica moved it on). The
// driver re-reads and decides again.
var errStale = errors.New("breach: incident changed under the step")

// Errors of the orchestrator. Store and lifecycle errors are passed through
// wrapped, so errors.Is(err, incident.ErrNotFound) and errors.As(err,
// new(*incident.TransitionError)) work on what the human actions return.
var (
	// ErrRunning: Run was called while another Run of the same
	// Orchestrator is going on.
	ErrRunning = errors.New("breach: orchestrator already running")
	// ErrInvalidOption: New was given a bad option.
	ErrInvalidOption = errors.New("breach: invalid option")
	// ErrOpenTasks: Resolve was refused because mandatory tasks are open.
	// The error is an *OpenTasksError.
	ErrOpenTasks = errors.New("breach: mandatory tasks open")
	// ErrNoSuchTask: CompleteTask named a task the incident does not have.
	ErrNoSuchTask = errors.New("breach: no such task")
	// ErrNotEscalated: Retry was called on an incident that is not
	// escalated.
	ErrNotEscalated = errors.New("breach: incident is not escalated")
	// ErrDismissalPending: a dismissal is on record and not finished yet.
	// Dismiss returns it (joined with ctx's error) when its context ended
	// after the dismissal was recorded: the dismissal stands, and Run or
	// another Dismiss finishes it. Retry, Resolve, Approve, Deny and
	// OverrideDecision return it while a dismissal is under way.
	ErrDismissalPending = errors.New("breach: dismissal under way")
	// ErrUnknownKind: Report was handed a signal of a kind no playbook
	// answers. The error also matches incident.ErrInvalidSignal, and
	// names the kind: nothing was recorded.
	ErrUnknownKind = errors.New("breach: no playbook for the signal's kind")
	// ErrOutcomeUnknown: Report's context ended while the signal was being
	// written: it may have been recorded (the error also matches ctx's).
	// Reporting it again is safe; at worst it is counted twice.
	ErrOutcomeUnknown = errors.New("breach: signal may or may not be recorded")
	// ErrIncidentEnded: the action needs an open incident, and this one
	// has ended (closed, dismissed or merged). Nothing was recorded.
	ErrIncidentEnded = errors.New("breach: incident has ended")
	// ErrSameSeverity: ChangeSeverity was given the severity the incident
	// has. Nothing was recorded.
	ErrSameSeverity = errors.New("breach: incident already has that severity")
	// ErrMerged: the incident was merged into another (Merge names an
	// incident merged already, as parent or as the child of another
	// parent). An action refused on a merged incident matches it too,
	// with ErrIncidentEnded, and its message names the parent.
	ErrMerged = errors.New("breach: incident merged into another")
	// ErrMergeBlocked: Merge refused while something is under way: the
	// child's automation is in the middle of an effect (containment
	// actions pending or awaiting approval, customer notices going out),
	// the child is itself taking in a merge, or the parent is being
	// merged elsewhere while one of its own merges is under way. Let it
	// settle (approve or deny, wait for containment or notification,
	// finish the other merge), then merge.
	ErrMergeBlocked = errors.New("breach: the merge waits for something under way")
	// ErrLimitReached: the incident holds as much as it may:
	// incident.MaxEvidence observables, or incident.MaxMerged merged
	// incidents. Nothing was recorded.
	ErrLimitReached = errors.New("breach: limit reached")
)

// errUnchanged ends a person's change that would change nothing: nothing
// is written, and the action returns nil.
var errUnchanged = errors.New("breach: nothing to change")

// OpenTasksError lists the mandatory tasks that keep an incident from being
// resolved. It matches ErrOpenTasks.
type OpenTasksError struct {
	IncidentID string
	Tasks      []string
}

func (e *OpenTasksError) Error() string {
	return fmt.Sprintf("breach: incident %s: mandatory tasks open: %v", e.IncidentID, e.Tasks)
}

// Is makes an *OpenTasksError match ErrOpenTasks.
func (e *OpenTasksError) Is(target error) bool { return target == ErrOpenTasks }

// ErrInvalidConsoleConfig is returned by NewConsole for a configuration it
// cannot serve: a nil orchestrator, no Actor, a negative page size.
var ErrInvalidConsoleConfig = errors.New("breach: invalid console configuration")

// ErrInvalidPlaybook reports a playbook that failed validation in New.
var ErrInvalidPlaybook = errors.New("breach: invalid playbook")

// errEnded stops a flush into an incident that is no longer open.
var errEnded = errors.New("breach: incident ended")
