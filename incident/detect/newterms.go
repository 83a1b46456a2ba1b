package detect

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// Defaults of NewTermsConfig's zero fields.
const (
	DefaultMaxTerms  = 1_000_000
	DefaultSaveEvery = time.Minute
)

// NewTermsConfig configures a NewTerms rule. Name, Kind and Severity are
// required.
type NewTermsConfig struct {
	// Name names the rule, for the dedup key, the signal's Source and logs:
	// ASCII letters, digits, '.', '_' and '-', at most MaxRuleNameLen bytes.
	Name string
	// Kind is the signals' kind, which chooses the playbook.
	Kind string
	// Severity is the signals' severity.
	Severity incident.Severity
	// Learn is each key's learning period, from its first event: values
	// seen then are learned without a signal. 0 means no learning: every
	// value not seen before is new, a new key's first value included.
	Learn time.Duration
	// Allow lists values that are never new (the office's address, the
	// company's own partner ID).
	Allow []string
	// AllowFunc, when not nil, is asked about each new value after the
	// learning period; true means allowed. It runs on the goroutine running
	// Detect and must be quick; a panic counts as false and is logged.
	AllowFunc func(key, value string) bool
	// MaxTerms caps the (key, value) pairs remembered. They are kept in two
	// generations of MaxTerms/2: when the current one is full, the older
	// one is forgotten, so a pair not seen for two generations is new
	// again. 0 means DefaultMaxTerms.
	MaxTerms int
	// Store keeps what the rule has seen across restarts. nil means
	// nothing is kept.
	Store TermStore
	// SaveEvery is how often, by the clock, the rule saves to Store while
	// events arrive; it also saves when Detect stops. 0 means
	// DefaultSaveEvery.
	SaveEvery time.Duration
	Options
}

// NewTerms signals when a key shows a value it never showed during its
// learning period or since: a new IP address, country or user agent for
// an API key, a new partner ID for an account.
//
// Each key's learning period starts at its first event (by event time) and
// lasts Learn; events with an empty Value are refused by Observe. After the
// learning period, the first event with a value never seen for the key
// signals, unless the value is allowed, and the value is learned: each
// (key, value) pair signals at most once. Events within the learning
// period (by their own time, so late ones too) teach without signalling.
//
// Pairs are remembered as 64-bit keyed hashes (SipHash-2-4 with a random
// key), about 17 bytes each at a million pairs. Two pairs share a hash with
// probability 2^-64: with a million pairs remembered, a new value is taken
// for a known one (and missed) with probability about 5e-14. The key is
// secret, so nobody can choose a value that collides. A key keeps only the
// end of its learning period (see Options.MaxKeys for the cap); a key
// evicted and seen again learns again, while its pairs stay remembered.
//
// With a Store, what "seen" means survives a restart: Detect loads the
// last snapshot when it first starts and saves every SaveEvery and when it
// stops. A store that fails to save is logged and counted in
// Stats.StoreErrors; one that fails to load (or panics) makes Detect
// return the error.
//
// The signal's attributes: "rule", "value" (the new value), "name",
// "key_first_seen", "learn" and the event's attributes under "attr.".
//
// Observe, Stats and Detect are safe for concurrent use; only one Detect
// runs at a time. The zero NewTerms is not usable: use NewNewTerms.
type NewTerms struct {
	e      engine
	cfg    NewTermsConfig
	tab    *table[ntState]
	pairs  pairSet
	k0, k1 uint64
	allow  map[string]struct{}

	sink     uint64 // keeps warm's loads
	loaded   bool
	dirty    bool
	lastSave time.Time
}

var _ incident.Detector = (*NewTerms)(nil)

type ntState struct{ learnUntil int64 }

