package breach

import (
	"context"
	"slices"
	"time"

	"github.com/breachkit/breach/incident"
)

// The driver keeps the head it last wrote or read of each open incident it
// drives (Orchestrator.heads), so that a step starts without a read; a
// write that conflicts re-reads. A kept head is never changed: it is
// replaced, by a newer one only. It is dropped when the incident ends, when
// another replica wrote to it (renewLeases), and when this replica takes it
// over or loses its lease.
//
// Reads and writes of one incident run at once (a step, a flush, a
// person's action), so the head one of them keeps may be older than what
// another learnt meanwhile: a step that read version 7 keeps it after a
// person's write of version 8 was kept, or after a Renew said another
// replica wrote version 8 and dropped what was kept. Kept, version 7 would
// be trusted by the next step, which would wait for ever for a change it
// cannot see. So a head is kept only when it is newer than what is kept,
// and a drop leaves a floor (kept.floor) below which nothing is kept
// again: for as long as a read or write in flight when it was dropped may
// take to land (keptFloorFor), then the floor goes too.

// kept is what heads holds of one incident: the head kept for its next
// step, or none once dropped, and the lowest Version that may be kept.
type kept struct {
	head  *incident.Incident // nil: dropped
	floor int64
}

// keptFloor is a floor left by a drop, swept once it is older than
// keptFloorFor.
type keptFloor struct {
	id string
	k  *kept
	at time.Time
}

// keptFloorFor is how long a drop's floor is kept: past the timeout of any
// store call that was in flight when it was dropped.
func (o *Orchestrator) keptFloorFor() time.Duration { return 2 * o.cfg.storeTimeout }

// keepHead keeps a copy of the head inc for the next step, unless a newer
// one is kept or inc is older than a drop allows.
func (o *Orchestrator) keepHead(inc *incident.Incident) { o.keep(inc, false) }

// keepWritten keeps v, a head written frozen (see incident.Change.Frozen),
// itself: it is never changed again.
func (o *Orchestrator) keepWritten(v *incident.Incident) { o.keep(v, true) }

// keep is keepHead, of inc itself when frozen.
func (o *Orchestrator) keep(inc *incident.Incident, frozen bool) {
	if !inc.State.Open() {
		o.dropKept(inc.ID, inc.Version+1)
		return
	}
	var k *kept
	for {
		cur, ok := o.heads.Load(inc.ID)
		var prev *incident.Incident
		if ok {
			c := cur.(*kept)
			if inc.Version < c.floor || c.head != nil && c.head.Version >= inc.Version {
				return
			}
			prev = c.head
		}
		if k == nil {
			// Kept heads are never changed: the new one shares with the
			// one it replaces the parts the write left as they were.
			h := inc
			if !frozen {
				h = inc.CloneSharing(prev)
			}
			k = &kept{head: h, floor: inc.Version}
		}
		if !ok {
			if _, loaded := o.heads.LoadOrStore(inc.ID, k); !loaded {
				return
			}
			continue
		}
		if o.heads.CompareAndSwap(inc.ID, cur, k) {
			return
		}
	}
}

// dropKept forgets what is kept of id for its next step (the head and the
// first page of customers) and leaves a floor: no head older than floor,
// or than the head dropped, is kept for a while.
func (o *Orchestrator) dropKept(id string, floor int64) {
	// The floor first, then the page: a page kept meanwhile is dropped
	// here, or by its keeper, who finds the floor (keepFirstPage).
	defer o.pages.Delete(id)
	for {
		cur, ok := o.heads.Load(id)
		if ok {
			floor = max(floor, cur.(*kept).floor)
			if cur.(*kept).head == nil && cur.(*kept).floor == floor {
				return
			}
		}
		if floor == 0 {
			return // nothing kept, nothing known: no floor to leave
		}
		m := &kept{floor: floor}
		var stored bool
		if ok {
			stored = o.heads.CompareAndSwap(id, cur, m)
		} else {
			_, loaded := o.heads.LoadOrStore(id, m)
			stored = !loaded
		}
		if stored {
			o.leaveFloor(id, m)
			return
		}
	}
}

