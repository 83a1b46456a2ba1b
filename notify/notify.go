// Package notify tells people about incidents: the affected customers, with
// what happened and what to do, and the responders on call.
//
// A host implements [Notifier] for each channel it delivers through (often
// with [Func]). The orchestrator renders one [Message] per recipient and
// channel from a [Template] and tracks each as a delivery with its own
// idempotency key. [FanOut] sends one message through several routes and
// reports every route's failure.
//
// Ready channels: [Chan] hands messages to a Go channel and [Log] writes an
// audit record with log/slog. Each wire protocol has its own package:
// notify/webhook posts signed JSON following the Standard Webhooks
// specification (and verifies it for receivers), notify/email sends MIME
// mail over SMTP with STARTTLS.
//
// Responders are paged, not notified: a [Page] says what a person is
// needed for and goes to a [Pager] (often [PagerFunc]). [LogPager] audits
// pages with log/slog; notify/pagerduty (Events API v2) and notify/slack
// (incoming webhooks) page on-call services, and the webhook and e-mail
// notifiers page too.
//
// A Notifier makes one attempt per call. The orchestrator's delivery policy
// (an [incident.Policy]) is the one retry layer: a Notifier marks an error
// with [incident.Permanent] when retrying is pointless, or with
// [incident.RetryAfter] when the receiver said when to try again.
package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

// Message is one notice to one recipient on one channel.
type Message struct {
	// IdempotencyKey is the same for every attempt to deliver this notice
	// (this incident, recipient and channel), across retries, restarts and
	// replicas. Pass it to the provider so that a repeat is dropped.
	IdempotencyKey string
	// Attempt is 1 for the first call and counts up on retries.
	Attempt int
	// Channel is the route's name, such as "email".
	Channel   string
	Recipient incident.Customer

	Subject string
	Text    string // plain-text body, always set
	HTML    string // HTML body, when the template has one

	IncidentID string
	Kind       string
	Severity   incident.Severity
	Impact     incident.Impact
	// Recommendations are the actions the recipient should take.
	Recommendations []string
}

func (m Message) clone() Message {
	m.Impact.Customers = slices.Clone(m.Impact.Customers)
	m.Impact.Data = slices.Clone(m.Impact.Data)
	m.Recommendations = slices.Clone(m.Recommendations)
	return m
}

// Notifier delivers a message.
//
// Notify must honour ctx (its deadline is the attempt's timeout), must be
// safe for concurrent use, and should pass msg.IdempotencyKey to its
// provider: a notice may be handed over more than once (at least once), and
// the key is how the receiving side drops the repeat. Notify makes one
// attempt and does not retry: a returned error is retried per the delivery
// policy unless it is marked with incident.Permanent, after the delay it
// carries when it is marked with incident.RetryAfter.
type Notifier interface {
	Notify(ctx context.Context, msg Message) error
}

// Func adapts a function to a Notifier.
type Func func(ctx context.Context, msg Message) error

// Notify calls f(ctx, msg).
func (f Func) Notify(ctx context.Context, msg Message) error { return f(ctx, msg) }

// Route is a named channel: "email", "webhook", "pager".
type Route struct {
	Channel  string
	Notifier Notifier
	// PerSecond, when positive, caps the messages sent through the
	// channel (every route of that Channel name, across incidents) at so
	// many a second, evenly spaced: a mail relay's quota. 0 is no limit.
	PerSecond float64
}

// RouteError is one route's failure inside a FanOut error.
type RouteError struct {
	Channel string
	Err     error
}

func (e *RouteError) Error() string { return fmt.Sprintf("notify: channel %q: %v", e.Channel, e.Err) }
func (e *RouteError) Unwrap() error { return e.Err }

// FanOut returns a Notifier that sends each message through every route at
// once, with msg.Channel set to the route's Channel. It waits for all of
// them and returns nil when all succeed, or every failure joined, each as a
// *RouteError. A route that panics is recovered into a
// *incident.PanicError. incident.IsPermanent reports true for the error only
// when every failed route's error is permanent.
func FanOut(routes ...Route) Notifier {
	routes = append([]Route(nil), routes...)
	return Func(func(ctx context.Context, msg Message) error {
		errs := make([]error, len(routes))
		var wg sync.WaitGroup
		for i, r := range routes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := msg.clone() // each route may keep its message
				m.Channel = r.Channel
				if err := retry.Call(ctx, 0, func(ctx context.Context) error { return r.Notifier.Notify(ctx, m) }); err != nil {
					errs[i] = &RouteError{Channel: r.Channel, Err: err}
				}
			}()
		}
		wg.Wait()
		// errors.Join drops the nil entries; the result is permanent (see
		// incident.IsPermanent) only when every failed route's error is.
		return errors.Join(errs...)
	})
}

// ValidateRoutes checks that each route has a Channel and a Notifier and
// that channels are unique. The error matches ErrInvalidRoute.
func ValidateRoutes(routes []Route) error {
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		switch {
		case r.Channel == "":
			return fmt.Errorf("%w: route %d has no channel", ErrInvalidRoute, i)
		case r.Notifier == nil:
			return fmt.Errorf("%w: channel %q has no notifier", ErrInvalidRoute, r.Channel)
		case seen[r.Channel]:
			return fmt.Errorf("%w: two routes for channel %q", ErrInvalidRoute, r.Channel)
		}
		seen[r.Channel] = true
	}
	return nil
}

// ErrInvalidRoute reports a route without a channel or notifier, or a
// channel listed twice.
var ErrInvalidRoute = errors.New("notify: invalid route")
