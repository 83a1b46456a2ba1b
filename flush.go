package breach

import (
	"context"
	"errors"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachkit/breach/incident"
)

// flush writes the signals gathered in memory since the last flush (count,
// first and last seen, samples, a raised severity) to their incidents. Run
// calls it every flush interval and once when it stops. Failures are
// returned joined; what failed to flush is kept for the next try.
func (o *Orchestrator) flush(ctx context.Context) error {
	// One flush at a time: when flush returns nil, every count taken
	// before it was called is stored, including those a concurrent flush
	// had taken.
	o.flushMu.Lock()
	var (
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		next  atomic.Int64
		after []func() // what the writes leave to do once the flush is done (pages)
	)
	later := func(fn func()) {
		mu.Lock()
		after = append(after, fn)
		mu.Unlock()
	}
	defer func() {
		// Pages go out once the flush lets go of the lock, in the order
		// they were decided: the next flush (Run's last, say) never waits
		// for a pager, and neither do the reports, answered already.
		o.flushMu.Unlock()
		for _, fn := range after {
			fn()
		}
	}()
	pending := o.hot.pending()
	// A few goroutines take the incidents in turn, rather than one
	// goroutine each: each new goroutine would take the processor's next
	// slot and push whatever was waiting in it (a worker woken for
	// containment, say) to the back of the run queue.
	write := func() {
		for i := next.Add(1) - 1; i < int64(len(pending)); i = next.Add(1) - 1 {
			o.gate.yield()
			if err := o.flushEntry(ctx, pending[i], later); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	}
	for range min(flushConcurrency, len(pending)) - 1 {
		wg.Go(write)
	}
	write()
	wg.Wait()
	return errors.Join(errs...)
}

// flushConcurrency bounds the incidents Flush writes at once.
const flushConcurrency = 8

// flushEntry writes what e gathered. A panic in the code it runs (host
// code: the clock, say) is its error; and should that code end the
// goroutine (runtime.Goexit), the reports waiting for the counts are told
// all the same, never left waiting: the counts were stored, or they were
// not (those of unsafe acknowledgements, nobody waiting, are kept for the
// next flush).
func (o *Orchestrator) flushEntry(ctx context.Context, e *hotEntry, later func(func())) (err error) {
	d, b := e.take()
	returned := false
	var stored string // the incident the counts were written to, once they were
	defer func() {
		if v := recover(); v != nil {
			err = &incident.PanicError{Value: v, Stack: debug.Stack()}
		} else if returned {
			return
		}
		if err == nil {
			err = errFlushCut
		}
		o.log.Error("breach: storing signal counts was cut", "incident", e.id, "err", err)
		switch {
		case stored != "":
			o.finishBatch(b, stored, nil) // written: the reports are answered so (once)
		case b != nil:
			o.finishBatch(b, "", err)
		default:
			e.giveBack(d) // not written: kept for the next flush
		}
	}()
	err = o.flushTaken(ctx, e, d, b, &stored, later)
	returned = true
	return err
}

// errFlushCut answers the reports of a flush that host code cut short.
var errFlushCut = errors.New("breach: storing the signal counts was cut short")

// flushTaken is flushEntry's work on what it took from e.
// *stored is set to the incident the counts are on once they are written.
// later is handed what is left to do once the flush is done.
func (o *Orchestrator) flushTaken(ctx context.Context, e *hotEntry, d delta, b *batch, stored *string, later func(func())) error {
	if d.count == 0 && d.severity == 0 && d.last.IsZero() && !d.untimed && len(d.samples) == 0 {
		o.finishBatch(b, e.id, nil)
		return nil
	}
	if d.untimed {
		// Signals without a time were counted without reading the clock;
		// the flush is when they are known to have been seen by.
		if now := o.cfg.now(); now.After(d.last) {
			d.last = now
		}
	}
	// The head kept from the last write, when there is one: a write made
	// elsewhere since makes the compare-and-swap fail, and mutate reads
	// the store's.
	inc, err := o.flushHead(ctx, e.id)
	if errors.Is(err, incident.ErrNotFound) {
		// The store no longer has the incident: the signals open a new one.
		o.log.Warn("breach: incident vanished from the store; its new signals open another", "incident", e.id)
		o.hot.remove(e.id)
		return o.refileBatch(ctx, e, d, b)
	}
	if err == nil {
		var then func()
		then, err = o.writeDelta(ctx, inc, d, func(inc *incident.Incident) error {
			if !inc.State.Open() && !d.untimed && !d.first.IsZero() && d.first.After(endedAt(inc)) {
				return errEnded
			}
			return nil
		})
		if err == nil {
			*stored = e.id
			later(then)
		}
	}
	if errors.Is(err, errEnded) {
		// Every one of these signals was seen after the incident ended (on
		// another replica, say): they belong to a new incident, or to the
		// one it was merged into.
		o.hot.remove(e.id)
		o.endCredentials(inc)
		o.retarget(inc)
		return o.refileBatch(ctx, e, d, b)
	}
	if err != nil {
		return o.flushFailed(e, d, b, err)
	}
	if !inc.State.Open() {
		// Signals seen while it was open, or without a time to tell, stay
		// on it; the next signal for the key opens a new incident (or
		// joins the one it was merged into: the write told retarget).
		o.hot.remove(e.id)
	}
	o.finishBatch(b, e.id, nil)
	return nil
}

func (o *Orchestrator) refileBatch(ctx context.Context, e *hotEntry, d delta, b *batch) error {
	id, err := o.refile(ctx, e, d)
	if err != nil {
		return o.flushFailed(e, d, b, err)
	}
	o.finishBatch(b, id, nil)
	return nil
}

// flushFailed handles counts that could not be stored: the reports waiting
// for them are told so (they were not recorded, and may be reported again),
// and counts nobody waits for are kept for the next flush.
func (o *Orchestrator) flushFailed(e *hotEntry, d delta, b *batch, err error) error {
	if b != nil {
		o.finishBatch(b, "", err)
		return err
	}
	e.giveBack(d)
	return err
}

// finishBatch tells a batch's waiting reports the outcome, once.
func (o *Orchestrator) finishBatch(b *batch, id string, err error) {
	if b != nil && !b.ended.Load() {
		b.finish(id, err)
		if o.batches.Add(-1) == 0 {
			select { // the committer may stop
			case o.commitPoke <- struct{}{}:
			default:
			}
		}
	}
}

// commit starts the group committer unless it runs: it flushes every flush
// interval while reports wait for their counts to be stored, and stops when
// none does, so an idle orchestrator runs no goroutine of its own.
func (o *Orchestrator) commit() {
	if o.committing.CompareAndSwap(false, true) {
		go o.commitLoop()
	}
}

// commitLoop is the group committer. A panic in a flush (host code it
// calls) is logged as a failed flush; should host code end its goroutine
// (runtime.Goexit), another committer takes over, so that the reports
// waiting for their counts are answered all the same.
func (o *Orchestrator) commitLoop() {
	ended := false
	defer o.takeOverIfEnded(&ended, "the group committer's goroutine", func() {
		o.committing.Store(false)
		o.commit()
	})
	t := time.NewTimer(o.cfg.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			if err := recovered(ctx, o.flush); err != nil {
				o.log.Warn("breach: storing signal counts failed; the reports waiting for them are told", "err", err)
			}
			cancel()
			t.Reset(o.cfg.flushInterval)
		case <-o.commitPoke: // another flush (Run's last) answered every waiting report
		}
		if o.batches.Load() == 0 {
			o.committing.Store(false)
			// A report may have started a batch after the load and seen
			// the committer still running: look again.
			if o.batches.Load() == 0 || !o.committing.CompareAndSwap(false, true) {
				ended = true
				return
			}
		}
	}
}

