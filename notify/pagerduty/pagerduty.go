// Package pagerduty pages on-call people through the PagerDuty Events API
// v2: [New] builds the [Pager] a playbook's escalation policy pages
// through.
//
// Each notify.Page becomes one event: a trigger opens (or adds to) the
// alert named by the page's AlertKey, which is the event's dedup_key, and
// an acknowledge or resolve event with the same key acknowledges or
// resolves it. A repeat or a later escalation level of the same need
// carries the same AlertKey, so PagerDuty adds it to the open alert and its
// own escalation policy decides whom to notify again.
//
// A Pager makes one request per Page call and does not retry: the delivery
// policy of the orchestrator (an [incident.Policy]) is the one retry layer.
// Page says how a failure should be retried: a 429, or a 503, with a
// Retry-After header is marked with [incident.RetryAfter]; other 5xx, 408,
// 429 and network errors are retryable after the policy's backoff; a 400
// (an event PagerDuty refuses) and any other answer are marked
// [incident.Permanent], as is a page that fails notify.Page.Validate.
//
// The routing key (the integration key) is a credential: it is sent only
// in the request body and never appears in an error, a log record or the
// Pager's printed form.
package pagerduty

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/breachkit/breach/notify/internal/httpout"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

const (
	// DefaultURL is the Events API v2 endpoint that New sends to.
	DefaultURL = "https://events.pagerduty.com/v2/enqueue"
	// EUURL is the endpoint of accounts in PagerDuty's EU service region;
	// pass it to WithURL.
	EUURL = "https://events.eu.pagerduty.com/v2/enqueue"
	// DefaultSource is the payload's source unless WithSource sets another.
	DefaultSource = "breach"
	// MaxSummaryLen is the longest summary PagerDuty accepts, in
	// characters. A longer title is cut, ending in "…", to at most this
	// many bytes, so that it fits however PagerDuty counts.
	MaxSummaryLen = 1024
	// MaxDedupKeyLen is the longest dedup_key PagerDuty accepts. A longer
	// AlertKey is sent as "sha256:" and its hex SHA-256, which is the same
	// for every page of the alert.
	MaxDedupKeyLen = 255
	// maxDetailLen caps each free-text custom detail (reason, needed), in
	// bytes, well inside the API's 512 KB limit on an event.
	maxDetailLen = 8 << 10
	// maxErrorBody is how much of a failed response's body an *HTTPError
	// keeps; maxDrain is how much more is read so the connection is reused.
	maxErrorBody = 2 << 10
	maxDrain     = 64 << 10
)

// The errors of New. Each is wrapped with details; test with errors.Is.
var (
	// ErrRoutingKey: an empty routing key, or one with spaces or control
	// characters in it.
	ErrRoutingKey = errors.New("pagerduty: invalid routing key")
	// ErrURL: an endpoint that is not an absolute http or https URL.
	ErrURL = errors.New("pagerduty: invalid URL")
)

// HTTPError is an event that PagerDuty answered with a status other than
// 2xx. Page returns it wrapped (and marked, see Page); find it with
// errors.As. It never holds the routing key: should the answer quote it,
// it is replaced by incident.Redacted.
type HTTPError struct {
	StatusCode int
	// RetryAfter is the wait PagerDuty asked for in a Retry-After header
	// (seconds or an HTTP date), or 0 when it gave none.
	RetryAfter time.Duration
	// Message is the answer's "message" ("Event object is invalid"), or
	// the start of its body when it is not the API's JSON.
	Message string
	// Errors are the answer's "errors": what is wrong with the event.
	Errors []string
}

// Error returns "HTTP 400 Bad Request: MESSAGE: ERROR; ERROR", with the
// parts that are known.
func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Errors) > 0 {
		b.WriteString(": " + strings.Join(e.Errors, "; "))
	}
	return b.String()
}

// Option configures a Pager.
type Option func(*Pager)

// WithURL sets the endpoint: EUURL, or a test receiver. New refuses one
// that is not an absolute http or https URL. "" keeps DefaultURL.
func WithURL(endpoint string) Option {
	return func(p *Pager) {
		if endpoint != "" {
			p.url = endpoint
		}
	}
}

// WithClient sets the HTTP client. nil, and the default, is a client with a
// 10s timeout per request that does not follow redirects (a redirect is
// then answered as a permanent *HTTPError: the event and its routing key
// must not go to another host). A client given here is used as it is.
func WithClient(c *http.Client) Option {
	return func(p *Pager) {
		if c != nil {
			p.client = c
		}
	}
}

// WithClock sets the clock for the payload's timestamp and for HTTP dates
// in Retry-After. nil, and the default, is time.Now.
func WithClock(now func() time.Time) Option {
	return func(p *Pager) {
		if now != nil {
			p.now = now
		}
	}
}

// WithSource sets the payload's source, "the unique location of the
// affected system": the host's service name, say. "" keeps DefaultSource.
func WithSource(source string) Option {
	return func(p *Pager) {
		if source != "" {
			p.source = source
		}
	}
}

