package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/slack"
)

// hookPath is the secret part of an incoming webhook's URL.
const hookPath = "/services/T0001/B0001/s3cr3tT0k3nS3cr3tT0k3n"

var sentAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func triggerPage() notify.Page {
	return notify.Page{
		IdempotencyKey: "pg_5f1e0c2d-1-0",
		AlertKey:       "inc-7/approval/disable-key",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-7",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityHigh,
		Subject:        "key_123",
		Title:          "Incident inc-7 (api_key_leak, high) needs a person",
		Reason:         "containment action disable-key needs approval",
		Needed:         "approve or deny containment action disable-key",
		Deadline:       time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
		Link:           "https://console.acme.example/incidents/inc-7",
		Level:          2,
		Repeat:         1,
		Responder:      "secops-primary",
		Attempt:        1,
	}
}

type request struct {
	method, path, contentType string
	body                      []byte
}

// receiver stands in for an incoming webhook: it records each request and
// answers with respond (200 "ok", as Slack does, when nil).
type receiver struct {
	mu      sync.Mutex
	got     []request
	respond func(w http.ResponseWriter, r *http.Request)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, request{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: body})
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

func serve(t *testing.T, respond func(http.ResponseWriter, *http.Request), opts ...slack.Option) (*slack.Pager, *receiver) {
	t.Helper()
	rc := &receiver{respond: respond}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	opts = append([]slack.Option{slack.WithClock(func() time.Time { return sentAt })}, opts...)
	p, err := slack.New(srv.URL+hookPath, opts...)
	require.NoError(t, err)
	return p, rc
}

func status(code int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// escaped matches text whose host values are escaped: no < or > (this
// package writes no links or mentions of its own), and & only in entities.
var escaped = regexp.MustCompile(`^(?:[^&<>]|&amp;|&lt;|&gt;)*$`)

// decode checks a request as Block Kit describes a message and returns it:
// a POST of a JSON object with a text and at most 50 blocks, each of a
// known type and within its limits; and every text escaped.
func decode(t *testing.T, r request) map[string]any {
	t.Helper()
	assert.Equal(t, http.MethodPost, r.method)
	assert.Equal(t, hookPath, r.path)
	assert.Equal(t, "application/json", r.contentType)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "the body is a JSON object")
	require.IsType(t, "", m["text"])
	assert.NotEmpty(t, m["text"])
	assert.Regexp(t, escaped, m["text"], "the text is read as mrkdwn")
	require.IsType(t, []any{}, m["blocks"])
	blocks := m["blocks"].([]any)
	require.NotEmpty(t, blocks)
	assert.LessOrEqual(t, len(blocks), 50)
	for i, b := range blocks {
		require.IsType(t, map[string]any{}, b, "block %d", i)
		checkBlock(t, b.(map[string]any))
	}
	return m
}

// checkText checks a text object: its type, a text of 1 to max
// characters, and escaping.
func checkText(t *testing.T, v any, typ string, max int) string {
	t.Helper()
	require.IsType(t, map[string]any{}, v)
	o := v.(map[string]any)
	if typ != "" {
		assert.Equal(t, typ, o["type"])
	} else {
		assert.Contains(t, []any{"plain_text", "mrkdwn"}, o["type"])
	}
	require.IsType(t, "", o["text"])
	s := o["text"].(string)
	assert.NotEmpty(t, s)
	assert.True(t, utf8.ValidString(s))
	assert.LessOrEqual(t, utf8.RuneCountInString(s), max)
	assert.Regexp(t, escaped, s, "plain_text too: Slack reads entities in every text object")
	return s
}

func checkBlock(t *testing.T, b map[string]any) {
	t.Helper()
	switch b["type"] {
	case "header":
		checkText(t, b["text"], "plain_text", 150)
	case "section":
		if b["text"] != nil {
			checkText(t, b["text"], "", 3000)
		}
		if b["fields"] != nil {
			require.IsType(t, []any{}, b["fields"])
			fields := b["fields"].([]any)
			assert.NotEmpty(t, fields)
			assert.LessOrEqual(t, len(fields), 10)
			for _, f := range fields {
				checkText(t, f, "", 2000)
			}
		}
		assert.True(t, b["text"] != nil || b["fields"] != nil, "a section has text or fields")
	case "context":
		require.IsType(t, []any{}, b["elements"])
		elems := b["elements"].([]any)
		assert.NotEmpty(t, elems)
		assert.LessOrEqual(t, len(elems), 10)
		for _, e := range elems {
			checkText(t, e, "", 3000)
		}
	case "actions":
		require.IsType(t, []any{}, b["elements"])
		elems := b["elements"].([]any)
		assert.NotEmpty(t, elems)
		assert.LessOrEqual(t, len(elems), 25)
		for _, e := range elems {
			require.IsType(t, map[string]any{}, e)
			btn := e.(map[string]any)
			assert.Equal(t, "button", btn["type"])
			checkText(t, btn["text"], "plain_text", 75)
			require.IsType(t, "", btn["url"])
			assert.LessOrEqual(t, utf8.RuneCountInString(btn["url"].(string)), 3000)
			require.IsType(t, "", btn["action_id"])
			assert.LessOrEqual(t, len(btn["action_id"].(string)), 255)
		}
	default:
		t.Errorf("block of unknown type %v", b["type"])
	}
}

