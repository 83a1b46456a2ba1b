package breach

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// TestGateParksIntakeUntilReleased: a shut gate parks wait until the last
// hold is released, or for maxGateHold from the latest hold at most, or
// until ctx ends; an open gate does not park at all, and no hold is taken
// while Run is not going.
func TestGateParksIntakeUntilReleased(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gate
			start := time.Now()
			g.wait(t.Context())
			assert.Zero(t, time.Since(start))
		})
	})
	t.Run("without Run", func(t *testing.T) {
		var g gate // not started: Run is not going
		release := g.hold()
		g.holdFor("inc_1")
		assert.False(t, g.shut.Load(), "no hold is taken while Run is not going")
		release()
		g.releaseFor("inc_1")
		assert.Zero(t, g.holds)
	})
	t.Run("released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gate
			g.start()
			release := g.hold()
			g.holdFor("inc_1")
			g.holdFor("inc_1") // once per incident
			done := make(chan time.Duration)
			start := time.Now()
			go func() { g.wait(context.Background()); done <- time.Since(start) }()
			time.Sleep(time.Millisecond)
			release()
			synctest.Wait()
			select {
			case <-done:
				t.Fatal("the incident's hold is still there")
			default:
			}
			time.Sleep(time.Millisecond)
			g.releaseFor("inc_1")
			g.releaseFor("inc_1") // nothing more to release
			assert.Equal(t, 2*time.Millisecond, <-done)
			assert.False(t, g.shut.Load())
			assert.Zero(t, g.holds)
		})
	})
	t.Run("bounded from the latest hold", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gate
			g.start()
			g.holdFor("inc_stuck") // never released
			time.Sleep(maxGateHold)
			start := time.Now()
			g.wait(context.Background())
			assert.Zero(t, time.Since(start), "a hold older than maxGateHold parks nobody")
			time.Sleep(time.Millisecond)
			g.holdFor("inc_new")
			start = time.Now()
			g.wait(context.Background())
			assert.Equal(t, maxGateHold, time.Since(start), "a new hold parks for maxGateHold at most")
			g.stop()
			assert.False(t, g.shut.Load())
			g.holdFor("inc_late") // Run stopped: no hold is taken
			assert.False(t, g.shut.Load())
		})
	})
	t.Run("ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gate
			g.start()
			defer g.hold()()
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			start := time.Now()
			g.wait(ctx)
			assert.Equal(t, time.Millisecond, time.Since(start))
		})
	})
}

// TestGateOpensAtTheContainmentCall: with Run going, a new contain-first
// incident holds the gate shut until its first containment call is made;
// once every incident has been stepped, the gate is open and holds
// nothing.
func TestGateOpensAtTheContainmentCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var o *Orchestrator
		shut := make(chan bool, 10)
		pb := benchPlaybook()
		pb.Containment[0].Container = containment.Func(func(_ context.Context, r containment.Request) error {
			o.gate.mu.Lock()
			_, held := o.gate.ids[r.IncidentID]
			o.gate.mu.Unlock()
			shut <- held
			return nil
		})
		var err error
		o, err = New(incident.NewMemStore(), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		synctest.Wait()
		for i := range 3 {
			_, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_" + strconv.Itoa(i), Severity: incident.SeverityCritical})
			require.NoError(t, err)
		}
		synctest.Wait()
		for range 3 {
			assert.False(t, <-shut, "the incident's hold is released as its call starts")
		}
		assert.False(t, o.gate.shut.Load())
		assert.Zero(t, o.gate.holds)
		assert.Empty(t, o.gate.ids)
		cancel()
		require.NoError(t, <-done)
	})
}

// TestSchedulerWakesOneWorkerAndPassesOn: every incident added is taken,
// by workers woken one at a time (each passes the wake on while work is
// left), and none is taken twice.
func TestSchedulerWakesOneWorkerAndPassesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s scheduler
		s.init()
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		taken := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					id, ok := s.next(ctx)
					if !ok {
						return
					}
					mu.Lock()
					taken[id]++
					mu.Unlock()
					s.done(id)
				}
			})
		}
		synctest.Wait()
		for i := range 100 {
			p := normal
			if i%3 == 0 {
				p = urgent
			}
			s.addAt("inc_"+strconv.Itoa(i), p)
		}
		for i := range 5 {
			s.addFor("late_"+strconv.Itoa(i), urgent) // nobody pokes: the fallback wakes a worker
		}
		synctest.Wait()
		time.Sleep(pokeAfter)
		synctest.Wait()
		cancel()
		wg.Wait()
		assert.Len(t, taken, 105)
		for id, n := range taken {
			assert.Equal(t, 1, n, id)
		}
	})
}

