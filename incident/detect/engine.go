package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

// Stats are a detector's counters since it was built. Every field only
// grows, except Keys.
type Stats struct {
	// Evaluated counts events the rule evaluated, Late and Early included.
	Evaluated uint64
	// Full counts events Observe refused with ErrFull.
	Full uint64
	// Invalid counts events Observe refused as invalid (ErrInvalidEvent).
	Invalid uint64
	// Ignored counts events Observe accepted and dropped because the rule
	// does not look at them (a Sequence event with another name).
	Ignored uint64
	// Late counts events dropped for being more than Options.Skew behind the
	// latest event time seen.
	Late uint64
	// Early counts events dropped for being more than Options.Skew ahead of
	// the clock.
	Early uint64
	// Keys is the number of keys tracked now.
	Keys int
	// Evicted counts tracked keys replaced by new ones at Options.MaxKeys.
	Evicted uint64
	// Signals counts signals the reporter accepted.
	Signals uint64
	// SignalsDropped counts signals dropped because the signal queue was
	// full, or because Detect ended before they were reported.
	SignalsDropped uint64
	// SignalsFailed counts signals given up on after the reporter failed
	// (per Options.Report).
	SignalsFailed uint64
	// ReportErrors counts failed calls to the reporter, panics included.
	ReportErrors uint64
	// ReportPanics counts calls to the reporter that panicked.
	ReportPanics uint64
	// StoreErrors counts failed saves to a NewTerms rule's TermStore.
	StoreErrors uint64
}

type counters struct {
	evaluated, full, invalid, ignored, late, early, evicted atomic.Uint64
	signals, dropped, failed, errors, panics, storeErrors   atomic.Uint64
	keys                                                    atomic.Int64
}

// errIgnore, from rule.accept, makes Observe drop an event the rule does
// not look at.
var errIgnore = errors.New("detect: event ignored")

// rule is what each detector plugs into the engine. accept runs on the
// host's goroutine inside Observe and must only read the configuration;
// the other methods run on the goroutine running Detect.
type rule interface {
	accept(name, value string) error
	warm(evs []Event)
	eval(ev *Event, t int64)
	keys() int
	start(ctx context.Context) error
	idle(ctx context.Context, now time.Time)
	stop(ctx context.Context)
}

// engine is the machinery the three detectors share: the event queue, the
// evaluation loop, the reporter goroutine and the counters.
type engine struct {
	name, kind string
	sev        incident.Severity
	opts       Options
	rule       rule
	q          queue
	running    atomic.Bool
	st         counters

	// Owned by the goroutine running Detect.
	wm       int64 // the latest event time seen
	hasWM    bool
	out      chan incident.Signal
	sink     func(incident.Signal) // replaces out in tests
	dropping bool
}

func (e *engine) init(name, kind string, sev incident.Severity, opts Options, r rule) {
	e.name, e.kind, e.sev, e.opts, e.rule = name, kind, sev, opts, r
	e.q.init(opts.QueueSize)
}

func (e *engine) observe(ev *Event) error {
	if err := check(ev); err != nil {
		e.st.invalid.Add(1)
		return err
	}
	if err := e.rule.accept(ev.Name, ev.Value); err != nil {
		if err == errIgnore {
			e.st.ignored.Add(1)
			return nil
		}
		e.st.invalid.Add(1)
		return err
	}
	if !e.q.push(ev) {
		e.st.full.Add(1)
		return ErrFull
	}
	return nil
}

func (e *engine) stats() Stats {
	return Stats{
		Evaluated: e.st.evaluated.Load(), Full: e.st.full.Load(), Invalid: e.st.invalid.Load(), Ignored: e.st.ignored.Load(),
		Late: e.st.late.Load(), Early: e.st.early.Load(), Keys: int(e.st.keys.Load()), Evicted: e.st.evicted.Load(),
		Signals: e.st.signals.Load(), SignalsDropped: e.st.dropped.Load(), SignalsFailed: e.st.failed.Load(),
		ReportErrors: e.st.errors.Load(), ReportPanics: e.st.panics.Load(), StoreErrors: e.st.storeErrors.Load(),
	}
}

func (e *engine) detect(ctx context.Context, r incident.Reporter) error {
	if r == nil {
		return ErrNilReporter
	}
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	if err := e.rule.start(ctx); err != nil {
		return err
	}
	out := make(chan incident.Signal, e.opts.SignalQueue)
	e.out = out
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.reportLoop(ctx, r, out)
	}()
	spare := make([]Event, 0, e.opts.QueueSize)
	for ctx.Err() == nil {
		batch := e.q.swap(spare)
		if len(batch) == 0 {
			spare = batch
			select {
			case <-ctx.Done():
			case <-e.q.wake:
			}
			continue
		}
		now := e.opts.Now()
		e.batch(batch, now.UnixNano())
		clear(batch)
		spare = batch[:0]
		e.rule.idle(ctx, now)
	}
	<-done
	if n := len(out); n > 0 {
		e.st.dropped.Add(uint64(n))
		e.opts.Logger.Warn("detect: stopped with signals not yet reported", "rule", e.name, "signals", n)
	}
	e.out = nil
	e.rule.stop(ctx)
	return ctx.Err()
}

