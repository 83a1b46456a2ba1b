package breach

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// manyCustomers returns a playbook whose investigation finds n affected
// customers, notified on one channel by a no-op notifier.
func manyCustomers(n int) Playbook {
	pb := benchPlaybook()
	customers := make([]incident.Customer, n)
	for i := range customers {
		id := "acct_" + strconv.Itoa(i)
		customers[i] = incident.Customer{ID: id, Email: id + "@example.com"}
	}
	pb.Investigator = incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
		return incident.Findings{Impact: incident.Impact{Customers: customers, Data: []incident.DataCategory{incident.DataAPIAccess}}}, nil
	})
	pb.Notifiers = []notify.Route{{Channel: "email", Notifier: notify.Func(func(context.Context, notify.Message) error { return nil })}}
	return pb
}

// runManyCustomers takes one incident with n affected customers from Report
// to closed, every notice sent, and returns its head.
func runManyCustomers(tb testing.TB, o *Orchestrator, subject string) *incident.Incident {
	ctx := context.Background()
	rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: subject, Account: "acct_0", Severity: incident.SeverityCritical})
	if err != nil {
		tb.Fatal(err)
	}
	if err := o.settle(ctx, rc.IncidentID); err != nil {
		tb.Fatal(err)
	}
	inc, err := o.store.Head(ctx, rc.IncidentID)
	if err != nil {
		tb.Fatal(err)
	}
	return inc
}

