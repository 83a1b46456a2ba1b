package notify

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

	"github.com/breachkit/breach/incident"
)

// The webhook follows the Standard Webhooks specification 1.0
// (standardwebhooks.com), so that a receiver can verify our deliveries with
// that specification's libraries in any language, or with VerifyWebhook.
const (
	// DefaultWebhookEventType is the payload's "type" unless WithEventType
	// sets another.
	DefaultWebhookEventType = "incident.customer_notice"
	// DefaultWebhookTolerance is how far a delivery's webhook-timestamp may
	// be from the receiver's clock when VerifyWebhook is given no tolerance.
	DefaultWebhookTolerance = 5 * time.Minute
	// MinWebhookKeyLen is the shortest HMAC key ParseWebhookSecret accepts,
	// in bytes: the specification's lower bound of 24 bytes (192 bits).
	MinWebhookKeyLen = 24

	webhookSecretPrefix = "whsec_"
	webhookSigVersion   = "v1"
	// maxErrorBody is how much of a failed response's body an *HTTPError
	// keeps; maxDrain is how much more is read so the connection is reused.
	maxErrorBody = 512
	maxDrain     = 64 << 10
)

// The errors of webhooks. Each is wrapped with details; test with errors.Is.
var (
	// ErrWebhookSecret: a secret that is not "whsec_" followed by the
	// standard base64 of a key of at least MinWebhookKeyLen bytes.
	ErrWebhookSecret = errors.New("notify: invalid webhook secret")
	// ErrWebhookURL: a webhook URL that is not an absolute http or https URL.
	ErrWebhookURL = errors.New("notify: invalid webhook URL")
	// ErrWebhookHeader: a webhook-id, webhook-timestamp or
	// webhook-signature header that is missing or malformed.
	ErrWebhookHeader = errors.New("notify: missing or malformed webhook header")
	// ErrWebhookSignature: no signature in webhook-signature matches the
	// delivery; it was not sent with this secret, or was altered.
	ErrWebhookSignature = errors.New("notify: webhook signature does not match")
	// ErrWebhookTimestamp: a correctly signed delivery whose timestamp is
	// outside the tolerance: a replay, or clocks that disagree.
	ErrWebhookTimestamp = errors.New("notify: webhook timestamp outside tolerance")
)

// ParseWebhookSecret decodes a secret written as "whsec_" followed by the
// standard (padded) base64 of the key, and returns the key, which is the
// HMAC-SHA256 key of the signatures. A key shorter than MinWebhookKeyLen
// bytes is refused. The error matches ErrWebhookSecret and never contains the
// secret.
func ParseWebhookSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it must start with %q", ErrWebhookSecret, webhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not standard base64: %w", ErrWebhookSecret, webhookSecretPrefix, err)
	}
	if len(key) < MinWebhookKeyLen {
		return nil, fmt.Errorf("%w: the key is %d bytes; at least %d are needed", ErrWebhookSecret, len(key), MinWebhookKeyLen)
	}
	return key, nil
}

// GenerateWebhookSecret returns a new random secret with a 32-byte key, in
// the "whsec_" form that NewWebhook and VerifyWebhook take. Give it to the
// receiver over a secure channel.
func GenerateWebhookSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// SignWebhook returns the webhook-signature header value for a delivery:
// "v1," and the standard base64 of HMAC-SHA256(key, id + "." + timestamp +
// "." + body), the timestamp in decimal Unix seconds. key is the decoded
// secret (see ParseWebhookSecret).
func SignWebhook(key []byte, id string, timestamp time.Time, body []byte) string {
	return webhookSigVersion + "," + base64.StdEncoding.EncodeToString(webhookMAC(key, id, strconv.FormatInt(timestamp.Unix(), 10), body))
}

