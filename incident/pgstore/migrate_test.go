package pgstore_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
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

// wholeRow reads the record that a schema of before migration 3 keeps for
// id: the JSON of incidents.body, with the version column's Version.
func wholeRow(t *testing.T, pool *pgxpool.Pool, id string) *incident.Incident {
	t.Helper()
	var (
		version int64
		body    []byte
	)
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT version, body FROM incidents WHERE id = $1`, id).Scan(&version, &body))
	inc := new(incident.Incident)
	require.NoError(t, json.Unmarshal(body, inc))
	inc.Version = version
	return inc
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
	full := fullIncident("inc-1", "key-1")
	h := create(t, s, full)
	h.Record(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "after the create"})
	h.Outreach = incident.Outreach{Sent: 1, Claimed: 2, Failed: 1, Cursor: "only-email@example.net"} // as the orchestrator counts
	apply(t, s, h, []incident.Delivery{{IdempotencyKey: "brk_9", Status: incident.DeliveryClaimed}}, nil)
	before := load(t, s, "inc-1")
	create(t, s, newIncident("inc-2", "key-2"))
	require.True(t, lease(t, s, "inc-1", "r1"))

	// Down one step: the records are whole again, in incidents.body.
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 2))
	assert.Equal(t, 2, schemaVersion(t, pool))
	for _, table := range []string{"incident_heads", "incident_entries", "incident_deliveries", "incident_customers"} {
		assert.False(t, tableExists(t, pool, table), table)
	}
	assert.False(t, columnExists(t, pool, "incidents", "chain_len"))
	assertSame(t, before, wholeRow(t, pool, "inc-1"), "migration 3 down reassembles the record")
	assertSame(t, whole(newIncident("inc-2", "key-2"), 1), wholeRow(t, pool, "inc-2"))

	// Up again: the same record in parts.
	require.NoError(t, pgstore.Migrate(ctx, pool))
	assertSame(t, before, load(t, s, "inc-1"), "up, down and up again")
	ok, err := s.Lease(ctx, "inc-1", "r2", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "leases survive")

	// Down to 1: the register's columns go, the incidents stay.
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 1))
	assert.Equal(t, 1, schemaVersion(t, pool))
	assert.False(t, columnExists(t, pool, "incidents", "kind"), "migration 2 down drops incidents.kind")
	assertSame(t, before, wholeRow(t, pool, "inc-1"))

	// Down to nothing, and up from there.
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 0))
	assert.Equal(t, 0, schemaVersion(t, pool))
	assert.False(t, tableExists(t, pool, "incidents"))
	assert.False(t, tableExists(t, pool, "leases"))
	require.NoError(t, pgstore.MigrateDown(ctx, pool, 0), "MigrateDown below the current version does nothing")
	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	create(t, s, newIncident("inc-3", "key-3")) // the store works on the re-created schema

	var applied []int
	rows, err := pool.Query(ctx, `SELECT version FROM breach_schema_migrations ORDER BY version`)
	require.NoError(t, err)
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		applied = append(applied, v)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []int{1, 2, 3}, applied, "one row per applied migration")
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

// v1Row is an incident as a release before migration 3 stored it: whole,
// in incidents, at schema version 2.
type v1Row struct {
	inc  *incident.Incident // whole, Version set
	body string             // its JSON, when not that of inc
}

func insertV1(t *testing.T, pool *pgxpool.Pool, rows ...v1Row) {
	t.Helper()
	for _, r := range rows {
		body := r.body
		if body == "" {
			b, err := json.Marshal(r.inc)
			require.NoError(t, err)
			body = string(b)
		}
		_, err := pool.Exec(t.Context(),
			`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, kind, account, body)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			r.inc.ID, r.inc.DedupKey, string(r.inc.State), r.inc.State.Open(), r.inc.Version, r.inc.DetectedAt,
			r.inc.Kind, r.inc.Account, body)
		require.NoError(t, err)
	}
}

// migrated returns what incident.Load returns for a whole record of before
// migration 3 once migrated: the record, with the fields it did not hold
// computed from it (Chain, Impact.Affected, Outreach's counts), and each
// delivery (customer) key once, with its last value where it first came.
// (Items without a key are not expected here.)
func migrated(inc *incident.Incident) *incident.Incident {
	w := inc.Clone()
	w.Chain = incident.Chain{Len: len(w.Timeline), Head: w.Timeline.Head()}
	var dels []incident.Delivery
	at := map[string]int{}
	for _, d := range w.Deliveries {
		if j, ok := at[d.IdempotencyKey]; ok {
			dels[j] = d
			continue
		}
		at[d.IdempotencyKey] = len(dels)
		dels = append(dels, d)
	}
	w.Deliveries = dels
	for _, d := range dels {
		w.Outreach.Count(d.Status, 1)
	}
	if w.Investigation != nil {
		var cs []incident.Customer
		at := map[string]int{}
		for _, c := range w.Investigation.Impact.Customers {
			if j, ok := at[incident.RecipientID(c)]; ok {
				cs[j] = c
				continue
			}
			at[incident.RecipientID(c)] = len(cs)
			cs = append(cs, c)
		}
		if w.Investigation.Impact.Affected == 0 {
			w.Investigation.Impact.Affected = len(cs)
		}
		w.Investigation.Impact.Customers = cs
	}
	return w
}

