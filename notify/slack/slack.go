// Package slack pages on-call people in a chat channel through a
// Slack-compatible incoming webhook: [New] builds the [Pager] a playbook's
// escalation policy pages through.
//
// Each notify.Page becomes one message, laid out with Block Kit: a trigger
// says who is needed, what for and by when, with a button to the incident
// when the page has a Link; an acknowledgement or a resolution posts a
// short message saying so. Every value from the page is escaped (see
// Escape), so a title or a reason cannot mention @channel or smuggle in a
// link.
//
// A Pager makes one request per Page call and does not retry: the delivery
// policy of the orchestrator (an [incident.Policy]) is the one retry layer.
// Page says how a failure should be retried: a 429, or a 503, with a
// Retry-After header is marked with [incident.RetryAfter]; other 5xx, 408,
// 429 and network errors are retryable after the policy's backoff; 400
// (invalid_payload, invalid_blocks), 403, 404 (no_service,
// channel_not_found), 410 (channel_is_archived), any other answer and a
// page that fails notify.Page.Validate are marked [incident.Permanent].
//
// The webhook URL is a credential: whoever has it can post to the channel.
// It never appears in an error, a log record or the Pager's printed form,
// which show only its scheme and host.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/breachkit/breach/notify/internal/httpout"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// The limits of Block Kit that a message keeps to, in characters.
const (
	maxHeader     = 150  // a header block's plain_text
	maxSection    = 3000 // a section block's text
	maxField      = 2000 // each of a section's fields
	maxContext    = 3000 // a context block's mrkdwn element
	maxButtonText = 75
	maxButtonURL  = 3000
	maxFallback   = 3000 // the message's text: Slack truncates very long ones
	// maxErrorBody is how much of a failed response's body an *HTTPError
	// keeps; maxDrain is how much more is read so the connection is reused.
	maxErrorBody = 512
	maxDrain     = 64 << 10
)

// ErrURL is the error of New for a webhook URL that is not an absolute
// http or https URL. It is wrapped with details, never with the URL; test
// with errors.Is.
var ErrURL = errors.New("slack: invalid webhook URL")

// HTTPError is a message that the webhook answered with a status other
// than 2xx. Page returns it wrapped (and marked, see Page); find it with
// errors.As.
type HTTPError struct {
	StatusCode int
	// RetryAfter is the wait the service asked for in a Retry-After header
	// (seconds or an HTTP date), or 0 when it gave none.
	RetryAfter time.Duration
	// Body is the start of the response body (at most 512 bytes): Slack's
	// error code, such as "invalid_blocks" or "channel_is_archived".
	Body string
}

// Error returns "HTTP 404 Not Found: no_service", with the parts that are
// known.
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

// Option configures a Pager.
type Option func(*Pager)

// WithClient sets the HTTP client. nil, and the default, is a client with a
// 10s timeout per request that does not follow redirects (a redirect is
// then answered as a permanent *HTTPError). A client given here is used as
// it is.
func WithClient(c *http.Client) Option {
	return func(p *Pager) {
		if c != nil {
			p.client = c
		}
	}
}

// WithClock sets the clock for HTTP dates in Retry-After. nil, and the
// default, is time.Now.
func WithClock(now func() time.Time) Option {
	return func(p *Pager) {
		if now != nil {
			p.now = now
		}
	}
}

// Pager is a notify.Pager that posts each page as one message to an
// incoming webhook. Build one with New; the zero value is not usable. A
// Pager is immutable and safe for concurrent use. It prints, and logs with
// log/slog, with only the scheme and host of its webhook URL.
type Pager struct {
	url    incident.Secret
	origin string // scheme://host, which may be shown
	client *http.Client
	now    func() time.Time
}

var (
	_ notify.Pager   = (*Pager)(nil)
	_ slog.LogValuer = Pager{}
	_ fmt.Formatter  = Pager{}
)

// New returns a Pager that posts to webhookURL, an absolute http or https
// URL such as Slack's https://hooks.slack.com/services/T…/B…/…. The error
// matches ErrURL; it never contains the URL.
func New(webhookURL string, opts ...Option) (*Pager, error) {
	u, err := url.Parse(webhookURL)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not parse", ErrURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: not an absolute http or https URL", ErrURL)
	}
	p := &Pager{
		url:    incident.NewSecret(webhookURL),
		origin: u.Scheme + "://" + u.Host,
		now:    time.Now,
		client: httpout.Client(),
	}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// String returns "slack.Pager(https://hooks.slack.com/[REDACTED])".
func (p Pager) String() string { return "slack.Pager(" + p.origin + "/" + incident.Redacted + ")" }

