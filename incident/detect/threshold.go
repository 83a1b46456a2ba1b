package detect

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// MaxBuckets is the most buckets a Threshold window has.
const MaxBuckets = 15

// ThresholdConfig configures a Threshold rule. Name, Kind, Severity,
// Window and one of Count or Weight are required.
type ThresholdConfig struct {
	// Name names the rule, for the dedup key, the signal's Source and logs:
	// ASCII letters, digits, '.', '_' and '-', at most MaxRuleNameLen bytes.
	Name string
	// Kind is the signals' kind, which chooses the playbook.
	Kind string
	// Severity is the signals' severity.
	Severity incident.Severity
	// Window is the length of the sliding window.
	Window time.Duration
	// Count: signal when a key has more than Count events in the window.
	Count int64
	// Weight: signal instead when the events of a key in the window weigh
	// more than Weight in total (Event.Weight: rows exported, bytes sent).
	// At most math.MaxUint32. Set Count or Weight, not both.
	Weight int64
	// Buckets is the window's resolution: the window slides in steps of
	// Window/Buckets, which must divide Window exactly. 0 means MaxBuckets.
	Buckets int
	Options
}

// Threshold signals when one key has more than Count events (or more than
// Weight in total) within a sliding window: 20 failed authentications for
// one API key in a minute, a million rows exported by one account in an
// hour.
//
// The window is made of Buckets buckets of Window/Buckets each, aligned to
// the Unix epoch; a key's window ends with the bucket of its latest event.
// An event counts while its bucket is in the window: for at most Window,
// and at least Window - Window/Buckets. A late event (within Options.Skew)
// counts in its own bucket if that bucket is still in the key's window.
//
// After a signal about a key, the rule stays silent about that key for one
// window (until its latest event's bucket is Buckets buckets later), then
// signals again if the count is still above the threshold. Each key's state
// is a fixed ring of counters (80 bytes); see Options.MaxKeys for the cap.
//
// The signal's attributes are the evidence: "rule", "count" (or "weight"),
// "threshold", "window", "first" (the earliest event time still in the
// window, or the window's start when that is no longer known exactly),
// "last" (the time of the event that crossed the threshold), and of that
// event its "name", its "value" and its attributes under "attr.".
//
// Observe, Stats and Detect are safe for concurrent use; only one Detect
// runs at a time. The zero Threshold is not usable: use NewThreshold.
type Threshold struct {
	e       engine
	cfg     ThresholdConfig
	tab     *table[thState]
	width   int64 // nanoseconds per bucket
	buckets int64
	limit   uint64
}

var _ incident.Detector = (*Threshold)(nil)

// thState is one key's window.
type thState struct {
	head   int64 // bucket number of the key's newest bucket
	first  int64 // time of the first event since the window was last empty
	counts [MaxBuckets]uint32
	since  uint32 // buckets since the last signal, up to neverFired
}

const neverFired = 255

// NewThreshold validates cfg and returns the rule. A bad configuration
// gives a *ConfigError (matching ErrInvalidConfig).
func NewThreshold(cfg ThresholdConfig) (*Threshold, error) {
	if err := checkRule(cfg.Name, cfg.Kind, cfg.Severity); err != nil {
		return nil, err
	}
	bad := func(field, reason string) (*Threshold, error) {
		return nil, &ConfigError{Rule: cfg.Name, Field: field, Reason: reason}
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = MaxBuckets
	}
	switch {
	case cfg.Window <= 0:
		return bad("Window", "must be positive")
	case cfg.Buckets < 0 || cfg.Buckets > MaxBuckets:
		return bad("Buckets", "must be between 0 (the default) and "+strconv.Itoa(MaxBuckets))
	case cfg.Window%time.Duration(cfg.Buckets) != 0:
		return bad("Buckets", "must divide Window exactly")
	case cfg.Count < 0 || cfg.Weight < 0:
		return bad("Count", "Count and Weight must not be negative")
	case (cfg.Count == 0) == (cfg.Weight == 0):
		return bad("Count", "set exactly one of Count and Weight")
	case cfg.Weight > math.MaxUint32:
		return bad("Weight", "at most math.MaxUint32")
	}
	opts, err := cfg.Options.withDefaults(cfg.Name)
	if err != nil {
		return nil, err
	}
	cfg.Options = opts
	d := &Threshold{cfg: cfg, tab: newTable[thState](opts.MaxKeys),
		width: int64(cfg.Window) / int64(cfg.Buckets), buckets: int64(cfg.Buckets), limit: uint64(cfg.Count)}
	if cfg.Weight > 0 {
		d.limit = uint64(cfg.Weight)
	}
	d.e.init(cfg.Name, cfg.Kind, cfg.Severity, opts, d)
	return d, nil
}

