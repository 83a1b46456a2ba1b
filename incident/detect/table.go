package detect

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"unsafe"
)

// table maps up to max keys to a fixed-size state S each. Entries live in
// pages of a fixed size, so the table grows without copying them and
// without slack beyond one page; an open-addressing index (linear probing,
// at most four fifths full) maps a key to its entry. Each index slot holds
// the entry's number and 8 bits of the key's hash, so that a probe looks
// at an entry only when those bits match. When the table is full, a
// new key takes the entry of a victim chosen by CLOCK: entries carry a mark
// set when their key is seen again; the hand clears marks as it passes and
// stops at the first unmarked entry.
//
// A table is owned by one goroutine.
type table[S any] struct {
	seed  maphash.Seed
	index []uint32 // 0 empty, else tag<<24 | (entry number + 1)
	mask  uint64
	pages [][]entry[S]
	marks []uint64 // one bit per entry
	n     int      // entries in use
	sink  uintptr  // keeps warm's loads
	max   int
	hand  int
}

type entry[S any] struct {
	key string
	s   S
}

const (
	pageBits = 9
	pageSize = 1 << pageBits
	// maxEntries is the most entries an index slot can name.
	maxEntries = 1<<24 - 1
	slotBits   = 1<<24 - 1
)

// tag is the part of h an index slot keeps: bits the slot's position does
// not use.
func tag(h uint64) uint32 { return uint32(h>>56) << 24 }

// load reports whether an index of size slots may hold n entries.
func load(n, slots int) bool { return uint64(n)*5 <= uint64(slots)*4 }

func newTable[S any](max int) *table[S] {
	t := &table[S]{seed: maphash.MakeSeed(), max: min(max, maxEntries)}
	t.resize(64)
	return t
}

func (t *table[S]) at(i int) *entry[S] { return &t.pages[i>>pageBits][i&(pageSize-1)] }

// len returns the number of keys tracked.
func (t *table[S]) len() int { return t.n }

// get returns the state of key, and false when the key is not tracked.
// It marks the key as seen again.
func (t *table[S]) get(key string) (*S, bool) {
	h := maphash.String(t.seed, key)
	tg := tag(h)
	for p := h & t.mask; ; p = (p + 1) & t.mask {
		v := t.index[p]
		if v == 0 {
			return nil, false
		}
		if v&^slotBits != tg {
			continue
		}
		i := v&slotBits - 1
		if e := t.at(int(i)); e.key == key {
			t.marks[i>>6] |= 1 << (i & 63)
			return &e.s, true
		}
	}
}

// warm loads, for every event, the index slot and the entry that get will
// read, without changing anything. The loads of one pass are independent
// of each other, so their cache misses overlap.
func (t *table[S]) warm(evs []Event) {
	evs = evs[:min(len(evs), warmGroup)]
	var sink uintptr
	for i := range evs { // the keys' bytes, for hashing
		sink += uintptr(evs[i].Key[0])
	}
	var slots [warmGroup]uint32
	for i := range evs {
		slots[i] = t.index[maphash.String(t.seed, evs[i].Key)&t.mask]
	}
	for _, v := range slots[:len(evs)] {
		if v != 0 {
			e := t.at(int(v&slotBits - 1))
			// The key's header and bytes, and the end of the entry.
			sink += uintptr(len(e.key)) + uintptr(e.key[0]) + uintptr(*(*byte)(unsafe.Add(unsafe.Pointer(e), unsafe.Sizeof(*e)-1)))
		}
	}
	t.sink += sink
}

// put starts tracking key, which must not be tracked, with a zero state,
// and returns it. It reports whether another key was evicted to make room.
// The key is copied, so that the table never keeps a caller's larger
// buffer alive.
func (t *table[S]) put(key string) (s *S, evicted bool) {
	var i int
	if t.n < t.max {
		i = t.n
		if i>>pageBits == len(t.pages) {
			t.pages = append(t.pages, make([]entry[S], pageSize))
			t.marks = append(t.marks, make([]uint64, pageSize/64)...)
		}
		if !load(t.n+1, len(t.index)) {
			t.resize(len(t.index) * 2)
		}
		t.n++
	} else {
		i = t.victim()
		t.unindex(i)
		evicted = true
	}
	e := t.at(i)
	*e = entry[S]{key: strings.Clone(key)}
	t.marks[i>>6] &^= 1 << (i & 63)
	t.insert(i)
	return &e.s, evicted
}

// victim advances the CLOCK hand to the first unmarked entry, clearing the
// marks it passes, and returns it.
func (t *table[S]) victim() int {
	for {
		i := t.hand
		t.hand++
		if t.hand == t.n {
			t.hand = 0
		}
		w, b := &t.marks[i>>6], uint64(1)<<(i&63)
		if *w&b == 0 {
			return i
		}
		*w &^= b
	}
}

// unindex removes entry i from the index, shifting back the entries that
// follow in its probe run so that no lookup stops short.
func (t *table[S]) unindex(i int) {
	p := maphash.String(t.seed, t.at(i).key) & t.mask
	for t.index[p]&slotBits != uint32(i+1) {
		p = (p + 1) & t.mask
	}
	for {
		t.index[p] = 0
		q := p
		for {
			q = (q + 1) & t.mask
			v := t.index[q]
			if v == 0 {
				return
			}
			home := maphash.String(t.seed, t.at(int(v&slotBits-1)).key) & t.mask
			// The entry at q may move to p unless its home lies
			// cyclically in (p, q].
			if (q-home)&t.mask >= (q-p)&t.mask {
				t.index[p] = v
				p = q
				break
			}
		}
	}
}

func (t *table[S]) resize(size int) {
	if size < 64 {
		size = 64
	}
	size = 1 << bits.Len(uint(size-1))
	t.index = make([]uint32, size)
	t.mask = uint64(size - 1)
	for i := range t.n {
		t.insert(i)
	}
}

// insert adds entry i to the index.
func (t *table[S]) insert(i int) {
	h := maphash.String(t.seed, t.at(i).key)
	p := h & t.mask
	for t.index[p] != 0 {
		p = (p + 1) & t.mask
	}
	t.index[p] = tag(h) | uint32(i+1)
}

// each calls fn for every tracked key in table order.
func (t *table[S]) each(fn func(key string, s *S)) {
	for i := range t.n {
		e := t.at(i)
		fn(e.key, &e.s)
	}
}
