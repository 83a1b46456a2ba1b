package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
)

// urlEnv names the database the tests run against.
const urlEnv = "BREACH_POSTGRES_URL"

// newStore returns a migrated Store in a schema of its own, dropped when the
// test ends, so that each store starts empty.
func newStore(t testing.TB, opts ...func(*pgxpool.Config)) *pgstore.Store {
	t.Helper()
	pool := newPool(t, opts...)
	require.NoError(t, pgstore.Migrate(context.Background(), pool))
	s, err := pgstore.New(context.Background(), pool)
	require.NoError(t, err)
	return s
}

// schemaSeq tells apart the schemas of tests started in one nanosecond.
var schemaSeq atomic.Int64

// newPool returns a pool on an empty schema of its own (the first of its
// search_path), dropped when the test ends. opts may change its
// configuration.
func newPool(t testing.TB, opts ...func(*pgxpool.Config)) *pgxpool.Pool {
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
	for _, o := range opts {
		o(cfg)
	}
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

// t0 is a fixed instant with a microsecond fraction, in UTC.
var t0 = time.Date(2025, time.March, 14, 9, 26, 53, 123456000, time.UTC)

// newIncident returns a small open incident with one timeline entry, whole
// (incident.Split makes its Change).
func newIncident(id, key string) *incident.Incident {
	inc := &incident.Incident{
		ID: id, Kind: "test.incident", Subject: "subject-" + id, DedupKey: key,
		Severity: incident.SeverityMedium, State: incident.StateDetected, Summary: "test incident " + id,
		DetectedAt: t0, UpdatedAt: t0,
		Signals: incident.SignalSummary{Count: 1, FirstSeen: t0, LastSeen: t0},
	}
	inc.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened"})
	return inc
}

// fullIncident returns a whole open record with most fields set, several
// entries, deliveries and customers (one known by its email only), and
// text that PostgreSQL's text and jsonb refuse (NUL) in the head, an
// entry, a delivery and a customer.
func fullIncident(id, key string) *incident.Incident {
	cet := time.FixedZone("CET", 3600)
	at := func(d time.Duration) time.Time { return time.Date(2025, 3, 14, 10, 26, 53, 123456000, cet).Add(d) }
	inc := &incident.Incident{
		ID: id, Kind: "apikey.compromised", Subject: "key_" + id, Account: "acct_Zürich_✓", DedupKey: key,
		Severity: incident.SeverityCritical, State: incident.StateNotifying,
		Summary:               "API key seen in a public repository — « exposé », NUL \x00 inside",
		CredentialFingerprint: incident.NewSecret("sk_live_" + id).Fingerprint(),
		Attributes:            map[string]string{"region": "eu-west-1", "DedupKey": "an attribute named like a field"},
		DetectedAt:            at(0), ContainedAt: at(time.Minute + time.Microsecond), UpdatedAt: at(5 * time.Minute),
		Signals: incident.SignalSummary{Count: 3, FirstSeen: at(-time.Hour), LastSeen: at(-time.Minute),
			Samples: []incident.SignalSample{{At: at(-time.Hour), Source: "scanner", Severity: incident.SeverityHigh, Summary: "key in commit"}}},
		Investigation: &incident.Investigation{
			Findings: incident.Findings{RootCause: "committed", Impact: incident.Impact{
				Customers: []incident.Customer{
					{ID: "cust_1", Name: "Ada Lovelace", Email: "ada@example.com"},
					{ID: "cust_2", Name: "Émile \x00 Zola", Email: "emile@example.org"},
					{Email: "only-email@example.net"},
				},
				Data: []incident.DataCategory{incident.DataCampaignReports},
			}},
			At: at(30 * time.Second), Attempts: 2,
		},
		Decision: &incident.Decision{Notify: true, Reason: "customer data affected", By: "system", At: at(90 * time.Second)},
		Actions: []incident.ActionRecord{{Name: "revoke-api-key", IdempotencyKey: "brk_1", Status: incident.ActionApplied,
			Attempts: 1, StartedAt: at(40 * time.Second), FinishedAt: at(50 * time.Second)}},
		Deliveries: []incident.Delivery{
			{Recipient: "cust_1", Channel: "email", IdempotencyKey: "brk_3", Status: incident.DeliverySent, Attempts: 1,
				LastError: "soft bounce \x00", ClaimedAt: at(100 * time.Second), SentAt: at(101 * time.Second)},
			{Recipient: "cust_2", Channel: "webhook", IdempotencyKey: "brk_4", Status: incident.DeliveryClaimed, Attempts: 2,
				ClaimedAt: at(102 * time.Second)},
			{Recipient: "only-email@example.net", Channel: "email", IdempotencyKey: "brk_5", Status: incident.DeliveryFailed,
				Attempts: 3, LastError: "mailbox full"},
		},
		Tasks:      []incident.Task{{ID: "rotate", Title: "Rotate every key", Mandatory: true}},
		Milestones: map[incident.Milestone]time.Time{incident.MilestoneDetected: at(0)},
		Escalation: &incident.Escalation{From: incident.StateContaining, Reason: "block-ip failed", At: at(56 * time.Second)},
	}
	for i, d := range []string{"opened", "contained", "error: \x00 from the notifier", "bad byte \xff repaired", "investigated"} {
		inc.Timeline.Append(incident.Entry{At: at(time.Duration(i) * time.Second), Actor: incident.ActorSystem,
			Type: incident.EntryNote, Detail: d})
	}
	return inc
}

// whole returns inc as incident.Load returns it after Create(Split(inc)):
// with Version, Chain and Impact.Affected set.
func whole(inc *incident.Incident, version int64) *incident.Incident {
	w := inc.Clone()
	w.Version = version
	if w.Chain == (incident.Chain{}) {
		w.Chain = incident.Chain{Len: len(w.Timeline), Head: w.Timeline.Head()}
	}
	if w.Investigation != nil && w.Investigation.Impact.Affected == 0 {
		w.Investigation.Impact.Affected = len(w.Investigation.Impact.Customers)
	}
	return w
}

// assertSame compares two incidents by their JSON form: what the store
// keeps of them.
func assertSame(t testing.TB, want, got *incident.Incident, msgAndArgs ...any) bool {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	return assert.JSONEq(t, string(w), string(g), msgAndArgs...)
}

// create stores inc whole and returns its head, at Version 1.
func create(t testing.TB, s incident.Store, inc *incident.Incident) *incident.Incident {
	t.Helper()
	ch := incident.Split(inc)
	require.NoError(t, s.Create(context.Background(), ch))
	require.EqualValues(t, 1, ch.Head.Version)
	return ch.Head
}

// next returns the Change that writes head h, with the entries h.Record
// appended since it was read (h.Timeline), and dels and custs.
func next(h *incident.Incident, dels []incident.Delivery, custs []incident.Customer) incident.Change {
	c := h.Clone()
	entries := c.Timeline
	c.Timeline = nil
	return incident.Change{Head: c, Entries: entries, Deliveries: dels, Customers: custs}
}

// apply writes next(h, dels, custs) and returns the new head.
func apply(t testing.TB, s incident.Store, h *incident.Incident, dels []incident.Delivery, custs []incident.Customer) *incident.Incident {
	t.Helper()
	ch := next(h, dels, custs)
	require.NoError(t, s.Apply(context.Background(), ch))
	require.Equal(t, h.Version+1, ch.Head.Version)
	return ch.Head
}

func load(t testing.TB, s incident.Store, id string) *incident.Incident {
	t.Helper()
	inc, err := incident.Load(context.Background(), s, id)
	require.NoError(t, err)
	return inc
}
