package incident

import (
	"maps"
	"slices"
)

// CloneSharing returns a copy of inc as Clone does, except that each part
// (a slice, a map, a pointed-to record) equal to the same part of prev is
// prev's own, not a copy. It is for code that keeps successive versions of
// a head and never changes them, such as a store keeping what it was
// written: a write then pays for the parts that changed (a signal count
// changes none of them), not for the whole head.
//
// prev must never be changed once passed, and neither may the copy
// returned: they share memory. Hand out a Clone of it instead. A nil prev
// gives a Clone; nil parts stay nil. It is safe for concurrent use with
// readers of inc and prev.
func (inc *Incident) CloneSharing(prev *Incident) *Incident {
	if inc == nil || prev == nil {
		return inc.Clone()
	}
	c := *inc
	c.Attributes = shareMap(inc.Attributes, prev.Attributes)
	c.Signals.Samples = shareSlice(inc.Signals.Samples, prev.Signals.Samples)
	c.Investigation = shareInvestigation(inc.Investigation, prev.Investigation)
	c.Decision = sharePtr(inc.Decision, prev.Decision)
	c.Escalation = sharePtr(inc.Escalation, prev.Escalation)
	c.Dismissal = sharePtr(inc.Dismissal, prev.Dismissal)
	c.Paging = sharePtr(inc.Paging, prev.Paging)
	c.Actions = shareActions(inc.Actions, prev.Actions)
	c.Deadlines = shareSlice(inc.Deadlines, prev.Deadlines)
	c.Milestones = shareMap(inc.Milestones, prev.Milestones)
	c.Deliveries = slices.Clone(inc.Deliveries) // a head's are its parts: not kept from one version to the next
	c.Tasks = shareSlice(inc.Tasks, prev.Tasks)
	c.Recommendations = shareSlice(inc.Recommendations, prev.Recommendations)
	c.Evidence = shareSlice(inc.Evidence, prev.Evidence)
	c.Merged = shareSlice(inc.Merged, prev.Merged)
	c.Merging = shareSlice(inc.Merging, prev.Merging)
	c.Timeline = slices.Clone(inc.Timeline)
	return &c
}

// shareSlice returns prev when s holds what it holds (s not nil, nor
// empty: an empty s keeps its own nil-ness), or a copy of s.
func shareSlice[S ~[]E, E comparable](s, prev S) S {
	if len(s) > 0 && slices.Equal(s, prev) {
		return prev
	}
	return slices.Clone(s)
}

// shareMap is shareSlice for a map.
func shareMap[M ~map[K]V, K, V comparable](m, prev M) M {
	if len(m) > 0 && maps.Equal(m, prev) {
		return prev
	}
	return maps.Clone(m)
}

// sharePtr returns prev when *p equals *prev, or a pointer to a copy of *p.
func sharePtr[T comparable](p, prev *T) *T {
	switch {
	case p == nil:
		return nil
	case prev != nil && *p == *prev:
		return prev
	}
	c := *p
	return &c
}

// shareActions is shareSlice for containment records, which point to their
// approvals.
func shareActions(s, prev []ActionRecord) []ActionRecord {
	if len(s) > 0 && slices.EqualFunc(s, prev, sameAction) {
		return prev
	}
	c := slices.Clone(s)
	for i := range c {
		if a := c[i].Approval; a != nil {
			cp := *a
			c[i].Approval = &cp
		}
	}
	return c
}

func sameAction(a, b ActionRecord) bool {
	pa, pb := a.Approval, b.Approval
	a.Approval, b.Approval = nil, nil
	return a == b && (pa == nil) == (pb == nil) && (pa == nil || *pa == *pb)
}

// shareInvestigation is sharePtr for an investigation, which holds slices.
func shareInvestigation(p, prev *Investigation) *Investigation {
	if p == nil {
		return nil
	}
	if prev != nil && sameInvestigation(p, prev) {
		return prev
	}
	inv := *p
	inv.Notes = slices.Clone(inv.Notes)
	inv.Impact = inv.Impact.clone()
	return &inv
}

func sameInvestigation(a, b *Investigation) bool {
	return a.RootCause == b.RootCause && a.Summary == b.Summary && a.At == b.At && a.Attempts == b.Attempts &&
		a.Impact.Affected == b.Impact.Affected && a.Impact.Summary == b.Impact.Summary &&
		slices.Equal(a.Notes, b.Notes) && slices.Equal(a.Impact.Customers, b.Impact.Customers) &&
		slices.Equal(a.Impact.Data, b.Impact.Data)
}
