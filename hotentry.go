package breach

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
)

// An entry of the hot index (hotindex.go): the signals of one open incident
// counted in memory between group commits, and the batches of reports
// waiting for them to be stored.

// delta is what a flush takes from an entry: the counts, times, highest
// severity and samples gathered since the last one.
type delta struct {
	count       int64
	first, last time.Time
	untimed     bool
	severity    incident.Severity
	samples     []incident.SignalSample
}

// batch is a group commit of signal counts: the reports waiting for the
// counts they added to one entry to be stored. done closes when the flush
// that took them has written them (err nil, id the incident they are on) or
// failed (err; the counts are dropped, and each waiting Report says so).
// ended is set as done closes: a waiter that may find the batch already
// ended (ReportAll's, with thousands of signals) reads it instead of a
// select, which takes the channel's lock.
type batch struct {
	done  chan struct{}
	ended atomic.Bool
	err   error
	id    string
}

// finish tells the batch's waiters the outcome; a nil batch has none.
func (b *batch) finish(id string, err error) {
	if b != nil {
		b.id, b.err = id, err
		b.ended.Store(true)
		close(b.done)
	}
}

// hotEntry gathers the signals of one open incident between flushes, under
// its mutex: the count, first and last seen, the highest severity, the
// first few signals as samples, and the batch of reports waiting for them
// to be stored.
type hotEntry struct {
	id      string
	key     hotKey // the key it was filed under, to re-file signals
	dedup   string // the incident's own dedup key: signals of others joined it by a merge
	kind    string
	subject string
	born    uint64      // hotIndex.seq when created
	dead    atomic.Bool // set under mu; read without it by lookups

	mu       sync.Mutex
	count    int64
	first    time.Time
	last     time.Time
	untimed  bool // a signal came without At
	severity incident.Severity
	room     int // samples the incident can still take, less those gathered
	samples  []incident.SignalSample
	batch    *batch
}

// add counts s on e unless e is dead (its incident ended): it reports
// whether it did. With wait, it also returns the batch whose flush stores
// the count (the caller waits for it); newBatch is called when it starts
// one. A signal add counted is always found by a later flush.
func (e *hotEntry) add(s *incident.Signal, now func() time.Time, wait bool, newBatch func()) (*batch, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead.Load() {
		return nil, false
	}
	e.count++
	e.severity = max(e.severity, s.Severity)
	at := s.At
	if at.IsZero() && e.room > 0 {
		at = now()
	}
	if e.room > 0 {
		e.room--
		e.samples = append(e.samples, incident.SignalSample{At: at, Source: s.Source, Severity: s.Severity, Summary: s.Summary})
	}
	if at.IsZero() {
		e.untimed = true
	} else {
		if at.After(e.last) {
			e.last = at
		}
		e.first = firstSeen(e.first, at)
	}
	if !wait {
		return nil, true
	}
	if e.batch == nil {
		e.batch = &batch{done: make(chan struct{})}
		newBatch()
	}
	return e.batch, true
}

// kill marks e dead: no add counts on it after kill returns.
func (e *hotEntry) kill() {
	e.mu.Lock()
	e.dead.Store(true)
	e.mu.Unlock()
}

// pendingCount is what a flush would take.
func (e *hotEntry) pendingCount() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// take removes and returns what was gathered since the last take, with the
// batch waiting for it.
func (e *hotEntry) take() (delta, *batch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := delta{count: e.count, first: e.first, last: e.last, untimed: e.untimed, severity: e.severity, samples: e.samples}
	b := e.batch
	e.count, e.first, e.last, e.untimed, e.severity, e.samples, e.batch = 0, time.Time{}, time.Time{}, false, 0, nil, nil
	return d, b
}

// firstSeen is the earlier of two first-seen times, a zero time being none
// (signals that came untimed tell no first time): counts merged from
// anywhere (an entry, a flush, a merged incident) keep the first time of
// those that have one.
func firstSeen(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// giveBack merges a delta that could not be flushed into what came since
// (for counts no report waits for).
func (e *hotEntry) giveBack(d delta) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count += d.count
	e.first = firstSeen(e.first, d.first)
	if d.last.After(e.last) {
		e.last = d.last
	}
	e.untimed = e.untimed || d.untimed
	e.severity = max(e.severity, d.severity)
	e.samples = append(d.samples, e.samples...)
}
