package incident_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func newIncident(id, key string) *incident.Incident {
	inc := &incident.Incident{
		ID:         id,
		Kind:       "apikey.compromised",
		Subject:    "key_" + id,
		DedupKey:   key,
		Severity:   incident.SeverityHigh,
		State:      incident.StateDetected,
		DetectedAt: t0,
		Attributes: map[string]string{"region": "eu"},
		Investigation: &incident.Investigation{Findings: incident.Findings{
			Notes: []string{"n1"},
			Impact: incident.Impact{Customers: []incident.Customer{{ID: "c1"}}, Affected: 1,
				Data: []incident.DataCategory{incident.DataAPIAccess}},
		}},
		Actions: []incident.ActionRecord{{Name: "revoke", Status: incident.ActionPending}},
	}
	inc.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened"})
	return inc
}

// create stores inc whole and returns its head as stored.
func create(t *testing.T, s *incident.MemStore, inc *incident.Incident) *incident.Incident {
	t.Helper()
	ch := incident.Split(inc)
	require.NoError(t, s.Create(t.Context(), ch))
	return ch.Head
}

func head(t *testing.T, s *incident.MemStore, id string) *incident.Incident {
	t.Helper()
	h, err := s.Head(t.Context(), id)
	require.NoError(t, err)
	return h
}

// apply writes h, a head changed, and returns the head as stored.
func apply(t *testing.T, s *incident.MemStore, h *incident.Incident) *incident.Incident {
	t.Helper()
	ch := incident.Split(h)
	require.NoError(t, s.Apply(t.Context(), ch))
	return ch.Head
}

func TestMemStoreCreateLoad(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := newIncident("i1", "k1")
	inc.Version = 7 // ignored
	ch := incident.Split(inc)
	require.NoError(t, s.Create(ctx, ch))
	assert.Equal(t, int64(1), ch.Head.Version, "Create sets the Version of the change's head")

	got, err := incident.Load(ctx, s, "i1")
	require.NoError(t, err)
	want := inc.Clone()
	want.Version = 1
	assert.Equal(t, want, got)

	h, err := s.Head(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, ch.Head, h)
	assert.NotSame(t, ch.Head, h)
	assert.Empty(t, h.Timeline)
	assert.Empty(t, h.Investigation.Impact.Customers)

	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err)
	assert.Equal(t, "i1", open.ID)
}

func TestMemStoreCreateDuplicateKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	first := create(t, s, newIncident("i1", "k1"))

	second := incident.Split(newIncident("i2", "k1"))
	err := s.Create(ctx, second)
	require.ErrorIs(t, err, incident.ErrDuplicate)
	var de *incident.DuplicateError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "i1", de.ExistingID)
	assert.Equal(t, "k1", de.DedupKey)
	assert.Equal(t, int64(0), second.Head.Version, "a failed Create leaves Version alone")
	_, err = s.Head(ctx, "i2")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.Entries(ctx, "i2", 0, 0)
	assert.ErrorIs(t, err, incident.ErrNotFound, "a refused Create writes no entries")

	// Closing the first frees the key.
	first.State = incident.StateClosed
	apply(t, s, first)
	_, err = s.FindOpen(ctx, "k1")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	require.NoError(t, s.Create(ctx, second))
	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err)
	assert.Equal(t, "i2", open.ID)
}

func TestMemStoreCreateClosedDoesNotHoldKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	for i, st := range []incident.State{incident.StateClosed, incident.StateDismissed} {
		inc := newIncident(fmt.Sprint("done", i), "k")
		inc.State = st
		create(t, s, inc)
	}
	_, err := s.FindOpen(ctx, "k")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	create(t, s, newIncident("open", "k"))
	err = s.Create(ctx, incident.Split(newIncident("open2", "k")))
	assert.ErrorIs(t, err, incident.ErrDuplicate)
}

func TestMemStoreCreateExistingID(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	create(t, s, newIncident("i1", "k1"))
	err := s.Create(ctx, incident.Split(newIncident("i1", "k2")))
	assert.ErrorIs(t, err, incident.ErrInvalidIncident)
	_, err = s.FindOpen(ctx, "k2")
	assert.ErrorIs(t, err, incident.ErrNotFound, "a rejected Create must not claim its key")
	tl, err := s.Entries(ctx, "i1", 0, 0)
	require.NoError(t, err)
	assert.Len(t, tl, 1, "a rejected Create must not append its entries to the incident with its ID")
}

