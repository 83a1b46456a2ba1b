package breach_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
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

// stormChaos makes plugin calls fail, block briefly or panic at random.
type stormChaos struct {
	mu  sync.Mutex
	rnd *rand.Rand
}

func (c *stormChaos) intN(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rnd.IntN(n)
}

func (c *stormChaos) call(ctx context.Context, what string) error {
	switch roll := c.intN(100); {
	case roll < 2:
		panic("storm: " + what + " panicked")
	case roll < 17:
		return errors.New("storm: " + what + " failed")
	case roll < 27: // blocks briefly, ignoring its context
		time.Sleep(time.Duration(1+c.intN(30)) * time.Millisecond)
	case roll < 37: // blocks briefly, or until its context ends
		select {
		case <-time.After(time.Duration(1+c.intN(30)) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type stormContainer struct{ c *stormChaos }

func (s stormContainer) Contain(ctx context.Context, req containment.Request) error {
	return s.c.call(ctx, "contain")
}

func (s stormContainer) Release(ctx context.Context, req containment.Request) error {
	return s.c.call(ctx, "release")
}

func stormPlaybook(c *stormChaos) breach.Playbook {
	policy := incident.Policy{Attempts: 2, Timeout: 20 * time.Millisecond, Backoff: 5 * time.Millisecond}
	return breach.Playbook{
		Kind:     "apikey.compromised",
		Strategy: breach.StrategyBySeverity,
		Containment: []containment.Action{
			{Name: "disable-key", Container: stormContainer{c}, Policy: policy},
			{Name: "block-addresses", Container: stormContainer{c}, Policy: policy,
				Approval: &containment.ApprovalRule{AutoFrom: incident.SeverityCritical}},
		},
		Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			if err := c.call(ctx, "investigate"); err != nil {
				return incident.Findings{}, err
			}
			var im incident.Impact
			if n := c.intN(4); n > 0 {
				im = incident.Impact{Customers: customers(n), Data: []incident.DataCategory{incident.DataAPIAccess}}
			}
			return incident.Findings{RootCause: "storm", Impact: im}, nil
		}),
		Investigation: policy,
		Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
			return c.call(ctx, "notify")
		})}},
		Delivery:    policy,
		StepTimeout: 200 * time.Millisecond,
		Tasks:       []breach.TaskSpec{{ID: "scan", Title: "Scan repositories", Mandatory: true}},
		Clocks:      []breach.Clock{breach.GDPR()},
	}
}

// latencyStore is a MemStore whose FindOpen and Create (the calls of a
// Report) take up to a millisecond, so that a Report's context can end in
// the middle of one. (Other calls take no time: the orchestrator makes
// some while it holds a mutex, and a goroutine waiting on a mutex would
// keep a synctest bubble's clock from moving.)
type latencyStore struct {
	*incident.MemStore
	c *stormChaos
}

func (s *latencyStore) wait() { time.Sleep(time.Duration(s.c.intN(1000)) * time.Microsecond) }

func (s *latencyStore) Create(ctx context.Context, ch incident.Change) error {
	s.wait()
	return s.MemStore.Create(ctx, ch)
}

func (s *latencyStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	s.wait()
	return s.MemStore.FindOpen(ctx, key)
}

// stormOp is a person's action (or a detector's report) on incident id.
type stormOp struct {
	name string
	do   func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error
}

var stormOps = []stormOp{
	{"Dismiss", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Dismiss(ctx, id, "carol", "false positive")
	}},
	{"Retry", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Retry(ctx, id, "dave", "try again")
	}},
	{"Resolve", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Resolve(ctx, id, "alice", "done")
	}},
	{"Close", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Close(ctx, id, "bob", "reviewed")
	}},
	{"Reopen", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Reopen(ctx, id, "erin", "it came back")
	}},
	{"Approve", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Approve(ctx, id, "block-addresses", "frank", "go")
	}},
	{"Deny", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.Deny(ctx, id, "block-addresses", "frank", "no")
	}},
	{"CompleteTask", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.CompleteTask(ctx, id, "scan", "alice", "scanned")
	}},
	{"OverrideDecision", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.OverrideDecision(ctx, id, r.IntN(2) == 0, "legal", "our call")
	}},
	{"RecordMilestone", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		ms := []incident.Milestone{incident.MilestoneAuthorityNotified, incident.MilestoneEarlyWarning, incident.MilestoneFinalReport}
		return o.RecordMilestone(ctx, id, ms[r.IntN(len(ms))], "dora", "done")
	}},
	{"PauseClock", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.PauseClock(ctx, id, breach.GDPR().Name, "dora", "law enforcement")
	}},
	{"ResumeClock", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.ResumeClock(ctx, id, breach.GDPR().Name, "dora", "go on")
	}},
	{"MarkClockNotApplicable", func(ctx context.Context, o *breach.Orchestrator, r *rand.Rand, id string) error {
		return o.MarkClockNotApplicable(ctx, id, breach.GDPR().Name, "legal", "no personal data")
	}},
}

