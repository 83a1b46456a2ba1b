package incident

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error this package returns matches one of them with
// errors.Is; the typed errors below carry the details for errors.As.
var (
	// ErrInvalidSignal: a Signal failed validation. The error is, or joins,
	// *FieldError values naming each bad field.
	ErrInvalidSignal = errors.New("invalid signal")
	// ErrSignalTime: a Signal's At is too far in the past or the future
	// (see ValidateAt). The error is a *FieldError with Field "At", which
	// also matches ErrInvalidSignal.
	ErrSignalTime = errors.New("signal time out of bounds")
	// ErrUnknownSeverity: a severity outside SeverityLow..SeverityCritical.
	ErrUnknownSeverity = errors.New("unknown severity")

	// ErrInvalidTransition: the event is not allowed from the state.
	ErrInvalidTransition = errors.New("transition not allowed")
	// ErrUnknownState: a state the lifecycle does not declare.
	ErrUnknownState = errors.New("unknown state")
	// ErrUnknownEvent: an event no transition of the lifecycle uses.
	ErrUnknownEvent = errors.New("unknown event")
	// ErrInvalidLifecycle: NewLifecycle rejected its table. The error is a
	// *LifecycleError.
	ErrInvalidLifecycle = errors.New("invalid lifecycle")

	// ErrNotFound: no incident with that ID, or no open incident with that
	// dedup key.
	ErrNotFound = errors.New("incident not found")
	// ErrConflict: an update carried a Version that is no longer current.
	// Re-read the incident and apply the change again. The error is a
	// *ConflictError when the store can tell the versions.
	ErrConflict = errors.New("version conflict")
	// ErrDuplicate: an open incident with the same dedup key exists already.
	// The error is a *DuplicateError when the store can name it.
	ErrDuplicate = errors.New("open incident with this dedup key exists")
	// ErrInvalidIncident: a store was handed an incident it cannot keep (no
	// ID, no dedup key, no state, or an ID that exists already).
	ErrInvalidIncident = errors.New("invalid incident")

	// ErrInvalidFilter: a ListFilter a Lister cannot use (see
	// ListFilter.Validate). The error is a *FilterError.
	ErrInvalidFilter = errors.New("invalid list filter")
	// ErrNotSupported: the store does not implement the optional interface
	// an operation needs, such as Lister for the register.
	ErrNotSupported = errors.New("not supported by the store")

	// ErrInvalidEvidence: an Observable failed validation (see
	// Observable.Validate). The error is an *EvidenceError.
	ErrInvalidEvidence = errors.New("invalid evidence")
	// ErrCredentialEvidence: an Observable's value looks like a credential,
	// which evidence must never hold. The error is an *EvidenceError, and
	// also matches ErrInvalidEvidence.
	ErrCredentialEvidence = errors.New("evidence looks like a credential")

	// ErrTampered: Timeline.Verify found an entry whose hash chain is broken.
	// The error is a *TamperError.
	ErrTampered = errors.New("timeline tampered")

	// ErrTimeout: a plugin call did not return within its attempt's timeout.
	// The error is a *TimeoutError and also matches
	// context.DeadlineExceeded.
	ErrTimeout = errors.New("plugin call timed out")
	// ErrPanic: a plugin call panicked. The error is a *PanicError.
	ErrPanic = errors.New("plugin panicked")
)

// FieldError says which field of a Signal is bad and why. It matches
// ErrInvalidSignal, and also ErrUnknownSeverity for a bad severity and
// ErrSignalTime for a bad At.
type FieldError struct {
	Field  string // the Go field name, e.g. "DedupKey" or "Attributes[region]"
	Reason string // what is wrong, for people
	Err    error  // a more specific sentinel, or nil
}

func (e *FieldError) Error() string {
	return "incident: invalid signal: " + e.Field + ": " + e.Reason
}

// Is makes a *FieldError match ErrInvalidSignal.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidSignal }

// Unwrap returns the more specific sentinel, if any.
func (e *FieldError) Unwrap() error { return e.Err }