// NewNewTerms validates cfg and returns the rule. A bad configuration gives
// a *ConfigError (matching ErrInvalidConfig).
func NewNewTerms(cfg NewTermsConfig) (*NewTerms, error) {
	if err := checkRule(cfg.Name, cfg.Kind, cfg.Severity); err != nil {
		return nil, err
	}
	bad := func(field, reason string) (*NewTerms, error) {
		return nil, &ConfigError{Rule: cfg.Name, Field: field, Reason: reason}
	}
	switch {
	case cfg.Learn < 0:
		return bad("Learn", "negative")
	case cfg.MaxTerms < 0 || cfg.MaxTerms == 1:
		return bad("MaxTerms", "must be 0 (the default) or at least 2")
	case cfg.SaveEvery < 0:
		return bad("SaveEvery", "negative")
	}
	if cfg.MaxTerms == 0 {
		cfg.MaxTerms = DefaultMaxTerms
	}
	if cfg.SaveEvery == 0 {
		cfg.SaveEvery = DefaultSaveEvery
	}
	opts, err := cfg.Options.withDefaults(cfg.Name)
	if err != nil {
		return nil, err
	}
	cfg.Options = opts
	d := &NewTerms{cfg: cfg, tab: newTable[ntState](opts.MaxKeys), allow: make(map[string]struct{}, len(cfg.Allow))}
	d.pairs.gen = cfg.MaxTerms / 2
	for _, v := range cfg.Allow {
		d.allow[v] = struct{}{}
	}
	var key [16]byte
	_, _ = rand.Read(key[:]) // never fails
	d.setHashKey(key)
	d.e.init(cfg.Name, cfg.Kind, cfg.Severity, opts, d)
	return d, nil
}

func (d *NewTerms) setHashKey(k [16]byte) {
	d.k0, d.k1 = binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
}

func (d *NewTerms) hashKey() (k [16]byte) {
	binary.LittleEndian.PutUint64(k[:8], d.k0)
	binary.LittleEndian.PutUint64(k[8:], d.k1)
	return k
}

// Observe queues ev for evaluation without waiting. It returns ErrFull when
// the queue is full, or an *EventError when ev is invalid (an empty Value
// included); the event is then dropped and counted in Stats. Observe may be
// called before Detect runs: events wait in the queue.
func (d *NewTerms) Observe(ev Event) error { return d.e.observe(&ev) }

// Detect loads the Store's snapshot the first time it runs, then evaluates
// queued events and reports signals to r until ctx ends, saves to the
// Store, and returns ctx.Err(). It returns the Store's error when the load
// fails, ErrRunning when another Detect is running on d, and ErrNilReporter
// for a nil r. A failing or panicking r is retried or given up on per
// Options.Report, never fatal. Detect returns once the reporter's call in
// flight returns: r must honour its context, as incident.Reporter
// requires.
func (d *NewTerms) Detect(ctx context.Context, r incident.Reporter) error { return d.e.detect(ctx, r) }

// Stats returns the detector's counters. It is safe to call at any time.
func (d *NewTerms) Stats() Stats { return d.e.stats() }

func (d *NewTerms) warm(evs []Event) {
	d.tab.warm(evs)
	var sink uint64
	for i := range evs {
		sink += d.pairs.warm(pairHash(d.k0, d.k1, evs[i].Key, evs[i].Value))
	}
	d.sink += sink
}

func (d *NewTerms) accept(_, value string) error {
	if value == "" {
		return &EventError{Field: "Value", Reason: "required by a NewTerms rule"}
	}
	return nil
}

func (d *NewTerms) keys() int { return d.tab.len() }

func (d *NewTerms) start(ctx context.Context) error {
	d.lastSave = d.e.opts.Now()
	if d.loaded || d.cfg.Store == nil {
		d.loaded = true
		return nil
	}
	s, err := func() (s *Snapshot, err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("store panicked: %v", v)
			}
		}()
		return d.cfg.Store.Load(ctx)
	}()
	if err != nil {
		return fmt.Errorf("detect: rule %s: loading its snapshot: %w", d.cfg.Name, err)
	}
	d.loaded = true
	if s != nil {
		d.restore(s)
	}
	return nil
}