// stormContext returns the context of one operation, cancelled before the
// call, at a random moment during it, or after it.
func stormContext(r *rand.Rand) (context.Context, context.CancelFunc) {
	switch r.IntN(3) {
	case 0:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	case 1:
		return context.WithTimeout(context.Background(), time.Duration(r.IntN(3000))*time.Microsecond)
	}
	return context.WithCancel(context.Background())
}

// TestCancellationStorm: with Run going, 10,000 reports and people's
// actions on about 500 incidents, from 8 goroutines, each with a context
// cancelled before, during or after the call, while plugins fail, block
// and panic at random. Afterwards every incident can be driven to closed
// or dismissed with public calls alone, and Run leaves no goroutine.
func TestCancellationStorm(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	synctest.Test(t, func(t *testing.T) {
		const keys, ops, workers = 500, 10000, 8
		c := &stormChaos{rnd: rand.New(rand.NewPCG(seed, 1))}
		store := &latencyStore{MemStore: incident.NewMemStore(), c: c}
		o, err := breach.New(store, breach.WithPlaybook(stormPlaybook(c)), quiet, breach.WithConcurrency(8),
			breach.WithFlushInterval(50*time.Millisecond), breach.WithDeadlineInterval(time.Second))
		require.NoError(t, err)
		runCtx, stopRun := context.WithCancel(context.Background())
		runDone := make(chan error, 1)
		go func() { runDone <- o.Run(runCtx) }()

		var (
			mu     sync.Mutex
			ids    []string
			seen   = map[string]bool{}
			counts = map[string]int{} // operation → calls
			errs   = map[string]int{} // operation: error → calls
		)
		remember := func(id string) {
			mu.Lock()
			defer mu.Unlock()
			if id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(w)+2))
				for range ops / workers {
					ctx, cancel := stormContext(r)
					mu.Lock()
					n := len(ids)
					id := ""
					if n > 0 {
						id = ids[r.IntN(n)]
					}
					mu.Unlock()
					name := "Report"
					var err error
					if n == 0 || r.IntN(3) == 0 {
						sig := leak()
						sig.Subject = fmt.Sprintf("key_%03d", r.IntN(keys))
						sig.Severity = incident.Severity(1 + r.IntN(4))
						var rc incident.Receipt
						rc, err = o.Report(ctx, sig)
						if err == nil {
							remember(rc.IncidentID)
						}
					} else {
						op := stormOps[r.IntN(len(stormOps))]
						name = op.name
						err = op.do(ctx, o, r, id)
					}
					cancel()
					mu.Lock()
					counts[name]++
					if err != nil {
						errs[name+": "+errClass(err)]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		t.Logf("operations: %v", counts)
		logCounts(t, "errors", errs)

		// Every incident, including those opened meanwhile (by a flush
		// refiling signals that came after an incident ended, or by a
		// Report whose caller left before it was written), is driven to its
		// end with public calls and fresh contexts.
		var (
			stuck []string
			ended = map[incident.State]int{}
			dmu   sync.Mutex
		)
		drive := func(todo []string) {
			jobs := make(chan string)
			var dwg sync.WaitGroup
			for range workers {
				dwg.Go(func() {
					for id := range jobs {
						state, why := driveToEnd(o, id)
						dmu.Lock()
						ended[state]++
						if why != "" {
							stuck = append(stuck, id+": "+why)
						}
						dmu.Unlock()
					}
				})
			}
			for _, id := range todo {
				jobs <- id
			}
			close(jobs)
			dwg.Wait()
		}
		mu.Lock()
		todo := append([]string(nil), ids...)
		mu.Unlock()
		var open []*incident.Incident
		for round := 0; len(todo) > 0 && round < 5; round++ {
			drive(todo)
			time.Sleep(time.Second) // a flush or two
			open, err = o.ListOpen(context.Background())
			require.NoError(t, err)
			todo = todo[:0]
			for _, inc := range open {
				todo = append(todo, inc.ID)
			}
			t.Logf("round %d: %v; %d opened meanwhile", round, ended, len(todo))
		}
		assert.Empty(t, stuck, "incidents that public calls could not drive to closed or dismissed")
		assert.Empty(t, open, "open incidents left")

		require.NotEmpty(t, orchestratorGoroutines(), "the goroutine check sees Run's workers")
		stopRun()
		require.NoError(t, <-runDone)
		time.Sleep(time.Minute) // plugin calls abandoned after their timeout end
		synctest.Wait()
		assert.Empty(t, orchestratorGoroutines(), "goroutines left after Run returned")
	})
}

// driveToEnd drives one incident to closed or dismissed, by its state, with
// public calls and fresh contexts, waiting for automation in between. It
// returns the final state, and why it could not, if it could not.
func driveToEnd(o *breach.Orchestrator, id string) (incident.State, string) {
	var last *incident.Incident
	var tried []string
	for round := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		inc, err := o.Get(ctx, id)
		if err != nil {
			cancel()
			return "", "get: " + err.Error()
		}
		last = inc
		if !inc.State.Open() {
			cancel()
			return inc.State, ""
		}
		var action string
		switch {
		case inc.Dismissal != nil:
			action, err = "Dismiss (pending)", o.Dismiss(ctx, id, "carol", "false positive")
		case inc.State == incident.StateResolving:
			for _, task := range inc.Tasks {
				if !task.Done && err == nil {
					err = o.CompleteTask(ctx, id, task.ID, "alice", "done")
				}
			}
			if err == nil {
				err = o.Resolve(ctx, id, "alice", "done")
			}
			if err == nil {
				err = o.Close(ctx, id, "bob", "reviewed")
			}
			action = "CompleteTask+Resolve+Close"
		case inc.State == incident.StateResolved:
			action, err = "Close", o.Close(ctx, id, "bob", "reviewed")
		case inc.State == incident.StateEscalated && round < 2:
			action, err = "Retry", o.Retry(ctx, id, "dave", "try again")
		case awaitingApproval(inc):
			action, err = "Approve", o.Approve(ctx, id, "block-addresses", "frank", "go")
		case inc.State == incident.StateEscalated || round >= 4:
			action, err = "Dismiss", o.Dismiss(ctx, id, "carol", "false positive")
		default:
			action = "Await"
		}
		if err != nil {
			action += " (" + errClass(err) + ")"
		}
		tried = append(tried, string(inc.State)+": "+action)
		// Await a change by automation (or give up waiting after a minute
		// of the bubble's clock).
		_, _ = o.Await(ctx, id, func(now *incident.Incident) bool { return now.Version != inc.Version || !now.State.Open() })
		cancel()
	}
	return last.State, fmt.Sprintf("still %s after %v", last.State, tried)
}

