package detect

import "errors"

// Sentinel errors. Every error this package returns matches one of them
// with errors.Is; *ConfigError and *EventError carry the details for
// errors.As.
var (
	// ErrInvalidConfig: a rule constructor rejected its configuration. The
	// error is a *ConfigError.
	ErrInvalidConfig = errors.New("detect: invalid configuration")
	// ErrInvalidEvent: Observe refused an event. The error is an *EventError.
	ErrInvalidEvent = errors.New("detect: invalid event")
	// ErrCredential: an event carried its credential's value in one of its
	// fields. The error is an *EventError that also matches ErrInvalidEvent;
	// it never quotes the value.
	ErrCredential = errors.New("detect: event contains its credential")
	// ErrFull: Observe found the detector's queue full and dropped the event.
	// It is counted in Stats.Full. The host may retry later or move on.
	ErrFull = errors.New("detect: queue full; event dropped")
	// ErrRunning: Detect was called while another call of Detect on the same
	// detector was still running.
	ErrRunning = errors.New("detect: detector already running")
	// ErrNilReporter: Detect was called with a nil Reporter.
	ErrNilReporter = errors.New("detect: nil reporter")
)

// ConfigError says which field of a rule's configuration is bad and why. It
// matches ErrInvalidConfig.
type ConfigError struct {
	Rule   string // the rule's Name, possibly empty
	Field  string // the Go field name, such as "Window" or "MaxKeys"
	Reason string // what is wrong, for people
}

// Error names the rule, the field and the reason.
func (e *ConfigError) Error() string {
	if e.Rule == "" {
		return "detect: invalid configuration: " + e.Field + ": " + e.Reason
	}
	return "detect: rule " + e.Rule + ": invalid configuration: " + e.Field + ": " + e.Reason
}

// Is makes a *ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// EventError says which field of an Event is bad and why. It matches
// ErrInvalidEvent, and Err (ErrCredential, or nil) when set. It never quotes
// the field's value.
type EventError struct {
	Field  string // the Go field name, such as "Key" or "Attributes"
	Reason string // what is wrong, for people
	Err    error  // a more specific sentinel, or nil
}

// Error names the field and the reason, never the value.
func (e *EventError) Error() string { return "detect: invalid event: " + e.Field + ": " + e.Reason }

// Is makes an *EventError match ErrInvalidEvent.
func (e *EventError) Is(target error) bool { return target == ErrInvalidEvent }

// Unwrap returns the more specific sentinel, if any.
func (e *EventError) Unwrap() error { return e.Err }
