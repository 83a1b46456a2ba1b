// Package webhook delivers incident notices, and pages for the people on
// call, as signed HTTP POSTs following the Standard Webhooks specification
// 1.0 (standardwebhooks.com), and lets a receiver check them: [New] builds
// the [Notifier] a playbook routes notices (and pages) through; [Verify] is
// the receiver's side.
//
// A Notifier makes one request per Notify or Page call and does not retry:
// the delivery policy of the orchestrator (an [incident.Policy]) is the one
// retry layer. Notify and Page say how a failure should be retried: a 429 or 503 answer
// with a Retry-After header is marked with [incident.RetryAfter], so the
// policy waits as long as the receiver asked; other 5xx, 408, 429 and
// network errors are retryable after the policy's backoff; any other answer
// is marked [incident.Permanent].
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/notify/internal/httpout"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// The webhook follows the Standard Webhooks specification 1.0
// (standardwebhooks.com), so that a receiver can verify our deliveries with
// that specification's libraries in any language, or with Verify.
const (
	// DefaultEventType is the payload's "type" unless WithEventType
	// sets another.
	DefaultEventType = "incident.customer_notice"
	// PageEventType is the "type" of a page's payload (see Page).
	PageEventType = "incident.page"
	// DefaultTolerance is how far a delivery's webhook-timestamp may
	// be from the receiver's clock when Verify is given no tolerance.
	DefaultTolerance = 5 * time.Minute
	// MinKeyLen is the shortest HMAC key ParseSecret accepts,
	// in bytes: the specification's lower bound of 24 bytes (192 bits).
	MinKeyLen = 24

	secretPrefix = "whsec_"
	sigVersion   = "v1"
	// maxErrorBody is how much of a failed response's body an *HTTPError
	// keeps; maxDrain is how much more is read so the connection is reused.
	maxErrorBody = 512
	maxDrain     = 64 << 10
)

// The errors of webhooks. Each is wrapped with details; test with errors.Is.
var (
	// ErrSecret: a secret that is not "whsec_" followed by the
	// standard base64 of a key of at least MinKeyLen bytes.
	ErrSecret = errors.New("webhook: invalid secret")
	// ErrURL: a webhook URL that is not an absolute http or https URL.
	ErrURL = errors.New("webhook: invalid URL")
	// ErrHeader: a webhook-id, webhook-timestamp or
	// webhook-signature header that is missing or malformed.
	ErrHeader = errors.New("webhook: missing or malformed header")
	// ErrSignature: no signature in webhook-signature matches the
	// delivery; it was not sent with this secret, or was altered.
	ErrSignature = errors.New("webhook: signature does not match")
	// ErrTimestamp: a correctly signed delivery whose timestamp is
	// outside the tolerance: a replay, or clocks that disagree.
	ErrTimestamp = errors.New("webhook: timestamp outside tolerance")
)

// ParseSecret decodes a secret written as "whsec_" followed by the
// standard (padded) base64 of the key, and returns the key, which is the
// HMAC-SHA256 key of the signatures. A key shorter than MinKeyLen
// bytes is refused. The error matches ErrSecret and never contains the
// secret.
func ParseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it must start with %q", ErrSecret, secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not standard base64: %w", ErrSecret, secretPrefix, err)
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: the key is %d bytes; at least %d are needed", ErrSecret, len(key), MinKeyLen)
	}
	return key, nil
}

// GenerateSecret returns a new random secret with a 32-byte key, in
// the "whsec_" form that New and Verify take. Give it to the
// receiver over a secure channel.
func GenerateSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign returns the webhook-signature header value for a delivery:
// "v1," and the standard base64 of HMAC-SHA256(key, id + "." + timestamp +
// "." + body), the timestamp in decimal Unix seconds. key is the decoded
// secret (see ParseSecret).
func Sign(key []byte, id string, timestamp time.Time, body []byte) string {
	return sigVersion + "," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(timestamp.Unix(), 10), body))
}

