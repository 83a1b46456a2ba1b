package containmenttest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/containment/containmenttest"
	"github.com/breachkit/breach/incident"
)

func req(key string, attempt int) containment.Request {
	return containment.Request{Action: "revoke", IdempotencyKey: key, Attempt: attempt, IncidentID: "inc-1", Subject: "key_123"}
}

// run applies one action with c under policy p, as the orchestrator does.
func run(ctx context.Context, c containment.Container, p incident.Policy) containment.Result {
	actions := []containment.Action{{Name: "revoke", Container: c, Policy: p}}
	return containment.Runner{}.Apply(ctx, actions, containment.Request{IncidentID: "inc-1", Subject: "key_123"}, nil)[0]
}

func attempts(reqs []containment.Request) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, r.Attempt)
	}
	return out
}

func TestRecorderRecords(t *testing.T) {
	var r containmenttest.Recorder // the zero value is ready
	ctx := t.Context()
	a1, b1, a2 := req("key-a", 1), req("key-b", 1), req("key-a", 2)
	a1.Attributes = map[string]string{"region": "eu"}
	require.NoError(t, r.Contain(ctx, a1))
	require.NoError(t, r.Contain(ctx, b1))
	require.NoError(t, r.Contain(ctx, a2))
	require.NoError(t, r.Release(ctx, a1))

	assert.Equal(t, []containmenttest.Call{
		{Method: containmenttest.MethodContain, Request: a1, Seq: 1},
		{Method: containmenttest.MethodContain, Request: b1, Seq: 1},
		{Method: containmenttest.MethodContain, Request: a2, Seq: 2},
		{Method: containmenttest.MethodRelease, Request: a1, Seq: 1},
	}, r.Calls())
	assert.Equal(t, []containment.Request{a1, b1, a2}, r.Contained())
	assert.Equal(t, []containment.Request{a1}, r.Released())
	assert.Empty(t, r.Requests(containmenttest.MethodVerify))
	assert.Equal(t, 3, r.Count("key-a"), "Count counts every method")
	assert.Equal(t, 1, r.Count("key-b"))
	assert.Zero(t, r.Count("key-c"))
	assert.Equal(t, []string{"key-a", "key-b"}, r.Keys())
}

func TestRecorderCopies(t *testing.T) {
	var r containmenttest.Recorder
	q := req("key-a", 1)
	q.Attributes = map[string]string{"region": "eu"}
	require.NoError(t, r.Contain(t.Context(), q))
	q.Attributes["region"] = "changed by the caller"
	r.Calls()[0].Request.Attributes["region"] = "changed by a reader"
	r.Contained()[0].Attributes["region"] = "changed by a reader"
	assert.Equal(t, "eu", r.Calls()[0].Request.Attributes["region"])
}

func TestRecorderErrHook(t *testing.T) {
	type ctxKey struct{}
	boom := errors.New("boom")
	var seen []containmenttest.Call
	r := &containmenttest.Recorder{Err: func(ctx context.Context, c containmenttest.Call) error {
		assert.Equal(t, "v", ctx.Value(ctxKey{}), "Err gets the call's context")
		seen = append(seen, c)
		if c.Method == containmenttest.MethodRelease {
			return boom
		}
		return nil
	}}
	ctx := context.WithValue(t.Context(), ctxKey{}, "v")
	assert.NoError(t, r.Contain(ctx, req("k", 1)))
	assert.ErrorIs(t, r.Release(ctx, req("k", 1)), boom)
	assert.Equal(t, r.Calls(), seen, "Err sees each call as recorded")
	assert.Len(t, r.Released(), 1, "a failed call is recorded")
}

func TestRecorderConcurrent(t *testing.T) {
	const keys, perKey = 10, 20
	var r containmenttest.Recorder
	var wg sync.WaitGroup
	for k := range keys {
		for a := range perKey {
			wg.Go(func() {
				q := req(fmt.Sprintf("key-%d", k), a+1)
				q.Attributes = map[string]string{"n": "1"}
				assert.NoError(t, r.Contain(t.Context(), q))
				_ = r.Calls() // reading while others record
			})
		}
	}
	wg.Wait()
	assert.Len(t, r.Calls(), keys*perKey)
	assert.Len(t, r.Keys(), keys)
	seqs := make(map[string][]bool)
	for _, c := range r.Calls() {
		k := c.Request.IdempotencyKey
		if seqs[k] == nil {
			seqs[k] = make([]bool, perKey+1)
		}
		require.True(t, c.Seq >= 1 && c.Seq <= perKey, "Seq %d", c.Seq)
		assert.False(t, seqs[k][c.Seq], "Seq %d of %s twice", c.Seq, k)
		seqs[k][c.Seq] = true
	}
	for k := range keys {
		assert.Equal(t, perKey, r.Count(fmt.Sprintf("key-%d", k)))
	}
}

func TestWaitCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r containmenttest.Recorder
		done := make(chan error)
		go func() { done <- r.WaitCalls(t.Context(), 2) }()
		require.NoError(t, r.Contain(t.Context(), req("k", 1)))
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("WaitCalls returned after 1 of 2 calls")
		default:
		}
		require.NoError(t, r.Release(t.Context(), req("k", 1)))
		assert.NoError(t, <-done)
		assert.NoError(t, r.WaitCalls(t.Context(), 1), "already there")

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, r.WaitCalls(ctx, 3), context.DeadlineExceeded)
	})
}

func TestFailN(t *testing.T) {
	boom := errors.New("boom")
	r := containmenttest.FailN(2, boom)
	ctx := t.Context()
	assert.ErrorIs(t, r.Contain(ctx, req("a", 1)), boom)
	assert.ErrorIs(t, r.Contain(ctx, req("b", 1)), boom, "each key counts on its own")
	assert.ErrorIs(t, r.Contain(ctx, req("a", 2)), boom)
	assert.NoError(t, r.Contain(ctx, req("a", 3)))
	assert.NoError(t, r.Contain(ctx, req("a", 4)))
	assert.ErrorIs(t, r.Contain(ctx, req("b", 2)), boom)
	assert.NoError(t, r.Contain(ctx, req("b", 3)))
	assert.ErrorIs(t, r.Release(ctx, req("a", 1)), boom, "each method counts on its own")
	assert.False(t, incident.IsPermanent(r.Contain(ctx, req("c", 1))))
	assert.Len(t, r.Calls(), 9, "failed calls are recorded")

	assert.ErrorIs(t, containmenttest.FailN(1, nil).Contain(ctx, req("a", 1)), containmenttest.ErrInjected)
	assert.NoError(t, containmenttest.FailN(0, boom).Contain(ctx, req("a", 1)))
	assert.NoError(t, containmenttest.FailN(-1, boom).Contain(ctx, req("a", 1)))
}

func TestFailNWithRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := containmenttest.FailN(2, nil)
		res := run(t.Context(), r, incident.Policy{Attempts: 5, Backoff: time.Second})
		assert.NoError(t, res.Err)
		assert.Equal(t, 3, res.Attempts)
		assert.Equal(t, []int{1, 2, 3}, attempts(r.Contained()))
		assert.Equal(t, []string{res.IdempotencyKey}, r.Keys())
		assert.Equal(t, 3, r.Count(res.IdempotencyKey))
	})
}

func TestFailAlways(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		r := containmenttest.FailAlways(boom)
		res := run(t.Context(), r, incident.Policy{Attempts: 4, Backoff: time.Second})
		assert.ErrorIs(t, res.Err, boom)
		assert.False(t, incident.IsPermanent(res.Err))
		assert.Equal(t, 4, res.Attempts, "retried until the policy is spent")
		assert.Equal(t, []int{1, 2, 3, 4}, attempts(r.Contained()))
		assert.ErrorIs(t, r.Release(t.Context(), req("k", 1)), boom)
		assert.ErrorIs(t, containmenttest.FailAlways(nil).Contain(t.Context(), req("k", 1)), containmenttest.ErrInjected)
	})
}

func TestFailPermanent(t *testing.T) {
	boom := errors.New("key does not exist")
	r := containmenttest.FailPermanent(boom)
	err := r.Contain(t.Context(), req("k", 1))
	assert.ErrorIs(t, err, boom)
	assert.True(t, incident.IsPermanent(err))

	res := run(t.Context(), r, incident.Policy{Attempts: 5})
	assert.ErrorIs(t, res.Err, boom)
	assert.Equal(t, 1, res.Attempts, "a permanent error is not retried")
	assert.Len(t, r.Contained(), 2)

	err = containmenttest.FailPermanent(nil).Contain(t.Context(), req("k", 1))
	assert.ErrorIs(t, err, containmenttest.ErrInjected)
	assert.True(t, incident.IsPermanent(err))
}

func TestHangUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := containmenttest.Hang()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Contain(ctx, req("k", 1)) }()
		require.NoError(t, r.WaitCalls(t.Context(), 1), "the hanging call is recorded while it runs")
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Hang returned %v before its context ended", err)
		default:
		}
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
}

// A Runner gives up on a hanging attempt at its timeout, and the hanging
// goroutine ends with it: synctest.Test fails if any goroutine is left.
func TestHangTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := containmenttest.Hang()
		start := time.Now()
		res := run(t.Context(), r, incident.Policy{Attempts: 2, Timeout: 10 * time.Second, Backoff: time.Second})
		assert.ErrorIs(t, res.Err, incident.ErrTimeout)
		var te *incident.TimeoutError
		require.ErrorAs(t, res.Err, &te)
		assert.Equal(t, 10*time.Second, te.After)
		assert.Equal(t, 2, res.Attempts)
		assert.Equal(t, []int{1, 2}, attempts(r.Contained()))
		elapsed := time.Since(start)
		assert.True(t, elapsed >= 20*time.Second && elapsed < 22*time.Second, "two timeouts and a backoff, took %s", elapsed)
	})
}

