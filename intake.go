package breach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"time"

	"github.com/breachkit/breach/incident"
	"golang.org/x/sync/singleflight"
)

// storeTimeout bounds the store work a Report does on behalf of every
// caller waiting for the same dedup key, after the first caller has left.
const storeTimeout = 30 * time.Second

// Report files a signal: it joins the open incident with the signal's dedup
// key, or opens a new incident and schedules it to be driven. Concurrent
// reports of one key open exactly one incident: in this process through
// single-flight, across processes through the store's uniqueness of open
// dedup keys.
//
// Report validates the signal first: an invalid one returns an error
// matching incident.ErrInvalidSignal, and one of a kind no playbook answers
// an error matching both ErrUnknownKind and incident.ErrInvalidSignal;
// nothing is recorded. A credential in the
// signal is kept in memory for containment and never stored.
//
// Acknowledged means durable: Report returns nil only once the signal's
// effect is in the store, a new incident or its count on an open one.
// Signals for incidents this process knows are written by group commit:
// every flush interval (WithFlushInterval) one change per incident stores
// the count, last-seen time and samples of every signal since the last, and
// all the reports waiting for them are answered together. A signal counted
// on an incident that ended meanwhile (on another replica, say) is filed to
// a new incident, which the receipt names. WithUnsafeAcks trades this for
// speed. A signal whose dedup key belonged to an incident merged into
// another (see Merge) joins that other incident while it is open.
//
// Containment first: while Run is going and a new contain-first incident
// waits to make its first containment call, a Report counting a signal on
// an open incident pauses (for 10ms at most from the latest such
// incident, or until ctx ends) so that the call is not queued behind a
// storm's reporters on busy cores; opening an incident never pauses.
//
// Cancellation: a Report whose ctx has ended when it is called records
// nothing and returns ctx's error. When ctx ends while the incident is
// being opened or looked up in a host's store, Report returns at once with
// an error matching both ErrOutcomeUnknown and ctx's error: the signal may
// or may not have been recorded, and reporting it again is safe (at worst
// it is counted twice). Other errors (the store failed) mean the same. The
// library's MemStore never blocks: with it the opening runs on the
// caller's goroutine to its end, and Report says what it did (the
// Observer's and the logger's calls for the opening, which must be fast,
// run there too).
//
// Report is safe for concurrent use and works whether Run is running or not.
func (o *Orchestrator) Report(ctx context.Context, sig incident.Signal) (incident.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return incident.Receipt{}, err
	}
	if err := o.admit(&sig); err != nil {
		return incident.Receipt{}, err
	}
	if e, b := o.count(&sig); e != nil {
		if !sig.Credential.IsZero() {
			o.keepSignalCredential(e, &sig)
		}
		o.gate.wait(ctx)
		rc, err := o.stored(ctx, incident.Receipt{IncidentID: e.id}, b)
		if err == nil {
			o.observeSignal(ctx, &sig, rc)
		}
		return rc, err
	}
	rc, err := o.reportSlow(ctx, sig)
	if err == nil {
		o.observeSignal(ctx, &sig, rc)
	}
	return rc, err
}

// count counts sig on the open incident the hot index holds for its key,
// and returns the entry with the batch whose commit stores the count; it
// returns nil, counting nothing, when the index holds none (or only a dead
// one). A key the index's lock-free snapshot does not hold is looked up
// under the index's lock, which may wait; when sig may open a
// contain-first incident the containment gate is shut for that wait, as it
// is for the opening that follows (openOrFind): a goroutine that waits
// while the gate is open waits behind every runnable reporter.
func (o *Orchestrator) count(sig *incident.Signal) (*hotEntry, *batch) {
	k := hotKeyOf(sig)
	e := o.hot.cached(k)
	if e == nil {
		if o.containsFirst(sig.Kind, sig.Severity) {
			defer o.gate.hold()()
		}
		if e = o.hot.locked(k); e == nil {
			return nil, nil
		}
	}
	if b, ok := e.add(sig, o.cfg.now, !o.cfg.unsafeAcks, o.newBatch); ok {
		return e, b
	}
	return nil, nil
}

type openResult struct {
	entry   *hotEntry
	creator *byte       // the token of the caller whose signal opened the incident
	wake    *time.Timer // wakes a worker for the incident if the creator does not (addFor)
}

// reportSlow opens or finds the incident for a signal the hot index does
// not know. It takes the signal by value so that the fast path's copy stays
// on the stack.
func (o *Orchestrator) reportSlow(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	rc, b, err := o.fileSlow(ctx, s)
	if err != nil {
		return rc, err
	}
	return o.stored(ctx, rc, b)
}