// TestCommitterYieldsWhileContainmentWaits: while containment work holds
// the gate, the group committer yields its processor before each incident
// it writes; with the gate open it does not.
func TestCommitterYieldsWhileContainmentWaits(t *testing.T) {
	ctx := context.Background()
	pb := benchPlaybook()
	pb.Strategy = StrategyBySeverity // low: investigate first, so opening holds no gate
	o, err := New(incident.NewMemStore(), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)), WithUnsafeAcks())
	require.NoError(t, err)
	var yields atomic.Int64 // the committer writes with several goroutines
	o.gate.gosched = func() { yields.Add(1) }
	o.gate.start()
	defer o.gate.stop()
	report := func() {
		for i := range 3 {
			_, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_" + strconv.Itoa(i),
				Severity: incident.SeverityLow})
			require.NoError(t, err)
		}
	}
	report() // opens the three incidents
	report() // counted in memory, for the commit
	require.NoError(t, o.flush(ctx))
	assert.Zero(t, yields.Load(), "the gate is open")

	report()
	o.gate.holdFor("inc_contain") // a new incident waits for its first containment call
	require.NoError(t, o.flush(ctx))
	assert.EqualValues(t, 3, yields.Load(), "one yield before each of the three incidents written")
	o.gate.releaseFor("inc_contain")
}

// TestMissShutsTheGateWhileItWaits: a signal that may open a contain-first
// incident and misses the hot index's snapshot looks its key up under the
// index's lock with the gate shut, so that the wait does not happen behind
// every runnable reporter; one that may not open such an incident leaves
// the gate as it is.
func TestMissShutsTheGateWhileItWaits(t *testing.T) {
	pb := benchPlaybook()
	pb.Strategy = StrategyBySeverity // critical contains first, low does not
	o, err := New(incident.NewMemStore(), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	o.gate.start()
	defer o.gate.stop()
	for _, tc := range []struct {
		sev  incident.Severity
		shut bool
	}{{incident.SeverityCritical, true}, {incident.SeverityLow, false}} {
		o.hot.mu.Lock() // held as a contended lock would be
		done := make(chan struct{})
		go func() {
			defer close(done)
			sig := incident.Signal{Kind: "apikey.compromised", Subject: "key_" + tc.sev.String(), Severity: tc.sev}
			_, _ = o.count(&sig)
		}()
		for !goroutineBlockedIn("locked") {
			runtime.Gosched()
		}
		assert.Equal(t, tc.shut, o.gate.shut.Load(), "severity %s", tc.sev)
		o.hot.mu.Unlock()
		<-done
		assert.False(t, o.gate.shut.Load(), "the hold goes with the lookup")
	}
}

// TestReportAllWaitsAtTheGateBeforeItsBatch: a ReportAll that comes while
// containment work holds the gate counts none of its signals until the
// gate opens: a storm's reporters, woken together by a group commit, must
// not each run into their next batch before they park. ReportAll leaves
// the batch it is given as it was.
func TestReportAllWaitsAtTheGateBeforeItsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		pb := benchPlaybook()
		pb.Strategy = StrategyBySeverity // low: investigate first, so opening holds no gate
		o, err := New(incident.NewMemStore(), WithPlaybook(pb), WithLogger(slog.New(slog.DiscardHandler)), WithUnsafeAcks())
		require.NoError(t, err)
		sig := incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityLow, Source: "gateway"}
		_, err = o.Report(ctx, sig) // opens the incident
		require.NoError(t, err)
		e := o.hot.locked(hotKeyOf(&sig))
		require.NotNil(t, e)
		sigs := []incident.Signal{sig, sig, sig}
		before := slices.Clone(sigs)

		o.gate.start()
		defer o.gate.stop()
		o.gate.holdFor("inc_contain") // a new incident waits for its first containment call
		done := make(chan error, 1)
		go func() {
			_, err := o.ReportAll(ctx, sigs)
			done <- err
		}()
		synctest.Wait()
		assert.Zero(t, e.pendingCount(), "no signal of the batch is counted while the gate is shut")
		o.gate.releaseFor("inc_contain")
		require.NoError(t, <-done)
		assert.EqualValues(t, 3, e.pendingCount())
		assert.Equal(t, before, sigs, "ReportAll changes none of the signals it is given")
	})
}