// atVersion2 returns a pool on a schema at version 2, empty.
func atVersion2(t *testing.T) *pgxpool.Pool {
	pool := newPool(t)
	require.NoError(t, pgstore.Migrate(t.Context(), pool))
	require.NoError(t, pgstore.MigrateDown(t.Context(), pool, 2))
	require.Equal(t, 2, schemaVersion(t, pool))
	return pool
}

// TestMigrateSplitsRecords stores whole records as the releases before
// migration 3 did (schema version 2), migrates, and reads each back with
// incident.Load: the same record, Version and hashes.
func TestMigrateSplitsRecords(t *testing.T) {
	pool := atVersion2(t)
	ctx := t.Context()

	full := fullIncident("inc-full", "key-full")
	full.Version = 4
	require.Contains(t, full.Summary, "\x00")

	// Its body in the JSON form of before the register (Go's field names),
	// with \u0000, by a release before migration 2: no kind column.
	legacyBody, err := os.ReadFile("testdata/incident_v0.json")
	require.NoError(t, err)
	legacyText := strings.NewReplacer(`"Summary": "API key seen`, `"Summary": "NUL \u0000 here; API key seen`).Replace(string(legacyBody))
	require.Contains(t, legacyText, `\u0000`)
	legacy := new(incident.Incident)
	require.NoError(t, json.Unmarshal([]byte(legacyText), legacy))
	legacy.Version = 3
	legacy.State = incident.StateClosed // the row's columns say so
	legacyText = strings.Replace(legacyText, `"State": "notifying"`, `"State": "closed"`, 1)
	require.Contains(t, legacyText, `"State": "closed"`)
	legacyRow := v1Row{inc: legacy, body: legacyText}

	bare := &incident.Incident{ID: "inc-bare", Kind: "k", DedupKey: "key-bare", State: incident.StateDetected, DetectedAt: t0, Version: 1}

	// Large parts, read by Load over several pages, and keys twice.
	big := newIncident("inc-big", "key-big")
	big.Version = 9
	big.Investigation = &incident.Investigation{}
	for i := range 2500 {
		big.Timeline.Append(incident.Entry{At: t0.Add(time.Duration(i) * time.Microsecond), Actor: "system", Type: incident.EntryDelivery,
			Detail: fmt.Sprint("sent ", i)})
		st := incident.DeliverySent
		if i%7 == 0 {
			st = incident.DeliveryFailed
		}
		big.Deliveries = append(big.Deliveries, incident.Delivery{Recipient: fmt.Sprint("c", i), Channel: "email",
			IdempotencyKey: fmt.Sprint("k", i), Status: st, Attempts: 1})
		big.Investigation.Impact.Customers = append(big.Investigation.Impact.Customers, incident.Customer{ID: fmt.Sprint("c", i)})
	}
	big.Deliveries = append(big.Deliveries, incident.Delivery{IdempotencyKey: "k3", Status: incident.DeliveryUnknown})
	big.Investigation.Impact.Customers = append(big.Investigation.Impact.Customers, incident.Customer{ID: "c5", Name: "again"})

	// Items without a key that a column can hold, which version 3 never
	// writes: kept, under keys of their own.
	odd := newIncident("inc-odd", "key-odd")
	odd.Version = 2
	odd.State = incident.StateDismissed
	odd.Deliveries = []incident.Delivery{{Recipient: "x", Status: incident.DeliveryClaimed}, {Recipient: "y", Status: incident.DeliveryCancelled}}
	odd.Investigation = &incident.Investigation{Findings: incident.Findings{Impact: incident.Impact{
		Customers: []incident.Customer{{Name: "no ID, no email"}, {ID: "NUL \x00 in the ID"}}}}}

	insertV1(t, pool, v1Row{inc: full}, legacyRow, v1Row{inc: bare}, v1Row{inc: big}, v1Row{inc: odd})
	_, err = pool.Exec(ctx, `UPDATE incidents SET kind = '', account = '' WHERE id = $1`, legacy.ID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO leases (incident_id, owner, until) VALUES ('inc-full', 'replica-old', now() + interval '1 hour')`)
	require.NoError(t, err)

	defer pgstore.SetBackfillBatch(2)() // three batches
	require.NoError(t, pgstore.Migrate(ctx, pool))
	require.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	s, err := pgstore.New(ctx, pool)
	require.NoError(t, err)

	for _, inc := range []*incident.Incident{full, legacy, bare, big} {
		got := load(t, s, inc.ID)
		want := migrated(inc)
		assertSame(t, want, got, inc.ID)
		assert.NoError(t, got.Timeline.VerifyHead(inc.Timeline.Head()), inc.ID)
		assert.Equal(t, inc.Version, got.Version)
	}
	got := load(t, s, "inc-big")
	assert.Len(t, got.Deliveries, 2500)
	assert.Equal(t, incident.DeliveryUnknown, got.Deliveries[3].Status, "a key twice: the last value, where the first was")
	assert.Equal(t, incident.Outreach{Sent: 2141, Failed: 358, Unknown: 1}, got.Outreach)
	assert.Equal(t, 2500, got.Investigation.Impact.Affected, "Affected counts the customers kept")

	got = load(t, s, "inc-odd")
	wantDels := slices.Clone(odd.Deliveries)
	wantDels[0].IdempotencyKey, wantDels[1].IdempotencyKey = "v1-unkeyed:0", "v1-unkeyed:1"
	assert.Equal(t, wantDels, got.Deliveries)
	assert.Equal(t, []incident.Customer{{ID: "v1-unkeyed:0", Name: "no ID, no email"}, {ID: "v1-unkeyed:1"}},
		got.Investigation.Impact.Customers)

	// The head columns and the register.
	found, err := s.FindOpen(ctx, "key-full")
	require.NoError(t, err)
	assert.EqualValues(t, 4, found.Version)
	page, err := s.List(ctx, incident.ListFilter{Kind: "apikey.compromised", Account: "acct_Zürich_✓"})
	require.NoError(t, err)
	var ids []string
	for _, inc := range page.Incidents {
		ids = append(ids, inc.ID)
	}
	assert.ElementsMatch(t, []string{"inc-full", "inc-legacy"}, ids, "kind and account of a row written before migration 2, from its JSON")
	ok, err := s.Lease(ctx, "inc-full", "replica-new", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "the lease written before the migration still holds")
	orphans, err := s.Orphans(ctx, 0)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"inc-bare", "inc-big"}, orphans)

	// A migrated incident is written on from where it stood.
	h, err := s.Head(ctx, "inc-full")
	require.NoError(t, err)
	h.Record(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "after the migration"})
	h = apply(t, s, h, []incident.Delivery{{IdempotencyKey: "brk_4", Status: incident.DeliverySent}}, nil)
	assert.EqualValues(t, 5, h.Version)
	got = load(t, s, "inc-full")
	assert.NoError(t, got.Timeline.VerifyHead(h.Chain.Head))
	assert.Equal(t, []string{"brk_3", "brk_4", "brk_5"}, deliveryKeys(got.Deliveries))

	// A replica of a release before the migration fails to write rather
	// than write a whole record.
	_, err = pool.Exec(ctx, `UPDATE incidents SET version = version + 1, body = '{}' WHERE id = 'inc-full' AND version = 4`)
	assert.ErrorContains(t, err, `relation "incidents" does not exist`)
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
	want := new(incident.Incident)
	require.NoError(t, json.Unmarshal(body, want))
	want.Version = 3
	require.Equal(t, "an attribute named like a field", want.Attributes["DedupKey"])
	_, err = pool.Exec(ctx,
		`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, body) VALUES ($1, $2, $3, true, 3, $4, $5)`,
		want.ID, want.DedupKey, string(want.State), want.DetectedAt, body)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO leases (incident_id, owner, until) VALUES ('inc-legacy', 'replica-old', now() + interval '1 hour')`)
	require.NoError(t, err)
	assert.Equal(t, 0, schemaVersion(t, pool), "no version table yet")

	require.NoError(t, pgstore.Migrate(ctx, pool))
	assert.Equal(t, pgstore.LatestVersion, schemaVersion(t, pool))
	var first string
	require.NoError(t, pool.QueryRow(ctx, `SELECT name FROM breach_schema_migrations WHERE version = 1`).Scan(&first))
	assert.Equal(t, "0001_incidents_and_leases", first)

	s, err := pgstore.New(ctx, pool)
	require.NoError(t, err)
	got := load(t, s, "inc-legacy")
	assertSame(t, migrated(want), got, "the incident written before the migrations")
	assert.NoError(t, got.Timeline.VerifyHead(want.Timeline.Head()))

	ok, err := s.Lease(ctx, "inc-legacy", "replica-new", 0)
	require.NoError(t, err)
	assert.False(t, ok, "the lease written before the migration still holds")
	page, err := s.List(ctx, incident.ListFilter{Kind: "apikey.compromised", Account: "acct_Zürich_✓"})
	require.NoError(t, err)
	require.Len(t, page.Incidents, 1)
	assert.Equal(t, "inc-legacy", page.Incidents[0].ID)
}
