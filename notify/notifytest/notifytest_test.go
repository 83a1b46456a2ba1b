package notifytest_test

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

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/notifytest"
)

func msg(key, recipient string, attempt int) notify.Message {
	return notify.Message{
		IdempotencyKey: key,
		Attempt:        attempt,
		Channel:        "email",
		Recipient:      incident.Customer{ID: recipient, Email: recipient + "@example.com"},
		Subject:        "Security notice",
		Text:           "Your API key was exposed.",
		IncidentID:     "inc-1",
		Impact: incident.Impact{
			Customers: []incident.Customer{{ID: recipient}},
			Data:      []incident.DataCategory{incident.DataAPIAccess},
		},
		Recommendations: []string{"Rotate your keys"},
	}
}

// deliver sends m through n under policy p, with the attempt number set,
// as the orchestrator does.
func deliver(ctx context.Context, n notify.Notifier, m notify.Message, p incident.Policy) retry.Outcome {
	return retry.Do(ctx, p, nil, func(ctx context.Context, attempt int) error {
		m := m
		m.Attempt = attempt
		return n.Notify(ctx, m)
	})
}

func TestRecorderRecords(t *testing.T) {
	var r notifytest.Recorder // the zero value is ready
	ctx := t.Context()
	a1, b1, a2, c1 := msg("key-a", "cust_1", 1), msg("key-b", "cust_2", 1), msg("key-a", "cust_1", 2), msg("key-c", "cust_1", 1)
	for _, m := range []notify.Message{a1, b1, a2, c1} {
		require.NoError(t, r.Notify(ctx, m))
	}
	assert.Equal(t, []notifytest.Call{
		{Message: a1, Seq: 1}, {Message: b1, Seq: 1}, {Message: a2, Seq: 2}, {Message: c1, Seq: 1},
	}, r.Calls())
	assert.Equal(t, []notify.Message{a1, b1, a2, c1}, r.Messages())
	assert.Equal(t, map[string][]notify.Message{
		"key-a": {a1, a2},
		"key-b": {b1},
		"key-c": {c1},
	}, r.ByKey())
	assert.Equal(t, 2, r.Count("key-a"))
	assert.Equal(t, 1, r.Count("key-b"))
	assert.Zero(t, r.Count("key-x"))
	assert.Equal(t, []string{"key-a", "key-b", "key-c"}, r.Keys())
	assert.Equal(t, []string{"cust_1", "cust_2"}, r.Recipients())
}

func TestRecorderEmpty(t *testing.T) {
	var r notifytest.Recorder
	assert.Empty(t, r.Calls())
	assert.Empty(t, r.Messages())
	assert.Empty(t, r.ByKey())
	assert.Empty(t, r.Keys())
	assert.Empty(t, r.Recipients())
}

func TestRecorderCopies(t *testing.T) {
	var r notifytest.Recorder
	m := msg("key-a", "cust_1", 1)
	want := msg("key-a", "cust_1", 1)
	require.NoError(t, r.Notify(t.Context(), m))
	m.Impact.Customers[0].ID = "changed by the caller"
	m.Impact.Data[0] = "changed by the caller"
	m.Recommendations[0] = "changed by the caller"
	got := r.Messages()[0]
	got.Impact.Customers[0].ID = "changed by a reader"
	got.Recommendations[0] = "changed by a reader"
	r.ByKey()["key-a"][0].Impact.Data[0] = "changed by a reader"
	assert.Equal(t, want, r.Messages()[0])
}

func TestRecorderErrHook(t *testing.T) {
	bounce := errors.New("mailbox full")
	var seen []notifytest.Call
	r := &notifytest.Recorder{Err: func(_ context.Context, c notifytest.Call) error {
		seen = append(seen, c)
		if c.Message.Recipient.ID == "cust_2" {
			return bounce
		}
		return nil
	}}
	assert.NoError(t, r.Notify(t.Context(), msg("k1", "cust_1", 1)))
	assert.ErrorIs(t, r.Notify(t.Context(), msg("k2", "cust_2", 1)), bounce)
	assert.Equal(t, r.Calls(), seen, "Err sees each call as recorded")
	assert.Len(t, r.Messages(), 2, "a failed call is recorded")
}

