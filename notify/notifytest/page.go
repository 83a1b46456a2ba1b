package notifytest

import (
	"context"

	"github.com/breachkit/breach/internal/fake"
	"github.com/breachkit/breach/notify"
)

// PageCall is one recorded call to Page.
type PageCall struct {
	Page notify.Page
	// Seq counts the PageRecorder's calls with the same Page.IdempotencyKey,
	// from 1: the first attempt of a page has Seq 1, its retry Seq 2.
	Seq int
}

// PageRecorder is a notify.Pager that records every page, then answers it
// with Err: the fake of an on-call service, as Recorder is of a notice
// channel.
//
// A PageRecorder is safe for concurrent use and must not be copied after
// first use. A call is recorded before Err is called, so a test sees a call
// that is still running; calls are recorded in the order they arrive,
// failed ones included. The zero value records pages and answers every one
// with nil.
type PageRecorder struct {
	// Err, when not nil, answers each call: it gets the call's context and
	// the PageCall as recorded (with its Seq), and what it returns is what
	// Page returns, so one function makes the fake succeed, fail (return
	// incident.Permanent or incident.RetryAfter errors to test how they are
	// handled), fail the first attempts of each page (by Seq), block
	// honouring ctx, or panic. It is called without the PageRecorder's
	// lock, possibly from several goroutines at once, so it must be safe for
	// concurrent use. Set it before the first call and do not change it
	// afterwards.
	Err func(ctx context.Context, c PageCall) error

	log fake.Log[PageCall]
}

var _ notify.Pager = (*PageRecorder)(nil)

// Page records p and returns what Err returns (nil without Err).
func (r *PageRecorder) Page(ctx context.Context, p notify.Page) error {
	build := func(seq int) PageCall { return PageCall{Page: p, Seq: seq} }
	return fake.Reply(ctx, r.Err, r.log.Record(p.IdempotencyKey, build, nil))
}

// Calls returns every call recorded so far, in the order they arrived, as
// a new slice.
func (r *PageRecorder) Calls() []PageCall { return r.log.Calls(nil) }

// Pages returns every page handed to Page, failed ones included, in order.
func (r *PageRecorder) Pages() []notify.Page {
	calls := r.Calls()
	out := make([]notify.Page, len(calls))
	for i, c := range calls {
		out[i] = c.Page
	}
	return out
}

// ByAlert returns the pages grouped by AlertKey, each group in order: the
// trigger, repeats, acknowledgement and resolution of each alert, with
// their retries.
func (r *PageRecorder) ByAlert() map[string][]notify.Page {
	out := make(map[string][]notify.Page)
	for _, p := range r.Pages() {
		out[p.AlertKey] = append(out[p.AlertKey], p)
	}
	return out
}

// Count returns how many pages carried the idempotency key: the attempts
// of one page.
func (r *PageRecorder) Count(key string) int {
	return r.log.Count(func(c PageCall) bool { return c.Page.IdempotencyKey == key })
}

// Keys returns the distinct idempotency keys, in the order each was first
// seen.
func (r *PageRecorder) Keys() []string {
	return r.log.Distinct(func(c PageCall) string { return c.Page.IdempotencyKey })
}

// AlertKeys returns the distinct alert keys, in the order each was first
// seen.
func (r *PageRecorder) AlertKeys() []string {
	return r.log.Distinct(func(c PageCall) string { return c.Page.AlertKey })
}

// WaitCalls blocks until at least n calls have been recorded, and returns
// nil, or until ctx ends, and returns ctx.Err(). It lets a test wait for a
// page to start (to cancel a hanging one, say) without sleeping.
func (r *PageRecorder) WaitCalls(ctx context.Context, n int) error { return r.log.Wait(ctx, n) }
