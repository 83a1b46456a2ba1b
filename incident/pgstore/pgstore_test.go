package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
	"github.com/breachkit/breach/incident/pgstore"
)

// TestStore runs the conformance suite: the contract of incident.Store,
// Leaser and Lister.
func TestStore(t *testing.T) {
	databaseURL(t)
	incidenttest.TestStore(t, func(t *testing.T) incident.Store { return newStore(t) })
}

func TestCreateLoadRoundTrip(t *testing.T) {
	s := newStore(t)
	inc := fullIncident("inc-1", "key-1")
	head := create(t, s, inc)
	assert.Empty(t, head.Timeline)
	got := load(t, s, "inc-1")
	assertSame(t, whole(inc, 1), got)
	assert.NoError(t, got.Timeline.VerifyHead(got.Chain.Head))
	assert.Equal(t, "bad byte \uFFFD repaired", got.Timeline[3].Detail, "text that is not UTF-8 comes back repaired, as it was hashed")

	h, err := s.Head(t.Context(), "inc-1")
	require.NoError(t, err)
	assert.Empty(t, h.Timeline, "a head has no timeline")
	assert.Empty(t, h.Deliveries, "a head has no deliveries")
	assert.Empty(t, h.Investigation.Impact.Customers, "a head has no customers")
	assert.Equal(t, 3, h.Investigation.Impact.Affected)
	assert.Equal(t, incident.Chain{Len: 5, Head: inc.Timeline.Head()}, h.Chain)
}

func TestApplyWritesParts(t *testing.T) {
	s := newStore(t)
	inc := fullIncident("inc-1", "key-1")
	h := create(t, s, inc)

	h.Record(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "second change"})
	h.Record(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "NUL \x00"})
	h.Summary = "changed"
	sent := inc.Deliveries[1]
	sent.Status, sent.SentAt = incident.DeliverySent, t0
	added := incident.Delivery{Recipient: "cust_9", Channel: "sms", IdempotencyKey: "brk_9", Status: incident.DeliveryClaimed}
	renamed := incident.Customer{Email: "only-email@example.net", Name: "Now Named"}
	newCust := incident.Customer{ID: "cust_9", Name: "Nine"}
	h = apply(t, s, h, []incident.Delivery{added, sent}, []incident.Customer{newCust, renamed})
	assert.EqualValues(t, 2, h.Version)

	want := whole(inc, 2)
	want.Summary = "changed"
	want.Timeline.Append(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "second change"})
	want.Timeline.Append(incident.Entry{At: t0, Actor: "alice", Type: incident.EntryNote, Detail: "NUL \x00"})
	want.Chain = incident.Chain{Len: 7, Head: want.Timeline.Head()}
	want.Deliveries[1] = sent // replaced where it was
	want.Deliveries = append(want.Deliveries, added)
	want.Investigation.Impact.Customers[2] = renamed
	want.Investigation.Impact.Customers = append(want.Investigation.Impact.Customers, newCust)
	got := load(t, s, "inc-1")
	assertSame(t, want, got)
	assert.NoError(t, got.Timeline.VerifyHead(h.Chain.Head))

	// A change without entries keeps the chain; one with nothing but a
	// head is a head write.
	h.Severity = incident.SeverityLow
	assert.EqualValues(t, 3, apply(t, s, h, nil, nil).Version)
	want.Severity, want.Version = incident.SeverityLow, 3
	assertSame(t, want, load(t, s, "inc-1"))
}

// TestChangeDuplicatesInOneChange: a key twice in one change is written
// where it first came, with its last value, as applying in order would.
func TestChangeDuplicatesInOneChange(t *testing.T) {
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	a1 := incident.Delivery{IdempotencyKey: "a", Status: incident.DeliveryClaimed}
	b := incident.Delivery{IdempotencyKey: "b", Status: incident.DeliveryClaimed}
	a2 := incident.Delivery{IdempotencyKey: "a", Status: incident.DeliverySent}
	h.Investigation = &incident.Investigation{}
	h = apply(t, s, h, []incident.Delivery{a1, b, a2},
		[]incident.Customer{{ID: "x", Name: "first"}, {ID: "y"}, {ID: "x", Name: "last"}})
	got := load(t, s, "inc-1")
	assert.Equal(t, []incident.Delivery{a2, b}, got.Deliveries)
	assert.Equal(t, []incident.Customer{{ID: "x", Name: "last"}, {ID: "y"}}, got.Investigation.Impact.Customers)

	// Later writes keep the first order too.
	c := incident.Delivery{IdempotencyKey: "c"}
	apply(t, s, h, []incident.Delivery{c, {IdempotencyKey: "a", Status: incident.DeliveryFailed}}, nil)
	got = load(t, s, "inc-1")
	assert.Equal(t, []string{"a", "b", "c"}, deliveryKeys(got.Deliveries))
	assert.Equal(t, incident.DeliveryFailed, got.Deliveries[0].Status)
}

