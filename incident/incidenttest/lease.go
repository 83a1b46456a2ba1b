package incidenttest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// The Lease group: stores that implement incident.Leaser.

var leaseChecks = []check{
	{"TakeAndRenew", leaseTakeAndRenew},
	{"Unlease", leaseUnlease},
	{"PerIncident", leasePerIncident},
	{"MissingIncident", leaseMissingIncident},
	{"Expiry", leaseExpiry},
	{"RenewalExtends", leaseRenewalExtends},
	{"Concurrent", leaseConcurrent},
	{"Renew", leaseRenew},
	{"RenewSkipsExpired", leaseRenewSkipsExpired},
	{"Orphans", leaseOrphans},
	{"OrphansAfterExpiry", leaseOrphansAfterExpiry},
	{"EndingGivesUp", leaseEndingGivesUp},
	{"Context", leaseContext},
}

const (
	// shortTTL is the TTL of the leases the checks wait to run out.
	shortTTL = 50 * time.Millisecond
	// waitFor bounds the wait for a short lease to run out by the
	// store's clock; tick is how often the store is asked meanwhile.
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// leaser returns s as an incident.Leaser, or skips the check.
func leaser(t *testing.T, s incident.Store) incident.Leaser {
	t.Helper()
	l, ok := s.(incident.Leaser)
	if !ok {
		t.Skipf("%T does not implement incident.Leaser", s)
	}
	return l
}

func mustLease(t *testing.T, l incident.Leaser, id, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := l.Lease(t.Context(), id, owner, ttl)
	require.NoError(t, err, "Lease %s for %s", id, owner)
	return ok
}

// mustRenew renews owner's leases and returns the IDs renewed.
func mustRenew(t *testing.T, l incident.Leaser, owner string, ttl time.Duration) []string {
	t.Helper()
	got, err := l.Renew(t.Context(), owner, ttl)
	require.NoError(t, err, "Renew for %s", owner)
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	return ids
}

func mustOrphans(t *testing.T, l incident.Leaser, limit int) []string {
	t.Helper()
	got, err := l.Orphans(t.Context(), limit)
	require.NoError(t, err, "Orphans %d", limit)
	return got
}

// eventuallyLeases waits until owner takes the lease on id (for a
// minute), polling the store.
func eventuallyLeases(t *testing.T, l incident.Leaser, id, owner string, msgAndArgs ...any) {
	t.Helper()
	ctx := t.Context()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ok, err := l.Lease(ctx, id, owner, time.Minute)
		require.NoError(c, err, "Lease %s for %s", id, owner)
		assert.True(c, ok, "Lease %s for %s", id, owner)
	}, waitFor, tick, msgAndArgs...)
}

var probes atomic.Int64

// waitRunOut returns once every lease taken before it was called with a
// TTL of ttl or less has run out by the store's clock: it takes a lease
// of its own with ttl and waits until another owner can take that one.
func waitRunOut(t *testing.T, l incident.Leaser, ttl time.Duration) {
	t.Helper()
	id := fmt.Sprintf("clock-probe-%d", probes.Add(1))
	require.True(t, mustLease(t, l, id, "clock", ttl), "Lease %s, which no one else holds", id)
	eventuallyLeases(t, l, id, "clock-watcher", "a lease of %s must run out within %s", ttl, waitFor)
}

func leaseTakeAndRenew(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "a free lease must be granted")
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "the owner must be able to renew its lease")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "a lease held by another owner must be refused")
	assert.True(t, mustLease(t, l, "inc-1", "alice", time.Minute), "a refused taker must not disturb the owner's lease")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "the lease must still be the owner's")
}

func leaseUnlease(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	require.NoError(t, l.Unlease(t.Context(), "inc-1", "bob"), "Unlease by a non-owner")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "Unlease by a non-owner must do nothing")
	require.NoError(t, l.Unlease(t.Context(), "inc-1", "alice"), "Unlease by the owner")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "after the owner's Unlease another owner must get the lease")
	require.NoError(t, l.Unlease(t.Context(), "inc-never-leased", "alice"), "Unlease of a lease nobody holds")
	assertStored(t, s, r, "leases must leave the incident alone")
}

func leasePerIncident(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	mustCreate(t, s, NewIncident("inc-2", "key-2"))
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	assert.True(t, mustLease(t, l, "inc-2", "bob", time.Minute), "a lease on one incident must not hold another")
	assert.False(t, mustLease(t, l, "inc-2", "alice", time.Minute))
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute))
}

func leaseMissingIncident(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	assert.True(t, mustLease(t, l, "inc-missing", "alice", time.Minute), "a lease may be taken on an incident that does not exist")
	assert.False(t, mustLease(t, l, "inc-missing", "bob", time.Minute), "and it holds like any other")
	got, err := s.Head(t.Context(), "inc-missing")
	assertNotFound(t, got, err, "Head after leasing an incident that does not exist")
	mustCreate(t, s, NewIncident("inc-missing", "key-1"))
	assert.False(t, mustLease(t, l, "inc-missing", "bob", time.Minute), "creating the incident must not drop its lease")
}

func leaseExpiry(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", shortTTL))
	took := mustLease(t, l, "inc-1", "bob", time.Minute)
	if time.Since(start) < shortTTL {
		assert.False(t, took, "a lease must hold until its TTL runs out")
	}
	if !took {
		eventuallyLeases(t, l, "inc-1", "bob", "a lease of %s must run out: another owner could not take it within %s", shortTTL, waitFor)
	}
	assert.False(t, mustLease(t, l, "inc-1", "alice", time.Minute), "the old owner must not take a lease back from the new one")
}

func leaseRenewalExtends(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", shortTTL))
	past := 0 // refusals seen after the first TTL had run out
	for time.Since(start) < 4*shortTTL {
		renewed := time.Now()
		require.True(t, mustLease(t, l, "inc-1", "alice", shortTTL), "the owner renews its lease")
		took := mustLease(t, l, "inc-1", "bob", time.Minute)
		switch {
		case time.Since(renewed) < shortTTL:
			require.False(t, took, "renewing must extend the lease to TTL from the renewal: another owner took it %s after it was first taken",
				time.Since(start))
			if time.Since(start) > shortTTL {
				past++
			}
		case took:
			t.Skipf("a renewal and a refusal took %s, more than the TTL of %s", time.Since(renewed), shortTTL)
		}
		time.Sleep(shortTTL / 5)
	}
	if past == 0 {
		t.Skipf("no refusal could be timed after the first TTL of %s", shortTTL)
	}
	eventuallyLeases(t, l, "inc-1", "bob", "the renewed lease must run out in turn")
}

func leaseConcurrent(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	const n = 20
	ctx := t.Context()
	start := make(chan struct{})
	got := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = l.Lease(ctx, "inc-contended", fmt.Sprintf("owner-%02d", i), time.Minute)
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i := range n {
		if assert.NoError(t, errs[i], "concurrent Lease %d", i) && got[i] {
			winners = append(winners, i)
		}
	}
	require.Len(t, winners, 1, "%d owners leasing one incident at once: exactly one must get it", n)
	w := fmt.Sprintf("owner-%02d", winners[0])
	assert.True(t, mustLease(t, l, "inc-contended", w, time.Minute), "the winner holds the lease")
	assert.False(t, mustLease(t, l, "inc-contended", "owner-late", time.Minute))
}