func TestMemStoreApplyCAS(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	create(t, s, newIncident("i1", "k1"))

	a, b := head(t, s, "i1"), head(t, s, "i1")

	a.Summary = "winner"
	a.State = incident.StateInvestigating
	a = apply(t, s, a)
	assert.Equal(t, int64(2), a.Version, "Apply sets the Version of the change's head")

	b.Summary = "loser"
	b.State = incident.StateDismissed
	b.Record(incident.Entry{At: t0, Actor: "bob", Type: incident.EntryNote, Detail: "loser"})
	chb := incident.Split(b)
	err := s.Apply(ctx, chb)
	require.ErrorIs(t, err, incident.ErrConflict)
	var ce *incident.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "i1", ce.ID)
	assert.Equal(t, int64(1), ce.Expected)
	assert.Equal(t, int64(2), ce.Actual)
	assert.Equal(t, int64(1), chb.Head.Version, "the loser's Version is unchanged")

	got := head(t, s, "i1")
	assert.Equal(t, a, got, "the store holds the winner")
	assert.Equal(t, "winner", got.Summary)
	assert.Equal(t, int64(2), got.Version)
	tl, err := s.Entries(ctx, "i1", 0, 0)
	require.NoError(t, err)
	assert.Len(t, tl, 1, "the loser's entry is not written")
	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err, "the loser's dismissal must not free the key")
	assert.Equal(t, "i1", open.ID)

	// Re-reading and re-applying succeeds.
	b = head(t, s, "i1")
	b.Summary = "second"
	assert.Equal(t, int64(3), apply(t, s, b).Version)
}

func TestMemStoreApplyBumpsVersion(t *testing.T) {
	s := incident.NewMemStore()
	h := create(t, s, newIncident("i1", "k1"))
	for want := int64(2); want <= 5; want++ {
		h.Summary = fmt.Sprint("v", want)
		h = apply(t, s, h)
		assert.Equal(t, want, h.Version)
		got := head(t, s, "i1")
		assert.Equal(t, want, got.Version)
		assert.Equal(t, h.Summary, got.Summary)
	}
}

func TestMemStoreReturnsCopies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*incident.Incident)
	}{
		{"Actions", func(i *incident.Incident) { i.Actions[0].Status = incident.ActionApplied }},
		{"Attributes", func(i *incident.Incident) { i.Attributes["region"] = "us" }},
		{"Attributes add", func(i *incident.Incident) { i.Attributes["new"] = "x" }},
		{"Investigation.Impact.Data", func(i *incident.Incident) { i.Investigation.Impact.Data[0] = "x" }},
		{"Investigation.Notes", func(i *incident.Incident) { i.Investigation.Notes[0] = "x" }},
		{"Investigation pointer", func(i *incident.Incident) { i.Investigation.RootCause = "x" }},
		{"Record", func(i *incident.Incident) { i.Record(incident.Entry{Type: incident.EntryNote, Detail: "extra"}) }},
		{"scalar", func(i *incident.Incident) { i.Summary = "x" }},
	}
	getters := []struct {
		name string
		get  func(*testing.T, context.Context, *incident.MemStore) *incident.Incident
	}{
		{"Head", func(t *testing.T, ctx context.Context, s *incident.MemStore) *incident.Incident {
			inc, err := s.Head(ctx, "i1")
			require.NoError(t, err)
			return inc
		}},
		{"FindOpen", func(t *testing.T, ctx context.Context, s *incident.MemStore) *incident.Incident {
			inc, err := s.FindOpen(ctx, "k1")
			require.NoError(t, err)
			return inc
		}},
		{"ListOpen", func(t *testing.T, ctx context.Context, s *incident.MemStore) *incident.Incident {
			incs, err := s.ListOpen(ctx)
			require.NoError(t, err)
			require.Len(t, incs, 1)
			return incs[0]
		}},
	}
	for _, tt := range tests {
		for _, g := range getters {
			t.Run(g.name+" "+tt.name, func(t *testing.T) {
				ctx := t.Context()
				s := incident.NewMemStore()
				create(t, s, newIncident("i1", "k1"))
				want := g.get(t, ctx, s)
				out := g.get(t, ctx, s)
				tt.mutate(out)
				require.NotEqual(t, want, out, "the mutation must change something")
				assert.Equal(t, want, g.get(t, ctx, s))
			})
		}
		t.Run("Create argument "+tt.name, func(t *testing.T) {
			s := incident.NewMemStore()
			in := create(t, s, newIncident("i1", "k1"))
			want := in.Clone()
			tt.mutate(in)
			assert.Equal(t, want, head(t, s, "i1"))
		})
		t.Run("Apply argument "+tt.name, func(t *testing.T) {
			s := incident.NewMemStore()
			in := create(t, s, newIncident("i1", "k1"))
			in.Summary = "updated"
			in = apply(t, s, in)
			want := in.Clone()
			tt.mutate(in)
			assert.Equal(t, want, head(t, s, "i1"))
		})
	}
}

