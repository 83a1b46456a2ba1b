package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
)

// TestHundredThousandCustomers notifies 100,000 customers of one incident
// as the orchestrator does: their records and the claims of their notices
// written in changes of 500, then the notices marked sent in changes of
// 500, each change with a timeline entry and the head's counts. Every
// change costs what it holds, so the whole takes well under a minute.
func TestHundredThousandCustomers(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 rows; skipped with -short")
	}
	const (
		n     = 100_000
		batch = 500
		limit = 60 * time.Second
	)
	s := newStore(t)
	ctx := t.Context()
	start := time.Now()
	h := create(t, s, newIncident("inc-big", "key-big"))
	h.Investigation = &incident.Investigation{}
	h.State = incident.StateNotifying
	dels := make([]incident.Delivery, batch)
	custs := make([]incident.Customer, batch)
	for from := 0; from < n; from += batch {
		for i := range batch {
			id := fmt.Sprintf("cust_%06d", from+i)
			custs[i] = incident.Customer{ID: id, Name: "Customer " + id, Email: id + "@example.com"}
			dels[i] = incident.Delivery{Recipient: id, Channel: "email", IdempotencyKey: "brk_" + id,
				Status: incident.DeliveryClaimed, ClaimedAt: t0}
		}
		h.Investigation.Impact.Affected += batch
		h.Outreach.Count(incident.DeliveryClaimed, batch)
		h.Outreach.Cursor = custs[batch-1].ID
		h.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryDelivery,
			Detail: fmt.Sprintf("claimed %d notices", batch)})
		h = apply(t, s, h, dels, custs)
	}
	written := time.Since(start)
	for from := 0; from < n; from += batch {
		for i := range batch {
			id := fmt.Sprintf("cust_%06d", from+i)
			dels[i] = incident.Delivery{Recipient: id, Channel: "email", IdempotencyKey: "brk_" + id,
				Status: incident.DeliverySent, Attempts: 1, ClaimedAt: t0, SentAt: t0.Add(time.Second)}
		}
		h.Outreach.Count(incident.DeliveryClaimed, -batch)
		h.Outreach.Count(incident.DeliverySent, batch)
		h.Record(incident.Entry{At: t0, Actor: incident.ActorSystem, Type: incident.EntryDelivery,
			Detail: fmt.Sprintf("sent %d notices", batch)})
		h = apply(t, s, h, dels, nil)
	}
	took := time.Since(start)
	t.Logf("100,000 customers and deliveries in %d changes of %d: written in %v, marked sent in %v, %v in all",
		n/batch, batch, written.Round(time.Millisecond), (took - written).Round(time.Millisecond), took.Round(time.Millisecond))
	assert.Less(t, took, limit)

	// Spot checks: the order of first writing, the status, the cursor.
	page, err := s.Deliveries(ctx, "inc-big", incident.DeliveryQuery{After: "brk_cust_049999", Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"brk_cust_050000", "brk_cust_050001"}, deliveryKeys(page))
	assert.Equal(t, incident.DeliverySent, page[0].Status)
	page, err = s.Deliveries(ctx, "inc-big", incident.DeliveryQuery{Status: incident.DeliveryClaimed})
	require.NoError(t, err)
	assert.Empty(t, page, "every notice is sent")
	cs, err := s.Customers(ctx, "inc-big", "cust_099998", 0)
	require.NoError(t, err)
	assert.Equal(t, []incident.Customer{custs[batch-1]}, cs)
	head, err := s.Head(ctx, "inc-big")
	require.NoError(t, err)
	assert.Equal(t, incident.Outreach{Sent: n, Cursor: "cust_099999"}, head.Outreach)
	assert.Equal(t, 1+2*n/batch, head.Chain.Len)
	tl, err := s.Entries(ctx, "inc-big", head.Chain.Len-1, 0)
	require.NoError(t, err)
	require.Len(t, tl, 1)
	assert.Equal(t, head.Chain.Head, tl[0].Hash)
}

// BenchmarkApply writes changes of 500 deliveries (claims, then the same
// keys again as sent) to one incident. It reports the database's commits
// per change, from pg_stat_database's xact_commit: one, the statement's
// own.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1, 500} {
		b.Run(fmt.Sprint("deliveries=", size), func(b *testing.B) {
			// One connection, so that the commits counted are this
			// benchmark's (and its statistics are flushed by one backend).
			s := newStore(b, func(cfg *pgxpool.Config) { cfg.MaxConns = 1 })
			h := create(b, s, newIncident("inc-1", "key-1"))
			dels := make([]incident.Delivery, size)
			before := commits(b, s)
			i := 0
			for b.Loop() {
				status := incident.DeliveryClaimed // new keys on even changes, the same keys sent on odd ones
				if i%2 == 1 {
					status = incident.DeliverySent
				}
				for j := range dels {
					dels[j] = incident.Delivery{IdempotencyKey: fmt.Sprint(i/2, "-", j), Status: status}
				}
				h.Record(incident.Entry{At: t0, Type: incident.EntryDelivery})
				ch := next(h, dels, nil)
				if err := s.Apply(context.Background(), ch); err != nil {
					b.Fatal(err)
				}
				h = ch.Head
				i++
			}
			b.StopTimer()
			after := commits(b, s)
			// Less the two statements of commits that the count includes.
			b.ReportMetric(float64(after-before-2)/float64(i), "commits/op")
		})
	}
}

// commits returns the database's committed transactions so far, after
// making the store's connection flush its statistics.
func commits(b *testing.B, s *pgstore.Store) int64 {
	b.Helper()
	ctx := context.Background()
	_, err := s.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(b, err)
	var n int64
	require.NoError(b, s.Pool().QueryRow(ctx,
		`SELECT pg_stat_clear_snapshot() IS NULL, xact_commit FROM pg_stat_database WHERE datname = current_database()`).
		Scan(new(bool), &n))
	return n
}
