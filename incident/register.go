package incident

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The register is every incident a store holds, open or ended: GDPR Art.
// 33(5) asks for every breach to be documented, notified or not. Lister
// reads it a page at a time, newest first.

// Page sizes of ListFilter.Limit.
const (
	// DefaultListLimit is the page size when ListFilter.Limit is 0.
	DefaultListLimit = 50
	// MaxListLimit caps ListFilter.Limit: a larger limit gets pages of
	// this size.
	MaxListLimit = 500
)

// Lister is implemented by stores that keep every incident queryable, open
// or ended: the register. MemStore and the PostgreSQL store implement it;
// incidenttest.TestStore checks the contract for any store that does.
//
// List must be safe for concurrent use with every other method of the
// store, and must honour ctx as the Store methods do.
type Lister interface {
	// List returns the incidents that f selects, newest DetectedAt first
	// and, for equal DetectedAt, greatest ID first (byte order), at most
	// f.PageSize() of them, as copies of their heads. Page.Next continues after the last
	// of them, and is empty when no incident follows.
	//
	// Paging is by position (DetectedAt and ID of the last incident
	// returned), not by offset: an incident created while a caller pages is
	// never the cause of another being returned twice or skipped, and a
	// cursor stays valid for ever. Every incident that existed and matched
	// f when paging began, and whose DetectedAt did not change, is
	// returned exactly once.
	//
	// List returns an error matching ErrInvalidFilter (a *FilterError) when
	// f.Validate fails.
	List(ctx context.Context, f ListFilter) (Page, error)
}

// ListFilter selects incidents from the register. Every zero field selects
// everything: the zero ListFilter is the first page of every incident.
type ListFilter struct {
	// States keeps incidents in any of these states; empty keeps every
	// state.
	States []State
	// Kind keeps incidents of this kind; empty keeps every kind.
	Kind string
	// Account keeps incidents of this customer account; empty keeps every
	// account (including none).
	Account string
	// DetectedFrom keeps incidents detected at or after it; zero: no lower
	// bound.
	DetectedFrom time.Time
	// DetectedTo keeps incidents detected before it; zero: no upper bound.
	// It may not be before DetectedFrom.
	DetectedTo time.Time
	// Limit is the page size: 0 means DefaultListLimit, more than
	// MaxListLimit means MaxListLimit; negative is invalid.
	Limit int
	// Cursor is the Page.Next of the page before; empty starts at the
	// newest incident. It is opaque: only a value a Lister returned is
	// valid.
	Cursor string
}

// Page is one page of the register.
type Page struct {
	// Incidents are copies of the heads (see Store.Head; Load reads a
	// whole record), newest DetectedAt first; ties by ID, greatest
	// first. The slice may be empty.
	Incidents []*Incident
	// Next is the ListFilter.Cursor for the following page; empty on the
	// last page.
	Next string
}

// Validate returns nil for a filter a Lister accepts, or a *FilterError
// (matching ErrInvalidFilter) naming the first bad field: a negative Limit,
// a DetectedTo before DetectedFrom, or a Cursor no Lister returned.
func (f ListFilter) Validate() error {
	if f.Limit < 0 {
		return &FilterError{Field: "Limit", Reason: "negative: " + strconv.Itoa(f.Limit)}
	}
	if !f.DetectedFrom.IsZero() && !f.DetectedTo.IsZero() && f.DetectedTo.Before(f.DetectedFrom) {
		return &FilterError{Field: "DetectedTo", Reason: "before DetectedFrom"}
	}
	if f.Cursor != "" {
		if _, err := ParseCursor(f.Cursor); err != nil {
			return err
		}
	}
	return nil
}

// PageSize is the number of incidents a page for f holds at most: Limit,
// DefaultListLimit for 0, MaxListLimit for more. It does not validate f.
func (f ListFilter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return DefaultListLimit
	case f.Limit > MaxListLimit:
		return MaxListLimit
	}
	return f.Limit
}

// Matches reports whether f keeps inc, on every field but Limit and
// Cursor: States, Kind, Account and the detection range. A store that
// filters in memory may use it.
func (f ListFilter) Matches(inc *Incident) bool {
	switch {
	case len(f.States) > 0 && !slices.Contains(f.States, inc.State):
		return false
	case f.Kind != "" && inc.Kind != f.Kind:
		return false
	case f.Account != "" && inc.Account != f.Account:
		return false
	case !f.DetectedFrom.IsZero() && inc.DetectedAt.Before(f.DetectedFrom):
		return false
	case !f.DetectedTo.IsZero() && !inc.DetectedAt.Before(f.DetectedTo):
		return false
	}
	return true
}

