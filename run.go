package breach

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/breachkit/breach/incident"
)

// Run starts the detectors and drives incidents, at most WithConcurrency at
// a time, until ctx ends. It first resumes every open incident in the
// store. When ctx ends, Run stops the detectors, lets plugin calls in flight
// finish within the shutdown grace (WithShutdownGrace), persists what
// happened and pending signal counts (within 10 seconds), gives up its
// leases with a Leaser store (within 2 seconds, or a TTL if shorter: those
// it could not give up run out by themselves), and returns nil with no
// goroutine of its own left running. A detector that fails or panics is logged and not
// restarted; the rest go on. Run returns ErrRunning if called while already
// running.
func (o *Orchestrator) Run(ctx context.Context, detectors ...incident.Detector) error {
	if !o.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer o.running.Store(false)
	o.stopping.Store(false)
	o.gate.start()

	// grace outlives ctx by the shutdown grace, so that a started side
	// effect can finish and be recorded.
	grace, cancelGrace := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelGrace()

	var wg sync.WaitGroup
	for i, d := range detectors {
		if d == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.runDetector(ctx, grace, i, d)
		}()
	}
	if err := o.resume(ctx); err != nil {
		o.log.ErrorContext(ctx, "breach: resuming open incidents failed; will retry", "err", err)
		o.sched.later(o.cfg.retryDelay, resumeAll, normal)
	}
	for range o.cfg.concurrency {
		wg.Go(func() { o.work(ctx, grace, &wg) })
	}
	wg.Go(func() {
		// With durable acknowledgements the group committer writes counts
		// as reports wait for them; this writes the counts of unsafe ones.
		o.every(&wg, ctx, o.flushEvery(), "flushing signal counts", func(ctx context.Context) error {
			o.sweepCredentials(nil, time.Time{})
			if !o.cfg.unsafeAcks {
				return nil
			}
			return o.flush(ctx)
		})
	})
	wg.Go(func() { o.every(&wg, ctx, o.cfg.deadlineInterval, "checking deadlines", o.checkDeadlines) })
	// Leases are renewed until the last step has wound down, the grace
	// included: a step finishing its side effect after ctx ended still
	// holds its lease (and is not fenced for want of a renewal).
	renewing, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenewing()
	var upkeep sync.WaitGroup
	if o.leaser != nil {
		upkeep.Go(func() { o.every(&upkeep, renewing, o.cfg.leaseTTL/3, "renewing leases", o.renewLeases) })
		wg.Go(func() { o.every(&wg, ctx, o.cfg.leaseTTL/2, "taking over incidents", o.takeOver) })
	}
	<-ctx.Done()
	graceTimer := time.AfterFunc(o.cfg.grace, cancelGrace)
	defer graceTimer.Stop()
	wg.Wait()
	stopRenewing()
	upkeep.Wait()
	o.sched.stopTimers()
	o.stopping.Store(true)
	o.gate.stop()
	o.dropLeases()
	// Persist signal counts gathered since the last flush, with time of its
	// own: the grace may be spent by now.
	fctx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancelFlush()
	if err := o.flush(fctx); err != nil {
		o.log.Error("breach: final flush of signal counts failed", "err", err)
	}
	return nil
}

// flushEvery is the period of Run's housekeeping loop: the flush interval
// for unsafe acknowledgements, at least a second otherwise.
func (o *Orchestrator) flushEvery() time.Duration {
	if o.cfg.unsafeAcks {
		return o.cfg.flushInterval
	}
	return max(o.cfg.flushInterval, time.Second)
}

// every calls fn every d until ctx ends, logging its failures as what, on
// a goroutine of wg. A panic in fn (host code it calls) is logged as a
// failure; should host code end the goroutine (runtime.Goexit: a test's
// t.FailNow in an observer, say), the loop starts again on another.
func (o *Orchestrator) every(wg *sync.WaitGroup, ctx context.Context, d time.Duration, what string, fn func(context.Context) error) {
	ended := false
	defer o.takeOverIfEnded(&ended, "the goroutine "+what, func() {
		wg.Go(func() { o.every(wg, ctx, d, what, fn) })
	})
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ended = true
			return
		case <-t.C:
			if err := recovered(ctx, fn); err != nil && ctx.Err() == nil {
				o.log.Warn("breach: "+what+" failed; will retry", "err", err)
			}
		}
	}
}

