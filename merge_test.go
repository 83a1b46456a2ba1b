package breach_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	filling := file(t, o, bruteforce("filling")) // its last place is reserved
	setHead(t, store, filling, func(h *incident.Incident) {
		for i := range incident.MaxMerged - 1 {
			h.Merged = append(h.Merged, "inc_"+strconv.Itoa(i))
		}
		h.Merging = []string{"inc_pending"}
	})
	taking := file(t, o, bruteforce("taking")) // an incident is being merged into it
	setHead(t, store, taking, func(h *incident.Incident) { h.Merging = []string{"inc_pending"} })

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
		{"parent full with a merge under way", filling, child, "alice", "why", []error{breach.ErrLimitReached}},
		{"child taking in a merge", parent, taking, "alice", "why", []error{breach.ErrMergeBlocked}},
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

// TestMergeFinishesAfterCrash: the process dies part way through Merge's
// three writes (the parent's reservation, the child's end, the parent's
// taking of the child). Merge called again by the next process finishes
// it, once; meanwhile the parent's reservation keeps it from being merged
// elsewhere, and the child's record says where its signals went once it
// has ended. A child that can no longer be merged when Merge is called
// again is refused, and the reservation withdrawn.
func TestMergeFinishesAfterCrash(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		landed  int  // writes of the merge that land
		ended   bool // the child's end is among them
		dismiss bool // the child is dismissed before Merge is called again
	}{
		{name: "after the reservation", landed: 1},
		{name: "after the child ended", landed: 2, ended: true},
		{name: "after the reservation, the child dismissed since", landed: 1, dismiss: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := incident.NewMemStore()
			cs := &crashStore{Store: mem}
			o, err := breach.New(cs, breach.WithPlaybook(loginPlaybook()), quiet)
			require.NoError(t, err)
			parent := file(t, o, bruteforce("parent"))
			child := file(t, o, bruteforce("child"))
			file(t, o, bruteforce("child")) // a second signal, stored by group commit
			other := file(t, o, bruteforce("other"))
			cs.mu.Lock()
			cs.crashAt = cs.writes + tt.landed + 1
			cs.mu.Unlock()

			err = o.Merge(ctx, parent, child, "alice", "same attacker")
			require.ErrorIs(t, err, errCrash)
			c, err := mem.Head(ctx, child)
			require.NoError(t, err)
			if tt.ended {
				assert.Equal(t, incident.StateMerged, c.State)
				assert.Equal(t, parent, c.MergedInto)
			} else {
				assert.True(t, c.State.Open())
				assert.Empty(t, c.MergedInto)
			}
			p, err := mem.Head(ctx, parent)
			require.NoError(t, err)
			assert.Equal(t, []string{child}, p.Merging, "the reservation landed")
			assert.Empty(t, p.Merged, "the parent's last write never landed")
			assert.EqualValues(t, 1, p.Signals.Count)

			// The next process, on the same store.
			o2, err := breach.New(mem, breach.WithPlaybook(loginPlaybook()), quiet)
			require.NoError(t, err)
			vp, vo := version(t, o2, parent), version(t, o2, other)
			err = o2.Merge(ctx, other, parent, "bob", "one campaign")
			require.ErrorIs(t, err, breach.ErrMergeBlocked, "the parent cannot be merged elsewhere meanwhile")
			assert.Contains(t, err.Error(), child)
			assert.Equal(t, vp, version(t, o2, parent))
			assert.Equal(t, vo, version(t, o2, other))

			if tt.dismiss {
				require.NoError(t, o2.Dismiss(ctx, child, "carol", "a penetration test"))
				err := o2.Merge(ctx, parent, child, "alice", "same attacker")
				require.ErrorIs(t, err, breach.ErrIncidentEnded)
				p = get(t, o2, parent)
				assert.Empty(t, p.Merging, "the reservation is withdrawn")
				assert.Empty(t, p.Merged)
				assert.False(t, hasEntry(p, "", "merged incident"), "nothing recorded")
				require.NoError(t, o2.Merge(ctx, other, parent, "bob", "one campaign"), "the parent is free again")
				return
			}

			require.NoError(t, o2.Merge(ctx, parent, child, "alice", "same attacker"))
			p = get(t, o2, parent)
			assert.Equal(t, []string{child}, p.Merged)
			assert.Empty(t, p.Merging)
			assert.EqualValues(t, 3, p.Signals.Count, "1 + the child's 2, once")
			n := 0
			for _, e := range p.Timeline {
				if e.Type == incident.EntryMerge {
					n++
				}
			}
			assert.Equal(t, 1, n, "one merge entry on the parent")
			c = get(t, o2, child)
			assert.Equal(t, parent, c.MergedInto)
			assert.Equal(t, []string{"detected>investigating", "investigating>merged"}, transitions(c))
			vc := version(t, o2, child)
			require.NoError(t, o2.Merge(ctx, parent, child, "alice", "same attacker"))
			assert.Equal(t, p.Version, version(t, o2, parent), "finished: nothing more to write")
			assert.Equal(t, vc, version(t, o2, child))

			rc, err := o2.Report(ctx, bruteforce("child"))
			require.NoError(t, err)
			assert.Equal(t, parent, rc.IncidentID, "the child's key leads to the parent")
		})
	}
}

