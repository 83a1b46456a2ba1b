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
// with actor and the reason, with credentials removed as for AddNote: the
// credentials of both incidents, on both timelines.
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
// A merge takes three writes, each a compare-and-swap on one incident, so
// that merges running at once, in one process or in several on one store,
// are checked against what is stored. First the parent reserves the
// child's place: the child's ID goes to the parent's Merging, if the
// parent is open, not being dismissed and has room (Merged and Merging
// together hold at most incident.MaxMerged IDs). Then the child ends,
// naming its parent, if it can still be merged and the parent, read again,
// still holds the reservation and is still open; a child that itself holds
// a reservation as a parent is refused, so of two merges of A into B and B
// into A at once at most one succeeds. Last the parent takes the child's
// signals and evidence (as the child's record has them for good), and the
// child's ID moves from Merging to Merged. A merge refused after its
// reservation was written withdraws the reservation.
//
// Should the process stop part way, or a write fail, Merge called again
// with the same incidents finishes the merge, or refuses it (and withdraws
// the reservation) when the child can no longer be merged; it returns nil
// for a merge already finished: Merge is idempotent. When the stop came
// after the child ended, Run finishes the merge as it resumes (the parent
// takes the child in, and the child's key is routed to the parent), with
// the system as its actor. When it came before, the reservation left
// behind keeps its place on the parent until Merge is called again (it
// counts towards incident.MaxMerged for other merges into it, which
// otherwise go ahead), and the parent cannot itself be merged into another
// incident (ErrMergeBlocked, naming the child); should the child end
// otherwise meanwhile (or be merged elsewhere), Run withdraws the
// reservation as it resumes, since no Merge can finish it.
//
// Close, Resolve and Dismiss do not wait for a merge under way. A parent
// that ends between Merge's last look at it and the child's end (the time
// one write takes) is written whatever its state once the child has
// ended: the record of where the child went must be complete. Its signals
// then open a new incident, as those of any ended incident do.
//
// Merge refuses, with nothing recorded on either timeline, with errors
// matching: ErrInvalidInput for an empty actor, reason, parentID or
// childID, the same ID twice, or a reason AddNote would refuse;
// incident.ErrNotFound when either incident does not exist; ErrMerged when
// the parent was merged into another incident, or the child into another
// parent; ErrIncidentEnded when the child or the parent has ended;
// ErrMergeBlocked while the child's containment actions are pending or
// await approval, or its customer notices are going out (let them settle,
// then merge), and while another incident is being merged into the child;
// ErrDismissalPending while either is being dismissed; and ErrLimitReached
// when the parent holds incident.MaxMerged merged incidents, those being
// merged counted. A refusal found on the heads as read writes nothing; one
// found after the reservation was written leaves the parent's head as it
// was but for its version and UpdatedAt. It is safe for concurrent use and
// never waits for automation.
func (o *Orchestrator) Merge(ctx context.Context, parentID, childID, actor, reason string) error {
	if err := checkActor(actor); err != nil {
		return err
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
	// The reason goes on both timelines: neither incident's credential
	// may stay in it. (The child's is forgotten once it has ended.)
	why := o.scrub(parentID, o.redact(childID, reason))
	if child.MergedInto != parentID {
		// The child's credentials move to the parent once its end is
		// written (endCredentials); the parent's record keeps them out from
		// before then (a person's note, a plugin's error quoting the
		// child's key), as it does its own. Should the merge be refused,
		// redacting them there does no harm.
		for _, c := range o.credentials(childID) {
			o.keepMergedCredential(parentID, c)
		}
		if err := o.join(ctx, parent, child, actor, why); err != nil {
			return err
		}
	}
	// Later signals for the child's key join the parent here, also when
	// this call only finishes a merge another process began.
	o.aliases.Store(child.DedupKey, parentID)
	pages, err := o.absorb(ctx, parent, child, actor, why)
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

// errUnreserved ends the child's write when the parent no longer holds
// its reservation: a concurrent Merge of the two was refused and withdrew
// it, or finished (the child as read is stale). join reads the child
// again and reserves again.
var errUnreserved = errors.New("breach: merge reservation withdrawn")

// join is Merge's first two writes: the parent reserves the child's place,
// then the child ends, merged into it. On return child holds what was
// stored, and parent a head of the parent no older than the reservation.
// A refusal once the reservation was written withdraws it.
func (o *Orchestrator) join(ctx context.Context, parent, child *incident.Incident, actor, why string) error {
	// What the heads as read refuse is refused before anything is written
	// (a reservation an earlier call left is withdrawn).
	err := mergeable(parent, child.ID)
	if err == nil {
		err = mergeableChild(child)
	}
	if err != nil {
		o.withdraw(ctx, parent, child.ID)
		return err
	}
	for range maxConflicts {
		if err := o.reserve(ctx, parent, child.ID); err != nil {
			return err
		}
		refused, err := o.endChild(ctx, child, parent.ID, actor, why)
		switch {
		case err == nil || errors.Is(err, errUnchanged):
			return nil
		case errors.Is(err, errUnreserved):
			// Withdrawn, or moved to Merged by a concurrent Merge that
			// finished: read the child again and see.
			fresh, err := o.store.Head(ctx, child.ID)
			if err != nil {
				return err
			}
			*child = *fresh
			continue
		case refused:
			o.withdraw(ctx, parent, child.ID)
		}
		// Otherwise the child's write may have landed: the reservation
		// stays for the next call, which finishes or withdraws it.
		return err
	}
	return fmt.Errorf("breach: incident %s: %w: its reservation on %s was withdrawn %d times", child.ID,
		incident.ErrConflict, parent.ID, maxConflicts)
}

// mergeable refuses a parent the incident childID cannot be merged into.
func mergeable(parent *incident.Incident, childID string) error {
	if parent.State == incident.StateMerged {
		return fmt.Errorf("%w: parent %s was merged into %s", ErrMerged, parent.ID, parent.MergedInto)
	}
	if err := ended(parent); err != nil {
		return err
	}
	if err := dismissing(parent); err != nil {
		return err
	}
	if !slices.Contains(parent.Merging, childID) && len(parent.Merged)+len(parent.Merging) >= incident.MaxMerged {
		return fmt.Errorf("%w: incident %s has %d incidents merged or being merged into it", ErrLimitReached, parent.ID,
			incident.MaxMerged)
	}
	return nil
}

// mergeableChild refuses a child that cannot be merged (into any parent
// but the one it names).
func mergeableChild(inc *incident.Incident) error {
	if inc.MergedInto != "" {
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
	if len(inc.Merging) > 0 {
		return fmt.Errorf("%w: incident %s is itself taking in %s, a merge under way: let it finish, then merge",
			ErrMergeBlocked, inc.ID, strings.Join(inc.Merging, ", "))
	}
	return nil
}

// reserve is Merge's first write: the parent records that childID is being
// merged into it. parent holds what is stored when it returns nil.
func (o *Orchestrator) reserve(ctx context.Context, parent *incident.Incident, childID string) error {
	err := o.mutate(ctx, parent, func(inc *incident.Incident) error {
		if slices.Contains(inc.Merging, childID) || slices.Contains(inc.Merged, childID) {
			return errUnchanged // reserved by an earlier or concurrent call, or merged
		}
		if err := mergeable(inc, childID); err != nil {
			return err
		}
		inc.Merging = append(slices.Clip(inc.Merging), childID)
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// withdraw drops the reservation for childID from parent, if it holds
// one, after a refusal. Should the write fail, the reservation stays for
// the next Merge of the two.
func (o *Orchestrator) withdraw(ctx context.Context, parent *incident.Incident, childID string) {
	if !slices.Contains(parent.Merging, childID) {
		return
	}
	err := o.mutate(context.WithoutCancel(ctx), parent, func(inc *incident.Incident) error {
		if !slices.Contains(inc.Merging, childID) {
			return errUnchanged
		}
		inc.Merging = without(inc.Merging, childID)
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		o.log.Warn("breach: a refused merge's reservation stays until the merge is called again", "incident", parent.ID,
			"child", childID, "err", err)
	}
}

// without returns a copy of ids without id; nil when none is left.
func without(ids []string, id string) []string {
	out := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == id })
	if len(out) == 0 {
		return nil
	}
	return out
}

// endChild is Merge's second write: the child ends, merged into parentID,
// when the parent, read as the child is written, still holds its
// reservation and can take it. child holds what was stored when it returns
// nil. refused reports an error that refuses the merge (rather than a
// failed read or write).
func (o *Orchestrator) endChild(ctx context.Context, child *incident.Incident, parentID, actor, why string) (refused bool, err error) {
	err = o.mutate(ctx, child, func(inc *incident.Incident) error {
		refused = false
		if inc.MergedInto == parentID {
			return errUnchanged // a concurrent Merge did it
		}
		if err := mergeableChild(inc); err != nil {
			refused = true
			return err
		}
		parent, err := o.store.Head(ctx, parentID)
		if err != nil {
			return err
		}
		if !slices.Contains(parent.Merging, inc.ID) {
			return errUnreserved
		}
		if err := mergeable(parent, inc.ID); err != nil {
			refused = true
			return err
		}
		inc.MergedInto = parentID
		o.record(inc, actor, incident.EntryMerge, "merged into incident "+parentID+" ("+parent.Kind+", "+parent.Subject+
			"), which carries on with its signals and evidence: "+why)
		if err := o.fire(inc, incident.EventMerge, actor, "merged into incident "+parentID); err != nil {
			refused = true
			return err
		}
		return nil
	})
	return refused, err
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

// absorb is Merge's last write: the parent takes what the merged child
// holds, and the child's ID moves from Merging to Merged. It returns
// errUnchanged when the parent has it already. why is the reason with
// credentials removed.
func (o *Orchestrator) absorb(ctx context.Context, parent, child *incident.Incident, actor, why string) ([]pageOut, error) {
	var pages []pageOut
	err := o.mutate(ctx, parent, func(inc *incident.Incident) error {
		pages = nil
		if slices.Contains(inc.Merged, child.ID) {
			if !slices.Contains(inc.Merging, child.ID) {
				return errUnchanged
			}
			inc.Merging = without(inc.Merging, child.ID) // not expected: tidy up
			return nil
		}
		inc.Merging = without(inc.Merging, child.ID)
		s := &inc.Signals
		s.Count += child.Signals.Count
		s.MaxSeverity = max(s.MaxSeverity, child.Signals.MaxSeverity)
		s.FirstSeen = firstSeen(s.FirstSeen, child.Signals.FirstSeen)
		if l := child.Signals.LastSeen; l.After(s.LastSeen) {
			s.LastSeen = l
		}
		s.Samples = append(s.Samples, child.Signals.Samples...)
		slices.SortStableFunc(s.Samples, func(a, b incident.SignalSample) int { return a.At.Compare(b.At) })
		s.Samples = slices.Clip(s.Samples[:min(len(s.Samples), incident.MaxSignalSamples)])
		refiled, dropped := 0, 0
		for _, ev := range child.Evidence {
			switch {
			case hasObservable(inc.Evidence, ev):
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
		o.record(inc, actor, incident.EntryMerge, detail+": "+why)
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