// endedAt is when an incident that is no longer open closed or was
// dismissed: the time of its last transition.
func endedAt(inc *incident.Incident) time.Time {
	if !inc.EnteredAt.IsZero() {
		return inc.EnteredAt
	}
	return inc.UpdatedAt
}

// refile files signals counted on an incident that ended (or vanished) as
// one signal for the same key, which opens a new incident holding them all
// (or finds the one open now, and writes them all to it). Each way they
// are stored in one write, or not at all. It returns the incident the
// signals are on.
func (o *Orchestrator) refile(ctx context.Context, e *hotEntry, d delta) (string, error) {
	if d.count == 0 {
		return "", nil
	}
	sig := incident.Signal{Kind: e.kind, Subject: e.subject, DedupKey: e.key.dedup, Severity: d.severity,
		Source: "coalesced", Summary: strconv.FormatInt(d.count, 10) + " signal(s) that arrived as the previous incident ended",
		At: d.last}
	if !sig.Severity.Valid() {
		sig.Severity = incident.SeverityLow
	}
	if len(d.samples) > 0 {
		sig.Source, sig.Summary = d.samples[0].Source, d.samples[0].Summary
	}
	if sig.At.IsZero() {
		sig.At = o.cfg.now()
	}
	if err := sig.Validate(); err != nil {
		return "", err
	}
	rc, err := o.openOrFindKey(ctx, sig, &d)
	if err != nil || rc.Opened {
		return rc.IncidentID, err
	}
	inc, err := o.store.Head(ctx, rc.IncidentID)
	if err == nil {
		var then func()
		if then, err = o.writeDelta(ctx, inc, d, nil); err == nil {
			then()
		}
	}
	return rc.IncidentID, err
}

