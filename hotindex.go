package breach

import (
	"sync"
	"sync/atomic"

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

// incidentHotKey is the hot-index key an incident's own signals are filed
// under.
func incidentHotKey(inc *incident.Incident) hotKey {
	if k := (hotKey{kind: inc.Kind, subject: inc.Subject}); k.is(inc.DedupKey) {
		return k
	}
	return hotKey{dedup: inc.DedupKey}
}

// is reports whether k stands for the dedup key dedup (incident.Signal.Key:
// the signal's DedupKey, else kind "/" subject), without building it.
func (k hotKey) is(dedup string) bool {
	if k.dedup != "" {
		return k.dedup == dedup
	}
	n := len(k.kind)
	return len(dedup) == n+1+len(k.subject) && dedup[:n] == k.kind && dedup[n] == '/' && dedup[n+1:] == k.subject
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
// new snapshot once lookups have missed the snapshot as often as the two
// hold entries, so that the fold's cost, a copy of every entry, is spread
// over as many lookups and a new incident a millisecond does not copy the
// index a millisecond (the scheme of sync.Map, without boxing the key).
// Entries of incidents that ended are marked dead and dropped at the next
// fold.
type hotIndex struct {
	read     atomic.Pointer[hotMap]
	mu       sync.Mutex
	seq      uint64                 // entries created so far
	live     map[string]*hotEntry   // by incident ID, the entries not dead
	retiring map[*hotEntry]struct{} // dead entries that may still hold counts
	dirty    hotMap                 // keys not yet in read
	readLen  int                    // entries in read
	misses   int
}

// cached returns the live entry for k from the lock-free snapshot, or nil
// when the snapshot has none (the entry may be among those added since:
// see locked).
func (h *hotIndex) cached(k hotKey) *hotEntry {
	if m := h.read.Load(); m != nil {
		if e := m.get(k); e != nil && !e.dead.Load() {
			return e
		}
	}
	return nil
}

// locked returns the live entry for k among those added since the
// snapshot, under h.mu, or nil.
func (h *hotIndex) locked(k hotKey) *hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.dirty.get(k)
	if n := h.dirty.len(); n > 0 {
		h.misses++
		if h.misses >= n+h.readLen {
			h.fold()
		}
	}
	if e != nil && e.dead.Load() {
		return nil
	}
	return e
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
	h.dirty, h.misses, h.readLen = hotMap{}, 0, m.len()
}

// put returns the live entry for inc, creating it under k.
func (h *hotIndex) put(k hotKey, inc *incident.Incident) *hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.live[inc.ID]
	if e != nil && e.dead.Load() {
		h.retireLocked(e) // killed by a retire that has not moved it yet
		e = nil
	}
	if e == nil {
		h.seq++
		e = &hotEntry{id: inc.ID, key: k, dedup: inc.DedupKey, kind: inc.Kind, subject: inc.Subject, born: h.seq}
		e.room = incident.MaxSignalSamples - len(inc.Signals.Samples)
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
	var gone []*hotEntry
	for id, e := range h.live {
		if e.born <= mark && !open[id] {
			gone = append(gone, e)
		}
	}
	h.mu.Unlock()
	h.retire(gone...)
}

// remove forgets the incident once it is no longer open: its entry is
// marked dead, so the next signal with its key takes the slow path.
func (h *hotIndex) remove(id string) {
	h.mu.Lock()
	e := h.live[id]
	h.mu.Unlock()
	if e != nil {
		h.retire(e)
	}
}

// retire marks each of es dead, then moves it from the live entries to the
// retiring ones, where it stays until what it counted is flushed.
//
// The entries are killed without h.mu: a kill takes the entry's lock,
// which reporters take for every signal they count, and a reporter
// preempted while holding one must hold up only this call, not every
// lookup that misses the index. Meanwhile a dead entry among the live ones
// is passed over by lookups, and put replaces it (retiring it itself).
func (h *hotIndex) retire(es ...*hotEntry) {
	if len(es) == 0 {
		return
	}
	for _, e := range es {
		e.kill()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range es {
		h.retireLocked(e)
	}
}

// retireLocked moves e, dead, from the live entries to the retiring ones;
// h.mu is held. Filing it there again is harmless: a dead entry takes no
// count, so one found empty (and dropped) stays empty.
func (h *hotIndex) retireLocked(e *hotEntry) {
	if h.live[e.id] == e {
		delete(h.live, e.id)
	}
	if h.retiring == nil {
		h.retiring = map[*hotEntry]struct{}{}
	}
	h.retiring[e] = struct{}{}
}

// pending returns the entries with signals not yet flushed: live ones with
// a count, and retired ones until they are found empty. Every entry known
// when it is called is looked at.
//
// The counts are read after h.mu is released: each takes its entry's own
// lock, which reporters take for every signal they count, and a reporter
// preempted while holding one must hold up only this flush, not every
// lookup that misses the index (a new incident's Report among them).
func (h *hotIndex) pending() []*hotEntry {
	h.mu.Lock()
	all := make([]*hotEntry, 0, len(h.live)+len(h.retiring))
	for _, e := range h.live {
		all = append(all, e)
	}
	live := len(all)
	for e := range h.retiring {
		all = append(all, e)
	}
	h.mu.Unlock()
	out := all[:0]
	var empty []*hotEntry
	for i, e := range all {
		switch {
		case e.pendingCount() > 0:
			out = append(out, e)
		case i >= live:
			// Dead entries take no count (kill and add share its
			// mutex): one found empty stays empty.
			empty = append(empty, e)
		}
	}
	if len(empty) > 0 {
		h.mu.Lock()
		for _, e := range empty {
			delete(h.retiring, e)
		}
		h.mu.Unlock()
	}
	return out
}