// mergeHookStore calls its hooks from the goroutine of the caller: read
// before each head is read, writing before each write, applied after each
// write that lands. A hook may block, to hold a Merge between two of its
// steps, and may call the orchestrator.
type mergeHookStore struct {
	*incident.MemStore
	read             atomic.Pointer[func(id string)]
	writing, applied atomic.Pointer[func(ch incident.Change)]
}

func (s *mergeHookStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if f := s.read.Load(); f != nil {
		(*f)(id)
	}
	return s.MemStore.Head(ctx, id)
}

func (s *mergeHookStore) Apply(ctx context.Context, ch incident.Change) error {
	if f := s.writing.Load(); f != nil {
		(*f)(ch)
	}
	err := s.MemStore.Apply(ctx, ch)
	if f := s.applied.Load(); f != nil && err == nil {
		(*f)(ch)
	}
	return err
}

// holdGate holds the first n goroutines that call hold until release; later
// calls pass. It is for synctest bubbles: release waits until the
// goroutines are blocked.
type holdGate struct {
	n    int32
	held atomic.Int32
	open chan struct{}
}

func holdFirst(n int32) *holdGate { return &holdGate{n: n, open: make(chan struct{})} }

func (g *holdGate) hold() {
	if g.held.Add(1) <= g.n {
		<-g.open
	}
}

// release checks that n goroutines are held, once every goroutine of the
// bubble is blocked, and lets them go.
func (g *holdGate) release(t *testing.T, msg string) {
	t.Helper()
	synctest.Wait()
	require.EqualValues(t, g.n, g.held.Load(), msg)
	close(g.open)
}

// mergeDesk returns two orchestrators on one store: the same one twice
// (one process) or two (two replicas).
func mergeDesk(t *testing.T, replicas bool) (o1, o2 *breach.Orchestrator, store *mergeHookStore) {
	t.Helper()
	store = &mergeHookStore{MemStore: incident.NewMemStore()}
	o1, err := breach.New(store, quiet, breach.WithPlaybook(loginPlaybook()))
	require.NoError(t, err)
	o2 = o1
	if replicas {
		o2, err = breach.New(store, quiet, breach.WithPlaybook(loginPlaybook()))
		require.NoError(t, err)
	}
	return o1, o2, store
}

// inOneOrTwo runs test in a synctest bubble with one process merging and
// again with two replicas on one store.
func inOneOrTwo(t *testing.T, test func(t *testing.T, o1, o2 *breach.Orchestrator, store *mergeHookStore)) {
	for _, replicas := range []bool{false, true} {
		t.Run(map[bool]string{false: "one process", true: "two replicas"}[replicas], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o1, o2, store := mergeDesk(t, replicas)
				test(t, o1, o2, store)
			})
		})
	}
}

