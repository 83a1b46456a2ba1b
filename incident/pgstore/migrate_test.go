package pgstore_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
	"github.com/breachkit/breach/incident/pgstore"
)

func schemaVersion(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	v, err := pgstore.SchemaVersion(t.Context(), pool)
	require.NoError(t, err)
	return v
}

// tableExists reports whether table is in the pool's schema.
func tableExists(t *testing.T, pool *pgxpool.Pool, table string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok))
	return ok
}

func columnExists(t *testing.T, pool *pgxpool.Pool, table, column string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM information_schema.columns
		                 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)`,
		table, column).Scan(&ok))
	return ok
}

func TestMigrateUpDownUp(t *testing.T) {
	pool := newPool(t)
	ctx := t.Context()
	assert.Equal(t, 0, schemaVersion(t, pool), "an empty database")

	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	require.NoError(t, pgstore.Migrate(ctx, pool), "Migrate on an up-to-date database")
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))

	s, err := pgstore.New(ctx, pool)
	require.NoError(t, err)
	full := incidenttest.FullIncident("inc-1", "key-1")
	full.Summary += " with NUL \x00, which PostgreSQL cannot read from json as text"
	require.NoError(t, s.Create(ctx, full))

	// Down one step: the register's columns go, the incidents stay.
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 1))
	assert.Equal(t, 1, schemaVersion(t, pool))
	assert.False(t, columnExists(t, pool, "incidents", "kind"), "migration 2 down drops incidents.kind")
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM incidents`).Scan(&n))
	assert.Equal(t, 1, n, "down to version 1 keeps the incidents")

	// Up again: the columns come back, computed from the stored JSON.
	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	var kind, account string
	require.NoError(t, pool.QueryRow(ctx, `SELECT kind, account FROM incidents WHERE id = 'inc-1'`).Scan(&kind, &account))
	assert.Equal(t, "apikey.compromised", kind)
	assert.Equal(t, "acct_Zürich_✓", account)

	// Down to nothing, and up from there.
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 0))
	assert.Equal(t, 0, schemaVersion(t, pool))
	assert.False(t, tableExists(t, pool, "incidents"))
	assert.False(t, tableExists(t, pool, "leases"))
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 0), "MigrateDown below the current version does nothing")
	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	require.NoError(t, s.Create(ctx, incidenttest.NewIncident("inc-2", "key-2")), "the store works on the re-created schema")

	var applied []int
	rows, err := pool.Query(ctx, `SELECT version FROM breach_schema_migrations ORDER BY version`)
	require.NoError(t, err)
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		applied = append(applied, v)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []int{1, 2}, applied, "one row per applied migration")
}

func TestMigrateDownErrors(t *testing.T) {
	pool := newPool(t)
	require.NoError(t, pgstore.Migrate(t.Context(), pool))
	assert.ErrorIs(t, pgstore.MigrateDown(t.Context(), pool, -1), pgstore.ErrSchema)

	// A newer release migrated further: Migrate leaves it alone, MigrateDown
	// cannot undo what it does not know.
	_, err := pool.Exec(t.Context(), `INSERT INTO breach_schema_migrations (version, name) VALUES (99, '0099_future')`)
	require.NoError(t, err)
	assert.NoError(t, pgstore.Migrate(t.Context(), pool))
	assert.Equal(t, 99, schemaVersion(t, pool))
	assert.ErrorIs(t, pgstore.MigrateDown(t.Context(), pool, 1), pgstore.ErrSchema)
}

