package breach_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// panicOnMessage is a host log handler that panics on records with one
// message; hit, when set, is closed first.
type panicOnMessage struct {
	msg  string
	hit  chan struct{}
	once *sync.Once
}

func (panicOnMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h panicOnMessage) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h panicOnMessage) WithGroup(string) slog.Handler          { return h }
func (h panicOnMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		if h.hit != nil {
			h.once.Do(func() { close(h.hit) })
		}
		panic("host log handler fails on " + r.Message)
	}
	return nil
}

// TestLogHandlerPanicOnAContainmentGoroutine: a playbook with two containment
// actions; the first (run on a goroutine of the Runner) finishes last, so
// its OnResult write moves the incident to contained and logs the
// transition. A host log handler that panics on that record must not kill
// the process.
func TestLogHandlerPanicOnAContainmentGoroutine(t *testing.T) {
	f := &fakes{}
	bDone := make(chan struct{})
	var once sync.Once
	obs := breach.ObserverFunc(func(ctx context.Context, ob breach.Observation) {
		if ob.Kind == breach.ObserveStep && ob.Step == "contain" && ob.Target == "b" {
			once.Do(func() { close(bDone) })
		}
	})
	pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
	pb.Containment = []containment.Action{
		{Name: "a", Container: containment.Func(func(ctx context.Context, req containment.Request) error {
			select { // finish after b's result is recorded
			case <-bDone:
			case <-time.After(5 * time.Second):
			}
			return nil
		})},
		{Name: "b", Container: containment.Func(func(ctx context.Context, req containment.Request) error { return nil })},
	}
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithObserver(obs),
		breach.WithLogger(slog.New(panicOnMessage{msg: "breach: incident contained"})))
	require.NoError(t, err)
	running(t, o)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	await(t, o, rc.IncidentID, incident.StateResolving, incident.StateEscalated, incident.StateInvestigating)
}

// TestLogHandlerPanicOnADetectorsError: a detector that stops with an error is
// logged "and not restarted"; a log handler that panics on that record must
// not kill the process.
func TestLogHandlerPanicOnADetectorsError(t *testing.T) {
	hit := make(chan struct{})
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)),
		breach.WithLogger(slog.New(panicOnMessage{msg: "breach: detector stopped with an error; not restarted", hit: hit, once: new(sync.Once)})))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- o.Run(ctx, incident.DetectorFunc(func(ctx context.Context, r incident.Reporter) error {
			return errors.New("feed unavailable")
		}))
	}()
	<-hit // the record was handled (and the handler panicked)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	await(t, o, rc.IncidentID, incident.StateResolving)
	cancel()
	require.NoError(t, <-done)
}

// TestCalendarPanicOnAContainmentGoroutine: a business-day clock that
// starts when the incident is contained, with a host Calendar that panics.
// As in TestLogHandlerPanicOnAContainmentGoroutine the write that moves the
// incident to contained is made on a containment Runner goroutine: the
// panic is raised again on the worker's, which recovers it.
func TestCalendarPanicOnAContainmentGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		bDone := make(chan struct{})
		var once sync.Once
		obs := breach.ObserverFunc(func(ctx context.Context, ob breach.Observation) {
			if ob.Kind == breach.ObserveStep && ob.Step == "contain" && ob.Target == "b" {
				once.Do(func() { close(bDone) })
			}
		})
		var calls atomic.Int32
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Clocks = []breach.Clock{{Name: "report", Start: incident.MilestoneContained, Stop: incident.MilestoneAuthorityNotified,
			BusinessDays: 2, Calendar: func(time.Time) bool { panic("holiday table not loaded") }}}
		pb.Containment = []containment.Action{
			{Name: "a", Container: containment.Func(func(ctx context.Context, req containment.Request) error {
				calls.Add(1)
				select {
				case <-bDone:
				case <-time.After(5 * time.Second):
				}
				return nil
			})},
			{Name: "b", Container: containment.Func(func(ctx context.Context, req containment.Request) error { return nil })},
		}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithObserver(obs), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		time.Sleep(time.Minute)
		synctest.Wait()
		// The process lives on; the step whose write panicked is taken
		// again, and the incident stays on record, not contained.
		assert.Greater(t, calls.Load(), int32(1), "the step is retried")
		assert.Equal(t, incident.StateContaining, get(t, o, rc.IncidentID).State)
	})
}

// readOnlyStore is a MemStore whose Apply fails while fail is set, and
// for its first failFirst calls.
type readOnlyStore struct {
	*incident.MemStore
	fail      atomic.Bool
	failFirst atomic.Int64
}

func (s *readOnlyStore) Apply(ctx context.Context, ch incident.Change) error {
	if s.fail.Load() || s.failFirst.Add(-1) >= 0 {
		return errors.New("database is read-only")
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestLogHandlerPanicInTheGroupCommitter: a Report joining an open incident waits
// for the group committer's write; the store fails it, and the committer
// logs a warning. A log handler that panics on that record must not kill
// the process; the Report gets an error.
func TestLogHandlerPanicInTheGroupCommitter(t *testing.T) {
	s := &readOnlyStore{MemStore: incident.NewMemStore()}
	o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)),
		breach.WithLogger(slog.New(panicOnMessage{msg: "breach: storing signal counts failed; the reports waiting for them are told"})))
	require.NoError(t, err)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	require.True(t, rc.Opened)
	s.fail.Store(true)
	_, err = o.Report(context.Background(), leak())
	require.Error(t, err, "the count was not stored")
}

