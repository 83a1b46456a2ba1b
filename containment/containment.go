// Package containment stops the damage of an incident: it disables a
// compromised credential, restricts access, isolates a system.
//
// A host implements [Container] for each action (often with [Func]), may add
// [Releaser] to undo it when the incident turns out to be a false positive
// and [Verifier] to check that it holds, and lists the actions in a
// playbook. A [Runner] applies a playbook's actions with bounded
// concurrency, each under its own retry [incident.Policy], and reports one
// [Result] per action.
//
// Containers run at least once: a retry, a restart or a second replica may
// call one again for the same incident. Every [Request] carries a stable
// IdempotencyKey and the attempt number, so the host can make the effect
// happen once.
package containment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/breachkit/breach/incident"
)

// Request tells a container what to act on. It is a value; the container
// may keep it.
type Request struct {
	// Action is the playbook action's name.
	Action string
	// IdempotencyKey is the same for every attempt of this action on this
	// incident, across retries, restarts and replicas.
	IdempotencyKey string
	// Attempt is 1 for the first call and counts up on retries.
	Attempt int

	IncidentID string
	Kind       string
	Subject    string // what to contain, e.g. an API key's ID
	Account    string
	Severity   incident.Severity
	Attributes map[string]string
	// Credential is the compromised secret when the signal carried one and
	// this process still holds it; it is zero after a restart, on another
	// replica, and once the incident has ended (closed or dismissed, even if
	// reopened later), so a container should be able to act on Subject or
	// CredentialFingerprint alone.
	Credential            incident.Secret
	CredentialFingerprint string
}

// Container applies one containment action.
//
// Contain must be idempotent for a given Request.IdempotencyKey, must honour
// ctx (its deadline is the attempt's timeout), and must be safe for
// concurrent use: several incidents are contained at once. A returned error
// is retried per the action's Policy unless it is marked with
// incident.Permanent (or after the delay it carries when it is marked with
// incident.RetryAfter). A panic is recovered and counts as a failed attempt.
type Container interface {
	Contain(ctx context.Context, req Request) error
}

// Func adapts a function to a Container.
type Func func(ctx context.Context, req Request) error

// Contain calls f(ctx, req).
func (f Func) Contain(ctx context.Context, req Request) error { return f(ctx, req) }

// Releaser is implemented by containers whose effect can be undone: when an
// incident is dismissed as a false positive, each applied action whose
// container is a Releaser is released, with the same IdempotencyKey as the
// Contain call. The same rules as Contain apply.
type Releaser interface {
	Release(ctx context.Context, req Request) error
}

// Verifier is implemented by containers that can check that their effect
// holds (the revoked key is rejected now). The Runner calls Verify after a
// successful Contain, in the same attempt: a failed verification fails the
// attempt, which is then retried per the Policy.
type Verifier interface {
	Verify(ctx context.Context, req Request) error
}

// Action is one named containment step of a playbook.
type Action struct {
	// Name identifies the action on the timeline and in its idempotency
	// key; unique within a playbook. Required.
	Name string
	// Description says in plain words what the action does for the
	// customer notice ("disabled the compromised API key"). Optional.
	Description string
	// Container does the work. Required.
	Container Container
	// Policy governs attempts; the zero value has sensible defaults.
	Policy incident.Policy
	// Approval, when set, makes the action wait for a person's approval
	// unless the incident is severe enough to act at once. The decision is
	// recorded as an incident.Approval on the action's record.
	Approval *ApprovalRule
}

// ApprovalRule is the rule for an action that needs a person's go-ahead: for
// example, disabling a customer's API key is automatic for a critical leak
// but needs approval for a low-severity one.
type ApprovalRule struct {
	// AutoFrom is the severity from which the action runs without
	// approval. The zero value, incident.SeverityUnknown, means approval
	// is always needed.
	AutoFrom incident.Severity
	// Timeout is how long to wait for a person; 0 waits for ever.
	Timeout time.Duration
	// OnTimeout says what happens when nobody decided in time.
	OnTimeout TimeoutAction
}

// Required reports whether the rule asks for approval at severity sev. A
// nil rule never does.
func (a *ApprovalRule) Required(sev incident.Severity) bool {
	return a != nil && (a.AutoFrom == incident.SeverityUnknown || sev < a.AutoFrom)
}

// TimeoutAction is what an unanswered approval request leads to.
type TimeoutAction int

const (
	// EscalateOnTimeout, the zero value, hands the incident to a person.
	EscalateOnTimeout TimeoutAction = iota
	// ProceedOnTimeout applies the action anyway (break-glass), recorded as
	// approved by timeout.
	ProceedOnTimeout
)

// ErrInvalidAction reports an Action missing its name or container, or two
// actions that share a name.
var ErrInvalidAction = errors.New("containment: invalid action")

// Validate checks a list of actions: each has a Name and a Container, and
// names are unique. The error matches ErrInvalidAction.
func Validate(actions []Action) error {
	seen := make(map[string]bool, len(actions))
	for i, a := range actions {
		switch {
		case a.Name == "":
			return fmt.Errorf("%w: action %d has no name", ErrInvalidAction, i)
		case a.Container == nil:
			return fmt.Errorf("%w: action %q has no container", ErrInvalidAction, a.Name)
		case seen[a.Name]:
			return fmt.Errorf("%w: two actions named %q", ErrInvalidAction, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// Result is what became of one action.
type Result struct {
	Action         string
	IdempotencyKey string
	Attempts       int
	// Err is nil when the action was applied (or released). Otherwise it is
	// the last attempt's error, a *incident.PanicError, a
	// *incident.TimeoutError, or ctx's error when the run was cancelled.
	Err      error
	Started  time.Time
	Finished time.Time
}

// ActionError is an action that failed, as joined into the error of
// Results.Err.
type ActionError struct {
	Action   string
	Attempts int
	Err      error
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("containment action %q failed after %d attempt(s): %v", e.Action, e.Attempts, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

// Results is the outcome of a Runner run, one Result per action in the
// order the actions were given.
type Results []Result

// Err joins an *ActionError for every failed action, or returns nil when
// all succeeded.
func (rs Results) Err() error {
	var errs []error
	for _, r := range rs {
		if r.Err != nil {
			errs = append(errs, &ActionError{Action: r.Action, Attempts: r.Attempts, Err: r.Err})
		}
	}
	return errors.Join(errs...)
}
