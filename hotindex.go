package breach

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
)

// hotKey identifies a signal's dedup key without building the string: an
// explicit DedupKey, or the Kind and Subject it defaults from. The index
// hashes one string of it: the dedup key, or else the subject.
type hotKey struct{ dedup, kind, subject string }

func hotKeyOf(s *incident.Signal) hotKey {
	if s.DedupKey != "" {
		return hotKey{dedup: s.DedupKey}
	}
	return hotKey{kind: s.Kind, subject: s.Subject}
}

// hotMap is a map from hotKey hashing a single string per lookup.
type hotMap struct {
	byDedup   map[string]*hotEntry
	bySubject map[string][]kindEntry // usually one kind per subject
}

type kindEntry struct {
	kind string
	e    *hotEntry
}

func (m *hotMap) get(k hotKey) *hotEntry {
	if k.dedup != "" {
		return m.byDedup[k.dedup]
	}
	for _, ke := range m.bySubject[k.subject] {
		if ke.kind == k.kind {
			return ke.e
		}
	}
	return nil
}

func (m *hotMap) set(k hotKey, e *hotEntry) {
	if k.dedup != "" {
		if m.byDedup == nil {
			m.byDedup = map[string]*hotEntry{}
		}
		m.byDedup[k.dedup] = e
		return
	}
	if m.bySubject == nil {
		m.bySubject = map[string][]kindEntry{}
	}
	list := m.bySubject[k.subject]
	for i := range list {
		if list[i].kind == k.kind {
			list[i].e = e
			return
		}
	}
	m.bySubject[k.subject] = append(list, kindEntry{k.kind, e})
}

func (m *hotMap) each(fn func(hotKey, *hotEntry) bool) bool {
	for d, e := range m.byDedup {
		if !fn(hotKey{dedup: d}, e) {
			return false
		}
	}
	for s, list := range m.bySubject {
		for _, ke := range list {
			if !fn(hotKey{kind: ke.kind, subject: s}, ke.e) {
				return false
			}
		}
	}
	return true
}

func (m *hotMap) len() int {
	n := len(m.byDedup)
	for _, list := range m.bySubject {
		n += len(list)
	}
	return n
}

// hotIndex maps the dedup keys of open incidents this process has seen to
// in-memory counters, so that a signal storm costs no store write per
// signal. Reads take no lock: they look in an immutable snapshot behind an
// atomic pointer. New keys go to a mutex-guarded map that is folded into a
// new snapshot once lookups have missed the snapshot as often as it has
// entries (the scheme of sync.Map, without boxing the key). Entries of
// incidents that ended are marked dead and dropped at the next fold.
type hotIndex struct {
	read     atomic.Pointer[hotMap]
	mu       sync.Mutex
	seq      uint64                 // entries created so far
	live     map[string]*hotEntry   // by incident ID, the entries not dead
	retiring map[*hotEntry]struct{} // dead entries that may still hold counts
	dirty    hotMap                 // keys not yet in read
	misses   int
}

func (h *hotIndex) get(k hotKey) *hotEntry {
	if m := h.read.Load(); m != nil {
		if e := m.get(k); e != nil && !e.dead.Load() {
			return e
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.dirty.get(k)
	if n := h.dirty.len(); n > 0 {
		h.misses++
		if h.misses >= n {
			h.fold()
		}
	}
	if e != nil && e.dead.Load() {
		return nil
	}
	return e
}

// join counts s on the live entry for k and returns it; it returns nil,
// counting nothing, when there is none.
func (h *hotIndex) join(k hotKey, s *incident.Signal, now func() time.Time) *hotEntry {
	if e := h.get(k); e != nil && e.add(s, now) {
		return e
	}
	return nil
}

// fold makes a new snapshot of the live entries; h.mu is held.
func (h *hotIndex) fold() {
	m := &hotMap{}
	keep := func(k hotKey, e *hotEntry) bool {
		if !e.dead.Load() {
			m.set(k, e)
		}
		return true
	}
	if old := h.read.Load(); old != nil {
		old.each(keep)
	}
	h.dirty.each(keep)
	h.read.Store(m)
	h.dirty, h.misses = hotMap{}, 0
}

// put returns the live entry for inc, creating it under k.
func (h *hotIndex) put(k hotKey, inc *incident.Incident) *hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.live[inc.ID]
	if e == nil {
		h.seq++
		e = &hotEntry{id: inc.ID, key: k, kind: inc.Kind, subject: inc.Subject, born: h.seq}
		e.room.Store(int32(incident.MaxSignalSamples - len(inc.Signals.Samples)))
		if h.live == nil {
			h.live = map[string]*hotEntry{}
		}
		h.live[inc.ID] = e
	}
	if m := h.read.Load(); m != nil && m.get(k) == e {
		return e
	}
	h.dirty.set(k, e)
	return e
}

// mark returns a position to pass to retain.
func (h *hotIndex) mark() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// retain forgets every incident not in open that the index knew at mark:
// entries made since may be for incidents opened after open was read.
func (h *hotIndex) retain(open map[string]bool, mark uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.live {
		if e.born <= mark && !open[id] {
			h.retire(e)
		}
	}
}

// remove forgets the incident once it is no longer open: its entry is
// marked dead, so the next signal with its key takes the slow path.
func (h *hotIndex) remove(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.live[id]; e != nil {
		h.retire(e)
	}
}

// retire marks e dead and keeps it until what it counted is flushed; h.mu
// is held.
func (h *hotIndex) retire(e *hotEntry) {
	e.dead.Store(true)
	delete(h.live, e.id)
	if h.retiring == nil {
		h.retiring = map[*hotEntry]struct{}{}
	}
	h.retiring[e] = struct{}{}
}

// pending returns the entries with signals not yet flushed: live ones with
// a count, and retired ones until they are found empty.
func (h *hotIndex) pending() []*hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*hotEntry
	for _, e := range h.live {
		if e.count.Load() > 0 {
			out = append(out, e)
		}
	}
	for e := range h.retiring {
		// An entry is dropped only when no signal is being added to it
		// (inflight, read first) and nothing is left to flush: one added
		// after the inflight read sees it dead and takes the slow path.
		switch {
		case e.inflight.Load() == 0 && e.count.Load() == 0:
			delete(h.retiring, e)
		case e.count.Load() > 0:
			out = append(out, e)
		}
	}
	return out
}

