package breach

import (
	"context"
	"errors"
	"sync"
	"time"
)

// lease takes the store's lease on the incident for this orchestrator and
// renews it every third of its TTL until unlease is called. The contexts it
// returns end when a renewal fails, so that a replica which lost its lease
// stops driving the incident (plugin calls in flight are cancelled).
func (o *Orchestrator) lease(ctx, grace context.Context, id string) (lctx, lgrace context.Context, unlease func(), ok bool, err error) {
	ttl := o.cfg.leaseTTL
	if ok, err = o.leaser.Lease(grace, id, o.cfg.owner, ttl); err != nil || !ok {
		return ctx, grace, nil, ok, err
	}
	lost := errors.New("breach: lease on incident " + id + " lost")
	lctx, cancel := context.WithCancelCause(ctx)
	lgrace, cancelGrace := context.WithCancelCause(grace)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if ok, err := o.leaser.Lease(lgrace, id, o.cfg.owner, ttl); err != nil || !ok {
					o.log.Warn("breach: lost the lease on an incident; stopping to drive it",
						"incident", id, "held by another", !ok && err == nil, "err", err)
					cancel(lost)
					cancelGrace(lost)
					return
				}
			}
		}
	}()
	return lctx, lgrace, func() {
		close(done)
		wg.Wait()
		cancel(nil)
		cancelGrace(nil)
		if err := o.leaser.Unlease(grace, id, o.cfg.owner); err != nil {
			o.log.Warn("breach: giving up the lease failed; it runs out by itself", "incident", id, "err", err)
		}
	}, true, nil
}
