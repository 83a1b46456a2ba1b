package breach_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

var errCrash = errors.New("process crashed")

// crashStore stands for a process that dies before its n-th write: that
// write and every store call after it fail, as if the process were gone.
type crashStore struct {
	incident.Store
	mu      sync.Mutex
	writes  int
	crashAt int // 0: never
	crashed bool
}

func (s *crashStore) write() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.crashAt > 0 && s.writes >= s.crashAt {
		s.crashed = true
	}
	return s.crashed
}

func (s *crashStore) dead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

func (s *crashStore) Create(ctx context.Context, ch incident.Change) error {
	if s.write() {
		return errCrash
	}
	return s.Store.Create(ctx, ch)
}

func (s *crashStore) Apply(ctx context.Context, ch incident.Change) error {
	if s.write() {
		return errCrash
	}
	return s.Store.Apply(ctx, ch)
}

func (s *crashStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.Head(ctx, id)
}

func (s *crashStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.FindOpen(ctx, key)
}

func (s *crashStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.ListOpen(ctx)
}

func (s *crashStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.Entries(ctx, id, from, limit)
}

func (s *crashStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.Deliveries(ctx, id, q)
}

func (s *crashStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	if s.dead() {
		return nil, errCrash
	}
	return s.Store.Customers(ctx, id, after, limit)
}

// inbox is the customers' side: it drops a notice whose idempotency key it
// has seen, as a provider honouring the key does.
type inbox struct {
	mu       sync.Mutex
	attempts map[string]int                // key → calls
	received map[string]notify.Message     // key → first message
	per      map[[2]string]map[string]bool // (recipient, channel) → keys
}

func newInbox() *inbox {
	return &inbox{attempts: map[string]int{}, received: map[string]notify.Message{}, per: map[[2]string]map[string]bool{}}
}

func (b *inbox) notifier(channel string) notify.Notifier {
	return notify.Func(func(ctx context.Context, m notify.Message) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.attempts[m.IdempotencyKey]++
		if _, dup := b.received[m.IdempotencyKey]; !dup {
			b.received[m.IdempotencyKey] = m
		}
		k := [2]string{m.Recipient.ID, channel}
		if b.per[k] == nil {
			b.per[k] = map[string]bool{}
		}
		b.per[k][m.IdempotencyKey] = true
		return nil
	})
}

func crashPlaybook(box *inbox, applied *sync.Map) breach.Playbook {
	counting := func(name string) containment.Container {
		return containment.Func(func(ctx context.Context, req containment.Request) error {
			v, _ := applied.LoadOrStore(req.IdempotencyKey, new(int))
			*(v.(*int))++ // serialised per key: one action runs at a time
			return nil
		})
	}
	return breach.Playbook{
		Kind:     "apikey.compromised",
		Strategy: breach.ContainFirst,
		Containment: []containment.Action{
			{Name: "disable-key", Container: counting("disable-key")},
			{Name: "block-addresses", Container: counting("block-addresses")},
		},
		ContainConcurrency: 1,
		Investigator: impactInvestigator(incident.Impact{
			Customers: []incident.Customer{customer, {ID: "acct_8", Email: "ops@contoso.example"}},
			Data:      []incident.DataCategory{incident.DataAPIAccess},
		}),
		Notifiers: []notify.Route{
			{Channel: "email", Notifier: box.notifier("email")},
			{Channel: "webhook", Notifier: box.notifier("webhook")},
		},
		Tasks:       []breach.TaskSpec{{ID: "rotate", Title: "Rotate partner secrets"}},
		AutoResolve: true,
		AutoClose:   true,
	}
}

// crashWrites is how many writes the crash playbook's incident takes from
// the signal to closed: its creation (holding the first action's claim),
// the first action's result (with the second's claim), the second's (with
// the moves to investigating), the findings (with the claims of the one
// batch of notices) and the batch's results (with the moves to closed).
// The four notices cost one claim write and one result write, not one per
// notice.
const crashWrites = 5

// TestCrashAtEveryPersistPoint kills the orchestrator before each write of
// the API-key playbook in turn, starts a new one on the same store, and
// checks that the incident still ends closed with every customer told
// exactly once per channel.
func TestCrashAtEveryPersistPoint(t *testing.T) {
	// A clean run counts the writes: every one is a point to crash at.
	total := 0
	synctest.Test(t, func(t *testing.T) {
		cs := &crashStore{Store: incident.NewMemStore()}
		inc := crashRun(t, cs, newInbox(), &sync.Map{}, "")
		require.Equal(t, incident.StateClosed, inc.State)
		total = cs.writes
	})
	require.Equal(t, crashWrites, total, "the playbook's persist points")
	t.Logf("%d store writes from the signal to the closed incident", total)

	for n := 1; n <= total; n++ {
		t.Run(fmt.Sprintf("crash before write %d of %d", n, total), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := incident.NewMemStore()
				box, applied := newInbox(), &sync.Map{}
				first := &crashStore{Store: mem, crashAt: n}
				crashRun(t, first, box, applied, "")
				require.True(t, first.dead(), "the first process crashed")

				// A new process on the same store finishes the work. The
				// detector reports again only if the first report was lost.
				opened, err := mem.ListOpen(context.Background())
				require.NoError(t, err)
				id := ""
				if len(opened) == 1 {
					id = opened[0].ID
				}
				inc := crashRun(t, &crashStore{Store: mem}, box, applied, id)
				assert.Equal(t, incident.StateClosed, inc.State)
				assert.NoError(t, inc.Timeline.Verify())
				assert.Len(t, inc.Deliveries, 4)
				for _, d := range inc.Deliveries {
					assert.Equal(t, incident.DeliverySent, d.Status)
				}
				assert.Equal(t, incident.Outreach{Sent: 4, Cursor: "acct_8"}, outreachOf(inc))
				assert.Equal(t, []string{"notices via email: 2 sent", "notices via webhook: 2 sent"}, deliveryEntries(inc),
					"the one batch's results are recorded once")
				box.mu.Lock()
				defer box.mu.Unlock()
				assert.Len(t, box.received, 4, "one notice per customer and channel, by idempotency key")
				assert.Len(t, box.per, 4)
				for k, keys := range box.per {
					assert.Len(t, keys, 1, "%v was sent under one key only", k)
				}
				for _, a := range inc.Actions {
					assert.Equal(t, incident.ActionApplied, a.Status)
					_, ok := applied.Load(a.IdempotencyKey)
					assert.True(t, ok, "action %s was applied with its recorded key", a.Name)
				}
				open, err := mem.ListOpen(context.Background())
				require.NoError(t, err)
				assert.Empty(t, open)
			})
		})
	}
}