// GoString returns String, so %#v does not show the URL either.
func (p Pager) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Pager) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// LogValue makes log/slog record the webhook's scheme and host, with the
// rest of its URL as incident.Redacted.
func (p Pager) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", p.origin+"/"+incident.Redacted))
}

// Escape returns s with Slack's control characters &, < and > replaced by
// &amp;, &lt; and &gt;, so that mrkdwn shows them as text instead of
// reading a mention (<!channel>), a link (<https://…|…>) or an entity.
func Escape(s string) string {
	return escaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Page posts pg as one message and returns nil on a 2xx answer (Slack's
// is 200 "ok"; other Slack-compatible services answer with other bodies,
// which are not read). It does not retry: the caller's policy does (see
// the package doc). Incoming webhooks take no idempotency key, so a page
// retried after an answer was lost may be posted twice.
//
// The message is JSON {text, blocks}: text, which notifications show, is
// the title and what is needed. For a trigger the blocks are a header with
// the title (plain text, at most 150 characters); a section with fields for
// the severity, kind, incident, subject, escalation (level, repeat,
// responder) and deadline, those that are set; a section with the reason
// and what is needed, when either is; a context with the alert key, the
// page's idempotency key and its attempt, after the first; and, when pg.Link is an absolute
// http or https URL, an actions block with a button that opens it. An
// acknowledgement or a resolution is a section saying so, the context and
// the button. Text is cut to the limits of Block Kit, ending in "…", and
// every value from pg is escaped (see Escape) in every text, plain_text
// included, as Slack's formatting reference asks of all text objects.
//
// A failure says how to retry it:
//   - a page that fails pg.Validate: permanent, matching
//     notify.ErrInvalidPage; nothing is sent;
//   - 429, or 503, with a Retry-After header: an *HTTPError marked with
//     incident.RetryAfter for that delay;
//   - other 5xx, 408, 429 without Retry-After, and network errors:
//     retryable, after the policy's backoff;
//   - 400 (invalid_payload, invalid_blocks), 403, 404 (no_service), 410
//     (channel_is_archived) and any other answer: permanent (see
//     incident.Permanent).
//
// When ctx ends, the request is cut and the error wraps ctx's cause.
// Errors never contain the webhook URL.
func (p *Pager) Page(ctx context.Context, pg notify.Page) error {
	if err := pg.Validate(); err != nil {
		return incident.Permanent(fmt.Errorf("slack: %w", err))
	}
	body, err := json.Marshal(build(pg))
	if err != nil {
		return incident.Permanent(fmt.Errorf("slack: encoding the message: %w", err))
	}
	return httpout.Deliver(ctx, "slack", func(ctx context.Context) error { return p.post(ctx, body) })
}

// post makes one request and classifies its failure (see Page).
func (p *Pager) post(ctx context.Context, body []byte) error {
	now := p.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return incident.Permanent(errors.New("building the request failed"))
	}
	req.Header.Set("Content-Type", "application/json")
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
		Body:       p.clean(string(snippet)),
	}
	return httpout.Classify(he, resp.StatusCode, he.RetryAfter)
}

// clean makes a response body fit for an error message: valid UTF-8,
// trimmed, without the webhook URL or its path, should the answer quote
// them.
func (p *Pager) clean(s string) string {
	s = strings.ToValidUTF8(s, "")
	raw := p.url.Reveal()
	s = strings.ReplaceAll(s, raw, incident.Redacted)
	if u, err := url.Parse(raw); err == nil && len(u.Path) > 1 {
		s = strings.ReplaceAll(s, u.Path, "/"+incident.Redacted)
	}
	return strings.TrimSpace(s)
}

// The Block Kit of a message, as much of it as Page uses.
type (
	message struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}
	block struct {
		Type     string    `json:"type"`
		Text     *text     `json:"text,omitempty"`
		Fields   []text    `json:"fields,omitempty"`
		Elements []element `json:"elements,omitempty"`
	}
	text struct {
		Type  string `json:"type"` // "plain_text" or "mrkdwn"
		Text  string `json:"text"`
		Emoji bool   `json:"emoji,omitempty"`
	}
	// element is a context block's mrkdwn element or an actions block's
	// button.
	element struct {
		Type     string `json:"type"`
		Text     any    `json:"text"` // a string for mrkdwn, *text for a button
		URL      string `json:"url,omitempty"`
		ActionID string `json:"action_id,omitempty"`
	}
)

func mrkdwn(s string) *text { return &text{Type: "mrkdwn", Text: s} }

