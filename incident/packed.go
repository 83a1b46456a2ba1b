package incident

import (
	"math"
	"strings"
	"time"
)

// MemStore keeps each incident's timeline packed: timestamps as integers
// and the short repeated strings (actor, type, event, states) as indexes
// into a table of names. A timeline entry then takes 72 bytes instead of
// 152, which is most of an open incident's memory. Entries once packed are
// never copied again (the slice grows by appending); a read unpacks a
// fresh copy of its page.

type packedTimeline struct {
	entries []packedEntry
	raw     Timeline // used from the first entry the name table had no room for
}

func (p packedTimeline) len() int { return len(p.entries) + len(p.raw) }

type packedEntry struct {
	at       int64 // UTC Unix microseconds; math.MinInt64 for the zero time
	detail   string
	actor    uint32
	typ, ev  uint16
	from, to uint16
	hash     Hash
}

// names interns the short strings of timelines. It belongs to one MemStore
// and is guarded by its mutex.
type names struct {
	idx  map[string]uint32
	strs []string
}

func (t *names) id(s string, limit uint32) (uint32, bool) {
	if i, ok := t.idx[s]; ok {
		return i, i < limit
	}
	if uint32(len(t.strs)) >= limit {
		return 0, false
	}
	if t.idx == nil {
		t.idx = map[string]uint32{}
	}
	i := uint32(len(t.strs))
	t.idx[s] = i
	t.strs = append(t.strs, strings.Clone(s))
	return i, true
}

// appendPacked returns p with tl appended.
func (t *names) appendPacked(p packedTimeline, tl Timeline) packedTimeline {
	for i := range tl {
		e := &tl[i]
		if p.raw != nil {
			p.raw = append(p.raw, *e)
			continue
		}
		actor, ok1 := t.id(e.Actor, math.MaxUint32)
		typ, ok2 := t.id(string(e.Type), math.MaxUint16)
		ev, ok3 := t.id(string(e.Event), math.MaxUint16)
		from, ok4 := t.id(string(e.From), math.MaxUint16)
		to, ok5 := t.id(string(e.To), math.MaxUint16)
		if !(ok1 && ok2 && ok3 && ok4 && ok5) {
			p.raw = append(p.raw, *e)
			continue
		}
		pe := packedEntry{actor: actor, typ: uint16(typ), ev: uint16(ev), from: uint16(from), to: uint16(to),
			at: math.MinInt64, detail: strings.Clone(e.Detail), hash: e.Hash}
		if !e.At.IsZero() {
			pe.at = e.At.UnixMicro()
		}
		p.entries = append(p.entries, pe)
	}
	return p
}

// unpack returns a fresh copy of at most n entries of p from position from.
func (t *names) unpack(p packedTimeline, from, n int) Timeline {
	end := min(p.len(), from+n)
	if from >= end {
		return nil
	}
	tl := make(Timeline, 0, end-from)
	for i := from; i < end; i++ {
		if i >= len(p.entries) {
			tl = append(tl, p.raw[i-len(p.entries)])
			continue
		}
		pe := &p.entries[i]
		e := Entry{Actor: t.strs[pe.actor], Type: EntryType(t.strs[pe.typ]), Event: Event(t.strs[pe.ev]),
			From: State(t.strs[pe.from]), To: State(t.strs[pe.to]), Detail: pe.detail, Hash: pe.hash}
		if pe.at != math.MinInt64 {
			e.At = time.UnixMicro(pe.at).UTC()
		}
		tl = append(tl, e)
	}
	return tl
}
