package breach_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
	"github.com/breachkit/breach/notify"
)

// headFailStore is a MemStore whose next Head calls fail while fail > 0: a
// store that blips.
type headFailStore struct {
	*incident.MemStore
	fail atomic.Int32
}

var errBlip = errors.New("store: connection reset")

func (s *headFailStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if s.fail.Add(-1) >= 0 {
		return nil, errBlip
	}
	return s.MemStore.Head(ctx, id)
}

// TestFailedDismissRetakesTheInvestigationItCut: Dismiss interrupts a
// running investigation, then fails on a store error before it records
// anything ("nothing was recorded"). The incident is as it was, so
// automation must carry on: the investigation runs again.
func TestFailedDismissRetakesTheInvestigationItCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done() // the first attempt runs until the interruption
				return incident.Findings{}, ctx.Err()
			}
			return incident.Findings{RootCause: "key in a public repository"}, nil
		})
		pb := apiKeyPlaybook(&fakes{}, inv)
		pb.Investigation = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
		store := &headFailStore{MemStore: incident.NewMemStore()}
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, incident.StateInvestigating, get(t, o, rc.IncidentID).State)
		require.EqualValues(t, 1, calls.Load())

		store.fail.Store(1)
		err = o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key")
		require.ErrorIs(t, err, errBlip)
		store.fail.Store(0)
		before := get(t, o, rc.IncidentID)
		assert.Nil(t, before.Dismissal, "nothing recorded")

		time.Sleep(time.Hour) // ample time for automation to carry on
		synctest.Wait()
		inc := get(t, o, rc.IncidentID)
		t.Logf("after the failed Dismiss: state %s, investigator called %d time(s)", inc.State, calls.Load())
		assert.Greater(t, calls.Load(), int32(1), "the interrupted investigation is never run again")
		assert.Equal(t, incident.StateResolving, inc.State, "the incident is stranded")
	})
}

// ctxContainer blocks its first Contain call until its context ends (a
// slow revocation API), and succeeds at once afterwards.
type ctxContainer struct{ calls atomic.Int32 }

func (c *ctxContainer) Contain(ctx context.Context, req containment.Request) error {
	if c.calls.Add(1) == 1 {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// TestFailedDismissRetakesTheContainmentItCut: the same while the key's
// revocation is in flight: after the failed Dismiss the key must still be
// disabled.
func TestFailedDismissRetakesTheContainmentItCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &ctxContainer{}
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = c
		pb.Containment[0].Policy = incident.Policy{Attempts: 3, Timeout: 24 * time.Hour}
		store := &headFailStore{MemStore: incident.NewMemStore()}
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, incident.StateContaining, get(t, o, rc.IncidentID).State)

		store.fail.Store(1)
		require.ErrorIs(t, o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key"), errBlip)
		store.fail.Store(0)

		time.Sleep(time.Hour)
		synctest.Wait()
		inc := get(t, o, rc.IncidentID)
		t.Logf("after the failed Dismiss: state %s, action %s, Contain called %d time(s)", inc.State, inc.Actions[0].Status, c.calls.Load())
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status, "the key is never disabled")
	})
}

// stallingReleaser contains at once and blocks every Release until open
// is closed.
type stallingReleaser struct {
	open      chan struct{}
	contained atomic.Int32
	released  atomic.Int32
}

func (b *stallingReleaser) Contain(ctx context.Context, req containment.Request) error {
	b.contained.Add(1)
	return nil
}

func (b *stallingReleaser) Release(ctx context.Context, req containment.Request) error {
	<-b.open
	b.released.Add(1)
	return nil
}

// TestNoEscalationWhileADismissalReleases: while Dismiss releases containment
// (the dismissal is on record), the deadline checker finds an approval that
// timed out. Automation must not change course on an incident being
// dismissed: no escalation, no "take over" page.
func TestNoEscalationWhileADismissalReleases(t *testing.T) {
	for name, onTimeout := range map[string]containment.TimeoutAction{
		"escalate on timeout": containment.EscalateOnTimeout, "proceed on timeout": containment.ProceedOnTimeout} {
		t.Run(name, func(t *testing.T) { noEscalationWhileADismissalReleases(t, onTimeout) })
	}
}

