package breach

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// refileStore fails the first Create, once armed, and counts the writes
// of every incident.
type refileStore struct {
	*incident.MemStore
	arm    atomic.Bool
	writes sync.Map // incident ID → *atomic.Int64
}

func (s *refileStore) wrote(id string) {
	v, _ := s.writes.LoadOrStore(id, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (s *refileStore) writesOf(id string) int64 {
	if v, ok := s.writes.Load(id); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (s *refileStore) Create(ctx context.Context, ch incident.Change) error {
	if s.arm.CompareAndSwap(true, false) {
		return errors.New("injected failure")
	}
	s.wrote(ch.Head.ID)
	return s.MemStore.Create(ctx, ch)
}

func (s *refileStore) Apply(ctx context.Context, ch incident.Change) error {
	s.wrote(ch.Head.ID)
	return s.MemStore.Apply(ctx, ch)
}

// TestRefileStoresAllOrNothing: signals counted on an incident that ended
// elsewhere are refiled to a new incident, created holding all of them in
// its one write, so that a failure stores none of them: reporting them
// again, as the waiting reports are told, counts each once. Before the fix
// the new incident was created with one of them and the others written
// after; when that write failed every waiting report was told "not
// recorded", though one signal was, and reporting again counted it twice.
func TestRefileStoresAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unsafeAcks bool
		createFail bool
	}{
		{"durable", false, false},
		{"durable, the create fails", false, true},
		{"unsafe acks", true, false},
		{"unsafe acks, the create fails", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
			s := &refileStore{MemStore: incident.NewMemStore()}
			opts := []Option{WithFlushInterval(time.Millisecond)}
			if tc.unsafeAcks {
				opts = append(opts, WithUnsafeAcks())
			}
			o := newCredOrchestrator(t, s, &credRecorder{}, clk, opts...)
			rc, err := o.Report(ctx, credSignal())
			require.NoError(t, err)
			x := rc.IncidentID

			// X ends on another replica.
			h, err := s.MemStore.Head(ctx, x)
			require.NoError(t, err)
			clk.add(time.Minute)
			h.State, h.EnteredAt = incident.StateClosed, clk.now()
			require.NoError(t, s.MemStore.Apply(ctx, incident.Change{Head: h}))
			clk.add(time.Minute)

			sigs := make([]incident.Signal, 3)
			for i := range sigs {
				sigs[i] = credSignal()
				sigs[i].At = clk.now()
			}
			s.arm.Store(tc.createFail)
			_, err = o.ReportAll(ctx, sigs) // counted on X's entry, refiled at the commit
			switch {
			case tc.unsafeAcks:
				require.NoError(t, err)
				if tc.createFail {
					require.Error(t, o.flush(ctx), "the refile's create fails")
				}
				require.NoError(t, o.flush(ctx))
			case tc.createFail:
				require.Error(t, err, "the waiting reports are told their signals were not recorded")
				_, err = o.ReportAll(ctx, sigs) // as they are told they may
				require.NoError(t, err)
			default:
				require.NoError(t, err)
			}

			ks := credSignal()
			y, err := s.MemStore.FindOpen(ctx, ks.Key())
			require.NoError(t, err)
			require.NotEqual(t, x, y.ID)
			assert.EqualValues(t, 3, y.Signals.Count, "3 signals arrived after X ended, each counted once")
			assert.Len(t, y.Signals.Samples, 3)
			if !tc.createFail || tc.unsafeAcks {
				// Refiled (reported again, they open it as new signals do).
				assert.EqualValues(t, 1, s.writesOf(y.ID), "the new incident was written once, holding them all")
			}
		})
	}
}

// TestApplyDeltaOfUntimedSignalsKeepsFirstSeen: a commit of signals that
// came without a time (their first-seen time unknown) moves LastSeen to
// the commit and leaves FirstSeen as it was. Before the fix it set
// FirstSeen to the zero time.
func TestApplyDeltaOfUntimedSignalsKeepsFirstSeen(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk)
	first := clk.now().Add(-time.Hour)
	inc := &incident.Incident{Severity: incident.SeverityHigh,
		Signals: incident.SignalSummary{Count: 1, FirstSeen: first, LastSeen: first}}
	o.applyDelta(inc, delta{count: 2, untimed: true, last: clk.now()})
	assert.EqualValues(t, 3, inc.Signals.Count)
	assert.Equal(t, first, inc.Signals.FirstSeen)
	assert.Equal(t, clk.now(), inc.Signals.LastSeen)
}