// writeDelta writes the signals d gathered to inc (applyDelta), once check
// (when not nil) allows it on the head read, and returns what follows the
// write (raised), for its caller to run when it can wait for a pager.
func (o *Orchestrator) writeDelta(ctx context.Context, inc *incident.Incident, d delta, check func(*incident.Incident) error) (then func(), err error) {
	var pages []pageOut
	raised := false
	resolved, err := o.mutateLeavingPages(ctx, inc, func(inc *incident.Incident) error {
		if check != nil {
			if err := check(inc); err != nil {
				return err
			}
		}
		pages, raised = o.applyDelta(inc, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	pages = append(resolved, pages...)
	return func() { o.raised(ctx, inc, pages, raised) }, nil
}

// raised follows a group commit's write of inc, once the flush is done: the
// pages it decided go out (the batch's reports were answered, and the
// flush's lock let go, first), and when signals raised the severity the
// incident is queued, as containment the new severity needs no approval
// for may run. The pages go in the order they were decided, on the
// flush's goroutine and within its deadline.
func (o *Orchestrator) raised(ctx context.Context, inc *incident.Incident, pages []pageOut, raised bool) {
	o.sendPages(ctx, inc, pages)
	if raised && inc.State.Open() {
		o.sched.addAt(inc.ID, o.priorityOf(inc))
	}
}

// applyDelta adds the signals d gathered to inc. A signal more severe than
// the incident and than every signal before it raises the severity as a
// person's change would (approvals the new severity does not ask for are
// given, an open alert moves to the new severity's escalation policy): it
// returns the pages to send once the write lands, and whether it raised. One that is not (more of
// what a person judged when they lowered it, or a signal counted before
// their change and written after it) leaves the severity as it is.
//
// inc may be a flush's working copy, which shares its containment records
// with the kept head (see flushHead): they are copied before a raise
// changes them.
func (o *Orchestrator) applyDelta(inc *incident.Incident, d delta) (pages []pageOut, raised bool) {
	s := &inc.Signals
	s.Count += d.count
	s.FirstSeen = firstSeen(s.FirstSeen, d.first)
	if d.last.After(s.LastSeen) {
		s.LastSeen = d.last
	}
	for _, smp := range d.samples {
		if len(s.Samples) < incident.MaxSignalSamples {
			s.Samples = append(s.Samples, smp)
		}
	}
	before := s.MaxSeverity
	s.MaxSeverity = max(s.MaxSeverity, d.severity)
	if d.severity <= inc.Severity || d.severity <= before {
		return nil, false
	}
	detail := "severity raised from " + inc.Severity.String() + " to " + d.severity.String() + " by a later signal"
	if !inc.State.Open() || inc.Dismissal != nil {
		// Ended, or being dismissed: the record says how severe it was,
		// but nothing is approved or paged for it any more (a dismissal
		// would release an action approved now that never ran).
		inc.Severity = d.severity
		o.record(inc, incident.ActorSystem, incident.EntrySeverity, detail)
		return nil, false
	}
	inc.Actions = ownActions(inc.Actions)
	return o.setSeverity(inc, d.severity, incident.ActorSystem, detail), true
}

// ownActions returns a copy of actions that shares no approval with them.
func ownActions(actions []incident.ActionRecord) []incident.ActionRecord {
	c := slices.Clone(actions)
	for i := range c {
		if a := c[i].Approval; a != nil {
			cp := *a
			c[i].Approval = &cp
		}
	}
	return c
}
