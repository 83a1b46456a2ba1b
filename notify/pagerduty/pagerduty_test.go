package pagerduty_test

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
	"github.com/breachkit/breach/notify/pagerduty"
)

// routingKey looks like an integration key: 32 characters.
const routingKey = "R0ut1ngK3yS3cr3tR0ut1ngK3yS3cr3t"

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

// request is one request the test receiver saw.
type request struct {
	method, contentType string
	body                []byte
}

// receiver stands in for the Events API: it records each request and
// answers with respond (202 and the API's success JSON when nil).
type receiver struct {
	mu      sync.Mutex
	got     []request
	respond func(w http.ResponseWriter, r *http.Request)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, request{method: r.Method, contentType: r.Header.Get("Content-Type"), body: body})
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"x"}`)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// serve starts a receiver and a Pager that sends to it.
func serve(t *testing.T, respond func(http.ResponseWriter, *http.Request), opts ...pagerduty.Option) (*pagerduty.Pager, *receiver) {
	t.Helper()
	rc := &receiver{respond: respond}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	opts = append([]pagerduty.Option{pagerduty.WithURL(srv.URL + "/v2/enqueue"), pagerduty.WithClock(func() time.Time { return sentAt })}, opts...)
	p, err := pagerduty.New(routingKey, opts...)
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

// decode checks what the Events API v2 requires of every event and
// returns it: a POST of a JSON object with string routing_key, a known
// event_action and a dedup_key of at most 255 characters.
func decode(t *testing.T, r request) map[string]any {
	t.Helper()
	assert.Equal(t, http.MethodPost, r.method)
	assert.Equal(t, "application/json", r.contentType)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(r.body, &ev), "the body is a JSON object")
	require.IsType(t, "", ev["routing_key"])
	assert.Equal(t, routingKey, ev["routing_key"])
	require.IsType(t, "", ev["event_action"])
	assert.Contains(t, []string{"trigger", "acknowledge", "resolve"}, ev["event_action"])
	require.IsType(t, "", ev["dedup_key"])
	assert.NotEmpty(t, ev["dedup_key"])
	assert.LessOrEqual(t, utf8.RuneCountInString(ev["dedup_key"].(string)), 255)
	return ev
}

// checkTrigger checks what a trigger's payload requires: a summary of at
// most 1024 characters, a source, a severity PagerDuty knows and an RFC
// 3339 timestamp; and returns the payload.
func checkTrigger(t *testing.T, ev map[string]any) map[string]any {
	t.Helper()
	require.Equal(t, "trigger", ev["event_action"])
	require.IsType(t, map[string]any{}, ev["payload"])
	pl := ev["payload"].(map[string]any)
	for _, f := range []string{"summary", "source", "severity", "timestamp"} {
		require.IsType(t, "", pl[f], f)
		assert.NotEmpty(t, pl[f], f)
	}
	summary := pl["summary"].(string)
	assert.True(t, utf8.ValidString(summary))
	assert.LessOrEqual(t, utf8.RuneCountInString(summary), 1024)
	assert.LessOrEqual(t, len(summary), 1024, "within 1024 bytes too")
	assert.Contains(t, []string{"critical", "error", "warning", "info"}, pl["severity"])
	_, err := time.Parse(time.RFC3339, pl["timestamp"].(string))
	assert.NoError(t, err)
	for f := range pl {
		assert.Contains(t, []string{"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}, f)
	}
	return pl
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPageTrigger(t *testing.T) {
	p, rc := serve(t, nil,
		pagerduty.WithSource("payments-api"),
		pagerduty.WithMonitoringClient("Acme incident console", "https://console.acme.example"))

	require.NoError(t, p.Page(context.Background(), triggerPage()))

	got := rc.requests()
	require.Len(t, got, 1)
	ev := decode(t, got[0])
	assert.ElementsMatch(t, []string{"routing_key", "event_action", "dedup_key", "payload", "links", "client", "client_url"}, keys(ev))
	assert.Equal(t, "inc-7/approval/disable-key", ev["dedup_key"])
	assert.Equal(t, "Acme incident console", ev["client"])
	assert.Equal(t, "https://console.acme.example", ev["client_url"])
	assert.Equal(t, []any{map[string]any{"href": "https://console.acme.example/incidents/inc-7", "text": "Incident inc-7"}}, ev["links"])

	pl := checkTrigger(t, ev)
	assert.Equal(t, map[string]any{
		"summary":   "Incident inc-7 (api_key_leak, high) needs a person",
		"source":    "payments-api",
		"severity":  "error",
		"timestamp": "2026-03-01T12:00:00Z",
		"component": "key_123",
		"group":     "inc-7",
		"class":     "api_key_leak",
		"custom_details": map[string]any{
			"incident_id": "inc-7",
			"kind":        "api_key_leak",
			"severity":    "high",
			"subject":     "key_123",
			"reason":      "containment action disable-key needs approval",
			"needed":      "approve or deny containment action disable-key",
			"deadline":    "2026-03-01T12:00:00Z",
			"level":       float64(2),
			"repeat":      float64(1),
			"responder":   "secops-primary",
			"link":        "https://console.acme.example/incidents/inc-7",
		},
	}, pl)
}

func TestPageTriggerMinimal(t *testing.T) {
	p, rc := serve(t, nil)
	pg := notify.Page{IdempotencyKey: "k", AlertKey: "a", Action: notify.PageTrigger, IncidentID: "inc-1", Link: "/relative/only"}

	require.NoError(t, p.Page(context.Background(), pg))

	ev := decode(t, rc.requests()[0])
	assert.ElementsMatch(t, []string{"routing_key", "event_action", "dedup_key", "payload"}, keys(ev), "no links for a link that is not absolute")
	pl := checkTrigger(t, ev)
	assert.Equal(t, "Incident inc-1 needs a person", pl["summary"], "a summary for a page without a title")
	assert.Equal(t, pagerduty.DefaultSource, pl["source"])
	assert.Equal(t, "error", pl["severity"], "an unranked incident pages with high urgency")
	assert.Equal(t, map[string]any{"incident_id": "inc-1", "severity": "unknown", "link": "/relative/only"}, pl["custom_details"])
}

func TestPageAcknowledgeAndResolve(t *testing.T) {
	for _, action := range []notify.PageAction{notify.PageAcknowledge, notify.PageResolve} {
		t.Run(string(action), func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := triggerPage()
			pg.Action = action

			require.NoError(t, p.Page(context.Background(), pg))

			ev := decode(t, rc.requests()[0])
			assert.Equal(t, map[string]any{
				"routing_key":  routingKey,
				"event_action": string(action),
				"dedup_key":    "inc-7/approval/disable-key",
			}, ev, "only what the API reads for the action")
		})
	}
}

func TestSeverity(t *testing.T) {
	for _, tc := range []struct {
		in   incident.Severity
		want string
	}{
		{incident.SeverityCritical, "critical"},
		{incident.SeverityHigh, "error"},
		{incident.SeverityMedium, "warning"},
		{incident.SeverityLow, "info"},
		{incident.SeverityUnknown, "error"},
		{incident.Severity(99), "error"},
	} {
		t.Run(tc.in.String(), func(t *testing.T) {
			assert.Equal(t, tc.want, pagerduty.Severity(tc.in))
			p, rc := serve(t, nil)
			pg := triggerPage()
			pg.Severity = tc.in
			require.NoError(t, p.Page(context.Background(), pg))
			assert.Equal(t, tc.want, checkTrigger(t, decode(t, rc.requests()[0]))["severity"])
		})
	}
}

func TestPageTruncates(t *testing.T) {
	for _, tc := range []struct {
		name, title string
	}{
		{"ASCII", strings.Repeat("a", 5000)},
		{"two-byte runes", strings.Repeat("ü", 1000)},
		{"three-byte runes", strings.Repeat("€", 700)},
		{"four-byte runes", strings.Repeat("🔥", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := serve(t, nil)
			pg := triggerPage()
			pg.Title = tc.title
			pg.Reason = strings.Repeat("r", 100_000)
			require.NoError(t, p.Page(context.Background(), pg))
			pl := checkTrigger(t, decode(t, rc.requests()[0]))
			summary := pl["summary"].(string)
			assert.True(t, strings.HasSuffix(summary, "…"))
			assert.True(t, strings.HasPrefix(tc.title, strings.TrimSuffix(summary, "…")))
			assert.Greater(t, len(summary), 1024-len("…")-4, "cut no shorter than a rune needs")
			reason := pl["custom_details"].(map[string]any)["reason"].(string)
			assert.LessOrEqual(t, len(reason), 8<<10)
		})
	}
	t.Run("fits", func(t *testing.T) {
		p, rc := serve(t, nil)
		pg := triggerPage()
		pg.Title = strings.Repeat("b", 1024)
		require.NoError(t, p.Page(context.Background(), pg))
		assert.Equal(t, pg.Title, checkTrigger(t, decode(t, rc.requests()[0]))["summary"])
	})
}

func TestPageLongAlertKey(t *testing.T) {
	p, rc := serve(t, nil)
	long := strings.Repeat("k", 300)
	for _, action := range []notify.PageAction{notify.PageTrigger, notify.PageResolve} {
		pg := triggerPage()
		pg.AlertKey, pg.Action = long, action
		require.NoError(t, p.Page(context.Background(), pg))
	}
	got := rc.requests()
	require.Len(t, got, 2)
	trigger, resolve := decode(t, got[0]), decode(t, got[1])
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, trigger["dedup_key"])
	assert.Equal(t, trigger["dedup_key"], resolve["dedup_key"], "the resolve names the alert the trigger opened")

	pg := triggerPage()
	pg.AlertKey = strings.Repeat("k", 255)
	require.NoError(t, p.Page(context.Background(), pg))
	assert.Equal(t, pg.AlertKey, decode(t, rc.requests()[2])["dedup_key"], "255 characters are sent as they are")
}

func TestPageInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*notify.Page)
	}{
		{"no idempotency key", func(p *notify.Page) { p.IdempotencyKey = "" }},
		{"no alert key", func(p *notify.Page) { p.AlertKey = "" }},
		{"no incident", func(p *notify.Page) { p.IncidentID = "" }},
		{"no action", func(p *notify.Page) { p.Action = "" }},
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

// Page makes one POST and says how its failure is to be retried, without
// ever showing the routing key, even when the answer quotes it.
func TestPageClassifiesFailures(t *testing.T) {
	const invalid = `{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)","'` + routingKey + `' is not a routing key"]}`
	for _, tc := range []struct {
		name      string
		respond   func(http.ResponseWriter, *http.Request)
		code      int           // of the *HTTPError
		permanent bool          // marked incident.Permanent
		delay     time.Duration // marked incident.RetryAfter
		says      string        // in the error
	}{
		{"400 invalid event", status(400, invalid), 400, true, 0, "HTTP 400 Bad Request: Event object is invalid: Length of 'routing_key' is incorrect"},
		{"400 with Retry-After stays permanent", status(400, invalid, "Retry-After", "5"), 400, true, 0, "Event object is invalid"},
		{"400 not JSON", status(400, "bad request for "+routingKey), 400, true, 0, "HTTP 400 Bad Request: bad request for [REDACTED]"},
		{"401", status(401, ""), 401, true, 0, "HTTP 401 Unauthorized"},
		{"403", status(403, ""), 403, true, 0, "HTTP 403"},
		{"404", status(404, "not found"), 404, true, 0, "HTTP 404 Not Found: not found"},
		{"413", status(413, ""), 413, true, 0, "HTTP 413"},
		{"redirect", status(302, "", "Location", "https://elsewhere.example/"), 302, true, 0, "HTTP 302"},
		{"408", status(408, ""), 408, false, 0, "HTTP 408"},
		{"429 with seconds", status(429, `{"status":"throttle event","message":"Requests for this service are arriving too quickly."}`, "Retry-After", "30"), 429, false, 30 * time.Second, "HTTP 429 Too Many Requests (retry after 30s): Requests for this service"},
		{"429 with an HTTP date", status(429, "", "Retry-After", sentAt.Add(90*time.Second).Format(http.TimeFormat)), 429, false, 90 * time.Second, "retry after 1m30s"},
		{"429 without Retry-After", status(429, "Request Limit Exceeded"), 429, false, 0, "HTTP 429 Too Many Requests: Request Limit Exceeded"},
		{"429 with a malformed Retry-After", status(429, "", "Retry-After", "soon"), 429, false, 0, "HTTP 429"},
		{"429 with a past date", status(429, "", "Retry-After", "Sat, 01 Jan 1983 00:00:00 GMT"), 429, false, 0, "HTTP 429"},
		{"500", status(500, "oops"), 500, false, 0, "HTTP 500 Internal Server Error: oops"},
		{"502", status(502, ""), 502, false, 0, "HTTP 502"},
		{"503", status(503, ""), 503, false, 0, "HTTP 503"},
		{"503 with Retry-After", status(503, "", "Retry-After", "7"), 503, false, 7 * time.Second, "HTTP 503 Service Unavailable (retry after 7s)"},
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
			var he *pagerduty.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tc.code, he.StatusCode)
			assert.ErrorContains(t, err, tc.says)
			assert.True(t, strings.HasPrefix(err.Error(), "pagerduty: "), err.Error())
			assert.NotContains(t, err.Error(), routingKey)
			assert.NotContains(t, fmt.Sprintf("%+v %#v", err, he), routingKey)
		})
	}
}

func TestPageNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL + "/v2/enqueue?token=t0ps3cret"
	srv.Close() // nothing listens there now
	p, err := pagerduty.New(routingKey, pagerduty.WithURL(endpoint))
	require.NoError(t, err)

	err = p.Page(context.Background(), triggerPage())

	require.Error(t, err)
	assert.False(t, incident.IsPermanent(err), "network errors are retryable")
	assert.NotContains(t, err.Error(), "t0ps3cret")
	assert.NotContains(t, err.Error(), "/v2/enqueue")
	assert.NotContains(t, err.Error(), routingKey)
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
	assert.NotContains(t, err.Error(), routingKey)
	assert.NotContains(t, err.Error(), "127.0.0.1")
}

// The delivery policy is the one retry layer: after a 429 with
// Retry-After: 120 it waits 120s, not its 1s backoff, before the next POST.
func TestPolicyWaitsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Now()) // handlerTransport serves one request at a time
			if len(at) == 1 {
				status(http.StatusTooManyRequests, "", "Retry-After", "120")(w, r)
				return
			}
			status(http.StatusAccepted, `{"status":"success"}`)(w, r)
		})
		p, err := pagerduty.New(routingKey, pagerduty.WithClient(&http.Client{Transport: handlerTransport{h}}))
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
		assert.GreaterOrEqual(t, at[1].Sub(at[0]), 120*time.Second, "waited as PagerDuty asked, beyond MaxBackoff")
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
	for _, tc := range []struct {
		name, key string
		opts      []pagerduty.Option
		want      error
	}{
		{"empty key", "", nil, pagerduty.ErrRoutingKey},
		{"key with a space", "R0ut1ngK3y S3cr3t", nil, pagerduty.ErrRoutingKey},
		{"key with a line break", "R0ut1ngK3yS3cr3t\n", nil, pagerduty.ErrRoutingKey},
		{"relative URL", routingKey, []pagerduty.Option{pagerduty.WithURL("/v2/enqueue")}, pagerduty.ErrURL},
		{"other scheme", routingKey, []pagerduty.Option{pagerduty.WithURL("ftp://events.pagerduty.com/")}, pagerduty.ErrURL},
		{"unparsable URL", routingKey, []pagerduty.Option{pagerduty.WithURL("https://exa mple.com/?token=t0ps3cret")}, pagerduty.ErrURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pagerduty.New(tc.key, tc.opts...)
			require.ErrorIs(t, err, tc.want)
			if tc.key != "" {
				assert.NotContains(t, err.Error(), strings.TrimSpace(tc.key))
			}
			assert.NotContains(t, err.Error(), "t0ps3cret")
		})
	}
	p, err := pagerduty.New(routingKey, pagerduty.WithURL(pagerduty.EUURL), pagerduty.WithClient(nil), pagerduty.WithClock(nil), pagerduty.WithSource(""))
	require.NoError(t, err)
	assert.Contains(t, p.String(), pagerduty.EUURL)
}

