package breach_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

func TestMergeRefused(t *testing.T) {
	ctx := context.Background()
	o, store := desk(t)
	parent := file(t, o, bruteforce("parent"))
	child := file(t, o, bruteforce("child"))
	ended := file(t, o, bruteforce("ended"))
	require.NoError(t, o.Dismiss(ctx, ended, "carol", "a penetration test"))
	other := file(t, o, bruteforce("other"))
	taken := file(t, o, bruteforce("taken"))
	require.NoError(t, o.Merge(ctx, other, taken, "dana", "one attacker"))
	gone := file(t, o, bruteforce("gone"))
	require.NoError(t, o.Merge(ctx, other, gone, "dana", "one attacker"))
	containing := file(t, o, leak()) // its containment is claimed, not yet applied
	notifying := file(t, o, bruteforce("notifying"))
	setHead(t, store, notifying, func(h *incident.Incident) { h.State = incident.StateNotifying })
	dismissing := file(t, o, bruteforce("dismissing"))
	setHead(t, store, dismissing, func(h *incident.Incident) {
		h.Dismissal = &incident.Dismissal{By: "carol", Reason: "under way", At: h.DetectedAt}
	})
	full := file(t, o, bruteforce("full"))
	setHead(t, store, full, func(h *incident.Incident) {
		for i := range incident.MaxMerged {
			h.Merged = append(h.Merged, "inc_"+strconv.Itoa(i))
		}
	})

	tests := []struct {
		name, parent, child, actor, reason string
		errs                               []error
	}{
		{"no actor", parent, child, "", "why", []error{breach.ErrInvalidInput}},
		{"no reason", parent, child, "alice", "", []error{breach.ErrInvalidInput}},
		{"reason with a control character", parent, child, "alice", "why\x1b", []error{breach.ErrInvalidInput}},
		{"no parent", "", child, "alice", "why", []error{breach.ErrInvalidInput}},
		{"no child", parent, "", "alice", "why", []error{breach.ErrInvalidInput}},
		{"into itself", parent, parent, "alice", "why", []error{breach.ErrInvalidInput}},
		{"unknown parent", "inc_nope", child, "alice", "why", []error{incident.ErrNotFound}},
		{"unknown child", parent, "inc_nope", "alice", "why", []error{incident.ErrNotFound}},
		{"child merged into another", parent, taken, "alice", "why", []error{breach.ErrMerged}},
		{"parent merged into another", gone, child, "alice", "why", []error{breach.ErrMerged}},
		{"child ended", parent, ended, "alice", "why", []error{breach.ErrIncidentEnded}},
		{"parent ended", ended, child, "alice", "why", []error{breach.ErrIncidentEnded}},
		{"child's containment under way", parent, containing, "alice", "why", []error{breach.ErrMergeBlocked}},
		{"child notifying", parent, notifying, "alice", "why", []error{breach.ErrMergeBlocked}},
		{"child being dismissed", parent, dismissing, "alice", "why", []error{breach.ErrDismissalPending}},
		{"parent being dismissed", dismissing, child, "alice", "why", []error{breach.ErrDismissalPending}},
		{"parent full", full, child, "alice", "why", []error{breach.ErrLimitReached}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]int64{}
			for _, id := range []string{tt.parent, tt.child} {
				if id != "" && id != "inc_nope" {
					before[id] = version(t, o, id)
				}
			}
			err := o.Merge(ctx, tt.parent, tt.child, tt.actor, tt.reason)
			require.Error(t, err)
			for _, w := range tt.errs {
				assert.ErrorIs(t, err, w)
			}
			for id, v := range before {
				assert.Equal(t, v, version(t, o, id), "nothing recorded on %s", id)
			}
		})
	}
	h, err := o.Head(ctx, child)
	require.NoError(t, err)
	assert.True(t, h.State.Open())
	assert.Empty(t, h.MergedInto)
}

