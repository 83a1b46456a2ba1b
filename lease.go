package breach

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/breachkit/breach/incident"
)

// Leases, with a Leaser store: a replica keeps the lease of every incident
// it adopted until the incident ends (or the replica stops), idle or not,
// and renews them all with one Renew every third of the TTL. Renew also
// says each incident's Version: one another replica wrote to (a person
// acted there) is driven again here. A replica polls Orphans every half TTL
// for incidents whose owner died, and takes them over at once. Idle load is
// then two statements per TTL or so, whatever the number of open
// incidents, and a dead replica's incidents are taken over within about
// one and a half TTLs.
//
// A lease is acted on for at most leaseUse of the TTL after the Lease or
// Renew that last extended it was sent, by this replica's clock: a Renew
// late or lost (the store slow, the process starved) cannot let two live
// replicas step one incident, since another can take it only once the TTL
// has run out by the store's clock, which started no earlier. When that
// time passes without a renewal the lease is lost here as if Renew had not
// returned it: the running step is fenced and the incident looked at
// again. Only the clocks' rates need agree, not their readings.

// leaseUse is the share of the TTL a replica acts on a lease after
// extending it; the rest covers calls and writes in flight when it ends.
const leaseUse = 0.75

// usableUntil is when a replica stops acting on a lease of ttl that a
// Lease or Renew sent at since extended.
func usableUntil(since time.Time, ttl time.Duration) time.Time {
	return since.Add(time.Duration(float64(ttl) * leaseUse))
}

// heldLease is this replica's lease on one incident.
type heldLease struct {
	mu      sync.Mutex
	lost    error             // why the lease was lost; nil while held
	fence   func(cause error) // the running step's, while one runs
	version int64             // the head's Version this replica last wrote or read
	until   time.Time         // when this replica stops acting on it, unless extended
	timer   *time.Timer       // loses the lease at until
	// ending is set while a write that ends the incident is in flight:
	// the store gives up every lease on it with that write, so a Renew
	// that no longer finds it has not lost it.
	ending atomic.Bool
}

// extend makes the lease usable until leaseUse of ttl after since, when
// the Lease or Renew that extended it was sent; expire runs when that
// passes unextended.
func (l *heldLease) extend(since time.Time, ttl time.Duration, expire func()) {
	until := usableUntil(since, ttl)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil || !until.After(l.until) {
		return
	}
	l.until = until
	if l.timer == nil {
		l.timer = time.AfterFunc(time.Until(until), expire)
		return
	}
	l.timer.Reset(time.Until(until))
}

// stop ends the lease's timer: it was given up.
func (l *heldLease) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
}

// expired reports whether the lease's time ran out unextended.
func (l *heldLease) expired() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost == nil && !time.Now().Before(l.until)
}

// attach makes st the step the lease fences when it is lost, and reports
// whether the lease is still held.
func (l *heldLease) attach(st *stepRun) bool { return l.attachFence(st.fence) }

// attachFence makes fence what the lease calls when it is lost, and
// reports whether the lease is still held: a step's, or a dismissal's.
func (l *heldLease) attachFence(fence func(cause error)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil || !time.Now().Before(l.until) {
		return false // lost, or its time ran out and the timer is due
	}
	l.fence = fence
	return true
}

func (l *heldLease) detach() {
	l.mu.Lock()
	l.fence = nil
	l.mu.Unlock()
}

func (l *heldLease) lose(cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost = cause
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.fence != nil {
		l.fence(cause)
	}
}

// holdLease makes sure this replica holds the lease on id for the step st,
// taking it when it does not. It reports false when another replica holds
// it: that replica drives the incident, and sees at its next Renew any
// write made here. A lease lost during the step fences it: its plugin
// calls and writes are cancelled.
//
// had reports that the lease was held since before the step: no other
// replica can have stepped the incident in between.
func (o *Orchestrator) holdLease(st *stepRun, id string) (held, had bool, err error) {
	o.leasesMu.Lock()
	l := o.leases[id]
	o.leasesMu.Unlock()
	if l != nil {
		if l.attach(st) {
			st.onEnd(l.detach)
			return true, true, nil
		}
		o.dropLease(id)
	}
	o.dropKept(id, 0)
	since := time.Now()
	ok, err := o.leaser.Lease(st.write, id, o.cfg.owner, o.cfg.leaseTTL)
	if err != nil || !ok {
		return false, false, err
	}
	if !time.Now().Before(usableUntil(since, o.cfg.leaseTTL)) {
		// The Lease answered so late that its time to act is over:
		// unfenced, the step could overlap another replica's. Later
		// (not at once: a store this slow would tie a worker up), and
		// given up meanwhile, so that another replica may take it.
		if err := o.leaser.Unlease(st.write, id, o.cfg.owner); err != nil {
			o.log.Warn("breach: giving up a lease that came too late failed; it runs out by itself", "incident", id, "err", err)
		}
		o.sched.later(o.cfg.retryDelay, id, normal)
		return false, false, nil
	}
	l = o.adopt(id, since)
	if !l.attach(st) {
		return false, false, nil // ran out since: its timer queues the incident again
	}
	st.onEnd(l.detach)
	return true, false, nil
}