func deliveryKeys(ds []incident.Delivery) []string {
	var keys []string
	for _, d := range ds {
		keys = append(keys, d.IdempotencyKey)
	}
	return keys
}

func TestApplyErrors(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	h = apply(t, s, h, nil, nil) // version 2

	t.Run("conflict", func(t *testing.T) {
		stale := h.Clone()
		stale.Version = 1
		stale.Record(incident.Entry{At: t0, Type: incident.EntryNote})
		err := s.Apply(ctx, next(stale, []incident.Delivery{{IdempotencyKey: "k"}}, nil))
		var ce *incident.ConflictError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, incident.ConflictError{ID: "inc-1", Expected: 1, Actual: 2}, *ce)
		future := h.Clone()
		future.Version = 7
		assert.ErrorIs(t, s.Apply(ctx, next(future, nil, nil)), incident.ErrConflict)
	})
	t.Run("not found", func(t *testing.T) {
		other := h.Clone()
		other.ID = "inc-nope"
		assert.ErrorIs(t, s.Apply(ctx, next(other, nil, nil)), incident.ErrNotFound)
		// Unknown wins over an invalid change, as in MemStore.
		other.Timeline = incident.Timeline{{Detail: "in the head"}}
		ch := incident.Change{Head: other}
		assert.ErrorIs(t, s.Apply(ctx, ch), incident.ErrNotFound)
		other.ID = "NUL \x00"
		assert.ErrorIs(t, s.Apply(ctx, next(other, nil, nil)), incident.ErrNotFound)
	})
	t.Run("chain", func(t *testing.T) {
		// Entries that do not continue the stored chain: the head claims a
		// length the store does not have.
		bad := h.Clone()
		bad.Chain.Len = 0
		bad.Record(incident.Entry{At: t0, Type: incident.EntryNote})
		assert.ErrorIs(t, s.Apply(ctx, next(bad, nil, nil)), incident.ErrInvalidIncident)
		// No entries, but another head hash.
		bad = h.Clone()
		bad.Chain.Head[0] ^= 1
		assert.ErrorIs(t, s.Apply(ctx, next(bad, nil, nil)), incident.ErrInvalidIncident)
		// Stale and invalid: the conflict is what the caller can act on.
		bad.Version = 1
		assert.ErrorIs(t, s.Apply(ctx, next(bad, nil, nil)), incident.ErrConflict)
	})
	t.Run("invalid", func(t *testing.T) {
		for name, mod := range map[string]func(*incident.Change){
			"nil head":           func(ch *incident.Change) { ch.Head = nil },
			"no dedup key":       func(ch *incident.Change) { ch.Head.DedupKey = "" },
			"timeline in head":   func(ch *incident.Change) { ch.Head.Timeline = incident.Timeline{{}} },
			"deliveries in head": func(ch *incident.Change) { ch.Head.Deliveries = []incident.Delivery{{IdempotencyKey: "x"}} },
			"unkeyed delivery":   func(ch *incident.Change) { ch.Deliveries = []incident.Delivery{{Recipient: "x"}} },
			"unkeyed customer":   func(ch *incident.Change) { ch.Customers = []incident.Customer{{Name: "x"}} },
			"NUL in a key":       func(ch *incident.Change) { ch.Deliveries = []incident.Delivery{{IdempotencyKey: "a\x00b"}} },
			"not UTF-8 in a key": func(ch *incident.Change) { ch.Customers = []incident.Customer{{ID: "\xff"}} },
			"NUL in the kind":    func(ch *incident.Change) { ch.Head.Kind = "\x00" },
		} {
			ch := next(h, nil, nil)
			mod(&ch)
			assert.ErrorIs(t, s.Apply(ctx, ch), incident.ErrInvalidIncident, name)
		}
	})
	// Nothing of the failed changes was written.
	got := load(t, s, "inc-1")
	assertSame(t, whole(newIncident("inc-1", "key-1"), 2), got)
}

