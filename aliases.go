package breach

import (
	"context"
	"errors"
	"slices"

	"github.com/breachkit/breach/incident"
)

// The dedup keys of merged incidents route their later signals to the
// parent: Orchestrator.aliases maps a merged child's dedup key to its
// parent's ID. An entry is added when a merged child's end is written
// (retarget) and when Run resumes an open parent (resumeAliases); it is
// followed only when the store has no open incident for the key (see
// openOrJoin), so a stale one routes nothing astray.

// maxMergeHops bounds the parents followed from a dedup key (a parent may
// have been merged in turn).
const maxMergeHops = 8

// retarget updates the aliases when the write that ended inc landed: a
// merged inc's key, and those that led to it, lead to its parent; those
// that led to an incident that ended otherwise lead nowhere.
func (o *Orchestrator) retarget(inc *incident.Incident) {
	if inc.State == incident.StateMerged && inc.MergedInto != "" {
		o.aliases.Store(inc.DedupKey, inc.MergedInto)
	}
	if len(inc.Merged) == 0 {
		return
	}
	o.aliases.Range(func(k, v any) bool {
		if v.(string) == inc.ID {
			if inc.MergedInto != "" {
				o.aliases.CompareAndSwap(k, v, inc.MergedInto)
			} else {
				o.aliases.CompareAndDelete(k, v)
			}
		}
		return true
	})
}

// mergedTarget returns the open incident that signals for key, whose own
// incident was merged, now join, or nil.
func (o *Orchestrator) mergedTarget(ctx context.Context, key string) *incident.Incident {
	v, ok := o.aliases.Load(key)
	if !ok {
		return nil
	}
	id := v.(string)
	for range maxMergeHops {
		p, err := o.store.Head(ctx, id)
		switch {
		case err != nil:
			return nil // open a new incident rather than lose the signal
		case p.State.Open():
			return p
		case p.MergedInto == "":
			o.aliases.CompareAndDelete(key, v) // the parent ended
			return nil
		}
		id = p.MergedInto
	}
	return nil
}

// resumeAliases maps the dedup keys of the incidents merged into the open
// incidents open (and of those merged into them, in turn) to them. A child
// that cannot be read is skipped: its signals open a new incident.
func (o *Orchestrator) resumeAliases(ctx context.Context, open []*incident.Incident) {
	for _, p := range open {
		o.finishMerges(ctx, p)
		queue := slices.Clone(p.Merged)
		for n := 0; len(queue) > 0 && n < incident.MaxMerged*maxMergeHops; n++ {
			c, err := o.store.Head(ctx, queue[0])
			queue = queue[1:]
			if err != nil || c.State != incident.StateMerged {
				continue
			}
			o.aliases.Store(c.DedupKey, p.ID)
			o.moveCredentials(c.ID, p.ID) // before the sweep forgets them with c
			queue = append(queue, c.Merged...)
		}
	}
}

// finishMerges finishes the merges into the open incident p that a process
// stopped between the child's end and the parent's last write: a child p
// reserves (Merging) that is merged into p is taken in, as a later Merge
// of the two would. A reservation whose child ended otherwise (closed,
// dismissed, merged elsewhere) or no longer exists can never be finished:
// it is withdrawn, so that it no longer counts towards incident.MaxMerged
// nor keeps p from being merged. One whose child is still open is left to
// the next Merge of the two (a Merge may be under way), which finishes or
// withdraws it.
func (o *Orchestrator) finishMerges(ctx context.Context, p *incident.Incident) {
	for _, id := range p.Merging {
		c, err := o.store.Head(ctx, id)
		switch {
		case errors.Is(err, incident.ErrNotFound),
			err == nil && !c.State.Open() && (c.State != incident.StateMerged || c.MergedInto != p.ID):
			parent := p.Clone()
			o.withdraw(ctx, parent, id)
			continue
		case err != nil || c.State != incident.StateMerged || c.MergedInto != p.ID:
			continue
		}
		o.aliases.Store(c.DedupKey, p.ID)
		parent := p.Clone()
		pages, err := o.absorb(ctx, parent, c, incident.ActorSystem, "a merge cut short, finished when the orchestrator resumed")
		if errors.Is(err, errUnchanged) {
			continue
		}
		if err != nil {
			o.log.Warn("breach: finishing a merge cut short failed; Merge of the two finishes it", "parent", p.ID, "child", id, "err", err)
			continue
		}
		o.sendPages(ctx, parent, pages)
		o.sched.addAt(parent.ID, o.priorityOf(parent))
	}
}