// batch evaluates events on the goroutine running Detect, now being the
// clock's time in Unix nanoseconds.
//
// Events go through in groups: the rule first loads what it will read for
// each event of a group (warm), so that the cache misses of the group
// overlap instead of following one another; each event is then evaluated
// in order, as if alone.
func (e *engine) batch(batch []Event, now int64) {
	e.st.evaluated.Add(uint64(len(batch)))
	for len(batch) > 0 {
		g := batch[:min(warmGroup, len(batch))]
		batch = batch[len(g):]
		e.rule.warm(g)
		for i := range g {
			e.process(&g[i], now)
		}
	}
	e.st.keys.Store(int64(e.rule.keys()))
}

// warmGroup is how many events the rule warms up at once.
const warmGroup = 32

// process applies the watermark and skew to one event and hands it to the
// rule.
func (e *engine) process(ev *Event, now int64) {
	t := now
	if !ev.Time.IsZero() {
		t = ev.Time.UnixNano()
	}
	skew := int64(e.opts.Skew)
	if t > satAdd(now, skew) {
		e.st.early.Add(1)
		return
	}
	if e.hasWM && t < satAdd(e.wm, -skew) {
		e.st.late.Add(1)
		return
	}
	if !e.hasWM || t > e.wm {
		e.wm, e.hasWM = t, true
	}
	e.rule.eval(ev, t)
}

// satAdd returns a+b, saturated to the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// emit hands a signal to the reporter goroutine without waiting.
func (e *engine) emit(s incident.Signal) {
	if e.sink != nil {
		e.sink(s)
		return
	}
	select {
	case e.out <- s:
		e.dropping = false
	default:
		e.st.dropped.Add(1)
		if !e.dropping {
			e.dropping = true
			e.opts.Logger.Warn("detect: signal queue full; dropping signals until the reporter catches up",
				"rule", e.name, "dedup_key", s.DedupKey)
		}
	}
}

func (e *engine) reportLoop(ctx context.Context, r incident.Reporter, in <-chan incident.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-in:
			e.report(ctx, r, s)
		}
	}
}

// report hands s to r per the Report policy (one retry layer: the
// library's own, which recovers panics and bounds each attempt). It never
// panics.
func (e *engine) report(ctx context.Context, r incident.Reporter, s incident.Signal) {
	out := retry.Do(ctx, e.opts.Report, nil, func(ctx context.Context, attempt int) (err error) {
		defer func() {
			if v := recover(); v != nil {
				pe := &incident.PanicError{Value: v, Stack: debug.Stack()}
				e.st.panics.Add(1)
				e.st.errors.Add(1)
				e.opts.Logger.Error("detect: reporter panicked", "rule", e.name, "dedup_key", s.DedupKey,
					"attempt", attempt, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
				err = pe
			}
		}()
		if _, err = r.Report(ctx, s); err == nil {
			return nil
		}
		e.st.errors.Add(1)
		e.opts.Logger.Warn("detect: reporter failed", "rule", e.name, "dedup_key", s.DedupKey, "attempt", attempt, "err", err)
		if errors.Is(err, incident.ErrInvalidSignal) {
			return incident.Permanent(err) // the same signal fails the same way
		}
		return err
	})
	switch {
	case out.Err == nil:
		e.st.signals.Add(1)
	case ctx.Err() != nil:
		e.st.dropped.Add(1)
	default:
		e.st.failed.Add(1)
		e.opts.Logger.Error("detect: signal not reported", "rule", e.name, "dedup_key", s.DedupKey,
			"attempts", out.Attempts, "err", out.Err)
	}
}

// signal builds a signal of the rule about key, at t, from ev.
func (e *engine) signal(key string, ev *Event, t int64, summary string, attrs map[string]string) incident.Signal {
	return incident.Signal{
		Kind: e.kind, Subject: key, DedupKey: DedupKey(e.name, key), Severity: e.sev,
		Source: "detect/" + e.name, Account: ev.Account, Summary: summary,
		At: time.Unix(0, t).UTC(), Attributes: attrs,
	}
}

// DedupKey returns the dedup key of the signals a rule reports about a key:
// "detect/" + rule + "/" + key, or, when that would be longer than
// incident.MaxDedupKeyLen, "detect/" + rule + "#" and 32 hex digits of the
// key's SHA-256. Rule names hold neither '/' nor '#', so keys of different
// rules never collide.
func DedupKey(rule, key string) string {
	if k := "detect/" + rule + "/" + key; len(k) <= incident.MaxDedupKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return "detect/" + rule + "#" + hex.EncodeToString(sum[:16])
}

// copyAttrs copies src into dst with each key prefixed.
func copyAttrs(dst map[string]string, prefix string, src map[string]string) {
	for k, v := range src {
		dst[prefix+k] = v
	}
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// queue is the bounded queue between Observe and Detect: a mutex-guarded
// buffer that Detect swaps for an empty one, taking every waiting event at
// once.
type queue struct {
	mu   sync.Mutex
	buf  []Event
	wake chan struct{} // holds a token when events arrived in an empty buffer
}

func (q *queue) init(size int) {
	q.buf = make([]Event, 0, size)
	q.wake = make(chan struct{}, 1)
}

// push appends ev unless the buffer is full. It never waits for Detect.
func (q *queue) push(ev *Event) bool {
	q.mu.Lock()
	n := len(q.buf)
	if n == cap(q.buf) {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, *ev)
	q.mu.Unlock()
	if n == 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// swap returns the waiting events and puts spare, emptied, in their place.
func (q *queue) swap(spare []Event) []Event {
	q.mu.Lock()
	b := q.buf
	q.buf = spare[:0]
	q.mu.Unlock()
	return b
}
