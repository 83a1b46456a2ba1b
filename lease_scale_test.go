package breach_test

import (
	"context"
	"flag"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// scale runs the tests with 10,000 incidents, which .ci/run runs on their
// own (without the race detector, whose cost would be what they measure):
//
//	go test -run 'TestTakeoverWithManyOpenIncidents|TestIdleStoreCalls' -breach.scale .
var scale = flag.Bool("breach.scale", false, "run the scale tests of leases with 10,000 open incidents")

// callCountingStore counts every call a MemStore gets: on PostgreSQL each
// is a statement (or one transaction).
type callCountingStore struct {
	*incident.MemStore
	calls  atomic.Int64
	mu     sync.Mutex
	byName map[string]int
}

// count counts a call of the method name.
func (s *callCountingStore) count(name string) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]int{}
	}
	s.byName[name]++
}

// snapshot returns the calls so far by method.
func (s *callCountingStore) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byName))
	for k, v := range s.byName {
		out[k] = v
	}
	return out
}

func (s *callCountingStore) Create(ctx context.Context, ch incident.Change) error {
	s.count("Create")
	return s.MemStore.Create(ctx, ch)
}
func (s *callCountingStore) Apply(ctx context.Context, ch incident.Change) error {
	s.count("Apply")
	return s.MemStore.Apply(ctx, ch)
}
func (s *callCountingStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	s.count("Head")
	return s.MemStore.Head(ctx, id)
}
func (s *callCountingStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	s.count("FindOpen")
	return s.MemStore.FindOpen(ctx, key)
}
func (s *callCountingStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	s.count("ListOpen")
	return s.MemStore.ListOpen(ctx)
}
func (s *callCountingStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	s.count("Lease")
	return s.MemStore.Lease(ctx, id, owner, ttl)
}
func (s *callCountingStore) Unlease(ctx context.Context, id, owner string) error {
	s.count("Unlease")
	return s.MemStore.Unlease(ctx, id, owner)
}
func (s *callCountingStore) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	s.count("Renew")
	return s.MemStore.Renew(ctx, owner, ttl)
}
func (s *callCountingStore) Orphans(ctx context.Context, limit int) ([]string, error) {
	s.count("Orphans")
	return s.MemStore.Orphans(ctx, limit)
}

// idleIncidents stores n open incidents that wait for a person
// (escalated), leased to owner for ttl.
func idleIncidents(t *testing.T, s *incident.MemStore, n int, owner string, ttl time.Duration) {
	t.Helper()
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	for i := range n {
		id := "inc_idle_" + strconv.Itoa(i)
		inc := &incident.Incident{ID: id, Kind: "apikey.compromised", Subject: id, DedupKey: "apikey.compromised/" + id,
			Severity: incident.SeverityLow, State: incident.StateEscalated, DetectedAt: at.Add(time.Duration(i) * time.Millisecond),
			Escalation: &incident.Escalation{From: incident.StateInvestigating, Reason: "waits for a person", At: at}}
		inc.Record(incident.Entry{At: at, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "idle"})
		require.NoError(t, s.Create(ctx, incident.Split(inc)))
		ok, err := s.Lease(ctx, id, owner, ttl)
		require.NoError(t, err)
		require.True(t, ok)
	}
}

// TestTakeoverWithManyOpenIncidents: a replica died holding 10,000 idle
// incidents and one it was containing. A surviving replica takes the one
// it was containing over within two lease TTLs of the leases running out.
func TestTakeoverWithManyOpenIncidents(t *testing.T) {
	if !*scale {
		t.Skip("10,000 incidents: run with -breach.scale")
	}
	const ttl = time.Second
	store := incident.NewMemStore()
	idleIncidents(t, store, 10_000, "dead", ttl)
	ctx := context.Background()
	target := &incident.Incident{ID: "inc_target", Kind: "apikey.compromised", Subject: "key_target",
		DedupKey: "apikey.compromised/key_target", Severity: incident.SeverityCritical, State: incident.StateDetected, DetectedAt: time.Now()}
	require.NoError(t, store.Create(ctx, incident.Split(target)))
	leased := time.Now()
	ok, err := store.Lease(ctx, target.ID, "dead", ttl)
	require.NoError(t, err)
	require.True(t, ok)

	contained := make(chan time.Time, 1)
	var once sync.Once
	pb := breach.Playbook{Kind: "apikey.compromised", Strategy: breach.ContainFirst,
		Containment: []containment.Action{{Name: "disable-key", Container: containment.Func(func(ctx context.Context, r containment.Request) error {
			if r.IncidentID == target.ID {
				once.Do(func() { contained <- time.Now() })
			}
			return nil
		})}}}
	o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLease("survivor", ttl),
		breach.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.Run(rctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	select {
	case at := <-contained:
		took := at.Sub(leased.Add(ttl))
		t.Logf("taken over %v after the lease ran out (TTL %v)", took, ttl)
		assert.Less(t, took, 2*ttl)
	case <-time.After(10 * ttl):
		t.Fatal("never taken over")
	}
}

// TestIdleStoreCalls: a replica holding 10,000 open, untouched incidents
// makes a few store calls per lease TTL, not one per incident.
func TestIdleStoreCalls(t *testing.T) {
	if !*scale {
		t.Skip("10,000 incidents: run with -breach.scale")
	}
	const ttl = time.Second
	store := &callCountingStore{MemStore: incident.NewMemStore()}
	idleIncidents(t, store.MemStore, 10_000, "me", time.Hour)
	pb := breach.Playbook{Kind: "apikey.compromised"}
	o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLease("me", ttl),
		breach.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	// The start reads every open incident once; what follows is upkeep.
	require.Eventually(t, func() bool { return store.calls.Load() >= 10_000 }, 30*time.Second, 10*time.Millisecond)
	// Wait for the start's work to end: a window of one TTL with a few
	// calls only.
	settled := func() int64 {
		n := store.calls.Load()
		time.Sleep(ttl) // a measurement window, not synchronisation
		return store.calls.Load() - n
	}
	for i := 0; settled() >= 20; i++ {
		require.Less(t, i, 400, "the start's work never ended")
	}
	const periods = 3
	before, byName, start := store.calls.Load(), store.snapshot(), time.Now()
	time.Sleep(periods * ttl) // the window measured
	calls, elapsed := store.calls.Load()-before, time.Since(start)
	perTTL := float64(calls) / (float64(elapsed) / float64(ttl))
	diff := store.snapshot()
	for k, v := range byName {
		diff[k] -= v
	}
	t.Logf("%d store calls in %v with 10,000 open incidents: %.1f per TTL (%v)", calls, elapsed, perTTL, diff)
	// Renew every third of the TTL and Orphans every half: five a TTL.
	assert.LessOrEqual(t, perTTL, 8.0)
}