// leaveFloor records the floor m of id for the sweep, and sweeps the
// floors that are old enough: an incident's floor goes once it is older
// than keptFloorFor, unless a head was kept since.
func (o *Orchestrator) leaveFloor(id string, m *kept) {
	now := time.Now()
	o.floorsMu.Lock()
	defer o.floorsMu.Unlock()
	o.floors = append(o.floors, keptFloor{id: id, k: m, at: now})
	n := 0
	for n < len(o.floors) && now.Sub(o.floors[n].at) > o.keptFloorFor() {
		o.heads.CompareAndDelete(o.floors[n].id, o.floors[n].k)
		o.floors[n] = keptFloor{}
		n++
	}
	o.floors = o.floors[n:]
}

// firstPage is the first page of an incident's customers as the write of
// its first findings stored them, valid while the head is at version.
type firstPage struct {
	version   int64
	customers []incident.Customer
}

// keepFirstPage keeps, after the write of inc's first findings (first:
// the store held no customers of it before), the first page of the
// customers it stored, so that the notify step that follows needs no read
// to learn them: the store pages customers in the order first written,
// and these are the first. Any other write drops what was kept.
func (o *Orchestrator) keepFirstPage(inc *incident.Incident, first bool, customers []incident.Customer) {
	if !first || len(customers) == 0 || !inc.State.Open() {
		o.pages.Delete(inc.ID)
		return
	}
	page := slices.Clone(customers[:min(len(customers), o.cfg.notifyBatch)])
	p := &firstPage{version: inc.Version, customers: page}
	o.pages.Store(inc.ID, p)
	if v, ok := o.heads.Load(inc.ID); ok && v.(*kept).floor > inc.Version {
		o.pages.CompareAndDelete(inc.ID, p) // dropped since: a newer version was learnt
	}
}

// customersAt returns the page of inc's customers after its outreach
// cursor: the kept first page when it is the head's, or the store's.
func (o *Orchestrator) customersAt(ctx context.Context, inc *incident.Incident) ([]incident.Customer, error) {
	if v, ok := o.pages.Load(inc.ID); ok && inc.Outreach.Cursor == "" {
		if p := v.(*firstPage); p.version == inc.Version {
			return slices.Clone(p.customers), nil
		}
	}
	return o.store.Customers(ctx, inc.ID, inc.Outreach.Cursor, o.cfg.notifyBatch)
}

// savedHead returns an unchanging copy of inc as it is now: the head kept,
// when it is inc's version, or a new copy.
func (o *Orchestrator) savedHead(inc *incident.Incident) *incident.Incident {
	if v, ok := o.heads.Load(inc.ID); ok {
		if h := v.(*kept).head; h != nil && h.Version == inc.Version {
			return h
		}
	}
	return inc.Clone()
}

// flushHead returns a working copy of the head of id for a group commit:
// made from the kept head, it shares with it every part a commit leaves as
// it is, and owns the parts a commit changes (the signal summary's
// samples, which it appends to, and the on-call alert, which mutate
// resolves when nobody is needed any more); the rest of what a commit sets
// is fields of the head itself (counts, times, severity, the entries it
// records). A kept head is never changed, so sharing is safe as long as a
// commit changes nothing else in place; TestFlushLeavesTheKeptHeadAsItWas
// holds it to that. Each of a storm's incidents is written at every
// commit, and a deep copy of each was most of what a storm allocated.
// Without a kept head it is head's working copy.
func (o *Orchestrator) flushHead(ctx context.Context, id string) (*incident.Incident, error) {
	if v, ok := o.heads.Load(id); ok {
		if h := v.(*kept).head; h != nil {
			w := *h
			w.Signals.Samples = slices.Clip(w.Signals.Samples) // an append makes its own array
			if w.Paging != nil {
				p := *w.Paging
				w.Paging = &p
			}
			return &w, nil
		}
	}
	return o.head(ctx, id, true)
}

// head returns a working copy of the head of id: the one kept when it may
// be trusted (see drive), or the store's.
func (o *Orchestrator) head(ctx context.Context, id string, trustKept bool) (*incident.Incident, error) {
	if trustKept {
		if v, ok := o.heads.Load(id); ok && v.(*kept).head != nil {
			return v.(*kept).head.Clone(), nil
		}
	}
	inc, err := o.store.Head(ctx, id)
	if err == nil {
		o.keepHead(inc)
		o.adoptMerged(inc)
	}
	return inc, err
}
