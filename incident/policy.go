package incident

import (
	"errors"
	"time"
)

// Policy says how a plugin call (a containment action, a delivery, an
// investigation) is attempted. Every zero field has a documented default,
// so the zero Policy is a sensible one.
//
// The policy is the only retry layer of a call: a plugin makes one try per
// call and reports how it failed. An error marked with Permanent is not
// retried; one marked with RetryAfter is retried after the delay it
// carries instead of the backoff below.
type Policy struct {
	// Attempts is the most calls made, the first included. 0 means 3;
	// 1 means no retry.
	Attempts int
	// Timeout bounds each attempt; each gets a fresh context derived from
	// the caller's. 0 means 30s.
	Timeout time.Duration
	// Backoff is the wait before the second attempt; it doubles for each
	// one after, up to MaxBackoff, and is jittered by up to ±20% so that
	// many incidents retrying at once spread out. 0 means 1s.
	Backoff time.Duration
	// MaxBackoff caps the doubling of the wait; the jittered wait may be up
	// to 20% longer. 0 means 30s.
	MaxBackoff time.Duration
}

// Defaults returns p with every zero field replaced by its default.
func (p Policy) Defaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = 3
	}
	if p.Timeout <= 0 {
		p.Timeout = 30 * time.Second
	}
	if p.Backoff <= 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.MaxBackoff < p.Backoff {
		p.MaxBackoff = p.Backoff
	}
	return p
}

// ErrStopped is joined into the error of a call the library stopped
// retrying for a graceful shutdown (containment.Runner.Stop, Orchestrator.Run
// ending) before its policy was spent: the work is unfinished, not failed.
var ErrStopped = errors.New("stopped before the retry policy was spent")

// Permanent marks err as not worth retrying (a 4xx answer, a key that does
// not exist): the policy's retries stop at it. errors.Is and errors.As see through the
// mark to err. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent: err itself or
// an error it wraps. A joined error (errors.Join, or fmt.Errorf with several
// %w) is permanent only when every one of its parts is, so one permanent
// failure among retryable ones does not stop the retries.
func IsPermanent(err error) bool {
	for err != nil {
		switch e := err.(type) {
		case *permanentError:
			return true
		case interface{ Unwrap() []error }:
			parts := e.Unwrap()
			for _, p := range parts {
				if !IsPermanent(p) {
					return false
				}
			}
			return len(parts) > 0
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return false
		}
	}
	return false
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter marks err as worth retrying, but not before d: the policy
// waits d after the failed attempt instead of its backoff, as a receiver's
// Retry-After header asks (Temporal's NextRetryDelay). The wait is not
// capped by MaxBackoff; it is bounded by the caller's context, which is
// the step's timeout for the orchestrator: when d would end after that
// deadline, no further attempt is made and the error is returned at once.
// The wait still counts as one of the policy's Attempts.
//
// errors.Is and errors.As see through the mark to err. RetryAfter(nil, d)
// is nil, and d <= 0 returns err unmarked (the backoff applies). A
// permanent error stays permanent: Permanent wins over RetryAfter.
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfterError{err: err, after: d}
}

// RetryDelay returns the delay err was marked with by RetryAfter, itself
// or in an error it wraps, and whether there is one. When several parts of
// a joined error carry a delay (several routes of a fan-out, say), the
// longest is returned, so that every one of them is honoured.
func RetryDelay(err error) (time.Duration, bool) {
	var d time.Duration
	found := false
	for err != nil {
		switch e := err.(type) {
		case *retryAfterError:
			return e.after, true
		case interface{ Unwrap() []error }:
			for _, p := range e.Unwrap() {
				if pd, ok := RetryDelay(p); ok {
					d, found = max(d, pd), true
				}
			}
			return d, found
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return d, found
		}
	}
	return d, found
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }
