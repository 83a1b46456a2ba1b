package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestAgainstMemStore applies one random sequence of changes, valid and
// not, to the Store and to incident.MemStore (the reference the contract
// comes with), and checks that they answer alike: the same errors, the
// same Versions, the same records and pages.
func TestAgainstMemStore(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			model(t, seed, 400)
		})
	}
}

func model(t *testing.T, seed uint64, steps int) {
	ctx := t.Context()
	rnd := rand.New(rand.NewPCG(seed, seed))
	pg := newStore(t)
	mem := incident.NewMemStore()
	ids := []string{"a", "b", "c", "d", "e"}
	keys := []string{"k1", "k2", "k3"}
	states := []incident.State{incident.StateDetected, incident.StateNotifying, incident.StateClosed, incident.StateDismissed}
	statuses := []incident.DeliveryStatus{incident.DeliveryClaimed, incident.DeliverySent, incident.DeliveryFailed}
	pick := func(xs []string) string { return xs[rnd.IntN(len(xs))] }
	old := map[string]*incident.Incident{} // an earlier head of each incident, for stale writes

	parts := func(h *incident.Incident) ([]incident.Delivery, []incident.Customer) {
		var dels []incident.Delivery
		for range rnd.IntN(4) {
			dels = append(dels, incident.Delivery{Recipient: pick(ids), IdempotencyKey: fmt.Sprint("d", rnd.IntN(8)),
				Status: statuses[rnd.IntN(len(statuses))], Attempts: rnd.IntN(3)})
		}
		var custs []incident.Customer
		for range rnd.IntN(3) {
			c := incident.Customer{ID: fmt.Sprint("c", rnd.IntN(6)), Name: fmt.Sprint("n", rnd.IntN(100))}
			if rnd.IntN(3) == 0 {
				c = incident.Customer{Email: fmt.Sprint("e", rnd.IntN(3), "@example.com")}
			}
			custs = append(custs, c)
		}
		if len(custs) > 0 && h.Investigation == nil {
			h.Investigation = &incident.Investigation{Attempts: 1}
		}
		return dels, custs
	}

	for step := range steps {
		id := pick(ids)
		var ch incident.Change
		op := "apply"
		if rnd.IntN(4) == 0 {
			op = "create"
			inc := newIncident(id, pick(keys))
			inc.State = states[rnd.IntN(len(states))]
			inc.DetectedAt = t0.Add(time.Duration(rnd.IntN(3)) * time.Minute)
			for range rnd.IntN(3) {
				inc.Record(incident.Entry{At: t0, Type: incident.EntryNote, Detail: fmt.Sprint(step)})
			}
			inc.Deliveries, _ = parts(inc)
			ch = incident.Split(inc)
			_, ch.Customers = parts(ch.Head)
		} else {
			h, err := mem.Head(ctx, id)
			if err != nil {
				h = newIncident(id, pick(keys))
				h.Timeline = nil
			}
			switch r := rnd.IntN(10); {
			case r == 0 && old[id] != nil:
				h = old[id].Clone() // stale
			case r == 1:
				h.Version += int64(rnd.IntN(3)) // perhaps from the future
			}
			if rnd.IntN(3) == 0 {
				h.State = states[rnd.IntN(len(states))]
			}
			if rnd.IntN(6) == 0 {
				h.DedupKey = pick(keys)
			}
			for range rnd.IntN(4) {
				h.Record(incident.Entry{At: t0.Add(time.Duration(step) * time.Microsecond), Actor: "x", Type: incident.EntryNote, Detail: fmt.Sprint(step)})
			}
			switch rnd.IntN(12) {
			case 0:
				h.Chain.Len++ // entries that do not reach the chain
			case 1:
				h.Chain.Head[0] ^= 1
			}
			dels, custs := parts(h)
			if rnd.IntN(15) == 0 {
				dels = append(dels, incident.Delivery{}) // no key
			}
			ch = next(h, dels, custs)
		}
		cp := ch
		cp.Head = ch.Head.Clone()
		cp.Entries = slices.Clone(ch.Entries)
		var errMem, errPG error
		if op == "create" {
			errMem, errPG = mem.Create(ctx, ch), pg.Create(ctx, cp)
		} else {
			errMem, errPG = mem.Apply(ctx, ch), pg.Apply(ctx, cp)
		}
		where := fmt.Sprintf("step %d: %s %s", step, op, id)
		if !sameError(t, errMem, errPG, where) {
			continue
		}
		assert.Equal(t, ch.Head.Version, cp.Head.Version, where)
		if errMem == nil && rnd.IntN(3) == 0 {
			old[id] = ch.Head.Clone()
		}
		if step%20 == 19 || step == steps-1 {
			compare(t, mem, pg, ids, keys, where)
		}
	}
}

