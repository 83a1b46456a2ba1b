package breach

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestKeptHeadOnlyMovesForward: what one incident's reads, writes, Renews
// and ends do to its kept head, in the orders they can land in.
func TestKeptHeadOnlyMovesForward(t *testing.T) {
	open := func(v int64) *incident.Incident {
		return &incident.Incident{ID: "inc_1", State: incident.StateResolving, Version: v}
	}
	closed := func(v int64) *incident.Incident {
		return &incident.Incident{ID: "inc_1", State: incident.StateClosed, Version: v}
	}
	type op struct {
		keep  *incident.Incident // keepHead(keep), or dropKept(floor) when nil
		floor int64
	}
	tests := []struct {
		name string
		ops  []op
		want int64 // the Version kept; 0 for none
	}{
		{"a newer head replaces", []op{{keep: open(7)}, {keep: open(8)}}, 8},
		{"an older head read in flight does not", []op{{keep: open(8)}, {keep: open(7)}}, 8},
		{"a drop after a Renew saw a newer write leaves a floor", []op{{keep: open(7)}, {floor: 8}, {keep: open(7)}}, 0},
		{"the newer head is kept over the floor", []op{{floor: 8}, {keep: open(8)}}, 8},
		{"a drop keeps the dropped head's version as floor", []op{{keep: open(8)}, {floor: 0}, {keep: open(7)}}, 0},
		{"the same version may be kept after a drop", []op{{keep: open(8)}, {floor: 0}, {keep: open(8)}}, 8},
		{"an ended head is kept as a floor above it", []op{{keep: open(8)}, {keep: closed(9)}, {keep: open(8)}, {keep: open(9)}}, 0},
		{"a reopen after the end is kept", []op{{keep: closed(9)}, {keep: open(10)}}, 10},
		{"a drop with nothing known leaves nothing", []op{{floor: 0}, {keep: open(3)}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Orchestrator{cfg: config{storeTimeout: time.Second}}
			for _, op := range tt.ops {
				if op.keep != nil {
					o.keepHead(op.keep)
				} else {
					o.dropKept("inc_1", op.floor)
				}
			}
			var got int64
			if v, ok := o.heads.Load("inc_1"); ok && v.(*kept).head != nil {
				got = v.(*kept).head.Version
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestKeptFloorsAreSwept: a drop's floor goes once it is older than
// keptFloorFor, at the next drop; a head kept since stays.
func TestKeptFloorsAreSwept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &Orchestrator{cfg: config{storeTimeout: time.Second}}
		o.keepHead(&incident.Incident{ID: "inc_ended", State: incident.StateClosed, Version: 4})
		o.dropKept("inc_kept", 2)
		o.keepHead(&incident.Incident{ID: "inc_kept", State: incident.StateResolving, Version: 2})
		_, ok := o.heads.Load("inc_ended")
		require.True(t, ok, "the end left a floor")

		time.Sleep(o.keptFloorFor() + time.Millisecond)
		o.dropKept("inc_other", 1)
		_, ok = o.heads.Load("inc_ended")
		assert.False(t, ok, "the old floor was swept")
		v, ok := o.heads.Load("inc_kept")
		require.True(t, ok)
		assert.Equal(t, int64(2), v.(*kept).head.Version, "a head kept after the drop stays")
		assert.Len(t, o.floors, 1, "only the new floor waits for the sweep")
	})
}

// TestFirstPageNotKeptPastAFloor: the first page of customers a write
// stored is not kept when, by the time it is, a newer version was learnt
// (another write, the end) and the kept head dropped.
func TestFirstPageNotKeptPastAFloor(t *testing.T) {
	o := &Orchestrator{cfg: config{storeTimeout: time.Second, notifyBatch: 10}}
	customers := []incident.Customer{{ID: "acct_7"}}
	inc := &incident.Incident{ID: "inc_1", State: incident.StateNotifying, Version: 5}
	o.keepFirstPage(inc, true, customers)
	_, ok := o.pages.Load("inc_1")
	require.True(t, ok, "kept while nothing newer is known")

	o.dropKept("inc_1", 7) // the incident ended at version 6
	o.keepFirstPage(inc, true, customers)
	_, ok = o.pages.Load("inc_1")
	assert.False(t, ok, "the page of version 5 is not kept past the floor")
}

// stallingHead is a MemStore whose next Head, once armed, reads the head
// and then waits for release before it answers.
type stallingHead struct {
	*incident.MemStore
	armed   atomic.Bool
	reading chan struct{}
	release chan struct{}
}

func (s *stallingHead) Head(ctx context.Context, id string) (*incident.Incident, error) {
	h, err := s.MemStore.Head(ctx, id)
	if s.armed.CompareAndSwap(true, false) {
		s.reading <- struct{}{}
		<-s.release
	}
	return h, err
}

// TestTakeOverKeepsNoStaleRead: a read of the head in flight across a
// takeOver (a flush's) returns the version takeOver's ListOpen saw, while
// the old owner's write in flight lands a newer one. The read is not kept:
// the first step here, which trusts what is kept, reads the store.
func TestTakeOverKeepsNoStaleRead(t *testing.T) {
	ctx := context.Background()
	store := &stallingHead{MemStore: incident.NewMemStore(), reading: make(chan struct{}), release: make(chan struct{})}
	pb := Playbook{Kind: "apikey.compromised", Strategy: InvestigateFirst}
	a, err := New(store, WithLease("a", time.Minute), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	b, err := New(store, WithLease("b", time.Minute), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler))) // the old owner, whose write is in flight
	require.NoError(t, err)
	rc, err := b.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityHigh, Source: "s"})
	require.NoError(t, err)
	id := rc.IncidentID

	store.armed.Store(true)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = a.head(ctx, id, true) }() // a flush on a reads the head
	<-store.reading

	require.NoError(t, a.takeOver(ctx))                                          // ListOpen sees v1; lease taken
	require.NoError(t, b.AddNote(ctx, id, "bob", "the old owner's write lands")) // v2
	close(store.release)
	<-done

	a.leasesMu.Lock()
	held := a.leases[id] != nil
	a.leasesMu.Unlock()
	require.True(t, held, "a adopted it: its first step has had=true and trusts the kept head")
	kept, err := a.head(ctx, id, true)
	require.NoError(t, err)
	cur, err := store.MemStore.Head(ctx, id)
	require.NoError(t, err)
	require.Equal(t, cur.Version, kept.Version, "the head a's step trusts is the store's")
}

