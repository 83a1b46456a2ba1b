package breach

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestRetiredEntryLosesNoAdd: adds race with the retirement of their entry.
// Each add either counts (and a flush then finds the count) or is refused
// (the caller takes the slow path); none is lost between the two.
func TestRetiredEntryLosesNoAdd(t *testing.T) {
	for range 50 {
		var h hotIndex
		inc := &incident.Incident{ID: "inc_1", Kind: "apikey.compromised", Subject: "key_42"}
		k := hotKey{kind: inc.Kind, subject: inc.Subject}
		e := h.put(k, inc)
		sig := &incident.Signal{Kind: inc.Kind, Subject: inc.Subject, Severity: incident.SeverityHigh}
		var counted atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 200 {
					if _, ok := e.add(sig, time.Now, false, nil); ok {
						counted.Add(1)
					}
				}
			})
		}
		wg.Go(func() { h.remove(inc.ID) })
		wg.Wait()
		_, ok := e.add(sig, time.Now, false, nil)
		assert.False(t, ok, "a dead entry takes no add")
		var taken int64
		for _, p := range h.pending() {
			d, _ := p.take()
			taken += d.count
		}
		assert.Equal(t, counted.Load(), taken, "every counted add is pending")
		assert.Empty(t, h.pending(), "flushed: the entry is dropped")
		assert.Empty(t, h.retiring)
	}
}

// TestReportsDuringDismissalAreCounted: signals acknowledged from memory
// while their incident is dismissed are all counted somewhere once
// flushed: on the dismissed incident, or on the one they opened after.
func TestReportsDuringDismissalAreCounted(t *testing.T) {
	store := incident.NewMemStore()
	o, err := New(store, WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)), WithUnsafeAcks())
	require.NoError(t, err)
	ctx := context.Background()
	sig := incident.Signal{Kind: "apikey.compromised", Subject: "key_42", Severity: incident.SeverityHigh}
	rc, err := o.Report(ctx, sig)
	require.NoError(t, err)
	var acked atomic.Int64
	acked.Add(1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				if _, err := o.Report(ctx, sig); err == nil {
					acked.Add(1)
				}
			}
		})
	}
	require.NoError(t, o.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
	wg.Wait()
	require.NoError(t, o.flush(ctx))
	var counted int64
	page, err := store.List(ctx, incident.ListFilter{Limit: incident.MaxListLimit})
	require.NoError(t, err)
	for _, inc := range page.Incidents {
		counted += inc.Signals.Count
	}
	assert.Equal(t, acked.Load(), counted, "every acknowledged signal is counted")
}

// TestPendingHoldsNoLookUp: the flush's look at every entry's count waits
// for an entry a reporter holds (here the test holds its lock, as a
// reporter preempted mid-count would), but a lookup that misses the index
// (a new incident's Report) does not wait for the flush. Before the fix,
// pending held the index's lock while it waited, and every miss with it.
func TestPendingHoldsNoLookUp(t *testing.T) {
	var h hotIndex
	held := h.put(hotKey{kind: "apikey.compromised", subject: "key_busy"}, &incident.Incident{ID: "inc_busy"})
	_, _ = held.add(&incident.Signal{Kind: "apikey.compromised", Subject: "key_busy"}, time.Now, false, nil)
	held.mu.Lock()
	flushed := make(chan []*hotEntry, 1)
	go func() { flushed <- h.pending() }()
	assertMissWaitsForNone(t, &h, "pendingCount", held)
	assert.Equal(t, []*hotEntry{held}, <-flushed, "the flush still finds the held entry's count")
}

// assertMissWaitsForNone waits until a goroutine is blocked on held's
// lock in a function named like fn, checks that a lookup missing the index
// meanwhile returns, and unlocks held.
func assertMissWaitsForNone(t *testing.T, h *hotIndex, fn string, held *hotEntry) {
	t.Helper()
	defer held.mu.Unlock()
	for !goroutineBlockedIn(fn) {
		runtime.Gosched()
	}
	missed := make(chan *hotEntry, 1)
	go func() { missed <- h.get(hotKey{kind: "apikey.compromised", subject: "key_new"}) }()
	select {
	case e := <-missed:
		assert.Nil(t, e, "a key the index does not hold")
	case <-time.After(10 * time.Second): // a failure's bound, not a synchronisation
		t.Errorf("a lookup that missed the index waited for %s", fn)
	}
}