// leaseHead takes the lease on h's incident for this replica and, when it
// gets it, adopts the incident at h's Version. It reports false when
// another replica holds the lease. With fresh (h is what this replica just
// created, frozen: see incident.Change.Frozen) h itself is kept, and the
// first step here reads nothing; otherwise h was read before the lease,
// and may be stale: nothing as old as h is kept for a while (a read in
// flight from before the lease may return it), and the first step reads
// the store.
func (o *Orchestrator) leaseHead(ctx context.Context, h *incident.Incident, fresh bool) (bool, error) {
	since := time.Now()
	ok, err := o.leaser.Lease(ctx, h.ID, o.cfg.owner, o.cfg.leaseTTL)
	if err != nil || !ok {
		return false, err
	}
	if !fresh {
		o.dropKept(h.ID, h.Version+1)
	}
	o.adopt(h.ID, since)
	o.wrote(h.ID, h.Version)
	if fresh {
		o.keepWritten(h)
	}
	return true, nil
}

// adopt records that this replica holds the lease on id, taken by a Lease
// sent at since.
func (o *Orchestrator) adopt(id string, since time.Time) *heldLease {
	o.leasesMu.Lock()
	l := o.leases[id]
	if l == nil {
		l = &heldLease{}
		o.leases[id] = l
	}
	o.leasesMu.Unlock()
	l.extend(since, o.cfg.leaseTTL, func() { o.expire(id, l) })
	return l
}

// expire loses the lease l on id when its time ran out unextended: a
// Renew late or failing.
func (o *Orchestrator) expire(id string, l *heldLease) {
	if !l.expired() {
		return // extended meanwhile
	}
	o.log.Warn("breach: the lease on an incident ran out before it was renewed; stopping to drive it", "incident", id)
	o.loseLease(id, l, errors.New("breach: lease on incident "+id+" ran out before it was renewed"))
}

// loseLease drops l, the lease on id that this replica no longer holds,
// unless it was given up and taken again since: the step it guards is
// fenced, and the incident looked at again (another replica holds it now,
// and the drive leaves it; or nobody does, and this one takes it back).
func (o *Orchestrator) loseLease(id string, l *heldLease, cause error) {
	o.leasesMu.Lock()
	if o.leases[id] != l {
		o.leasesMu.Unlock()
		return
	}
	delete(o.leases, id)
	o.leasesMu.Unlock()
	o.dropKept(id, 0)
	l.lose(cause)
	o.sched.addAt(id, normal)
}

// wrote records the Version this replica wrote or read for an incident it
// holds, so that Renew tells apart the writes of others.
func (o *Orchestrator) wrote(id string, version int64) {
	if o.leaser == nil {
		return
	}
	o.leasesMu.Lock()
	l := o.leases[id]
	o.leasesMu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.version = max(l.version, version)
	l.mu.Unlock()
}

// renewLeases renews every lease this replica holds with one Renew. A
// lease that did not come back is lost: the step it guards is fenced. An
// incident whose Version moved past what this replica wrote is queued: a
// person acted on it elsewhere.
func (o *Orchestrator) renewLeases(ctx context.Context) error {
	// Only the leases held before the Renew can be missing from its
	// answer: one taken while it ran was taken after it.
	o.leasesMu.Lock()
	before := make(map[string]*heldLease, len(o.leases))
	for id, l := range o.leases {
		before[id] = l
	}
	o.leasesMu.Unlock()
	since := time.Now()
	held, err := o.leaser.Renew(ctx, o.cfg.owner, o.cfg.leaseTTL)
	if err != nil {
		return err
	}
	o.leasesMu.Lock()
	var lost []string
	var touched []string
	for id, l := range o.leases {
		v, ok := held[id]
		if !ok {
			if l.ending.Load() {
				continue // the write ending the incident gave it up (see forgetLease)
			}
			if before[id] == l {
				lost = append(lost, id)
			}
			continue
		}
		l.mu.Lock()
		if v > l.version {
			l.version = v
			touched = append(touched, id)
			o.dropKept(id, v) // written elsewhere: the next step reads it
		}
		l.mu.Unlock()
		l.extend(since, o.cfg.leaseTTL, func() { o.expire(id, l) })
	}
	o.leasesMu.Unlock()
	for _, id := range lost {
		o.log.Warn("breach: lost the lease on an incident; stopping to drive it", "incident", id)
		o.loseLease(id, before[id], errors.New("breach: lease on incident "+id+" lost"))
	}
	for _, id := range touched {
		o.sched.addAt(id, prompt)
	}
	return nil
}