func TestPagerDoesNotShowRoutingKey(t *testing.T) {
	p, err := pagerduty.New(routingKey, pagerduty.WithURL("https://user:pa55@events.example/v2/enqueue?token=t0ps3cret"))
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "pager", p, "value", *p)
	for _, s := range []string{
		p.String(), p.GoString(),
		fmt.Sprintf("%v %+v %#v %s %q %x", p, p, p, p, p, p),
		fmt.Sprintf("%v %+v %#v", *p, *p, *p),
		logged.String(),
	} {
		assert.NotContains(t, s, routingKey)
		assert.NotContains(t, s, "pa55")
		assert.NotContains(t, s, "t0ps3cret")
	}
	assert.Equal(t, "pagerduty.Pager(https://events.example/v2/enqueue, routing key [REDACTED])", p.String())
	assert.Contains(t, logged.String(), `"pager":{"url":"https://events.example/v2/enqueue","source":"breach","routing_key":"[REDACTED]"}`)
}

func TestPageConcurrentUse(t *testing.T) {
	p, rc := serve(t, nil)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			pg := triggerPage()
			pg.IdempotencyKey = "pg_" + strconv.Itoa(i)
			pg.AlertKey = "alert-" + strconv.Itoa(i)
			errs[i] = p.Page(context.Background(), pg)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	seen := map[any]bool{}
	for _, r := range rc.requests() {
		seen[decode(t, r)["dedup_key"]] = true
	}
	assert.Len(t, seen, 20)
}

func TestHTTPErrorMessage(t *testing.T) {
	assert.Equal(t, "HTTP 400 Bad Request: Event object is invalid: a; b",
		(&pagerduty.HTTPError{StatusCode: 400, Message: "Event object is invalid", Errors: []string{"a", "b"}}).Error())
	assert.Equal(t, "HTTP 429 Too Many Requests (retry after 2s)", (&pagerduty.HTTPError{StatusCode: 429, RetryAfter: 2 * time.Second}).Error())
	assert.Equal(t, "HTTP 599", (&pagerduty.HTTPError{StatusCode: 599}).Error())
}