// TestMerge: two incidents of one leak, found by two detectors. The child
// was detected first, with more signals, higher severity and evidence;
// once merged, the parent carries all of it on, the child's containment
// stays applied, its clock's earlier start counts, and a later signal for
// the child's key joins the parent.
func TestMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := &fakes{}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Clocks = []breach.Clock{breach.GDPR()}
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()

		key2 := leak()
		key2.Subject, key2.Summary = "key_2", "key found in a fork"
		child := file(t, o, key2)
		for range 2 {
			file(t, o, key2)
		}
		synctest.Wait()
		require.NoError(t, o.AttachEvidence(ctx, child, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7"}, "bob"))
		require.NoError(t, o.AttachEvidence(ctx, child, incident.Observable{Type: incident.ObservableKeyID, Value: "key_2"}, "bob"))
		time.Sleep(time.Hour)
		key1 := leak()
		key1.Subject, key1.Severity = "key_1", incident.SeverityHigh
		parent := file(t, o, key1)
		synctest.Wait()
		require.NoError(t, o.AttachEvidence(ctx, parent, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7"}, "carol"))
		before := get(t, o, child)
		require.Equal(t, incident.StateResolving, before.State)
		require.Equal(t, incident.StateResolving, get(t, o, parent).State)
		require.EqualValues(t, 3, before.Signals.Count)

		require.NoError(t, o.Merge(ctx, parent, child, "alice", "both keys leaked in one commit"))
		synctest.Wait()

		c := get(t, o, child)
		assert.Equal(t, incident.StateMerged, c.State)
		assert.Equal(t, parent, c.MergedInto)
		assert.Equal(t, "resolving>merged", lastTransition(c))
		assert.True(t, hasEntry(c, "alice", "merged into incident "+parent, "both keys leaked in one commit"))
		assert.Equal(t, incident.ActionApplied, c.Actions[0].Status, "containment stays applied")
		_, released, _ := f.snapshot()
		assert.Empty(t, released, "nothing is released")
		if d := c.Deadline(breach.GDPR().Name); assert.NotNil(t, d) {
			assert.Equal(t, incident.DeadlineNotApplicable, d.Status)
			assert.Contains(t, d.NotApplicableReason, "merged into incident "+parent)
		}

		p := get(t, o, parent)
		assert.Equal(t, []string{child}, p.Merged)
		assert.EqualValues(t, 4, p.Signals.Count, "1 + 3")
		assert.True(t, p.Signals.FirstSeen.Equal(before.Signals.FirstSeen), "first seen on the child")
		assert.Len(t, p.Signals.Samples, 4)
		if assert.Len(t, p.Evidence, 2, "the address once, the key ID refiled") {
			assert.Equal(t, "carol", p.Evidence[0].AddedBy)
			assert.Equal(t, incident.Observable{Type: incident.ObservableKeyID, Value: "key_2", AddedAt: p.Evidence[1].AddedAt,
				AddedBy: "bob"}, p.Evidence[1])
		}
		assert.True(t, hasEntry(p, "alice", "merged incident "+child+" (apikey.compromised, key_2, critical): 3 signal(s), 1 observable(s) refiled",
			`its containment stays as it is: "disable-key" applied`, "both keys leaked in one commit"))
		assert.Equal(t, incident.SeverityCritical, p.Severity, "raised to the child's")
		assert.True(t, hasEntry(p, "alice", "severity raised from high to critical by merged incident "+child))
		pd, cd := p.Deadline(breach.GDPR().Name), before.Deadline(breach.GDPR().Name)
		if assert.NotNil(t, pd) && assert.NotNil(t, cd) {
			assert.True(t, pd.StartedAt.Equal(cd.StartedAt), "the clock counts from the child's awareness")
			assert.True(t, pd.Due.Equal(cd.Due))
			assert.Equal(t, incident.DeadlineRunning, pd.Status)
		}
		assert.NoError(t, p.Timeline.Verify())
		assert.NoError(t, c.Timeline.Verify())
		assert.Contains(t, p.Markdown(), "| Merged incidents | "+child+" |")
		assert.Contains(t, c.Markdown(), "| Merged into | "+parent+" |")

		// The register finds it by its state.
		page, err := o.List(ctx, incident.ListFilter{States: []incident.State{incident.StateMerged}})
		require.NoError(t, err)
		if assert.Len(t, page.Incidents, 1) {
			assert.Equal(t, child, page.Incidents[0].ID)
		}

		// A later signal for the child's key joins the parent.
		rc, err := o.Report(ctx, key2)
		require.NoError(t, err)
		assert.Equal(t, parent, rc.IncidentID)
		assert.False(t, rc.Opened)
		synctest.Wait()
		assert.EqualValues(t, 5, get(t, o, parent).Signals.Count)
		assert.EqualValues(t, 3, get(t, o, child).Signals.Count)

		// Merging again changes nothing.
		vp, vc := version(t, o, parent), version(t, o, child)
		require.NoError(t, o.Merge(ctx, parent, child, "alice", "clicked twice"))
		assert.Equal(t, vp, version(t, o, parent))
		assert.Equal(t, vc, version(t, o, child))
	})
}

// TestMergeConcurrent: two people merge the same incidents at once; the
// child is merged once, and its signals are counted once.
func TestMergeConcurrent(t *testing.T) {
	o, _ := desk(t)
	parent := file(t, o, bruteforce("parent"))
	child := file(t, o, bruteforce("child"))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			errs[i] = o.Merge(context.Background(), parent, child, "person"+strconv.Itoa(i), "same attacker")
		})
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	p := get(t, o, parent)
	assert.Equal(t, []string{child}, p.Merged)
	assert.EqualValues(t, 2, p.Signals.Count)
	c := get(t, o, child)
	assert.Equal(t, []string{"detected>investigating", "investigating>merged"}, transitions(c))
}