func noEscalationWhileADismissalReleases(t *testing.T, onTimeout containment.TimeoutAction) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		p := &pager{}
		br := &stallingReleaser{open: make(chan struct{})}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Containment = []containment.Action{
			{Name: "disable-key", Container: br, Policy: incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}},
			{Name: "block-ips", Container: f.container(nil), Policy: incident.Policy{Attempts: 1},
				Approval: &containment.ApprovalRule{Timeout: 10 * time.Minute, OnTimeout: onTimeout}},
		}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithOnCall(p.notifier()),
			breach.WithDeadlineInterval(time.Minute), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		inc := get(t, o, rc.IncidentID)
		require.Equal(t, incident.StateContaining, inc.State)
		require.Equal(t, incident.ActionApplied, inc.Action("disable-key").Status)
		require.Equal(t, incident.ActionAwaiting, inc.Action("block-ips").Status)
		pagesBefore := p.count(pageEscalate)

		done := make(chan error, 1)
		go func() { done <- o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key") }()
		synctest.Wait() // Dismiss waits in Release, its dismissal on record
		require.NotNil(t, get(t, o, rc.IncidentID).Dismissal)

		time.Sleep(15 * time.Minute) // the approval's timeout passes; the checker runs
		synctest.Wait()
		mid := get(t, o, rc.IncidentID)
		close(br.open)
		require.NoError(t, <-done)
		synctest.Wait()

		inc = get(t, o, rc.IncidentID)
		assert.Equal(t, incident.StateDismissed, inc.State)
		assert.Equal(t, incident.StateContaining, mid.State, "state while the dismissal was under way")
		assert.NotContains(t, transitions(inc), "containing>escalated", "transitions: %v", transitions(inc))
		assert.Equal(t, pagesBefore, p.count(pageEscalate), "on-call paged to take over an incident being dismissed")
		assert.NotEqual(t, incident.ActionApplied, inc.Action("block-ips").Status, "approved by timeout while being dismissed")
		for _, e := range inc.Timeline {
			assert.NotContains(t, e.Detail, "approved by timeout")
		}
		require.NoError(t, inc.Timeline.Verify())
	})
}

type countingReleaser struct{ releases atomic.Int32 }

func (c *countingReleaser) Contain(ctx context.Context, req containment.Request) error { return nil }
func (c *countingReleaser) Release(ctx context.Context, req containment.Request) error {
	c.releases.Add(1)
	return nil
}

// TestDismissOnAnotherReplicaReleasesOnce: replica a notifies; a person
// dismisses on replica b, which waits for a's lease while a finds the
// dismissal and finishes it. b then goes on from what is stored: the key
// is released once, and recorded released once.
func TestDismissOnAnotherReplicaReleasesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 3 * time.Second
		store := incident.NewMemStore()
		g := newGate(2)
		rel := &countingReleaser{}
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{Customers: customers(40),
			Data: []incident.DataCategory{incident.DataAPIAccess}}))
		pb.Containment[0].Container = rel
		pb.Notifiers = []notify.Route{{Channel: "email", Notifier: g.notifier()}}
		pb.Delivery = incident.Policy{Attempts: 1, Timeout: time.Hour}
		a := leasedReplica(t, store, "a", ttl, pb)
		stopA := running(t, a)
		defer stopA()
		b := leasedReplica(t, store, "b", ttl, pb)
		rc, err := a.Report(context.Background(), leak())
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, incident.StateNotifying, get(t, a, rc.IncidentID).State)

		done := make(chan error, 1)
		go func() { done <- b.Dismiss(context.Background(), rc.IncidentID, "carol", "test key") }()
		time.Sleep(ttl) // a learns of b's write
		synctest.Wait()
		g.release()
		require.NoError(t, <-done)
		callsAtReturn, _ := g.counts()
		time.Sleep(10 * ttl)
		synctest.Wait()
		callsAfter, _ := g.counts()

		inc := get(t, a, rc.IncidentID)
		require.NoError(t, inc.Timeline.Verify())
		assert.Equal(t, incident.StateDismissed, inc.State)
		releases := 0
		for _, e := range inc.Timeline {
			if e.Type == incident.EntryRelease && strings.Contains(e.Detail, "released") {
				releases++
			}
		}
		assert.Equal(t, callsAtReturn, callsAfter, "notices started after Dismiss returned")
		assert.Equal(t, 1, releases, "release recorded once")
		assert.EqualValues(t, 1, rel.releases.Load(), "released once")
		assert.Equal(t, []string{"detected>containing", "containing>contained", "contained>investigating",
			"investigating>notifying", "notifying>dismissed"}, transitions(inc))
	})
}