// TestMergeMutual: A merged into B and B into A at once, both parents'
// reservations written before either child ends. At most one of the two
// goes through; an open incident carries the response on, and no
// reservation is left behind. Before the fix both went through: each was
// checked against the other's head as read before either wrote, and no
// incident was left open.
func TestMergeMutual(t *testing.T) {
	inOneOrTwo(t, func(t *testing.T, o, o2 *breach.Orchestrator, store *mergeHookStore) {
		ctx := context.Background()
		a, b := file(t, o, bruteforce("a")), file(t, o, bruteforce("b"))
		// Both read the heads and come to write their reservations, then
		// both write them, before either goes on.
		reserving, reserved := holdFirst(2), holdFirst(2)
		holdReserving := func(ch incident.Change) {
			if len(ch.Head.Merging) > 0 {
				reserving.hold()
			}
		}
		holdReserved := func(ch incident.Change) {
			if len(ch.Head.Merging) > 0 {
				reserved.hold()
			}
		}
		store.writing.Store(&holdReserving)
		store.applied.Store(&holdReserved)
		var wg sync.WaitGroup
		var errAB, errBA error
		wg.Go(func() { errAB = o.Merge(ctx, b, a, "alice", "one attacker") })
		wg.Go(func() { errBA = o2.Merge(ctx, a, b, "bob", "one attacker") })
		reserving.release(t, "both come to write their reservations")
		reserved.release(t, "both reservations are written")
		wg.Wait()

		ha, hb := get(t, o, a), get(t, o, b)
		assert.Empty(t, ha.Merging)
		assert.Empty(t, hb.Merging)
		require.False(t, ha.State == incident.StateMerged && hb.State == incident.StateMerged, "both merged: %v, %v", errAB, errBA)
		assert.Error(t, errors.Join(errAB, errBA), "at most one goes through")
		for _, err := range []error{errAB, errBA} {
			if err != nil {
				assert.ErrorIs(t, err, breach.ErrMergeBlocked)
			}
		}
		for _, m := range []struct {
			err           error
			child, parent *incident.Incident
		}{{errAB, ha, hb}, {errBA, hb, ha}} {
			if m.err == nil {
				assert.Equal(t, m.parent.ID, m.child.MergedInto)
				assert.Equal(t, []string{m.child.ID}, m.parent.Merged)
				assert.True(t, m.parent.State.Open())
			} else if m.child.State != incident.StateMerged {
				assert.True(t, m.child.State.Open())
				assert.False(t, hasEntry(m.child, "", "merged into incident"), "nothing recorded")
			}
		}
	})
}

// TestMergeLimitRace: two merges into a parent with one place left, both
// having read the parent before either writes. One goes through, the other
// is refused, and the parent holds incident.MaxMerged. Before the fix both
// went through: MaxMerged+1.
func TestMergeLimitRace(t *testing.T) {
	inOneOrTwo(t, func(t *testing.T, o, o2 *breach.Orchestrator, store *mergeHookStore) {
		ctx := context.Background()
		p := file(t, o, bruteforce("parent"))
		setHead(t, store.MemStore, p, func(h *incident.Incident) {
			for i := range incident.MaxMerged - 1 {
				h.Merged = append(h.Merged, "inc_"+strconv.Itoa(i))
			}
		})
		children := []string{file(t, o, bruteforce("c1")), file(t, o, bruteforce("c2"))}
		versions := []int64{version(t, o, children[0]), version(t, o, children[1])}
		read := holdFirst(2)
		hold := func(id string) {
			if id == p {
				read.hold()
			}
		}
		store.read.Store(&hold)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*breach.Orchestrator{o, o2} {
			wg.Go(func() { errs[i] = m.Merge(ctx, p, children[i], "person"+strconv.Itoa(i), "same attacker") })
		}
		read.release(t, "both read the parent first")
		wg.Wait()

		h := get(t, o, p)
		assert.Len(t, h.Merged, incident.MaxMerged)
		assert.Empty(t, h.Merging)
		n := 0
		for i, err := range errs {
			if err == nil {
				n++
				assert.Equal(t, children[i], h.Merged[len(h.Merged)-1])
				continue
			}
			assert.ErrorIs(t, err, breach.ErrLimitReached)
			assert.Equal(t, versions[i], version(t, o, children[i]), "nothing recorded on the refused child")
		}
		assert.Equal(t, 1, n, "one goes through: %v", errs)
	})
}