// get looks k up as Orchestrator.count does: in the snapshot, then among
// the entries added since.
func (h *hotIndex) get(k hotKey) *hotEntry {
	if e := h.cached(k); e != nil {
		return e
	}
	return h.locked(k)
}

// goroutineBlockedIn reports whether a goroutine is blocked on a mutex in
// a function whose name contains fn.
func goroutineBlockedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[sync.Mutex.Lock") && strings.Contains(g, fn) {
			return true
		}
	}
	return false
}

// countedEntry puts an entry for a new incident id in h and counts one
// signal on it.
func countedEntry(t *testing.T, h *hotIndex, id string) (*incident.Incident, hotKey, *hotEntry) {
	t.Helper()
	inc := &incident.Incident{ID: id, Kind: "apikey.compromised", Subject: "key_" + id}
	k := hotKey{kind: inc.Kind, subject: inc.Subject}
	e := h.put(k, inc)
	_, ok := e.add(&incident.Signal{Kind: inc.Kind, Subject: inc.Subject}, time.Now, false, nil)
	require.True(t, ok)
	return inc, k, e
}

// TestRetireHoldsNoLookUp: an incident leaving the index (its entry is
// killed, which waits for a reporter holding the entry's lock, here the
// test) does not hold up a lookup that misses the index; an entry put
// for the same incident meanwhile is a live one, and the dead entry's
// count is still flushed.
func TestRetireHoldsNoLookUp(t *testing.T) {
	var h hotIndex
	inc, k, old := countedEntry(t, &h, "inc_busy")
	old.mu.Lock()
	removed := make(chan struct{})
	go func() { defer close(removed); h.remove(inc.ID) }()
	assertMissWaitsForNone(t, &h, "kill", old)
	<-removed

	// The incident was found open again (its ending write failed, say):
	// put gives a live entry, not the dead one.
	again := h.put(k, inc)
	require.NotSame(t, old, again)
	_, ok := again.add(&incident.Signal{Kind: inc.Kind, Subject: inc.Subject}, time.Now, false, nil)
	assert.True(t, ok, "the new entry counts")
	assert.ElementsMatch(t, []*hotEntry{old, again}, h.pending(), "the dead entry's count is flushed too")
}

// TestPutReplacesAKilledEntry: between a retire's kill and its move of the
// entry to the retiring ones, put for the same incident gives a new live
// entry, and the killed one's count is still flushed.
func TestPutReplacesAKilledEntry(t *testing.T) {
	var h hotIndex
	inc, k, old := countedEntry(t, &h, "inc_1")
	old.kill() // the first half of retire
	assert.Nil(t, h.get(k), "a lookup passes a killed entry over")
	e := h.put(k, inc)
	require.NotSame(t, old, e)
	assert.False(t, e.dead.Load())
	assert.Same(t, e, h.get(k))
	assert.Equal(t, []*hotEntry{old}, h.pending(), "the killed entry's count is flushed")
	h.retire(old) // the second half: e stays live
	assert.Same(t, e, h.get(k))
}

// TestHotKeyIsTheSignalsKey: a signal's hot key stands for its dedup key
// (incident.Signal.Key) and for no other.
func TestHotKeyIsTheSignalsKey(t *testing.T) {
	for _, sig := range []incident.Signal{
		{Kind: "apikey.compromised", Subject: "key_42"},
		{Kind: "apikey.compromised", Subject: "key_42", DedupKey: "custom/key"},
		{Kind: "a/b", Subject: "c"},
		{Kind: "a", Subject: "b/c"},
	} {
		k := hotKeyOf(&sig)
		assert.True(t, k.is(sig.Key()), "%+v", sig)
		for _, other := range []string{"", "apikey.compromised/key_4", "apikey.compromised/key_420", "apikey.compromisedXkey_42",
			"custom/keys", "a/b/d", "a/c"} {
			assert.False(t, k.is(other), "%+v is not %q", sig, other)
		}
	}
}
