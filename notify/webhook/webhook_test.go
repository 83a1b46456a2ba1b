package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// testSecret is the secret of the Standard Webhooks test vector (24 bytes).
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// otherSecret is another valid secret.
var otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-key-of-32-bytes-length!!"))

func noticeMessage() notify.Message {
	return notify.Message{
		IdempotencyKey: "brk_5f1e0c2d9a7b4e3f8c6d1a2b3c4d5e6f",
		Attempt:        1,
		Channel:        "webhook",
		Recipient:      incident.Customer{ID: "cust-42", Name: "Zoë Müller", Email: "zoe@example.com"},
		Subject:        "Sicherheitshinweis für Ihr Konto",
		Text:           "Dear Zoë Müller,\n\nWe detected a security incident.\n",
		HTML:           "<p>Dear Zoë Müller,</p>",
		IncidentID:     "inc-7",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityHigh,
		Impact: incident.Impact{
			Customers: []incident.Customer{{ID: "cust-42"}, {ID: "cust-43", Email: "someone.else@example.com"}},
			Data:      []incident.DataCategory{incident.DataAPIAccess},
			Summary:   "An API key was published.",
		},
		Recommendations: []string{"Rotate your API key"},
	}
}

// delivery is one request a test receiver saw.
type delivery struct {
	header http.Header
	body   []byte
}

// receiver is an http.Handler that records each request and answers with
// the next of its responses (the last one repeats).
type receiver struct {
	mu        sync.Mutex
	got       []delivery
	responses []func(w http.ResponseWriter, r *http.Request)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body})
	respond := rc.responses[min(len(rc.got), len(rc.responses))-1]
	rc.mu.Unlock()
	respond(w, r)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

// handlerTransport serves requests with a handler in memory, so that a
// Webhook can run inside a synctest bubble, where real network I/O cannot.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return rec.Result(), nil
}

func inMemoryWebhook(t *testing.T, h http.Handler, opts ...notify.WebhookOption) *notify.Webhook {
	t.Helper()
	opts = append([]notify.WebhookOption{notify.WithHTTPClient(&http.Client{Transport: handlerTransport{h}})}, opts...)
	wh, err := notify.NewWebhook("https://receiver.test/hooks?token=t0ps3cret", testSecret, opts...)
	require.NoError(t, err)
	return wh
}

func TestParseWebhookSecret(t *testing.T) {
	key, err := notify.ParseWebhookSecret(testSecret)
	require.NoError(t, err)
	want, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	assert.Equal(t, want, key)

	for _, tc := range []struct{ name, secret, says string }{
		{"empty", "", `must start with "whsec_"`},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `must start with "whsec_"`},
		{"other prefix", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `must start with "whsec_"`},
		{"not base64", "whsec_not*base64!", "not standard base64"},
		{"unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 25)), "not standard base64"},
		{"short key", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "the key is 16 bytes; at least 24"},
		{"empty key", "whsec_", "the key is 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notify.ParseWebhookSecret(tc.secret)
			require.ErrorIs(t, err, notify.ErrWebhookSecret)
			assert.ErrorContains(t, err, tc.says)
			if len(tc.secret) > len("whsec_") {
				assert.NotContains(t, err.Error(), tc.secret[len("whsec_"):], "the error shows the secret")
			}
		})
	}
}

func TestGenerateWebhookSecret(t *testing.T) {
	a, b := notify.GenerateWebhookSecret(), notify.GenerateWebhookSecret()
	assert.NotEqual(t, a, b)
	key, err := notify.ParseWebhookSecret(a)
	require.NoError(t, err)
	assert.Len(t, key, 32)
}

// TestSignWebhookKnownAnswer checks the signature against the test vector
// published with the Standard Webhooks reference libraries, and against an
// HMAC computed here from the specification's text.
func TestSignWebhookKnownAnswer(t *testing.T) {
	const (
		id   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts   = 1614265330
		body = `{"test": 2432232314}`
		want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := notify.ParseWebhookSecret(testSecret)
	require.NoError(t, err)
	got := notify.SignWebhook(key, id, time.Unix(ts, 0), []byte(body))
	assert.Equal(t, want, got)

	// Independently: the key is the base64 after "whsec_"; the signed
	// content is "id.timestamp.body".
	rawKey, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, rawKey)
	mac.Write([]byte("msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}"))
	assert.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), got)

	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.Itoa(ts))
	h.Set("webhook-signature", want)
	assert.NoError(t, notify.VerifyWebhook(testSecret, h, []byte(body), 0, time.Unix(ts, 0)))
}

