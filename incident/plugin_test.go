package incident_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// fakeReporter records every signal and rejects those whose Kind is "bad".
type fakeReporter struct {
	mu   sync.Mutex
	got  []incident.Signal
	ctxs []context.Context
}

var errRejected = fmt.Errorf("rejected: %w", incident.ErrInvalidSignal)

func (r *fakeReporter) Report(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	r.ctxs = append(r.ctxs, ctx)
	if s.Kind == "bad" {
		return incident.Receipt{}, errRejected
	}
	return incident.Receipt{IncidentID: "inc-" + s.Subject, Opened: len(r.got) == 1}, nil
}

func (r *fakeReporter) subjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.got {
		out = append(out, s.Subject)
	}
	return out
}

func TestChanDetectorReportsInOrderUntilClosed(t *testing.T) {
	ch := make(chan incident.Signal, 10)
	var want []string
	for i := range 10 {
		kind := "ok"
		if i == 3 || i == 7 {
			kind = "bad"
		}
		s := incident.Signal{Kind: kind, Subject: fmt.Sprint("s", i), Credential: incident.NewSecret(canary)}
		ch <- s
		want = append(want, s.Subject)
	}
	close(ch)

	type rejected struct {
		subject string
		err     error
	}
	var rej []rejected
	r := &fakeReporter{}
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	err := incident.ChanDetector(ch, func(s incident.Signal, err error) {
		rej = append(rej, rejected{s.Subject, err})
	}).Detect(ctx, r)
	require.NoError(t, err, "a closed channel ends Detect with nil")
	assert.Equal(t, want, r.subjects(), "every signal, in order, the rejected ones included")
	require.Len(t, rej, 2)
	assert.Equal(t, "s3", rej[0].subject)
	assert.Equal(t, "s7", rej[1].subject)
	for _, x := range rej {
		assert.ErrorIs(t, x.err, incident.ErrInvalidSignal)
		assert.Same(t, errRejected, x.err, "onError gets the reporter's error as is")
	}
	for _, c := range r.ctxs {
		assert.Equal(t, "v", c.Value(key{}), "Report gets Detect's context")
	}
	assert.Equal(t, canary, r.got[0].Credential.Reveal(), "the signal is passed on whole")
}

func TestChanDetectorNilOnError(t *testing.T) {
	ch := make(chan incident.Signal, 3)
	ch <- incident.Signal{Kind: "bad", Subject: "a"}
	ch <- incident.Signal{Kind: "ok", Subject: "b"}
	ch <- incident.Signal{Kind: "bad", Subject: "c"}
	close(ch)
	r := &fakeReporter{}
	require.NotPanics(t, func() {
		assert.NoError(t, incident.ChanDetector(ch, nil).Detect(t.Context(), r))
	})
	assert.Equal(t, []string{"a", "b", "c"}, r.subjects())
}

func TestChanDetectorStopsOnCancel(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		ch := make(chan incident.Signal) // never ready
		r := &fakeReporter{}
		err := incident.ChanDetector(ch, nil).Detect(ctx, r)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, r.subjects())
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ch := make(chan incident.Signal)
			r := &fakeReporter{}
			done := make(chan error)
			go func() { done <- incident.ChanDetector(ch, nil).Detect(ctx, r) }()
			ch <- incident.Signal{Kind: "ok", Subject: "first"}
			ch <- incident.Signal{Kind: "ok", Subject: "second"}
			synctest.Wait() // Detect has reported both and waits for more
			assert.Equal(t, []string{"first", "second"}, r.subjects())
			cancel()
			err := <-done
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, []string{"first", "second"}, r.subjects())
		})
	})
	t.Run("returns ctx.Err, not the cause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(errors.New("shutdown"))
		err := incident.ChanDetector(make(chan incident.Signal), nil).Detect(ctx, &fakeReporter{})
		assert.ErrorIs(t, err, context.Canceled, "Detect returns ctx.Err()")
	})
}

func TestDetectorFunc(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	r := &fakeReporter{}
	want := errors.New("cannot go on")
	calls := 0
	d := incident.DetectorFunc(func(gotCtx context.Context, gotR incident.Reporter) error {
		calls++
		assert.Equal(t, "v", gotCtx.Value(key{}))
		assert.Same(t, r, gotR)
		_, err := gotR.Report(gotCtx, incident.Signal{Kind: "ok", Subject: "x"})
		assert.NoError(t, err)
		return want
	})
	var det incident.Detector = d
	assert.Same(t, want, det.Detect(ctx, r))
	assert.Equal(t, 1, calls)
	assert.Equal(t, []string{"x"}, r.subjects())
}

func TestInvestigatorFunc(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	inc := &incident.Incident{ID: "i1"}
	want := incident.Findings{RootCause: "leaked in CI logs", Impact: incident.Impact{
		Customers: []incident.Customer{{ID: "c1"}}, Data: []incident.DataCategory{incident.DataAPIAccess}}}
	wantErr := incident.Permanent(errors.New("no such key"))
	calls := 0
	var inv incident.Investigator = incident.InvestigatorFunc(func(gotCtx context.Context, got *incident.Incident) (incident.Findings, error) {
		calls++
		assert.Equal(t, "v", gotCtx.Value(key{}))
		assert.Same(t, inc, got)
		return want, wantErr
	})
	f, err := inv.Investigate(ctx, inc)
	assert.Equal(t, 1, calls)
	assert.Equal(t, want, f)
	assert.Same(t, wantErr, err)
}
