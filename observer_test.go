package breach_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// steps returns the outcomes of the step observations of step, in order.
func (r *observations) steps(step string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ob := range r.obs {
		if ob.Kind == breach.ObserveStep && ob.Step == step {
			out = append(out, ob.Outcome)
		}
	}
	return out
}

// bumpingStore is a MemStore in which, the first time the result of a
// containment action is written, someone else writes the incident just
// before: the result write meets a version conflict once.
type bumpingStore struct {
	*incident.MemStore
	mu     sync.Mutex
	bumped bool
}

func (s *bumpingStore) Apply(ctx context.Context, ch incident.Change) error {
	inc := ch.Head
	s.mu.Lock()
	bump := !s.bumped && len(inc.Actions) > 0 && inc.Actions[0].Status == incident.ActionApplied
	s.bumped = s.bumped || bump
	s.mu.Unlock()
	if bump {
		other, err := s.MemStore.Head(ctx, inc.ID)
		if err != nil {
			return err
		}
		other.Record(incident.Entry{At: time.Now(), Actor: "dora", Type: incident.EntryNote, Detail: "a note written meanwhile"})
		if err := s.MemStore.Apply(ctx, incident.Split(other)); err != nil {
			return err
		}
	}
	return s.MemStore.Apply(ctx, ch)
}

// TestStepsObservedOnce: each containment call is observed once even when
// writing its result met a version conflict; investigation and
// notification steps are observed too, with outcome ok.
func TestStepsObservedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &observations{}
		bs := &bumpingStore{MemStore: incident.NewMemStore()}
		f := &fakes{}
		o, err := breach.New(bs, breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(incident.Impact{
			Customers: []incident.Customer{customer}, Data: []incident.DataCategory{incident.DataAPIAccess}}))),
			breach.WithObserver(rec), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateResolving)
		synctest.Wait()
		require.True(t, bs.bumped, "the result write met a conflict")
		contained, _, _ := f.snapshot()
		require.Len(t, contained, 1)
		assert.Equal(t, 1, inc.Actions[0].Attempts)
		assert.Equal(t, []string{"ok"}, rec.steps("contain"), "one observation per containment call")
		assert.Equal(t, []string{"ok"}, rec.steps("investigate"))
		assert.Equal(t, []string{"ok"}, rec.steps("notify"))
		assert.True(t, hasEntry(inc, "dora", "a note written meanwhile"), "the other write is kept")
	})
}

// TestStepCutByDismissObservedInterrupted: a containment call cut by
// Dismiss is observed with outcome interrupted, then the release.
func TestStepCutByDismissObservedInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &observations{}
		g := newGate(0)
		pb := apiKeyPlaybook(&fakes{}, nil)
		pb.Containment[0].Container = &gatedContainer{g: g}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithObserver(rec), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key"))
		g.release()
		synctest.Wait()
		assert.Equal(t, []string{"interrupted"}, rec.steps("contain"))
		assert.Equal(t, []string{"ok"}, rec.steps("release"))
	})
}

type ctxKey struct{}

// TestObserverGetsTheWorkContext: Observe is never handed a nil context,
// and a signal's observation carries the Report caller's context, on the
// slow path (opened) and the fast path (joined).
func TestObserverGetsTheWorkContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &observations{}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))),
			breach.WithObserver(rec), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		for _, caller := range []string{"first caller", "second caller"} {
			ctx := context.WithValue(context.Background(), ctxKey{}, caller)
			_, err := o.Report(ctx, leak())
			require.NoError(t, err)
		}
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var signals []string
		for i, ob := range rec.obs {
			ctx := rec.ctxs[i]
			if !assert.NotNil(t, ctx, "observation %+v", ob) {
				continue
			}
			if ob.Kind == breach.ObserveSignal {
				caller, _ := ctx.Value(ctxKey{}).(string)
				signals = append(signals, ob.Outcome+" by "+caller)
			}
		}
		assert.Equal(t, []string{"opened by first caller", "joined by second caller"}, signals)
		assert.Greater(t, len(rec.obs), 2, "steps and transitions are observed too")
	})
}