// WithMonitoringClient sets the event's client and client_url, which
// PagerDuty shows as the tool that sent the alert and links to: the host's
// incident console, say. Either may be "", and is then left out.
func WithMonitoringClient(name, clientURL string) Option {
	return func(p *Pager) {
		p.clientName, p.clientURL = name, clientURL
	}
}

// Pager is a notify.Pager that sends each page to the PagerDuty Events API
// v2 as one event. Build one with New; the zero value is not usable. A
// Pager is immutable and safe for concurrent use. It prints, and logs with
// log/slog, without its routing key.
type Pager struct {
	url        string
	key        incident.Secret
	client     *http.Client
	now        func() time.Time
	source     string
	clientName string
	clientURL  string
}

var (
	_ notify.Pager   = (*Pager)(nil)
	_ slog.LogValuer = Pager{}
	_ fmt.Formatter  = Pager{}
)

// New returns a Pager that sends events with routingKey, the integration
// key of an Events API v2 integration (32 characters; New checks only that
// it is one word, and PagerDuty answers a malformed key with 400, which
// Page reports as permanent). The error matches ErrRoutingKey or ErrURL;
// it never contains the key.
func New(routingKey string, opts ...Option) (*Pager, error) {
	if routingKey == "" || strings.ContainsFunc(routingKey, func(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }) {
		return nil, fmt.Errorf("%w: it must be non-empty, without spaces or control characters", ErrRoutingKey)
	}
	p := &Pager{
		url:    DefaultURL,
		key:    incident.NewSecret(routingKey),
		now:    time.Now,
		source: DefaultSource,
		client: httpout.Client(),
	}
	for _, o := range opts {
		o(p)
	}
	u, err := url.Parse(p.url)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: not an absolute http or https URL", ErrURL)
	}
	return p, nil
}

// String returns "pagerduty.Pager(URL, routing key [REDACTED])".
func (p Pager) String() string {
	return "pagerduty.Pager(" + redactURL(p.url) + ", routing key " + incident.Redacted + ")"
}

// GoString returns String, so %#v does not show the routing key either.
func (p Pager) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Pager) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// LogValue makes log/slog record the endpoint and source, and the routing
// key as incident.Redacted.
func (p Pager) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(p.url)),
		slog.String("source", p.source),
		slog.String("routing_key", incident.Redacted),
	)
}

// event is the JSON body of an Events API v2 alert event. For acknowledge
// and resolve only routing_key, event_action and dedup_key are sent.
type event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"`
	DedupKey    string   `json:"dedup_key"`
	Payload     *payload `json:"payload,omitempty"`
	Links       []link   `json:"links,omitempty"`
	Client      string   `json:"client,omitempty"`
	ClientURL   string   `json:"client_url,omitempty"`
}

// payload is a trigger event's payload, in PagerDuty's Common Event Format.
type payload struct {
	Summary       string  `json:"summary"`
	Source        string  `json:"source"`
	Severity      string  `json:"severity"`
	Timestamp     string  `json:"timestamp"`
	Component     string  `json:"component,omitempty"`
	Group         string  `json:"group,omitempty"`
	Class         string  `json:"class,omitempty"`
	CustomDetails details `json:"custom_details"`
}