// TestMergeParentChangesMeanwhile: between the parent's reservation and
// the child's end, something else happens to the parent or the child (on
// this replica or another: the store is what is checked). A parent that
// ended, or a child merged elsewhere, refuses the merge, with nothing
// recorded on either timeline and the reservation withdrawn; a merge of the
// parent into another incident is refused itself, and the first merge goes
// through. Before the fix the parent was checked only as first read: an
// ended or merged parent still took the child.
func TestMergeParentChangesMeanwhile(t *testing.T) {
	tests := []struct {
		name string
		// meanwhile runs once the reservation has landed, before the
		// child's end is written.
		meanwhile func(t *testing.T, o *breach.Orchestrator, parent, child, other string)
		want      error // of the merge; nil: it goes through
	}{
		{"parent dismissed", func(t *testing.T, o *breach.Orchestrator, parent, _, _ string) {
			require.NoError(t, o.Dismiss(context.Background(), parent, "carol", "a penetration test"))
		}, breach.ErrIncidentEnded},
		{"parent closed", func(t *testing.T, o *breach.Orchestrator, parent, _, _ string) {
			require.NoError(t, o.Resolve(context.Background(), parent, "carol", "accounts locked"))
			require.NoError(t, o.Close(context.Background(), parent, "carol", "reviewed"))
		}, breach.ErrIncidentEnded},
		{"child merged elsewhere", func(t *testing.T, o *breach.Orchestrator, _, child, other string) {
			require.NoError(t, o.Merge(context.Background(), other, child, "dana", "same attacker"))
		}, breach.ErrMerged},
		{"parent merged into another", func(t *testing.T, o *breach.Orchestrator, parent, child, other string) {
			err := o.Merge(context.Background(), other, parent, "dana", "same campaign")
			require.ErrorIs(t, err, breach.ErrMergeBlocked, "the parent is taking in a merge")
			assert.Contains(t, err.Error(), child)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			o, _, store := mergeDesk(t, false)
			parent, child := file(t, o, bruteforce("parent")), file(t, o, bruteforce("child"))
			other := file(t, o, bruteforce("other"))
			vc := version(t, o, child)
			var ran atomic.Bool
			hook := func(ch incident.Change) {
				if ch.Head.ID == parent && slices.Contains(ch.Head.Merging, child) && ran.CompareAndSwap(false, true) {
					tt.meanwhile(t, o, parent, child, other)
				}
			}
			store.applied.Store(&hook)
			err := o.Merge(ctx, parent, child, "alice", "same attacker")
			store.applied.Store(nil)
			require.True(t, ran.Load())

			p, c := get(t, o, parent), get(t, o, child)
			assert.Empty(t, p.Merging, "no reservation is left")
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, []string{child}, p.Merged)
				assert.Equal(t, parent, c.MergedInto)
				assert.True(t, p.State.Open())
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.NotContains(t, p.Merged, child)
			assert.False(t, hasEntry(p, "alice", "merged incident "+child), "nothing recorded on the parent")
			assert.False(t, hasEntry(c, "alice", "merged into incident "+parent), "nothing recorded on the child")
			if c.MergedInto == "" {
				assert.Equal(t, vc, c.Version, "the child is as it was")
			}
		})
	}
}

