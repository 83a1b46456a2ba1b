package containment_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

const incidentID = "inc-1"

func baseRequest() containment.Request {
	secret := incident.NewSecret("sk_live_leaked")
	return containment.Request{
		Action:                "overwritten",
		IdempotencyKey:        "overwritten",
		Attempt:               99,
		IncidentID:            incidentID,
		Kind:                  "api_key_leak",
		Subject:               "key_123",
		Account:               "acct-9",
		Severity:              incident.SeverityCritical,
		Attributes:            map[string]string{"region": "eu"},
		Credential:            secret,
		CredentialFingerprint: secret.Fingerprint(),
	}
}

func keyOf(a containment.Action) string { return containment.Key(incidentID, a) }

func ok() containment.Container {
	return containment.Func(func(context.Context, containment.Request) error { return nil })
}

// calls records the requests a container receives.
type calls struct {
	mu   sync.Mutex
	reqs []containment.Request
}

func (c *calls) add(req containment.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
}

func (c *calls) get() []containment.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

func (c *calls) container(fn func(req containment.Request) error) containment.Container {
	return containment.Func(func(_ context.Context, req containment.Request) error {
		c.add(req)
		if fn == nil {
			return nil
		}
		return fn(req)
	})
}

func names(rs containment.Results) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Action
	}
	return out
}

func actionErrors(err error) []*containment.ActionError {
	var out []*containment.ActionError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var ae *containment.ActionError
			if errors.As(e, &ae) {
				out = append(out, ae)
			}
		}
	}
	return out
}

type ctxKey struct{}

func TestFunc(t *testing.T) {
	want := errors.New("revoke failed")
	var got containment.Request
	var val any
	c := containment.Func(func(ctx context.Context, req containment.Request) error {
		got, val = req, ctx.Value(ctxKey{})
		return want
	})

	err := c.Contain(context.WithValue(t.Context(), ctxKey{}, "v"), baseRequest())

	assert.Same(t, want, err)
	assert.Equal(t, baseRequest(), got)
	assert.Equal(t, "v", val)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		actions []containment.Action
		wantErr bool
	}{
		{"empty", nil, false},
		{"valid", []containment.Action{{Name: "revoke", Container: ok()}, {Name: "block", Container: ok()}}, false},
		{"no name", []containment.Action{{Name: "revoke", Container: ok()}, {Container: ok()}}, true},
		{"no container", []containment.Action{{Name: "revoke"}}, true},
		{"duplicate name", []containment.Action{{Name: "revoke", Container: ok()}, {Name: "block", Container: ok()}, {Name: "revoke", Container: ok()}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := containment.Validate(tt.actions)
			if !tt.wantErr {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, containment.ErrInvalidAction)
		})
	}
}

func TestKey(t *testing.T) {
	revoke := containment.Action{Name: "revoke", Container: ok()}
	block := containment.Action{Name: "block", Container: ok()}
	revokeAgain := containment.Action{Name: "revoke", Description: "other words", Policy: incident.Policy{Attempts: 7}}

	k := containment.Key("inc-1", revoke)

	assert.NotEmpty(t, k)
	assert.Equal(t, k, containment.Key("inc-1", revoke), "stable")
	assert.Equal(t, k, containment.Key("inc-1", revokeAgain), "depends only on the incident and the action's name")
	assert.NotEqual(t, k, containment.Key("inc-1", block), "differs per action")
	assert.NotEqual(t, k, containment.Key("inc-2", revoke), "differs per incident")
	assert.Equal(t, incident.IdempotencyKey("inc-1", "contain", "revoke"), k)
	// Keys outlive the process (a restarted or upgraded replica must repeat
	// them), so a change of the derivation is a breaking change.
	assert.Equal(t, "brk_0472adad8a969acb37c4a4d4278f8af2", containment.Key("inc_7f3a9c", containment.Action{Name: "revoke-api-key"}))
}