func TestCreateErrors(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	create(t, s, newIncident("inc-1", "key-1"))

	err := s.Create(ctx, incident.Split(newIncident("inc-2", "key-1")))
	var dup *incident.DuplicateError
	require.ErrorAs(t, err, &dup)
	assert.Equal(t, incident.DuplicateError{DedupKey: "key-1", ExistingID: "inc-1"}, *dup)

	assert.ErrorIs(t, s.Create(ctx, incident.Split(newIncident("inc-1", "key-2"))), incident.ErrInvalidIncident, "ID exists")
	assert.ErrorIs(t, s.Create(ctx, incident.Split(newIncident("inc-1", "key-1"))), incident.ErrInvalidIncident,
		"ID exists, with the key it holds")
	bad := incident.Split(newIncident("inc-3", "key-3"))
	bad.Head.Chain.Len = 2
	assert.ErrorIs(t, s.Create(ctx, bad), incident.ErrInvalidIncident, "chain that the entries do not reach")
	bad = incident.Split(newIncident("inc-3", "key-3"))
	bad.Head.Account = "NUL \x00"
	assert.ErrorIs(t, s.Create(ctx, bad), incident.ErrInvalidIncident)
	_, err = s.Head(ctx, "inc-3")
	assert.ErrorIs(t, err, incident.ErrNotFound, "no failed create leaves a row")

	closed := newIncident("inc-4", "key-1")
	closed.State = incident.StateClosed
	create(t, s, closed) // a closed incident does not hold the key
}

func TestDedupKeyAcrossApply(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	a := create(t, s, newIncident("inc-a", "key-1"))
	a.State = incident.StateClosed
	a = apply(t, s, a, nil, nil)
	b := create(t, s, newIncident("inc-b", "key-1"))

	// Reopening a onto the key b holds.
	a.State = incident.StateDetected
	err := s.Apply(ctx, next(a, nil, nil))
	var dup *incident.DuplicateError
	require.ErrorAs(t, err, &dup)
	assert.Equal(t, "inc-b", dup.ExistingID)

	// Moving b to another key frees key-1.
	b.DedupKey = "key-2"
	b = apply(t, s, b, nil, nil)
	apply(t, s, a, nil, nil)
	found, err := s.FindOpen(ctx, "key-1")
	require.NoError(t, err)
	assert.Equal(t, "inc-a", found.ID)
	found, err = s.FindOpen(ctx, "key-2")
	require.NoError(t, err)
	assert.Equal(t, "inc-b", found.ID)
	assert.Equal(t, b.Version, found.Version)
	_, err = s.FindOpen(ctx, "key-3")
	assert.ErrorIs(t, err, incident.ErrNotFound)
}