// crashRun runs one process on store: it reports the leak unless id names
// the incident a previous process opened, drives until the incident closes
// or the store dies, and returns the incident as stored.
func crashRun(t *testing.T, store *crashStore, box *inbox, applied *sync.Map, id string) *incident.Incident {
	t.Helper()
	o, err := breach.New(store, breach.WithPlaybook(crashPlaybook(box, applied)),
		breach.WithLogger(slog.New(slog.DiscardHandler)), breach.WithShutdownGrace(0))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var rerr error
	if id == "" {
		var rc incident.Receipt
		rc, rerr = o.Report(ctx, leak())
		id = rc.IncidentID
	}
	if rerr == nil {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		_, _ = o.Await(wctx, id, func(inc *incident.Incident) bool { return inc.State == incident.StateClosed })
		wcancel()
	}
	synctest.Wait()
	cancel()
	require.NoError(t, <-done)
	if store.dead() {
		return nil
	}
	require.NoError(t, rerr)
	inc, err := incident.Load(context.Background(), store.Store, id)
	require.NoError(t, err)
	return inc
}

// changeLog is a MemStore that notes, for each Apply, the statuses of the
// deliveries it writes and the transitions it records.
type changeLog struct {
	*incident.MemStore
	mu      sync.Mutex
	changes []string
}

func (s *changeLog) Apply(ctx context.Context, ch incident.Change) error {
	err := s.MemStore.Apply(ctx, ch)
	if err == nil && len(ch.Deliveries) > 0 {
		n := map[incident.DeliveryStatus]int{}
		for _, d := range ch.Deliveries {
			n[d.Status]++
		}
		desc := fmt.Sprint(n)
		for _, e := range ch.Entries {
			if e.Type == incident.EntryTransition {
				desc += " " + string(e.From) + ">" + string(e.To)
			}
		}
		s.mu.Lock()
		s.changes = append(s.changes, desc)
		s.mu.Unlock()
	}
	return err
}

// TestNoticesClaimedAndRecordedPerBatch: five customers notified two at a
// time take three batches, each claimed in one write (the first with the
// findings) and recorded in one more, which sums it up on the timeline and
// moves the cursor on; the last batch's results end the notification.
func TestNoticesClaimedAndRecordedPerBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		box := newInbox()
		store := &changeLog{MemStore: incident.NewMemStore()}
		pb := breach.Playbook{Kind: "data.exposed", Strategy: breach.InvestigateFirst,
			Investigator: impactInvestigator(incident.Impact{Customers: customers(5), Data: []incident.DataCategory{incident.DataFinancial}}),
			Notifiers:    []notify.Route{{Channel: "email", Notifier: box.notifier("email")}},
			AutoResolve:  true, AutoClose: true}
		o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithDelivery(2, 4), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), incident.Signal{Kind: "data.exposed", Subject: "bucket-7", Severity: incident.SeverityHigh})
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateClosed)

		store.mu.Lock()
		assert.Equal(t, []string{
			"map[claimed:2] investigating>notifying", // with the findings
			"map[sent:2]",
			"map[claimed:2]",
			"map[sent:2]",
			"map[claimed:1]",
			"map[sent:1] notifying>resolving resolving>resolved resolved>closed",
		}, store.changes, "one claim write and one result write per batch")
		store.mu.Unlock()
		assert.Equal(t, []string{"notices via email: 2 sent", "notices via email: 2 sent", "notices via email: 1 sent"},
			deliveryEntries(inc))
		assert.Equal(t, incident.Outreach{Sent: 5, Cursor: "acct_004"}, outreachOf(inc))
		box.mu.Lock()
		assert.Len(t, box.received, 5)
		box.mu.Unlock()

		// The head counts; Deliveries pages the notices, in the order they
		// were claimed.
		head, err := o.Head(context.Background(), rc.IncidentID)
		require.NoError(t, err)
		assert.Empty(t, head.Deliveries)
		assert.Equal(t, inc.Outreach, head.Outreach)
		var recipients []string
		q := incident.DeliveryQuery{Limit: 2}
		for {
			page, err := o.Deliveries(context.Background(), rc.IncidentID, q)
			require.NoError(t, err)
			for _, d := range page {
				assert.Equal(t, incident.DeliverySent, d.Status)
				recipients = append(recipients, d.Recipient)
			}
			if len(page) < q.Limit {
				break
			}
			q.After = page[len(page)-1].IdempotencyKey
		}
		assert.Equal(t, []string{"acct_000", "acct_001", "acct_002", "acct_003", "acct_004"}, recipients)
	})
}
