package detect

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// Defaults of Options' zero fields.
const (
	DefaultMaxKeys     = 100_000
	DefaultQueueSize   = 4096
	DefaultSignalQueue = 256
	DefaultSkew        = 5 * time.Second
	// MaxMaxKeys is the largest MaxKeys a rule accepts.
	MaxMaxKeys = 1<<24 - 1
)

// Options are the settings every rule shares. Every zero field has a
// documented default, so the zero Options is a sensible one.
type Options struct {
	// Now is the clock: it stamps events that carry no Time, an event more
	// than Skew after it is dropped (Stats.Early), and NewTerms saves by it.
	// It is called only on the goroutine running Detect: once per batch of
	// events, and when NewTerms loads and saves. Rules otherwise go by the
	// events' own times, so a fixed clock makes a detector deterministic.
	// nil means time.Now.
	Now func() time.Time
	// Logger receives reporter failures, dropped signals and store
	// failures; never an event's credential. nil means slog.Default().
	Logger *slog.Logger
	// MaxKeys caps the keys the rule tracks. When a new key arrives at the
	// cap, it replaces a tracked key chosen by the CLOCK (second chance)
	// policy: a hand moves over the tracked keys in table order, spares
	// each key seen again since it was added or since the hand last passed
	// it (and clears that mark), and replaces the first key without the
	// mark. Replaced keys are counted in Stats.Evicted; their state (counts,
	// learning period, pending first event) is lost. 0 means
	// DefaultMaxKeys; at most MaxMaxKeys.
	MaxKeys int
	// QueueSize is how many events may wait for Detect; Observe returns
	// ErrFull beyond it. 0 means DefaultQueueSize.
	QueueSize int
	// SignalQueue is how many signals may wait for the reporter; beyond it
	// they are dropped, counted in Stats.SignalsDropped and logged. 0 means
	// DefaultSignalQueue.
	SignalQueue int
	// Skew is how far behind the latest event time seen an event may be and
	// still count; older events are dropped and counted in Stats.Late. It
	// also bounds how far ahead of the clock an event may be. 0 means
	// DefaultSkew.
	Skew time.Duration
	// Report governs each call to the Reporter: attempts, per-attempt
	// timeout, backoff (see incident.Policy for the defaults). A signal the
	// reporter calls invalid (incident.ErrInvalidSignal) or marks
	// incident.Permanent is not retried.
	Report incident.Policy
}

func (o Options) withDefaults(rule string) (Options, error) {
	bad := func(field, reason string) (Options, error) {
		return o, &ConfigError{Rule: rule, Field: field, Reason: reason}
	}
	switch {
	case o.MaxKeys < 0 || o.MaxKeys > MaxMaxKeys:
		return bad("MaxKeys", "must be between 0 (the default) and "+strconv.Itoa(MaxMaxKeys))
	case o.QueueSize < 0:
		return bad("QueueSize", "negative")
	case o.SignalQueue < 0:
		return bad("SignalQueue", "negative")
	case o.Skew < 0:
		return bad("Skew", "negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.SignalQueue == 0 {
		o.SignalQueue = DefaultSignalQueue
	}
	if o.Skew == 0 {
		o.Skew = DefaultSkew
	}
	o.Report = o.Report.Defaults()
	return o, nil
}

// MaxRuleNameLen is the longest rule Name.
const MaxRuleNameLen = 64

// checkRule validates the fields every rule has: its name, the kind and
// severity of its signals.
func checkRule(name, kind string, sev incident.Severity) error {
	if name == "" || len(name) > MaxRuleNameLen {
		return &ConfigError{Rule: name, Field: "Name", Reason: "required, at most " + strconv.Itoa(MaxRuleNameLen) + " bytes"}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &ConfigError{Rule: name, Field: "Name", Reason: "only ASCII letters, digits, '.', '_' and '-' are allowed"}
		}
	}
	probe := incident.Signal{Kind: kind, Subject: "x", DedupKey: "x", Severity: sev}
	if err := probe.Validate(); err != nil {
		field := "Kind"
		if !sev.Valid() {
			field = "Severity"
		}
		return &ConfigError{Rule: name, Field: field, Reason: "not valid for a signal: " + err.Error()}
	}
	return nil
}
