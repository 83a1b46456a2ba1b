package notifytest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/notifytest"
)

func page(key, alert string, action notify.PageAction) notify.Page {
	return notify.Page{
		IdempotencyKey: key,
		AlertKey:       alert,
		Action:         action,
		IncidentID:     "inc-1",
		Severity:       incident.SeverityHigh,
		Reason:         "containment needs approval",
		Needed:         "approve or deny disable-key",
		Level:          1,
		Responder:      "secops-primary",
	}
}

func TestPageRecorderRecords(t *testing.T) {
	var r notifytest.PageRecorder // the zero value is ready
	ctx := t.Context()
	a1, b1, a1again, a2 := page("pg-a1", "alert-a", notify.PageTrigger), page("pg-b1", "alert-b", notify.PageTrigger),
		page("pg-a1", "alert-a", notify.PageTrigger), page("pg-a2", "alert-a", notify.PageResolve)
	a1again.Attempt = 2
	for _, p := range []notify.Page{a1, b1, a1again, a2} {
		require.NoError(t, r.Page(ctx, p))
	}
	assert.Equal(t, []notifytest.PageCall{
		{Page: a1, Seq: 1}, {Page: b1, Seq: 1}, {Page: a1again, Seq: 2}, {Page: a2, Seq: 1},
	}, r.Calls())
	assert.Equal(t, []notify.Page{a1, b1, a1again, a2}, r.Pages())
	assert.Equal(t, map[string][]notify.Page{"alert-a": {a1, a1again, a2}, "alert-b": {b1}}, r.ByAlert())
	assert.Equal(t, 2, r.Count("pg-a1"))
	assert.Equal(t, 0, r.Count("pg-none"))
	assert.Equal(t, []string{"pg-a1", "pg-b1", "pg-a2"}, r.Keys())
	assert.Equal(t, []string{"alert-a", "alert-b"}, r.AlertKeys())

	calls := r.Calls()
	calls[0].Page.Reason = "changed"
	assert.Equal(t, "containment needs approval", r.Calls()[0].Page.Reason, "Calls returns a copy")
}

func TestPageRecorderErr(t *testing.T) {
	slow := errors.New("429")
	for _, tc := range []struct {
		name     string
		err      func(ctx context.Context, c notifytest.PageCall) error
		attempts int  // the policy's calls
		ok       bool // the page went through
	}{
		{"succeeds", nil, 1, true},
		{"fails twice, then succeeds", func(_ context.Context, c notifytest.PageCall) error {
			if c.Seq <= 2 {
				return notifytest.ErrInjected
			}
			return nil
		}, 3, true},
		{"permanent stops the retries", func(context.Context, notifytest.PageCall) error {
			return incident.Permanent(notifytest.ErrInjected)
		}, 1, false},
		{"always fails", func(context.Context, notifytest.PageCall) error { return notifytest.ErrInjected }, 4, false},
		{"retry after", func(_ context.Context, c notifytest.PageCall) error {
			if c.Seq == 1 {
				return incident.RetryAfter(slow, time.Millisecond)
			}
			return nil
		}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &notifytest.PageRecorder{Err: tc.err}
			p := page("pg-1", "alert-1", notify.PageTrigger)
			out := retry.Do(t.Context(), incident.Policy{Attempts: 4, Backoff: time.Millisecond}, nil, func(ctx context.Context, attempt int) error {
				p := p
				p.Attempt = attempt
				return r.Page(ctx, p)
			})
			assert.Equal(t, tc.ok, out.Err == nil, "%v", out.Err)
			assert.Equal(t, tc.attempts, out.Attempts)
			assert.Equal(t, tc.attempts, r.Count("pg-1"), "every attempt is recorded, failed ones included")
			for i, c := range r.Calls() {
				assert.Equal(t, i+1, c.Page.Attempt)
				assert.Equal(t, i+1, c.Seq)
			}
		})
	}
}

func TestPageRecorderHangsUntilCancelled(t *testing.T) {
	r := &notifytest.PageRecorder{Err: func(ctx context.Context, _ notifytest.PageCall) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Page(ctx, page("pg-1", "alert-1", notify.PageTrigger)) }()
	require.NoError(t, r.WaitCalls(t.Context(), 1), "recorded while it hangs")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)

	waitCtx, stop := context.WithCancel(t.Context())
	stop()
	assert.ErrorIs(t, r.WaitCalls(waitCtx, 2), context.Canceled)
}

func TestPageRecorderConcurrentUse(t *testing.T) {
	var r notifytest.PageRecorder
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_ = r.Page(context.Background(), page("pg-"+strconv.Itoa(i%5), "alert", notify.PageTrigger))
		})
	}
	wg.Wait()
	assert.Len(t, r.Calls(), 50)
	for i := range 5 {
		assert.Equal(t, 10, r.Count("pg-"+strconv.Itoa(i)))
	}
	seqs := map[string][]int{}
	for _, c := range r.Calls() {
		seqs[c.Page.IdempotencyKey] = append(seqs[c.Page.IdempotencyKey], c.Seq)
	}
	for key, s := range seqs {
		assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, s, key)
	}
}

// A host tests that its escalation pages the on-call service, which refuses
// the first attempt of each page: the retry goes through with the same
// idempotency key.
func ExamplePageRecorder() {
	oncall := &notifytest.PageRecorder{Err: func(_ context.Context, c notifytest.PageCall) error {
		if c.Seq == 1 {
			return errors.New("503 service unavailable")
		}
		return nil
	}}
	var pager notify.Pager = oncall
	p := notify.Page{IdempotencyKey: "pg_inc-1_1_0", AlertKey: "inc-1/approval", Action: notify.PageTrigger, IncidentID: "inc-1"}
	for attempt := 1; attempt <= 3; attempt++ {
		p.Attempt = attempt
		err := pager.Page(context.Background(), p)
		fmt.Println("attempt", attempt, "error:", err)
		if err == nil {
			break
		}
	}
	fmt.Println("pages:", oncall.Count("pg_inc-1_1_0"), "alerts:", oncall.AlertKeys())
	// Output:
	// attempt 1 error: 503 service unavailable
	// attempt 2 error: <nil>
	// pages: 2 alerts: [inc-1/approval]
}
