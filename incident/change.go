package incident

import (
	"context"
	"strconv"
)

// Change is one atomic write to an incident's record, which is kept in
// three parts split by how they grow:
//
//   - the head: every field of Incident except Timeline, Deliveries and
//     Investigation.Impact.Customers. It is bounded, and replaced whole
//     under a compare-and-swap on Version;
//   - the timeline: hash-chained entries, appended, never rewritten;
//   - the effects: the customer notices (deliveries), each inserted or
//     replaced by its IdempotencyKey, and the affected customers, each
//     inserted or replaced by its recipient ID (ID, or Email when ID is
//     empty).
//
// A store applies all of a Change or none of it, at a cost proportional to
// the Change, never to the incident.
type Change struct {
	// Head is the new head. Its Timeline, Deliveries and
	// Investigation.Impact.Customers must be empty: the parts travel in
	// the fields below. Its Chain must be where the timeline stands after
	// Entries are appended. The store sets its Version.
	Head *Incident
	// Entries are appended to the timeline, in order.
	Entries Timeline
	// Deliveries are inserted, or replace the delivery with the same
	// IdempotencyKey.
	Deliveries []Delivery
	// Customers are added to the incident's affected customers, or replace
	// the one with the same recipient ID.
	Customers []Customer
	// Frozen promises that the caller never changes Head, nor anything it
	// points to, once the call is made, but for the Version the store
	// sets: the store may keep Head itself instead of a copy (MemStore
	// does), and the caller may keep it too, as the version it wrote. A
	// frozen head goes to one write of one store: handed to another call
	// (a retry, a second store), its Version would be set again under
	// whoever kept it. The store must leave a frozen head it kept as it
	// was through every later write.
	Frozen bool
}

// Split returns the Change that writes inc as it is: inc's head, with
// inc.Timeline as the entries, inc.Deliveries as the deliveries and its
// investigation's customers as the customers. inc is not modified; the
// head is a copy. For a whole record (a new incident, or one read with
// Load and rewritten) Chain is set from the timeline when it is zero.
//
// Split is how a host's test or tool writes an incident it built whole;
// the orchestrator builds its changes itself.
func Split(inc *Incident) Change {
	if inc == nil {
		return Change{}
	}
	h := inc.Clone()
	ch := Change{Head: h, Entries: h.Timeline, Deliveries: h.Deliveries}
	h.Timeline, h.Deliveries = nil, nil
	if h.Chain == (Chain{}) && len(ch.Entries) > 0 {
		h.Chain = Chain{Len: len(ch.Entries), Head: ch.Entries.Head()}
	}
	if h.Investigation != nil && len(h.Investigation.Impact.Customers) > 0 {
		ch.Customers = h.Investigation.Impact.Customers
		if h.Investigation.Impact.Affected == 0 {
			h.Investigation.Impact.Affected = len(ch.Customers)
		}
		h.Investigation.Impact.Customers = nil
	}
	return ch
}

// Check validates ch against the chain the store holds (the zero Chain for
// a Create), as every Store must before applying it: the head is storable
// and holds no part, and Entries continue the stored chain to Head.Chain.
// The errors match ErrInvalidIncident.
func (ch Change) Check(stored Chain) error {
	h := ch.Head
	if err := checkStorable(h); err != nil {
		return err
	}
	switch {
	case len(h.Timeline) > 0:
		return &invalidIncidentError{reason: "head holds timeline entries; they travel in Change.Entries"}
	case len(h.Deliveries) > 0:
		return &invalidIncidentError{reason: "head holds deliveries; they travel in Change.Deliveries"}
	case h.Investigation != nil && len(h.Investigation.Impact.Customers) > 0:
		return &invalidIncidentError{reason: "head holds customers; they travel in Change.Customers"}
	case h.Chain.Len != stored.Len+len(ch.Entries):
		return &invalidIncidentError{reason: "chain length " + strconv.Itoa(h.Chain.Len) + " is not the stored " +
			strconv.Itoa(stored.Len) + " plus " + strconv.Itoa(len(ch.Entries)) + " appended entries"}
	case len(ch.Entries) == 0 && h.Chain.Head != stored.Head,
		len(ch.Entries) > 0 && h.Chain.Head != ch.Entries.Head():
		return &invalidIncidentError{reason: "chain head is not the hash of the last entry"}
	}
	for i := range ch.Deliveries {
		if ch.Deliveries[i].IdempotencyKey == "" {
			return &invalidIncidentError{reason: "delivery " + strconv.Itoa(i) + " has no idempotency key"}
		}
	}
	for i := range ch.Customers {
		if RecipientID(ch.Customers[i]) == "" {
			return &invalidIncidentError{reason: "customer " + strconv.Itoa(i) + " has neither ID nor Email"}
		}
	}
	return nil
}