func TestListOpenOrder(t *testing.T) {
	s := newStore(t)
	for i, id := range []string{"b", "a", "c", "B"} {
		inc := newIncident(id, "key-"+id)
		inc.DetectedAt = t0.Add(time.Duration(i%2) * time.Minute)
		create(t, s, inc)
	}
	closed := newIncident("z", "key-z")
	closed.State = incident.StateDismissed
	create(t, s, closed)
	open, err := s.ListOpen(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, inc := range open {
		ids = append(ids, inc.ID)
		assert.Empty(t, inc.Timeline)
	}
	assert.Equal(t, []string{"b", "c", "B", "a"}, ids, "oldest first, ties by ID in byte order")
}

func TestPages(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	h.Investigation = &incident.Investigation{}
	const n = 25
	var dels []incident.Delivery
	var custs []incident.Customer
	for i := range n {
		h.Record(incident.Entry{At: t0, Type: incident.EntryNote, Detail: fmt.Sprint(i)})
		st := incident.DeliveryClaimed
		if i%3 == 0 {
			st = incident.DeliverySent
		}
		dels = append(dels, incident.Delivery{IdempotencyKey: fmt.Sprintf("k%02d", n-i), Status: st})
		custs = append(custs, incident.Customer{ID: fmt.Sprintf("c%02d", n-i)})
	}
	apply(t, s, h, dels, custs)

	tl, err := s.Entries(ctx, "inc-1", 0, 10)
	require.NoError(t, err)
	require.Len(t, tl, 10)
	assert.Equal(t, "opened", tl[0].Detail)
	tl, err = s.Entries(ctx, "inc-1", 20, 10)
	require.NoError(t, err)
	require.Len(t, tl, 6, "the last page is short")
	assert.Equal(t, "24", tl[5].Detail)
	tl, err = s.Entries(ctx, "inc-1", 26, 0)
	require.NoError(t, err)
	assert.Empty(t, tl)
	_, err = s.Entries(ctx, "inc-1", -1, 0)
	assert.ErrorIs(t, err, incident.ErrInvalidFilter)
	_, err = s.Entries(ctx, "inc-1", 0, incident.MaxPageSize+1)
	assert.ErrorIs(t, err, incident.ErrInvalidFilter)
	_, err = s.Entries(ctx, "nope", 0, 0)
	assert.ErrorIs(t, err, incident.ErrNotFound)

	// Deliveries: in the order written (not by key), by cursor.
	page, err := s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, deliveryKeys(dels[:10]), deliveryKeys(page))
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Limit: 10, After: page[9].IdempotencyKey})
	require.NoError(t, err)
	assert.Equal(t, deliveryKeys(dels[10:20]), deliveryKeys(page))
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Status: incident.DeliverySent, Limit: 3, After: "k22"})
	require.NoError(t, err)
	assert.Equal(t, []string{"k19", "k16", "k13"}, deliveryKeys(page), "by status after a cursor")
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{After: "no such key"})
	require.NoError(t, err)
	assert.Empty(t, page)
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Keys: []string{"k03", "nope", "k25", "k03", "\x00"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"k03", "k25", "k03"}, deliveryKeys(page), "in the order of Keys")
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Keys: []string{"k03", "k25"}, Status: incident.DeliverySent})
	require.NoError(t, err)
	assert.Equal(t, []string{"k25"}, deliveryKeys(page))
	_, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{Limit: -1})
	assert.ErrorIs(t, err, incident.ErrInvalidFilter)
	_, err = s.Deliveries(ctx, "nope", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.Deliveries(ctx, "nope", incident.DeliveryQuery{After: "\x00"})
	assert.ErrorIs(t, err, incident.ErrNotFound)
	page, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{After: "\x00"})
	require.NoError(t, err)
	assert.Empty(t, page)

	cs, err := s.Customers(ctx, "inc-1", "", 4)
	require.NoError(t, err)
	assert.Equal(t, custs[:4], cs)
	cs, err = s.Customers(ctx, "inc-1", "c02", 4)
	require.NoError(t, err)
	assert.Equal(t, custs[24:], cs)
	cs, err = s.Customers(ctx, "inc-1", "nope", 4)
	require.NoError(t, err)
	assert.Empty(t, cs)
	_, err = s.Customers(ctx, "inc-1", "", -1)
	assert.ErrorIs(t, err, incident.ErrInvalidFilter)
	_, err = s.Customers(ctx, "nope", "", 0)
	assert.ErrorIs(t, err, incident.ErrNotFound)

	// An incident without parts: empty pages, not ErrNotFound.
	create(t, s, &incident.Incident{ID: "bare", DedupKey: "bare", State: incident.StateClosed})
	tl, err = s.Entries(ctx, "bare", 0, 0)
	require.NoError(t, err)
	assert.Empty(t, tl)
	page, err = s.Deliveries(ctx, "bare", incident.DeliveryQuery{})
	require.NoError(t, err)
	assert.Empty(t, page)
	cs, err = s.Customers(ctx, "bare", "", 0)
	require.NoError(t, err)
	assert.Empty(t, cs)
}

// statements records what a pool sends: each statement's first word, and
// the round trips (a query, or a batch of them).
type statements struct {
	mu    sync.Mutex
	sent  []string
	trips int
}

func firstWord(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return ""
	}
	return strings.ToUpper(f[0])
}

func (c *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, firstWord(data.SQL))
	c.trips++
	return ctx
}

func (*statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips++
	return ctx
}

func (c *statements) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, firstWord(data.SQL))
}

