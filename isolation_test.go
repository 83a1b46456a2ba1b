package breach_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// panickingStore is a MemStore (a Leaser too) that panics on the at-th call
// of op: "write" (Create and Apply), "head", "findopen", "listopen",
// "entries", "deliveries", "customers" or "lease" (Lease, Unlease, Renew and
// Orphans). A write panics before it reaches the store, or, with after, once
// it has landed. Calls whose context is marked by testRead are the test's
// own looks: they neither count nor panic.
type panickingStore struct {
	*incident.MemStore
	op    string
	at    int
	after bool

	mu     sync.Mutex
	counts map[string]int
	fired  bool
}

// panickingOps are the ops of a panickingStore that the scenario of
// TestPanickingStoreNeverKillsTheProcess calls, writes first. FindOpen is
// not among them: a new key is created without a look-up, and FindOpen
// follows only a Create another incident refused
// (TestPanickingFindOpenIsAnError).
var panickingOps = []string{"write", "head", "listopen", "entries", "deliveries", "customers", "lease"}

type testReadKey struct{}

// testRead marks ctx as the test's own: a panickingStore lets its calls be.
func testRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, testReadKey{}, true)
}

func (s *panickingStore) hit(ctx context.Context, op string) bool {
	if ctx.Value(testReadKey{}) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[op]++
	if !s.fired && op == s.op && s.counts[op] == s.at {
		s.fired = true
		return true
	}
	return false
}

func (s *panickingStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// read panics if this call of op is the one.
func (s *panickingStore) read(ctx context.Context, op string) {
	if s.hit(ctx, op) {
		panic("store bug in " + op)
	}
}

func (s *panickingStore) write(ctx context.Context, ch incident.Change, fn func(context.Context, incident.Change) error) error {
	boom := s.hit(ctx, "write")
	if boom && !s.after {
		panic("store bug before the write")
	}
	err := fn(ctx, ch)
	if boom {
		panic("store bug after the write")
	}
	return err
}

func (s *panickingStore) Create(ctx context.Context, ch incident.Change) error {
	return s.write(ctx, ch, s.MemStore.Create)
}

func (s *panickingStore) Apply(ctx context.Context, ch incident.Change) error {
	return s.write(ctx, ch, s.MemStore.Apply)
}

func (s *panickingStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	s.read(ctx, "head")
	return s.MemStore.Head(ctx, id)
}

func (s *panickingStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	s.read(ctx, "findopen")
	return s.MemStore.FindOpen(ctx, key)
}

func (s *panickingStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	s.read(ctx, "listopen")
	return s.MemStore.ListOpen(ctx)
}

func (s *panickingStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	s.read(ctx, "entries")
	return s.MemStore.Entries(ctx, id, from, limit)
}

func (s *panickingStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	s.read(ctx, "deliveries")
	return s.MemStore.Deliveries(ctx, id, q)
}

func (s *panickingStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	s.read(ctx, "customers")
	return s.MemStore.Customers(ctx, id, after, limit)
}

func (s *panickingStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	s.read(ctx, "lease")
	return s.MemStore.Lease(ctx, id, owner, ttl)
}

func (s *panickingStore) Unlease(ctx context.Context, id, owner string) error {
	s.read(ctx, "lease")
	return s.MemStore.Unlease(ctx, id, owner)
}

func (s *panickingStore) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	s.read(ctx, "lease")
	return s.MemStore.Renew(ctx, owner, ttl)
}

func (s *panickingStore) Orphans(ctx context.Context, limit int) ([]string, error) {
	s.read(ctx, "lease")
	return s.MemStore.Orphans(ctx, limit)
}

// storePanicEnv tells a child process of TestPanickingStoreNeverKillsTheProcess
// which store call panics: "op:n:before" or "op:n:after".
const storePanicEnv = "BREACH_TEST_STORE_PANIC"