// Observe queues ev for evaluation without waiting. It returns ErrFull when
// the queue is full, or an *EventError when ev is invalid; the event is
// then dropped and counted in Stats. Observe may be called before Detect
// runs: events wait in the queue.
func (d *Threshold) Observe(ev Event) error { return d.e.observe(&ev) }

// Detect evaluates queued events and reports signals to r until ctx ends,
// then returns ctx.Err(). It returns ErrRunning when another Detect is
// running on d, and ErrNilReporter for a nil r. A failing or panicking r
// is retried or given up on per Options.Report, never fatal. Detect
// returns once the reporter's call in flight returns: r must honour its
// context, as incident.Reporter requires.
func (d *Threshold) Detect(ctx context.Context, r incident.Reporter) error { return d.e.detect(ctx, r) }

// Stats returns the detector's counters. It is safe to call at any time.
func (d *Threshold) Stats() Stats { return d.e.stats() }

func (d *Threshold) accept(string, string) error     { return nil }
func (d *Threshold) warm(evs []Event)                { d.tab.warm(evs) }
func (d *Threshold) keys() int                       { return d.tab.len() }
func (d *Threshold) start(context.Context) error     { return nil }
func (d *Threshold) idle(context.Context, time.Time) {}
func (d *Threshold) stop(context.Context)            {}
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (d *Threshold) eval(ev *Event, t int64) {
	b := floorDiv(t, d.width)
	s, ok := d.tab.get(ev.Key)
	if !ok {
		var evicted bool
		if s, evicted = d.tab.put(ev.Key); evicted {
			d.e.st.evicted.Add(1)
		}
		s.head, s.first, s.since = b, t, neverFired
	}
	n := d.buckets
	switch delta := b - s.head; {
	case delta >= n:
		s.counts = [MaxBuckets]uint32{}
		s.head, s.since = b, neverFired
	case delta > 0:
		for i := s.head + 1; i <= b; i++ {
			s.counts[floorMod(i, n)] = 0
		}
		s.head = b
		s.since = uint32(min(int64(s.since)+delta, neverFired))
	case delta <= -n:
		return // older than the key's window
	}
	var total uint64
	for _, c := range s.counts[:n] {
		total += uint64(c)
	}
	if total == 0 || t < s.first {
		s.first = t
	}
	amount := uint64(1)
	if d.cfg.Weight > 0 {
		amount = uint64(ev.Weight)
	}
	pos := floorMod(b, n)
	c := min(uint64(s.counts[pos])+amount, math.MaxUint32)
	total += c - uint64(s.counts[pos])
	s.counts[pos] = uint32(c)
	if total > d.limit && int64(s.since) >= n {
		s.since = 0
		d.fire(ev, t, s, total)
	}
}

func (d *Threshold) fire(ev *Event, t int64, s *thState, total uint64) {
	first := max(s.first, (s.head-d.buckets+1)*d.width)
	what, noun := "count", " events"
	if d.cfg.Weight > 0 {
		what, noun = "weight", " in weight"
	}
	attrs := make(map[string]string, 8+len(ev.Attributes))
	attrs["rule"] = d.cfg.Name
	attrs[what] = strconv.FormatUint(total, 10)
	attrs["threshold"] = strconv.FormatUint(d.limit, 10)
	attrs["window"] = d.cfg.Window.String()
	attrs["first"] = formatTime(first)
	attrs["last"] = formatTime(t)
	if ev.Name != "" {
		attrs["name"] = ev.Name
	}
	if ev.Value != "" {
		attrs["value"] = ev.Value
	}
	copyAttrs(attrs, "attr.", ev.Attributes)
	summary := strconv.FormatUint(total, 10) + noun + " for " + ev.Key + " within " + d.cfg.Window.String() +
		", more than " + strconv.FormatUint(d.limit, 10)
	d.e.emit(d.e.signal(ev.Key, ev, t, summary, attrs))
}