// takeOverIfEnded, deferred by a goroutine's function, calls start, which
// starts another in its place, when the function did not return (*returned
// is false): host code it called ended the goroutine (runtime.Goexit).
func (o *Orchestrator) takeOverIfEnded(returned *bool, what string, start func()) {
	if !*returned {
		o.log.Error("breach: host code ended " + what + "; another takes its place")
		start()
	}
}

// recovered is fn(ctx), with a panic in it made an *incident.PanicError.
func recovered(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &incident.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

// runDetector runs d until ctx ends and waits for it to return, for as
// long as the shutdown grace lasts (grace): Run leaves no detector running
// that honours its context. A panic is recovered and logged.
func (o *Orchestrator) runDetector(ctx, grace context.Context, i int, d incident.Detector) {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- &incident.PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		done <- d.Detect(ctx, o)
	}()
	var err error
	select {
	case err = <-done:
	case <-grace.Done():
		o.log.Error("breach: detector did not stop within the shutdown grace", "detector", i)
		return
	}
	var pe *incident.PanicError
	switch {
	case errors.As(err, &pe):
		o.log.ErrorContext(ctx, "breach: detector panicked; not restarted", "detector", i, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	case err != nil && ctx.Err() == nil:
		o.log.ErrorContext(ctx, "breach: detector stopped with an error; not restarted", "detector", i, "err", err)
	}
}

const resumeAll = "\x00resume"

// finalFlushTimeout bounds the flush of signal counts when Run stops.
const finalFlushTimeout = 10 * time.Second

func (o *Orchestrator) resume(ctx context.Context) error {
	mark, since := o.hot.mark(), o.cfg.now()
	open, err := o.store.ListOpen(ctx)
	if err != nil {
		return err
	}
	o.resumeAliases(ctx, open)
	ids := make(map[string]bool, len(open))
	for _, inc := range open {
		ids[inc.ID] = true
		if o.leaser != nil {
			// Adopt what no other replica holds, now: the rest is theirs
			// (and, should they die, taken over by takeOver), and what
			// this one will drive is not an orphan while it waits here.
			ok, err := o.leaseHead(ctx, inc, false)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		o.sched.addAt(inc.ID, o.priorityOf(inc))
	}
	// Another replica may have closed incidents this one still counts
	// signals for: forget them, so the next signal opens a new incident.
	o.hot.retain(ids, mark)
	o.sweepCredentials(ids, since)
	return nil
}

// work takes incidents off the queue and drives each as far as it goes,
// on a goroutine of wg. Should host code end the goroutine (runtime.Goexit:
// a test's t.FailNow in an observer, say), the incident it drove is taken
// again later and another worker takes this one's place.
func (o *Orchestrator) work(ctx, grace context.Context, wg *sync.WaitGroup) {
	current, finished := "", false
	defer o.takeOverIfEnded(&finished, "a worker's goroutine", func() {
		if current != "" { // taken again later
			if current != resumeAll {
				o.gate.releaseFor(current)
			}
			o.sched.done(current)
			o.sched.later(o.cfg.retryDelay, current, normal)
		}
		wg.Go(func() { o.work(ctx, grace, wg) })
	})
	for {
		id, ok := o.sched.next(ctx)
		if !ok {
			finished = true
			return
		}
		current = id
		if id == resumeAll {
			if err := o.resume(ctx); err != nil && ctx.Err() == nil {
				o.log.ErrorContext(ctx, "breach: resuming open incidents failed; will retry", "err", err)
				o.sched.later(o.cfg.retryDelay, resumeAll, normal)
			}
			o.sched.done(id)
			current = ""
			continue
		}
		o.driveSafely(ctx, grace, id)
		o.gate.releaseFor(id) // the step made no containment call
		o.sched.done(id)
		current = ""
	}
}

// driveSafely drives one incident and never lets a bug or a store failure
// escape: the incident is scheduled again later instead.
func (o *Orchestrator) driveSafely(ctx, grace context.Context, id string) {
	defer func() {
		if v := recover(); v != nil {
			o.log.Error("breach: panic while driving incident; will retry", "incident", id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			o.sched.later(o.cfg.retryDelay, id, normal)
		}
	}()
	if _, err := o.drive(ctx, grace, id); err != nil && ctx.Err() == nil {
		if errors.Is(err, incident.ErrNotFound) {
			o.log.Warn("breach: incident vanished from the store", "incident", id)
			return
		}
		o.log.Error("breach: driving incident failed; will retry", "incident", id, "err", err)
		o.sched.later(o.cfg.retryDelay, id, normal)
	}
}