func TestApplyAllSucceed(t *testing.T) {
	t0 := time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC)
	var revoke, block, isolate calls
	actions := []containment.Action{
		{Name: "revoke", Container: revoke.container(nil)},
		{Name: "block", Container: block.container(nil)},
		{Name: "isolate", Container: isolate.container(nil)},
	}
	r := containment.Runner{Now: func() time.Time { return t0 }}

	rs := r.Apply(t.Context(), actions, baseRequest(), keyOf)

	require.NoError(t, rs.Err())
	require.Equal(t, []string{"revoke", "block", "isolate"}, names(rs), "in the order of the actions")
	for i, res := range rs {
		assert.Equal(t, keyOf(actions[i]), res.IdempotencyKey, res.Action)
		assert.Equal(t, 1, res.Attempts, res.Action)
		assert.NoError(t, res.Err, res.Action)
		assert.Equal(t, t0, res.Started, res.Action)
		assert.Equal(t, t0, res.Finished, res.Action)
	}
	for i, c := range []*calls{&revoke, &block, &isolate} {
		reqs := c.get()
		require.Len(t, reqs, 1, actions[i].Name)
		want := baseRequest()
		want.Action, want.IdempotencyKey, want.Attempt = actions[i].Name, keyOf(actions[i]), 1
		assert.Equal(t, want, reqs[0], actions[i].Name)
		assert.Equal(t, "sk_live_leaked", reqs[0].Credential.Reveal())
	}
}

// TestApplyRunsTheLastActionOnTheCallersGoroutine: every action but the
// last runs on a goroutine of its own; the last runs on the caller's,
// which would only wait for it otherwise. Each attempt's call is still
// made on a goroutine of its own, created by the action's goroutine.
func TestApplyRunsTheLastActionOnTheCallersGoroutine(t *testing.T) {
	stack := func() string {
		buf := make([]byte, 64<<10)
		return string(buf[:runtime.Stack(buf, false)])
	}
	caller, _, _ := strings.Cut(strings.TrimPrefix(stack(), "goroutine "), " ")
	var mu sync.Mutex
	onCaller := map[string]bool{}
	r := containment.Runner{OnCall: func(req containment.Request) {
		s := stack() // the call's goroutine, and the goroutine that created it
		mu.Lock()
		defer mu.Unlock()
		onCaller[req.Action] = strings.Contains(s, "in goroutine "+caller+"\n")
	}}
	var revoke, block, isolate calls
	actions := []containment.Action{
		{Name: "revoke", Container: revoke.container(nil)},
		{Name: "block", Container: block.container(nil)},
		{Name: "isolate", Container: isolate.container(nil)},
	}
	rs := r.Apply(t.Context(), actions, baseRequest(), keyOf)
	require.NoError(t, rs.Err())
	assert.Equal(t, map[string]bool{"revoke": false, "block": false, "isolate": true}, onCaller)
}

// TestApplyWaitsForEveryActionWhenTheLastPanics: the last action runs on
// the caller's goroutine; should the caller's own code for it panic
// (OnResult here), Apply still waits for the other actions, so that no
// OnResult comes after it returns.
func TestApplyWaitsForEveryActionWhenTheLastPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var results []string
		r := containment.Runner{OnResult: func(res containment.Result) {
			mu.Lock()
			results = append(results, res.Action)
			mu.Unlock()
			if res.Action == "last" {
				panic("a host's OnResult fails")
			}
		}}
		actions := []containment.Action{
			{Name: "slow", Container: containment.Func(func(context.Context, containment.Request) error {
				time.Sleep(50 * time.Millisecond)
				return nil
			})},
			{Name: "last", Container: containment.Func(func(context.Context, containment.Request) error { return nil })},
		}
		func() {
			defer func() { assert.Equal(t, "a host's OnResult fails", recover()) }()
			r.Apply(t.Context(), actions, baseRequest(), keyOf)
		}()
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{"last", "slow"}, results, "the slow action's result came before Apply returned")
	})
}