// TestMergeReasonRedactsBothCredentials: a merge reason that holds either
// incident's credential keeps neither on either timeline. Before the fix
// each entry was scrubbed with its own incident's credential only.
func TestMergeReasonRedactsBothCredentials(t *testing.T) {
	ctx := context.Background()
	o, _ := desk(t)
	const parentSecret, childSecret = "correct-horse-parent-pw", "Tr0ub4dor&3-child-pass"
	ps, cs := bruteforce("parent"), bruteforce("child")
	ps.Credential, cs.Credential = incident.NewSecret(parentSecret), incident.NewSecret(childSecret)
	parent, child := file(t, o, ps), file(t, o, cs)
	require.NoError(t, o.Merge(ctx, parent, child, "alice", "one leak: "+childSecret+" and "+parentSecret))
	for _, id := range []string{parent, child} {
		inc := get(t, o, id)
		var merge string
		for _, e := range inc.Timeline {
			assert.NotContains(t, e.Detail, childSecret, "%s", id)
			assert.NotContains(t, e.Detail, parentSecret, "%s", id)
			if e.Type == incident.EntryMerge {
				merge = e.Detail
			}
		}
		assert.Contains(t, merge, "one leak: "+incident.Redacted+" and "+incident.Redacted, "%s", id)
	}
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

// TestResumeFinishesAMergeCutShort: a process stopped between the child's
// end and the parent's last write; the next one to Run on the store takes
// the child into the parent as it resumes, without anyone calling Merge
// again, and the child's later signals join the parent.
func TestResumeFinishesAMergeCutShort(t *testing.T) {
	ctx := context.Background()
	mem := incident.NewMemStore()
	cs := &crashStore{Store: mem}
	o, err := breach.New(cs, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	parent := file(t, o, bruteforce("parent"))
	child := file(t, o, bruteforce("child"))
	cs.mu.Lock()
	cs.crashAt = cs.writes + 3 // the reservation and the child's end land
	cs.mu.Unlock()
	require.ErrorIs(t, o.Merge(ctx, parent, child, "alice", "same attacker"), errCrash)
	p, err := mem.Head(ctx, parent)
	require.NoError(t, err)
	require.Equal(t, []string{child}, p.Merging)
	require.Empty(t, p.Merged)

	o2, err := breach.New(mem, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	stop := running(t, o2)
	defer stop()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got, err := o2.Await(actx, parent, func(inc *incident.Incident) bool { return len(inc.Merged) == 1 })
	require.NoError(t, err, "the merge was never finished")
	assert.Equal(t, []string{child}, got.Merged)
	assert.Empty(t, got.Merging)
	assert.EqualValues(t, 2, got.Signals.Count, "the parent's signal and the child's")
	rc, err := o2.Report(ctx, bruteforce("child"))
	require.NoError(t, err)
	assert.Equal(t, parent, rc.IncidentID, "a later signal of the child's key joins the parent")
}

// TestResumeWithdrawsReservationsThatCannotFinish: a parent's reservations
// (Merging) whose child ended otherwise, was merged elsewhere or no longer
// exists can never be finished; the next process to Run withdraws them as
// it resumes, and leaves the one whose child is still open (its Merge may
// be under way) to the next Merge of the two.
func TestResumeWithdrawsReservationsThatCannotFinish(t *testing.T) {
	ctx := context.Background()
	mem := incident.NewMemStore()
	o, err := breach.New(mem, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	parent := file(t, o, bruteforce("parent"))
	closed := file(t, o, bruteforce("closed"))
	elsewhere := file(t, o, bruteforce("elsewhere"))
	other := file(t, o, bruteforce("other"))
	open := file(t, o, bruteforce("open"))
	setHead(t, mem, closed, func(h *incident.Incident) { h.State = incident.StateClosed })
	setHead(t, mem, elsewhere, func(h *incident.Incident) { h.State, h.MergedInto = incident.StateMerged, other })
	setHead(t, mem, parent, func(h *incident.Incident) { h.Merging = []string{closed, "inc_gone", elsewhere, open} })

	o2, err := breach.New(mem, breach.WithPlaybook(loginPlaybook()), quiet)
	require.NoError(t, err)
	stop := running(t, o2)
	defer stop()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second) // a failure's bound
	defer cancel()
	// One write withdraws each.
	got, err := o2.Await(actx, parent, func(inc *incident.Incident) bool { return len(inc.Merging) <= 1 })
	require.NoError(t, err, "the reservations that cannot finish were not withdrawn")
	assert.Equal(t, []string{open}, got.Merging, "only the open child's reservation stays")
	assert.Empty(t, got.Merged)
	assert.EqualValues(t, 1, got.Signals.Count, "nothing was taken in")
	require.NoError(t, o2.Merge(ctx, parent, open, "alice", "the same attacker"), "the open child can still be merged")
}

// TestMergedCredentialStaysRedactedOnTheParent: once an incident is merged
// (and its credential forgotten with its end), the parent's record keeps
// the child's credential out: a person's note quoting it is redacted, and
// evidence holding it is refused. A later signal for the child's key,
// bringing the child's credential again, joins the parent without taking
// the place of the parent's own credential, which stays redacted too.
func TestMergedCredentialStaysRedactedOnTheParent(t *testing.T) {
	ctx := context.Background()
	o, _ := desk(t)
	const parentSecret, childSecret = "violet-otter-tangerine", "amber-heron-quartz"
	for _, s := range []string{parentSecret, childSecret} {
		require.Equal(t, s, incident.RedactCredentials(s), "no pattern catches it: only the kept credential can")
	}
	ps, cs := bruteforce("parent"), bruteforce("child")
	ps.Credential, cs.Credential = incident.NewSecret(parentSecret), incident.NewSecret(childSecret)
	parent, child := file(t, o, ps), file(t, o, cs)
	require.NoError(t, o.Merge(ctx, parent, child, "alice", "one attacker"))
	rc, err := o.Report(ctx, cs)
	require.NoError(t, err)
	require.Equal(t, parent, rc.IncidentID, "the child's key joins the parent")

	require.NoError(t, o.AddNote(ctx, parent, "bob", "the gateway logged "+childSecret+" and "+parentSecret))
	inc := get(t, o, parent)
	note := inc.Timeline[len(inc.Timeline)-1].Detail
	assert.NotContains(t, note, childSecret)
	assert.NotContains(t, note, parentSecret, "the parent's own credential is still the one kept")
	assert.Contains(t, note, "the gateway logged "+incident.Redacted+" and "+incident.Redacted)

	err = o.AttachEvidence(ctx, parent, incident.Observable{Type: incident.ObservableKeyID, Value: childSecret}, "bob")
	require.ErrorIs(t, err, incident.ErrCredentialEvidence)
	assert.NotContains(t, err.Error(), childSecret)
}

// TestReportAllMergedKeyKeepsParentCredential: ReportAll, like Report,
// keeps a credential brought for a merged key for redaction alone: the
// parent's own stays the one kept, and redacted.
func TestReportAllMergedKeyKeepsParentCredential(t *testing.T) {
	ctx := context.Background()
	o, _ := desk(t)
	const parentSecret, childSecret = "violet-otter-tangerine", "amber-heron-quartz"
	ps, cs := bruteforce("parent"), bruteforce("child")
	ps.Credential, cs.Credential = incident.NewSecret(parentSecret), incident.NewSecret(childSecret)
	parent, child := file(t, o, ps), file(t, o, cs)
	require.NoError(t, o.Merge(ctx, parent, child, "alice", "one attacker"))
	rc, err := o.Report(ctx, cs) // slow path: the child's key is filed on the parent's hot entry
	require.NoError(t, err)
	require.Equal(t, parent, rc.IncidentID)
	rcs, err := o.ReportAll(ctx, []incident.Signal{cs}) // fast path
	require.NoError(t, err)
	require.Equal(t, parent, rcs[0].IncidentID)

	require.NoError(t, o.AddNote(ctx, parent, "bob", "the gateway logged "+parentSecret))
	inc := get(t, o, parent)
	assert.NotContains(t, inc.Timeline[len(inc.Timeline)-1].Detail, parentSecret, "the parent's own credential was replaced by the child's")
}

// TestActionsRefusedOnAMergedIncident: every person's action refused on a
// merged incident matches ErrMerged and ErrIncidentEnded (ErrMerged's
// doc), keeps the refusal's own error, names the parent and records
// nothing.
func TestActionsRefusedOnAMergedIncident(t *testing.T) {
	o, _ := desk(t)
	ctx := context.Background()
	parent := file(t, o, bruteforce("alice"))
	child := file(t, o, bruteforce("bob"))
	require.NoError(t, o.Merge(ctx, parent, child, "alice", "one attack"))
	var te *incident.TransitionError
	tests := []struct {
		name string
		act  func() error
		also func(err error) bool // the refusal's own error, kept
	}{
		{"Resolve", func() error { return o.Resolve(ctx, child, "alice", "x") }, func(err error) bool { return errors.As(err, &te) }},
		{"Close", func() error { return o.Close(ctx, child, "alice", "x") }, func(err error) bool { return errors.As(err, &te) }},
		{"Dismiss", func() error { return o.Dismiss(ctx, child, "alice", "x") }, func(err error) bool { return errors.As(err, &te) }},
		{"Reopen", func() error { return o.Reopen(ctx, child, "alice", "x") }, func(err error) bool { return errors.As(err, &te) }},
		{"Retry", func() error { return o.Retry(ctx, child, "alice", "x") }, nil},
		{"Approve", func() error { return o.Approve(ctx, child, "revoke", "alice", "x") }, func(err error) bool { return errors.Is(err, breach.ErrNoApprovalPending) }},
		{"OverrideDecision", func() error { return o.OverrideDecision(ctx, child, true, "alice", "x") }, nil},
		{"CompleteTask", func() error { return o.CompleteTask(ctx, child, "scan", "alice", "x") }, func(err error) bool { return errors.Is(err, breach.ErrNoSuchTask) }},
		{"PauseClock", func() error { return o.PauseClock(ctx, child, breach.GDPR().Name, "alice", "x") }, func(err error) bool { return errors.Is(err, breach.ErrNoSuchClock) }},
		{"AssignCommander", func() error { return o.AssignCommander(ctx, child, "carol", "alice", "") }, nil},
		{"ChangeSeverity", func() error { return o.ChangeSeverity(ctx, child, incident.SeverityLow, "alice", "x") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := get(t, o, child)
			err := tt.act()
			assert.ErrorIs(t, err, breach.ErrMerged)
			assert.ErrorIs(t, err, breach.ErrIncidentEnded)
			if err != nil {
				assert.Contains(t, err.Error(), parent, "names the parent")
			}
			if tt.also != nil {
				assert.True(t, tt.also(err), "keeps its own error: %v", err)
			}
			assert.Equal(t, before.Version, get(t, o, child).Version, "nothing recorded")
		})
	}
}

// TestPersonsTextIsChecked: every action that takes a person's note or
// reason refuses text a note would refuse (control characters, more than
// MaxNoteLen bytes) with ErrInvalidInput, recording nothing; a dismissal
// needs a reason.
func TestPersonsTextIsChecked(t *testing.T) {
	o, _ := desk(t)
	ctx := context.Background()
	id := file(t, o, bruteforce("alice"))
	bad := "a reason\x00with a NUL"
	long := strings.Repeat("x", breach.MaxNoteLen+1)
	tests := map[string]func(text string) error{
		"Dismiss":                func(s string) error { return o.Dismiss(ctx, id, "alice", s) },
		"Resolve":                func(s string) error { return o.Resolve(ctx, id, "alice", s) },
		"Close":                  func(s string) error { return o.Close(ctx, id, "alice", s) },
		"Reopen":                 func(s string) error { return o.Reopen(ctx, id, "alice", s) },
		"Retry":                  func(s string) error { return o.Retry(ctx, id, "alice", s) },
		"Approve":                func(s string) error { return o.Approve(ctx, id, "revoke", "alice", s) },
		"Deny":                   func(s string) error { return o.Deny(ctx, id, "revoke", "alice", s) },
		"PauseClock":             func(s string) error { return o.PauseClock(ctx, id, breach.GDPR().Name, "alice", s) },
		"ResumeClock":            func(s string) error { return o.ResumeClock(ctx, id, breach.GDPR().Name, "alice", s) },
		"MarkClockNotApplicable": func(s string) error { return o.MarkClockNotApplicable(ctx, id, breach.GDPR().Name, "alice", s) },
		"RecordMilestone": func(s string) error {
			return o.RecordMilestone(ctx, id, incident.MilestoneAuthorityNotified, "alice", s)
		},
		"CompleteTask": func(s string) error { return o.CompleteTask(ctx, id, "scan", "alice", s) },
	}
	for name, act := range tests {
		t.Run(name, func(t *testing.T) {
			before := get(t, o, id)
			assert.ErrorIs(t, act(bad), breach.ErrInvalidInput)
			assert.ErrorIs(t, act(long), breach.ErrInvalidInput)
			assert.Equal(t, before.Version, get(t, o, id).Version, "nothing recorded")
		})
	}
	assert.ErrorIs(t, o.Dismiss(ctx, id, "alice", " "), breach.ErrInvalidInput, "a dismissal needs a reason")
}