type delta struct {
	count       int64
	first, last time.Time
	untimed     bool
	severity    incident.Severity
	samples     []incident.SignalSample
}

// hotEntry gathers the signals of one open incident between flushes. The
// counters are atomics, so concurrent reports of one key contend on one
// cache line, as a mutex would, and never block; the first few signals are
// also kept as samples, under mu.
type hotEntry struct {
	id       string
	key      hotKey // the key it was filed under, to re-file signals
	kind     string
	subject  string
	born     uint64 // hotIndex.seq when created
	dead     atomic.Bool
	inflight atomic.Int32 // adds under way; see add and hotIndex.pending
	count    atomic.Int64
	first    atomic.Int64 // Unix nanoseconds; 0: none since the last take
	last     atomic.Int64
	untimed  atomic.Bool // a signal came without At
	severity atomic.Int32
	room     atomic.Int32 // samples the incident can still take, less those gathered

	mu      sync.Mutex
	samples []incident.SignalSample
}

// add counts s on e unless e is dead (its incident ended): it reports
// whether it did. A signal add counted is always found by a later flush.
func (e *hotEntry) add(s *incident.Signal, now func() time.Time) bool {
	e.inflight.Add(1)
	defer e.inflight.Add(-1)
	if e.dead.Load() {
		return false
	}
	e.observe(s, now)
	return true
}

func (e *hotEntry) observe(s *incident.Signal, now func() time.Time) {
	e.count.Add(1)
	if sev := int32(s.Severity); sev > e.severity.Load() {
		casMax32(&e.severity, sev)
	}
	at := s.At
	if e.room.Load() > 0 {
		if at.IsZero() {
			at = now()
		}
		e.mu.Lock()
		if e.room.Load() > 0 {
			e.room.Add(-1)
			e.samples = append(e.samples, incident.SignalSample{At: at, Source: s.Source, Severity: s.Severity, Summary: s.Summary})
		}
		e.mu.Unlock()
	}
	if at.IsZero() {
		if !e.untimed.Load() {
			e.untimed.Store(true)
		}
		return
	}
	ns := at.UnixNano()
	if ns > e.last.Load() {
		casMax(&e.last, ns)
	}
	if f := e.first.Load(); f == 0 || ns < f {
		casMin(&e.first, ns)
	}
}

func casMax(v *atomic.Int64, x int64) {
	for old := v.Load(); x > old && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func casMin(v *atomic.Int64, x int64) {
	for old := v.Load(); (old == 0 || x < old) && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func casMax32(v *atomic.Int32, x int32) {
	for old := v.Load(); x > old && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// take removes and returns what was gathered since the last take.
func (e *hotEntry) take() delta {
	d := delta{
		count:    e.count.Swap(0),
		first:    fromNanos(e.first.Swap(0)),
		last:     fromNanos(e.last.Swap(0)),
		untimed:  e.untimed.Swap(false),
		severity: incident.Severity(e.severity.Swap(0)),
	}
	e.mu.Lock()
	d.samples, e.samples = e.samples, nil
	e.mu.Unlock()
	return d
}

// giveBack merges a delta that could not be flushed into what came since.
func (e *hotEntry) giveBack(d delta) {
	e.count.Add(d.count)
	if !d.first.IsZero() {
		casMin(&e.first, d.first.UnixNano())
	}
	if !d.last.IsZero() {
		casMax(&e.last, d.last.UnixNano())
	}
	if d.untimed {
		e.untimed.Store(true)
	}
	casMax32(&e.severity, int32(d.severity))
	e.mu.Lock()
	e.samples = append(d.samples, e.samples...)
	e.mu.Unlock()
}
