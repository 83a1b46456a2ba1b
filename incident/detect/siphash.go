package detect

import (
	"encoding/binary"
	"math/bits"
)

// sip is SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed hash: without
// the key, nobody can choose a value whose hash matches a remembered one.
// NewTerms remembers 64-bit SipHashes of (key, value) pairs; the hash key
// travels with the snapshot, so that the hashes survive a restart.
type sip struct {
	v0, v1, v2, v3 uint64
	buf            [8]byte
	nbuf           int
	total          uint64
}

func newSip(k0, k1 uint64) sip {
	return sip{v0: k0 ^ 0x736f6d6570736575, v1: k1 ^ 0x646f72616e646f6d,
		v2: k0 ^ 0x6c7967656e657261, v3: k1 ^ 0x7465646279746573}
}

func (s *sip) round() {
	s.v0 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 13) ^ s.v0
	s.v0 = bits.RotateLeft64(s.v0, 32)
	s.v2 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 16) ^ s.v2
	s.v0 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 21) ^ s.v0
	s.v2 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 17) ^ s.v2
	s.v2 = bits.RotateLeft64(s.v2, 32)
}

func (s *sip) block(m uint64) {
	s.v3 ^= m
	s.round()
	s.round()
	s.v0 ^= m
}

func (s *sip) write(p string) {
	s.total += uint64(len(p))
	if s.nbuf > 0 {
		n := copy(s.buf[s.nbuf:], p)
		s.nbuf += n
		p = p[n:]
		if s.nbuf < 8 {
			return
		}
		s.block(binary.LittleEndian.Uint64(s.buf[:]))
		s.nbuf = 0
	}
	for len(p) >= 8 {
		s.block(uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56)
		p = p[8:]
	}
	s.nbuf = copy(s.buf[:], p)
}

func (s *sip) sum() uint64 {
	b := s.total << 56
	for i := range s.nbuf {
		b |= uint64(s.buf[i]) << (8 * i)
	}
	s.block(b)
	s.v2 ^= 0xff
	for range 4 {
		s.round()
	}
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

// pairHash hashes (key, value) unambiguously: the key's length comes
// first. It never returns 0, which marks an empty slot.
func pairHash(k0, k1 uint64, key, value string) uint64 {
	s := newSip(k0, k1)
	s.block(uint64(len(key)))
	s.total = 8
	s.write(key)
	s.write(value)
	if h := s.sum(); h != 0 {
		return h
	}
	return 1
}

// hashSet is a set of non-zero 64-bit hashes: open addressing, linear
// probing, at most three quarters full.
type hashSet struct {
	slots []uint64
	n     int
}

func (h *hashSet) has(x uint64) bool {
	if len(h.slots) == 0 {
		return false
	}
	mask := uint64(len(h.slots) - 1)
	for p := x & mask; ; p = (p + 1) & mask {
		switch h.slots[p] {
		case x:
			return true
		case 0:
			return false
		}
	}
}

// add inserts x, which must not be in the set.
func (h *hashSet) add(x uint64) {
	if (h.n+1)*4 > len(h.slots)*3 {
		h.grow()
	}
	mask := uint64(len(h.slots) - 1)
	p := x & mask
	for h.slots[p] != 0 {
		p = (p + 1) & mask
	}
	h.slots[p] = x
	h.n++
}

func (h *hashSet) grow() {
	old := h.slots
	h.slots = make([]uint64, max(2*len(old), 1024))
	h.n = 0
	for _, x := range old {
		if x != 0 {
			h.add(x)
		}
	}
}

func (h *hashSet) reset() {
	clear(h.slots)
	h.n = 0
}

func (h *hashSet) appendTo(dst []uint64) []uint64 {
	for _, x := range h.slots {
		if x != 0 {
			dst = append(dst, x)
		}
	}
	return dst
}

// pairSet remembers up to 2*gen hashes in two generations: when the current
// one holds gen hashes, the previous one is forgotten and the current one
// takes its place. A hash found in the previous generation moves to the
// current one, so what keeps being seen is never forgotten.
type pairSet struct {
	cur, prev hashSet
	gen       int
}

// seen reports whether x was remembered, and remembers it.
func (p *pairSet) seen(x uint64) bool {
	if p.cur.has(x) {
		return true
	}
	known := p.prev.has(x)
	if p.cur.n >= p.gen {
		p.prev.reset()
		p.cur, p.prev = p.prev, p.cur
	}
	p.cur.add(x)
	return known
}

func (p *pairSet) len() int { return p.cur.n + p.prev.n }

// warm loads the slots where x would be, so that a following seen(x) finds
// them in the cache.
func (p *pairSet) warm(x uint64) uint64 {
	var v uint64
	if n := len(p.cur.slots); n > 0 {
		v += p.cur.slots[x&uint64(n-1)]
	}
	if n := len(p.prev.slots); n > 0 {
		v += p.prev.slots[x&uint64(n-1)]
	}
	return v
}
