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
			Notes:  []string{"n1"},
			Impact: incident.Impact{Customers: []incident.Customer{{ID: "c1"}}, Data: []incident.DataCategory{incident.DataAPIAccess}},
		}},
		Actions: []incident.ActionRecord{{Name: "revoke", Status: incident.ActionPending}},
	}
	inc.Timeline.Append(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened"})
	return inc
}

func TestMemStoreCreateGet(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := newIncident("i1", "k1")
	inc.Version = 7 // ignored
	require.NoError(t, s.Create(ctx, inc))
	assert.Equal(t, int64(1), inc.Version, "Create sets the caller's Version")

	got, err := s.Get(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, int64(1), got.Version)
	assert.Equal(t, inc, got)
	assert.NotSame(t, inc, got)

	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err)
	assert.Equal(t, "i1", open.ID)
}

func TestMemStoreCreateDuplicateKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	first := newIncident("i1", "k1")
	require.NoError(t, s.Create(ctx, first))

	second := newIncident("i2", "k1")
	err := s.Create(ctx, second)
	require.ErrorIs(t, err, incident.ErrDuplicate)
	var de *incident.DuplicateError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "i1", de.ExistingID)
	assert.Equal(t, "k1", de.DedupKey)
	assert.Equal(t, int64(0), second.Version, "a failed Create leaves Version alone")
	_, err = s.Get(ctx, "i2")
	assert.ErrorIs(t, err, incident.ErrNotFound)

	// Closing the first frees the key.
	first.State = incident.StateClosed
	require.NoError(t, s.Update(ctx, first))
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
		require.NoError(t, s.Create(ctx, inc))
	}
	_, err := s.FindOpen(ctx, "k")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	require.NoError(t, s.Create(ctx, newIncident("open", "k")))
	err = s.Create(ctx, newIncident("open2", "k"))
	assert.ErrorIs(t, err, incident.ErrDuplicate)
}

func TestMemStoreCreateExistingID(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	require.NoError(t, s.Create(ctx, newIncident("i1", "k1")))
	err := s.Create(ctx, newIncident("i1", "k2"))
	assert.ErrorIs(t, err, incident.ErrInvalidIncident)
	_, err = s.FindOpen(ctx, "k2")
	assert.ErrorIs(t, err, incident.ErrNotFound, "a rejected Create must not claim its key")
}

func TestMemStoreUpdateCAS(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	require.NoError(t, s.Create(ctx, newIncident("i1", "k1")))

	a, err := s.Get(ctx, "i1")
	require.NoError(t, err)
	b, err := s.Get(ctx, "i1")
	require.NoError(t, err)

	a.Summary = "winner"
	a.State = incident.StateInvestigating
	require.NoError(t, s.Update(ctx, a))
	assert.Equal(t, int64(2), a.Version, "Update sets the caller's Version")

	b.Summary = "loser"
	b.State = incident.StateDismissed
	err = s.Update(ctx, b)
	require.ErrorIs(t, err, incident.ErrConflict)
	var ce *incident.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "i1", ce.ID)
	assert.Equal(t, int64(1), ce.Expected)
	assert.Equal(t, int64(2), ce.Actual)
	assert.Equal(t, int64(1), b.Version, "the loser's Version is unchanged")

	got, err := s.Get(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, a, got, "the store holds the winner")
	assert.Equal(t, "winner", got.Summary)
	assert.Equal(t, int64(2), got.Version)
	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err, "the loser's dismissal must not free the key")
	assert.Equal(t, "i1", open.ID)

	// Re-reading and re-applying succeeds.
	b, err = s.Get(ctx, "i1")
	require.NoError(t, err)
	b.Summary = "second"
	require.NoError(t, s.Update(ctx, b))
	assert.Equal(t, int64(3), b.Version)
}

func TestMemStoreUpdateBumpsVersion(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := newIncident("i1", "k1")
	require.NoError(t, s.Create(ctx, inc))
	for want := int64(2); want <= 5; want++ {
		inc.Summary = fmt.Sprint("v", want)
		require.NoError(t, s.Update(ctx, inc))
		assert.Equal(t, want, inc.Version)
		got, err := s.Get(ctx, "i1")
		require.NoError(t, err)
		assert.Equal(t, want, got.Version)
		assert.Equal(t, inc.Summary, got.Summary)
	}
}