func mac(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery for a receiver: that the webhook-id,
// webhook-timestamp and webhook-signature headers are present, that one of
// the space-separated signatures is a "v1" signature of the delivery with
// secret (several are allowed so a sender can rotate keys), and that the
// timestamp is within tolerance of now. Signatures are compared in constant
// time, over body exactly as received.
//
// A tolerance <= 0 means DefaultTolerance; a zero now means
// time.Now(). The error matches ErrSecret, ErrHeader,
// ErrSignature or ErrTimestamp. The signature is checked before
// the timestamp, so ErrTimestamp means an authentic delivery that is
// too old or too new. After a nil error the receiver should still drop a
// webhook-id it has seen before: deliveries are at least once.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id := header.Get("webhook-id")
	ts := header.Get("webhook-timestamp")
	sigs := header.Get("webhook-signature")
	switch {
	case id == "":
		return fmt.Errorf("%w: no webhook-id", ErrHeader)
	case ts == "":
		return fmt.Errorf("%w: no webhook-timestamp", ErrHeader)
	case sigs == "":
		return fmt.Errorf("%w: no webhook-signature", ErrHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return fmt.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrHeader, ts)
	}
	// The timestamp is signed as it was sent, not as we would format it.
	want := mac(key, id, ts, body)
	matched := false
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != sigVersion {
			continue // another scheme (such as v1a) or garbage
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return ErrSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if now.IsZero() {
		now = time.Now()
	}
	switch age := now.Sub(time.Unix(unix, 0)); {
	case age > tolerance:
		return fmt.Errorf("%w: sent %v ago, tolerance %v", ErrTimestamp, age, tolerance)
	case age < -tolerance:
		return fmt.Errorf("%w: sent %v in the future, tolerance %v", ErrTimestamp, -age, tolerance)
	}
	return nil
}

// Payload is the JSON body of a webhook delivery, in the
// specification's {type, timestamp, data} shape. It holds no credential:
// notify.Message has none. Receivers may decode it with encoding/json.
type Payload struct {
	// Type is the event type, DefaultEventType unless configured.
	Type string `json:"type"`
	// Timestamp is when the Notify call that made this delivery began; each
	// attempt (each call) has its own, as has its webhook-timestamp header.
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the notice in a Payload.
type Data struct {
	IncidentID string `json:"incident_id"`
	Kind       string `json:"kind"`
	// Severity is the severity's name, such as "high".
	Severity  string    `json:"severity"`
	Channel   string    `json:"channel"`
	Recipient Recipient `json:"recipient"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	HTML      string    `json:"html,omitempty"`
	Impact    Impact    `json:"impact"`
	// Recommendations is never null: an empty list when there are none.
	Recommendations []string `json:"recommendations"`
}

// Recipient is the customer a notice is for.
type Recipient struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Impact is what the incident exposed. It deliberately leaves out the
// list of affected customers, which a notice to one of them must not carry.
type Impact struct {
	Summary string `json:"summary,omitempty"`
	// Data is never null: an empty list when no category is known.
	Data []incident.DataCategory `json:"data"`
}

// NewPayload returns the payload a Notifier sends for msg, with the given
// event type and timestamp.
func NewPayload(eventType string, timestamp time.Time, msg notify.Message) Payload {
	return Payload{
		Type:      eventType,
		Timestamp: timestamp.UTC(),
		Data: Data{
			IncidentID: msg.IncidentID,
			Kind:       msg.Kind,
			Severity:   msg.Severity.String(),
			Channel:    msg.Channel,
			Recipient: Recipient{
				ID:    msg.Recipient.ID,
				Name:  msg.Recipient.Name,
				Email: msg.Recipient.Email,
			},
			Subject: msg.Subject,
			Text:    msg.Text,
			HTML:    msg.HTML,
			Impact: Impact{
				Summary: msg.Impact.Summary,
				Data:    append([]incident.DataCategory{}, msg.Impact.Data...),
			},
			Recommendations: append([]string{}, msg.Recommendations...),
		},
	}
}

// PagePayload is the JSON body of a page's delivery (see Page), in the
// specification's {type, timestamp, data} shape. It holds no credential.
// Receivers may decode it with encoding/json.
type PagePayload struct {
	// Type is PageEventType.
	Type string `json:"type"`
	// Timestamp is when the Page call that made this delivery began.
	Timestamp time.Time `json:"timestamp"`
	Data      PageData  `json:"data"`
}

// PageData is the page in a PagePayload: the fields of notify.Page. The
// page's idempotency key is the delivery's webhook-id header.
type PageData struct {
	// AlertKey names the alert across its trigger, repeats,
	// acknowledgement and resolution.
	AlertKey string `json:"alert_key"`
	// Action is "trigger", "acknowledge" or "resolve".
	Action     string `json:"action"`
	IncidentID string `json:"incident_id"`
	Kind       string `json:"kind"`
	// Severity is the severity's name, such as "high".
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	Title    string `json:"title"`
	Reason   string `json:"reason"`
	Needed   string `json:"needed"`
	// Deadline is left out when the page has none.
	Deadline time.Time `json:"deadline,omitzero"`
	// Link is left out when the page has none.
	Link      string `json:"link,omitempty"`
	Level     int    `json:"level"`
	Repeat    int    `json:"repeat"`
	Responder string `json:"responder"`
	// Attempt is the delivery attempt of the page, from 1.
	Attempt int `json:"attempt"`
}

// NewPagePayload returns the payload a Notifier sends for p, with the given
// timestamp.
func NewPagePayload(timestamp time.Time, p notify.Page) PagePayload {
	data := PageData{
		AlertKey:   p.AlertKey,
		Action:     string(p.Action),
		IncidentID: p.IncidentID,
		Kind:       p.Kind,
		Severity:   p.Severity.String(),
		Subject:    p.Subject,
		Title:      p.Title,
		Reason:     p.Reason,
		Needed:     p.Needed,
		Link:       p.Link,
		Level:      p.Level,
		Repeat:     p.Repeat,
		Responder:  p.Responder,
		Attempt:    p.Attempt,
	}
	if !p.Deadline.IsZero() {
		data.Deadline = p.Deadline.UTC()
	}
	return PagePayload{Type: PageEventType, Timestamp: timestamp.UTC(), Data: data}
}

// HTTPError is a webhook delivery that the receiver answered with a status
// other than 2xx. Notify and Page return it wrapped (and marked, see
// Notify); find it with errors.As.
type HTTPError struct {
	StatusCode int
	// RetryAfter is the wait the receiver asked for in its Retry-After
	// header (seconds or an HTTP date), or 0 when it gave none.
	RetryAfter time.Duration
	// Body is the start of the response body (at most 512 bytes), for the
	// error message.
	Body string
}

// Error returns "HTTP 503 Service Unavailable (retry after 2s): BODY", with
// the parts that are known.
func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	return b.String()
}

// Option configures a Notifier.
type Option func(*Notifier)

// WithClient sets the HTTP client. nil, and the default, is a client with a
// 10s timeout per request that does not follow redirects (a redirect is then
// answered as a permanent *HTTPError: a POST must not silently become a
// GET, nor its signed body go to another host). A client given here is used
// as it is.
func WithClient(c *http.Client) Option {
	return func(w *Notifier) {
		if c != nil {
			w.client = c
		}
	}
}

// WithClock sets the clock for the webhook-timestamp header, the payload's
// timestamp and HTTP dates in Retry-After. nil, and the default, is
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(w *Notifier) {
		if now != nil {
			w.now = now
		}
	}
}

// WithEventType sets the type of a notice's payload; "" keeps
// DefaultEventType. A page's is always PageEventType.
func WithEventType(eventType string) Option {
	return func(w *Notifier) {
		if eventType != "" {
			w.eventType = eventType
		}
	}
}

// Notifier is a notify.Notifier that POSTs each message as a Payload, and a
// notify.Pager that POSTs each page as a PagePayload, signed per the
// Standard Webhooks specification: headers webhook-id (the message's or
// page's idempotency key, the same on every attempt), webhook-timestamp and
// webhook-signature. Build one with New; the zero value is not usable. A
// Notifier is immutable and safe for concurrent use.
type Notifier struct {
	url       string
	key       []byte
	client    *http.Client
	now       func() time.Time
	eventType string
}

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Pager    = (*Notifier)(nil)
)

// New returns a Notifier that delivers to rawURL, an absolute http or https
// URL, signing with secret ("whsec_" + base64, see ParseSecret). The error
// matches ErrURL or ErrSecret; it never contains the secret.
func New(rawURL, secret string, opts ...Option) (*Notifier, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, which may carry a token: say what is
		// wrong without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: the URL does not parse: %v", ErrURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q is not an absolute http or https URL", ErrURL, u.Redacted())
	}
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	w := &Notifier{
		url:       rawURL,
		key:       key,
		now:       time.Now,
		eventType: DefaultEventType,
		client:    httpout.Client(),
	}
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

// Notify POSTs msg once as a Payload and returns nil on a 2xx answer. It
// does not retry: the caller's policy does (see the package doc), calling
// Notify again with the same msg.IdempotencyKey, which becomes the same
// webhook-id, so the receiver can drop a repeat.
//
// A failure says how to retry it:
//   - 429 or 503 with a Retry-After header (seconds or an HTTP date): an
//     *HTTPError marked with incident.RetryAfter for that delay;
//   - other 5xx, 408, 429 without Retry-After, and network errors:
//     retryable, after the policy's backoff;
//   - any other answer (other 4xx, 3xx), an idempotency key that cannot be
//     a webhook-id, a payload that cannot be encoded: permanent (see
//     incident.Permanent).
//
// When ctx ends, the request is cut and the error wraps ctx's cause.
// Errors leave out the URL, which may carry a token. An empty
// msg.IdempotencyKey gets a random webhook-id for this call only.
func (w *Notifier) Notify(ctx context.Context, msg notify.Message) error {
	id := msg.IdempotencyKey
	if id == "" {
		id = "msg_" + rand.Text()
	}
	if !validHeaderValue(id) {
		return incident.Permanent(fmt.Errorf("%w: the idempotency key is not a valid webhook-id", ErrHeader))
	}
	body, err := json.Marshal(NewPayload(w.eventType, w.now(), msg))
	if err != nil {
		return incident.Permanent(fmt.Errorf("webhook: encoding the payload: %w", err))
	}
	return w.deliver(ctx, id, body)
}

// Page POSTs p once as a PagePayload of type PageEventType, with
// p.IdempotencyKey as its webhook-id, and returns nil on a 2xx answer. It
// does not retry; a failure is classified as Notify's are. A page that
// fails p.Validate is a permanent error matching notify.ErrInvalidPage,
// and an idempotency key that cannot be a webhook-id (visible ASCII
// without spaces) a permanent one matching ErrHeader; neither is sent.
//
// When ctx ends, the request is cut and the error wraps ctx's cause.
// Errors leave out the URL, which may carry a token.
func (w *Notifier) Page(ctx context.Context, p notify.Page) error {
	if err := p.Validate(); err != nil {
		return incident.Permanent(fmt.Errorf("webhook: %w", err))
	}
	if !validHeaderValue(p.IdempotencyKey) {
		return incident.Permanent(fmt.Errorf("%w: the idempotency key is not a valid webhook-id", ErrHeader))
	}
	body, err := json.Marshal(NewPagePayload(w.now(), p))
	if err != nil {
		return incident.Permanent(fmt.Errorf("webhook: encoding the payload: %w", err))
	}
	return w.deliver(ctx, p.IdempotencyKey, body)
}

// deliver posts body as delivery id, unless ctx has ended, and names the
// package and ctx's cause in the error.
func (w *Notifier) deliver(ctx context.Context, id string, body []byte) error {
	return httpout.Deliver(ctx, "webhook", func(ctx context.Context) error { return w.post(ctx, id, body) })
}

// post makes one request and classifies its failure (see Notify).
func (w *Notifier) post(ctx context.Context, id string, body []byte) error {
	now := w.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return incident.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(w.key, id, now, body))
	resp, err := w.client.Do(req)
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
		Body:       strings.TrimSpace(strings.ToValidUTF8(string(snippet), "")),
	}
	return httpout.Classify(he, resp.StatusCode, he.RetryAfter)
}

// validHeaderValue reports whether s is visible ASCII without spaces.
func validHeaderValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