// TestApplyRaisesAPanicOfAnotherActionsGoroutine: the caller's code
// (OnResult) panicking for an action run on a goroutine of its own does
// not take the process down: once every action has ended, Apply panics
// on the caller's goroutine, where the caller recovers its own code's
// panics, with an *incident.PanicError holding the value.
func TestApplyRaisesAPanicOfAnotherActionsGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var results []string
		r := containment.Runner{OnResult: func(res containment.Result) {
			mu.Lock()
			results = append(results, res.Action)
			mu.Unlock()
			if res.Action == "first" {
				panic("a host's OnResult fails")
			}
		}}
		actions := []containment.Action{
			{Name: "first", Container: containment.Func(func(context.Context, containment.Request) error { return nil })},
			{Name: "last", Container: containment.Func(func(context.Context, containment.Request) error {
				time.Sleep(50 * time.Millisecond)
				return nil
			})},
		}
		var got any
		func() {
			defer func() { got = recover() }()
			r.Apply(t.Context(), actions, baseRequest(), keyOf)
		}()
		var pe *incident.PanicError
		require.ErrorAs(t, got.(error), &pe)
		assert.Equal(t, "a host's OnResult fails", pe.Value)
		mu.Lock()
		defer mu.Unlock()
		assert.ElementsMatch(t, []string{"first", "last"}, results, "every action ended before Apply panicked")
	})
}

func TestApplyNoActions(t *testing.T) {
	rs := containment.Runner{}.Apply(t.Context(), nil, baseRequest(), keyOf)
	assert.Empty(t, rs)
	assert.NoError(t, rs.Err())
}

func TestApplyRetriesUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c calls
		errFlaky := errors.New("503 from key service")
		actions := []containment.Action{{
			Name: "revoke",
			Container: c.container(func(req containment.Request) error {
				if req.Attempt < 3 {
					return errFlaky
				}
				return nil
			}),
			Policy: incident.Policy{Backoff: time.Second},
		}}

		rs := containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)

		require.Len(t, rs, 1)
		assert.NoError(t, rs.Err())
		assert.Equal(t, 3, rs[0].Attempts)
		reqs := c.get()
		require.Len(t, reqs, 3)
		for i, req := range reqs {
			assert.Equal(t, i+1, req.Attempt)
			assert.Equal(t, keyOf(actions[0]), req.IdempotencyKey, "same key on every attempt")
		}
		// Backoff 1s then 2s, each jittered by at most 20%.
		assert.GreaterOrEqual(t, rs[0].Finished.Sub(rs[0].Started), 2400*time.Millisecond, "waited between attempts")
	})
}

func TestApplyAlwaysFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDown := errors.New("key service down")
		var c calls
		actions := []containment.Action{
			{Name: "revoke", Container: c.container(func(containment.Request) error { return errDown }), Policy: incident.Policy{Attempts: 4}},
			{Name: "block", Container: ok()},
			{Name: "isolate", Container: containment.Func(func(context.Context, containment.Request) error { return errDown })},
		}

		rs := containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)

		require.Len(t, rs, 3)
		assert.Equal(t, 4, rs[0].Attempts)
		assert.Len(t, c.get(), 4)
		assert.ErrorIs(t, rs[0].Err, errDown)
		assert.NoError(t, rs[1].Err)
		assert.Equal(t, 3, rs[2].Attempts, "the zero Policy makes 3 attempts")

		err := rs.Err()
		require.Error(t, err)
		assert.ErrorIs(t, err, errDown)
		var ae *containment.ActionError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "revoke", ae.Action)
		assert.Equal(t, 4, ae.Attempts)
		assert.Contains(t, ae.Error(), `"revoke" failed after 4 attempt(s)`)
		aes := actionErrors(err)
		require.Len(t, aes, 2, "one ActionError per failed action")
		assert.Equal(t, []string{"revoke", "isolate"}, []string{aes[0].Action, aes[1].Action})
	})
}

func TestApplyPermanentErrorIsNotRetried(t *testing.T) {
	errNoKey := errors.New("no such key")
	var c calls
	actions := []containment.Action{{Name: "revoke", Container: c.container(func(containment.Request) error {
		return incident.Permanent(errNoKey)
	})}}

	rs := containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)

	require.Len(t, rs, 1)
	assert.Equal(t, 1, rs[0].Attempts)
	assert.Len(t, c.get(), 1)
	assert.ErrorIs(t, rs[0].Err, errNoKey)
	assert.True(t, incident.IsPermanent(rs[0].Err))
}

func TestApplyRecoversPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		actions := []containment.Action{
			{Name: "revoke", Container: containment.Func(func(context.Context, containment.Request) error {
				panic("container bug")
			}), Policy: incident.Policy{Attempts: 2}},
			{Name: "block", Container: ok()},
		}

		var rs containment.Results
		require.NotPanics(t, func() {
			rs = containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)
		})

		require.Len(t, rs, 2)
		assert.Equal(t, 2, rs[0].Attempts, "a panic counts as a failed attempt")
		assert.ErrorIs(t, rs[0].Err, incident.ErrPanic)
		var pe *incident.PanicError
		require.ErrorAs(t, rs[0].Err, &pe)
		assert.NotEmpty(t, pe.Stack)
		assert.NoError(t, rs[1].Err, "other actions are unaffected")
	})
}

func TestApplyTimesOutHungContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release) // let the abandoned call return before the bubble ends
		actions := []containment.Action{{
			Name: "revoke",
			Container: containment.Func(func(context.Context, containment.Request) error {
				<-release // ignores ctx
				return nil
			}),
			Policy: incident.Policy{Attempts: 1, Timeout: 5 * time.Second},
		}}
		start := time.Now()

		rs := containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)

		require.Len(t, rs, 1)
		assert.Equal(t, 5*time.Second, time.Since(start))
		assert.Equal(t, 1, rs[0].Attempts)
		var te *incident.TimeoutError
		require.ErrorAs(t, rs[0].Err, &te)
		assert.Equal(t, 5*time.Second, te.After)
		assert.ErrorIs(t, rs[0].Err, incident.ErrTimeout)
		assert.ErrorIs(t, rs[0].Err, context.DeadlineExceeded)
	})
}

func TestApplyBoundsConcurrency(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		actions     int
		want        int
	}{
		{"bounded", 2, 6, 2},
		{"zero means default", 0, 6, containment.DefaultConcurrency},
		{"fewer actions than the bound", 10, 3, 3},
		{"one at a time", 1, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var inFlight, maxInFlight atomic.Int32
				release := make(chan struct{})
				blocker := containment.Func(func(context.Context, containment.Request) error {
					storeMax(&maxInFlight, inFlight.Add(1))
					<-release
					inFlight.Add(-1)
					return nil
				})
				actions := make([]containment.Action, tt.actions)
				for i := range actions {
					actions[i] = containment.Action{Name: fmt.Sprint("a", i), Container: blocker}
				}

				done := make(chan containment.Results)
				go func() {
					done <- containment.Runner{Concurrency: tt.concurrency}.Apply(t.Context(), actions, baseRequest(), keyOf)
				}()
				for left := tt.actions; left > 0; left-- {
					synctest.Wait()
					assert.Equal(t, int32(min(left, tt.want)), inFlight.Load(), "running with %d left", left)
					release <- struct{}{}
				}
				rs := <-done

				assert.NoError(t, rs.Err())
				assert.Equal(t, int32(tt.want), maxInFlight.Load())
			})
		})
	}
}

func storeMax(m *atomic.Int32, n int32) {
	for {
		old := m.Load()
		if n <= old || m.CompareAndSwap(old, n) {
			return
		}
	}
}

func TestApplyCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var c calls
	var reported atomic.Int32
	actions := []containment.Action{
		{Name: "revoke", Container: c.container(nil)},
		{Name: "block", Container: c.container(nil)},
	}
	r := containment.Runner{OnResult: func(containment.Result) { reported.Add(1) }}

	rs := r.Apply(ctx, actions, baseRequest(), keyOf)

	assert.Empty(t, c.get(), "no container is called")
	require.Equal(t, []string{"revoke", "block"}, names(rs))
	for i, res := range rs {
		assert.ErrorIs(t, res.Err, context.Canceled, res.Action)
		assert.Equal(t, 0, res.Attempts, res.Action)
		assert.Equal(t, keyOf(actions[i]), res.IdempotencyKey, res.Action)
		assert.False(t, res.Started.IsZero(), res.Action)
	}
	assert.Equal(t, int32(2), reported.Load())
	assert.ErrorIs(t, rs.Err(), context.Canceled)
}

func TestApplyCancelledWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errStop := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		started := make(chan struct{})
		var later calls
		actions := []containment.Action{
			{Name: "first", Container: containment.Func(func(ctx context.Context, _ containment.Request) error {
				close(started)
				<-ctx.Done()
				return context.Cause(ctx)
			})},
			{Name: "second", Container: later.container(nil)},
			{Name: "third", Container: later.container(nil)},
		}

		done := make(chan containment.Results)
		go func() {
			done <- containment.Runner{Concurrency: 1}.Apply(ctx, actions, baseRequest(), keyOf)
		}()
		<-started
		synctest.Wait() // Apply waits for a slot for "second"
		cancel(errStop)
		rs := <-done

		require.Equal(t, []string{"first", "second", "third"}, names(rs))
		assert.Equal(t, 1, rs[0].Attempts)
		assert.ErrorIs(t, rs[0].Err, errStop)
		assert.Empty(t, later.get(), "actions not yet started are not called")
		for _, res := range rs[1:] {
			assert.ErrorIs(t, res.Err, errStop, res.Action)
			assert.Equal(t, 0, res.Attempts, res.Action)
		}
	})
}

func TestApplyOnResult(t *testing.T) {
	const n = 16
	gate := make(chan struct{})
	var arrived atomic.Int32
	var busy, overlapped atomic.Bool
	var mu sync.Mutex
	reported := map[string]containment.Result{}
	count := 0
	r := containment.Runner{
		Concurrency: n,
		OnResult: func(res containment.Result) {
			if !busy.CompareAndSwap(false, true) {
				overlapped.Store(true)
			}
			for range 20 {
				runtime.Gosched() // give a concurrent call the chance to overlap
			}
			mu.Lock()
			count++
			reported[res.Action] = res
			mu.Unlock()
			busy.Store(false)
		},
	}
	actions := make([]containment.Action, n)
	for i := range actions {
		actions[i] = containment.Action{Name: fmt.Sprint("a", i), Container: containment.Func(func(context.Context, containment.Request) error {
			if arrived.Add(1) == n {
				close(gate) // all are running: let them finish together
			}
			<-gate
			if i%3 == 0 {
				return incident.Permanent(errors.New("refused"))
			}
			return nil
		})}
	}

	rs := r.Apply(t.Context(), actions, baseRequest(), keyOf)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, n, count, "once per action, before Apply returns")
	assert.False(t, overlapped.Load(), "OnResult is never called concurrently")
	for _, res := range rs {
		assert.Equal(t, res, reported[res.Action])
	}
}

// verifying is a Container that is also a Verifier and a Releaser.
type verifying struct {
	contains, verifies, releases atomic.Int32
	containErr                   error
	verify                       func(req containment.Request) error
}

func (v *verifying) Contain(context.Context, containment.Request) error {
	v.contains.Add(1)
	return v.containErr
}

func (v *verifying) Verify(_ context.Context, req containment.Request) error {
	v.verifies.Add(1)
	return v.verify(req)
}

func (v *verifying) Release(context.Context, containment.Request) error {
	v.releases.Add(1)
	return nil
}