func TestVerifyWebhook(t *testing.T) {
	key, err := notify.ParseWebhookSecret(testSecret)
	require.NoError(t, err)
	otherKey, err := notify.ParseWebhookSecret(otherSecret)
	require.NoError(t, err)
	sent := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"incident.customer_notice"}`)
	good := notify.SignWebhook(key, "msg_1", sent, body)

	signed := func(edit func(h http.Header)) http.Header {
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix(), 10))
		h.Set("webhook-signature", good)
		if edit != nil {
			edit(h)
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		secret  string
		header  http.Header
		body    []byte
		tol     time.Duration
		now     time.Time
		wantErr error
	}{
		{name: "good", header: signed(nil), now: sent},
		{name: "good within default tolerance, late", header: signed(nil), now: sent.Add(4 * time.Minute)},
		{name: "good within default tolerance, early", header: signed(nil), now: sent.Add(-4 * time.Minute)},
		{name: "good within given tolerance", header: signed(nil), now: sent.Add(59 * time.Minute), tol: time.Hour},
		{name: "one of several signatures valid (rotation)", now: sent, header: signed(func(h http.Header) {
			h.Set("webhook-signature", notify.SignWebhook(otherKey, "msg_1", sent, body)+" v1a,c2lnbmF0dXJl "+good)
		})},
		{name: "tampered body", header: signed(nil), body: []byte(`{"type":"incident.customer_notice" }`), now: sent, wantErr: notify.ErrWebhookSignature},
		{name: "wrong key", secret: otherSecret, header: signed(nil), now: sent, wantErr: notify.ErrWebhookSignature},
		{name: "id changed", header: signed(func(h http.Header) { h.Set("webhook-id", "msg_2") }), now: sent, wantErr: notify.ErrWebhookSignature},
		{name: "timestamp changed", now: sent, wantErr: notify.ErrWebhookSignature, header: signed(func(h http.Header) {
			h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix()+1, 10))
		})},
		{name: "only other schemes", now: sent, wantErr: notify.ErrWebhookSignature, header: signed(func(h http.Header) {
			h.Set("webhook-signature", "v1a,"+strings.TrimPrefix(good, "v1,")+" v2,"+strings.TrimPrefix(good, "v1,"))
		})},
		{name: "signature not base64", now: sent, wantErr: notify.ErrWebhookSignature, header: signed(func(h http.Header) {
			h.Set("webhook-signature", "v1,%%%")
		})},
		{name: "stale", header: signed(nil), now: sent.Add(5*time.Minute + time.Second), wantErr: notify.ErrWebhookTimestamp},
		{name: "future", header: signed(nil), now: sent.Add(-5*time.Minute - time.Second), wantErr: notify.ErrWebhookTimestamp},
		{name: "stale for given tolerance", header: signed(nil), now: sent.Add(31 * time.Second), tol: 30 * time.Second, wantErr: notify.ErrWebhookTimestamp},
		{name: "zero now is the wall clock", header: signed(nil), wantErr: notify.ErrWebhookTimestamp},
		{name: "no id", header: signed(func(h http.Header) { h.Del("webhook-id") }), now: sent, wantErr: notify.ErrWebhookHeader},
		{name: "no timestamp", header: signed(func(h http.Header) { h.Del("webhook-timestamp") }), now: sent, wantErr: notify.ErrWebhookHeader},
		{name: "no signature", header: signed(func(h http.Header) { h.Del("webhook-signature") }), now: sent, wantErr: notify.ErrWebhookHeader},
		{name: "timestamp not a number", header: signed(func(h http.Header) { h.Set("webhook-timestamp", "yesterday") }), now: sent, wantErr: notify.ErrWebhookHeader},
		{name: "timestamp in milliseconds is stale or future", now: sent, wantErr: notify.ErrWebhookSignature, header: signed(func(h http.Header) {
			h.Set("webhook-timestamp", strconv.FormatInt(sent.UnixMilli(), 10))
		})},
		{name: "bad secret", secret: "secret", header: signed(nil), now: sent, wantErr: notify.ErrWebhookSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := tc.secret
			if secret == "" {
				secret = testSecret
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			err := notify.VerifyWebhook(secret, tc.header, b, tc.tol, tc.now)
			if tc.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestNewWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url, secret string
		wantErr           error
	}{
		{"relative URL", "/hooks", testSecret, notify.ErrWebhookURL},
		{"no scheme", "receiver.test/hooks", testSecret, notify.ErrWebhookURL},
		{"ftp", "ftp://receiver.test/hooks", testSecret, notify.ErrWebhookURL},
		{"no host", "https:///hooks", testSecret, notify.ErrWebhookURL},
		{"opaque", "https:receiver.test", testSecret, notify.ErrWebhookURL},
		{"unparsable", "https://receiver.test/%zz", testSecret, notify.ErrWebhookURL},
		{"empty", "", testSecret, notify.ErrWebhookURL},
		{"bad secret", "https://receiver.test/hooks", "hunter2", notify.ErrWebhookSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh, err := notify.NewWebhook(tc.url, tc.secret)
			assert.Nil(t, wh)
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
	wh, err := notify.NewWebhook("http://127.0.0.1:8080/hooks", testSecret)
	require.NoError(t, err)
	assert.NotNil(t, wh)
}

func TestWebhookDelivers(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusNoContent)}}
	var method, contentType string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, contentType = r.Method, r.Header.Get("Content-Type")
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	wh, err := notify.NewWebhook(srv.URL+"/hooks", testSecret, notify.WithClock(func() time.Time { return sent }))
	require.NoError(t, err)

	msg := noticeMessage()
	require.NoError(t, wh.Notify(context.Background(), msg))

	got := rc.deliveries()
	require.Len(t, got, 1)
	assert.Equal(t, http.MethodPost, method)
	assert.Equal(t, "application/json", contentType)
	h := got[0].header
	assert.Equal(t, msg.IdempotencyKey, h.Get("webhook-id"))
	assert.Equal(t, strconv.FormatInt(sent.Unix(), 10), h.Get("webhook-timestamp"))
	assert.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, h.Get("webhook-signature"))
	require.NoError(t, notify.VerifyWebhook(testSecret, h, got[0].body, 0, sent))

	var p notify.WebhookPayload
	require.NoError(t, json.Unmarshal(got[0].body, &p))
	assert.Equal(t, notify.WebhookPayload{
		Type:      "incident.customer_notice",
		Timestamp: sent,
		Data: notify.WebhookData{
			IncidentID:      "inc-7",
			Kind:            "api_key_leak",
			Severity:        "high",
			Channel:         "webhook",
			Recipient:       notify.WebhookRecipient{ID: "cust-42", Name: "Zoë Müller", Email: "zoe@example.com"},
			Subject:         msg.Subject,
			Text:            msg.Text,
			HTML:            msg.HTML,
			Impact:          notify.WebhookImpact{Summary: "An API key was published.", Data: []incident.DataCategory{incident.DataAPIAccess}},
			Recommendations: []string{"Rotate your API key"},
		},
	}, p)
	assert.NotContains(t, string(got[0].body), "someone.else@example.com", "the notice carries other customers")
	assert.NotContains(t, string(got[0].body), "cust-43")
	assert.NotContains(t, string(got[0].body), strings.TrimPrefix(testSecret, "whsec_"))

	// The JSON keys are part of the contract.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(got[0].body, &raw))
	assert.ElementsMatch(t, []string{"type", "timestamp", "data"}, keys(raw))
	assert.ElementsMatch(t, []string{"incident_id", "kind", "severity", "channel", "recipient", "subject", "text", "html", "impact", "recommendations"},
		keys(raw["data"].(map[string]any)))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestWebhookPayloadEmptyLists(t *testing.T) {
	body, err := json.Marshal(notify.NewWebhookPayload("t", time.Unix(0, 0), notify.Message{}))
	require.NoError(t, err)
	assert.Contains(t, string(body), `"recommendations":[]`)
	assert.Contains(t, string(body), `"data":[]`)
	assert.NotContains(t, string(body), `"html"`)
	assert.Contains(t, string(body), `"severity":"unknown"`)
}

func TestWebhookEventType(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
	wh := inMemoryWebhook(t, rc, notify.WithEventType("incident.responder_page"))
	require.NoError(t, wh.Notify(context.Background(), noticeMessage()))
	var p notify.WebhookPayload
	require.NoError(t, json.Unmarshal(rc.deliveries()[0].body, &p))
	assert.Equal(t, "incident.responder_page", p.Type)
}

func TestWebhookRetriesServerError(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
		status(http.StatusInternalServerError), status(http.StatusOK),
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	wh, err := notify.NewWebhook(srv.URL, testSecret, notify.WithRetry(notify.WebhookRetry{Backoff: time.Millisecond}))
	require.NoError(t, err)

	require.NoError(t, wh.Notify(context.Background(), noticeMessage()))
	got := rc.deliveries()
	require.Len(t, got, 2)
	for _, d := range got {
		assert.Equal(t, noticeMessage().IdempotencyKey, d.header.Get("webhook-id"), "every try has the same id")
		assert.Equal(t, got[0].body, d.body, "every try has the same body")
		assert.NoError(t, notify.VerifyWebhook(testSecret, d.header, d.body, 0, time.Time{}))
	}
}

func TestWebhookRetriesClosedConnection(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
		func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close() // no answer at all
			}
		},
		status(http.StatusAccepted),
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	wh, err := notify.NewWebhook(srv.URL, testSecret, notify.WithRetry(notify.WebhookRetry{Backoff: time.Millisecond}))
	require.NoError(t, err)

	require.NoError(t, wh.Notify(context.Background(), noticeMessage()))
	got := rc.deliveries()
	require.Len(t, got, 2)
	assert.Equal(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"))
}

func TestWebhookPermanentAnswers(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name     string
		respond  func(http.ResponseWriter, *http.Request)
		code     int
		wantBody string
	}{
		{"400", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "missing field", http.StatusBadRequest) }, 400, "missing field"},
		{"401", status(http.StatusUnauthorized), 401, "Unauthorized"},
		{"404", status(http.StatusNotFound), 404, "Not Found"},
		{"410", status(http.StatusGone), 410, "Gone"},
		{"long body is cut", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, long, http.StatusBadRequest) }, 400, long[:512]},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				panic("the redirect was followed")
			}
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		}, 302, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){tc.respond}}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			wh, err := notify.NewWebhook(srv.URL+"/hooks", testSecret, notify.WithRetry(notify.WebhookRetry{Backoff: time.Millisecond}))
			require.NoError(t, err)

			err = wh.Notify(context.Background(), noticeMessage())
			require.Error(t, err)
			assert.True(t, incident.IsPermanent(err), "%v is permanent", err)
			var he *notify.HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tc.code, he.StatusCode)
			assert.Equal(t, tc.wantBody, he.Body)
			assert.Len(t, rc.deliveries(), 1, "no retry")
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		first      func(w http.ResponseWriter, r *http.Request)
		wait, plus time.Duration
	}{
		{name: "429 with seconds", first: status(http.StatusTooManyRequests, "Retry-After", "2"), wait: 2 * time.Second},
		{name: "503 with an HTTP date", first: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		}, wait: 3 * time.Second},
		// Without a usable Retry-After: the backoff, 1s ±20%.
		{name: "502 without Retry-After", first: status(http.StatusBadGateway), wait: 800 * time.Millisecond, plus: 400 * time.Millisecond},
		{name: "429 with a malformed Retry-After", first: status(http.StatusTooManyRequests, "Retry-After", "soon"), wait: 800 * time.Millisecond, plus: 400 * time.Millisecond},
		{name: "429 with a past date", first: status(http.StatusTooManyRequests, "Retry-After", "Sat, 01 Jan 1983 00:00:00 GMT"), wait: 800 * time.Millisecond, plus: 400 * time.Millisecond},
		{name: "408", first: status(http.StatusRequestTimeout, "Retry-After", "1"), wait: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){tc.first, status(http.StatusOK)}}
				wh := inMemoryWebhook(t, rc)
				start := time.Now()
				require.NoError(t, wh.Notify(context.Background(), noticeMessage()))
				elapsed := time.Since(start)
				assert.GreaterOrEqual(t, elapsed, tc.wait)
				assert.LessOrEqual(t, elapsed, tc.wait+tc.plus)

				got := rc.deliveries()
				require.Len(t, got, 2)
				// Each try is signed at its own time.
				assert.Equal(t, strconv.FormatInt(start.Unix(), 10), got[0].header.Get("webhook-timestamp"))
				assert.Equal(t, strconv.FormatInt(time.Now().Unix(), 10), got[1].header.Get("webhook-timestamp"))
				assert.Equal(t, got[0].body, got[1].body)
			})
		})
	}
}

func TestWebhookBackoffDoubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusServiceUnavailable)}}
		var at []time.Duration
		start := time.Now()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Since(start))
			rc.ServeHTTP(w, r)
		})
		wh := inMemoryWebhook(t, h, notify.WithRetry(notify.WebhookRetry{Tries: 4, Backoff: time.Second, MaxWait: 3 * time.Second}))
		err := wh.Notify(context.Background(), noticeMessage())
		require.Error(t, err)
		assert.False(t, incident.IsPermanent(err))
		assert.ErrorContains(t, err, "gave up after 4 tries")
		var he *notify.HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, http.StatusServiceUnavailable, he.StatusCode)

		require.Len(t, at, 4)
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} { // the third is capped
			gap := at[i+1] - at[i]
			assert.InDelta(t, want, gap, float64(want)/5, "wait %d", i+1)
		}
	})
}

func TestWebhookDefaultTries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusInternalServerError)}}
		err := inMemoryWebhook(t, rc).Notify(context.Background(), noticeMessage())
		require.Error(t, err)
		assert.Len(t, rc.deliveries(), 3)
		assert.False(t, incident.IsPermanent(err))
	})
}

func TestWebhookRetryAfterBeyondMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
			status(http.StatusTooManyRequests, "Retry-After", "60"), status(http.StatusOK),
		}}
		wh := inMemoryWebhook(t, rc)
		start := time.Now()
		err := wh.Notify(context.Background(), noticeMessage())
		assert.Zero(t, time.Since(start), "did not wait")
		require.Error(t, err)
		assert.False(t, incident.IsPermanent(err), "left to the delivery policy")
		var he *notify.HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 60*time.Second, he.RetryAfter)
		assert.Len(t, rc.deliveries(), 1)
	})
}

func TestWebhookDoesNotWaitPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
			status(http.StatusServiceUnavailable, "Retry-After", "2"), status(http.StatusOK),
		}}
		wh := inMemoryWebhook(t, rc)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := wh.Notify(ctx, noticeMessage())
		assert.Zero(t, time.Since(start), "did not wait")
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
		assert.False(t, incident.IsPermanent(err))
		var he *notify.HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 2*time.Second, he.RetryAfter)
	})
}

func TestWebhookContextCancelledDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
			status(http.StatusServiceUnavailable, "Retry-After", "5"), status(http.StatusOK),
		}}
		wh := inMemoryWebhook(t, rc)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		err := wh.Notify(ctx, noticeMessage())
		assert.Equal(t, time.Second, time.Since(start))
		require.ErrorIs(t, err, context.Canceled)
		var he *notify.HTTPError
		assert.ErrorAs(t, err, &he, "the last answer is kept")
		assert.False(t, incident.IsPermanent(err))
		assert.Len(t, rc.deliveries(), 1)
	})
}

func TestWebhookContextCancelledBefore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := inMemoryWebhook(t, rc).Notify(ctx, noticeMessage())
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, rc.deliveries())
	})
}

func TestWebhookNetworkErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks?token=t0ps3cret"
	srv.Close() // nothing listens there now
	wh, err := notify.NewWebhook(url, testSecret, notify.WithRetry(notify.WebhookRetry{Tries: 2, Backoff: time.Millisecond}))
	require.NoError(t, err)

	err = wh.Notify(context.Background(), noticeMessage())
	require.Error(t, err)
	assert.False(t, incident.IsPermanent(err), "network errors are retryable")
	assert.ErrorContains(t, err, "gave up after 2 tries")
	assert.NotContains(t, err.Error(), "t0ps3cret")
	assert.NotContains(t, err.Error(), "/hooks")
}

func TestWebhookIdempotencyKey(t *testing.T) {
	t.Run("empty gets one random id for all tries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusBadGateway), status(http.StatusOK)}}
			msg := noticeMessage()
			msg.IdempotencyKey = ""
			require.NoError(t, inMemoryWebhook(t, rc).Notify(context.Background(), msg))
			got := rc.deliveries()
			require.Len(t, got, 2)
			assert.Regexp(t, `^msg_[A-Z2-7]{26}$`, got[0].header.Get("webhook-id"))
			assert.Equal(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"))
		})
	})
	t.Run("invalid is permanent", func(t *testing.T) {
		for _, key := range []string{"with space", "line\nbreak", "nön-ascii"} {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
			msg := noticeMessage()
			msg.IdempotencyKey = key
			err := inMemoryWebhook(t, rc).Notify(context.Background(), msg)
			assert.ErrorIs(t, err, notify.ErrWebhookHeader)
			assert.True(t, incident.IsPermanent(err))
			assert.Empty(t, rc.deliveries())
		}
	})
}

func TestWebhookConcurrentUse(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if notify.VerifyWebhook(testSecret, r.Header, body, 0, time.Time{}) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n.Add(1)
	}))
	defer srv.Close()
	wh, err := notify.NewWebhook(srv.URL, testSecret)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			msg := noticeMessage()
			msg.IdempotencyKey = "brk_" + strconv.Itoa(i)
			errs[i] = wh.Notify(context.Background(), msg)
		})
	}
	wg.Wait()
	assert.NoError(t, errors.Join(errs...))
	assert.Equal(t, int32(20), n.Load())
}

func TestHTTPErrorMessage(t *testing.T) {
	assert.Equal(t, "HTTP 429 Too Many Requests (retry after 2s): slow down",
		(&notify.HTTPError{StatusCode: 429, RetryAfter: 2 * time.Second, Body: "slow down"}).Error())
	assert.Equal(t, "HTTP 599", (&notify.HTTPError{StatusCode: 599}).Error())
}