// TestMergeFinishesAfterCrash: the process dies between Merge's two
// writes (the child ended, the parent not yet written). Merge called again
// by the next process finishes it, once; the child's record says where its
// signals went meanwhile.
func TestMergeFinishesAfterCrash(t *testing.T) {
	ctx := context.Background()
	mem := incident.NewMemStore()
	cs := &crashStore{Store: mem}
	o, err := breach.New(cs, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	parent := file(t, o, bruteforce("parent"))
	child := file(t, o, bruteforce("child"))
	file(t, o, bruteforce("child")) // a second signal, stored by group commit
	cs.mu.Lock()
	cs.crashAt = cs.writes + 2 // the child's write lands, the parent's does not
	cs.mu.Unlock()

	err = o.Merge(ctx, parent, child, "alice", "same attacker")
	require.ErrorIs(t, err, errCrash)
	c, err := mem.Head(ctx, child)
	require.NoError(t, err)
	assert.Equal(t, incident.StateMerged, c.State)
	assert.Equal(t, parent, c.MergedInto)
	p, err := mem.Head(ctx, parent)
	require.NoError(t, err)
	assert.Empty(t, p.Merged, "the parent's write never landed")
	assert.EqualValues(t, 1, p.Signals.Count)

	// The next process, on the same store.
	o2, err := breach.New(mem, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	require.NoError(t, o2.Merge(ctx, parent, child, "alice", "same attacker"))
	p = get(t, o2, parent)
	assert.Equal(t, []string{child}, p.Merged)
	assert.EqualValues(t, 3, p.Signals.Count, "1 + the child's 2, once")
	n := 0
	for _, e := range p.Timeline {
		if e.Type == incident.EntryMerge {
			n++
		}
	}
	assert.Equal(t, 1, n, "one merge entry on the parent")
	vc := version(t, o2, child)
	require.NoError(t, o2.Merge(ctx, parent, child, "alice", "same attacker"))
	assert.Equal(t, p.Version, version(t, o2, parent), "finished: nothing more to write")
	assert.Equal(t, vc, version(t, o2, child))

	rc, err := o2.Report(ctx, bruteforce("child"))
	require.NoError(t, err)
	assert.Equal(t, parent, rc.IncidentID, "the child's key leads to the parent")
}

// TestMergeWhileContaining: Merge does not wait for a containment call in
// flight on the child: it refuses at once, recording nothing; once
// containment settles the merge goes through, and containment stays
// applied.
func TestMergeWhileContaining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		g := newGate(1) // the parent's call returns, the child's hangs
		c := &gatedContainer{g: g}
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = c
		pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		parent := file(t, o, leak())
		synctest.Wait()
		sig := leak()
		sig.Subject = "key_2"
		child := file(t, o, sig)
		synctest.Wait()
		require.Equal(t, incident.StateResolving, get(t, o, parent).State)
		require.Equal(t, incident.StateContaining, get(t, o, child).State)
		vp, vc := version(t, o, parent), version(t, o, child)

		returned, wait, err := returnsWithin(t, promptly, func() error {
			return o.Merge(ctx, parent, child, "alice", "one leak")
		})
		if !assert.True(t, returned, "Merge waits for the container") {
			g.release()
			_ = wait()
		}
		assert.ErrorIs(t, err, breach.ErrMergeBlocked)
		assert.Contains(t, err.Error(), `"disable-key" pending`)
		assert.Equal(t, vp, version(t, o, parent))
		assert.Equal(t, vc, version(t, o, child))

		g.release()
		await(t, o, child, incident.StateResolving)
		require.NoError(t, o.Merge(ctx, parent, child, "alice", "one leak"))
		synctest.Wait()
		inc := get(t, o, child)
		assert.Equal(t, incident.StateMerged, inc.State)
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
		assert.Zero(t, c.releases(), "containment of the child is not released")
	})
}

// Two detectors opened two incidents for one attack; a responder merges
// them, and later signals for either key land on the one that carries on.
func ExampleOrchestrator_Merge() {
	ctx := context.Background()
	o, err := breach.New(incident.NewMemStore(), breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithPlaybook(breach.Playbook{Kind: "login.bruteforce", Strategy: breach.InvestigateFirst}))
	if err != nil {
		panic(err)
	}
	report := func(subject string) incident.Receipt {
		rc, err := o.Report(ctx, incident.Signal{Kind: "login.bruteforce", Subject: subject, Severity: incident.SeverityHigh})
		if err != nil {
			panic(err)
		}
		return rc
	}
	parent, child := report("user_7").IncidentID, report("user_8").IncidentID
	if err := o.Merge(ctx, parent, child, "alice", "one attacker, two accounts"); err != nil {
		panic(err)
	}
	later := report("user_8")
	p, _ := o.Get(ctx, parent)
	c, _ := o.Get(ctx, child)
	fmt.Println("child:", c.State, "| into the parent:", c.MergedInto == parent)
	fmt.Println("parent:", p.State, "| children:", len(p.Merged), "| signals:", p.Signals.Count)
	fmt.Println("a later signal for the child's key joins the parent:", later.IncidentID == parent)
	for _, e := range p.Timeline {
		if e.Type == incident.EntryMerge {
			fmt.Println(strings.Replace(e.Detail, child, "<child>", 1))
		}
	}
	// Output:
	// child: merged | into the parent: true
	// parent: investigating | children: 1 | signals: 3
	// a later signal for the child's key joins the parent: true
	// merged incident <child> (login.bruteforce, user_8, high): 1 signal(s), 0 observable(s) refiled: one attacker, two accounts
}
