package breach_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// TestReportAll: a batch of signals is filed as Report files each, in
// order: a new key opens an incident, known keys are counted, invalid
// signals and unknown kinds fail alone (a *SignalError each, with its
// index), and once ReportAll returns every accepted signal is stored.
func TestReportAll(t *testing.T) {
	other := leak()
	other.Subject = "key_43"
	invalid := leak()
	invalid.Subject = ""
	unknown := leak()
	unknown.Kind = "nobody.answers"
	tests := []struct {
		name     string
		batch    []incident.Signal
		failed   map[int]error // index → what its error matches
		counts   map[string]int64
		openedAt []int // indexes whose receipt says Opened
	}{
		{name: "empty", batch: nil, counts: map[string]int64{}},
		{name: "one key, many signals", batch: []incident.Signal{leak(), leak(), leak()},
			counts: map[string]int64{"key_42": 3}, openedAt: []int{0}},
		{name: "two keys", batch: []incident.Signal{leak(), other, leak(), other, other},
			counts: map[string]int64{"key_42": 2, "key_43": 3}, openedAt: []int{0, 1}},
		{name: "bad signals fail alone", batch: []incident.Signal{leak(), invalid, leak(), unknown},
			failed: map[int]error{1: incident.ErrInvalidSignal, 3: breach.ErrUnknownKind},
			counts: map[string]int64{"key_42": 2}, openedAt: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := incident.NewMemStore()
				o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
				require.NoError(t, err)
				ctx := context.Background()
				rcs, err := o.ReportAll(ctx, tt.batch)
				require.Len(t, rcs, len(tt.batch))
				if len(tt.failed) == 0 {
					require.NoError(t, err)
				}
				for i, want := range tt.failed {
					assert.ErrorIs(t, err, want, "signal %d", i)
					assert.Zero(t, rcs[i], "signal %d has no receipt", i)
				}
				var se *breach.SignalError
				if len(tt.failed) > 0 && assert.ErrorAs(t, err, &se) {
					assert.Contains(t, tt.failed, se.Index)
				}
				for i, rc := range rcs {
					if _, bad := tt.failed[i]; !bad {
						assert.NotEmpty(t, rc.IncidentID, "signal %d", i)
					}
					assert.Equal(t, slices.Contains(tt.openedAt, i), rc.Opened, "signal %d opened its incident", i)
				}
				// Stored on return: read from the store, no flush asked.
				open, err := store.ListOpen(ctx)
				require.NoError(t, err)
				got := map[string]int64{}
				for _, inc := range open {
					got[inc.Subject] = inc.Signals.Count
				}
				assert.Equal(t, tt.counts, got)
			})
		})
	}
}

// TestReportAllWithEndedContext: a batch whose context has ended records
// nothing; one whose context ends while it waits for its commit says each
// waiting signal's outcome is unknown.
func TestReportAllWithEndedContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
		require.NoError(t, err)
		ctx := context.Background()
		_, err = o.Report(ctx, leak()) // the key is open: the batch's signals wait for a commit
		require.NoError(t, err)

		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		rcs, err := o.ReportAll(cancelled, []incident.Signal{leak(), leak()})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, rcs)

		// Ends while waiting for the commit (due at the flush interval:
		// the bubble's clock stands still until every goroutine waits).
		done := make(chan error, 1)
		waitCtx, stop := context.WithCancel(ctx)
		go func() {
			_, err := o.ReportAll(waitCtx, []incident.Signal{leak(), leak()})
			done <- err
		}()
		synctest.Wait()
		stop()
		err = <-done
		assert.ErrorIs(t, err, breach.ErrOutcomeUnknown)
		assert.ErrorIs(t, err, context.Canceled)
		var se *breach.SignalError
		require.True(t, errors.As(err, &se))
		assert.Equal(t, 0, se.Index)
		time.Sleep(time.Second) // virtual: the commit lands all the same
		synctest.Wait()
		open, err := store.ListOpen(ctx)
		require.NoError(t, err)
		require.Len(t, open, 1)
		assert.EqualValues(t, 3, open[0].Signals.Count, "unknown outcome: here, stored")
	})
}

// cancellingCreate is a MemStore whose first Create ends the reporter's
// ctx (the caller went away mid-batch) and takes a moment.
type cancellingCreate struct {
	*incident.MemStore
	cancel  context.CancelFunc
	creates atomic.Int64
}

func (s *cancellingCreate) Create(ctx context.Context, ch incident.Change) error {
	if s.creates.Add(1) == 1 {
		s.cancel()
	}
	time.Sleep(time.Millisecond)
	return s.MemStore.Create(ctx, ch)
}

// TestReportAllStopsWhenCtxEnds: once ctx has ended, ReportAll files no
// further signal of the batch (as a Report with an ended ctx records
// nothing): no incident is opened after it, and the signals left fail
// with ctx's error.
func TestReportAllStopsWhenCtxEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		store := &cancellingCreate{MemStore: incident.NewMemStore(), cancel: cancel}
		o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
		require.NoError(t, err)
		var batch []incident.Signal
		for i := range 50 {
			s := leak()
			s.Subject = fmt.Sprintf("key_%d", i)
			batch = append(batch, s)
		}
		_, err = o.ReportAll(ctx, batch)
		assert.ErrorIs(t, err, breach.ErrOutcomeUnknown)
		time.Sleep(time.Minute)
		synctest.Wait()
		open, err := store.ListOpen(context.Background())
		require.NoError(t, err)
		assert.LessOrEqual(t, len(open), 1, "incidents opened after the caller's ctx ended")
	})
}

// countingCommits counts Apply calls (the group commits of counts).
type slowApplyStore struct {
	*incident.MemStore
	applies atomic.Int64
}

func (s *slowApplyStore) Apply(ctx context.Context, ch incident.Change) error {
	s.applies.Add(1)
	time.Sleep(5 * time.Millisecond) // a store write
	return s.MemStore.Apply(ctx, ch)
}

// TestReportAllWaitsOnceForColdKeys: ReportAll over keys whose incidents
// are open in the store but not in this process's hot index (a restart,
// another replica opened them) waits for their counts' group commits
// together, not for one commit per key in turn.
func TestReportAllWaitsOnceForColdKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowApplyStore{MemStore: incident.NewMemStore()}
		first, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
		require.NoError(t, err)
		var batch []incident.Signal
		for i := range 40 {
			s := leak()
			s.Subject = fmt.Sprintf("key_%d", i)
			batch = append(batch, s)
		}
		_, err = first.ReportAll(context.Background(), batch)
		require.NoError(t, err)
		warm := time.Now()
		_, err = first.ReportAll(context.Background(), batch)
		require.NoError(t, err)
		t.Logf("40 warm keys: %v", time.Since(warm))
		second, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet) // cold hot index
		require.NoError(t, err)
		start := time.Now()
		_, err = second.ReportAll(context.Background(), batch)
		require.NoError(t, err)
		took := time.Since(start)
		t.Logf("40 cold keys: %v (a store write is 5ms)", took)
		assert.Less(t, took, 40*5*time.Millisecond/2, "the cold keys' counts are committed together")
	})
}