// fileSlow opens or finds the incident for s, as reportSlow does, and
// returns the batch that stores s's count when it joined one (nil when s
// opened it): the caller waits for it.
func (o *Orchestrator) fileSlow(ctx context.Context, s incident.Signal) (incident.Receipt, *batch, error) {
	for range 3 {
		rc, b, err := o.openOrFind(ctx, s, true, nil)
		if !errors.Is(err, errEnded) {
			return rc, b, err
		}
	}
	return incident.Receipt{}, nil, fmt.Errorf("breach: the incident for dedup key %s keeps ending", s.Key())
}

// openOrFindKey opens the incident for sig's key, or finds the open one,
// without counting sig on an incident it finds. An incident it opens holds
// the counts of whole (see newIncident).
func (o *Orchestrator) openOrFindKey(ctx context.Context, sig incident.Signal, whole *delta) (incident.Receipt, error) {
	rc, _, err := o.openOrFind(ctx, sig, false, whole)
	return rc, err
}

// newBatch counts a batch of reports waiting for a flush: the group
// committer runs while there are any.
func (o *Orchestrator) newBatch() { o.batches.Add(1) }

// stored waits until the counts of b are in the store (when b is not nil:
// acknowledged means durable), and returns rc with the incident they are
// on. It returns ErrOutcomeUnknown joined with ctx's error when ctx ends
// first, and an error saying the signal was not recorded when the write
// failed.
func (o *Orchestrator) stored(ctx context.Context, rc incident.Receipt, b *batch) (incident.Receipt, error) {
	if b == nil {
		return rc, nil
	}
	o.commit()
	select {
	case <-ctx.Done():
		return incident.Receipt{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	case <-b.done:
	}
	if b.err != nil {
		return incident.Receipt{}, fmt.Errorf("breach: signal not recorded: %w", b.err)
	}
	rc.IncidentID = b.id
	return rc, nil
}

// openOrFind is one try of reportSlow: it returns errEnded when the
// incident it found ended before the signal could be counted on it. With
// count, the signal is counted on an incident it finds open, and the batch
// that stores the count is returned.
func (o *Orchestrator) openOrFind(ctx context.Context, s incident.Signal, count bool, whole *delta) (incident.Receipt, *batch, error) {
	sig := &s
	if sig.At.IsZero() {
		sig.At = o.cfg.now()
	}
	hk := hotKeyOf(sig)
	key := sig.Key()
	me := new(byte)
	if o.containsFirst(sig.Kind, sig.Severity) {
		// A new contain-first incident is likely: intake for open
		// incidents pauses while it is created (and, once queued, until
		// its containment call starts: see gate.go), when Run is going.
		defer o.gate.hold()()
	}
	open := func() (res any, err error) {
		defer func() {
			if v := recover(); v != nil { // a bug here must not take the host down
				err = &incident.PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		return o.openOrJoin(sctx, sig, key, hk, me, whole)
	}
	var r singleflight.Result
	if o.store.inline {
		// The library's own store never blocks: the open runs on this
		// goroutine (a goroutine of its own is for a caller to leave a
		// store call that hangs) and its outcome is known.
		r.Val, r.Err, _ = o.sf.Do(key, open)
	} else {
		select {
		case <-ctx.Done():
			return incident.Receipt{}, nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
		case r = <-o.sf.DoChan(key, open):
		}
	}
	if r.Err != nil {
		return incident.Receipt{}, nil, r.Err
	}
	res := r.Val.(openResult)
	opened := res.creator == me
	if opened {
		o.sched.poke() // for the step of the incident it opened
		if res.wake != nil {
			res.wake.Stop()
		}
	}
	var b *batch
	if !opened && count {
		var ok bool
		if b, ok = res.entry.add(sig, o.cfg.now, !o.cfg.unsafeAcks, o.newBatch); !ok {
			return incident.Receipt{}, nil, errEnded // it ended meanwhile: file the signal again
		}
		o.keepSignalCredential(res.entry, sig)
	}
	return incident.Receipt{IncidentID: res.entry.id, Opened: opened}, b, nil
}

// openOrJoin opens an incident for a key the hot index does not hold, or
// joins the open one the store holds. A key that no merge redirects is
// first tried as a new incident, without a look-up: for a new key (the
// common case, and the one that must be contained at once) the Create is
// the only store call before the first containment call, and an open
// incident holding the key makes it fail with ErrDuplicate, after which
// the incident is looked up and joined.
func (o *Orchestrator) openOrJoin(ctx context.Context, sig *incident.Signal, key string, hk hotKey, me *byte, whole *delta) (openResult, error) {
	_, lookUp := o.aliases.Load(key) // a merge redirects the key: look it up first
	for range 4 {
		if lookUp {
			inc, err := o.store.FindOpen(ctx, key)
			if err == nil {
				return openResult{entry: o.hot.put(hk, inc)}, nil
			}
			if !errors.Is(err, incident.ErrNotFound) {
				return openResult{}, err
			}
			if p := o.mergedTarget(ctx, key); p != nil {
				// The key's incident was merged: its signals join the parent.
				o.hot.put(incidentHotKey(p), p)
				return openResult{entry: o.hot.put(hk, p)}, nil
			}
		}
		lookUp = true
		inc := o.newIncident(sig, key, whole)
		// The credential is kept before the incident can be seen, so that
		// no step (a resume, another worker) finds it without one.
		o.keepCredential(inc.ID, sig.Credential)
		ch := changeOf(inc)
		ch.Frozen = true // inc is not changed again: the store and the first step may keep it
		err := o.store.Create(ctx, ch)
		if errors.Is(err, incident.ErrDuplicate) {
			o.forgetCredential(inc.ID)
			continue // another replica opened it first: join that one
		}
		if err != nil {
			// The create may have landed after all (a timeout): keep the
			// credential until it expires.
			return openResult{}, err
		}
		if o.leaser != nil && o.running.Load() && !o.stopping.Load() {
			// A running creator drives it: taking the lease now, with the
			// head it wrote kept, spares the first step a read (and the
			// lease keeps it from looking orphaned to other replicas). A
			// replica that only reports (no Run) leaves it to those that
			// run.
			_, _ = o.leaseHead(ctx, inc, true) // without it, the first step takes the lease
		}
		e := o.hot.put(hk, inc)
		o.changed()
		// The reporter wakes the worker once it has the answer (openOrFind):
		// woken now, the worker would lose the processor's next slot to
		// the reporter, and wait behind every runnable goroutine. Queued
		// before the host's code below runs: should it panic, the timer
		// wakes a worker all the same.
		wake := o.sched.addFor(inc.ID, o.priorityOf(inc))
		o.announce(ctx, inc, inc.DetectedAt, ch.Entries)
		if o.log.Enabled(ctx, slog.LevelInfo) {
			o.log.Info("breach: incident opened", "incident", inc.ID, "kind", inc.Kind, "subject", inc.Subject, "severity", inc.Severity.String())
		}
		return openResult{entry: e, creator: me, wake: wake}, nil
	}
	return openResult{}, errors.New("breach: dedup key " + key + " keeps changing hands in the store")
}

// newIncident is the incident sig opens. With whole, sig stands for the
// signals whole counted (a refile: see flush.go), and the incident is
// created holding all of them, so that they are stored in one write or not
// at all.
func (o *Orchestrator) newIncident(sig *incident.Signal, key string, whole *delta) *incident.Incident {
	now := o.cfg.now()
	inc := &incident.Incident{
		ID:                    o.cfg.newID(),
		Kind:                  sig.Kind,
		Subject:               sig.Subject,
		Account:               sig.Account,
		DedupKey:              key,
		Severity:              sig.Severity,
		State:                 o.lc.Initial(),
		Summary:               sig.Summary,
		CredentialFingerprint: sig.Credential.Fingerprint(),
		Attributes:            maps.Clone(sig.Attributes),
		DetectedAt:            now,
		EnteredAt:             now,
		UpdatedAt:             now,
	}
	inc.Signals = incident.SignalSummary{Count: 1, FirstSeen: sig.At, LastSeen: sig.At, MaxSeverity: sig.Severity,
		Samples: []incident.SignalSample{{At: sig.At, Source: sig.Source, Severity: sig.Severity, Summary: sig.Summary}}}
	if whole != nil && whole.count > 0 {
		// sig stands for whole's signals: their count, times and samples
		// (its own sample when they kept none).
		inc.Signals.Count = 0
		if len(whole.samples) > 0 {
			inc.Signals.Samples = nil
		}
		o.applyDelta(inc, *whole) // nothing to page, nor to approve, on a new incident
	}
	detail := "opened from a " + sig.Severity.String() + " " + sig.Kind + " signal about " + sig.Subject
	if sig.Summary != "" {
		detail += ": " + sig.Summary
	}
	if inc.CredentialFingerprint != "" {
		detail += " (credential " + inc.CredentialFingerprint + ")"
	}
	inc.Record(incident.Entry{At: now, Actor: detectorActor(sig.Source), Type: incident.EntrySignal,
		To: inc.State, Detail: detail})
	o.openClocks(inc)
	o.reach(inc, incident.MilestoneDetected, now, incident.ActorSystem, "")
	// Created already contained-to-be: the first containment call follows
	// this one write.
	o.chain(inc, o.cfg.playbooks[inc.Kind])
	return inc
}

func detectorActor(source string) string {
	if source == "" {
		return "detector"
	}
	return "detector:" + source
}
