package breach

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

const testSecret = "sk_live_CREDENTIAL_1a2b3c"

// credRecorder is a container that records the credential of each call.
type credRecorder struct {
	mu    sync.Mutex
	creds []string
}

func (c *credRecorder) Contain(ctx context.Context, req containment.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creds = append(c.creds, req.Credential.Reveal())
	return nil
}

func (c *credRecorder) Release(ctx context.Context, req containment.Request) error { return nil }

func (c *credRecorder) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.creds...)
}

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func credPlaybook(c *credRecorder) Playbook {
	pb := benchPlaybook()
	pb.Containment = []containment.Action{{Name: "disable-key", Container: c}}
	pb.AutoResolve, pb.AutoClose = false, false
	return pb
}

func credSignal() incident.Signal {
	return incident.Signal{Kind: "apikey.compromised", Subject: "key_42", Severity: incident.SeverityCritical,
		Credential: incident.NewSecret(testSecret)}
}

func newCredOrchestrator(t *testing.T, store incident.Store, c *credRecorder, clk *testClock, opts ...Option) *Orchestrator {
	t.Helper()
	o, err := New(store, append([]Option{WithPlaybook(credPlaybook(c)), WithNow(clk.now),
		WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	require.NoError(t, err)
	return o
}

// stepUntil steps the incident until it is stored in state, then gives
// up the lease the steps held (as a worker of Run does when it is done).
func stepUntil(t *testing.T, o *Orchestrator, id string, state incident.State) {
	t.Helper()
	ctx := context.Background()
	defer o.dropLease(id)
	for range 20 {
		inc, err := o.Get(ctx, id)
		require.NoError(t, err)
		if inc.State == state || passed(inc, state) {
			return // a write may fold several moves: passing through counts
		}
		more, err := o.drive(ctx, ctx, id)
		require.NoError(t, err)
		require.True(t, more, "stopped in %s before %s", inc.State, state)
	}
	t.Fatalf("incident %s never reached %s", id, state)
}

// steppingStore is a MemStore whose first Create, once the incident is
// stored and before Create returns, has the incident stepped: a resume or
// another worker that finds the incident at once.
type steppingStore struct {
	*incident.MemStore
	o    *Orchestrator
	once sync.Once
	err  error
}

func (s *steppingStore) Create(ctx context.Context, ch incident.Change) error {
	if err := s.MemStore.Create(ctx, ch); err != nil {
		return err
	}
	s.once.Do(func() { s.err = s.o.settle(ctx, ch.Head.ID) })
	return nil
}

// TestCredentialSeenByAStepBeforeCreateReturns: a step that runs on the
// incident before Report's Create has returned hands the container the
// credential.
func TestCredentialSeenByAStepBeforeCreateReturns(t *testing.T) {
	c := &credRecorder{}
	ss := &steppingStore{MemStore: incident.NewMemStore()}
	ss.o = newCredOrchestrator(t, ss, c, &testClock{t: time.Now()})
	rc, err := ss.o.Report(context.Background(), credSignal())
	require.NoError(t, err)
	require.NoError(t, ss.err)
	inc, err := ss.MemStore.Head(context.Background(), rc.IncidentID)
	require.NoError(t, err)
	require.Equal(t, incident.ActionApplied, inc.Actions[0].Status, "contained from inside Create")
	assert.Equal(t, []string{testSecret}, c.seen())
}

// TestCredentialExpires: once WithCredentialTTL has passed since the
// credential came, containers get none.
func TestCredentialExpires(t *testing.T) {
	tests := []struct {
		elapsed time.Duration
		want    string
	}{
		{30 * time.Minute, testSecret},
		{time.Hour, ""},
		{2 * time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.elapsed.String(), func(t *testing.T) {
			c := &credRecorder{}
			clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
			o := newCredOrchestrator(t, incident.NewMemStore(), c, clk, WithCredentialTTL(time.Hour))
			rc, err := o.Report(context.Background(), credSignal())
			require.NoError(t, err)
			clk.add(tt.elapsed)
			require.NoError(t, o.settle(context.Background(), rc.IncidentID))
			assert.Equal(t, []string{tt.want}, c.seen())
		})
	}
}

// TestCredentialForgottenWhenAnotherReplicaEndsTheIncident: replica A keeps
// the credential; replica B dismisses the incident; A forgets the
// credential at its next resume.
func TestCredentialForgottenWhenAnotherReplicaEndsTheIncident(t *testing.T) {
	ctx := context.Background()
	store := incident.NewMemStore()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	a := newCredOrchestrator(t, store, &credRecorder{}, clk)
	b := newCredOrchestrator(t, store, &credRecorder{}, clk)
	rc, err := a.Report(ctx, credSignal())
	require.NoError(t, err)
	clk.add(time.Minute)
	require.NoError(t, b.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
	require.Equal(t, testSecret, a.credential(rc.IncidentID).Reveal(), "A cannot know yet")
	require.NoError(t, a.resume(ctx))
	assert.True(t, a.credential(rc.IncidentID).IsZero(), "forgotten at the resume")
	_, kept := a.creds.Load(rc.IncidentID)
	assert.False(t, kept)
}

// TestCredentialOfAnEarlierLifeIsNotHandedOut: after the incident is
// reopened, a credential kept before the reopen is not given to
// containers, whichever replica reopened it.
func TestCredentialOfAnEarlierLifeIsNotHandedOut(t *testing.T) {
	for _, replicas := range []string{"same replica", "other replica"} {
		t.Run(replicas, func(t *testing.T) {
			ctx := context.Background()
			store := incident.NewMemStore()
			clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
			c := &credRecorder{}
			a := newCredOrchestrator(t, store, c, clk)
			b := a
			if replicas == "other replica" {
				b = newCredOrchestrator(t, store, c, clk)
			}
			rc, err := a.Report(ctx, credSignal())
			require.NoError(t, err)
			stepUntil(t, a, rc.IncidentID, incident.StateContained)
			require.Equal(t, []string{testSecret}, c.seen(), "the first life's containment has it")
			clk.add(time.Minute)
			require.NoError(t, b.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
			clk.add(time.Minute)
			require.NoError(t, b.Reopen(ctx, rc.IncidentID, "carol", "it was real after all"))
			clk.add(time.Minute)
			require.NoError(t, a.settle(ctx, rc.IncidentID))
			inc, err := store.Head(ctx, rc.IncidentID)
			require.NoError(t, err)
			require.Equal(t, incident.ActionApplied, inc.Actions[0].Status, "containment applied again")
			assert.Equal(t, []string{testSecret, ""}, c.seen(), "the reapplied containment gets no stale credential")
		})
	}
}

// TestCredentialReportedAfterAReopenIsHandedOut: a signal that brings the
// credential after the reopen, to a replica that still holds the one of
// the earlier life, is the one containers get.
func TestCredentialReportedAfterAReopenIsHandedOut(t *testing.T) {
	ctx := context.Background()
	store := incident.NewMemStore()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	c := &credRecorder{}
	a := newCredOrchestrator(t, store, c, clk)
	b := newCredOrchestrator(t, store, c, clk)
	rc, err := a.Report(ctx, credSignal())
	require.NoError(t, err)
	stepUntil(t, a, rc.IncidentID, incident.StateContained)
	clk.add(time.Minute)
	require.NoError(t, b.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
	require.NoError(t, b.Reopen(ctx, rc.IncidentID, "carol", "it was real after all"))
	clk.add(time.Minute)
	sig := credSignal()
	sig.Credential = incident.NewSecret(testSecret + "_again")
	r2, err := a.Report(ctx, sig)
	require.NoError(t, err)
	require.Equal(t, rc.IncidentID, r2.IncidentID)
	require.NoError(t, a.settle(ctx, rc.IncidentID))
	assert.Equal(t, []string{testSecret, testSecret + "_again"}, c.seen())
}

// passed reports whether inc's timeline records a move into state.
func passed(inc *incident.Incident, state incident.State) bool {
	for _, e := range inc.Timeline {
		if e.Type == incident.EntryTransition && e.To == state {
			return true
		}
	}
	return false
}

// TestMergedCredentialsExpireAndGoWithTheIncident: the credentials of
// incidents merged into one are kept for redaction for the credential TTL
// after they came, and no longer once the incident ended (forgotten, or
// not among the open incidents at a resume).
func TestMergedCredentialsExpireAndGoWithTheIncident(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk, WithCredentialTTL(time.Hour))
	o.keepMergedCredential("inc_p", incident.NewSecret("child-one"))
	clk.add(30 * time.Minute)
	o.keepMergedCredential("inc_p", incident.NewSecret("child-two"))
	assert.Equal(t, "[REDACTED] [REDACTED]", o.redact("inc_p", "child-one child-two"))

	clk.add(45 * time.Minute) // child-one came 75 minutes ago, child-two 45
	assert.Equal(t, "child-one [REDACTED]", o.redact("inc_p", "child-one child-two"))

	o.sweepCredentials(map[string]bool{"inc_p": true}, clk.now())
	assert.Equal(t, "child-one [REDACTED]", o.redact("inc_p", "child-one child-two"), "open: kept")
	o.sweepCredentials(map[string]bool{}, clk.now())
	assert.Equal(t, "child-one child-two", o.redact("inc_p", "child-one child-two"), "ended elsewhere: swept")

	o.keepMergedCredential("inc_q", incident.NewSecret("child-three"))
	o.forgetCredential("inc_q")
	assert.Equal(t, "child-three", o.redact("inc_q", "child-three"), "ended here: forgotten")
}

// TestChildCredentialRedactedAfterAMergeElsewhere: a replica holding the
// credential of an incident another replica merged keeps it out of the
// parent's record: from the first head of the parent it reads, and across
// a resume (which would otherwise forget it with the ended child).
func TestChildCredentialRedactedAfterAMergeElsewhere(t *testing.T) {
	const parentSecret, childSecret = "violet-otter-tangerine", "amber-heron-quartz"
	for _, resume := range []bool{false, true} {
		t.Run(map[bool]string{false: "parent read", true: "resume"}[resume], func(t *testing.T) {
			ctx := context.Background()
			store := incident.NewMemStore()
			clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
			a := newCredOrchestrator(t, store, &credRecorder{}, clk)
			b := newCredOrchestrator(t, store, &credRecorder{}, clk)
			ps, cs := credSignal(), credSignal()
			cs.Subject = "key_43"
			ps.Credential, cs.Credential = incident.NewSecret(parentSecret), incident.NewSecret(childSecret)
			rp, err := a.Report(ctx, ps)
			require.NoError(t, err)
			rch, err := a.Report(ctx, cs)
			require.NoError(t, err)
			require.NotEqual(t, rp.IncidentID, rch.IncidentID)
			stepUntil(t, a, rp.IncidentID, incident.StateContained)
			stepUntil(t, a, rch.IncidentID, incident.StateContained)
			clk.add(time.Minute) // what a kept stays older than the resume's mark
			require.NoError(t, b.Merge(ctx, rp.IncidentID, rch.IncidentID, "alice", "one attacker"))
			if resume {
				require.NoError(t, a.resume(ctx))
			}
			require.NoError(t, a.AddNote(ctx, rp.IncidentID, "bob", "the gateway logged "+childSecret+" and "+parentSecret))
			inc, err := a.Get(ctx, rp.IncidentID)
			require.NoError(t, err)
			note := inc.Timeline[len(inc.Timeline)-1].Detail
			assert.Equal(t, "the gateway logged "+incident.Redacted+" and "+incident.Redacted, note)
			assert.Equal(t, parentSecret, a.credential(rp.IncidentID).Reveal(), "the parent's own stays its own")
			assert.True(t, a.credential(rch.IncidentID).IsZero(), "moved, not kept twice")
		})
	}
}

// TestEndedIncidentCredentials: an incident that ended merged hands its
// credentials (its own, and those merged into it) to its parent for
// redaction, as old as they were; one that ended otherwise forgets them.
func TestEndedIncidentCredentials(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk, WithCredentialTTL(time.Hour))
	o.keepCredential("inc_c", incident.NewSecret("child-own"))
	clk.add(30 * time.Minute)
	o.keepMergedCredential("inc_c", incident.NewSecret("grandchild"))
	o.endCredentials(&incident.Incident{ID: "inc_c", State: incident.StateMerged, MergedInto: "inc_p"})
	const text = "child-own grandchild"
	assert.Equal(t, text, o.redact("inc_c", text), "forgotten for the child")
	assert.Equal(t, "[REDACTED] [REDACTED]", o.redact("inc_p", text), "kept for the parent")
	assert.True(t, o.credential("inc_p").IsZero(), "never the parent's own")
	clk.add(45 * time.Minute) // the child's own came 75 minutes ago
	assert.Equal(t, "child-own [REDACTED]", o.redact("inc_p", text), "as old as it was")

	o.keepCredential("inc_d", incident.NewSecret("closed-own"))
	o.keepMergedCredential("inc_d", incident.NewSecret("closed-merged"))
	o.endCredentials(&incident.Incident{ID: "inc_d", State: incident.StateClosed})
	assert.Equal(t, "closed-own closed-merged", o.redact("inc_d", "closed-own closed-merged"))
}

// TestKeepRacingASweepIsNotLost: a credential kept into a set the sweep
// has just found empty, as the sweep takes the set out of the map, is kept
// in a new set, not lost with the old one.
func TestKeepRacingASweepIsNotLost(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk)
	m := &mergedCredentials{}
	o.merged.Store("inc_p", m)
	require.True(t, m.sweep(clk.now(), time.Hour, time.Time{}), "the sweep found it empty")
	o.keepMergedCredential("inc_p", incident.NewSecret("child-one")) // between the sweep and its delete
	o.merged.CompareAndDelete("inc_p", m)                            // the sweep's delete
	assert.Equal(t, incident.Redacted, o.redact("inc_p", "child-one"))
}

// TestCountingACredentialAllocatesNothing: a signal for an open incident
// that brings the incident's credential again (a leaked-key storm) is
// counted without allocating: the credential kept moments ago is not
// stored again, and its key is compared without being built. It is still
// the one kept, and a different credential replaces it.
func TestCountingACredentialAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	o := newCredOrchestrator(t, incident.NewMemStore(), &credRecorder{}, clk, WithUnsafeAcks())
	sig := credSignal()
	rc, err := o.Report(ctx, sig)
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		if _, err := o.Report(ctx, sig); err != nil {
			t.Fatal(err)
		}
	}))
	assert.Equal(t, testSecret, o.credential(rc.IncidentID).Reveal())

	clk.add(2 * time.Second) // past the refresh: stored again, with its new time
	_, err = o.Report(ctx, sig)
	require.NoError(t, err)
	v, ok := o.creds.Load(rc.IncidentID)
	require.True(t, ok)
	assert.Equal(t, clk.now(), v.(keptCredential).at, "kept again once it is no longer fresh")

	other := credSignal()
	other.Credential = incident.NewSecret("sk_live_another_key_0000")
	_, err = o.Report(ctx, other)
	require.NoError(t, err)
	assert.Equal(t, "sk_live_another_key_0000", o.credential(rc.IncidentID).Reveal(), "a different credential replaces it at once")
}
