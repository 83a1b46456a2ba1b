package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
	"github.com/breachkit/breach/incident/pgstore"
)

// newPGStore returns a pgstore.Store on a migrated schema of its own, or
// skips (fails under CI) without a database.
func newPGStore(t *testing.T) incident.Store {
	t.Helper()
	url := os.Getenv("BREACH_POSTGRES_URL")
	if url == "" {
		msg := "set BREACH_POSTGRES_URL to run against PostgreSQL (eval \"$(bash .ci/postgres-setup.sh)\" starts one and prints the line)"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but BREACH_POSTGRES_URL is not: " + msg)
		}
		t.Skip(msg)
	}
	schema := fmt.Sprintf("register_%d", time.Now().UnixNano())
	openDB(t, url, schema) // creates the schema, dropped when the test passes
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, pgstore.Migrate(t.Context(), pool))
	s, err := pgstore.New(t.Context(), pool)
	require.NoError(t, err)
	return s
}

// TestOrchestratorList reads the register through the orchestrator, on
// MemStore and on PostgreSQL: open and ended incidents, newest first, in
// pages, filtered.
func TestOrchestratorList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) incident.Store
	}{
		{"MemStore", func(*testing.T) incident.Store { return incident.NewMemStore() }},
		{"pgstore", newPGStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.store(t)
			base := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
			var want []string
			for i := range 12 {
				inc := incidenttest.NewIncident(fmt.Sprintf("inc-%02d", i), fmt.Sprintf("key-%02d", i))
				inc.DetectedAt = base.Add(time.Duration(i) * time.Minute)
				if i%3 == 0 {
					inc.State = incident.StateClosed
				}
				require.NoError(t, s.Create(t.Context(), incident.Split(inc)))
				want = append([]string{inc.ID}, want...) // newest first
			}
			o, err := breach.New(s)
			require.NoError(t, err)

			var got []string
			f := incident.ListFilter{Limit: 5}
			for {
				p, err := o.List(t.Context(), f)
				require.NoError(t, err)
				for _, inc := range p.Incidents {
					got = append(got, inc.ID)
				}
				if p.Next == "" {
					break
				}
				f.Cursor = p.Next
			}
			assert.Equal(t, want, got, "every incident, open or ended, newest first")

			p, err := o.List(t.Context(), incident.ListFilter{States: []incident.State{incident.StateClosed}})
			require.NoError(t, err)
			var closed []string
			for _, inc := range p.Incidents {
				closed = append(closed, inc.ID)
			}
			assert.Equal(t, []string{"inc-09", "inc-06", "inc-03", "inc-00"}, closed)

			_, err = o.List(t.Context(), incident.ListFilter{Cursor: "not a cursor"})
			assert.ErrorIs(t, err, incident.ErrInvalidFilter)
		})
	}
}

// storeOnly hides every method of its store but those of incident.Store.
type storeOnly struct{ incident.Store }

func TestOrchestratorListNotSupported(t *testing.T) {
	o, err := breach.New(storeOnly{incident.NewMemStore()})
	require.NoError(t, err)
	_, err = o.List(t.Context(), incident.ListFilter{})
	require.ErrorIs(t, err, incident.ErrNotSupported)
	assert.Contains(t, err.Error(), "incident.Lister")
}

// badLister is a store whose List panics or never returns.
type badLister struct {
	incident.Store
	hang chan struct{} // nil: panic
}

func (b badLister) List(context.Context, incident.ListFilter) (incident.Page, error) {
	if b.hang == nil {
		panic("list exploded")
	}
	<-b.hang // ignores ctx, as a stuck driver would
	return incident.Page{}, nil
}

// TestOrchestratorListIsolated: a store's List that panics or hangs fails
// the call; the process lives on.
func TestOrchestratorListIsolated(t *testing.T) {
	o, err := breach.New(badLister{Store: incident.NewMemStore()})
	require.NoError(t, err)
	_, err = o.List(t.Context(), incident.ListFilter{})
	assert.ErrorIs(t, err, incident.ErrPanic)

	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	o, err = breach.New(badLister{Store: incident.NewMemStore(), hang: hang}, breach.WithStoreTimeout(50*time.Millisecond))
	require.NoError(t, err)
	_, err = o.List(t.Context(), incident.ListFilter{})
	assert.ErrorIs(t, err, incident.ErrTimeout)
}