func TestMemStoreReturnsCopies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*incident.Incident)
	}{
		{"Timeline", func(i *incident.Incident) { i.Timeline[0].Detail = "forged" }},
		{"Timeline append", func(i *incident.Incident) {
			i.Timeline.Append(incident.Entry{Type: incident.EntryNote, Detail: "extra"})
		}},
		{"Actions", func(i *incident.Incident) { i.Actions[0].Status = incident.ActionApplied }},
		{"Attributes", func(i *incident.Incident) { i.Attributes["region"] = "us" }},
		{"Attributes add", func(i *incident.Incident) { i.Attributes["new"] = "x" }},
		{"Investigation.Impact.Customers", func(i *incident.Incident) {
			i.Investigation.Impact.Customers[0].ID = "c-forged"
		}},
		{"Investigation.Impact.Data", func(i *incident.Incident) { i.Investigation.Impact.Data[0] = "x" }},
		{"Investigation.Notes", func(i *incident.Incident) { i.Investigation.Notes[0] = "x" }},
		{"Investigation pointer", func(i *incident.Incident) { i.Investigation.RootCause = "x" }},
		{"scalar", func(i *incident.Incident) { i.Summary = "x" }},
	}
	getters := []struct {
		name string
		get  func(*testing.T, context.Context, *incident.MemStore) *incident.Incident
	}{
		{"Get", func(t *testing.T, ctx context.Context, s *incident.MemStore) *incident.Incident {
			inc, err := s.Get(ctx, "i1")
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
				require.NoError(t, s.Create(ctx, newIncident("i1", "k1")))
				want := g.get(t, ctx, s)
				out := g.get(t, ctx, s)
				tt.mutate(out)
				require.NotEqual(t, want, out, "the mutation must change something")
				assert.Equal(t, want, g.get(t, ctx, s))
			})
		}
		t.Run("Create argument "+tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := incident.NewMemStore()
			in := newIncident("i1", "k1")
			require.NoError(t, s.Create(ctx, in))
			want := in.Clone()
			tt.mutate(in)
			got, err := s.Get(ctx, "i1")
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
		t.Run("Update argument "+tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := incident.NewMemStore()
			in := newIncident("i1", "k1")
			require.NoError(t, s.Create(ctx, in))
			in.Summary = "updated"
			require.NoError(t, s.Update(ctx, in))
			want := in.Clone()
			tt.mutate(in)
			got, err := s.Get(ctx, "i1")
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func TestMemStoreNotFound(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	require.NoError(t, s.Create(ctx, newIncident("i1", "k1")))

	_, err := s.Get(ctx, "nope")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	err = s.Update(ctx, newIncident("nope", "k9"))
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
		require.NoError(t, s.Create(ctx, inc))
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
	inc, err := s.Get(ctx, "a")
	require.NoError(t, err)
	inc.State = incident.StateDismissed
	require.NoError(t, s.Update(ctx, inc))
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
			assert.ErrorIs(t, s.Create(ctx, tt.inc), incident.ErrInvalidIncident)
			assert.ErrorIs(t, s.Update(ctx, tt.inc), incident.ErrInvalidIncident)
			list, err := s.ListOpen(ctx)
			require.NoError(t, err)
			assert.Empty(t, list)
		})
	}
	t.Run("update that empties a field", func(t *testing.T) {
		ctx := t.Context()
		s := incident.NewMemStore()
		inc := newIncident("i", "k")
		require.NoError(t, s.Create(ctx, inc))
		inc.DedupKey = ""
		assert.ErrorIs(t, s.Update(ctx, inc), incident.ErrInvalidIncident)
		got, err := s.Get(ctx, "i")
		require.NoError(t, err)
		assert.Equal(t, "k", got.DedupKey)
	})
}