func TestRecorderConcurrent(t *testing.T) {
	const keys, perKey = 10, 20
	var r notifytest.Recorder
	var wg sync.WaitGroup
	for k := range keys {
		for a := range perKey {
			wg.Go(func() {
				assert.NoError(t, r.Notify(t.Context(), msg(fmt.Sprintf("key-%d", k), fmt.Sprintf("cust_%d", k), a+1)))
				_ = r.ByKey() // reading while others record
			})
		}
	}
	wg.Wait()
	assert.Len(t, r.Messages(), keys*perKey)
	assert.Len(t, r.Recipients(), keys)
	byKey := r.ByKey()
	require.Len(t, byKey, keys)
	for k, msgs := range byKey {
		assert.Len(t, msgs, perKey, k)
		assert.Equal(t, perKey, r.Count(k))
	}
	seqs := make(map[string]map[int]bool)
	for _, c := range r.Calls() {
		k := c.Message.IdempotencyKey
		if seqs[k] == nil {
			seqs[k] = make(map[int]bool)
		}
		assert.False(t, seqs[k][c.Seq], "Seq %d of %s twice", c.Seq, k)
		seqs[k][c.Seq] = true
	}
	for k, s := range seqs {
		for i := 1; i <= perKey; i++ {
			assert.True(t, s[i], "%s lacks Seq %d", k, i)
		}
	}
}

func TestWaitCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r notifytest.Recorder
		done := make(chan error)
		go func() { done <- r.WaitCalls(t.Context(), 2) }()
		require.NoError(t, r.Notify(t.Context(), msg("k", "c", 1)))
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("WaitCalls returned after 1 of 2 calls")
		default:
		}
		require.NoError(t, r.Notify(t.Context(), msg("k", "c", 2)))
		assert.NoError(t, <-done)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, r.WaitCalls(ctx, 3), context.DeadlineExceeded)
	})
}

func TestFailN(t *testing.T) {
	bounce := errors.New("421 try later")
	r := notifytest.FailN(2, bounce)
	ctx := t.Context()
	assert.ErrorIs(t, r.Notify(ctx, msg("a", "c1", 1)), bounce)
	assert.ErrorIs(t, r.Notify(ctx, msg("b", "c2", 1)), bounce, "each key counts on its own")
	assert.ErrorIs(t, r.Notify(ctx, msg("a", "c1", 2)), bounce)
	assert.NoError(t, r.Notify(ctx, msg("a", "c1", 3)))
	assert.NoError(t, r.Notify(ctx, msg("a", "c1", 4)))
	assert.False(t, incident.IsPermanent(r.Notify(ctx, msg("b", "c2", 2))))
	assert.Len(t, r.Messages(), 6, "failed calls are recorded")

	assert.ErrorIs(t, notifytest.FailN(1, nil).Notify(ctx, msg("a", "c", 1)), notifytest.ErrInjected)
	assert.NoError(t, notifytest.FailN(0, bounce).Notify(ctx, msg("a", "c", 1)))
}

func TestFailNWithPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := notifytest.FailN(2, nil)
		out := deliver(t.Context(), r, msg("key-a", "cust_1", 0), incident.Policy{Attempts: 5, Backoff: time.Second})
		assert.NoError(t, out.Err)
		assert.Equal(t, 3, out.Attempts)
		var attempts []int
		for _, m := range r.ByKey()["key-a"] {
			attempts = append(attempts, m.Attempt)
		}
		assert.Equal(t, []int{1, 2, 3}, attempts)
	})
}

func TestFailAlwaysInFanOut(t *testing.T) {
	down := errors.New("pager down")
	var email notifytest.Recorder
	pager := notifytest.FailAlways(down)
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: &email},
		notify.Route{Channel: "pager", Notifier: pager},
	)
	err := n.Notify(t.Context(), msg("k", "cust_1", 1))
	var re *notify.RouteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "pager", re.Channel)
	assert.ErrorIs(t, err, down)
	assert.False(t, incident.IsPermanent(err))
	require.Len(t, email.Messages(), 1)
	assert.Equal(t, "email", email.Messages()[0].Channel, "FanOut sets the route's channel")
	require.Len(t, pager.Messages(), 1, "a failing route is recorded too")
	assert.Equal(t, "pager", pager.Messages()[0].Channel)

	assert.ErrorIs(t, notifytest.FailAlways(nil).Notify(t.Context(), msg("k", "c", 1)), notifytest.ErrInjected)
}