// TestMemStoreReturnsCopiesOfParts: the pages of entries, deliveries and
// customers are the caller's, and so are the parts of a change once
// applied.
func TestMemStoreReturnsCopiesOfParts(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := newIncident("i1", "k1")
	inc.Deliveries = []incident.Delivery{{Recipient: "c1", Channel: "email", IdempotencyKey: "d1", Status: incident.DeliveryClaimed}}
	ch := incident.Split(inc)
	require.NoError(t, s.Create(ctx, ch))
	want, err := incident.Load(ctx, s, "i1")
	require.NoError(t, err)

	ch.Entries[0].Detail = "forged"
	ch.Deliveries[0].Status = incident.DeliverySent
	ch.Customers[0].ID = "c-forged"
	tl, err := s.Entries(ctx, "i1", 0, 0)
	require.NoError(t, err)
	tl[0].Detail = "forged"
	ds, err := s.Deliveries(ctx, "i1", incident.DeliveryQuery{})
	require.NoError(t, err)
	ds[0].Status = incident.DeliveryFailed
	ds, err = s.Deliveries(ctx, "i1", incident.DeliveryQuery{Keys: []string{"d1"}})
	require.NoError(t, err)
	ds[0].Attempts = 9
	cs, err := s.Customers(ctx, "i1", "", 0)
	require.NoError(t, err)
	cs[0].Name = "forged"

	got, err := incident.Load(ctx, s, "i1")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.NoError(t, got.Timeline.VerifyHead(got.Chain.Head))
}