// blocksOf returns the message's blocks of type typ.
func blocksOf(m map[string]any, typ string) []map[string]any {
	var out []map[string]any
	for _, b := range m["blocks"].([]any) {
		if b := b.(map[string]any); b["type"] == typ {
			out = append(out, b)
		}
	}
	return out
}

// texts returns every text of the message, mrkdwn and plain, in order.
func texts(m map[string]any) []string {
	out := []string{m["text"].(string)}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["text"].(string); ok {
				out = append(out, s)
			}
			for k, e := range v {
				if k != "text" || !isString(e) {
					walk(e)
				}
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(m["blocks"])
	return out
}

func isString(v any) bool { _, ok := v.(string); return ok }

func TestPageTrigger(t *testing.T) {
	p, rc := serve(t, nil)

	require.NoError(t, p.Page(context.Background(), triggerPage()))

	got := rc.requests()
	require.Len(t, got, 1)
	m := decode(t, got[0])
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{
		"text": "Incident inc-7 (api_key_leak, high) needs a person: approve or deny containment action disable-key",
		"blocks": [
			{"type": "header", "text": {"type": "plain_text", "text": "Incident inc-7 (api_key_leak, high) needs a person", "emoji": true}},
			{"type": "section", "fields": [
				{"type": "mrkdwn", "text": "*Severity*\nhigh"},
				{"type": "mrkdwn", "text": "*Kind*\napi_key_leak"},
				{"type": "mrkdwn", "text": "*Incident*\ninc-7"},
				{"type": "mrkdwn", "text": "*Subject*\nkey_123"},
				{"type": "mrkdwn", "text": "*Escalation*\nlevel 2, repeat 1 · secops-primary"},
				{"type": "mrkdwn", "text": "*Deadline*\n2026-03-01 12:00 UTC"}
			]},
			{"type": "section", "text": {"type": "mrkdwn", "text": "*Why*\ncontainment action disable-key needs approval\n\n*Needed*\napprove or deny containment action disable-key"}},
			{"type": "context", "elements": [{"type": "mrkdwn", "text": "Alert inc-7/approval/disable-key · page pg_5f1e0c2d-1-0"}]},
			{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open incident inc-7"},
				"url": "https://console.acme.example/incidents/inc-7", "action_id": "open_incident"}]}
		]}`), &want))
	assert.Equal(t, want, m)
}

func TestPageTriggerMinimal(t *testing.T) {
	p, rc := serve(t, nil)
	pg := notify.Page{IdempotencyKey: "k", AlertKey: "a", Action: notify.PageTrigger, IncidentID: "inc-1", Attempt: 3, Link: "console/inc-1"}

	require.NoError(t, p.Page(context.Background(), pg))

	m := decode(t, rc.requests()[0])
	assert.Equal(t, "Incident inc-1 needs a person", m["text"])
	assert.Equal(t, "Incident inc-1 needs a person", blocksOf(m, "header")[0]["text"].(map[string]any)["text"])
	sections := blocksOf(m, "section")
	require.Len(t, sections, 1, "no reason or needed: no second section")
	assert.Equal(t, []any{
		map[string]any{"type": "mrkdwn", "text": "*Severity*\nunknown"},
		map[string]any{"type": "mrkdwn", "text": "*Incident*\ninc-1"},
	}, sections[0]["fields"])
	assert.Equal(t, "Alert a · page k · attempt 3", blocksOf(m, "context")[0]["elements"].([]any)[0].(map[string]any)["text"])
	assert.Empty(t, blocksOf(m, "actions"), "no button for a link that is not absolute")
}

func TestPageAcknowledgeAndResolve(t *testing.T) {
	for _, tc := range []struct {
		action      notify.PageAction
		text, first string
	}{
		{notify.PageAcknowledge, "Acknowledged: incident inc-7: Incident inc-7 (api_key_leak, high) needs a person",
			":eyes: *Acknowledged: incident inc-7*\nIncident inc-7 (api_key_leak, high) needs a person\nA person took the alert; escalation stops."},
		{notify.PageResolve, "Resolved: incident inc-7: Incident inc-7 (api_key_leak, high) needs a person",
			":white_check_mark: *Resolved: incident inc-7*\nIncident inc-7 (api_key_leak, high) needs a person\nNobody is needed any more."},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := triggerPage()
			pg.Action = tc.action

			require.NoError(t, p.Page(context.Background(), pg))

			m := decode(t, rc.requests()[0])
			assert.Equal(t, tc.text, m["text"])
			assert.Empty(t, blocksOf(m, "header"), "a short message")
			sections := blocksOf(m, "section")
			require.Len(t, sections, 1)
			assert.Equal(t, tc.first, sections[0]["text"].(map[string]any)["text"])
			assert.Len(t, blocksOf(m, "context"), 1)
			assert.Len(t, blocksOf(m, "actions"), 1, "the button to the incident stays")
		})
	}
	t.Run("without a title", func(t *testing.T) {
		p, rc := serve(t, nil)
		pg := notify.Page{IdempotencyKey: "k", AlertKey: "a", Action: notify.PageResolve, IncidentID: "inc-1"}
		require.NoError(t, p.Page(context.Background(), pg))
		m := decode(t, rc.requests()[0])
		assert.Equal(t, "Resolved: incident inc-1", m["text"])
		assert.Equal(t, ":white_check_mark: *Resolved: incident inc-1*\nNobody is needed any more.",
			blocksOf(m, "section")[0]["text"].(map[string]any)["text"])
	})
}

// No host value can mention @channel, link elsewhere or forge an entity.
func TestPageEscapesHostValues(t *testing.T) {
	const evil = "<!channel> & <https://evil.example|click here> <@U0123> &amp; >"
	for _, action := range []notify.PageAction{notify.PageTrigger, notify.PageAcknowledge, notify.PageResolve} {
		t.Run(string(action), func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := notify.Page{
				IdempotencyKey: "k" + evil, AlertKey: "a" + evil, Action: action, IncidentID: "inc" + evil,
				Kind: evil, Subject: evil, Title: evil, Reason: evil, Needed: evil, Responder: evil,
				Level: 1, Link: "https://console.acme.example/incidents/inc-7?x=<y>&z",
			}

			require.NoError(t, p.Page(context.Background(), pg))

			m := decode(t, rc.requests()[0]) // checks every mrkdwn text
			joined := strings.Join(texts(m), "\n")
			assert.Contains(t, joined, "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt; &lt;@U0123&gt; &amp;amp; &gt;")
			assert.NotContains(t, joined, "<!channel>")
			assert.NotContains(t, joined, "<https://evil")
		})
	}
}

func TestPageKeepsToLimits(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		cut         bool // whether the header is cut
	}{
		{"ASCII", strings.Repeat("a", 10_000), true},
		{"ampersands", strings.Repeat("&", 10_000), true},
		{"mixed", strings.Repeat("a&<b>", 2_000), true},
		{"four-byte runes", strings.Repeat("🔥", 5_000), true},
		{"invalid UTF-8", strings.Repeat("\xff", 5_000), false}, // one U+FFFD
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := triggerPage()
			pg.Title, pg.Reason, pg.Needed, pg.Kind, pg.Subject, pg.Responder, pg.IncidentID, pg.AlertKey = tc.value, tc.value, tc.value, tc.value, tc.value, tc.value, tc.value, tc.value

			require.NoError(t, p.Page(context.Background(), pg))

			m := decode(t, rc.requests()[0]) // checks every limit
			header := blocksOf(m, "header")[0]["text"].(map[string]any)["text"].(string)
			if tc.cut {
				assert.Greater(t, utf8.RuneCountInString(header), 150-len("&amp;"))
				assert.True(t, strings.HasSuffix(header, "…"))
			} else {
				assert.Equal(t, "\uFFFD", header)
			}
			assert.LessOrEqual(t, utf8.RuneCountInString(m["text"].(string)), 3000)
		})
	}
}

func TestPageInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*notify.Page)
	}{
		{"no idempotency key", func(p *notify.Page) { p.IdempotencyKey = "" }},
		{"no alert key", func(p *notify.Page) { p.AlertKey = "" }},
		{"no incident", func(p *notify.Page) { p.IncidentID = "" }},
		{"unknown action", func(p *notify.Page) { p.Action = "snooze" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := triggerPage()
			tc.edit(&pg)
			err := p.Page(context.Background(), pg)
			require.ErrorIs(t, err, notify.ErrInvalidPage)
			assert.True(t, incident.IsPermanent(err))
			assert.Empty(t, rc.requests(), "nothing is sent")
		})
	}
}

func TestPageSucceeds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request)
	}{
		{"200 ok", status(200, "ok")},
		{"200 JSON", status(200, `{"success":true}`)},
		{"204", status(204, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := serve(t, tc.respond)
			assert.NoError(t, p.Page(context.Background(), triggerPage()))
		})
	}
}

// Page makes one POST and says how its failure is to be retried, without
// ever showing the webhook URL, even when the answer quotes it.
func TestPageClassifiesFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		respond   func(http.ResponseWriter, *http.Request)
		code      int
		permanent bool
		delay     time.Duration
		says      string
	}{
		{"400 invalid_payload", status(400, "invalid_payload"), 400, true, 0, "slack: HTTP 400 Bad Request: invalid_payload"},
		{"400 invalid_blocks", status(400, "invalid_blocks\n"), 400, true, 0, "HTTP 400 Bad Request: invalid_blocks"},
		{"400 with Retry-After stays permanent", status(400, "invalid_payload", "Retry-After", "5"), 400, true, 0, "invalid_payload"},
		{"403 action_prohibited", status(403, "action_prohibited"), 403, true, 0, "HTTP 403 Forbidden: action_prohibited"},
		{"404 no_service", status(404, "no_service"), 404, true, 0, "HTTP 404 Not Found: no_service"},
		{"404 quoting the URL", status(404, "no hook at "+hookPath), 404, true, 0, "no hook at /[REDACTED]"},
		{"410 channel_is_archived", status(410, "channel_is_archived"), 410, true, 0, "HTTP 410 Gone: channel_is_archived"},
		{"redirect", status(302, "", "Location", "https://elsewhere.example/"), 302, true, 0, "HTTP 302"},
		{"408", status(408, ""), 408, false, 0, "HTTP 408"},
		{"429 with seconds", status(429, "rate_limited", "Retry-After", "30"), 429, false, 30 * time.Second, "HTTP 429 Too Many Requests (retry after 30s): rate_limited"},
		{"429 with an HTTP date", status(429, "", "Retry-After", sentAt.Add(90*time.Second).Format(http.TimeFormat)), 429, false, 90 * time.Second, "retry after 1m30s"},
		{"429 without Retry-After", status(429, "rate_limited"), 429, false, 0, "HTTP 429 Too Many Requests: rate_limited"},
		{"429 with a malformed Retry-After", status(429, "", "Retry-After", "soon"), 429, false, 0, "HTTP 429"},
		{"500 rollup_error", status(500, "rollup_error"), 500, false, 0, "HTTP 500 Internal Server Error: rollup_error"},
		{"502", status(502, ""), 502, false, 0, "HTTP 502"},
		{"503 with Retry-After", status(503, "", "Retry-After", "7"), 503, false, 7 * time.Second, "(retry after 7s)"},
		{"500 (Retry-After is not its)", status(500, "", "Retry-After", "7"), 500, false, 0, "HTTP 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := serve(t, tc.respond)

			err := p.Page(context.Background(), triggerPage())

			require.Error(t, err)
			assert.Len(t, rc.requests(), 1, "one POST per call")
			assert.Equal(t, tc.permanent, incident.IsPermanent(err), "permanent: %v", err)
			d, ok := incident.RetryDelay(err)
			assert.Equal(t, tc.delay != 0, ok)
			assert.Equal(t, tc.delay, d)
			var he *slack.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tc.code, he.StatusCode)
			assert.ErrorContains(t, err, tc.says)
			assert.True(t, strings.HasPrefix(err.Error(), "slack: "), err.Error())
			for _, secret := range []string{hookPath, "s3cr3tT0k3n"} {
				assert.NotContains(t, err.Error(), secret)
				assert.NotContains(t, fmt.Sprintf("%+v %#v", err, he), secret)
			}
		})
	}
}

func TestPageNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	hook := srv.URL + hookPath
	srv.Close() // nothing listens there now
	p, err := slack.New(hook)
	require.NoError(t, err)

	err = p.Page(context.Background(), triggerPage())

	require.Error(t, err)
	assert.False(t, incident.IsPermanent(err), "network errors are retryable")
	assert.NotContains(t, err.Error(), "s3cr3tT0k3n")
	assert.NotContains(t, err.Error(), "/services/")
}

func TestPageContextCancelledBefore(t *testing.T) {
	p, rc := serve(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := p.Page(ctx, triggerPage())

	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, rc.requests())
}

func TestPageContextCancelledMidRequest(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	p, rc := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select { // hold the answer until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the server closes (cleanups run last first)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("shutting down")
	go func() {
		<-arrived
		cancel(cause)
	}()

	err := p.Page(ctx, triggerPage())

	require.Error(t, err)
	assert.ErrorIs(t, err, cause, "the error wraps ctx's cause")
	assert.Len(t, rc.requests(), 1)
	assert.NotContains(t, err.Error(), "s3cr3tT0k3n")
	assert.NotContains(t, err.Error(), "/services/")
}

// The delivery policy is the one retry layer: after a 429 with
// Retry-After: 120 it waits 120s, not its 1s backoff, before the next POST.
func TestPolicyWaitsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Now()) // handlerTransport serves one request at a time
			if len(at) == 1 {
				status(http.StatusTooManyRequests, "rate_limited", "Retry-After", "120")(w, r)
				return
			}
			status(http.StatusOK, "ok")(w, r)
		})
		p, err := slack.New("https://hooks.slack.test"+hookPath, slack.WithClient(&http.Client{Transport: handlerTransport{h}}))
		require.NoError(t, err)

		out := retry.Do(context.Background(), incident.Policy{Backoff: time.Second, MaxBackoff: 5 * time.Second}, nil,
			func(ctx context.Context, attempt int) error {
				pg := triggerPage()
				pg.Attempt = attempt
				return p.Page(ctx, pg)
			})

		require.NoError(t, out.Err)
		assert.Equal(t, 2, out.Attempts)
		require.Len(t, at, 2)
		assert.GreaterOrEqual(t, at[1].Sub(at[0]), 120*time.Second, "waited as the service asked, beyond MaxBackoff")
	})
}

// handlerTransport serves requests with a handler in memory, so that a
// Pager can run inside a synctest bubble, where real network I/O cannot.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return rec.Result(), nil
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"empty", ""},
		{"relative", hookPath},
		{"other scheme", "ftp://hooks.slack.com" + hookPath},
		{"no host", "https://" + hookPath},
		{"unparsable", "https://hooks slack.com" + hookPath},
		{"opaque", "https:hooks.slack.com" + hookPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := slack.New(tc.url)
			require.ErrorIs(t, err, slack.ErrURL)
			assert.NotContains(t, err.Error(), "s3cr3tT0k3n")
			assert.NotContains(t, err.Error(), "/services/")
		})
	}
}

func TestPagerDoesNotShowURL(t *testing.T) {
	p, err := slack.New("https://hooks.slack.com"+hookPath+"?token=t0ps3cret", slack.WithClient(nil), slack.WithClock(nil))
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "pager", p, "value", *p)
	for _, s := range []string{
		p.String(), p.GoString(),
		fmt.Sprintf("%v %+v %#v %s %q %x", p, p, p, p, p, p),
		fmt.Sprintf("%v %+v %#v", *p, *p, *p),
		logged.String(),
	} {
		assert.NotContains(t, s, "s3cr3tT0k3n")
		assert.NotContains(t, s, "/services/")
		assert.NotContains(t, s, "t0ps3cret")
	}
	assert.Equal(t, "slack.Pager(https://hooks.slack.com/[REDACTED])", p.String())
	assert.Contains(t, logged.String(), `"pager":{"url":"https://hooks.slack.com/[REDACTED]"}`)
}

func TestPageConcurrentUse(t *testing.T) {
	p, rc := serve(t, nil)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			pg := triggerPage()
			pg.IdempotencyKey = "pg_" + strconv.Itoa(i)
			errs[i] = p.Page(context.Background(), pg)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	assert.Len(t, rc.requests(), 20)
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain *bold* _it_", "plain *bold* _it_"},
		{"a & b", "a &amp; b"},
		{"<!here>", "&lt;!here&gt;"},
		{"&amp;", "&amp;amp;"},
		{"<https://x.example|x>", "&lt;https://x.example|x&gt;"},
	} {
		assert.Equal(t, tc.want, slack.Escape(tc.in), tc.in)
	}
}

func TestHTTPErrorMessage(t *testing.T) {
	assert.Equal(t, "HTTP 429 Too Many Requests (retry after 2s): rate_limited",
		(&slack.HTTPError{StatusCode: 429, RetryAfter: 2 * time.Second, Body: "rate_limited"}).Error())
	assert.Equal(t, "HTTP 599", (&slack.HTTPError{StatusCode: 599}).Error())
}
