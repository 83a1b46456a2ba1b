package incident

import (
	"math"
	"strings"
	"time"
)

// MemStore keeps each incident as its record without the timeline, plus the
// timeline packed: timestamps as integers, the short repeated strings
// (actor, type, event, states) as indexes into a table of names, and every
// detail in one string. A timeline entry then takes 64 bytes instead of
// 152, which is most of an open incident's memory. Get unpacks a fresh
// copy; details are substrings of the packed text, which never changes.

type stored struct {
	inc *Incident // Timeline is nil; see tl
	tl  packedTimeline
	raw Timeline // used instead of tl when the name table is full
}

type packedTimeline struct {
	entries []packedEntry
	text    string
}

type packedEntry struct {
	at       int64 // UTC Unix nanoseconds; math.MinInt64 for the zero time
	off, n   uint32
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

func (t *names) pack(tl Timeline) (packedTimeline, bool) {
	size := 0
	for i := range tl {
		size += len(tl[i].Detail)
	}
	if size > math.MaxUint32 {
		return packedTimeline{}, false
	}
	var b strings.Builder
	b.Grow(size)
	p := packedTimeline{entries: make([]packedEntry, len(tl))}
	for i := range tl {
		e := &tl[i]
		pe := &p.entries[i]
		actor, ok1 := t.id(e.Actor, math.MaxUint32)
		typ, ok2 := t.id(string(e.Type), math.MaxUint16)
		ev, ok3 := t.id(string(e.Event), math.MaxUint16)
		from, ok4 := t.id(string(e.From), math.MaxUint16)
		to, ok5 := t.id(string(e.To), math.MaxUint16)
		if !(ok1 && ok2 && ok3 && ok4 && ok5) {
			return packedTimeline{}, false
		}
		pe.actor, pe.typ, pe.ev, pe.from, pe.to = actor, uint16(typ), uint16(ev), uint16(from), uint16(to)
		pe.at = math.MinInt64
		if !e.At.IsZero() {
			pe.at = e.At.UnixMicro()
		}
		pe.off, pe.n = uint32(b.Len()), uint32(len(e.Detail))
		b.WriteString(e.Detail)
		pe.hash = e.Hash
	}
	p.text = b.String()
	return p, true
}

func (t *names) unpack(p packedTimeline) Timeline {
	if len(p.entries) == 0 {
		return nil
	}
	tl := make(Timeline, len(p.entries))
	for i := range p.entries {
		pe := &p.entries[i]
		e := &tl[i]
		if pe.at != math.MinInt64 {
			e.At = time.UnixMicro(pe.at).UTC()
		}
		e.Actor = t.strs[pe.actor]
		e.Type, e.Event = EntryType(t.strs[pe.typ]), Event(t.strs[pe.ev])
		e.From, e.To = State(t.strs[pe.from]), State(t.strs[pe.to])
		e.Detail = p.text[pe.off : pe.off+pe.n]
		e.Hash = pe.hash
	}
	return tl
}

// store packs a copy of inc.
func (t *names) store(inc *Incident) *stored {
	tl := inc.Timeline
	inc.Timeline = nil
	s := &stored{inc: inc.Clone()}
	inc.Timeline = tl
	if p, ok := t.pack(tl); ok {
		s.tl = p
	} else {
		s.raw = append(Timeline(nil), tl...)
	}
	return s
}

// load returns a fresh copy of the stored incident.
func (t *names) load(s *stored) *Incident {
	c := s.inc.Clone()
	if s.raw != nil {
		c.Timeline = append(Timeline(nil), s.raw...)
	} else {
		c.Timeline = t.unpack(s.tl)
	}
	return c
}