func TestMemStoreCancelledContext(t *testing.T) {
	s := incident.NewMemStore()
	require.NoError(t, s.Create(t.Context(), newIncident("i1", "k1")))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, s.Create(ctx, newIncident("i2", "k2")), context.Canceled)
	_, err := s.Get(ctx, "i1")
	assert.ErrorIs(t, err, context.Canceled)
	inc := newIncident("i1", "k1")
	inc.Version = 1
	inc.Summary = "changed"
	assert.ErrorIs(t, s.Update(ctx, inc), context.Canceled)
	_, err = s.FindOpen(ctx, "k1")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListOpen(ctx)
	assert.ErrorIs(t, err, context.Canceled)

	// Nothing changed.
	_, err = s.Get(t.Context(), "i2")
	assert.ErrorIs(t, err, incident.ErrNotFound)
	got, err := s.Get(t.Context(), "i1")
	require.NoError(t, err)
	assert.Empty(t, got.Summary)
	assert.Equal(t, int64(1), got.Version)

	dctx, dcancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer dcancel()
	_, err = s.Get(dctx, "i1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestMemStoreReopenWhileKeyTaken(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	old := newIncident("old", "k")
	require.NoError(t, s.Create(ctx, old))
	old.State = incident.StateClosed
	require.NoError(t, s.Update(ctx, old))
	require.NoError(t, s.Create(ctx, newIncident("new", "k")))

	old.State = incident.StateInvestigating
	err := s.Update(ctx, old)
	require.ErrorIs(t, err, incident.ErrDuplicate)
	var de *incident.DuplicateError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "new", de.ExistingID)
	assert.Equal(t, "k", de.DedupKey)
	assert.Equal(t, int64(2), old.Version, "a refused update leaves Version alone")

	got, err := s.Get(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, incident.StateClosed, got.State)
	open, err := s.FindOpen(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", open.ID)

	// Once the new one is closed, the old one can be reopened.
	nw, err := s.Get(ctx, "new")
	require.NoError(t, err)
	nw.State = incident.StateClosed
	require.NoError(t, s.Update(ctx, nw))
	require.NoError(t, s.Update(ctx, old))
	open, err = s.FindOpen(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "old", open.ID)
}

func TestMemStoreUpdateChangesDedupKey(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	inc := newIncident("i1", "k1")
	require.NoError(t, s.Create(ctx, inc))
	require.NoError(t, s.Create(ctx, newIncident("i2", "k2")))

	inc.DedupKey = "k2"
	assert.ErrorIs(t, s.Update(ctx, inc), incident.ErrDuplicate)
	open, err := s.FindOpen(ctx, "k1")
	require.NoError(t, err, "a refused update keeps the old key")
	assert.Equal(t, "i1", open.ID)

	inc.DedupKey = "k3"
	require.NoError(t, s.Update(ctx, inc))
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
			errs[i] = s.Create(ctx, newIncident(fmt.Sprint("i", i), "same"))
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

func TestMemStoreConcurrentUpdates(t *testing.T) {
	ctx := t.Context()
	s := incident.NewMemStore()
	require.NoError(t, s.Create(ctx, newIncident("i1", "k1")))
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			for {
				inc, err := s.Get(ctx, "i1")
				if !assert.NoError(t, err) {
					return
				}
				inc.Attributes["n"] += "x"
				err = s.Update(ctx, inc)
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
	got, err := s.Get(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, int64(n+1), got.Version)
	assert.Len(t, got.Attributes["n"], n, "no update was lost")
}

func TestMemStoreZeroValue(t *testing.T) {
	ctx := t.Context()
	t.Run("reads", func(t *testing.T) {
		var s incident.MemStore
		_, err := s.Get(ctx, "x")
		assert.ErrorIs(t, err, incident.ErrNotFound)
		_, err = s.FindOpen(ctx, "x")
		assert.ErrorIs(t, err, incident.ErrNotFound)
		list, err := s.ListOpen(ctx)
		require.NoError(t, err)
		assert.Empty(t, list)
		assert.ErrorIs(t, s.Update(ctx, newIncident("x", "k")), incident.ErrNotFound)
	})
	t.Run("writes", func(t *testing.T) {
		var s incident.MemStore
		inc := newIncident("i1", "k1")
		require.NoError(t, s.Create(ctx, inc))
		inc.State = incident.StateInvestigating
		require.NoError(t, s.Update(ctx, inc))
		got, err := s.Get(ctx, "i1")
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