func leaseRenew(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	for _, id := range []string{"inc-1", "inc-2", "inc-3", "inc-4"} {
		mustCreate(t, s, NewIncident(id, "key-"+id))
	}
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	require.True(t, mustLease(t, l, "inc-2", "alice", time.Minute))
	require.True(t, mustLease(t, l, "inc-unstored", "alice", time.Minute))
	require.True(t, mustLease(t, l, "inc-3", "bob", time.Minute))

	assert.ElementsMatch(t, []string{"inc-1", "inc-2", "inc-unstored"}, mustRenew(t, l, "alice", time.Minute),
		"Renew must extend every live lease the owner holds and return their IDs")
	// Renew tells the owner each incident's Version, so that it sees
	// writes another replica made.
	r2 := mustCreate(t, s, NewIncident("inc-5", "key-inc-5"))
	require.True(t, mustLease(t, l, "inc-5", "alice", time.Minute))
	mustApply(t, s, r2, r2.next())
	got, err := l.Renew(t.Context(), "alice", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"inc-1": 1, "inc-2": 1, "inc-5": 2, "inc-unstored": 0}, got,
		"Renew must return each incident's head Version, 0 for one not stored")
	require.NoError(t, l.Unlease(t.Context(), "inc-5", "alice"))
	assert.ElementsMatch(t, []string{"inc-3"}, mustRenew(t, l, "bob", time.Minute), "Renew for another owner")
	assert.Empty(t, mustRenew(t, l, "carol", time.Minute), "Renew for an owner without leases")
	assert.False(t, mustLease(t, l, "inc-3", "alice", time.Minute), "Renew must leave other owners' leases theirs")
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "the renewed lease is still the owner's")

	require.NoError(t, l.Unlease(t.Context(), "inc-2", "alice"))
	assert.ElementsMatch(t, []string{"inc-1", "inc-unstored"}, mustRenew(t, l, "alice", time.Minute),
		"Renew must leave out a lease given up")
	assert.True(t, mustLease(t, l, "inc-2", "carol", time.Minute), "Renew must not take a lease given up back")

	// A short lease renewed for a minute holds past its first TTL.
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-4", "alice", shortTTL))
	renewed := mustRenew(t, l, "alice", time.Minute)
	if time.Since(start) >= shortTTL {
		t.Skipf("a Lease and a Renew took %s, more than the TTL of %s", time.Since(start), shortTTL)
	}
	assert.ElementsMatch(t, []string{"inc-1", "inc-4", "inc-unstored"}, renewed, "Renew of a lease that has not run out")
	for time.Since(start) < 3*shortTTL {
		require.False(t, mustLease(t, l, "inc-4", "bob", time.Minute),
			"Renew must extend the lease to ttl from now: another owner took it %s after a TTL of %s renewed for a minute",
			time.Since(start), shortTTL)
		time.Sleep(shortTTL / 5)
	}
}

func leaseRenewSkipsExpired(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	mustCreate(t, s, NewIncident("inc-2", "key-2"))
	require.True(t, mustLease(t, l, "inc-1", "alice", shortTTL))
	require.True(t, mustLease(t, l, "inc-2", "alice", time.Minute))
	waitRunOut(t, l, shortTTL)

	assert.Equal(t, []string{"inc-2"}, mustRenew(t, l, "alice", time.Minute),
		"a lease that ran out must not be renewed, even if no other owner took it")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "a lease that ran out must stay free after Renew")
	assert.Equal(t, []string{"inc-2"}, mustRenew(t, l, "alice", time.Minute), "the lease another owner took is not the old owner's")
}