func TestMigrateConcurrently(t *testing.T) {
	pool := newPool(t)
	const n = 8
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = pgstore.Migrate(t.Context(), pool)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "concurrent Migrate %d", i)
	}
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	var rows int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM breach_schema_migrations`).Scan(&rows))
	assert.Equal(t, pgstore.LatestVersion, rows, "each migration applied once")
}

// unversionedSchema is what pgstore's Migrate created before schema
// versions (the Schema constant of examples/postgres/pgstore).
const unversionedSchema = `
CREATE TABLE IF NOT EXISTS incidents (
	id          text        PRIMARY KEY,
	dedup_key   text        NOT NULL,
	state       text        NOT NULL,
	open        boolean     NOT NULL,
	version     bigint      NOT NULL CHECK (version > 0),
	detected_at timestamptz NOT NULL,
	body        json        NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_dedup_key ON incidents (dedup_key) WHERE open;
CREATE INDEX IF NOT EXISTS incidents_open_detected ON incidents (detected_at, id COLLATE "C") WHERE open;
CREATE TABLE IF NOT EXISTS leases (
	incident_id text        PRIMARY KEY,
	owner       text        NOT NULL,
	until       timestamptz NOT NULL
);
`

// TestMigrateAdoptsUnversioned: a database created by the Migrate of before
// schema versions, holding an incident encoded with the JSON field names of
// then (Go's field names) and a lease, is adopted as version 1 and
// migrated on without losing either; the incident reads back whole and is
// found by the register's filters.
func TestMigrateAdoptsUnversioned(t *testing.T) {
	pool := newPool(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, unversionedSchema)
	require.NoError(t, err)
	body, err := os.ReadFile("testdata/incident_v0.json")
	require.NoError(t, err)
	want := incidenttest.FullIncident("inc-legacy", "key-legacy")
	want.Version = 3
	want.Attributes["DedupKey"] = "an attribute named like a field"
	_, err = pool.Exec(ctx,
		`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, body) VALUES ($1, $2, $3, true, 3, $4, $5)`,
		want.ID, want.DedupKey, string(want.State), want.DetectedAt, body)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO leases (incident_id, owner, until) VALUES ('inc-legacy', 'replica-old', now() + interval '1 hour')`)
	require.NoError(t, err)
	// Another incident of before, whose summary holds \u0000, which
	// PostgreSQL cannot read as text. The backfill reads one row at a time
	// here, so it takes two batches.
	defer pgstore.SetBackfillBatch(1)()
	other := strings.NewReplacer(`"inc-legacy"`, `"inc-legacy-nul"`, `"key-legacy"`, `"key-legacy-nul"`,
		`"Summary": "API key seen`, `"Summary": "NUL \u0000 here; API key seen`).Replace(string(body))
	require.Contains(t, other, `\u0000`)
	_, err = pool.Exec(ctx,
		`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, body) VALUES ($1, $2, 'closed', false, 1, $3, $4)`,
		"inc-legacy-nul", "key-legacy-nul", want.DetectedAt.Add(time.Minute), other)
	require.NoError(t, err)

	assert.Equal(t, 0, schemaVersion(t, pool), "no version table yet")

	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	var first string
	require.NoError(t, pool.QueryRow(ctx, `SELECT name FROM breach_schema_migrations WHERE version = 1`).Scan(&first))
	assert.Equal(t, "0001_incidents_and_leases", first)

	s, err := pgstore.New(ctx, pool)
	require.NoError(t, err)
	got, err := s.Get(ctx, "inc-legacy")
	require.NoError(t, err)
	assert.Equal(t, incidenttest.Normalize(want), incidenttest.Normalize(got), "the incident written before the migration")
	assert.NoError(t, got.Timeline.VerifyHead(want.Timeline.Head()))

	ok, err := s.Lease(ctx, "inc-legacy", "replica-new", 0)
	require.NoError(t, err)
	assert.False(t, ok, "the lease written before the migration still holds")

	// A replica of the release before, still running during the upgrade,
	// writes a row its way: the old columns only, the old JSON names. The
	// next Migrate fills its register columns.
	_, err = pool.Exec(ctx,
		`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, body) VALUES ($1, $2, 'closed', false, 1, $3, $4)`,
		"inc-old-writer", "key-old-writer", want.DetectedAt.Add(2*time.Minute),
		strings.NewReplacer(`"inc-legacy"`, `"inc-old-writer"`, `"key-legacy"`, `"key-old-writer"`).Replace(string(body)))
	require.NoError(t, err)
	require.NoError(t, pgstore.Migrate(ctx, pool))

	page, err := s.List(ctx, incident.ListFilter{Kind: "apikey.compromised", Account: "acct_Zürich_✓"})
	require.NoError(t, err)
	var found []string
	for _, inc := range page.Incidents {
		found = append(found, inc.ID)
	}
	assert.Equal(t, []string{"inc-old-writer", "inc-legacy-nul", "inc-legacy"}, found,
		"the register finds by kind and account the incidents of before the migration and one an old replica wrote after it")

	// Writing it back stores the current encoding; it still reads the same.
	got.Summary = "updated after the migration"
	require.NoError(t, s.Update(ctx, got))
	again, err := s.Get(ctx, "inc-legacy")
	require.NoError(t, err)
	assert.Equal(t, incidenttest.Normalize(got), incidenttest.Normalize(again))
}