type echoingReleaser struct{}

func (echoingReleaser) Contain(ctx context.Context, req containment.Request) error { return nil }
func (echoingReleaser) Release(ctx context.Context, req containment.Request) error {
	if req.Attempt == 1 {
		return errors.New("vendor: cannot re-enable key " + req.Credential.Reveal() + ": rate limited")
	}
	return nil
}

// TestDismissErrorNamesNoCredential: Dismiss's ctx ends while a release
// waits to retry: Dismiss returns ErrDismissalPending. Its error (which the
// console shows as the message of a 409) must not hold the credential.
func TestDismissErrorNamesNoCredential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		var logMu sync.Mutex
		pb := apiKeyPlaybook(&fakes{}, failingInvestigator) // contained, then escalated
		pb.Containment[0].Container = echoingReleaser{}
		pb.Containment[0].Policy = incident.Policy{Attempts: 3, Backoff: time.Second}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithLogger(newLockedTextLogger(&logs, &logMu)))
		require.NoError(t, err)
		running(t, o)
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, o, rc.IncidentID, incident.StateEscalated)

		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // ends in the backoff
		defer cancel()
		err = o.Dismiss(ctx, rc.IncidentID, "carol", "test key")
		require.ErrorIs(t, err, breach.ErrDismissalPending)
		assert.NotContains(t, err.Error(), canary, "Dismiss's error holds the credential")

		inc := await(t, o, rc.IncidentID, incident.StateDismissed) // Run finishes the dismissal
		for _, e := range inc.Timeline {
			assert.NotContains(t, e.Detail, canary)
		}
		logMu.Lock()
		defer logMu.Unlock()
		assert.NotContains(t, logs.String(), canary)
	})
}

// lockedWriter serialises the writes of a logger's handler into w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newLockedTextLogger logs everything as text into w, under mu.
func newLockedTextLogger(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{w, mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// quotingReleaser contains, and fails every release with an error quoting
// the key it was handed.
type quotingReleaser struct{}

func (quotingReleaser) Contain(ctx context.Context, req containment.Request) error { return nil }
func (quotingReleaser) Release(ctx context.Context, req containment.Request) error {
	return incident.Permanent(errors.New("vendor: cannot re-enable key " + req.Credential.Reveal()))
}

// TestDismissReleaseFailureNamesNoCredential: Dismiss finishes (the incident
// is dismissed) with a release that failed quoting the key. The write that
// ended the incident forgot the credential before Dismiss returned; its
// error names none all the same.
func TestDismissReleaseFailureNamesNoCredential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pb := apiKeyPlaybook(&fakes{}, failingInvestigator) // contained, then escalated
		pb.Containment[0].Container = quotingReleaser{}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		running(t, o)
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, o, rc.IncidentID, incident.StateEscalated)
		err = o.Dismiss(context.Background(), rc.IncidentID, "carol", "test key")
		require.Error(t, err)
		require.Equal(t, incident.StateDismissed, get(t, o, rc.IncidentID).State)
		assert.NotContains(t, err.Error(), canary, "Dismiss's error holds the credential")
	})
}