// TestFlushLeavesTheKeptHeadAsItWas: a group commit's working copy shares
// the kept head's parts (flushHead); a commit that counts signals, raises
// the severity, adds samples and resolves an alert nobody needs any more
// leaves the kept head it started from exactly as it was, and stores all
// of it.
func TestFlushLeavesTheKeptHeadAsItWas(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk)
	sig := credSignal()
	sig.Severity = incident.SeverityHigh
	rc, err := o.Report(ctx, sig)
	require.NoError(t, err)
	stepUntil(t, o, rc.IncidentID, incident.StateResolving)
	inc, err := o.store.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	// An alert left open by another replica, which no one is needed for
	// now: this replica reads and keeps that head, and the commit's write
	// resolves the alert.
	inc.Paging = &incident.Paging{AlertKey: "alert-1", Reason: "approval", Needed: "approve", Level: 1,
		OpenedAt: clk.now(), PagedAt: clk.now()}
	require.NoError(t, o.store.Apply(ctx, incident.Change{Head: inc}))
	_, err = o.head(ctx, inc.ID, false) // read, and kept
	require.NoError(t, err)
	v, ok := o.heads.Load(rc.IncidentID)
	require.True(t, ok)
	kept := v.(*kept).head
	require.NotNil(t, kept)
	require.NotNil(t, kept.Paging)
	require.True(t, kept.Paging.Open(), "kept with the alert open")
	before := kept.Clone()

	for i := range 3 {
		s := credSignal()
		s.Summary = "seen again " + string(rune('a'+i))
		s.At = clk.now()
		e := o.hot.get(hotKeyOf(&s))
		require.NotNil(t, e)
		_, ok := e.add(&s, o.cfg.now, false, nil) // counted in memory, as a storm's are
		require.True(t, ok)
	}
	require.NoError(t, o.flush(ctx))

	assert.Equal(t, before, kept, "the kept head the commit started from is unchanged")
	stored, err := o.store.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	assert.EqualValues(t, before.Signals.Count+3, stored.Signals.Count)
	assert.Equal(t, incident.SeverityCritical, stored.Severity, "raised by the later signals")
	assert.Len(t, stored.Signals.Samples, len(before.Signals.Samples)+3)
	require.NotNil(t, stored.Paging)
	assert.False(t, stored.Paging.ResolvedAt.IsZero(), "the alert nobody needs is resolved")
}

// TestWrittenVersionIsNotTheWorkingCopy: each write hands the store, and
// keeps for the next step, one version of the head made for it, frozen
// (incident.Change.Frozen); the step's working copy is not that version.
// Changing every part of the working copy in the next write leaves the
// version written before it as it was, and what is kept is what is stored.
func TestWrittenVersionIsNotTheWorkingCopy(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk)
	rc, err := o.Report(ctx, credSignal())
	require.NoError(t, err)
	stepUntil(t, o, rc.IncidentID, incident.StateResolving)
	inc, err := o.head(ctx, rc.IncidentID, true)
	require.NoError(t, err)
	keptNow := func() *incident.Incident {
		v, ok := o.heads.Load(rc.IncidentID)
		require.True(t, ok)
		require.NotNil(t, v.(*kept).head)
		return v.(*kept).head
	}
	require.NoError(t, o.mutate(ctx, inc, func(inc *incident.Incident) error {
		o.record(inc, "alice@example.com", incident.EntryNote, "first")
		return nil
	}))
	written := keptNow()
	before := written.Clone()
	require.NotEmpty(t, inc.Actions, "the working copy holds parts to change")
	require.NotEmpty(t, inc.Milestones)
	require.NotEmpty(t, inc.Signals.Samples)

	require.NoError(t, o.mutate(ctx, inc, func(inc *incident.Incident) error {
		inc.Actions[0].LastError = "changed in place"
		for m := range inc.Milestones {
			inc.Milestones[m] = clk.now().Add(time.Hour)
		}
		inc.Signals.Samples[0].Summary = "changed in place"
		inc.Recommendations = append(inc.Recommendations, "added")
		o.record(inc, "alice@example.com", incident.EntryNote, "second")
		return nil
	}))

	assert.Equal(t, before, written, "the version written first is unchanged by the next write")
	stored, err := o.store.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	assert.Equal(t, stored, keptNow(), "what is kept is what is stored")
	assert.Equal(t, "changed in place", stored.Actions[0].LastError)
	assert.Equal(t, inc.Version, stored.Version, "the working copy carries the Version written")
}