// panicOnErrors is a host log handler that panics on every Error record
// (a handler forwarding errors to a broken sink).
type panicOnErrors struct{}

func (panicOnErrors) Enabled(context.Context, slog.Level) bool { return true }
func (h panicOnErrors) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h panicOnErrors) WithGroup(string) slog.Handler          { return h }
func (panicOnErrors) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		panic("error sink unavailable")
	}
	return nil
}

// TestLogHandlerPanicInTheWorkersRecovery: a step's write fails (the store is
// down for a moment) and the worker logs "driving incident failed; will
// retry" at Error level, which the handler panics on, as it does on the log
// of a recovered panic: neither escapes the worker, and the retry goes on.
func TestLogHandlerPanicInTheWorkersRecovery(t *testing.T) {
	s := &readOnlyStore{MemStore: incident.NewMemStore()}
	s.failFirst.Store(1) // the first step's write fails; the retry a second later would succeed
	o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))),
		breach.WithLogger(slog.New(panicOnErrors{})))
	require.NoError(t, err)
	running(t, o)
	rc, err := o.Report(context.Background(), leak())
	require.NoError(t, err)
	await(t, o, rc.IncidentID, incident.StateResolving)
}

// TestObserverEndingAWorkerStrandsNothing: an Observer that calls
// runtime.Goexit (what t.FailNow and require do inside a host's test
// observer) while observing a containment step on a worker's goroutine:
// the incident is taken again and driven on, and another worker takes the
// lost one's place.
func TestObserverEndingAWorkerStrandsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var once sync.Once
		obs := breach.ObserverFunc(func(ctx context.Context, ob breach.Observation) {
			if ob.Kind == breach.ObserveStep && ob.Step == "contain" {
				once.Do(runtime.Goexit)
			}
		})
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))),
			breach.WithObserver(obs), quiet)
		require.NoError(t, err)
		running(t, o)
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // virtual
		defer cancel()
		_, err = o.Await(ctx, rc.IncidentID, func(inc *incident.Incident) bool { return inc.State == incident.StateResolving })
		h, _ := o.Head(context.Background(), rc.IncidentID)
		require.NoError(t, err, "incident left in %s for an hour", h.State)
	})
}

// TestObserverEndingTheDeadlineChecker: an Observer ends the deadline
// checker's goroutine (runtime.Goexit on an escalation it observes); the
// check starts again on another, and the second incident's approval
// timeout still escalates it.
func TestObserverEndingTheDeadlineChecker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var once sync.Once
		obs := breach.ObserverFunc(func(ctx context.Context, ob breach.Observation) {
			if ob.Kind == breach.ObserveTransition && ob.To == incident.StateEscalated {
				once.Do(runtime.Goexit)
			}
		})
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Approval = &containment.ApprovalRule{Timeout: time.Minute}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithObserver(obs), quiet,
			breach.WithDeadlineInterval(time.Second))
		require.NoError(t, err)
		running(t, o)
		first := file(t, o, leak())
		await(t, o, first, incident.StateEscalated)
		sig := leak()
		sig.Subject = "key_43"
		second := file(t, o, sig)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // virtual
		defer cancel()
		_, err = o.Await(ctx, second, func(inc *incident.Incident) bool { return inc.State == incident.StateEscalated })
		require.NoError(t, err, "the second incident's approval timeout never escalated: the deadline checker is gone")
	})
}

// TestClockEndingTheGroupCommitter: the host's clock ends the group
// committer's goroutine (runtime.Goexit) as it writes a batch. The Report
// waiting for the batch is answered (not recorded: it may report again),
// another committer takes over, and the signal reported again is stored.
func TestClockEndingTheGroupCommitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var armed atomic.Bool
		var once sync.Once
		clock := func() time.Time {
			if armed.Load() && strings.Contains(string(debug.Stack()), "commitLoop") {
				once.Do(runtime.Goexit)
			}
			return time.Now()
		}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)),
			breach.WithNow(clock), quiet)
		require.NoError(t, err)
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		require.True(t, rc.Opened)
		armed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // virtual
		defer cancel()
		_, err = o.Report(ctx, leak())
		require.Error(t, err)
		assert.ErrorContains(t, err, "signal not recorded")
		assert.NotErrorIs(t, err, breach.ErrOutcomeUnknown, "answered, not left waiting")
		again, err := o.Report(ctx, leak())
		require.NoError(t, err, "another committer stores the batch")
		assert.Equal(t, rc.IncidentID, again.IncidentID)
		assert.EqualValues(t, 2, get(t, o, rc.IncidentID).Signals.Count)
	})
}
