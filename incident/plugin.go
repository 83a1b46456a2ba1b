package incident

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Receipt tells a reporter what became of a signal.
type Receipt struct {
	IncidentID string
	// Opened is true when this signal opened the incident, false when it
	// joined an open one.
	Opened bool
}

// Reporter accepts signals. The orchestrator is one; a Detector is handed
// one. Report must be safe for concurrent use. An error matching
// ErrInvalidSignal means the signal itself is bad and retrying it is
// pointless; any other error (the store is down, ctx ended) may be retried.
type Reporter interface {
	Report(ctx context.Context, s Signal) (Receipt, error)
}

// ReporterFunc adapts a function to a Reporter: a detector's reports
// observed or filtered on their way to the orchestrator, or a test's.
type ReporterFunc func(ctx context.Context, s Signal) (Receipt, error)

// Report calls f(ctx, s).
func (f ReporterFunc) Report(ctx context.Context, s Signal) (Receipt, error) { return f(ctx, s) }

// Detector watches something continuously (logs, a queue, a webhook) and
// reports what it finds to r until ctx ends.
//
// Detect blocks. It returns nil or ctx's error when ctx ends, or another
// error when it cannot go on; the orchestrator logs that error and does not
// restart the detector. A Detector must not keep r after Detect returns.
type Detector interface {
	Detect(ctx context.Context, r Reporter) error
}

// DetectorFunc adapts a function to a Detector.
type DetectorFunc func(ctx context.Context, r Reporter) error

// Detect calls f(ctx, r).
func (f DetectorFunc) Detect(ctx context.Context, r Reporter) error { return f(ctx, r) }

// ChanDetector returns a Detector that reports every signal received on ch,
// in order, until ch is closed (Detect returns nil) or ctx ends (Detect
// returns ctx.Err()). A signal the reporter rejects is handed to onError
// when it is not nil, and the detector goes on with the next one.
func ChanDetector(ch <-chan Signal, onError func(Signal, error)) Detector {
	return DetectorFunc(func(ctx context.Context, r Reporter) error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case s, ok := <-ch:
				if !ok {
					return nil
				}
				if _, err := r.Report(ctx, s); err != nil && onError != nil {
					onError(s, err)
				}
			}
		}
	})
}

// Investigator establishes the root cause and the impact of an incident:
// which customers are affected and which of their data. The orchestrator
// calls it with a copy of the incident, which it may read and must not
// keep; its changes to the copy are ignored.
//
// Investigate may be called again for the same incident (after a retry, a
// restart, a reopen) and must be safe for concurrent use across incidents.
// It must honour ctx; an error wrapped with Permanent is not retried.
type Investigator interface {
	Investigate(ctx context.Context, inc *Incident) (Findings, error)
}

// InvestigatorFunc adapts a function to an Investigator.
type InvestigatorFunc func(ctx context.Context, inc *Incident) (Findings, error)

// Investigate calls f(ctx, inc).
func (f InvestigatorFunc) Investigate(ctx context.Context, inc *Incident) (Findings, error) {
	return f(ctx, inc)
}

// IdempotencyKey returns the stable key of one side effect: the same
// incident, step and target always give the same key, across retries and
// restarts, and different ones (practically) never collide. Hosts pass it to
// the systems they call (a key-revocation API, an e-mail provider) so that a
// repeated call is recognised. The key is "brk_" and 32 hex digits.
func IdempotencyKey(incidentID, step, target string) string {
	b := hashBufs.Get().(*[]byte)
	buf := appendField((*b)[:0], incidentID)
	buf = appendField(buf, step)
	buf = appendField(buf, target)
	sum := sha256.Sum256(buf)
	putHashBuf(b, buf)
	var out [4 + 32]byte
	copy(out[:], "brk_")
	hex.Encode(out[4:], sum[:16])
	return string(out[:])
}