func TestApplyVerifies(t *testing.T) {
	errStillValid := errors.New("key still accepted")
	tests := []struct {
		name         string
		policy       incident.Policy
		verify       func(req containment.Request) error
		wantAttempts int
		wantErr      bool
	}{
		{"verified", incident.Policy{}, func(containment.Request) error { return nil }, 1, false},
		{"fails first then passes", incident.Policy{}, func(req containment.Request) error {
			if req.Attempt == 1 {
				return errStillValid
			}
			return nil
		}, 2, false},
		{"fails on the only attempt", incident.Policy{Attempts: 1}, func(req containment.Request) error {
			if req.Attempt == 1 {
				return errStillValid
			}
			return nil
		}, 1, true},
		{"always fails", incident.Policy{}, func(containment.Request) error { return errStillValid }, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v := &verifying{verify: tt.verify}
				actions := []containment.Action{{Name: "revoke", Container: v, Policy: tt.policy}}

				rs := containment.Runner{}.Apply(t.Context(), actions, baseRequest(), keyOf)

				require.Len(t, rs, 1)
				assert.Equal(t, tt.wantAttempts, rs[0].Attempts)
				assert.Equal(t, int32(tt.wantAttempts), v.contains.Load(), "Contain runs again on each attempt")
				assert.Equal(t, int32(tt.wantAttempts), v.verifies.Load(), "Verify runs in each attempt")
				if !tt.wantErr {
					assert.NoError(t, rs[0].Err)
					return
				}
				var ve *containment.VerifyError
				require.ErrorAs(t, rs[0].Err, &ve)
				assert.ErrorIs(t, rs[0].Err, errStillValid)
				assert.Equal(t, "containment not verified: key still accepted", ve.Error())
				var ae *containment.ActionError
				assert.ErrorAs(t, rs.Err(), &ae)
			})
		})
	}
}

func TestApplyDoesNotVerifyFailedContain(t *testing.T) {
	errDown := errors.New("key service down")
	v := &verifying{containErr: incident.Permanent(errDown), verify: func(containment.Request) error { return nil }}

	rs := containment.Runner{}.Apply(t.Context(), []containment.Action{{Name: "revoke", Container: v}}, baseRequest(), keyOf)

	require.Len(t, rs, 1)
	assert.ErrorIs(t, rs[0].Err, errDown)
	var ve *containment.VerifyError
	assert.False(t, errors.As(rs[0].Err, &ve))
	assert.Zero(t, v.verifies.Load())
}

// releasing is a Container and Releaser that records its Release calls.
type releasing struct {
	calls
	contains   atomic.Int32
	releaseErr error
}

func (r *releasing) Contain(context.Context, containment.Request) error {
	r.contains.Add(1)
	return nil
}

func (r *releasing) Release(_ context.Context, req containment.Request) error {
	r.add(req)
	return r.releaseErr
}

func TestRelease(t *testing.T) {
	revoke, block := &releasing{}, &releasing{}
	var notify calls
	v := &verifying{verify: func(containment.Request) error { return errors.New("must not be called") }}
	actions := []containment.Action{
		{Name: "revoke", Container: revoke},
		{Name: "page-security", Container: notify.container(nil)},
		{Name: "block", Container: block},
		{Name: "rotate", Container: v},
	}

	rs := containment.Runner{}.Release(t.Context(), actions, baseRequest(), keyOf)

	require.NoError(t, rs.Err())
	require.Equal(t, []string{"revoke", "block", "rotate"}, names(rs), "only Releasers, in order")
	applied := map[string]string{}
	for _, a := range actions {
		applied[a.Name] = containment.Key(incidentID, a)
	}
	for _, res := range rs {
		assert.Equal(t, applied[res.Action], res.IdempotencyKey, "same key as Apply, %s", res.Action)
		assert.Equal(t, 1, res.Attempts)
	}
	for name, r := range map[string]*releasing{"revoke": revoke, "block": block} {
		reqs := r.get()
		require.Len(t, reqs, 1, name)
		want := baseRequest()
		want.Action, want.IdempotencyKey, want.Attempt = name, applied[name], 1
		assert.Equal(t, want, reqs[0], name)
		assert.Zero(t, r.contains.Load(), "Release does not call Contain")
	}
	assert.Empty(t, notify.get(), "a non-Releaser is not called")
	assert.Equal(t, int32(1), v.releases.Load())
	assert.Zero(t, v.verifies.Load(), "Release does not verify")
	assert.Zero(t, v.contains.Load())
}