// EvidenceError says which field of an Observable is bad and why. It
// matches ErrInvalidEvidence, and ErrCredentialEvidence (through Unwrap)
// when the field looks like a credential. Its message never quotes the
// field's value.
type EvidenceError struct {
	Field  string // the Go field name: "Type", "Value", "Source", "SeenAt", "AddedBy"
	Reason string // what is wrong, for people
	Err    error  // a more specific sentinel, or nil
}

func (e *EvidenceError) Error() string {
	return "incident: invalid evidence: " + e.Field + ": " + e.Reason
}

// Is makes an *EvidenceError match ErrInvalidEvidence.
func (e *EvidenceError) Is(target error) bool { return target == ErrInvalidEvidence }

// Unwrap returns the more specific sentinel, if any.
func (e *EvidenceError) Unwrap() error { return e.Err }

// TransitionError says that Event cannot be applied in From. Unwrap gives
// ErrInvalidTransition, ErrUnknownState or ErrUnknownEvent.
type TransitionError struct {
	From  State
	Event Event
	Err   error
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("incident: event %q from state %q: %v", e.Event, e.From, e.Err)
}

func (e *TransitionError) Unwrap() error { return e.Err }

// LifecycleError says why NewLifecycle rejected a table. It matches
// ErrInvalidLifecycle and, through Unwrap, the specific cause
// (ErrUnknownState, for example).
type LifecycleError struct {
	Transition Transition // the offending row; zero when the problem is not one row
	Reason     string
	Err        error
}

func (e *LifecycleError) Error() string {
	if e.Transition == (Transition{}) {
		return "incident: invalid lifecycle: " + e.Reason
	}
	return fmt.Sprintf("incident: invalid lifecycle: %s --%s--> %s: %s",
		e.Transition.From, e.Transition.Event, e.Transition.To, e.Reason)
}

// Is makes a *LifecycleError match ErrInvalidLifecycle.
func (e *LifecycleError) Is(target error) bool { return target == ErrInvalidLifecycle }

func (e *LifecycleError) Unwrap() error { return e.Err }

// ConflictError reports a failed compare-and-swap. It matches ErrConflict.
type ConflictError struct {
	ID       string
	Expected int64 // the Version the caller held
	Actual   int64 // the Version in the store
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("incident %s: version conflict: have %d, store has %d", e.ID, e.Expected, e.Actual)
}

// Is makes a *ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// DuplicateError reports that DedupKey already has an open incident,
// ExistingID. It matches ErrDuplicate.
type DuplicateError struct {
	DedupKey   string
	ExistingID string
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("incident: open incident %s already has dedup key %q", e.ExistingID, e.DedupKey)
}

// Is makes a *DuplicateError match ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// FilterError says which field of a ListFilter is bad and why. It matches
// ErrInvalidFilter.
type FilterError struct {
	Field  string // the Go field name, e.g. "Cursor"
	Reason string
}

func (e *FilterError) Error() string {
	return "incident: invalid list filter: " + e.Field + ": " + e.Reason
}

// Is makes a *FilterError match ErrInvalidFilter.
func (e *FilterError) Is(target error) bool { return target == ErrInvalidFilter }

// TamperError names the first timeline entry whose hash chain does not hold.
// It matches ErrTampered.
type TamperError struct {
	Index  int // position in the timeline
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("incident: timeline tampered at entry %d: %s", e.Index, e.Reason)
}

// Is makes a *TamperError match ErrTampered.
func (e *TamperError) Is(target error) bool { return target == ErrTampered }

// TimeoutError reports a plugin call that outlived its per-attempt timeout.
// It matches ErrTimeout and context.DeadlineExceeded.
type TimeoutError struct {
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("plugin call timed out after %s", e.After)
}

// Is makes a *TimeoutError match ErrTimeout and context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// PanicError is a recovered panic from a plugin call, with the stack of the
// goroutine that panicked. It matches ErrPanic. Error() gives the value only;
// the stack is in Stack for the timeline and logs.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("plugin panicked: %v", e.Value) }

// Is makes a *PanicError match ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value when it is an error (panic(err)), so
// errors.Is sees through it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