func (*statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// take returns what was sent since the last take.
func (c *statements) take() (sent []string, trips int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, trips = c.sent, c.trips
	c.sent, c.trips = nil, 0
	return sent, trips
}

// TestOneStatementPerChange: a Create and an Apply that succeed are each
// one transaction of one statement, however many parts they hold, in two
// round trips: BEGIN with the statement, then COMMIT.
func TestOneStatementPerChange(t *testing.T) {
	var trace statements
	s := newStore(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = &trace })
	ctx := t.Context()
	trace.take() // Migrate's
	inc := fullIncident("inc-1", "key-1")
	h := create(t, s, inc)
	sent, trips := trace.take()
	assert.Equal(t, []string{"WITH"}, sent, "Create")
	assert.Equal(t, 1, trips, "Create")

	var dels []incident.Delivery
	for i := range 500 {
		dels = append(dels, incident.Delivery{IdempotencyKey: fmt.Sprint(i), Status: incident.DeliveryClaimed})
		h.Record(incident.Entry{At: t0, Type: incident.EntryDelivery})
	}
	h = apply(t, s, h, dels, inc.Investigation.Impact.Customers)
	sent, trips = trace.take()
	assert.Equal(t, []string{"WITH"}, sent, "Apply")
	assert.Equal(t, 1, trips, "Apply")

	_, err := s.Head(ctx, h.ID)
	require.NoError(t, err)
	sent, trips = trace.take()
	assert.Equal(t, []string{"SELECT"}, sent, "Head")
	assert.Equal(t, 1, trips, "Head")

	stale := h.Clone()
	stale.Version--
	require.ErrorIs(t, s.Apply(ctx, next(stale, dels, nil)), incident.ErrConflict)
	sent, _ = trace.take()
	assert.Equal(t, []string{"WITH", "SELECT"}, sent, "a failed Apply, then the look-up of why")
}

func TestConcurrentApplyOneWins(t *testing.T) {
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	const n = 20
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mine := h.Clone()
			mine.Record(incident.Entry{At: t0, Type: incident.EntryNote, Detail: fmt.Sprint(i)})
			err := s.Apply(context.Background(), next(mine, []incident.Delivery{{IdempotencyKey: fmt.Sprint(i)}}, nil))
			if err == nil {
				wins.Add(1)
				return
			}
			assert.ErrorIs(t, err, incident.ErrConflict)
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
	got := load(t, s, "inc-1")
	assert.Len(t, got.Timeline, 2)
	assert.Len(t, got.Deliveries, 1)
	assert.NoError(t, got.Timeline.VerifyHead(got.Chain.Head))
}

func TestConcurrentCreateSameKey(t *testing.T) {
	s := newStore(t)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Create(context.Background(), incident.Split(newIncident(fmt.Sprint("inc-", i), "key")))
		})
	}
	wg.Wait()
	winner, err := s.FindOpen(t.Context(), "key")
	require.NoError(t, err)
	for i, err := range errs {
		if fmt.Sprint("inc-", i) == winner.ID {
			assert.NoError(t, err)
			continue
		}
		var dup *incident.DuplicateError
		if assert.ErrorAs(t, err, &dup) {
			assert.Equal(t, winner.ID, dup.ExistingID)
		}
	}
}

func TestCancelled(t *testing.T) {
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, s.Create(ctx, incident.Split(newIncident("inc-2", "key-2"))), context.Canceled)
	assert.ErrorIs(t, s.Apply(ctx, next(h, nil, nil)), context.Canceled)
	_, err := s.Head(ctx, "inc-1")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.FindOpen(ctx, "key-1")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListOpen(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Entries(ctx, "inc-1", 0, 0)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Deliveries(ctx, "inc-1", incident.DeliveryQuery{})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Customers(ctx, "inc-1", "", 0)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Renew(ctx, "a", time.Minute)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Orphans(ctx, 0)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.List(ctx, incident.ListFilter{})
	assert.ErrorIs(t, err, context.Canceled)
	assertSame(t, whole(newIncident("inc-1", "key-1"), 1), load(t, s, "inc-1"))
}