func TestFailPermanent(t *testing.T) {
	gone := errors.New("550 no such mailbox")
	r := notifytest.FailPermanent(gone)
	err := r.Notify(t.Context(), msg("k", "c", 1))
	assert.ErrorIs(t, err, gone)
	assert.True(t, incident.IsPermanent(err))

	out := deliver(t.Context(), r, msg("k", "c", 0), incident.Policy{Attempts: 5})
	assert.ErrorIs(t, out.Err, gone)
	assert.Equal(t, 1, out.Attempts, "a permanent error is not retried")

	// Through FanOut, permanent only when every failed route is.
	both := notify.FanOut(
		notify.Route{Channel: "email", Notifier: notifytest.FailPermanent(gone)},
		notify.Route{Channel: "sms", Notifier: notifytest.FailPermanent(nil)},
	)
	err = both.Notify(t.Context(), msg("k", "c", 1))
	assert.True(t, incident.IsPermanent(err))
	assert.ErrorIs(t, err, notifytest.ErrInjected)
	mixed := notify.FanOut(
		notify.Route{Channel: "email", Notifier: notifytest.FailPermanent(gone)},
		notify.Route{Channel: "sms", Notifier: notifytest.FailAlways(nil)},
	)
	assert.False(t, incident.IsPermanent(mixed.Notify(t.Context(), msg("k", "c", 1))))
}

func TestHangUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := notifytest.Hang()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Notify(ctx, msg("k", "c", 1)) }()
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

// A hanging route holds FanOut until the caller's deadline, and a retry
// policy gives up on it at each attempt's timeout; synctest.Test fails if
// a goroutine is left behind.
func TestHangTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var email notifytest.Recorder
		n := notify.FanOut(
			notify.Route{Channel: "email", Notifier: &email},
			notify.Route{Channel: "webhook", Notifier: notifytest.Hang()},
		)
		start := time.Now()
		out := deliver(t.Context(), n, msg("k", "c", 0), incident.Policy{Attempts: 2, Timeout: 5 * time.Second, Backoff: time.Second})
		assert.ErrorIs(t, out.Err, incident.ErrTimeout)
		assert.Equal(t, 2, out.Attempts)
		assert.Len(t, email.Messages(), 2, "the healthy route is called on every attempt")
		elapsed := time.Since(start)
		assert.True(t, elapsed >= 10*time.Second && elapsed < 12*time.Second, "two timeouts and a backoff, took %s", elapsed)
	})
}

func TestPanic(t *testing.T) {
	r := notifytest.Panic("provider SDK bug")
	assert.PanicsWithValue(t, "provider SDK bug", func() { _ = r.Notify(t.Context(), msg("k", "c", 1)) })
	assert.Len(t, r.Messages(), 1, "recorded before it panics")

	var email notifytest.Recorder
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: &email},
		notify.Route{Channel: "sms", Notifier: r},
	)
	err := n.Notify(t.Context(), msg("k", "c", 1))
	var pe *incident.PanicError
	require.ErrorAs(t, err, &pe, "FanOut recovers the panic")
	assert.Equal(t, "provider SDK bug", pe.Value)
	var re *notify.RouteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "sms", re.Channel)
	assert.Len(t, email.Messages(), 1)
}

func TestFlaky(t *testing.T) {
	outcomes := func(r *notifytest.Recorder, n int) []bool {
		out := make([]bool, n)
		for i := range out {
			out[i] = r.Notify(t.Context(), msg(fmt.Sprint(i), "c", 1)) != nil
		}
		return out
	}
	const n = 1000
	a := outcomes(notifytest.Flaky(0.2, 42, nil), n)
	assert.Equal(t, a, outcomes(notifytest.Flaky(0.2, 42, nil), n), "the same seed gives the same outcomes")
	assert.NotEqual(t, a, outcomes(notifytest.Flaky(0.2, 43, nil), n), "another seed gives others")
	failed := 0
	for _, f := range a {
		if f {
			failed++
		}
	}
	assert.InDelta(t, 0.2*n, failed, 0.1*n, "about p of the calls fail")
	assert.NotContains(t, outcomes(notifytest.Flaky(-1, 1, nil), 100), true, "p<=0 never fails")
	assert.NotContains(t, outcomes(notifytest.Flaky(2, 1, nil), 100), false, "p>=1 always fails")

	boom := errors.New("boom")
	assert.ErrorIs(t, notifytest.Flaky(1, 1, boom).Notify(t.Context(), msg("k", "c", 1)), boom)
	assert.ErrorIs(t, notifytest.Flaky(1, 1, nil).Notify(t.Context(), msg("k", "c", 1)), notifytest.ErrInjected)
}

func TestFlakyConcurrent(t *testing.T) {
	const n = 200
	seq := notifytest.Flaky(0.5, 7, nil)
	want := 0
	for i := range n {
		if seq.Notify(t.Context(), msg(fmt.Sprint(i), "c", 1)) != nil {
			want++
		}
	}
	r := notifytest.Flaky(0.5, 7, nil)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if r.Notify(t.Context(), msg(fmt.Sprint(i), "c", 1)) != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, want, failed, "concurrent calls draw the same sequence of outcomes")
	assert.Len(t, r.Messages(), n)
}
