package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
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
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/internal/sample"
	"github.com/breachkit/breach/notify/webhook"
)

// testSecret is the secret of the Standard Webhooks test vector (24 bytes).
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// otherSecret is another valid secret.
var otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-key-of-32-bytes-length!!"))

func noticeMessage() notify.Message { return sample.Message() }

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

func inMemoryWebhook(t *testing.T, h http.Handler, opts ...webhook.Option) *webhook.Notifier {
	t.Helper()
	opts = append([]webhook.Option{webhook.WithClient(&http.Client{Transport: handlerTransport{h}})}, opts...)
	wh, err := webhook.New("https://receiver.test/hooks?token=t0ps3cret", testSecret, opts...)
	require.NoError(t, err)
	return wh
}

func TestParseSecret(t *testing.T) {
	key, err := webhook.ParseSecret(testSecret)
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
			_, err := webhook.ParseSecret(tc.secret)
			require.ErrorIs(t, err, webhook.ErrSecret)
			assert.ErrorContains(t, err, tc.says)
			if len(tc.secret) > len("whsec_") {
				assert.NotContains(t, err.Error(), tc.secret[len("whsec_"):], "the error shows the secret")
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := webhook.GenerateSecret(), webhook.GenerateSecret()
	assert.NotEqual(t, a, b)
	key, err := webhook.ParseSecret(a)
	require.NoError(t, err)
	assert.Len(t, key, 32)
}

// TestSignWebhookKnownAnswer checks the signature against the test vector
// published with the Standard Webhooks reference libraries, and against an
// HMAC computed here from the specification's text.
func TestSignKnownAnswer(t *testing.T) {
	const (
		id   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts   = 1614265330
		body = `{"test": 2432232314}`
		want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := webhook.ParseSecret(testSecret)
	require.NoError(t, err)
	got := webhook.Sign(key, id, time.Unix(ts, 0), []byte(body))
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
	assert.NoError(t, webhook.Verify(testSecret, h, []byte(body), 0, time.Unix(ts, 0)))
}

func TestVerify(t *testing.T) {
	key, err := webhook.ParseSecret(testSecret)
	require.NoError(t, err)
	otherKey, err := webhook.ParseSecret(otherSecret)
	require.NoError(t, err)
	sent := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"incident.customer_notice"}`)
	good := webhook.Sign(key, "msg_1", sent, body)

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
			h.Set("webhook-signature", webhook.Sign(otherKey, "msg_1", sent, body)+" v1a,c2lnbmF0dXJl "+good)
		})},
		{name: "tampered body", header: signed(nil), body: []byte(`{"type":"incident.customer_notice" }`), now: sent, wantErr: webhook.ErrSignature},
		{name: "wrong key", secret: otherSecret, header: signed(nil), now: sent, wantErr: webhook.ErrSignature},
		{name: "id changed", header: signed(func(h http.Header) { h.Set("webhook-id", "msg_2") }), now: sent, wantErr: webhook.ErrSignature},
		{name: "timestamp changed", now: sent, wantErr: webhook.ErrSignature, header: signed(func(h http.Header) {
			h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix()+1, 10))
		})},
		{name: "only other schemes", now: sent, wantErr: webhook.ErrSignature, header: signed(func(h http.Header) {
			h.Set("webhook-signature", "v1a,"+strings.TrimPrefix(good, "v1,")+" v2,"+strings.TrimPrefix(good, "v1,"))
		})},
		{name: "signature not base64", now: sent, wantErr: webhook.ErrSignature, header: signed(func(h http.Header) {
			h.Set("webhook-signature", "v1,%%%")
		})},
		{name: "stale", header: signed(nil), now: sent.Add(5*time.Minute + time.Second), wantErr: webhook.ErrTimestamp},
		{name: "future", header: signed(nil), now: sent.Add(-5*time.Minute - time.Second), wantErr: webhook.ErrTimestamp},
		{name: "stale for given tolerance", header: signed(nil), now: sent.Add(31 * time.Second), tol: 30 * time.Second, wantErr: webhook.ErrTimestamp},
		{name: "zero now is the wall clock", header: signed(nil), wantErr: webhook.ErrTimestamp},
		{name: "no id", header: signed(func(h http.Header) { h.Del("webhook-id") }), now: sent, wantErr: webhook.ErrHeader},
		{name: "no timestamp", header: signed(func(h http.Header) { h.Del("webhook-timestamp") }), now: sent, wantErr: webhook.ErrHeader},
		{name: "no signature", header: signed(func(h http.Header) { h.Del("webhook-signature") }), now: sent, wantErr: webhook.ErrHeader},
		{name: "timestamp not a number", header: signed(func(h http.Header) { h.Set("webhook-timestamp", "yesterday") }), now: sent, wantErr: webhook.ErrHeader},
		{name: "timestamp in milliseconds is stale or future", now: sent, wantErr: webhook.ErrSignature, header: signed(func(h http.Header) {
			h.Set("webhook-timestamp", strconv.FormatInt(sent.UnixMilli(), 10))
		})},
		{name: "bad secret", secret: "secret", header: signed(nil), now: sent, wantErr: webhook.ErrSecret},
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
			err := webhook.Verify(secret, tc.header, b, tc.tol, tc.now)
			if tc.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url, secret string
		wantErr           error
	}{
		{"relative URL", "/hooks", testSecret, webhook.ErrURL},
		{"no scheme", "receiver.test/hooks", testSecret, webhook.ErrURL},
		{"ftp", "ftp://receiver.test/hooks", testSecret, webhook.ErrURL},
		{"no host", "https:///hooks", testSecret, webhook.ErrURL},
		{"opaque", "https:receiver.test", testSecret, webhook.ErrURL},
		{"unparsable", "https://receiver.test/%zz", testSecret, webhook.ErrURL},
		{"empty", "", testSecret, webhook.ErrURL},
		{"bad secret", "https://receiver.test/hooks", "hunter2", webhook.ErrSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh, err := webhook.New(tc.url, tc.secret)
			assert.Nil(t, wh)
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
	wh, err := webhook.New("http://127.0.0.1:8080/hooks", testSecret)
	require.NoError(t, err)
	assert.NotNil(t, wh)
}

func TestNotifyDelivers(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusNoContent)}}
	var method, contentType string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, contentType = r.Method, r.Header.Get("Content-Type")
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	wh, err := webhook.New(srv.URL+"/hooks", testSecret, webhook.WithClock(func() time.Time { return sent }))
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
	require.NoError(t, webhook.Verify(testSecret, h, got[0].body, 0, sent))

	var p webhook.Payload
	require.NoError(t, json.Unmarshal(got[0].body, &p))
	assert.Equal(t, webhook.Payload{
		Type:      "incident.customer_notice",
		Timestamp: sent,
		Data: webhook.Data{
			IncidentID:      "inc-7",
			Kind:            "api_key_leak",
			Severity:        "high",
			Channel:         "webhook",
			Recipient:       webhook.Recipient{ID: "cust-42", Name: "Zoë Müller", Email: "zoe@example.com"},
			Subject:         msg.Subject,
			Text:            msg.Text,
			HTML:            msg.HTML,
			Impact:          webhook.Impact{Summary: "An API key was published.", Data: []incident.DataCategory{incident.DataAPIAccess}},
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

func TestNotifyPayloadEmptyLists(t *testing.T) {
	body, err := json.Marshal(webhook.NewPayload("t", time.Unix(0, 0), notify.Message{}))
	require.NoError(t, err)
	assert.Contains(t, string(body), `"recommendations":[]`)
	assert.Contains(t, string(body), `"data":[]`)
	assert.NotContains(t, string(body), `"html"`)
	assert.Contains(t, string(body), `"severity":"unknown"`)
}

func TestNotifyEventType(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
	wh := inMemoryWebhook(t, rc, webhook.WithEventType("incident.responder_page"))
	require.NoError(t, wh.Notify(context.Background(), noticeMessage()))
	var p webhook.Payload
	require.NoError(t, json.Unmarshal(rc.deliveries()[0].body, &p))
	assert.Equal(t, "incident.responder_page", p.Type)
}

// Notify makes one POST and says how its failure is to be retried: a 429
// or 503 with Retry-After carries that delay (incident.RetryDelay), other
// 5xx, 408, 429 and closed connections are retryable after the policy's
// backoff.
func TestNotifyClassifiesFailures(t *testing.T) {
	hangUp := func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // no answer at all
		}
	}
	for _, tc := range []struct {
		name    string
		respond func(w http.ResponseWriter, r *http.Request)
		code    int           // of the *HTTPError; 0 for none
		delay   time.Duration // the delay the error carries; 0 for none
	}{
		{"500", status(http.StatusInternalServerError), 500, 0},
		{"502", status(http.StatusBadGateway), 502, 0},
		{"503 without Retry-After", status(http.StatusServiceUnavailable), 503, 0},
		{"503 with seconds", status(http.StatusServiceUnavailable, "Retry-After", "120"), 503, 120 * time.Second},
		{"503 with an HTTP date", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		}, 503, 3 * time.Second},
		{"429 with seconds", status(http.StatusTooManyRequests, "Retry-After", "2"), 429, 2 * time.Second},
		{"429 without Retry-After", status(http.StatusTooManyRequests), 429, 0},
		{"429 with a malformed Retry-After", status(http.StatusTooManyRequests, "Retry-After", "soon"), 429, 0},
		{"429 with a past date", status(http.StatusTooManyRequests, "Retry-After", "Sat, 01 Jan 1983 00:00:00 GMT"), 429, 0},
		{"408 (Retry-After is not its)", status(http.StatusRequestTimeout, "Retry-After", "1"), 408, 0},
		{"500 (Retry-After is not its)", status(http.StatusInternalServerError, "Retry-After", "1"), 500, 0},
		{"closed connection", hangUp, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, client := pipeServer(t, &receiver{responses: []func(http.ResponseWriter, *http.Request){tc.respond}})
				rc := srv.Config.Handler.(*receiver)
				wh, err := webhook.New(srv.URL, testSecret, webhook.WithClient(client))
				require.NoError(t, err)
				start := time.Now()

				err = wh.Notify(context.Background(), noticeMessage())

				require.Error(t, err)
				assert.Zero(t, time.Since(start), "Notify does not wait")
				assert.Len(t, rc.deliveries(), 1, "one POST per call")
				assert.False(t, incident.IsPermanent(err), "%v is retryable", err)
				d, ok := incident.RetryDelay(err)
				assert.Equal(t, tc.delay != 0, ok)
				assert.Equal(t, tc.delay, d)
				var he *webhook.HTTPError
				if tc.code == 0 {
					assert.False(t, errors.As(err, &he))
					return
				}
				require.ErrorAs(t, err, &he)
				assert.Equal(t, tc.code, he.StatusCode)
			})
		})
	}
}

// The delivery policy is the one retry layer: after a 429 with
// Retry-After: 120 it waits 120s, not its 1s backoff, before the next POST.
func TestPolicyWaitsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
			status(http.StatusTooManyRequests, "Retry-After", "120"), status(http.StatusNoContent),
		}}
		srv, client := pipeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Now())
			rc.ServeHTTP(w, r)
		}))
		wh, err := webhook.New(srv.URL+"/hooks", testSecret, webhook.WithClient(client))
		require.NoError(t, err)

		out := deliver(context.Background(), wh, incident.Policy{Backoff: time.Second, MaxBackoff: 5 * time.Second})

		require.NoError(t, out.Err)
		assert.Equal(t, 2, out.Attempts)
		require.Len(t, at, 2)
		assert.GreaterOrEqual(t, at[1].Sub(at[0]), 120*time.Second, "waited as the receiver asked, beyond MaxBackoff")
		got := rc.deliveries()
		assert.Equal(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"), "every attempt has the same id")
		// Each attempt is signed at its own time.
		assert.Equal(t, strconv.FormatInt(at[0].Unix(), 10), got[0].header.Get("webhook-timestamp"))
		assert.Equal(t, strconv.FormatInt(at[1].Unix(), 10), got[1].header.Get("webhook-timestamp"))
		for _, d := range got {
			assert.NoError(t, webhook.Verify(testSecret, d.header, d.body, 0, time.Now()))
		}
	})
}

// Retries do not nest: a receiver that always answers 503 sees exactly as
// many POSTs as the policy has attempts.
func TestPolicyAttemptsArePOSTs(t *testing.T) {
	for _, attempts := range []int{1, 3, 5} {
		t.Run(strconv.Itoa(attempts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusServiceUnavailable)}}
				srv, client := pipeServer(t, rc)
				wh, err := webhook.New(srv.URL, testSecret, webhook.WithClient(client))
				require.NoError(t, err)

				out := deliver(context.Background(), wh, incident.Policy{Attempts: attempts})

				require.Error(t, out.Err)
				assert.Equal(t, attempts, out.Attempts)
				assert.Len(t, rc.deliveries(), attempts)
				var he *webhook.HTTPError
				require.ErrorAs(t, out.Err, &he)
				assert.Equal(t, http.StatusServiceUnavailable, he.StatusCode)
			})
		})
	}
}

// A Retry-After that ends after the step's deadline is not waited for: the
// policy gives up at once with the receiver's answer.
func TestPolicyRetryAfterPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){
			status(http.StatusServiceUnavailable, "Retry-After", "120"), status(http.StatusOK),
		}}
		srv, client := pipeServer(t, rc)
		wh, err := webhook.New(srv.URL, testSecret, webhook.WithClient(client))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()

		out := deliver(ctx, wh, incident.Policy{})

		assert.Zero(t, time.Since(start))
		assert.Equal(t, 1, out.Attempts)
		assert.NotErrorIs(t, out.Err, context.DeadlineExceeded)
		var he *webhook.HTTPError
		require.ErrorAs(t, out.Err, &he)
		assert.Equal(t, 120*time.Second, he.RetryAfter)
		assert.Len(t, rc.deliveries(), 1)
	})
}

// deliver calls n under policy p as the orchestrator does.
func deliver(ctx context.Context, n notify.Notifier, p incident.Policy) retry.Outcome {
	msg := noticeMessage()
	return retry.Do(ctx, p, nil, func(ctx context.Context, attempt int) error {
		m := msg
		m.Attempt = attempt
		return n.Notify(ctx, m)
	})
}

// pipeServer starts an httptest.Server for h whose connections are
// in-memory pipes, and returns it with a client that dials it, so that
// server and client run inside a synctest bubble (where real network I/O
// would keep virtual time from advancing). Both are closed at the end of
// the test.
func pipeServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	tr := &http.Transport{DialContext: l.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return srv, &http.Client{Transport: tr}
}

// pipeListener is a net.Listener whose connections are net.Pipe ends
// handed over by dial.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "receiver.test" }

func TestNotifyContextCancelledBefore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := inMemoryWebhook(t, rc).Notify(ctx, noticeMessage())
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, rc.deliveries())
	})
}

func TestNotifyNetworkErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks?token=t0ps3cret"
	srv.Close() // nothing listens there now
	wh, err := webhook.New(url, testSecret)
	require.NoError(t, err)

	err = wh.Notify(context.Background(), noticeMessage())
	require.Error(t, err)
	assert.False(t, incident.IsPermanent(err), "network errors are retryable")
	assert.NotContains(t, err.Error(), "t0ps3cret")
	assert.NotContains(t, err.Error(), "/hooks")
}

func TestNotifyIdempotencyKey(t *testing.T) {
	t.Run("empty gets a random id", func(t *testing.T) {
		rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
		msg := noticeMessage()
		msg.IdempotencyKey = ""
		require.NoError(t, inMemoryWebhook(t, rc).Notify(context.Background(), msg))
		require.NoError(t, inMemoryWebhook(t, rc).Notify(context.Background(), msg))
		got := rc.deliveries()
		require.Len(t, got, 2)
		assert.Regexp(t, `^msg_[A-Z2-7]{26}$`, got[0].header.Get("webhook-id"))
		assert.NotEqual(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"), "one per call")
	})
	t.Run("invalid is permanent", func(t *testing.T) {
		for _, key := range []string{"with space", "line\nbreak", "nön-ascii"} {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
			msg := noticeMessage()
			msg.IdempotencyKey = key
			err := inMemoryWebhook(t, rc).Notify(context.Background(), msg)
			assert.ErrorIs(t, err, webhook.ErrHeader)
			assert.True(t, incident.IsPermanent(err))
			assert.Equal(t, 1, strings.Count(err.Error(), "webhook: "), "the package is named once: %q", err)
			assert.Empty(t, rc.deliveries())
		}
	})
}

func TestNotifyConcurrentUse(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(testSecret, r.Header, body, 0, time.Time{}) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n.Add(1)
	}))
	defer srv.Close()
	wh, err := webhook.New(srv.URL, testSecret)
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
		(&webhook.HTTPError{StatusCode: 429, RetryAfter: 2 * time.Second, Body: "slow down"}).Error())
	assert.Equal(t, "HTTP 599", (&webhook.HTTPError{StatusCode: 599}).Error())
}

func TestNewKeepsABadURLsTokenOutOfTheError(t *testing.T) {
	_, err := webhook.New("https://hooks.example.com/in?token=s3cr3t\x7f", webhook.GenerateSecret())
	require.ErrorIs(t, err, webhook.ErrURL)
	assert.NotContains(t, err.Error(), "s3cr3t")
}
