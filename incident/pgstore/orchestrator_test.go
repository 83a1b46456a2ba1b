package pgstore_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
	"github.com/breachkit/breach/notify"
)

// The orchestrator on PostgreSQL: incidents through the API-key playbook
// (contain, investigate, notify, resolve, close), with no-op plugins.
//
//	go test -run '^$' -bench 'Orchestrator|Floor' -benchtime 200x .

// apiKeyPlaybook notifies customers customers; contained, when set, is told
// of each first container call.
func apiKeyPlaybook(customers int, contained func(id string)) breach.Playbook {
	cs := make([]incident.Customer, customers)
	for i := range cs {
		id := "acct_" + strconv.Itoa(i)
		cs[i] = incident.Customer{ID: id, Email: id + "@example.com"}
	}
	return breach.Playbook{
		Kind: "apikey.compromised", Strategy: breach.ContainFirst,
		Containment: []containment.Action{{Name: "disable-key", Description: "disabled the key",
			Container: containment.Func(func(_ context.Context, r containment.Request) error {
				if contained != nil && r.Attempt == 1 {
					contained(r.IncidentID)
				}
				return nil
			})}},
		Investigator: incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
			return incident.Findings{Impact: incident.Impact{Customers: cs, Data: []incident.DataCategory{incident.DataAPIAccess}}}, nil
		}),
		Notifiers:       []notify.Route{{Channel: "email", Notifier: notify.Func(func(context.Context, notify.Message) error { return nil })}},
		Recommendations: []string{"Generate a new API key."},
		AutoResolve:     true, AutoClose: true,
	}
}

// closedWatch tells when incidents reach closed, from the observer.
type closedWatch struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
	closed  map[string]bool
}

func newClosedWatch() *closedWatch {
	return &closedWatch{waiting: map[string]chan struct{}{}, closed: map[string]bool{}}
}

func (w *closedWatch) Observe(_ context.Context, ob breach.Observation) {
	if ob.Kind != breach.ObserveTransition || ob.To != incident.StateClosed {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed[ob.IncidentID] = true
	if ch := w.waiting[ob.IncidentID]; ch != nil {
		close(ch)
		delete(w.waiting, ob.IncidentID)
	}
}

// wait returns a channel closed once id is closed.
func (w *closedWatch) wait(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if w.closed[id] {
		close(ch)
		return ch
	}
	w.waiting[id] = ch
	return ch
}

// BenchmarkOrchestrator: incidents per second through the whole API-key
// playbook (one customer) on one replica, at 1 and 16 incidents at once;
// commits per incident (pg_stat_database, which counts every transaction,
// reads included); and the time from Report to the first container call.
// BenchmarkFloor is its baseline, in the same run.
func BenchmarkOrchestrator(b *testing.B) {
	for _, conc := range []int{1, 16} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			s := newStore(b, func(c *pgxpool.Config) { c.MaxConns = 32 })
			var mu sync.Mutex
			reported := map[string]time.Time{}
			var latencies []time.Duration
			contained := func(id string) {
				mu.Lock()
				defer mu.Unlock()
				if at, ok := reported[id]; ok {
					latencies = append(latencies, time.Since(at))
					delete(reported, id)
				}
			}
			watch := newClosedWatch()
			o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(1, contained)), breach.WithObserver(watch),
				breach.WithConcurrency(conc), breach.WithLease("bench", 30*time.Second),
				breach.WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- o.Run(ctx) }()
			defer func() { cancel(); require.NoError(b, <-done) }()

			var next atomic.Int64
			before := commits(b, s)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range conc {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						subject := "key_" + strconv.FormatInt(i, 10)
						start := time.Now()
						rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: subject,
							Account: "acct_0", Severity: incident.SeverityCritical})
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						if _, seen := reported[rc.IncidentID]; !seen {
							reported[rc.IncidentID] = start
						}
						mu.Unlock()
						<-watch.wait(rc.IncidentID)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(n/b.Elapsed().Seconds(), "incidents/s")
			// Other connections report their transactions to the
			// statistics within a second of going idle.
			time.Sleep(1100 * time.Millisecond)
			b.ReportMetric(float64(commits(b, s)-before)/n, "commits/incident")
			mu.Lock()
			slices.Sort(latencies)
			if len(latencies) > 0 {
				b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "contain-p50-ms")
				b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "contain-p99-ms")
			}
			mu.Unlock()
		})
	}
}

// BenchmarkFloor is BenchmarkOrchestrator's baseline: per incident, 8
// autocommit writes of a 2 KB row (an INSERT and 7 UPDATEs), at 1 and 16
// incidents at once.
func BenchmarkFloor(b *testing.B) {
	for _, conc := range []int{1, 16} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			pool := newPool(b, func(c *pgxpool.Config) { c.MaxConns = 32 })
			ctx := context.Background()
			_, err := pool.Exec(ctx, `CREATE TABLE floor (id text PRIMARY KEY, version bigint NOT NULL, body text NOT NULL)`)
			require.NoError(b, err)
			body := strings.Repeat("x", 2048)
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range conc {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						id := "inc_" + strconv.FormatInt(i, 10)
						if _, err := pool.Exec(ctx, `INSERT INTO floor VALUES ($1, 1, $2)`, id, body); err != nil {
							b.Error(err)
							return
						}
						for v := int64(1); v < 8; v++ {
							if _, err := pool.Exec(ctx, `UPDATE floor SET version = $3, body = $2 WHERE id = $1 AND version = $4`,
								id, body, v+1, v); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incidents/s")
		})
	}
}

// TestOrchestratorHundredThousandCustomers: one incident whose
// investigation finds 100,000 affected customers, driven by the
// orchestrator on PostgreSQL until every notice is sent and it closes,
// within a minute.
func TestOrchestratorHundredThousandCustomers(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("100,000 customers, timed: skipped with -short and under the race detector")
	}
	const n = 100_000
	s := newStore(t)
	watch := newClosedWatch()
	o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(n, nil)), breach.WithObserver(watch),
		breach.WithLease("big", 30*time.Second), breach.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	start := time.Now()
	rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_big", Account: "acct_0",
		Severity: incident.SeverityCritical})
	require.NoError(t, err)
	select {
	case <-watch.wait(rc.IncidentID):
	case <-time.After(3 * time.Minute):
		t.Fatal("not closed after 3 minutes")
	}
	took := time.Since(start)
	t.Logf("%d customers notified and the incident closed in %v", n, took)
	head, err := o.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	assert.Equal(t, n, head.Outreach.Sent)
	var sent int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM incident_deliveries WHERE status = 'sent'`).Scan(&sent))
	assert.Equal(t, n, sent)
	assert.Less(t, took, time.Minute)
}

var _ incident.Store = (*pgstore.Store)(nil)