func webhookMAC(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a delivery for a receiver: that the webhook-id,
// webhook-timestamp and webhook-signature headers are present, that one of
// the space-separated signatures is a "v1" signature of the delivery with
// secret (several are allowed so a sender can rotate keys), and that the
// timestamp is within tolerance of now. Signatures are compared in constant
// time, over body exactly as received.
//
// A tolerance <= 0 means DefaultWebhookTolerance; a zero now means
// time.Now(). The error matches ErrWebhookSecret, ErrWebhookHeader,
// ErrWebhookSignature or ErrWebhookTimestamp. The signature is checked before
// the timestamp, so ErrWebhookTimestamp means an authentic delivery that is
// too old or too new. After a nil error the receiver should still drop a
// webhook-id it has seen before: deliveries are at least once.
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseWebhookSecret(secret)
	if err != nil {
		return err
	}
	id := header.Get("webhook-id")
	ts := header.Get("webhook-timestamp")
	sigs := header.Get("webhook-signature")
	switch {
	case id == "":
		return fmt.Errorf("%w: no webhook-id", ErrWebhookHeader)
	case ts == "":
		return fmt.Errorf("%w: no webhook-timestamp", ErrWebhookHeader)
	case sigs == "":
		return fmt.Errorf("%w: no webhook-signature", ErrWebhookHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return fmt.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrWebhookHeader, ts)
	}
	// The timestamp is signed as it was sent, not as we would format it.
	want := webhookMAC(key, id, ts, body)
	matched := false
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != webhookSigVersion {
			continue // another scheme (such as v1a) or garbage
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return ErrWebhookSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if now.IsZero() {
		now = time.Now()
	}
	switch age := now.Sub(time.Unix(unix, 0)); {
	case age > tolerance:
		return fmt.Errorf("%w: sent %v ago, tolerance %v", ErrWebhookTimestamp, age, tolerance)
	case age < -tolerance:
		return fmt.Errorf("%w: sent %v in the future, tolerance %v", ErrWebhookTimestamp, -age, tolerance)
	}
	return nil
}

// WebhookPayload is the JSON body of a webhook delivery, in the
// specification's {type, timestamp, data} shape. It holds no credential:
// Message has none. Receivers may decode it with encoding/json.
type WebhookPayload struct {
	// Type is the event type, DefaultWebhookEventType unless configured.
	Type string `json:"type"`
	// Timestamp is when the Notify call that made this delivery began (the
	// same on each of its tries; the webhook-timestamp header is each try's).
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is the notice in a WebhookPayload.
type WebhookData struct {
	IncidentID string `json:"incident_id"`
	Kind       string `json:"kind"`
	// Severity is the severity's name, such as "high".
	Severity  string           `json:"severity"`
	Channel   string           `json:"channel"`
	Recipient WebhookRecipient `json:"recipient"`
	Subject   string           `json:"subject"`
	Text      string           `json:"text"`
	HTML      string           `json:"html,omitempty"`
	Impact    WebhookImpact    `json:"impact"`
	// Recommendations is never null: an empty list when there are none.
	Recommendations []string `json:"recommendations"`
}

// WebhookRecipient is the customer a notice is for.
type WebhookRecipient struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// WebhookImpact is what the incident exposed. It deliberately leaves out the
// list of affected customers, which a notice to one of them must not carry.
type WebhookImpact struct {
	Summary string `json:"summary,omitempty"`
	// Data is never null: an empty list when no category is known.
	Data []incident.DataCategory `json:"data"`
}

// NewWebhookPayload returns the payload Webhook sends for msg, with the given
// event type and timestamp.
func NewWebhookPayload(eventType string, timestamp time.Time, msg Message) WebhookPayload {
	return WebhookPayload{
		Type:      eventType,
		Timestamp: timestamp.UTC(),
		Data: WebhookData{
			IncidentID: msg.IncidentID,
			Kind:       msg.Kind,
			Severity:   msg.Severity.String(),
			Channel:    msg.Channel,
			Recipient: WebhookRecipient{
				ID:    msg.Recipient.ID,
				Name:  msg.Recipient.Name,
				Email: msg.Recipient.Email,
			},
			Subject: msg.Subject,
			Text:    msg.Text,
			HTML:    msg.HTML,
			Impact: WebhookImpact{
				Summary: msg.Impact.Summary,
				Data:    append([]incident.DataCategory{}, msg.Impact.Data...),
			},
			Recommendations: append([]string{}, msg.Recommendations...),
		},
	}
}

// HTTPError is a webhook delivery that the receiver answered with a status
// other than 2xx. Notify returns it wrapped; find it with errors.As.
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

// WebhookRetry says how one Webhook.Notify call retries. Every zero field has
// a documented default. These tries are within one attempt of the delivery
// policy (incident.Policy), which may call Notify again with the same
// idempotency key; the receiver dedupes on webhook-id.
type WebhookRetry struct {
	// Tries is the most HTTP requests one Notify call makes, the first
	// included. 0 means 3; 1 means no retry within the call.
	Tries int
	// Backoff is the wait before the second try when the receiver gave no
	// Retry-After; it doubles for each try after, up to MaxWait, jittered
	// by ±20%. 0 means 1s.
	Backoff time.Duration
	// MaxWait caps any one wait, jitter included. A Retry-After longer than
	// MaxWait is honoured by not retrying within the call: Notify returns
	// the retryable *HTTPError, with its RetryAfter, at once. 0 means 10s.
	MaxWait time.Duration
}

func (r WebhookRetry) defaults() WebhookRetry {
	if r.Tries <= 0 {
		r.Tries = 3
	}
	if r.Backoff <= 0 {
		r.Backoff = time.Second
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 10 * time.Second
	}
	r.MaxWait = max(r.MaxWait, r.Backoff)
	return r
}

// WebhookOption configures a Webhook.
type WebhookOption func(*Webhook)

// WithHTTPClient sets the HTTP client. nil, and the default, is a client
// with a 10s timeout per request that does not follow redirects (a redirect
// is then answered as a permanent *HTTPError: a POST must not silently
// become a GET, nor its signed body go to another host). A client given here
// is used as it is.
func WithHTTPClient(c *http.Client) WebhookOption {
	return func(w *Webhook) {
		if c != nil {
			w.client = c
		}
	}
}

// WithClock sets the clock for the webhook-timestamp header, the payload's
// timestamp and HTTP dates in Retry-After. nil, and the default, is time.Now.
// Waits between tries use the runtime's timers, not this clock.
func WithClock(now func() time.Time) WebhookOption {
	return func(w *Webhook) {
		if now != nil {
			w.now = now
		}
	}
}

// WithRetry sets how one Notify call retries; see WebhookRetry.
func WithRetry(r WebhookRetry) WebhookOption {
	return func(w *Webhook) { w.retry = r.defaults() }
}

// WithEventType sets the payload's type; "" keeps DefaultWebhookEventType.
func WithEventType(eventType string) WebhookOption {
	return func(w *Webhook) {
		if eventType != "" {
			w.eventType = eventType
		}
	}
}

// Webhook is a Notifier that POSTs each message as a WebhookPayload signed
// per the Standard Webhooks specification: headers webhook-id (the message's
// idempotency key, the same on every try and every attempt), webhook-timestamp
// and webhook-signature. Build one with NewWebhook; the zero value is not
// usable. A Webhook is immutable and safe for concurrent use.
type Webhook struct {
	url       string
	key       []byte
	client    *http.Client
	now       func() time.Time
	retry     WebhookRetry
	eventType string
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook returns a Webhook that delivers to rawURL, an absolute http or
// https URL, signing with secret ("whsec_" + base64, see
// ParseWebhookSecret). The error matches ErrWebhookURL or ErrWebhookSecret;
// it never contains the secret.
func NewWebhook(rawURL, secret string, opts ...WebhookOption) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWebhookURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q is not an absolute http or https URL", ErrWebhookURL, u.Redacted())
	}
	key, err := ParseWebhookSecret(secret)
	if err != nil {
		return nil, err
	}
	w := &Webhook{
		url:       rawURL,
		key:       key,
		now:       time.Now,
		retry:     WebhookRetry{}.defaults(),
		eventType: DefaultWebhookEventType,
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

// Notify POSTs msg as a WebhookPayload and returns nil on a 2xx answer.
//
// Within the call it retries network errors and answers 408, 429 and 5xx,
// per its WebhookRetry: it waits as long as a Retry-After header asks, or
// its backoff otherwise, and returns at once (with the last, retryable,
// error) rather than wait past ctx's deadline or MaxWait. Every try carries
// the same webhook-id and body, with a fresh timestamp and signature. Any
// other answer (other 4xx, 3xx) is a permanent *HTTPError (see Permanent).
// When ctx ends, Notify stops and returns an error that wraps ctx's cause.
// Errors leave out the URL, which may carry a token. An empty
// msg.IdempotencyKey gets a random webhook-id for this call only.
func (w *Webhook) Notify(ctx context.Context, msg Message) error {
	id := msg.IdempotencyKey
	if id == "" {
		id = "msg_" + rand.Text()
	}
	if !validHeaderValue(id) {
		return Permanent(fmt.Errorf("notify: webhook: %w: the idempotency key is not a valid webhook-id", ErrWebhookHeader))
	}
	body, err := json.Marshal(NewWebhookPayload(w.eventType, w.now(), msg))
	if err != nil {
		return Permanent(fmt.Errorf("notify: webhook: encoding the payload: %w", err))
	}
	for try := 1; ; try++ {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("notify: webhook: before try %d: %w", try, cause)
		}
		err := w.post(ctx, id, body)
		if err == nil {
			return nil
		}
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("notify: webhook: try %d: %w: %w", try, cause, err)
		}
		if incident.IsPermanent(err) {
			return fmt.Errorf("notify: webhook: %w", err)
		}
		if try >= w.retry.Tries {
			return fmt.Errorf("notify: webhook: gave up after %d tries: %w", try, err)
		}
		var wait time.Duration
		if he := (*HTTPError)(nil); errors.As(err, &he) && he.RetryAfter > 0 {
			if he.RetryAfter > w.retry.MaxWait {
				return fmt.Errorf("notify: webhook: try %d; not waiting the %v asked for (more than %v): %w", try, he.RetryAfter, w.retry.MaxWait, err)
			}
			wait = he.RetryAfter
		} else {
			wait = min(incident.Policy{Backoff: w.retry.Backoff, MaxBackoff: w.retry.MaxWait}.Delay(try), w.retry.MaxWait)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return fmt.Errorf("notify: webhook: try %d; the deadline comes before the next try: %w", try, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("notify: webhook: waiting after try %d: %w: %w", try, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// post makes one try. Its error is retryable unless marked Permanent.
func (w *Webhook) post(ctx context.Context, id string, body []byte) error {
	now := w.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", SignWebhook(w.key, id, now, body))
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
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		Body:       strings.TrimSpace(strings.ToValidUTF8(string(snippet), "")),
	}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode >= 500:
		return he
	default:
		return Permanent(he)
	}
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// It returns 0 for an absent or malformed value or a date that has passed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
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