// Cursor is a position in the register's order, which a ListFilter.Cursor
// string encodes: the DetectedAt and ID of the last incident of a page.
// Stores that implement Lister use it; callers pass the strings as they
// are.
type Cursor struct {
	DetectedAt time.Time
	ID         string
}

// CursorAfter returns the cursor of the page that follows inc.
func CursorAfter(inc *Incident) Cursor { return Cursor{DetectedAt: inc.DetectedAt, ID: inc.ID} }

// cursorVersion starts every encoded cursor, so that the encoding may
// change without old cursors being misread.
const cursorVersion = "c1"

// String encodes the cursor as URL-safe text for ListFilter.Cursor and
// Page.Next. The instant keeps its nanoseconds; its zone is dropped.
func (c Cursor) String() string {
	at := c.DetectedAt.UTC()
	raw := cursorVersion + ":" + strconv.FormatInt(at.Unix(), 10) + ":" + strconv.Itoa(at.Nanosecond()) + ":" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor decodes a cursor written by Cursor.String. It returns a
// *FilterError (matching ErrInvalidFilter) for any other text.
func ParseCursor(s string) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return Cursor{}, &FilterError{Field: "Cursor", Reason: why}
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not a cursor a Lister returned")
	}
	parts := strings.SplitN(string(b), ":", 4)
	if len(parts) != 4 || parts[0] != cursorVersion {
		return bad("not a cursor a Lister returned")
	}
	sec, err1 := strconv.ParseInt(parts[1], 10, 64)
	nsec, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || nsec < 0 || nsec > 999_999_999 || parts[3] == "" {
		return bad("malformed position")
	}
	return Cursor{DetectedAt: time.Unix(sec, int64(nsec)).UTC(), ID: parts[3]}, nil
}

// Precedes reports whether the incident at (detectedAt, id) comes after the
// cursor in the register's order, that is on a later page: detected before
// c.DetectedAt, or at the same instant with a smaller ID.
func (c Cursor) Precedes(detectedAt time.Time, id string) bool {
	if d := detectedAt.Compare(c.DetectedAt); d != 0 {
		return d < 0
	}
	return id < c.ID
}

// newestFirst orders incidents as List returns them.
func newestFirst(a, b *Incident) int {
	if c := b.DetectedAt.Compare(a.DetectedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// List implements Lister. It looks at every stored incident, keeping the
// page's worth that come first, so a page costs time in proportion to the
// whole register (about n log(page size)): fine for the tests and small
// hosts MemStore is for.
func (m *MemStore) List(ctx context.Context, f ListFilter) (Page, error) {
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	var after *Cursor
	if f.Cursor != "" {
		c, _ := ParseCursor(f.Cursor) // valid: checked above
		after = &c
	}
	size := f.PageSize()
	m.mu.RLock()
	// first holds the size+1 incidents that come first in the register's
	// order, as a heap whose root is the one that comes last of them.
	first := pageHeap{}
	for _, r := range m.byID {
		h := r.head.Load()
		if !f.Matches(h) || (after != nil && !after.Precedes(h.DetectedAt, h.ID)) {
			continue
		}
		if len(first) <= size {
			heap.Push(&first, h)
		} else if newestFirst(h, first[0]) < 0 {
			first[0] = h
			heap.Fix(&first, 0)
		}
	}
	m.mu.RUnlock()
	hits := []*Incident(first)
	slices.SortFunc(hits, newestFirst)
	var p Page
	if len(hits) > size {
		hits = hits[:size]
		p.Next = CursorAfter(hits[size-1]).String()
	}
	p.Incidents = make([]*Incident, len(hits))
	for i, h := range hits {
		p.Incidents[i] = h.Clone()
	}
	return p, nil
}

// pageHeap is a heap of stored heads whose root comes last in the
// register's order.
type pageHeap []*Incident

func (h pageHeap) Len() int           { return len(h) }
func (h pageHeap) Less(i, j int) bool { return newestFirst(h[i], h[j]) > 0 }
func (h pageHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pageHeap) Push(x any)        { *h = append(*h, x.(*Incident)) }
func (h *pageHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