func TestReleaseFailure(t *testing.T) {
	errGone := errors.New("key already deleted")
	r := &releasing{releaseErr: incident.Permanent(errGone)}

	rs := containment.Runner{}.Release(t.Context(), []containment.Action{{Name: "revoke", Container: r}}, baseRequest(), keyOf)

	require.Len(t, rs, 1)
	assert.Equal(t, 1, rs[0].Attempts)
	var ae *containment.ActionError
	require.ErrorAs(t, rs.Err(), &ae)
	assert.Equal(t, "revoke", ae.Action)
	assert.ErrorIs(t, rs.Err(), errGone)
}

func TestReleaseNothingReleasable(t *testing.T) {
	rs := containment.Runner{}.Release(t.Context(), []containment.Action{{Name: "page", Container: ok()}}, baseRequest(), keyOf)
	assert.Empty(t, rs)
	assert.NoError(t, rs.Err())
}

func TestApplyStoppedBeforeStart(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	var c calls
	actions := []containment.Action{{Name: "revoke", Container: c.container(nil)}, {Name: "block", Container: c.container(nil)}}

	rs := containment.Runner{Stop: stop}.Apply(t.Context(), actions, baseRequest(), keyOf)

	assert.Empty(t, c.get())
	require.Equal(t, []string{"revoke", "block"}, names(rs))
	for _, res := range rs {
		assert.ErrorIs(t, res.Err, incident.ErrStopped, res.Action)
		assert.Equal(t, 0, res.Attempts, res.Action)
	}
}

func TestApplyStopEndsRetriesButNotAttemptsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errFlaky := errors.New("503")
		stop := make(chan struct{})
		release := make(chan struct{})
		var flaky, slow, later calls
		actions := []containment.Action{
			{Name: "flaky", Container: flaky.container(func(containment.Request) error { return errFlaky })},
			{Name: "slow", Container: slow.container(func(containment.Request) error { <-release; return nil })},
			{Name: "later", Container: later.container(nil)},
		}

		done := make(chan containment.Results)
		go func() {
			done <- containment.Runner{Concurrency: 2, Stop: stop}.Apply(t.Context(), actions, baseRequest(), keyOf)
		}()
		synctest.Wait() // "flaky" waits to retry, "slow" is in flight, "later" waits for a slot
		require.Len(t, flaky.get(), 1)
		require.Len(t, slow.get(), 1)
		close(stop)
		synctest.Wait()
		close(release)
		rs := <-done

		require.Equal(t, []string{"flaky", "slow", "later"}, names(rs))
		assert.Equal(t, 1, rs[0].Attempts, "no retry after stop")
		assert.ErrorIs(t, rs[0].Err, incident.ErrStopped)
		assert.ErrorIs(t, rs[0].Err, errFlaky)
		assert.NoError(t, rs[1].Err, "an attempt in flight finishes")
		assert.ErrorIs(t, rs[2].Err, incident.ErrStopped)
		assert.Equal(t, 0, rs[2].Attempts)
		assert.Empty(t, later.get(), "not started after stop")
	})
}

// TestApplyOnCall: OnCall sees every attempt's request just before its
// call, on the goroutine that makes it.
func TestApplyOnCall(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var inCall sync.Map // attempt → the call of this attempt has begun
	r := containment.Runner{
		OnCall: func(req containment.Request) {
			_, begun := inCall.Load(req.Attempt)
			assert.False(t, begun, "OnCall comes before the call")
			mu.Lock()
			seen = append(seen, fmt.Sprint(req.Action, "#", req.Attempt))
			mu.Unlock()
		},
	}
	fails := errors.New("not yet")
	a := containment.Action{Name: "disable", Policy: incident.Policy{Attempts: 3, Backoff: time.Millisecond},
		Container: containment.Func(func(_ context.Context, req containment.Request) error {
			inCall.Store(req.Attempt, true)
			if req.Attempt < 2 {
				return fails
			}
			return nil
		})}
	res := r.Apply(context.Background(), []containment.Action{a}, containment.Request{IncidentID: "inc_1"}, nil)
	require.NoError(t, res.Err())
	assert.Equal(t, []string{"disable#1", "disable#2"}, seen)
}
