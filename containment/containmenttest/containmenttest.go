// Package containmenttest provides fake containers for tests, as
// net/http/httptest provides a fake ResponseWriter: a Recorder that records
// every call a containment.Runner (or the orchestrator) makes, and fakes
// that fail, hang or panic on cue to test retries, timeouts and recovery.
//
// Every fake is a *Recorder, so a test can always see what was called:
// which action, with which IdempotencyKey, on which Attempt. All of them
// are safe for concurrent use.
package containmenttest

import (
	"context"
	"errors"
	"maps"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/internal/fake"
)

// ErrInjected is the error the failing fakes return when they are given a
// nil error.
var ErrInjected = errors.New("containmenttest: injected failure")

// Method names the containment method a Call was made to.
type Method string

// The methods a Recorder records.
const (
	MethodContain Method = "Contain"
	MethodRelease Method = "Release"
	MethodVerify  Method = "Verify" // only through a VerifyingRecorder
)

// Call is one recorded call.
type Call struct {
	Method  Method
	Request containment.Request
	// Seq counts the Recorder's calls with the same Method and
	// Request.IdempotencyKey, from 1: the first Contain of a key has Seq 1,
	// its retry Seq 2, and the first Release of the key Seq 1 again.
	Seq int
}

// Recorder is a containment.Container and containment.Releaser that
// records every call, then answers it with Err. Wrap it with Verifying to
// add a containment.Verifier.
//
// A Recorder is safe for concurrent use. A call is recorded before Err is
// called, so a test sees a call that is still running (one that hangs, for
// instance); calls are recorded in the order they arrive. The zero value
// records calls and answers every one with nil.
type Recorder struct {
	// Err, when not nil, answers each call: it gets the call's context and
	// the Call as recorded (with its Seq), and what it returns is what the
	// call returns; it may block, honouring ctx, or panic. It is called
	// without the Recorder's lock, possibly from several goroutines at once,
	// so it must be safe for concurrent use. Set it before the first call
	// and do not change it afterwards.
	Err func(ctx context.Context, c Call) error

	log fake.Log[Call]
}

var (
	_ containment.Container = (*Recorder)(nil)
	_ containment.Releaser  = (*Recorder)(nil)
)

// Contain records the call and returns what Err returns (nil without Err).
func (r *Recorder) Contain(ctx context.Context, req containment.Request) error {
	return r.do(ctx, MethodContain, req)
}

// Release records the call and returns what Err returns (nil without Err).
func (r *Recorder) Release(ctx context.Context, req containment.Request) error {
	return r.do(ctx, MethodRelease, req)
}

func (r *Recorder) do(ctx context.Context, m Method, req containment.Request) error {
	req.Attributes = maps.Clone(req.Attributes)
	build := func(seq int) Call { return Call{Method: m, Request: req, Seq: seq} }
	return fake.Reply(ctx, r.Err, r.log.Record(string(m)+" "+req.IdempotencyKey, build, cloneCall))
}

// cloneCall copies what a Call shares: its request's attributes.
func cloneCall(c Call) Call {
	c.Request.Attributes = maps.Clone(c.Request.Attributes)
	return c
}

// Calls returns every call recorded so far, in the order they arrived. The
// slice and its requests are copies.
func (r *Recorder) Calls() []Call { return r.log.Calls(cloneCall) }

// Requests returns the requests of the calls to method m, in order.
func (r *Recorder) Requests(m Method) []containment.Request {
	var out []containment.Request
	for _, c := range r.Calls() {
		if c.Method == m {
			out = append(out, c.Request)
		}
	}
	return out
}

// Contained returns the requests of every Contain call, failed ones
// included, in order.
func (r *Recorder) Contained() []containment.Request { return r.Requests(MethodContain) }

// Released returns the requests of every Release call, failed ones
// included, in order.
func (r *Recorder) Released() []containment.Request { return r.Requests(MethodRelease) }

// Count returns how many calls, of any method, carried the idempotency key.
func (r *Recorder) Count(key string) int {
	return r.log.Count(func(c Call) bool { return c.Request.IdempotencyKey == key })
}

// Keys returns the distinct idempotency keys of the calls, in the order
// each was first seen.
func (r *Recorder) Keys() []string {
	return r.log.Distinct(func(c Call) string { return c.Request.IdempotencyKey })
}

// WaitCalls blocks until at least n calls have been recorded, and returns
// nil, or until ctx ends, and returns ctx.Err(). It lets a test wait for a
// call to start (to cancel a hanging one, say) without sleeping.
func (r *Recorder) WaitCalls(ctx context.Context, n int) error { return r.log.Wait(ctx, n) }

// VerifyingRecorder is a Recorder that is also a containment.Verifier:
// Verify is recorded as MethodVerify, with its own Seq per key, and
// answered by the Recorder's Err like Contain and Release. A Runner calls
// Verify after each successful Contain, in the same attempt.
type VerifyingRecorder struct {
	*Recorder
}

var _ containment.Verifier = VerifyingRecorder{}

// Verifying returns r as a VerifyingRecorder. r must not be nil.
func Verifying(r *Recorder) VerifyingRecorder { return VerifyingRecorder{r} }

// Verify records the call and returns what Err returns (nil without Err).
func (v VerifyingRecorder) Verify(ctx context.Context, req containment.Request) error {
	return v.do(ctx, MethodVerify, req)
}

// kit builds the failing fakes on a Recorder.
var kit = fake.Kit[*Recorder, Call]{
	New:      func(a fake.Answer[Call]) *Recorder { return &Recorder{Err: a} },
	Seq:      func(c Call) int { return c.Seq },
	Injected: ErrInjected,
}

// FailN returns a Recorder whose calls fail with err (ErrInjected when err
// is nil) the first n times for each method and idempotency key, and
// succeed afterwards: each action of a run fails n attempts, then
// succeeds. Counting per key keeps concurrent actions independent. n <= 0
// never fails.
func FailN(n int, err error) *Recorder { return kit.FailN(n, err) }

// FailAlways returns a Recorder whose every call fails with err
// (ErrInjected when err is nil); the error is not permanent, so a Runner
// retries until its Policy is spent.
func FailAlways(err error) *Recorder { return kit.FailAlways(err) }

// FailPermanent returns a Recorder whose every call fails with
// incident.Permanent(err) (ErrInjected when err is nil): a Runner stops
// after the first attempt. errors.Is still finds err.
func FailPermanent(err error) *Recorder { return kit.FailPermanent(err) }

// Hang returns a Recorder whose every call blocks until its context ends
// and then returns ctx.Err(). It honours ctx, so no goroutine outlives the
// attempt's timeout; use it to test timeouts and cancellation.
func Hang() *Recorder { return kit.Hang() }

// Panic returns a Recorder whose every call panics with v, after it is
// recorded. A Runner recovers the panic into an *incident.PanicError; a
// direct call panics in the caller.
func Panic(v any) *Recorder { return kit.Panic(v) }

// Flaky returns a Recorder whose calls fail with err (ErrInjected when err
// is nil) with probability p, drawn from a generator seeded with seed: the
// sequence of outcomes, in the order calls arrive, is the same for the same
// seed. Calls from several goroutines are safe; which of them gets which
// outcome then depends on their order. p <= 0 never fails; p >= 1 always
// does.
func Flaky(p float64, seed uint64, err error) *Recorder { return kit.Flaky(p, seed, err) }
