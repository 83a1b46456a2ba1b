package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
	"github.com/breachkit/breach/incident/pgstore"
)

// urlEnv names the database the tests run against.
const urlEnv = "BREACH_POSTGRES_URL"

// newStore returns a migrated Store in a schema of its own, dropped when the
// test ends, so that each store starts empty.
func newStore(t *testing.T) *pgstore.Store {
	t.Helper()
	pool := newPool(t)
	require.NoError(t, pgstore.Migrate(t.Context(), pool))
	s, err := pgstore.New(t.Context(), pool)
	require.NoError(t, err)
	return s
}

// schemaSeq tells apart the schemas of tests started in one nanosecond.
var schemaSeq atomic.Int64

// newPool returns a pool on an empty schema of its own (the first of its
// search_path), dropped when the test ends.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := databaseURL(t)
	ctx := context.Background()
	schema := fmt.Sprintf("test_%d_%d", time.Now().UnixNano(), schemaSeq.Add(1))
	admin, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		assert.NoError(t, err, "dropping the test schema")
	})

	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 24 // the concurrency checks run 50 writers at once
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// databaseURL returns the URL of the test database. Without one the test
// skips, saying how to get one, except under CI (CI set), where a missing
// database is a failure: a CI run that skipped every check would pass.
func databaseURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(urlEnv)
	if url == "" {
		msg := "set " + urlEnv + "=postgres://breach:breach@127.0.0.1:5432/breach?sslmode=disable to run against PostgreSQL; " +
			".ci/run does this (eval \"$(bash .ci/postgres-setup.sh)\" starts one and prints the line)"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but " + urlEnv + " is not: " + msg)
		}
		t.Skip(msg)
	}
	return url
}

func TestStore(t *testing.T) {
	databaseURL(t)
	incidenttest.TestStore(t, func(t *testing.T) incident.Store { return newStore(t) })
}

// expire makes every lease on id run out now, by the database's clock, as
// if its owner had died a TTL ago.
func expire(t *testing.T, s *pgstore.Store, id string) {
	t.Helper()
	tag, err := s.Pool().Exec(t.Context(), `UPDATE leases SET until = now() - interval '1 second' WHERE incident_id = $1`, id)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "a lease on %s to expire", id)
}

func lease(t *testing.T, s *pgstore.Store, id, owner string) bool {
	t.Helper()
	ok, err := s.Lease(t.Context(), id, owner, time.Minute)
	require.NoError(t, err)
	return ok
}

func TestLeaseExpiryByDatabaseClock(t *testing.T) {
	s := newStore(t)
	require.True(t, lease(t, s, "inc-1", "a"))
	require.False(t, lease(t, s, "inc-1", "b"), "held by a for a minute")

	expire(t, s, "inc-1") // a died a minute ago
	assert.True(t, lease(t, s, "inc-1", "b"), "an expired lease goes to the next taker")
	assert.False(t, lease(t, s, "inc-1", "a"), "the old owner, come back, must not take it back")

	// An expired lease can also be renewed by its own owner, as long as
	// nobody took it.
	expire(t, s, "inc-1")
	assert.True(t, lease(t, s, "inc-1", "b"))

	var until time.Time
	var dbNow time.Time
	require.NoError(t, s.Pool().QueryRow(t.Context(), `SELECT until, now() FROM leases WHERE incident_id = 'inc-1'`).Scan(&until, &dbNow))
	assert.WithinDuration(t, dbNow.Add(time.Minute), until, 5*time.Second, "until is TTL from the database's now")
}

func TestLeaseTTLRoundsUp(t *testing.T) {
	s := newStore(t)
	ok, err := s.Lease(t.Context(), "inc-1", "a", time.Nanosecond)
	require.NoError(t, err)
	require.True(t, ok)
	var left time.Duration
	require.NoError(t, s.Pool().QueryRow(t.Context(),
		`SELECT (extract(epoch FROM until - statement_timestamp()) * 1e9)::bigint FROM leases`).Scan(&left))
	// A nanosecond lease is a microsecond one: gone at once, never negative
	// when granted.
	assert.LessOrEqual(t, left, time.Second)
}

