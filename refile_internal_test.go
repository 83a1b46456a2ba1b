package breach

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// failOnceStore fails the first Apply, once armed, to any incident but skip.
type failOnceStore struct {
	*incident.MemStore
	skip atomic.Value // string: incident ID whose Applies pass
	arm  atomic.Bool
}

func (s *failOnceStore) Apply(ctx context.Context, ch incident.Change) error {
	if skip, _ := s.skip.Load().(string); ch.Head.ID != skip && s.arm.CompareAndSwap(true, false) {
		return errors.New("injected failure")
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestRefileAfterAFailedWriteCountsOnce: signals counted on an incident
// that ended elsewhere are refiled to a new incident, opened by one of them;
// when the write of the rest fails, only the rest is kept for the next
// flush. Before the fix the whole count was kept, and the signal that
// opened the new incident was counted twice.
func TestRefileAfterAFailedWriteCountsOnce(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	fs := &failOnceStore{MemStore: incident.NewMemStore()}
	o := newCredOrchestrator(t, fs, &credRecorder{}, clk, WithUnsafeAcks())
	rc, err := o.Report(ctx, credSignal())
	require.NoError(t, err)
	x := rc.IncidentID
	fs.skip.Store(x)

	// X ends elsewhere (another replica).
	h, err := fs.MemStore.Head(ctx, x)
	require.NoError(t, err)
	clk.t = clk.t.Add(time.Minute)
	h.State, h.EnteredAt = incident.StateClosed, clk.t
	require.NoError(t, fs.MemStore.Apply(ctx, incident.Change{Head: h}))

	clk.t = clk.t.Add(time.Minute)
	for range 3 {
		s := credSignal()
		s.At = clk.t
		rc, err := o.Report(ctx, s) // counted on X's hot entry, unacknowledged
		require.NoError(t, err)
		require.Equal(t, x, rc.IncidentID)
	}
	fs.arm.Store(true)
	require.Error(t, o.flush(ctx), "the refile's follow-up write fails")
	require.NoError(t, o.flush(ctx))

	ks := credSignal()
	y, err := fs.MemStore.FindOpen(ctx, ks.Key())
	require.NoError(t, err)
	require.NotEqual(t, x, y.ID)
	require.EqualValues(t, 3, y.Signals.Count, "3 signals arrived after X ended")
}
