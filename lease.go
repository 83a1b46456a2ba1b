package breach

import (
	"context"
	"errors"
	"sync"
	"time"
)

// heldLease is this replica's lease on one incident, held across the steps
// of a run of work on it and renewed every third of the TTL until dropped.
type heldLease struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	lost  error             // why the lease was lost; nil while held
	fence func(cause error) // the running step's, while one runs
}

// attach makes st the step the lease fences when it is lost, and reports
// whether the lease is still held.
func (l *heldLease) attach(st *stepRun) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return false
	}
	l.fence = st.fence
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
	if l.fence != nil {
		l.fence(cause)
	}
}

// holdLease makes sure this replica holds the lease on id for the step st,
// taking it when it does not. It reports false when another replica holds
// it; the incident is then looked at again soon, at urgent priority, so
// that a replica that died is taken over as soon as its lease runs out.
// A lease lost during the step fences it: its plugin calls and writes are
// cancelled.
func (o *Orchestrator) holdLease(st *stepRun, id string) (bool, error) {
	o.leasesMu.Lock()
	l := o.leases[id]
	o.leasesMu.Unlock()
	if l != nil {
		if l.attach(st) {
			st.onEnd(l.detach)
			return true, nil
		}
		o.dropLease(id)
	}
	ttl := o.cfg.leaseTTL
	ok, err := o.leaser.Lease(st.write, id, o.cfg.owner, ttl)
	if err != nil || !ok {
		if err == nil {
			o.sched.later(min(ttl/3, time.Second), id, urgent)
		}
		return false, err
	}
	l = &heldLease{done: make(chan struct{})}
	l.attach(st)
	st.onEnd(l.detach)
	o.leasesMu.Lock()
	o.leases[id] = l
	o.leasesMu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				ok, err := o.leaser.Lease(ctx, id, o.cfg.owner, ttl)
				cancel()
				if err != nil || !ok {
					o.log.Warn("breach: lost the lease on an incident; stopping to drive it",
						"incident", id, "held by another", !ok && err == nil, "err", err)
					l.lose(errors.New("breach: lease on incident " + id + " lost"))
					return
				}
			}
		}
	}()
	return true, nil
}

// dropLease stops renewing the lease on id and gives it up.
func (o *Orchestrator) dropLease(id string) {
	o.leasesMu.Lock()
	l := o.leases[id]
	delete(o.leases, id)
	o.leasesMu.Unlock()
	if l == nil {
		return
	}
	close(l.done)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.leaseTTL)
	defer cancel()
	if err := o.leaser.Unlease(ctx, id, o.cfg.owner); err != nil {
		o.log.Warn("breach: giving up the lease failed; it runs out by itself", "incident", id, "err", err)
	}
}

// dropLeases gives up every lease this replica holds: Run does it last.
func (o *Orchestrator) dropLeases() {
	o.leasesMu.Lock()
	ids := make([]string, 0, len(o.leases))
	for id := range o.leases {
		ids = append(ids, id)
	}
	o.leasesMu.Unlock()
	for _, id := range ids {
		o.dropLease(id)
	}
}
