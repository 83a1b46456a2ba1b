package notify_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
)

// recorder is a Notifier that keeps every message it is handed.
type recorder struct {
	mu   sync.Mutex
	msgs []notify.Message
	err  error
}

func (r *recorder) Notify(_ context.Context, msg notify.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msg)
	return r.err
}

func (r *recorder) got() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.msgs...)
}

func failing(err error) notify.Notifier {
	return notify.Func(func(context.Context, notify.Message) error { return err })
}

// routeErrors walks an error tree and returns every *RouteError in it.
func routeErrors(err error) []*notify.RouteError {
	var out []*notify.RouteError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if re, ok := err.(*notify.RouteError); ok {
			out = append(out, re)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func sampleMessage() notify.Message {
	return notify.Message{
		IdempotencyKey:  "brk_0123",
		Attempt:         2,
		Channel:         "ignored",
		Recipient:       incident.Customer{ID: "cust-1", Name: "Acme Ltd", Email: "sec@acme.test"},
		Subject:         "Security notice",
		Text:            "Dear Acme Ltd,",
		HTML:            "<p>Dear Acme Ltd,</p>",
		IncidentID:      "inc-1",
		Kind:            "api_key_leak",
		Severity:        incident.SeverityHigh,
		Impact:          incident.Impact{Data: []incident.DataCategory{incident.DataAPIAccess}},
		Recommendations: []string{"Generate a new API key in your dashboard"},
	}
}

type ctxKey struct{}

func TestFunc(t *testing.T) {
	want := errors.New("provider down")
	var gotMsg notify.Message
	var gotVal any
	n := notify.Func(func(ctx context.Context, msg notify.Message) error {
		gotMsg, gotVal = msg, ctx.Value(ctxKey{})
		return want
	})
	ctx := context.WithValue(t.Context(), ctxKey{}, "v")

	err := n.Notify(ctx, sampleMessage())

	assert.Same(t, want, err)
	assert.Equal(t, sampleMessage(), gotMsg)
	assert.Equal(t, "v", gotVal)
}

func TestValidateRoutes(t *testing.T) {
	ok := &recorder{}
	tests := []struct {
		name    string
		routes  []notify.Route
		wantErr bool
	}{
		{"none", nil, false},
		{"valid", []notify.Route{{Channel: "email", Notifier: ok}, {Channel: "pager", Notifier: ok}}, false},
		{"no channel", []notify.Route{{Channel: "email", Notifier: ok}, {Notifier: ok}}, true},
		{"no notifier", []notify.Route{{Channel: "email"}}, true},
		{"duplicate channel", []notify.Route{{Channel: "email", Notifier: ok}, {Channel: "email", Notifier: ok}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify.ValidateRoutes(tt.routes)
			if !tt.wantErr {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, notify.ErrInvalidRoute)
		})
	}
}

func TestFanOutDeliversToEveryRoute(t *testing.T) {
	email, webhook, pager := &recorder{}, &recorder{}, &recorder{}
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: email},
		notify.Route{Channel: "webhook", Notifier: webhook},
		notify.Route{Channel: "pager", Notifier: pager},
	)

	require.NoError(t, n.Notify(t.Context(), sampleMessage()))

	for channel, r := range map[string]*recorder{"email": email, "webhook": webhook, "pager": pager} {
		got := r.got()
		require.Len(t, got, 1, channel)
		want := sampleMessage()
		want.Channel = channel
		assert.Equal(t, want, got[0], channel)
	}
}

func TestFanOutNoRoutes(t *testing.T) {
	assert.NoError(t, notify.FanOut().Notify(t.Context(), sampleMessage()))
}

func TestFanOutCopiesRoutes(t *testing.T) {
	first, second := &recorder{}, &recorder{}
	routes := []notify.Route{{Channel: "email", Notifier: first}}
	n := notify.FanOut(routes...)
	routes[0] = notify.Route{Channel: "other", Notifier: second}

	require.NoError(t, n.Notify(t.Context(), sampleMessage()))

	assert.Len(t, first.got(), 1)
	assert.Empty(t, second.got())
}

func TestFanOutOneRouteFails(t *testing.T) {
	errDown := errors.New("smtp down")
	email, pager := &recorder{}, &recorder{}
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: email},
		notify.Route{Channel: "webhook", Notifier: failing(errDown)},
		notify.Route{Channel: "pager", Notifier: pager},
	)

	err := n.Notify(t.Context(), sampleMessage())

	require.Error(t, err)
	assert.Len(t, email.got(), 1, "other routes are still delivered")
	assert.Len(t, pager.got(), 1, "other routes are still delivered")
	var re *notify.RouteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "webhook", re.Channel)
	assert.ErrorIs(t, err, errDown)
	assert.Len(t, routeErrors(err), 1)
	assert.False(t, incident.IsPermanent(err))
	assert.Contains(t, err.Error(), `"webhook"`)
}