func TestMemStoreNotFound(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	create(t, s, newIncident("i1", "k1"))

	_, err := s.Head(ctx, "nope")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	ch := incident.Split(newIncident("nope", "k9"))
	ch.Head.Version = 1
	assert.ErrorIs(t, s.Apply(ctx, ch), incident.ErrNotFound)
	_, err = s.Entries(ctx, "nope", 0, 0)
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.Deliveries(ctx, "nope", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.Customers(ctx, "nope", "", 0)
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.FindOpen(ctx, "k9")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.FindOpen(ctx, "")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.FindOpen(ctx, "k9")
	assert.NotErrorIs(t, err, incident.ErrInvalidIncident)
}

func TestMemStoreListOpen(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	mk := func(id, key string, at time.Time, st incident.State) {
		inc := newIncident(id, key)
		inc.DetectedAt = at
		inc.State = st
		create(t, s, inc)
	}
	mk("c", "k-c", t0.Add(time.Hour), incident.StateInvestigating)
	mk("b", "k-b", t0, incident.StateDetected)
	mk("a", "k-a", t0, incident.StateEscalated)
	mk("z", "k-z", t0.Add(-time.Hour), incident.StateContained)
	mk("closed", "k-closed", t0.Add(-2*time.Hour), incident.StateClosed)
	mk("dismissed", "k-dismissed", t0.Add(-3*time.Hour), incident.StateDismissed)
	mk("d", "k-d", t0.Add(30*time.Minute), incident.StateResolved)

	list, err := s.ListOpen(ctx)
	require.NoError(t, err)
	var ids []string
	for _, inc := range list {
		ids = append(ids, inc.ID)
		assert.True(t, inc.State.Open())
	}
	assert.Equal(t, []string{"z", "a", "b", "d", "c"}, ids)

	// Closing one removes it; reopening puts it back.
	inc := head(t, s, "a")
	inc.State = incident.StateDismissed
	apply(t, s, inc)
	list, err = s.ListOpen(ctx)
	require.NoError(t, err)
	ids = ids[:0]
	for _, inc := range list {
		ids = append(ids, inc.ID)
	}
	assert.Equal(t, []string{"z", "b", "d", "c"}, ids)

	empty, err := incident.NewMemStore().ListOpen(ctx)
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestSortByDetected(t *testing.T) {
	incs := []*incident.Incident{
		{ID: "b", DetectedAt: t0},
		{ID: "c", DetectedAt: t0.Add(-time.Second)},
		{ID: "a", DetectedAt: t0},
		{ID: "d", DetectedAt: t0.Add(time.Second)},
	}
	incidenttest.SortByDetected(incs)
	var ids []string
	for _, inc := range incs {
		ids = append(ids, inc.ID)
	}
	assert.Equal(t, []string{"c", "a", "b", "d"}, ids)
}

func TestMemStoreInvalidIncident(t *testing.T) {
	tests := []struct {
		name string
		inc  *incident.Incident
	}{
		{"nil", nil},
		{"empty ID", newIncident("", "k")},
		{"empty DedupKey", newIncident("i", "")},
		{"empty State", func() *incident.Incident { i := newIncident("i", "k"); i.State = ""; return i }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := incident.NewMemStore()
			assert.ErrorIs(t, s.Create(ctx, incident.Split(tt.inc)), incident.ErrInvalidIncident)
			assert.ErrorIs(t, s.Apply(ctx, incident.Split(tt.inc)), incident.ErrInvalidIncident)
			list, err := s.ListOpen(ctx)
			require.NoError(t, err)
			assert.Empty(t, list)
		})
	}
	t.Run("update that empties a field", func(t *testing.T) {
		ctx := t.Context()
		s := incident.NewMemStore()
		inc := create(t, s, newIncident("i", "k"))
		inc.DedupKey = ""
		assert.ErrorIs(t, s.Apply(ctx, incident.Split(inc)), incident.ErrInvalidIncident)
		assert.Equal(t, "k", head(t, s, "i").DedupKey)
	})
	t.Run("chain that does not continue", func(t *testing.T) {
		ctx := t.Context()
		s := incident.NewMemStore()
		inc := create(t, s, newIncident("i", "k"))
		inc.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryNote})
		ch := incident.Split(inc)
		ch.Head.Chain.Len++
		assert.ErrorIs(t, s.Apply(ctx, ch), incident.ErrInvalidIncident)
		assert.Equal(t, 1, head(t, s, "i").Chain.Len)
	})
}

func TestMemStoreCancelledContext(t *testing.T) {
	s := incident.NewMemStore()
	create(t, s, newIncident("i1", "k1"))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, s.Create(ctx, incident.Split(newIncident("i2", "k2"))), context.Canceled)
	_, err := s.Head(ctx, "i1")
	assert.ErrorIs(t, err, context.Canceled)
	inc := newIncident("i1", "k1")
	inc.Version = 1
	inc.Summary = "changed"
	assert.ErrorIs(t, s.Apply(ctx, incident.Split(inc)), context.Canceled)
	_, err = s.FindOpen(ctx, "k1")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListOpen(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Entries(ctx, "i1", 0, 0)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Deliveries(ctx, "i1", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Customers(ctx, "i1", "", 0)
	assert.ErrorIs(t, err, context.Canceled)

	// Nothing changed.
	_, err = s.Head(t.Context(), "i2")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	got := head(t, s, "i1")
	assert.Empty(t, got.Summary)
	assert.Equal(t, int64(1), got.Version)

	dctx, dcancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer dcancel()
	_, err = s.Head(dctx, "i1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestMemStoreReopenWhileKeyTaken(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	old := create(t, s, newIncident("old", "k"))
	old.State = incident.StateClosed
	old = apply(t, s, old)
	create(t, s, newIncident("new", "k"))

	old.State = incident.StateInvestigating
	ch := incident.Split(old)
	err := s.Apply(ctx, ch)
	require.ErrorIs(t, err, incident.ErrDuplicate)
	var de *incident.DuplicateError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "new", de.ExistingID)
	assert.Equal(t, "k", de.DedupKey)
	assert.Equal(t, int64(2), ch.Head.Version, "a refused update leaves Version alone")

	assert.Equal(t, incident.StateClosed, head(t, s, "old").State)
	open, err := s.FindOpen(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", open.ID)

	// Once the new one is closed, the old one can be reopened.
	nw := head(t, s, "new")
	nw.State = incident.StateClosed
	apply(t, s, nw)
	apply(t, s, old)
	open, err = s.FindOpen(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "old", open.ID)
}

func TestMemStoreApplyChangesDedupKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := create(t, s, newIncident("i1", "k1"))
	create(t, s, newIncident("i2", "k2"))

	inc.DedupKey = "k2"
	assert.ErrorIs(t, s.Apply(ctx, incident.Split(inc)), incident.ErrDuplicate)
	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err, "a refused update keeps the old key")
	assert.Equal(t, "i1", open.ID)

	inc.DedupKey = "k3"
	apply(t, s, inc)
	_, err = s.FindOpen(ctx, "k1")
	assert.ErrorIs(t, err, incident.ErrNotFound, "the old key is freed")
	open, err = s.FindOpen(ctx, "k3")
	require.NoError(t, err)
	assert.Equal(t, "i1", open.ID)
}

func TestMemStoreConcurrentCreateSameKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	const n = 100
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Create(ctx, incident.Split(newIncident(fmt.Sprint("i", i), "same")))
		})
	}
	close(start)
	wg.Wait()

	var ok, dup int
	var winner string
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			winner = fmt.Sprint("i", i)
		case assert.ErrorIs(t, err, incident.ErrDuplicate):
			dup++
		}
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, n-1, dup)
	open, err := s.FindOpen(ctx, "same")
	require.NoError(t, err)
	assert.Equal(t, winner, open.ID)
	for i, err := range errs {
		var de *incident.DuplicateError
		if err != nil && assert.ErrorAs(t, err, &de) {
			assert.Equal(t, winner, de.ExistingID, "loser %d", i)
		}
	}
}

func TestMemStoreConcurrentApplys(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	create(t, s, newIncident("i1", "k1"))
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			for {
				inc, err := s.Head(ctx, "i1")
				if !assert.NoError(t, err) {
					return
				}
				inc.Attributes["n"] += "x"
				inc.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryNote})
				err = s.Apply(ctx, incident.Split(inc))
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
					return
				}
				if !assert.ErrorIs(t, err, incident.ErrConflict) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, n, wins)
	got, err := incident.Load(ctx, s, "i1")
	require.NoError(t, err)
	assert.Equal(t, int64(n+1), got.Version)
	assert.Len(t, got.Attributes["n"], n, "no update was lost")
	assert.Len(t, got.Timeline, n+1, "one entry per update")
	assert.NoError(t, got.Timeline.VerifyHead(got.Chain.Head))
}

func TestMemStoreZeroValue(t *testing.T) {
	ctx := t.Context()
	t.Run("reads", func(t *testing.T) {
		var s incident.MemStore
		_, err := s.Head(ctx, "x")
		assert.ErrorIs(t, err, incident.ErrNotFound)
		_, err = s.FindOpen(ctx, "x")
		assert.ErrorIs(t, err, incident.ErrNotFound)
		list, err := s.ListOpen(ctx)
		require.NoError(t, err)
		assert.Empty(t, list)
		_, err = s.Entries(ctx, "x", 0, 0)
		assert.ErrorIs(t, err, incident.ErrNotFound)
		ch := incident.Split(newIncident("x", "k"))
		ch.Head.Version = 1
		assert.ErrorIs(t, s.Apply(ctx, ch), incident.ErrNotFound)
		held, err := s.Renew(ctx, "alice", time.Minute)
		require.NoError(t, err)
		assert.Empty(t, held)
		ids, err := s.Orphans(ctx, 0)
		require.NoError(t, err)
		assert.Empty(t, ids)
	})
	t.Run("writes", func(t *testing.T) {
		var s incident.MemStore
		inc := newIncident("i1", "k1")
		ch := incident.Split(inc)
		require.NoError(t, s.Create(ctx, ch))
		ch.Head.State = incident.StateInvestigating
		require.NoError(t, s.Apply(ctx, incident.Change{Head: ch.Head}))
		got, err := s.Head(ctx, "i1")
		require.NoError(t, err)
		assert.Equal(t, incident.StateInvestigating, got.State)
		assert.Equal(t, int64(2), got.Version)
	})
}

func TestStoreErrorMessages(t *testing.T) {
	assert.Equal(t, `incident i1: version conflict: have 1, store has 2`,
		(&incident.ConflictError{ID: "i1", Expected: 1, Actual: 2}).Error())
	assert.Equal(t, `incident: open incident i1 already has dedup key "k"`,
		(&incident.DuplicateError{DedupKey: "k", ExistingID: "i1"}).Error())
	assert.NotErrorIs(t, &incident.ConflictError{}, incident.ErrDuplicate)
	assert.NotErrorIs(t, &incident.DuplicateError{}, incident.ErrConflict)
}