// RecipientID is how a customer is keyed: its ID, or its Email when the ID
// is empty.
func RecipientID(c Customer) string {
	if c.ID != "" {
		return c.ID
	}
	return c.Email
}

// DeliveryQuery selects an incident's deliveries for Store.Deliveries.
// The zero value selects every delivery, a page of DefaultPageSize.
type DeliveryQuery struct {
	// Keys, when not empty, selects only the deliveries with these
	// idempotency keys (those that exist), and Limit and After do not
	// apply.
	Keys []string
	// Status, when not empty, selects only deliveries with this status.
	Status DeliveryStatus
	// After is the idempotency key of the last delivery of the previous
	// page; the page starts after it. Deliveries are in the order they
	// were first written.
	After string
	// Limit is the page size: DefaultPageSize when 0, at most MaxPageSize.
	Limit int
}

// Page sizes of the parts' reads (Store.Entries, Store.Deliveries,
// Store.Customers).
const (
	// DefaultPageSize is the page size when a limit is 0.
	DefaultPageSize = 100
	// MaxPageSize is the largest page: a larger limit is invalid.
	MaxPageSize = 1000
)

// PageSize returns the number of deliveries one page holds at most.
func (q DeliveryQuery) PageSize() int { return PartPage(q.Limit) }

// PartPage returns the page size a part read with limit returns at most:
// limit, or DefaultPageSize for 0. It does not validate limit.
func PartPage(limit int) int {
	if limit <= 0 {
		return DefaultPageSize
	}
	return min(limit, MaxPageSize)
}

// CheckLimit returns a *FilterError (matching ErrInvalidFilter) for a
// part read's limit that is negative or above MaxPageSize.
func CheckLimit(limit int) error {
	if limit < 0 || limit > MaxPageSize {
		return &FilterError{Field: "Limit", Reason: "must be between 0 and " + strconv.Itoa(MaxPageSize) + ": " + strconv.Itoa(limit)}
	}
	return nil
}

// Validate returns a *FilterError (matching ErrInvalidFilter) for a bad
// Limit or more Keys than MaxPageSize.
func (q DeliveryQuery) Validate() error {
	if len(q.Keys) > MaxPageSize {
		return &FilterError{Field: "Keys", Reason: "more than " + strconv.Itoa(MaxPageSize)}
	}
	return CheckLimit(q.Limit)
}

// Load reads the whole record of incident id from s: its head, every
// timeline entry, every delivery and every affected customer, page by
// page. Its cost grows with the incident; the orchestrator itself reads
// heads and pages. The result holds no alias of the store's data.
func Load(ctx context.Context, s Store, id string) (*Incident, error) {
	inc, err := s.Head(ctx, id)
	if err != nil {
		return nil, err
	}
	for len(inc.Timeline) < inc.Chain.Len {
		page, err := s.Entries(ctx, id, len(inc.Timeline), MaxPageSize)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, &TamperError{Index: len(inc.Timeline), Reason: "the store holds fewer entries than the head's chain"}
		}
		inc.Timeline = append(inc.Timeline, page...)
	}
	q := DeliveryQuery{Limit: MaxPageSize}
	for {
		page, err := s.Deliveries(ctx, id, q)
		if err != nil {
			return nil, err
		}
		inc.Deliveries = append(inc.Deliveries, page...)
		if len(page) < q.Limit {
			break
		}
		q.After = page[len(page)-1].IdempotencyKey
	}
	if inc.Investigation != nil {
		after := ""
		for {
			page, err := s.Customers(ctx, id, after, MaxPageSize)
			if err != nil {
				return nil, err
			}
			inc.Investigation.Impact.Customers = append(inc.Investigation.Impact.Customers, page...)
			if len(page) < MaxPageSize {
				break
			}
			after = RecipientID(page[len(page)-1])
		}
	}
	return inc, nil
}