func TestFanOutTwoRoutesFail(t *testing.T) {
	errSMTP, errHook := errors.New("smtp down"), errors.New("webhook 503")
	ok := &recorder{}
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: failing(errSMTP)},
		notify.Route{Channel: "pager", Notifier: ok},
		notify.Route{Channel: "webhook", Notifier: failing(errHook)},
	)

	err := n.Notify(t.Context(), sampleMessage())

	require.Error(t, err)
	assert.Len(t, ok.got(), 1)
	assert.ErrorIs(t, err, errSMTP)
	assert.ErrorIs(t, err, errHook)
	byChannel := map[string]error{}
	for _, re := range routeErrors(err) {
		byChannel[re.Channel] = re.Err
	}
	require.Len(t, byChannel, 2)
	assert.ErrorIs(t, byChannel["email"], errSMTP)
	assert.ErrorIs(t, byChannel["webhook"], errHook)
}

func TestFanOutRecoversPanic(t *testing.T) {
	ok := &recorder{}
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: ok},
		notify.Route{Channel: "webhook", Notifier: notify.Func(func(context.Context, notify.Message) error {
			panic("nil map write")
		})},
	)

	var err error
	require.NotPanics(t, func() { err = n.Notify(t.Context(), sampleMessage()) })

	require.Error(t, err)
	assert.Len(t, ok.got(), 1)
	assert.ErrorIs(t, err, incident.ErrPanic)
	var pe *incident.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "nil map write", pe.Value)
	assert.NotEmpty(t, pe.Stack)
	res := routeErrors(err)
	require.Len(t, res, 1)
	assert.Equal(t, "webhook", res[0].Channel)
}

func TestFanOutPermanent(t *testing.T) {
	errGone := errors.New("no such address")
	errBusy := errors.New("rate limited")
	perm := failing(incident.Permanent(errGone))
	transient := failing(errBusy)
	ok := &recorder{}
	tests := []struct {
		name   string
		routes []notify.Route
		want   bool
	}{
		{"only failure is permanent", []notify.Route{{Channel: "a", Notifier: perm}, {Channel: "b", Notifier: ok}}, true},
		{"all failures permanent", []notify.Route{{Channel: "a", Notifier: perm}, {Channel: "b", Notifier: perm}}, true},
		{"one failure transient", []notify.Route{{Channel: "a", Notifier: perm}, {Channel: "b", Notifier: transient}}, false},
		{"all transient", []notify.Route{{Channel: "a", Notifier: transient}, {Channel: "b", Notifier: transient}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify.FanOut(tt.routes...).Notify(t.Context(), sampleMessage())

			require.Error(t, err)
			assert.Equal(t, tt.want, incident.IsPermanent(err))
			var re *notify.RouteError
			assert.ErrorAs(t, err, &re, "the route errors stay visible")
			for _, re := range routeErrors(err) {
				assert.True(t, errors.Is(re, errGone) || errors.Is(re, errBusy), "route %q keeps its cause", re.Channel)
			}
		})
	}
}

// A FanOut retried under a Policy: a permanent failure on one route must not
// stop the retries that a transient failure on another route needs.
func TestFanOutMixedFailureIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pagerCalls atomic.Int32
		n := notify.FanOut(
			notify.Route{Channel: "email", Notifier: failing(incident.Permanent(errors.New("no such address")))},
			notify.Route{Channel: "pager", Notifier: notify.Func(func(context.Context, notify.Message) error {
				if pagerCalls.Add(1) < 3 {
					return errors.New("pager busy")
				}
				return nil
			})},
		)

		out := retry.Do(t.Context(), incident.Policy{Attempts: 5}, nil, func(ctx context.Context, _ int) error {
			return n.Notify(ctx, sampleMessage())
		})

		assert.Equal(t, 3, out.Attempts)
		assert.Equal(t, int32(3), pagerCalls.Load())
		require.Error(t, out.Err)
		assert.True(t, incident.IsPermanent(out.Err), "only the permanent route fails in the end")
	})
}

func TestFanOutRunsRoutesConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		aStarted, bStarted := make(chan struct{}), make(chan struct{})
		waitFor := func(mine, other chan struct{}) notify.Notifier {
			return notify.Func(func(ctx context.Context, _ notify.Message) error {
				close(mine)
				select {
				case <-other:
					return nil
				case <-ctx.Done():
					return errors.New("the other route never started: routes run one at a time")
				}
			})
		}
		n := notify.FanOut(
			notify.Route{Channel: "a", Notifier: waitFor(aStarted, bStarted)},
			notify.Route{Channel: "b", Notifier: waitFor(bStarted, aStarted)},
		)

		assert.NoError(t, n.Notify(ctx, sampleMessage()))
	})
}

func TestFanOutPassesContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		errStop := errors.New("shutting down")
		started := make(chan struct{})
		n := notify.FanOut(notify.Route{Channel: "email", Notifier: notify.Func(func(ctx context.Context, _ notify.Message) error {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		})})

		done := make(chan error, 1)
		go func() { done <- n.Notify(ctx, sampleMessage()) }()
		<-started
		cancel(errStop)
		err := <-done

		assert.ErrorIs(t, err, errStop)
		var re *notify.RouteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "email", re.Channel)
	})
}