// details is what the person needs to know beyond the summary.
type details struct {
	IncidentID string `json:"incident_id"`
	Kind       string `json:"kind,omitempty"`
	Severity   string `json:"severity"`
	Subject    string `json:"subject,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Needed     string `json:"needed,omitempty"`
	Deadline   string `json:"deadline,omitempty"`
	Level      int    `json:"level,omitempty"`
	Repeat     int    `json:"repeat,omitempty"`
	Responder  string `json:"responder,omitempty"`
	Link       string `json:"link,omitempty"`
}

type link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// Severity returns PagerDuty's severity for s: critical for
// SeverityCritical, error for SeverityHigh, warning for SeverityMedium,
// info for SeverityLow. An unknown or out-of-range severity is "error", so
// that an incident nobody ranked still pages with high urgency.
func Severity(s incident.Severity) string {
	switch s {
	case incident.SeverityCritical:
		return "critical"
	case incident.SeverityHigh:
		return "error"
	case incident.SeverityMedium:
		return "warning"
	case incident.SeverityLow:
		return "info"
	}
	return "error"
}

// event builds the body Page sends for pg, which is valid.
func (p *Pager) event(pg notify.Page) event {
	ev := event{
		RoutingKey:  p.key.Reveal(),
		EventAction: string(pg.Action),
		DedupKey:    dedupKey(pg.AlertKey),
	}
	if pg.Action != notify.PageTrigger {
		return ev
	}
	summary := pg.Title
	if strings.TrimSpace(summary) == "" {
		summary = "Incident " + pg.IncidentID
		if pg.Kind != "" {
			summary += " (" + pg.Kind + ", " + pg.Severity.String() + ")"
		}
		summary += " needs a person"
	}
	d := details{
		IncidentID: pg.IncidentID,
		Kind:       pg.Kind,
		Severity:   pg.Severity.String(),
		Subject:    pg.Subject,
		Reason:     truncate(pg.Reason, maxDetailLen),
		Needed:     truncate(pg.Needed, maxDetailLen),
		Level:      pg.Level,
		Repeat:     pg.Repeat,
		Responder:  pg.Responder,
		Link:       pg.Link,
	}
	if !pg.Deadline.IsZero() {
		d.Deadline = pg.Deadline.UTC().Format(time.RFC3339)
	}
	ev.Payload = &payload{
		Summary:       truncate(summary, MaxSummaryLen),
		Source:        p.source,
		Severity:      Severity(pg.Severity),
		Timestamp:     p.now().UTC().Format(time.RFC3339),
		Component:     pg.Subject,
		Group:         pg.IncidentID,
		Class:         pg.Kind,
		CustomDetails: d,
	}
	if isWebURL(pg.Link) {
		ev.Links = []link{{Href: pg.Link, Text: "Incident " + pg.IncidentID}}
	}
	ev.Client, ev.ClientURL = p.clientName, p.clientURL
	return ev
}

// Page sends pg as one event and returns nil when PagerDuty accepts it
// (202, or any 2xx). It does not retry: the caller's policy does (see the
// package doc).
//
// The event is a JSON object with routing_key, event_action (pg.Action)
// and dedup_key (pg.AlertKey, hashed when longer than MaxDedupKeyLen). A
// trigger also has:
//   - payload: summary (pg.Title, or "Incident ID (KIND, SEVERITY) needs a
//     person" when it is empty, cut to MaxSummaryLen), source (see
//     WithSource), severity (see Severity), timestamp (the clock's time, RFC
//     3339), component (pg.Subject), group (pg.IncidentID), class (pg.Kind)
//     and custom_details: incident_id, kind, severity (breach's name),
//     subject, reason and needed (each cut to 8 KiB), deadline (RFC 3339,
//     UTC), level, repeat, responder and link, each left out when empty;
//   - links: [{href: pg.Link, text}] when pg.Link is an absolute http or
//     https URL;
//   - client and client_url, when WithMonitoringClient set them.
//
// PagerDuty has no idempotency key: a trigger sent twice adds a second
// log entry to the same open alert (the dedup_key is the same), and an
// acknowledge or resolve sent twice changes nothing.
//
// A failure says how to retry it:
//   - a page that fails pg.Validate: permanent, matching
//     notify.ErrInvalidPage; nothing is sent;
//   - 429, or 503, with a Retry-After header: an *HTTPError marked with
//     incident.RetryAfter for that delay;
//   - other 5xx, 408, 429 without Retry-After, and network errors:
//     retryable, after the policy's backoff;
//   - 400 (an event PagerDuty refuses, such as a malformed routing key) and
//     any other answer: permanent (see incident.Permanent).
//
// When ctx ends, the request is cut and the error wraps ctx's cause.
// Errors never contain the routing key, nor the URL.
func (p *Pager) Page(ctx context.Context, pg notify.Page) error {
	if err := pg.Validate(); err != nil {
		return incident.Permanent(fmt.Errorf("pagerduty: %w", err))
	}
	body, err := json.Marshal(p.event(pg))
	if err != nil {
		return incident.Permanent(fmt.Errorf("pagerduty: encoding the event: %w", err))
	}
	return httpout.Deliver(ctx, "pagerduty", func(ctx context.Context) error { return p.post(ctx, body) })
}

// post makes one request and classifies its failure (see Page).
func (p *Pager) post(ctx context.Context, body []byte) error {
	now := p.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return incident.Permanent(errors.New("building the request failed"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		// *url.Error would print the URL; keep what went wrong.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			return fmt.Errorf("POST: %w", ue.Err)
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	he := &HTTPError{
		StatusCode: resp.StatusCode,
		RetryAfter: httpout.RetryAfter(resp.Header.Get("Retry-After"), now),
	}
	p.describe(he, snippet)
	return httpout.Classify(he, resp.StatusCode, he.RetryAfter)
}

// describe fills he's Message and Errors from a response body: the API's
// {"status", "message", "errors"} JSON, or else the body's text. The
// routing key is redacted from both.
func (p *Pager) describe(he *HTTPError, body []byte) {
	var answer struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	if json.Unmarshal(body, &answer) == nil && (answer.Message != "" || len(answer.Errors) > 0) {
		he.Message = p.clean(answer.Message)
		for _, e := range answer.Errors {
			he.Errors = append(he.Errors, p.clean(e))
		}
		return
	}
	he.Message = p.clean(string(body))
}

// clean makes s fit for an error message: valid UTF-8, trimmed, without
// the routing key.
func (p *Pager) clean(s string) string {
	s = strings.ToValidUTF8(s, "")
	if key := p.key.Reveal(); key != "" {
		s = strings.ReplaceAll(s, key, incident.Redacted)
	}
	return strings.TrimSpace(s)
}

// dedupKey returns k, or its hash when k is longer than PagerDuty allows.
func dedupKey(k string) string {
	if len(k) <= MaxDedupKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// truncate returns s when it has at most n bytes, or else its longest
// prefix of whole runes that leaves room for "…", followed by "…".
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// isWebURL reports whether s is an absolute http or https URL.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// redactURL returns rawURL without its user information and query, which
// may carry credentials.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return incident.Redacted
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