func awaitingApproval(inc *incident.Incident) bool {
	for _, a := range inc.Actions {
		if a.Status == incident.ActionAwaiting {
			return true
		}
	}
	return false
}

// orchestratorGoroutines returns the stacks of the goroutines running
// code of package breach, other than the caller.
func orchestratorGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i > 0 && strings.Contains(g, "github.com/breachkit/breach.") {
			out = append(out, g)
		}
	}
	return out
}

// errClass names an error by the sentinel it matches, for the log.
func errClass(err error) string {
	for _, s := range []struct {
		name string
		err  error
	}{
		{"dismissal pending", breach.ErrDismissalPending}, {"outcome unknown", breach.ErrOutcomeUnknown},
		{"canceled", context.Canceled}, {"deadline", context.DeadlineExceeded},
		{"not escalated", breach.ErrNotEscalated}, {"open tasks", breach.ErrOpenTasks},
		{"no approval pending", breach.ErrNoApprovalPending}, {"decision locked", breach.ErrDecisionLocked},
		{"no such clock", breach.ErrNoSuchClock}, {"no such task", breach.ErrNoSuchTask}, {"duplicate", incident.ErrDuplicate},
		{"transition", incident.ErrInvalidTransition}, {"conflict", incident.ErrConflict},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "other: " + err.Error()
}

func logCounts(t *testing.T, what string, m map[string]int) {
	t.Helper()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %6d  %s", m[k], k)
	}
	t.Logf("%s:%s", what, b.String())
}
