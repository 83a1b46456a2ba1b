package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/webhook"
)

func samplePage() notify.Page {
	return notify.Page{
		IdempotencyKey: "pg_inc-7_2_1",
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
		Attempt:        3,
	}
}

func TestPageDelivers(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusNoContent)}}
	var method, contentType string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, contentType = r.Method, r.Header.Get("Content-Type")
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// The notice's event type does not change a page's.
	wh, err := webhook.New(srv.URL+"/hooks", testSecret, webhook.WithClock(func() time.Time { return sent }), webhook.WithEventType("acme.notice"))
	require.NoError(t, err)

	require.NoError(t, wh.Page(context.Background(), samplePage()))

	got := rc.deliveries()
	require.Len(t, got, 1)
	assert.Equal(t, http.MethodPost, method)
	assert.Equal(t, "application/json", contentType)
	assert.Equal(t, "pg_inc-7_2_1", got[0].header.Get("webhook-id"))
	require.NoError(t, webhook.Verify(testSecret, got[0].header, got[0].body, 0, sent), "signed like a notice")

	var p webhook.PagePayload
	require.NoError(t, json.Unmarshal(got[0].body, &p))
	assert.Equal(t, webhook.PagePayload{
		Type:      "incident.page",
		Timestamp: sent,
		Data: webhook.PageData{
			AlertKey:   "inc-7/approval/disable-key",
			Action:     "trigger",
			IncidentID: "inc-7",
			Kind:       "api_key_leak",
			Severity:   "high",
			Subject:    "key_123",
			Title:      "Incident inc-7 (api_key_leak, high) needs a person",
			Reason:     "containment action disable-key needs approval",
			Needed:     "approve or deny containment action disable-key",
			Deadline:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
			Link:       "https://console.acme.example/incidents/inc-7",
			Level:      2,
			Repeat:     1,
			Responder:  "secops-primary",
			Attempt:    3,
		},
	}, p)
	assert.NotContains(t, string(got[0].body), strings.TrimPrefix(testSecret, "whsec_"))

	// The JSON keys are part of the contract.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(got[0].body, &raw))
	assert.ElementsMatch(t, []string{"type", "timestamp", "data"}, keys(raw))
	assert.ElementsMatch(t, []string{"alert_key", "action", "incident_id", "kind", "severity", "subject", "title", "reason", "needed",
		"deadline", "link", "level", "repeat", "responder", "attempt"}, keys(raw["data"].(map[string]any)))
	assert.Equal(t, "2026-03-01T12:00:00Z", raw["data"].(map[string]any)["deadline"], "in UTC")
}

func TestPagePayloadLeavesOutWhatIsNotSet(t *testing.T) {
	body, err := json.Marshal(webhook.NewPagePayload(time.Unix(0, 0), notify.Page{Action: notify.PageResolve}))
	require.NoError(t, err)
	assert.NotContains(t, string(body), `"deadline"`)
	assert.NotContains(t, string(body), `"link"`)
	assert.Contains(t, string(body), `"action":"resolve"`)
	assert.Contains(t, string(body), `"severity":"unknown"`)
}

func TestPageRefusesBeforeSending(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*notify.Page)
		want error
	}{
		{"no alert key", func(p *notify.Page) { p.AlertKey = "" }, notify.ErrInvalidPage},
		{"no idempotency key", func(p *notify.Page) { p.IdempotencyKey = "" }, notify.ErrInvalidPage},
		{"unknown action", func(p *notify.Page) { p.Action = "snooze" }, notify.ErrInvalidPage},
		{"key with a space", func(p *notify.Page) { p.IdempotencyKey = "pg 1" }, webhook.ErrHeader},
		{"key with a line break", func(p *notify.Page) { p.IdempotencyKey = "pg\n1" }, webhook.ErrHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
			pg := samplePage()
			tc.edit(&pg)
			err := inMemoryWebhook(t, rc).Page(context.Background(), pg)
			require.ErrorIs(t, err, tc.want)
			assert.True(t, incident.IsPermanent(err))
			assert.Empty(t, rc.deliveries())
		})
	}
}

// Page's failures are classified as Notify's are.
func TestPageClassifiesFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		respond   func(http.ResponseWriter, *http.Request)
		permanent bool
		delay     time.Duration
	}{
		{"400", status(http.StatusBadRequest), true, 0},
		{"410", status(http.StatusGone), true, 0},
		{"429 with Retry-After", status(http.StatusTooManyRequests, "Retry-After", "30"), false, 30 * time.Second},
		{"429", status(http.StatusTooManyRequests), false, 0},
		{"500", status(http.StatusInternalServerError), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){tc.respond}}
			err := inMemoryWebhook(t, rc).Page(context.Background(), samplePage())
			require.Error(t, err)
			assert.Equal(t, tc.permanent, incident.IsPermanent(err))
			d, ok := incident.RetryDelay(err)
			assert.Equal(t, tc.delay != 0, ok)
			assert.Equal(t, tc.delay, d)
			var he *webhook.HTTPError
			require.ErrorAs(t, err, &he)
			assert.NotContains(t, err.Error(), "t0ps3cret")
			assert.Len(t, rc.deliveries(), 1)
		})
	}
}

func TestPageContextCancelledBefore(t *testing.T) {
	rc := &receiver{responses: []func(http.ResponseWriter, *http.Request){status(http.StatusOK)}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := inMemoryWebhook(t, rc).Page(ctx, samplePage())
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, rc.deliveries())
}