// TestPanickingStoreNeverKillsTheProcess runs the API-key scenario in a
// child process whose store panics on one call: each write of a clean run
// in turn (before and after it lands), and each read and lease call of it
// (Head, FindOpen, ListOpen, Entries, Deliveries, Customers, Lease...). A
// panic that escaped would kill the child; instead it exits 0 after a
// second orchestrator on the surviving data has closed the incident.
func TestPanickingStoreNeverKillsTheProcess(t *testing.T) {
	if spec := os.Getenv(storePanicEnv); spec != "" {
		panickingStoreChild(t, spec)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process per store call")
	}
	counts := map[string]int{}
	synctest.Test(t, func(t *testing.T) {
		ps := &panickingStore{MemStore: incident.NewMemStore()}
		first, second := panicRun(t, ps)
		require.Equal(t, incident.StateClosed, first)
		require.Equal(t, incident.StateClosed, second)
		for _, op := range panickingOps {
			counts[op] = ps.count(op)
		}
	})
	t.Logf("store calls of a clean run: %v", counts)
	require.Equal(t, crashWrites, counts["write"], "the scenario's writes")
	for _, op := range panickingOps {
		require.Positive(t, counts[op], "the scenario calls %s", op)
	}

	var specs []string
	for n := 1; n <= counts["write"]; n++ {
		specs = append(specs, fmt.Sprintf("write:%d:before", n), fmt.Sprintf("write:%d:after", n))
	}
	for _, op := range panickingOps[1:] {
		for n := 1; n <= counts[op]; n++ {
			specs = append(specs, fmt.Sprintf("%s:%d:before", op, n))
		}
	}
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPanickingStoreNeverKillsTheProcess$", "-test.count=1")
			// GORACE: a race-enabled child would sleep a second at exit.
			cmd.Env = append(os.Environ(), storePanicEnv+"="+spec, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the child died:\n%s", out)
			assert.Contains(t, string(out), "child "+spec+": the store panicked;")
			assert.Contains(t, string(out), "the second orchestrator closed it")
		})
	}
}

func panickingStoreChild(t *testing.T, spec string) {
	parts := strings.Split(spec, ":")
	require.Len(t, parts, 3)
	n, err := strconv.Atoi(parts[1])
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		ps := &panickingStore{MemStore: incident.NewMemStore(), op: parts[0], at: n, after: parts[2] == "after"}
		first, second := panicRun(t, ps)
		ps.mu.Lock()
		fired := ps.fired
		ps.mu.Unlock()
		require.True(t, fired, "the store panicked")
		require.Equal(t, incident.StateClosed, second)
		if first == "" {
			first = "unopened"
		}
		fmt.Printf("child %s: the store panicked; the first orchestrator left the incident %s; the second orchestrator closed it\n",
			spec, first)
	})
}

// panicRun runs the scenario on ps until the incident closes or an hour
// has passed, then runs a second orchestrator on ps's MemStore alone (the
// surviving data) until it closes. It returns the state each left it in.
func panicRun(t *testing.T, ps *panickingStore) (first, second incident.State) {
	t.Helper()
	pb := crashPlaybook(newInbox(), &sync.Map{})
	runUntilClosed := func(store incident.Store, report bool) incident.State {
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		// Run has started (and resumed) before the report: the calls of
		// the scenario, and their count, do not depend on the schedule.
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		id := ""
		open, err := ps.MemStore.ListOpen(ctx)
		require.NoError(t, err)
		if len(open) == 1 {
			id = open[0].ID
		} else if report {
			rc, err := o.Report(ctx, leak())
			if err != nil {
				return "" // the store panicked: nothing known
			}
			id = rc.IncidentID
		}
		if id == "" {
			return ""
		}
		// Await looks as often as writes wake it: its reads are not
		// counted. A whole-record read (Head and every part) is.
		_, _ = o.Await(testRead(ctx), id, func(inc *incident.Incident) bool { return inc.State == incident.StateClosed })
		_, _ = o.Get(ctx, id)
		inc, err := ps.MemStore.Head(context.Background(), id)
		require.NoError(t, err)
		return inc.State
	}
	first = runUntilClosed(ps, true)
	if first == incident.StateClosed {
		// Nothing open: the second orchestrator has nothing to do but to
		// see that the incident is closed.
		return first, first
	}
	second = runUntilClosed(ps.MemStore, true)
	return first, second
}

// TestPanickingFindOpenIsAnError: a Report for a key whose open incident
// the orchestrator has not seen (another replica opened it, or the host
// stored it) looks it up after its Create is refused; a FindOpen that
// panics then fails that Report with an *incident.PanicError, and the next
// Report joins the incident.
func TestPanickingFindOpenIsAnError(t *testing.T) {
	ps := &panickingStore{MemStore: incident.NewMemStore(), op: "findopen", at: 1}
	ctx := testRead(context.Background())
	require.NoError(t, ps.MemStore.Create(ctx, incident.Split(investigated())))
	o, err := breach.New(ps, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
	require.NoError(t, err)
	sig := leak()
	sig.Subject = "key_7"
	_, err = o.Report(context.Background(), sig)
	var pe *incident.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 1, ps.count("findopen"))

	rc, err := o.Report(context.Background(), sig)
	require.NoError(t, err)
	assert.Equal(t, investigatedID, rc.IncidentID)
	assert.False(t, rc.Opened)
	open, err := ps.MemStore.ListOpen(ctx)
	require.NoError(t, err)
	assert.Len(t, open, 1, "nothing opened beside the stored incident")
}