// BenchmarkManyCustomers: one incident whose investigation finds N affected
// customers, MemStore, one channel, a no-op notifier, from Report until it
// is closed with every notice sent. It reports the cost per customer and
// the memory the store retains per customer (heap after a GC, less the
// heap before), beside a baseline in the same run: the notifier's calls
// alone (N calls through the same bounded concurrency, nothing recorded).
func BenchmarkManyCustomers(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("customers="+strconv.Itoa(n), func(b *testing.B) {
			pb := manyCustomers(n)
			b.ReportAllocs()
			var retained uint64
			i := 0
			for b.Loop() {
				i++
				store := incident.NewMemStore()
				o, err := New(store, WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
				if err != nil {
					b.Fatal(err)
				}
				before := heapAfterGC()
				inc := runManyCustomers(b, o, "key_"+strconv.Itoa(i))
				if inc.State != incident.StateClosed || inc.Outreach.Sent != n {
					b.Fatalf("state %s, %d of %d sent", inc.State, inc.Outreach.Sent, n)
				}
				b.StopTimer()
				if after := heapAfterGC(); after > before {
					retained = after - before
				}
				runtime.KeepAlive(store)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/customer")
			b.ReportMetric(float64(retained)/float64(n), "retained-B/customer")
		})
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestManyCustomers checks the batched notification end to end: every
// affected customer gets exactly one notice, recorded as sent, in a few
// writes per batch rather than per customer.
func TestManyCustomers(t *testing.T) {
	const n = 2_345
	store := &countingStore{MemStore: incident.NewMemStore()}
	o, err := New(store, WithPlaybook(manyCustomers(n)), WithDelivery(200, 8), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	inc := runManyCustomers(t, o, "key_many")
	t.Logf("%d customers in %v, %d writes", n, time.Since(start), store.writes.Load())
	if inc.State != incident.StateClosed || inc.Outreach.Sent != n || inc.Outreach.Total() != n {
		t.Fatalf("state %s, outreach %+v", inc.State, inc.Outreach)
	}
	ctx := context.Background()
	seen := map[string]bool{}
	q := incident.DeliveryQuery{Limit: 300}
	for {
		page, err := o.Deliveries(ctx, inc.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			if d.Status != incident.DeliverySent || seen[d.Recipient] {
				t.Fatalf("delivery %+v (seen before: %v)", d, seen[d.Recipient])
			}
			seen[d.Recipient] = true
		}
		if len(page) < q.Limit {
			break
		}
		q.After = page[len(page)-1].IdempotencyKey
	}
	if len(seen) != n {
		t.Fatalf("%d deliveries, want %d", len(seen), n)
	}
	// 12 batches of 200: one claim write each but the first (folded into
	// the findings), one result write each, and the steps around them.
	batches := (n + 199) / 200
	if store.writes.Load() > int64(2*batches+8) {
		t.Fatalf("%d writes for %d batches", store.writes.Load(), batches)
	}
}

// TestStoreReadsOfAnIncident: an incident of the API-key playbook makes
// no look-up before its Create, and its first page of customers is not
// read back from the store (the write of the findings stored it): reads
// of customers start at the second page.
func TestStoreReadsOfAnIncident(t *testing.T) {
	const batch = 200
	tests := []struct {
		customers, reads int
	}{
		{1, 0},
		{batch - 1, 0},
		{batch, 0}, // a full first page: the head's count says it was the last
		{batch + 1, 1},
		{3*batch + 5, 3},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.customers), func(t *testing.T) {
			store := &countingStore{MemStore: incident.NewMemStore()}
			o, err := New(store, WithPlaybook(manyCustomers(tt.customers)), WithDelivery(batch, 8), WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(t, err)
			inc := runManyCustomers(t, o, "key_reads")
			require.Equal(t, incident.StateClosed, inc.State)
			assert.Equal(t, tt.customers, inc.Outreach.Sent, "every customer notified once")
			assert.Zero(t, store.findOpen.Load(), "a new key is created without a look-up")
			assert.Equal(t, int64(tt.reads), store.customers.Load(), "pages of customers read")
			_, kept := o.pages.Load(inc.ID)
			assert.False(t, kept, "nothing kept of an ended incident")
		})
	}
}

// TestFirstPageIsNotUsedAfterAnotherWrite: a write between the findings
// and the notify step (a person's note) makes the notify step read the
// first page from the store.
func TestFirstPageIsNotUsedAfterAnotherWrite(t *testing.T) {
	store := &countingStore{MemStore: incident.NewMemStore()}
	pb := manyCustomers(3)
	o, err := New(store, WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx := context.Background()
	rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_note", Account: "acct_0", Severity: incident.SeverityCritical})
	require.NoError(t, err)
	for {
		inc, err := o.store.Head(ctx, rc.IncidentID)
		require.NoError(t, err)
		if inc.State == incident.StateNotifying {
			break
		}
		more, err := o.drive(ctx, ctx, rc.IncidentID)
		require.NoError(t, err)
		require.True(t, more, "stopped in %s", inc.State)
	}
	_, kept := o.pages.Load(rc.IncidentID)
	require.True(t, kept, "the first page kept from the findings")
	require.NoError(t, o.AddNote(ctx, rc.IncidentID, "alice", "calling the customer first"))
	require.NoError(t, o.settle(ctx, rc.IncidentID))
	inc, err := o.store.Head(ctx, rc.IncidentID)
	require.NoError(t, err)
	assert.Equal(t, incident.StateClosed, inc.State)
	assert.Equal(t, 3, inc.Outreach.Sent)
	assert.EqualValues(t, 1, store.customers.Load(), "the page read from the store")
}

// countingStore counts the writes, look-ups and pages of customers made
// to a MemStore.
type countingStore struct {
	*incident.MemStore
	writes    atomic.Int64
	findOpen  atomic.Int64
	customers atomic.Int64
}

func (s *countingStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	s.findOpen.Add(1)
	return s.MemStore.FindOpen(ctx, key)
}

func (s *countingStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	s.customers.Add(1)
	return s.MemStore.Customers(ctx, id, after, limit)
}

func (s *countingStore) Create(ctx context.Context, ch incident.Change) error {
	s.writes.Add(1)
	return s.MemStore.Create(ctx, ch)
}

func (s *countingStore) Apply(ctx context.Context, ch incident.Change) error {
	s.writes.Add(1)
	return s.MemStore.Apply(ctx, ch)
}

// TestRouteRate: a route's PerSecond spaces its notices: 41 customers at
// 200 a second take at least 200ms, every notice still sent.
func TestRouteRate(t *testing.T) {
	const n = 41
	pb := manyCustomers(n)
	pb.Notifiers[0].PerSecond = 200
	o, err := New(incident.NewMemStore(), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	inc := runManyCustomers(t, o, "key_rate")
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("%d notices at 200/s in %v", n, took)
	}
	if inc.Outreach.Sent != n {
		t.Fatalf("outreach %+v", inc.Outreach)
	}
}
