package detect

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Snapshot is what a NewTerms rule knows, for a TermStore to keep across
// restarts: the keys it tracks with the end of each one's learning period,
// and the (key, value) pairs it has seen, as 64-bit keyed hashes. Values
// themselves are not in it.
//
// A Snapshot belongs to one rule: do not load one rule's snapshot into
// another. MarshalBinary and UnmarshalBinary give it a compact, versioned
// encoding for hosts that keep it in a file or a database row.
type Snapshot struct {
	// HashKey is the SipHash key the Pairs were hashed with.
	HashKey [16]byte
	// Keys are the tracked keys.
	Keys []KeyState
	// Pairs are the hashes of the (key, value) pairs seen, oldest first.
	Pairs []uint64
}

// KeyState is one tracked key of a Snapshot.
type KeyState struct {
	Key        string
	LearnUntil time.Time
}

// TermStore keeps a NewTerms rule's Snapshot across restarts. NewTerms
// calls Load once, when Detect first starts, and Save every
// NewTermsConfig.SaveEvery while it learns and when Detect stops, always
// from the goroutine running Detect, never concurrently. Load returns nil
// and no error when nothing was saved yet. Save must not keep s after it
// returns. Both must honour ctx.
type TermStore interface {
	Load(ctx context.Context) (*Snapshot, error)
	Save(ctx context.Context, s *Snapshot) error
}

// TermStoreFuncs adapts two functions to a TermStore. A nil LoadFunc loads
// nothing; a nil SaveFunc saves nothing.
type TermStoreFuncs struct {
	LoadFunc func(ctx context.Context) (*Snapshot, error)
	SaveFunc func(ctx context.Context, s *Snapshot) error
}

// Load calls f.LoadFunc.
func (f TermStoreFuncs) Load(ctx context.Context) (*Snapshot, error) {
	if f.LoadFunc == nil {
		return nil, nil
	}
	return f.LoadFunc(ctx)
}

// Save calls f.SaveFunc.
func (f TermStoreFuncs) Save(ctx context.Context, s *Snapshot) error {
	if f.SaveFunc == nil {
		return nil
	}
	return f.SaveFunc(ctx, s)
}

// MemTermStore is a TermStore in memory: it keeps the encoding of the last
// snapshot saved, so what Load returns never aliases what Save was given.
// It is safe for concurrent use; the zero MemTermStore is empty and ready.
type MemTermStore struct {
	mu   sync.Mutex
	data []byte
}

var _ TermStore = (*MemTermStore)(nil)

// Load returns a copy of the last snapshot saved, or nil.
func (m *MemTermStore) Load(ctx context.Context) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil, nil
	}
	s := new(Snapshot)
	if err := s.UnmarshalBinary(m.data); err != nil {
		return nil, err
	}
	return s, nil
}

// Save keeps the encoding of s.
func (m *MemTermStore) Save(ctx context.Context, s *Snapshot) error {
	b, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = b
	return nil
}

// ErrBadSnapshot: UnmarshalBinary was given bytes that are not a snapshot
// of a version it reads.
var ErrBadSnapshot = errors.New("detect: not a snapshot")

const snapshotMagic = "BKNT\x01"

// MarshalBinary encodes s: a magic and version, the hash key, the keys
// (each with its length and its learning end in Unix nanoseconds), then
// the pairs, as unsigned varints and little-endian words.
func (s *Snapshot) MarshalBinary() ([]byte, error) {
	n := len(snapshotMagic) + 16 + 2*binary.MaxVarintLen64 + 8*len(s.Pairs)
	for _, k := range s.Keys {
		n += binary.MaxVarintLen64 + len(k.Key) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, snapshotMagic...)
	b = append(b, s.HashKey[:]...)
	b = binary.AppendUvarint(b, uint64(len(s.Keys)))
	for _, k := range s.Keys {
		b = binary.AppendUvarint(b, uint64(len(k.Key)))
		b = append(b, k.Key...)
		b = binary.LittleEndian.AppendUint64(b, uint64(k.LearnUntil.UnixNano()))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Pairs)))
	for _, p := range s.Pairs {
		b = binary.LittleEndian.AppendUint64(b, p)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded. Bytes it cannot read
// give an error matching ErrBadSnapshot.
func (s *Snapshot) UnmarshalBinary(b []byte) error {
	if len(b) < len(snapshotMagic)+16 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return ErrBadSnapshot
	}
	b = b[len(snapshotMagic):]
	var out Snapshot
	copy(out.HashKey[:], b)
	b = b[16:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return ErrBadSnapshot
	}
	b = b[w:]
	out.Keys = make([]KeyState, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > MaxKeyLen || uint64(len(b)-w) < l+8 {
			return ErrBadSnapshot
		}
		b = b[w:]
		key := string(b[:l])
		b = b[l:]
		out.Keys = append(out.Keys, KeyState{Key: key, LearnUntil: time.Unix(0, int64(binary.LittleEndian.Uint64(b))).UTC()})
		b = b[8:]
	}
	n, w = binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w)/8 || uint64(len(b)-w) != 8*n {
		return ErrBadSnapshot
	}
	b = b[w:]
	out.Pairs = make([]uint64, n)
	for i := range out.Pairs {
		out.Pairs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	*s = out
	return nil
}