// TestCancelledWhileWaiting: an Apply that waits for the head's row lock
// and whose ctx ends returns ctx's error, having written nothing.
func TestCancelledWhileWaiting(t *testing.T) {
	s := newStore(t)
	h := create(t, s, newIncident("inc-1", "key-1"))
	tx, err := s.Pool().Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `SELECT 1 FROM incident_heads WHERE id = 'inc-1' FOR UPDATE`)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	h.Record(incident.Entry{At: t0, Type: incident.EntryNote})
	ch := next(h, []incident.Delivery{{IdempotencyKey: "k"}}, nil)
	err = s.Apply(ctx, ch)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Apply cancelled while waiting for a lock")
	assert.EqualValues(t, 1, ch.Head.Version)
	require.NoError(t, tx.Rollback(t.Context()))
	// The server ran the abandoned statement once the lock was free; wait
	// for its backend to be gone: it must have rolled back.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, s.Pool().QueryRow(t.Context(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
			    AND state <> 'idle' AND query LIKE 'WITH h AS (%UPDATE incident_heads%'`).Scan(&n))
		return n == 0
	}, 10*time.Second, 10*time.Millisecond)
	assertSame(t, whole(newIncident("inc-1", "key-1"), 1), load(t, s, "inc-1"), "the abandoned change was rolled back")
}

// ---- leases ----

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

	// An expired lease can also be taken again by its own owner, as long
	// as nobody took it.
	expire(t, s, "inc-1")
	assert.True(t, lease(t, s, "inc-1", "b"))

	var until, dbNow time.Time
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

func TestRenew(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	for _, id := range []string{"inc-1", "inc-2", "inc-3"} {
		require.True(t, lease(t, s, id, "a"))
	}
	require.True(t, lease(t, s, "inc-4", "b"))
	expire(t, s, "inc-3")
	_, err := s.Pool().Exec(ctx, `UPDATE leases SET until = now() + interval '1 second'`)
	require.NoError(t, err)

	held, err := s.Renew(ctx, "a", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"inc-1": 0, "inc-2": 0, "inc-3": 0}, held, "the leases a holds, on incidents not stored")
	var left time.Duration
	require.NoError(t, s.Pool().QueryRow(ctx,
		`SELECT (extract(epoch FROM until - now()) * 1e9)::bigint FROM leases WHERE incident_id = 'inc-2'`).Scan(&left))
	assert.Greater(t, left, 59*time.Minute)

	expire(t, s, "inc-3")
	held, err = s.Renew(ctx, "a", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"inc-1": 0, "inc-2": 0}, held, "a lease that ran out is not renewed")
	held, err = s.Renew(ctx, "nobody", time.Hour)
	require.NoError(t, err)
	assert.Empty(t, held)
}

func TestOrphans(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	for i, id := range []string{"d", "c", "b", "a"} {
		inc := newIncident(id, "key-"+id)
		inc.DetectedAt = t0.Add(time.Duration(i) * time.Minute)
		create(t, s, inc)
	}
	closed := newIncident("closed", "key-closed")
	closed.State = incident.StateClosed
	create(t, s, closed)
	require.True(t, lease(t, s, "c", "r1"))
	require.True(t, lease(t, s, "b", "r1"))
	require.True(t, lease(t, s, "not-stored", "r1"))
	expire(t, s, "b")

	ids, err := s.Orphans(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"d", "b", "a"}, ids, "open, without a live lease, oldest first")
	ids, err = s.Orphans(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"d", "b"}, ids)
}

func TestList(t *testing.T) {
	s := newStore(t)
	for i := range 7 {
		inc := fullIncident(fmt.Sprint("inc-", i), fmt.Sprint("key-", i))
		inc.DetectedAt = t0.Add(time.Duration(i) * time.Minute)
		if i%2 == 0 {
			inc.State = incident.StateClosed
		}
		create(t, s, inc)
	}
	var ids []string
	f := incident.ListFilter{Limit: 2, States: []incident.State{incident.StateClosed}, Kind: "apikey.compromised"}
	for {
		p, err := s.List(t.Context(), f)
		require.NoError(t, err)
		for _, inc := range p.Incidents {
			ids = append(ids, inc.ID)
			assert.Empty(t, inc.Timeline, "pages hold heads")
			assert.EqualValues(t, 1, inc.Version)
		}
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
	}
	assert.Equal(t, []string{"inc-6", "inc-4", "inc-2", "inc-0"}, ids)
	_, err := s.List(t.Context(), incident.ListFilter{Cursor: "nonsense"})
	assert.ErrorIs(t, err, incident.ErrInvalidFilter)
}

func TestNewNilPool(t *testing.T) {
	_, err := pgstore.New(t.Context(), nil)
	assert.Error(t, err)
	assert.False(t, errors.Is(err, incident.ErrNotFound))
}
