package detect

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
)

// SequenceConfig configures a Sequence rule. Every field but Options is
// required.
type SequenceConfig struct {
	// Name names the rule, for the dedup key, the signal's Source and logs:
	// ASCII letters, digits, '.', '_' and '-', at most MaxRuleNameLen bytes.
	Name string
	// Kind is the signals' kind, which chooses the playbook.
	Kind string
	// Severity is the signals' severity.
	Severity incident.Severity
	// First is the Event.Name of the first event, such as "apikey.leaked".
	First string
	// Then is the Event.Name of the event that must follow it, such as
	// "apikey.used.new-ip". It must differ from First.
	Then string
	// Within is the longest time from the first event to the second,
	// inclusive.
	Within time.Duration
	Options
}

// Sequence signals when, for one key, an event named First is followed by
// an event named Then within Within: a key reported leaked, then used from
// a new address within a day; a password reset, then a change of payout
// details within ten minutes.
//
// Per key the rule remembers the latest First event and the latest Then
// event (by event time). Whenever the latest First is at or before the
// latest Then, and the Then is at most Within after it, the rule signals
// and forgets both: each pair signals once. Because both are remembered, a
// First that arrives after its Then (out of order, within Options.Skew)
// still pairs with it. Events with other names are ignored (counted in
// Stats.Ignored) without being queued. Each key's state has a fixed size;
// see Options.MaxKeys for the cap.
//
// The signal names both events in its attributes: "rule", "within", "gap",
// "first.name", "first.at", "first.value", "then.name", "then.at",
// "then.value", and each event's attributes under "first.attr." and
// "then.attr.". Its Account is the Then event's, or the First event's.
//
// Observe, Stats and Detect are safe for concurrent use; only one Detect
// runs at a time. The zero Sequence is not usable: use NewSequence.
type Sequence struct {
	e   engine
	cfg SequenceConfig
	tab *table[seqState]
}

var _ incident.Detector = (*Sequence)(nil)

type seqState struct{ first, then seqEvent }

// seqEvent is a remembered event; at is noTime when there is none.
type seqEvent struct {
	at             int64
	value, account string
	attrs          map[string]string
}

const noTime = math.MinInt64

// NewSequence validates cfg and returns the rule. A bad configuration gives
// a *ConfigError (matching ErrInvalidConfig).
func NewSequence(cfg SequenceConfig) (*Sequence, error) {
	if err := checkRule(cfg.Name, cfg.Kind, cfg.Severity); err != nil {
		return nil, err
	}
	bad := func(field, reason string) (*Sequence, error) {
		return nil, &ConfigError{Rule: cfg.Name, Field: field, Reason: reason}
	}
	switch {
	case cfg.First == "" || len(cfg.First) > MaxNameLen:
		return bad("First", "required, an event name of at most MaxNameLen bytes")
	case cfg.Then == "" || len(cfg.Then) > MaxNameLen:
		return bad("Then", "required, an event name of at most MaxNameLen bytes")
	case cfg.First == cfg.Then:
		return bad("Then", "must differ from First")
	case cfg.Within <= 0:
		return bad("Within", "must be positive")
	}
	opts, err := cfg.Options.withDefaults(cfg.Name)
	if err != nil {
		return nil, err
	}
	cfg.Options = opts
	d := &Sequence{cfg: cfg, tab: newTable[seqState](opts.MaxKeys)}
	d.e.init(cfg.Name, cfg.Kind, cfg.Severity, opts, d)
	return d, nil
}

// Observe queues ev for evaluation without waiting. It returns ErrFull when
// the queue is full, or an *EventError when ev is invalid; the event is
// then dropped and counted in Stats. An event named neither First nor Then
// is ignored and Observe returns nil. Observe may be called before Detect
// runs: events wait in the queue.
func (d *Sequence) Observe(ev Event) error { return d.e.observe(&ev) }

// Detect evaluates queued events and reports signals to r until ctx ends,
// then returns ctx.Err(). It returns ErrRunning when another Detect is
// running on d, and ErrNilReporter for a nil r. A failing or panicking r
// is retried or given up on per Options.Report, never fatal. Detect
// returns once the reporter's call in flight returns: r must honour its
// context, as incident.Reporter requires.
func (d *Sequence) Detect(ctx context.Context, r incident.Reporter) error { return d.e.detect(ctx, r) }

// Stats returns the detector's counters. It is safe to call at any time.
func (d *Sequence) Stats() Stats { return d.e.stats() }

func (d *Sequence) warm(evs []Event) { d.tab.warm(evs) }

func (d *Sequence) accept(name, _ string) error {
	if name != d.cfg.First && name != d.cfg.Then {
		return errIgnore
	}
	return nil
}

func (d *Sequence) keys() int                       { return d.tab.len() }
func (d *Sequence) start(context.Context) error     { return nil }
func (d *Sequence) idle(context.Context, time.Time) {}
func (d *Sequence) stop(context.Context)            {}

func (d *Sequence) eval(ev *Event, t int64) {
	isFirst := ev.Name == d.cfg.First
	if !isFirst && ev.Name != d.cfg.Then {
		return
	}
	s, ok := d.tab.get(ev.Key)
	if !ok {
		var evicted bool
		if s, evicted = d.tab.put(ev.Key); evicted {
			d.e.st.evicted.Add(1)
		}
		s.first.at, s.then.at = noTime, noTime
	}
	slot := &s.then
	if isFirst {
		slot = &s.first
	}
	if slot.at == noTime || t >= slot.at {
		*slot = seqEvent{at: t, value: strings.Clone(ev.Value), account: strings.Clone(ev.Account), attrs: ev.Attributes}
	}
	if s.first.at != noTime && s.then.at != noTime && s.first.at <= s.then.at && s.then.at-s.first.at <= int64(d.cfg.Within) {
		d.fire(ev.Key, s)
		s.first, s.then = seqEvent{at: noTime}, seqEvent{at: noTime}
	}
}

func (d *Sequence) fire(key string, s *seqState) {
	gap := time.Duration(s.then.at - s.first.at)
	attrs := make(map[string]string, 9+len(s.first.attrs)+len(s.then.attrs))
	attrs["rule"] = d.cfg.Name
	attrs["within"] = d.cfg.Within.String()
	attrs["gap"] = gap.String()
	attrs["first.name"] = d.cfg.First
	attrs["first.at"] = formatTime(s.first.at)
	attrs["then.name"] = d.cfg.Then
	attrs["then.at"] = formatTime(s.then.at)
	if s.first.value != "" {
		attrs["first.value"] = s.first.value
	}
	if s.then.value != "" {
		attrs["then.value"] = s.then.value
	}
	copyAttrs(attrs, "first.attr.", s.first.attrs)
	copyAttrs(attrs, "then.attr.", s.then.attrs)
	ev := Event{Account: s.then.account}
	if ev.Account == "" {
		ev.Account = s.first.account
	}
	summary := d.cfg.Then + " " + gap.String() + " after " + d.cfg.First + " for " + key + " (within " + d.cfg.Within.String() + ")"
	d.e.emit(d.e.signal(key, &ev, s.then.at, summary, attrs))
}
