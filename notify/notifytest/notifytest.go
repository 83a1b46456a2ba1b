// Package notifytest provides fake notifiers for tests, as
// net/http/httptest provides a fake ResponseWriter: a Recorder that records
// every message it is handed, and fakes that fail, hang or panic on cue to
// test retries, timeouts, recovery and notify.FanOut.
//
// Every fake is a *Recorder, so a test can always see what was sent: to
// whom, on which channel, with which IdempotencyKey, on which Attempt. A
// PageRecorder does the same for the pages of a notify.Pager, and its Err
// function makes it succeed, fail or hang. All of them are safe for
// concurrent use.
package notifytest

import (
	"context"
	"errors"
	"slices"

	"github.com/breachkit/breach/internal/fake"
	"github.com/breachkit/breach/notify"
)

// ErrInjected is the error the failing fakes return when they are given a
// nil error.
var ErrInjected = errors.New("notifytest: injected failure")

// Call is one recorded call to Notify.
type Call struct {
	Message notify.Message
	// Seq counts the Recorder's calls with the same Message.IdempotencyKey,
	// from 1: the first delivery attempt of a notice has Seq 1, its retry
	// Seq 2. (One Recorder on two FanOut routes sees each key twice.)
	Seq int
}

// Recorder is a notify.Notifier that records every message, then answers
// it with Err.
//
// A Recorder is safe for concurrent use. A call is recorded before Err is
// called, so a test sees a call that is still running (one that hangs, for
// instance); calls are recorded in the order they arrive, failed ones
// included. The zero value records messages and answers every one with
// nil.
type Recorder struct {
	// Err, when not nil, answers each call: it gets the call's context and
	// the Call as recorded (with its Seq), and what it returns is what
	// Notify returns; it may block, honouring ctx, or panic. It is called
	// without the Recorder's lock, possibly from several goroutines at once,
	// so it must be safe for concurrent use. Set it before the first call
	// and do not change it afterwards.
	Err func(ctx context.Context, c Call) error

	log fake.Log[Call]
}

var _ notify.Notifier = (*Recorder)(nil)

// Notify records msg and returns what Err returns (nil without Err).
func (r *Recorder) Notify(ctx context.Context, msg notify.Message) error {
	msg = cloneMessage(msg)
	build := func(seq int) Call { return Call{Message: msg, Seq: seq} }
	return fake.Reply(ctx, r.Err, r.log.Record(msg.IdempotencyKey, build, cloneCall))
}

func cloneMessage(m notify.Message) notify.Message {
	m.Impact.Customers = slices.Clone(m.Impact.Customers)
	m.Impact.Data = slices.Clone(m.Impact.Data)
	m.Recommendations = slices.Clone(m.Recommendations)
	return m
}

// cloneCall copies what a Call shares: its message's slices.
func cloneCall(c Call) Call {
	c.Message = cloneMessage(c.Message)
	return c
}

// Calls returns every call recorded so far, in the order they arrived. The
// slice and its messages are copies.
func (r *Recorder) Calls() []Call { return r.log.Calls(cloneCall) }

// Messages returns every message handed to Notify, failed ones included,
// in order.
func (r *Recorder) Messages() []notify.Message {
	calls := r.Calls()
	out := make([]notify.Message, len(calls))
	for i, c := range calls {
		out[i] = c.Message
	}
	return out
}

// ByKey returns the messages grouped by IdempotencyKey, each group in
// order: the attempts of each notice.
func (r *Recorder) ByKey() map[string][]notify.Message {
	out := make(map[string][]notify.Message)
	for _, m := range r.Messages() {
		out[m.IdempotencyKey] = append(out[m.IdempotencyKey], m)
	}
	return out
}

// Count returns how many messages carried the idempotency key.
func (r *Recorder) Count(key string) int {
	return r.log.Count(func(c Call) bool { return c.Message.IdempotencyKey == key })
}

// Keys returns the distinct idempotency keys, in the order each was first
// seen.
func (r *Recorder) Keys() []string {
	return r.log.Distinct(func(c Call) string { return c.Message.IdempotencyKey })
}

// Recipients returns the IDs of the distinct recipients (Recipient.ID), in
// the order each was first seen.
func (r *Recorder) Recipients() []string {
	return r.log.Distinct(func(c Call) string { return c.Message.Recipient.ID })
}

// WaitCalls blocks until at least n calls have been recorded, and returns
// nil, or until ctx ends, and returns ctx.Err(). It lets a test wait for a
// call to start (to cancel a hanging one, say) without sleeping.
func (r *Recorder) WaitCalls(ctx context.Context, n int) error { return r.log.Wait(ctx, n) }

// kit builds the failing fakes on a Recorder.
var kit = fake.Kit[*Recorder, Call]{
	New:      func(a fake.Answer[Call]) *Recorder { return &Recorder{Err: a} },
	Seq:      func(c Call) int { return c.Seq },
	Injected: ErrInjected,
}

// FailN returns a Recorder whose calls fail with err (ErrInjected when err
// is nil) the first n times for each idempotency key, and succeed
// afterwards: each notice fails n attempts, then is delivered. Counting per
// key keeps concurrent deliveries independent. n <= 0 never fails.
func FailN(n int, err error) *Recorder { return kit.FailN(n, err) }

// FailAlways returns a Recorder whose every call fails with err
// (ErrInjected when err is nil); the error is not permanent, so it is
// retried until the delivery policy is spent.
func FailAlways(err error) *Recorder { return kit.FailAlways(err) }

// FailPermanent returns a Recorder whose every call fails with
// incident.Permanent(err) (ErrInjected when err is nil), as for an address
// that does not exist: it is not retried. errors.Is still finds err.
func FailPermanent(err error) *Recorder { return kit.FailPermanent(err) }

// Hang returns a Recorder whose every call blocks until its context ends
// and then returns ctx.Err(). It honours ctx, so no goroutine outlives the
// attempt's timeout; use it to test timeouts and cancellation.
func Hang() *Recorder { return kit.Hang() }

// Panic returns a Recorder whose every call panics with v, after it is
// recorded. notify.FanOut and the delivery policy recover the panic into an
// *incident.PanicError; a direct call panics in the caller.
func Panic(v any) *Recorder { return kit.Panic(v) }

// Flaky returns a Recorder whose calls fail with err (ErrInjected when err
// is nil) with probability p, drawn from a generator seeded with seed: the
// sequence of outcomes, in the order calls arrive, is the same for the same
// seed. Calls from several goroutines are safe; which of them gets which
// outcome then depends on their order. p <= 0 never fails; p >= 1 always
// does.
func Flaky(p float64, seed uint64, err error) *Recorder { return kit.Flaky(p, seed, err) }