// TestMemStoreEndRacesReopen: an incident ending races a Create of its
// dedup key, a change to it that keeps it open, a Renew of its lease and
// readers. Each round, the key has at most one open incident, FindOpen
// and ListOpen never return an ended head, the Create succeeds exactly
// when it came after the end, and the lease goes with the end. MemStore
// takes its store-wide lock only for the changes that file or unfile an
// open dedup key; this checks that the others cannot slip past them.
func TestMemStoreEndRacesReopen(t *testing.T) {
	const rounds = 200
	s := incident.NewMemStore()
	ctx := t.Context()
	for round := range rounds {
		key := fmt.Sprintf("apikey.compromised/key_%d", round)
		a := create(t, s, newIncident(fmt.Sprintf("a-%d", round), key))
		ok, err := s.Lease(ctx, a.ID, "replica-1", time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ended := a.Clone()
		ended.State = incident.StateClosed
		kept := a.Clone()
		kept.Summary = "still open"
		b := newIncident(fmt.Sprintf("b-%d", round), key)

		start := make(chan struct{})
		var wg sync.WaitGroup
		var endErr, keptErr, createErr error
		var created bool
		var renewed map[string]int64
		wg.Go(func() { <-start; endErr = s.Apply(ctx, incident.Split(ended)) })
		wg.Go(func() { <-start; keptErr = s.Apply(ctx, incident.Split(kept)) })
		wg.Go(func() {
			<-start
			createErr = s.Create(ctx, incident.Split(b))
			created = createErr == nil
		})
		wg.Go(func() {
			<-start
			var err error
			renewed, err = s.Renew(ctx, "replica-1", time.Minute)
			assert.NoError(t, err)
		})
		wg.Go(func() {
			<-start
			for range 4 {
				if h, err := s.FindOpen(ctx, key); err == nil {
					assert.True(t, h.State.Open(), "round %d: FindOpen returned %s", round, h.State)
				}
				open, err := s.ListOpen(ctx)
				assert.NoError(t, err)
				for _, h := range open {
					assert.True(t, h.State.Open(), "round %d: ListOpen returned %s %s", round, h.ID, h.State)
				}
			}
		})
		close(start)
		wg.Wait()

		// The end and the change that keeps it open start from one Version:
		// exactly one lands.
		require.True(t, (endErr == nil) != (keptErr == nil), "round %d: end %v, kept %v", round, endErr, keptErr)
		if createErr != nil {
			require.ErrorIs(t, createErr, incident.ErrDuplicate, "round %d", round)
		}
		if v, ok := renewed[a.ID]; ok && v != 1 {
			// A lease renewed is one the end had not given up yet: the
			// Version it returns is the first, or the change that kept
			// the incident open.
			assert.NoError(t, keptErr, "round %d: Renew returned the lease with the ended head's Version %d", round, v)
		}
		got, err := s.FindOpen(ctx, key)
		switch {
		case created:
			require.NoError(t, endErr, "round %d: the Create landed, so the incident holding the key ended first", round)
			require.NoError(t, err)
			assert.Equal(t, b.ID, got.ID, "round %d", round)
		case endErr == nil:
			assert.ErrorIs(t, err, incident.ErrNotFound, "round %d: ended and not re-created", round)
		default:
			require.NoError(t, err)
			assert.Equal(t, a.ID, got.ID, "round %d", round)
		}
		orphans, err := s.Orphans(ctx, 0)
		require.NoError(t, err)
		if endErr == nil {
			held, err := s.Renew(ctx, "replica-1", time.Minute)
			require.NoError(t, err)
			assert.NotContains(t, held, a.ID, "round %d: the end gives the lease up", round)
			assert.NotContains(t, orphans, a.ID, "round %d: an ended incident is no orphan", round)
		}
	}
}

// TestMemStoreEffectsFoundByKeyAtAnySize: MemStore finds deliveries and
// customers by scanning while an incident has few and by an index once it
// has more than a few; either way a key finds its item, a rewrite replaces
// it in place, and pages start after the key given.
func TestMemStoreEffectsFoundByKeyAtAnySize(t *testing.T) {
	for _, n := range []int{1, 8, 9, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := incident.NewMemStore()
			ctx := t.Context()
			inc := newIncident("inc-1", "key-1")
			inc.Investigation.Impact.Customers = nil
			for i := range n {
				inc.Investigation.Impact.Customers = append(inc.Investigation.Impact.Customers, incident.Customer{ID: fmt.Sprintf("cust-%02d", i)})
				inc.Deliveries = append(inc.Deliveries, incident.Delivery{Recipient: fmt.Sprintf("cust-%02d", i), Channel: "email",
					IdempotencyKey: fmt.Sprintf("del-%02d", i), Status: incident.DeliveryClaimed})
			}
			inc.Investigation.Impact.Affected = n
			h := create(t, s, inc)
			// Rewrite the last delivery and customer, and add one of each.
			last := fmt.Sprintf("%02d", n-1)
			h.Deliveries = []incident.Delivery{
				{Recipient: "cust-" + last, Channel: "email", IdempotencyKey: "del-" + last, Status: incident.DeliverySent, Attempts: 1},
				{Recipient: "cust-new", Channel: "email", IdempotencyKey: "del-new", Status: incident.DeliveryClaimed},
			}
			h.Investigation.Impact.Customers = []incident.Customer{{ID: "cust-" + last, Email: "rewritten@example.com"}, {ID: "cust-new"}}
			apply(t, s, h)

			got, err := s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Keys: []string{"del-" + last, "del-00", "del-new", "del-missing"}})
			require.NoError(t, err)
			require.Len(t, got, 3)
			assert.Equal(t, incident.DeliverySent, got[0].Status, "the rewrite replaced it")
			assert.Equal(t, "del-00", got[1].IdempotencyKey)
			assert.Equal(t, "del-new", got[2].IdempotencyKey)
			all, err := s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Limit: 1000})
			require.NoError(t, err)
			assert.Len(t, all, n+1, "a rewrite adds no delivery")
			after, err := s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{After: "del-" + last, Limit: 1000})
			require.NoError(t, err)
			require.Len(t, after, 1)
			assert.Equal(t, "del-new", after[0].IdempotencyKey)

			custs, err := s.Customers(ctx, "inc-1", "", 1000)
			require.NoError(t, err)
			require.Len(t, custs, n+1, "a rewrite adds no customer")
			assert.Equal(t, "rewritten@example.com", custs[n-1].Email)
			rest, err := s.Customers(ctx, "inc-1", "cust-"+last, 1000)
			require.NoError(t, err)
			require.Len(t, rest, 1)
			assert.Equal(t, "cust-new", rest[0].ID)
			none, err := s.Customers(ctx, "inc-1", "cust-missing", 1000)
			require.NoError(t, err)
			assert.Empty(t, none)
		})
	}
}