// TestOpenerPokesOnceAndStopsTheFallback: the reporter that opens an
// incident wakes a worker for it, and stops the timer that would have
// woken one after pokeAfter had it not (a timer and a goroutine per
// incident, for nothing); a reporter that gives up first leaves the timer
// to wake one.
func TestOpenerPokesOnceAndStopsTheFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		woken := func() bool {
			select {
			case <-o.sched.wake:
				return true
			default:
				return false
			}
		}
		_, err = o.Report(t.Context(), incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityCritical})
		require.NoError(t, err)
		assert.True(t, woken(), "the opener wakes a worker")
		time.Sleep(2 * pokeAfter)
		synctest.Wait()
		assert.False(t, woken(), "and no timer wakes another")

		wake := o.sched.addFor("inc_given_up", normal) // its caller never pokes
		require.NotNil(t, wake)
		time.Sleep(pokeAfter)
		synctest.Wait()
		assert.True(t, woken(), "the timer wakes a worker when the caller does not")
	})
}

// TestOpenRunsOnTheReportersGoroutineWithMemStore: with the library's
// MemStore, whose calls never block, a new incident is opened on the
// goroutine of the Report that opens it, not handed to a goroutine of its
// own and back; with a host's store it is opened on one of its own, so
// that a Report whose ctx ends can leave a store call that hangs
// (TestReportCancelledWhileTheStoreBlocks).
func TestOpenRunsOnTheReportersGoroutineWithMemStore(t *testing.T) {
	goroutine := func() string {
		buf := make([]byte, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:runtime.Stack(buf, false)]), "goroutine "), " ")
		return id
	}
	for _, tc := range []struct {
		name     string
		store    incident.Store
		onCaller bool
	}{
		{"MemStore", incident.NewMemStore(), true},
		{"host store", struct{ incident.Store }{incident.NewMemStore()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var opened []string // the goroutines the opening's transitions were told on
			obs := ObserverFunc(func(_ context.Context, ob Observation) {
				if ob.Kind == ObserveTransition {
					mu.Lock()
					defer mu.Unlock()
					opened = append(opened, goroutine())
				}
			})
			o, err := New(tc.store, WithPlaybook(benchPlaybook()), WithObserver(obs), WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(t, err)
			rc, err := o.Report(t.Context(), incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityCritical})
			require.NoError(t, err)
			require.True(t, rc.Opened)
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, opened)
			assert.Equal(t, tc.onCaller, opened[0] == goroutine(), "opened on the reporter's goroutine")
		})
	}
}

// TestReportAllOpensWithoutWaitingAtTheGate: a ReportAll whose first
// signal opens a new incident does not wait at a gate that other
// containment work holds, as Report does not.
func TestReportAllOpensWithoutWaitingAtTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		o.gate.start()
		defer o.gate.stop()
		o.gate.holdFor("inc_other") // another incident waits for its first containment call
		start := time.Now()
		rcs, err := o.ReportAll(t.Context(), []incident.Signal{{Kind: "apikey.compromised", Subject: "key_new", Severity: incident.SeverityCritical}})
		require.NoError(t, err)
		assert.True(t, rcs[0].Opened)
		assert.Zero(t, time.Since(start), "opening an incident never waits at the gate")
	})
}

// panicOnOpen is a log handler that panics on the record of an opening.
type panicOnOpen struct{ slog.Handler }

func (panicOnOpen) Enabled(context.Context, slog.Level) bool { return true }

func (h panicOnOpen) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "breach: incident opened" {
		panic("a host's log handler fails")
	}
	return h.Handler.Handle(ctx, r)
}

// TestOpeningQueuesItsWorkBeforeTheHostsCode: the incident an opening
// created is queued for a worker before the host's code for the opening
// (observer, logger) runs, and that code cannot fail the opening: a log
// handler that panics on the opening's record is isolated, the Report
// succeeds, and a worker is woken for the incident.
func TestOpeningQueuesItsWorkBeforeTheHostsCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()),
			WithLogger(slog.New(panicOnOpen{slog.DiscardHandler})))
		require.NoError(t, err)
		rc, err := o.Report(t.Context(), incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityCritical})
		require.NoError(t, err)
		require.True(t, rc.Opened)
		time.Sleep(pokeAfter)
		synctest.Wait()
		select {
		case <-o.sched.wake:
		default:
			t.Fatal("no worker is woken for the incident")
		}
		id, ok := o.sched.pop()
		require.True(t, ok, "the incident is queued")
		inc, err := o.store.Head(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, "key_1", inc.Subject)
	})
}
