package incident

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EntryType says what a timeline entry records.
type EntryType string

// The entry types the orchestrator writes.
const (
	EntrySignal        EntryType = "signal"        // a signal opened or joined the incident
	EntryTransition    EntryType = "transition"    // the state changed
	EntryContainment   EntryType = "containment"   // a containment action's result
	EntryInvestigation EntryType = "investigation" // findings and impact
	EntryDecision      EntryType = "decision"      // the notify decision and its reason
	EntryDelivery      EntryType = "delivery"      // a customer notice's result
	EntryTask          EntryType = "task"          // a prevention task opened or done
	EntryRelease       EntryType = "release"       // containment undone
	EntryNote          EntryType = "note"          // a person's note, or anything else
	EntryCommander     EntryType = "commander"     // a commander assigned or handed over
	EntrySeverity      EntryType = "severity"      // the severity changed: from, to, why
	EntryEvidence      EntryType = "evidence"      // an observable attached
	EntryMerge         EntryType = "merge"         // an incident merged into another
)

// ActorSystem is the actor of the steps the orchestrator takes itself;
// people's actions carry their own name.
const ActorSystem = "system"

// Hash is a SHA-256 digest. It encodes as hex text.
type Hash [32]byte

// String returns the hex encoding.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return errors.New("incident: hash must be " + strconv.Itoa(2*len(h)) + " hex digits")
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Entry is one step on an incident's timeline: when, who, what. Entries
// are chained: Hash covers the entry's fields and the previous entry's
// Hash. At is hashed to the microsecond, the precision stores such as
// PostgreSQL keep, so a stored timeline still verifies.
type Entry struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Type   EntryType `json:"type"`
	Event  Event     `json:"event,omitempty"` // for transitions
	From   State     `json:"from,omitempty"`
	To     State     `json:"to,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Hash   Hash      `json:"hash"`
}

// Timeline is an incident's append-only history. Append sets each entry's
// Hash from its content and the previous entry's Hash, so editing, removing
// or reordering an entry is found by Verify. Truncating the tail is found by
// comparing Head with a value kept elsewhere (VerifyHead).
//
// The zero value is an empty timeline. A Timeline is not safe for
// concurrent mutation; it is part of an Incident and shares its rules.
type Timeline []Entry

// Append adds e, computing its Hash, and returns the entry as stored. Text
// that is not valid UTF-8 is repaired first (invalid bytes become U+FFFD),
// as a JSON or text store would repair it, so that the stored timeline
// still verifies.
func (t *Timeline) Append(e Entry) Entry {
	e = e.seal(t.Head(), len(*t))
	*t = append(*t, e)
	return e
}

// seal repairs e's text and sets its Hash for position index after prev.
func (e Entry) seal(prev Hash, index int) Entry {
	e.Actor = strings.ToValidUTF8(e.Actor, "\uFFFD")
	e.Detail = strings.ToValidUTF8(e.Detail, "\uFFFD")
	e.Hash = e.digest(prev, index)
	return e
}

// Head returns the hash of the last entry, or the zero Hash when empty.
func (t Timeline) Head() Hash {
	if len(t) == 0 {
		return Hash{}
	}
	return t[len(t)-1].Hash
}

// Verify recomputes the chain and returns a *TamperError (matching
// ErrTampered) for the first entry whose hash does not match its content,
// its position and its predecessor.
func (t Timeline) Verify() error {
	var prev Hash
	for i, e := range t {
		if e.digest(prev, i) != e.Hash {
			return &TamperError{Index: i, Reason: "hash does not match the entry, its position or the one before"}
		}
		prev = e.Hash
	}
	return nil
}

// VerifyHead is Verify plus a check that the last entry's hash is head, a
// value recorded elsewhere (an audit log, a report). It finds a removed tail.
func (t Timeline) VerifyHead(head Hash) error {
	if err := t.Verify(); err != nil {
		return err
	}
	if t.Head() != head {
		return &TamperError{Index: len(t), Reason: "head hash differs from the anchor: entries were removed or added at the end"}
	}
	return nil
}

func (e *Entry) digest(prev Hash, index int) Hash {
	b := hashBufs.Get().(*[]byte)
	buf := append((*b)[:0], prev[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(index))
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.At.UnixMicro()))
	for _, s := range [...]string{e.Actor, string(e.Type), string(e.Event), string(e.From), string(e.To), e.Detail} {
		buf = appendField(buf, s)
	}
	out := Hash(sha256.Sum256(buf))
	putHashBuf(b, buf)
	return out
}

// hashBufs holds the buffers the hashes of entries and idempotency keys are
// computed over: one SHA-256 over one buffer, with no allocation.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// putHashBuf returns a buffer to hashBufs, unless it grew large.
func putHashBuf(b *[]byte, buf []byte) {
	if cap(buf) > 64<<10 {
		return
	}
	*b = buf
	hashBufs.Put(b)
}

// appendField appends s with its length before it, so that fields cannot
// run into one another.
func appendField(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
	return append(buf, s...)
}