// build lays out the message for pg, which is valid.
func build(pg notify.Page) message {
	incidentID := esc(pg.IncidentID, 200)
	title := strings.Join(strings.Fields(pg.Title), " ")
	var m message
	switch pg.Action {
	case notify.PageAcknowledge, notify.PageResolve:
		what, mark, next := "Acknowledged", ":eyes:", "A person took the alert; escalation stops."
		if pg.Action == notify.PageResolve {
			what, mark, next = "Resolved", ":white_check_mark:", "Nobody is needed any more."
		}
		head := what + ": incident " + incidentID
		m.Text = head
		section := mark + " *" + head + "*\n"
		if title != "" {
			m.Text += ": " + esc(title, maxFallback)
			section += esc(title, maxSection-200) + "\n"
		}
		m.Text = cutEscaped(m.Text, maxFallback)
		m.Blocks = append(m.Blocks, block{Type: "section", Text: mrkdwn(section + next)})
	default:
		if title == "" {
			title = "Incident " + pg.IncidentID + " needs a person"
		}
		m.Text = Escape(title)
		if pg.Needed != "" {
			m.Text += ": " + Escape(pg.Needed)
		}
		m.Text = cutEscaped(m.Text, maxFallback)
		m.Blocks = append(m.Blocks, block{Type: "header", Text: &text{Type: "plain_text", Text: esc(title, maxHeader), Emoji: true}})
		m.Blocks = append(m.Blocks, block{Type: "section", Fields: fields(pg, incidentID)})
		if pg.Reason != "" || pg.Needed != "" {
			var b strings.Builder
			if pg.Reason != "" {
				b.WriteString("*Why*\n" + esc(pg.Reason, maxSection/2-20))
			}
			if pg.Needed != "" {
				if b.Len() > 0 {
					b.WriteString("\n\n")
				}
				b.WriteString("*Needed*\n" + esc(pg.Needed, maxSection/2-20))
			}
			m.Blocks = append(m.Blocks, block{Type: "section", Text: mrkdwn(b.String())})
		}
	}
	ctx := "Alert " + esc(pg.AlertKey, 1000) + " · page " + esc(pg.IdempotencyKey, 1000)
	if pg.Attempt > 1 {
		ctx += " · attempt " + strconv.Itoa(pg.Attempt)
	}
	m.Blocks = append(m.Blocks, block{Type: "context", Elements: []element{{Type: "mrkdwn", Text: cutEscaped(ctx, maxContext)}}})
	if isWebURL(pg.Link) && utf8.RuneCountInString(pg.Link) <= maxButtonURL {
		m.Blocks = append(m.Blocks, block{Type: "actions", Elements: []element{{
			Type:     "button",
			Text:     &text{Type: "plain_text", Text: esc("Open incident "+pg.IncidentID, maxButtonText)},
			URL:      pg.Link,
			ActionID: "open_incident",
		}}})
	}
	return m
}

// fields returns a trigger's section fields: those of pg that are set.
func fields(pg notify.Page, incidentID string) []text {
	var out []text
	add := func(name, value string) {
		if value != "" {
			out = append(out, text{Type: "mrkdwn", Text: "*" + name + "*\n" + value})
		}
	}
	add("Severity", pg.Severity.String())
	add("Kind", esc(pg.Kind, maxField-20))
	add("Incident", incidentID)
	add("Subject", esc(pg.Subject, maxField-20))
	var level []string
	if pg.Level > 0 {
		l := "level " + strconv.Itoa(pg.Level)
		if pg.Repeat > 0 {
			l += ", repeat " + strconv.Itoa(pg.Repeat)
		}
		level = append(level, l)
	}
	if pg.Responder != "" {
		level = append(level, esc(pg.Responder, maxField-100))
	}
	add("Escalation", strings.Join(level, " · "))
	if !pg.Deadline.IsZero() {
		add("Deadline", pg.Deadline.UTC().Format("2006-01-02 15:04 MST"))
	}
	return out
}

// esc escapes s for mrkdwn and cuts it to n characters.
func esc(s string, n int) string { return cutEscaped(Escape(s), n) }

// cut returns s when it has at most n characters, or else its first n-1
// followed by "…".
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// cutEscaped is cut for escaped text: it does not leave a piece of an
// entity (&amp;) at the end.
func cutEscaped(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	c := cut(s, n)
	if c == s {
		return s
	}
	c = strings.TrimSuffix(c, "…")
	if amp := strings.LastIndexByte(c, '&'); amp >= 0 && !strings.Contains(c[amp:], ";") {
		c = c[:amp]
	}
	return c + "…"
}

// isWebURL reports whether s is an absolute http or https URL.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