// sameError reports whether the two stores failed alike: both not at all,
// or with errors of the same kind and, for conflicts and duplicates, the
// same details.
func sameError(t *testing.T, mem, pg error, where string) bool {
	t.Helper()
	kind := func(err error) string {
		for _, k := range []error{incident.ErrConflict, incident.ErrNotFound, incident.ErrInvalidIncident, incident.ErrDuplicate} {
			if errors.Is(err, k) {
				return k.Error()
			}
		}
		if err != nil {
			return "other: " + err.Error()
		}
		return "nil"
	}
	if !assert.Equal(t, kind(mem), kind(pg), "%s: %v / %v", where, mem, pg) {
		return false
	}
	var cm, cp *incident.ConflictError
	if errors.As(mem, &cm) {
		require.ErrorAs(t, pg, &cp, where)
		assert.Equal(t, *cm, *cp, where)
	}
	var dm, dp *incident.DuplicateError
	if errors.As(mem, &dm) {
		require.ErrorAs(t, pg, &dp, where)
		assert.Equal(t, *dm, *dp, where)
	}
	return true
}

// compare reads everything both stores hold, and pages of it.
func compare(t *testing.T, mem, pg incident.Store, ids, keys []string, where string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		wm, errM := incident.Load(ctx, mem, id)
		wp, errP := incident.Load(ctx, pg, id)
		if !sameError(t, errM, errP, where+": load "+id) || errM != nil {
			continue
		}
		assertSame(t, wm, wp, "%s: load %s", where, id)
		for _, q := range []incident.DeliveryQuery{
			{Limit: 2}, {Limit: 2, After: "d3"}, {Status: incident.DeliverySent, Limit: 1}, {Status: incident.DeliveryFailed, After: "d1"},
			{Keys: []string{"d5", "d0", "dx", "d5"}}, {Keys: []string{"d1", "d2"}, Status: incident.DeliveryClaimed},
		} {
			pm, err := mem.Deliveries(ctx, id, q)
			require.NoError(t, err)
			pp, err := pg.Deliveries(ctx, id, q)
			require.NoError(t, err)
			assert.Equal(t, pm, pp, "%s: deliveries of %s, %+v", where, id, q)
		}
		for _, after := range []string{"", "c2", "e1@example.com", "cx"} {
			pm, err := mem.Customers(ctx, id, after, 2)
			require.NoError(t, err)
			pp, err := pg.Customers(ctx, id, after, 2)
			require.NoError(t, err)
			assert.Equal(t, pm, pp, "%s: customers of %s after %q", where, id, after)
		}
		for _, from := range []int{0, 1, 3, 100} {
			pm, err := mem.Entries(ctx, id, from, 2)
			require.NoError(t, err)
			pp, err := pg.Entries(ctx, id, from, 2)
			require.NoError(t, err)
			assert.Equal(t, len(pm), len(pp), "%s: entries of %s from %d", where, id, from)
		}
	}
	for _, key := range keys {
		hm, errM := mem.FindOpen(ctx, key)
		hp, errP := pg.FindOpen(ctx, key)
		if sameError(t, errM, errP, where+": find open "+key) && errM == nil {
			assertSame(t, hm, hp, "%s: find open %s", where, key)
		}
	}
	lm, err := mem.ListOpen(ctx)
	require.NoError(t, err)
	lp, err := pg.ListOpen(ctx)
	require.NoError(t, err)
	require.Len(t, lp, len(lm), where)
	for i := range lm {
		assertSame(t, lm[i], lp[i], "%s: list open %d", where, i)
	}
	om, err := mem.(incident.Leaser).Orphans(ctx, 0)
	require.NoError(t, err)
	op, err := pg.(incident.Leaser).Orphans(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, om, op, where)
}