// takeOver leases the open incidents no replica holds (their owner died,
// or never was) and queues them urgently, those that need containment
// first: a dead replica's incidents do not wait behind this one's work. Finding none
// costs one Orphans; finding some, one ListOpen more and a Lease each.
func (o *Orchestrator) takeOver(ctx context.Context) error {
	ids, err := o.leaser.Orphans(ctx, 0)
	if err != nil || len(ids) == 0 {
		return err
	}
	open, err := o.store.ListOpen(ctx)
	if err != nil {
		return err
	}
	heads := make(map[string]*incident.Incident, len(open))
	for _, h := range open {
		heads[h.ID] = h
	}
	// Urgent work first: the lease of each is one call.
	slices.SortStableFunc(ids, func(a, b string) int {
		pa, pb := normal, normal
		if h := heads[a]; h != nil {
			pa = o.priorityOf(h)
		}
		if h := heads[b]; h != nil {
			pb = o.priorityOf(h)
		}
		return cmp.Compare(pb, pa) // urgent first
	})
	var errs []error
	for _, id := range ids {
		h := heads[id]
		if h == nil {
			continue // ended since
		}
		ok, err := o.leaseHead(ctx, h, false)
		if err != nil {
			// The Lease may have landed all the same (its answer was
			// lost): held by this replica in the store but not known to
			// it, renewed by every Renew, the incident would be no
			// orphan for anyone. It is queued: its step takes the lease
			// (again), or finds another replica holds it.
			errs = append(errs, fmt.Errorf("incident %s: %w", id, err))
			o.sched.later(o.cfg.retryDelay, id, max(prompt, o.priorityOf(h)))
			continue
		}
		if ok {
			// h was read after the lease ran out, so after the last
			// owner stopped acting on it; yet a write of its may have
			// been in flight then. The first step here reads the head:
			// a plugin call made from a stale one could repeat one made
			// already (leaseHead keeps nothing). Prompt, or urgent for
			// containment: it waited a TTL already.
			o.sched.addAt(id, max(prompt, o.priorityOf(h)))
		}
	}
	return errors.Join(errs...)
}

// dropLease gives up the lease on id.
func (o *Orchestrator) dropLease(id string) {
	if !o.forgetLease(id) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.leaseTTL)
	defer cancel()
	o.unlease(ctx, id)
}

// unlease gives up this replica's lease on id in the store; a failure is
// logged (the lease runs out by itself).
func (o *Orchestrator) unlease(ctx context.Context, id string) {
	if err := o.leaser.Unlease(ctx, id, o.cfg.owner); err != nil {
		o.log.Warn("breach: giving up the lease failed; it runs out by itself", "incident", id, "err", err)
	}
}

// ending marks the lease on id, if this replica holds it, as given up by
// the write in flight, which ends the incident; it returns the function
// that takes the mark back should the write fail.
func (o *Orchestrator) ending(id string) func() {
	o.leasesMu.Lock()
	l := o.leases[id]
	o.leasesMu.Unlock()
	if l == nil {
		return func() {}
	}
	l.ending.Store(true)
	return func() { l.ending.Store(false) }
}

// forgetLease forgets the lease on id without a store call, and reports
// whether this replica held it: for an ended incident, whose ending write
// gave up every lease on it (the incident.Leaser contract).
func (o *Orchestrator) forgetLease(id string) bool {
	o.dropKept(id, 0)
	o.leasesMu.Lock()
	l := o.leases[id]
	delete(o.leases, id)
	o.leasesMu.Unlock()
	if l == nil {
		return false
	}
	l.stop()
	return true
}

// dropLeases gives up every lease this replica holds: Run does it last.
// The Unleases are made a few at a time under one deadline
// (unleaseBudget, at most a TTL): a lease not given up runs out by itself
// within its TTL, so a store that is slow or hangs holds Run for that
// long at the most, not for a TTL per lease.
func (o *Orchestrator) dropLeases() {
	o.leasesMu.Lock()
	ids := make([]string, 0, len(o.leases))
	for id := range o.leases {
		ids = append(ids, id)
	}
	o.leasesMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), min(o.cfg.leaseTTL, unleaseBudget))
	defer cancel()
	var g errgroup.Group
	g.SetLimit(unleaseConcurrency)
	for _, id := range ids {
		if !o.forgetLease(id) {
			continue
		}
		g.Go(func() error {
			o.unlease(ctx, id)
			return nil
		})
	}
	_ = g.Wait()
}

// unleaseBudget bounds the Unleases of Run's last act, and
// unleaseConcurrency how many are in flight at once.
const (
	unleaseBudget      = 2 * time.Second
	unleaseConcurrency = 8
)