// restore replaces what d knows with s.
func (d *NewTerms) restore(s *Snapshot) {
	d.setHashKey(s.HashKey)
	d.tab = newTable[ntState](d.e.opts.MaxKeys)
	d.pairs = pairSet{gen: d.pairs.gen}
	for _, k := range s.Keys {
		if k.Key == "" || len(k.Key) > MaxKeyLen {
			continue
		}
		st, ok := d.tab.get(k.Key)
		if !ok {
			st, _ = d.tab.put(k.Key)
		}
		st.learnUntil = k.LearnUntil.UnixNano()
	}
	for _, p := range s.Pairs {
		if p != 0 {
			d.pairs.seen(p)
		}
	}
	d.e.st.keys.Store(int64(d.tab.len()))
}

// snapshot returns what d knows.
func (d *NewTerms) snapshot() *Snapshot {
	s := &Snapshot{HashKey: d.hashKey(), Keys: make([]KeyState, 0, d.tab.len()),
		Pairs: make([]uint64, 0, d.pairs.len())}
	d.tab.each(func(key string, st *ntState) {
		s.Keys = append(s.Keys, KeyState{Key: key, LearnUntil: time.Unix(0, st.learnUntil).UTC()})
	})
	s.Pairs = d.pairs.prev.appendTo(s.Pairs)
	s.Pairs = d.pairs.cur.appendTo(s.Pairs)
	return s
}

func (d *NewTerms) idle(ctx context.Context, now time.Time) {
	if d.dirty && now.Sub(d.lastSave) >= d.cfg.SaveEvery {
		d.save(ctx, now)
	}
}

func (d *NewTerms) stop(ctx context.Context) {
	if d.dirty {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.e.opts.Report.Timeout)
		defer cancel()
		d.save(ctx, d.e.opts.Now())
	}
}

func (d *NewTerms) save(ctx context.Context, now time.Time) {
	d.lastSave = now
	if d.cfg.Store == nil {
		d.dirty = false
		return
	}
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("store panicked: %v", v)
			}
		}()
		return d.cfg.Store.Save(ctx, d.snapshot())
	}()
	if err != nil {
		d.e.st.storeErrors.Add(1)
		d.e.opts.Logger.Error("detect: saving the rule's snapshot failed", "rule", d.cfg.Name, "err", err)
		return
	}
	d.dirty = false
}

func (d *NewTerms) eval(ev *Event, t int64) {
	s, ok := d.tab.get(ev.Key)
	if !ok {
		var evicted bool
		if s, evicted = d.tab.put(ev.Key); evicted {
			d.e.st.evicted.Add(1)
		}
		s.learnUntil = satAdd(t, int64(d.cfg.Learn))
		d.dirty = true
	}
	if d.pairs.seen(pairHash(d.k0, d.k1, ev.Key, ev.Value)) {
		return
	}
	d.dirty = true
	if t < s.learnUntil || d.allowed(ev.Key, ev.Value) {
		return
	}
	attrs := make(map[string]string, 5+len(ev.Attributes))
	attrs["rule"] = d.cfg.Name
	attrs["value"] = ev.Value
	if ev.Name != "" {
		attrs["name"] = ev.Name
	}
	attrs["key_first_seen"] = formatTime(satAdd(s.learnUntil, -int64(d.cfg.Learn)))
	attrs["learn"] = d.cfg.Learn.String()
	copyAttrs(attrs, "attr.", ev.Attributes)
	summary := "new value " + strconv.Quote(ev.Value) + " for " + ev.Key + " after its learning period of " + d.cfg.Learn.String()
	if len(summary) > incident.MaxSummaryLen {
		summary = "new value for " + ev.Key + " after its learning period of " + d.cfg.Learn.String()
	}
	d.e.emit(d.e.signal(ev.Key, ev, t, summary, attrs))
}

func (d *NewTerms) allowed(key, value string) (ok bool) {
	if _, ok := d.allow[value]; ok {
		return true
	}
	if d.cfg.AllowFunc == nil {
		return false
	}
	defer func() {
		if v := recover(); v != nil {
			ok = false
			d.e.opts.Logger.Error("detect: AllowFunc panicked", "rule", d.cfg.Name, "panic", fmt.Sprint(v))
		}
	}()
	return d.cfg.AllowFunc(key, value)
}