// TestMemStoreRefusesAFrozenHeadTwice: MemStore keeps a frozen head as the
// stored version; handed to a write again (frozen or not), it is refused
// before its Version is touched, so the stored version and what its caller
// kept stay as they were while readers copy it.
func TestMemStoreRefusesAFrozenHeadTwice(t *testing.T) {
	for _, frozen := range []bool{true, false} {
		t.Run(fmt.Sprint("frozen=", frozen), func(t *testing.T) {
			ctx := context.Background()
			s := incident.NewMemStore()
			ch := incident.Split(newIncident("i1", "k1"))
			ch.Frozen = true
			require.NoError(t, s.Create(ctx, ch))
			h := ch.Head
			want := h.Clone()

			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = s.Head(ctx, "i1") // copies the stored version, under -race
					}
				}
			})
			again := incident.Change{Head: h, Frozen: frozen,
				Deliveries: []incident.Delivery{{IdempotencyKey: "d1", Recipient: "c1", Channel: "email", Status: incident.DeliveryClaimed}}}
			err := s.Apply(ctx, again)
			close(stop)
			wg.Wait()
			assert.ErrorIs(t, err, incident.ErrInvalidIncident)
			assert.Equal(t, want, h, "the version kept by its caller is unchanged")
			assert.EqualValues(t, 1, head(t, s, "i1").Version)
			ds, err := s.Deliveries(ctx, "i1", incident.DeliveryQuery{})
			require.NoError(t, err)
			assert.Empty(t, ds, "the refused change wrote nothing")
		})
	}
}