func TestPanic(t *testing.T) {
	r := containmenttest.Panic("container exploded")
	assert.PanicsWithValue(t, "container exploded", func() { _ = r.Contain(t.Context(), req("k", 1)) })
	assert.Len(t, r.Calls(), 1, "recorded before it panics")

	synctest.Test(t, func(t *testing.T) {
		res := run(t.Context(), r, incident.Policy{Attempts: 2, Backoff: time.Second})
		var pe *incident.PanicError
		require.ErrorAs(t, res.Err, &pe, "a Runner recovers the panic")
		assert.Equal(t, "container exploded", pe.Value)
		assert.Equal(t, 2, res.Attempts)
	})
	assert.Len(t, r.Calls(), 3)

	boom := errors.New("boom")
	p := containmenttest.Panic(boom)
	res := run(t.Context(), p, incident.Policy{Attempts: 1})
	assert.ErrorIs(t, res.Err, boom, "a panic with an error is seen through")
}

func TestFlaky(t *testing.T) {
	outcomes := func(r *containmenttest.Recorder, n int) []bool {
		out := make([]bool, n)
		for i := range out {
			out[i] = r.Contain(t.Context(), req(fmt.Sprint(i), 1)) != nil
		}
		return out
	}
	const n = 1000
	a := outcomes(containmenttest.Flaky(0.3, 42, nil), n)
	assert.Equal(t, a, outcomes(containmenttest.Flaky(0.3, 42, nil), n), "the same seed gives the same outcomes")
	assert.NotEqual(t, a, outcomes(containmenttest.Flaky(0.3, 43, nil), n), "another seed gives others")
	failed := 0
	for _, f := range a {
		if f {
			failed++
		}
	}
	assert.InDelta(t, 0.3*n, failed, 0.1*n, "about p of the calls fail")

	assert.NotContains(t, outcomes(containmenttest.Flaky(0, 1, nil), 100), true, "p=0 never fails")
	assert.NotContains(t, outcomes(containmenttest.Flaky(1, 1, nil), 100), false, "p=1 always fails")

	boom := errors.New("boom")
	r := containmenttest.Flaky(1, 1, boom)
	assert.ErrorIs(t, r.Contain(t.Context(), req("k", 1)), boom)
	assert.ErrorIs(t, containmenttest.Flaky(1, 1, nil).Contain(t.Context(), req("k", 1)), containmenttest.ErrInjected)
}

func TestFlakyConcurrent(t *testing.T) {
	const n = 200
	seq := containmenttest.Flaky(0.5, 7, nil)
	want := 0
	for i := range n {
		if seq.Contain(t.Context(), req(fmt.Sprint(i), 1)) != nil {
			want++
		}
	}
	r := containmenttest.Flaky(0.5, 7, nil)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if r.Contain(t.Context(), req(fmt.Sprint(i), 1)) != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, want, failed, "concurrent calls draw the same sequence of outcomes")
	assert.Len(t, r.Calls(), n)
}

func TestVerifying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Contain fails once; so does Verify, which counts on its own.
		v := containmenttest.Verifying(containmenttest.FailN(1, nil))
		res := run(t.Context(), v, incident.Policy{Attempts: 5, Backoff: time.Second})
		require.NoError(t, res.Err)
		assert.Equal(t, 3, res.Attempts)

		type step struct {
			Method  containmenttest.Method
			Attempt int
			Seq     int
		}
		var got []step
		for _, c := range v.Calls() {
			got = append(got, step{c.Method, c.Request.Attempt, c.Seq})
		}
		assert.Equal(t, []step{
			{containmenttest.MethodContain, 1, 1}, // fails
			{containmenttest.MethodContain, 2, 2}, // succeeds,
			{containmenttest.MethodVerify, 2, 1},  // but its verification fails
			{containmenttest.MethodContain, 3, 3},
			{containmenttest.MethodVerify, 3, 2},
		}, got)
		assert.Len(t, v.Requests(containmenttest.MethodVerify), 2)
	})
}

func TestVerifyingCustomErr(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stillValid := errors.New("the key still works")
		r := &containmenttest.Recorder{Err: func(_ context.Context, c containmenttest.Call) error {
			if c.Method == containmenttest.MethodVerify {
				return stillValid
			}
			return nil
		}}
		res := run(t.Context(), containmenttest.Verifying(r), incident.Policy{Attempts: 2, Backoff: time.Second})
		var ve *containment.VerifyError
		require.ErrorAs(t, res.Err, &ve)
		assert.ErrorIs(t, res.Err, stillValid)
		assert.Equal(t, 2, res.Attempts)
	})
}

// Runner.Release calls a Recorder, which is a Releaser, with the key of
// the Contain call.
func TestReleaseWithRunner(t *testing.T) {
	var r containmenttest.Recorder
	actions := []containment.Action{{Name: "revoke", Container: &r}}
	base := containment.Request{IncidentID: "inc-1"}
	applied := containment.Runner{}.Apply(t.Context(), actions, base, nil)
	released := containment.Runner{}.Release(t.Context(), actions, base, nil)
	require.NoError(t, applied.Err())
	require.NoError(t, released.Err())
	require.Len(t, r.Released(), 1)
	assert.Equal(t, r.Contained()[0].IdempotencyKey, r.Released()[0].IdempotencyKey)
	assert.Equal(t, 2, r.Count(applied[0].IdempotencyKey))
}
