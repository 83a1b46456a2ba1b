package breach

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
)

// Merge folds the incident childID into parentID, when people find that
// two incidents are one: the child ends in incident.StateMerged with
// MergedInto set, and the parent carries on with the child's signals
// (counts, first and last seen, samples up to incident.MaxSignalSamples),
// its evidence (refiled up to incident.MaxEvidence; the entry says how
// many did not fit), its severity when higher (re-evaluated as
// ChangeSeverity does) and the earlier start of a notification clock both
// have (the parent's clock then counts from when the child's started:
// awareness of the breach began there). The child's ID is appended to the
// parent's Merged. Both timelines record the merge (incident.EntryMerge),
// with actor and the reason (credentials removed, as for AddNote).
//
// What the child did stays done: containment it applied is not released,
// notices it sent stay sent, and its clocks end (missed when due, not
// applicable otherwise, as when an incident closes). Signals for the
// child's dedup key that arrive later join the parent while it is open: in
// the process that merged, in any that was counting signals for that key
// when the child ended, and in any that started since (Run resumes the
// parent and learns its children's keys). Elsewhere (another replica that
// had not seen the key) they open a new incident, which can be merged in
// turn.
//
// The two writes are not atomic across incidents. The child is written
// first (it ends, naming its parent), then the parent (it takes the
// child's signals and evidence, as the child's record has them for good).
// Should the process stop between them, or the second write fail, Merge
// called again with the same incidents finishes the merge (and returns
// nil, as it does for a merge already finished): Merge is idempotent, and
// the child's record says where its signals went either way.
//
// Merge refuses, with nothing recorded, with errors matching:
// ErrInvalidInput for an empty actor, reason, parentID or childID, the
// same ID twice, or a reason AddNote would refuse; incident.ErrNotFound
// when either incident does not exist; ErrMerged when the parent was
// merged into another incident, or the child into another parent;
// ErrIncidentEnded when the child or the parent has ended; ErrMergeBlocked
// while the child's containment actions are pending or await approval, or
// its customer notices are going out (let them settle, then merge);
// ErrDismissalPending while either is being dismissed; and ErrLimitReached
// when the parent holds incident.MaxMerged merged incidents. Once the
// child has ended, the parent is written whatever its state: the record
// of where the child went must be complete. It is safe for concurrent
// use and never waits for automation.
func (o *Orchestrator) Merge(ctx context.Context, parentID, childID, actor, reason string) error {
	if actor == "" {
		return errNoActor
	}
	switch {
	case parentID == "" || childID == "":
		return fmt.Errorf("%w: parent and child incident required", ErrInvalidInput)
	case parentID == childID:
		return fmt.Errorf("%w: incident %s cannot be merged into itself", ErrInvalidInput, parentID)
	}
	reason, err := personText("reason", reason, true)
	if err != nil {
		return err
	}
	parent, err := o.store.Head(ctx, parentID)
	if err != nil {
		return err
	}
	child, err := o.store.Head(ctx, childID)
	if err != nil {
		return err
	}
	if child.MergedInto != parentID {
		if err := o.mergeable(parent); err != nil {
			return err
		}
		if err := o.endChild(ctx, child, parent, actor, reason); err != nil && !errors.Is(err, errUnchanged) {
			return err
		}
	}
	// Later signals for the child's key join the parent here, also when
	// this call only finishes a merge another process began.
	o.aliases.Store(child.DedupKey, parentID)
	pages, err := o.absorb(ctx, parent, child, actor, reason)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	o.sendPages(ctx, parent, pages)
	o.sched.addAt(parentID, o.priorityOf(parent))
	o.sched.add(childID) // its driver lets go of it
	return nil
}

// mergeable refuses a parent an incident cannot be merged into.
func (o *Orchestrator) mergeable(parent *incident.Incident) error {
	if parent.State == incident.StateMerged {
		return fmt.Errorf("%w: parent %s was merged into %s", ErrMerged, parent.ID, parent.MergedInto)
	}
	if err := ended(parent); err != nil {
		return err
	}
	if err := dismissing(parent); err != nil {
		return err
	}
	if len(parent.Merged) >= incident.MaxMerged {
		return fmt.Errorf("%w: incident %s has %d incidents merged into it", ErrLimitReached, parent.ID, incident.MaxMerged)
	}
	return nil
}

// endChild is Merge's first write: the child ends, merged into parent.
// child holds what was stored when it returns nil.
func (o *Orchestrator) endChild(ctx context.Context, child, parent *incident.Incident, actor, reason string) error {
	return o.mutate(ctx, child, func(inc *incident.Incident) error {
		switch {
		case inc.MergedInto == parent.ID:
			return errUnchanged // a concurrent Merge did it
		case inc.MergedInto != "":
			return fmt.Errorf("%w: incident %s was merged into %s", ErrMerged, inc.ID, inc.MergedInto)
		}
		if err := ended(inc); err != nil {
			return err
		}
		if err := dismissing(inc); err != nil {
			return err
		}
		if err := busy(inc); err != nil {
			return err
		}
		inc.MergedInto = parent.ID
		why := o.scrub(inc.ID, reason)
		o.record(inc, actor, incident.EntryMerge, "merged into incident "+parent.ID+" ("+parent.Kind+", "+parent.Subject+
			"), which carries on with its signals and evidence: "+why)
		return o.fire(inc, incident.EventMerge, actor, "merged into incident "+parent.ID)
	})
}