func leaseOrphans(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	assert.Empty(t, mustOrphans(t, l, 0), "an empty store has no orphans")
	records := map[string]*record{}
	for _, x := range []struct {
		id      string
		minutes int
		state   incident.State
	}{
		{"inc-c", 2, incident.StateDetected},
		{"inc-a", 0, incident.StateContaining},
		{"inc-closed", -60, incident.StateClosed},
		{"inc-b", 1, incident.StateEscalated},
		{"inc-dismissed", -120, incident.StateDismissed},
		{"inc-d", 3, incident.StateResolved},
		{"inc-e", 4, incident.StateNotifying},
	} {
		inc := registerIncident(x.id, x.minutes)
		inc.State = x.state
		records[x.id] = mustCreate(t, s, inc)
	}
	require.True(t, mustLease(t, l, "inc-d", "alice", time.Minute))
	require.True(t, mustLease(t, l, "inc-dismissed", "alice", time.Minute))
	require.True(t, mustLease(t, l, "inc-unstored", "alice", time.Minute))

	assert.Equal(t, []string{"inc-a", "inc-b", "inc-c", "inc-e"}, mustOrphans(t, l, 0),
		"Orphans must return every open incident no live lease covers, oldest DetectedAt first, and no ended one")
	assert.Equal(t, []string{"inc-a", "inc-b"}, mustOrphans(t, l, 2), "Orphans must return at most limit incidents, the oldest")
	assert.Equal(t, []string{"inc-a", "inc-b", "inc-c", "inc-e"}, mustOrphans(t, l, 10), "a limit above the number of orphans")

	require.True(t, mustLease(t, l, "inc-a", "bob", time.Minute))
	assert.Equal(t, []string{"inc-b", "inc-c", "inc-e"}, mustOrphans(t, l, 0), "a leased incident is no orphan")
	require.NoError(t, l.Unlease(t.Context(), "inc-d", "alice"))
	assert.Equal(t, []string{"inc-b", "inc-c", "inc-d", "inc-e"}, mustOrphans(t, l, 0), "an incident whose lease was given up is an orphan")
	setState(t, s, records["inc-c"], incident.StateClosed)
	assert.Equal(t, []string{"inc-b", "inc-d", "inc-e"}, mustOrphans(t, l, 0), "an incident that ended is no orphan")
	setState(t, s, records["inc-closed"], incident.StateInvestigating)
	assert.Equal(t, []string{"inc-closed", "inc-b", "inc-d", "inc-e"}, mustOrphans(t, l, 0), "a reopened incident without a lease is an orphan")
}

// leaseEndingGivesUp: the Apply that ends an incident gives up every lease
// on it; one that leaves it open keeps them.
func leaseEndingGivesUp(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	r := mustCreate(t, s, NewIncident("inc-1", "key-1"))
	require.True(t, mustLease(t, l, "inc-1", "alice", time.Minute))
	setState(t, s, r, incident.StateInvestigating)
	assert.False(t, mustLease(t, l, "inc-1", "bob", time.Minute), "an Apply that leaves the incident open keeps its lease")
	setState(t, s, r, incident.StateClosed)
	assert.NotContains(t, mustRenew(t, l, "alice", time.Minute), "inc-1", "the Apply that ended the incident must give up its lease")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "nobody holds the lease of an ended incident")
}

func leaseOrphansAfterExpiry(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	start := time.Now()
	require.True(t, mustLease(t, l, "inc-1", "alice", shortTTL))
	orphans := mustOrphans(t, l, 0)
	if time.Since(start) < shortTTL {
		assert.NotContains(t, orphans, "inc-1", "an incident under a live lease is no orphan")
	}
	ctx := t.Context()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := l.Orphans(ctx, 0)
		require.NoError(c, err)
		assert.Equal(c, []string{"inc-1"}, got)
	}, waitFor, tick, "an incident whose lease of %s ran out must be an orphan again", shortTTL)
}

func leaseContext(t *testing.T, s incident.Store) {
	l := leaser(t, s)
	mustCreate(t, s, NewIncident("inc-1", "key-1"))
	ok, err := l.Lease(cancelled(t), "inc-1", "alice", time.Minute)
	assert.ErrorIs(t, err, context.Canceled, "Lease with a cancelled context must return its error")
	assert.False(t, ok, "Lease with a cancelled context reported the lease taken")
	assert.True(t, mustLease(t, l, "inc-1", "bob", time.Minute), "Lease with a cancelled context must not take the lease")
	err = l.Unlease(cancelled(t), "inc-1", "bob")
	assert.ErrorIs(t, err, context.Canceled, "Unlease with a cancelled context must return its error")
	assert.False(t, mustLease(t, l, "inc-1", "alice", time.Minute), "Unlease with a cancelled context must not give the lease up")
	_, err = l.Renew(cancelled(t), "bob", time.Minute)
	assert.ErrorIs(t, err, context.Canceled, "Renew with a cancelled context must return its error")
	_, err = l.Orphans(cancelled(t), 0)
	assert.ErrorIs(t, err, context.Canceled, "Orphans with a cancelled context must return its error")
}
