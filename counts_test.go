package breach_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// vanishingStore is a MemStore from which the incident named by gone has
// been deleted: every read of it says it is not found.
type vanishingStore struct {
	*incident.MemStore
	gone atomic.Value // string
}

func (s *vanishingStore) vanished(id string) error {
	if g, _ := s.gone.Load().(string); g == id {
		return fmt.Errorf("incident %s: %w", id, incident.ErrNotFound)
	}
	return nil
}

func (s *vanishingStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if err := s.vanished(id); err != nil {
		return nil, err
	}
	return s.MemStore.Head(ctx, id)
}

func (s *vanishingStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	if err := s.vanished(id); err != nil {
		return nil, err
	}
	return s.MemStore.Entries(ctx, id, from, limit)
}

func (s *vanishingStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	if err := s.vanished(id); err != nil {
		return nil, err
	}
	return s.MemStore.Deliveries(ctx, id, q)
}

func (s *vanishingStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	if err := s.vanished(id); err != nil {
		return nil, err
	}
	return s.MemStore.Customers(ctx, id, after, limit)
}

func (s *vanishingStore) Apply(ctx context.Context, ch incident.Change) error {
	if err := s.vanished(ch.Head.ID); err != nil {
		return err
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestCountsOfAVanishedIncidentOpenANewOne: signals counted in memory for
// an incident the store no longer has are filed to a new incident; the
// second Flush returns nil and every signal is counted there.
func TestCountsOfAVanishedIncidentOpenANewOne(t *testing.T) {
	vs := &vanishingStore{MemStore: incident.NewMemStore()}
	o, err := breach.New(vs, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet, breach.WithUnsafeAcks())
	require.NoError(t, err)
	ctx := context.Background()
	rc, err := o.Report(ctx, leak())
	require.NoError(t, err)
	const joined = 4
	for range joined {
		r, err := o.Report(ctx, leak())
		require.NoError(t, err)
		require.Equal(t, rc.IncidentID, r.IncidentID)
	}
	// Delete the incident from under the orchestrator: its dedup key is
	// free in the store, and no read finds it.
	inc, err := vs.MemStore.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	inc.State = incident.StateClosed
	require.NoError(t, vs.MemStore.Apply(ctx, incident.Change{Head: inc}))
	vs.gone.Store(rc.IncidentID)

	t.Logf("first flush: %v", o.Flush(ctx))
	require.NoError(t, o.Flush(ctx), "the second flush")
	open, err := vs.ListOpen(ctx)
	require.NoError(t, err)
	require.Len(t, open, 1, "the counts opened a new incident")
	assert.NotEqual(t, rc.IncidentID, open[0].ID)
	assert.EqualValues(t, joined, open[0].Signals.Count, "every signal counted on the new incident")
	require.NoError(t, o.Flush(ctx))
	again, err := vs.Head(ctx, open[0].ID)
	require.NoError(t, err)
	assert.EqualValues(t, joined, again.Signals.Count, "and counted once")
}

// blockingApplyStore is a MemStore whose Apply hangs, while blocked,
// until gate is closed.
type blockingApplyStore struct {
	*incident.MemStore
	blocked atomic.Bool
	gate    chan struct{}
	entered chan struct{} // told when an Apply blocks
}

func (s *blockingApplyStore) Apply(ctx context.Context, ch incident.Change) error {
	if s.blocked.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.gate
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestFlushWaitsForCountsAnotherFlushTook: a Flush that starts while
// another has taken the counts but not stored them returns only once they
// are stored. (Not in a synctest bubble: the second Flush waits on a
// mutex, which a bubble does not count as durably blocked.)
func TestFlushWaitsForCountsAnotherFlushTook(t *testing.T) {
	bs := &blockingApplyStore{MemStore: incident.NewMemStore(), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	o, err := breach.New(bs, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet, breach.WithUnsafeAcks())
	require.NoError(t, err)
	ctx := context.Background()
	rc, err := o.Report(ctx, leak())
	require.NoError(t, err)
	const joined = 3
	for range joined {
		_, err := o.Report(ctx, leak())
		require.NoError(t, err)
	}
	bs.blocked.Store(true)
	first := make(chan error, 1)
	go func() { first <- o.Flush(ctx) }()
	<-bs.entered // the first flush took the counts and hangs storing them

	type result struct {
		err    error
		stored int64 // the count in the store when Flush returned
	}
	second := make(chan result, 1)
	go func() {
		err := o.Flush(ctx)
		inc, gerr := bs.MemStore.Head(ctx, rc.IncidentID)
		if gerr != nil {
			second <- result{gerr, 0}
			return
		}
		second <- result{err, inc.Signals.Count}
	}()
	// Give the second Flush time to return early, if it does: a bound, not
	// a synchronisation (a slow machine only weakens the check).
	var r result
	returned := false
	select {
	case r = <-second:
		returned = true
	case <-time.After(200 * time.Millisecond):
	}
	bs.blocked.Store(false)
	close(bs.gate)
	if !returned {
		r = <-second
	}
	require.NoError(t, r.err)
	assert.EqualValues(t, 1+joined, r.stored, "the counts were stored when the second Flush returned")
	require.NoError(t, <-first)
}