// hangingStore is a MemStore whose op hangs, ignoring its context, until
// released.
type hangingStore struct {
	*incident.MemStore
	op   atomic.Value // string
	hang chan struct{}
}

func (s *hangingStore) maybeHang(op string) {
	if v, _ := s.op.Load().(string); v == op {
		<-s.hang
	}
}

func (s *hangingStore) Create(ctx context.Context, ch incident.Change) error {
	s.maybeHang("create")
	return s.MemStore.Create(ctx, ch)
}

func (s *hangingStore) Apply(ctx context.Context, ch incident.Change) error {
	s.maybeHang("apply")
	return s.MemStore.Apply(ctx, ch)
}

func (s *hangingStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	s.maybeHang("head")
	return s.MemStore.Head(ctx, id)
}

func (s *hangingStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	s.maybeHang("findopen")
	return s.MemStore.FindOpen(ctx, key)
}

func (s *hangingStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	s.maybeHang("listopen")
	return s.MemStore.ListOpen(ctx)
}

func (s *hangingStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	s.maybeHang("entries")
	return s.MemStore.Entries(ctx, id, from, limit)
}

func (s *hangingStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	s.maybeHang("deliveries")
	return s.MemStore.Deliveries(ctx, id, q)
}

func (s *hangingStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	s.maybeHang("customers")
	return s.MemStore.Customers(ctx, id, after, limit)
}

// investigatedID names the incident investigated returns.
const investigatedID = "inc_investigated"

// investigated is an incident whose investigation found a customer
// affected, as a host's store may hold it.
func investigated() *incident.Incident {
	now := time.Now()
	inc := &incident.Incident{ID: investigatedID, Kind: "apikey.compromised", Subject: "key_7", DedupKey: "apikey.compromised/key_7",
		Severity: incident.SeverityHigh, State: incident.StateResolving, DetectedAt: now, UpdatedAt: now,
		Investigation: &incident.Investigation{At: now, Attempts: 1, Findings: incident.Findings{Impact: incident.Impact{
			Customers: []incident.Customer{customer}, Data: []incident.DataCategory{incident.DataAPIAccess}}}}}
	inc.Record(incident.Entry{At: now, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "stored by the host"})
	return inc
}

// TestHangingStoreTimesOut: a store call that hangs and ignores its
// context fails after WithStoreTimeout with an *incident.TimeoutError, and
// the orchestrator goes on working once the store answers again.
func TestHangingStoreTimesOut(t *testing.T) {
	const timeout = 100 * time.Millisecond
	tests := []struct {
		op   string
		call func(ctx context.Context, o *breach.Orchestrator, id string) error
	}{
		{"findopen", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			sig := leak()
			sig.Subject = "key_7" // investigated's key: the Create is refused, and the open incident looked up
			_, err := o.Report(ctx, sig)
			return err
		}},
		{"create", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			sig := leak()
			sig.Subject = "key_new"
			_, err := o.Report(ctx, sig)
			return err
		}},
		{"head", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			_, err := o.Head(ctx, id)
			return err
		}},
		{"entries", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			_, err := o.Timeline(ctx, id, 0, 0)
			return err
		}},
		{"deliveries", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			_, err := o.Deliveries(ctx, id, incident.DeliveryQuery{})
			return err
		}},
		{"customers", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			_, err := o.Get(ctx, investigatedID) // the whole record of an investigated incident pages its customers
			return err
		}},
		{"apply", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			return o.RecordMilestone(ctx, id, incident.MilestoneEarlyWarning, "dora", "sent")
		}},
		{"listopen", func(ctx context.Context, o *breach.Orchestrator, id string) error {
			_, err := o.ListOpen(ctx)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hs := &hangingStore{MemStore: incident.NewMemStore(), hang: make(chan struct{})}
				o, err := breach.New(hs, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), breach.WithStoreTimeout(timeout), quiet)
				require.NoError(t, err)
				ctx := context.Background()
				rc, err := o.Report(ctx, leak())
				require.NoError(t, err)
				require.NoError(t, hs.MemStore.Create(ctx, incident.Split(investigated())))

				hs.op.Store(tt.op)
				start := time.Now()
				err = tt.call(ctx, o, rc.IncidentID)
				var te *incident.TimeoutError
				require.ErrorAs(t, err, &te, "%v", err)
				assert.Equal(t, timeout, te.After)
				assert.Equal(t, timeout, time.Since(start), "the call fails at the store timeout")

				hs.op.Store("")
				close(hs.hang)
				synctest.Wait() // the abandoned call ends
				assert.NoError(t, tt.call(ctx, o, rc.IncidentID), "the orchestrator works on")
				inc := get(t, o, rc.IncidentID)
				assert.Equal(t, incident.StateContaining, inc.State, "created holding its first containment claims")
			})
		})
	}
}