func TestUnleaseByOtherDoesNothing(t *testing.T) {
	s := newStore(t)
	require.True(t, lease(t, s, "inc-1", "a"))
	require.NoError(t, s.Unlease(t.Context(), "inc-1", "b"))
	assert.False(t, lease(t, s, "inc-1", "b"))
	require.NoError(t, s.Unlease(t.Context(), "inc-1", "a"))
	assert.True(t, lease(t, s, "inc-1", "b"))
}

func TestPruneLeases(t *testing.T) {
	s := newStore(t)
	require.True(t, lease(t, s, "inc-1", "a"))
	require.True(t, lease(t, s, "inc-2", "a"))
	expire(t, s, "inc-1")
	n, err := s.PruneLeases(t.Context(), 0)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	assert.False(t, lease(t, s, "inc-2", "b"), "a live lease is kept")
	assert.True(t, lease(t, s, "inc-1", "b"))
}

// TestDuplicateNamesTheHolder checks the error a replica gets when another
// opened the incident first: it names the incident to join.
func TestDuplicateNamesTheHolder(t *testing.T) {
	s := newStore(t)
	require.NoError(t, s.Create(t.Context(), incidenttest.NewIncident("inc-1", "key-1")))
	err := s.Create(t.Context(), incidenttest.NewIncident("inc-2", "key-1"))
	var dup *incident.DuplicateError
	require.ErrorAs(t, err, &dup)
	assert.Equal(t, "inc-1", dup.ExistingID)
}

// TestTextThatJSONBRefuses: jsonb cannot hold \u0000, which a plugin's
// error message may contain; the json column keeps it.
func TestTextThatJSONBRefuses(t *testing.T) {
	s := newStore(t)
	inc := incidenttest.NewIncident("inc-1", "key-1")
	inc.Summary = "NUL \x00 inside, and \u2028 line separator"
	inc.Timeline.Append(incident.Entry{At: inc.DetectedAt, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "error: \x00"})
	require.NoError(t, s.Create(t.Context(), inc))
	got, err := s.Get(t.Context(), "inc-1")
	require.NoError(t, err)
	assert.Equal(t, inc.Summary, got.Summary)
	assert.NoError(t, got.Timeline.Verify())
}

// TestInvalidUTF8: encoding/json replaces bytes that are not UTF-8 with
// U+FFFD, so such text cannot survive a JSON store as it was. Timeline.Append
// repairs it before hashing, so what is stored is what was hashed and the
// timeline still verifies after the round trip.
func TestInvalidUTF8(t *testing.T) {
	s := newStore(t)
	inc := incidenttest.NewIncident("inc-1", "key-1")
	inc.Timeline.Append(incident.Entry{At: inc.DetectedAt, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "bad byte \xff"})
	require.NoError(t, s.Create(t.Context(), inc))
	got, err := s.Get(t.Context(), "inc-1")
	require.NoError(t, err)
	require.Len(t, got.Timeline, 2)
	assert.Equal(t, "bad byte \uFFFD", got.Timeline[1].Detail)
	assert.NoError(t, got.Timeline.VerifyHead(inc.Timeline.Head()))
}

func TestCancelledWhileWaiting(t *testing.T) {
	s := newStore(t)
	require.NoError(t, s.Create(t.Context(), incidenttest.NewIncident("inc-1", "key-1")))
	// Hold the row locked in a transaction so that Update waits, then
	// cancel the waiting Update.
	tx, err := s.Pool().Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `SELECT 1 FROM incidents WHERE id = 'inc-1' FOR UPDATE`)
	require.NoError(t, err)

	inc, err := s.Get(t.Context(), "inc-1")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = s.Update(ctx, inc)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "Update cancelled while waiting for a lock: %v", err)
	assert.EqualValues(t, 1, inc.Version)
}