// busy refuses to end a child whose automation is in the middle of an
// effect.
func busy(inc *incident.Incident) error {
	var waiting []string
	for _, r := range inc.Actions {
		if r.Status == incident.ActionPending || r.Status == incident.ActionAwaiting {
			waiting = append(waiting, strconv.Quote(r.Name)+" "+string(r.Status))
		}
	}
	if len(waiting) > 0 {
		return fmt.Errorf("%w: incident %s: containment %s", ErrMergeBlocked, inc.ID, strings.Join(waiting, ", "))
	}
	if inc.State == incident.StateNotifying {
		return fmt.Errorf("%w: incident %s is notifying its customers", ErrMergeBlocked, inc.ID)
	}
	return nil
}

// absorb is Merge's second write: the parent takes what the merged child
// holds. It returns errUnchanged when the parent has it already.
func (o *Orchestrator) absorb(ctx context.Context, parent, child *incident.Incident, actor, reason string) ([]pageOut, error) {
	var pages []pageOut
	err := o.mutate(ctx, parent, func(inc *incident.Incident) error {
		pages = nil
		if slices.Contains(inc.Merged, child.ID) {
			return errUnchanged
		}
		s := &inc.Signals
		s.Count += child.Signals.Count
		if f := child.Signals.FirstSeen; !f.IsZero() && (s.FirstSeen.IsZero() || f.Before(s.FirstSeen)) {
			s.FirstSeen = f
		}
		if l := child.Signals.LastSeen; l.After(s.LastSeen) {
			s.LastSeen = l
		}
		s.Samples = append(s.Samples, child.Signals.Samples...)
		slices.SortStableFunc(s.Samples, func(a, b incident.SignalSample) int { return a.At.Compare(b.At) })
		s.Samples = slices.Clip(s.Samples[:min(len(s.Samples), incident.MaxSignalSamples)])
		refiled, dropped := 0, 0
		for _, ev := range child.Evidence {
			switch {
			case slices.ContainsFunc(inc.Evidence, func(h incident.Observable) bool { return h.Type == ev.Type && h.Value == ev.Value }):
			case len(inc.Evidence) >= incident.MaxEvidence:
				dropped++
			default:
				inc.Evidence = append(inc.Evidence, ev)
				refiled++
			}
		}
		inc.Merged = append(inc.Merged, child.ID)
		detail := fmt.Sprintf("merged incident %s (%s, %s, %s): %d signal(s), %d observable(s) refiled",
			child.ID, child.Kind, child.Subject, child.Severity, child.Signals.Count, refiled)
		if dropped > 0 {
			detail += fmt.Sprintf(", %d not refiled (the incident holds %d)", dropped, incident.MaxEvidence)
		}
		if c := containmentText(child); c != "" {
			detail += "; its containment stays as it is: " + c
		}
		o.record(inc, actor, incident.EntryMerge, detail+": "+o.scrub(inc.ID, reason))
		if !inc.State.Open() {
			return nil // the record of where the child went, and nothing more
		}
		if child.Severity > inc.Severity {
			pages = o.setSeverity(inc, child.Severity, actor, "severity raised from "+inc.Severity.String()+" to "+
				child.Severity.String()+" by merged incident "+child.ID)
		}
		o.adoptClocks(inc, child, actor)
		return nil
	})
	return pages, err
}

// containmentText lists inc's containment actions with their status.
func containmentText(inc *incident.Incident) string {
	var parts []string
	for _, r := range inc.Actions {
		parts = append(parts, strconv.Quote(r.Name)+" "+string(r.Status))
	}
	return strings.Join(parts, ", ")
}

// adoptClocks starts, or moves back, each running or waiting clock of inc
// that the merged child started earlier: awareness of the breach began
// there.
func (o *Orchestrator) adoptClocks(inc, child *incident.Incident, actor string) {
	pb := o.cfg.playbooks[inc.Kind]
	for i := range inc.Deadlines {
		d := &inc.Deadlines[i]
		cd := child.Deadline(d.Name)
		if cd == nil || cd.StartedAt.IsZero() || (d.Status != incident.DeadlineWaiting && d.Status != incident.DeadlineRunning) ||
			(d.Status == incident.DeadlineRunning && !cd.StartedAt.Before(d.StartedAt)) {
			continue
		}
		c, ok := pb.clock(d.Name)
		if !ok {
			continue
		}
		start := cd.StartedAt
		d.Status, d.StartedAt = incident.DeadlineRunning, start
		d.Due = c.due(start).Add(d.Paused)
		d.WarnAt = d.Due.Add(-c.warnBefore(start, d.Due))
		o.record(inc, actor, incident.EntryNote, "clock "+strconv.Quote(d.Name)+" counts from "+start.UTC().Format(time.RFC3339)+
			", when merged incident "+child.ID+" started it; due "+d.Due.UTC().Format(time.RFC3339))
	}
}
