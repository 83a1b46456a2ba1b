package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/internal/sample"
)

func TestLogWritesAuditRecord(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	msg := sample.Message()
	msg.Attempt = 2
	require.NoError(t, notify.Log(logger, slog.LevelInfo).Notify(context.Background(), msg))

	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	delete(rec, "time")
	assert.Equal(t, map[string]any{
		"level":           "INFO",
		"msg":             notify.LogMessage,
		"incident":        "inc-7",
		"kind":            "api_key_leak",
		"severity":        "high",
		"channel":         "webhook",
		"recipient":       "cust-42",
		"subject":         "Sicherheitshinweis für Ihr Konto",
		"idempotency_key": msg.IdempotencyKey,
		"attempt":         float64(2),
	}, rec)
	for _, private := range []string{"We detected a security incident", "zoe@example.com", "Zoë Müller", "someone.else"} {
		assert.NotContains(t, buf.String(), private)
	}
}

func TestLogLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.NoError(t, notify.Log(logger, slog.LevelInfo).Notify(context.Background(), sample.Message()))
	assert.Empty(t, buf.String(), "below the handler's level")
	require.NoError(t, notify.Log(logger, slog.LevelWarn).Notify(context.Background(), sample.Message()))
	assert.Contains(t, buf.String(), `"level":"WARN"`)
}

func TestLogNilLoggerUsesDefault(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	require.NoError(t, notify.Log(nil, slog.LevelInfo).Notify(context.Background(), notify.Message{Severity: incident.SeverityLow}))
	assert.Contains(t, buf.String(), `"severity":"low"`)
}

func ExampleLog() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for a stable output
			}
			return a
		},
	}))
	audit := notify.FanOut(
		notify.Route{Channel: "email", Notifier: notify.Log(logger, slog.LevelInfo)},
	)
	_ = audit.Notify(context.Background(), notify.Message{
		IdempotencyKey: "brk_0123",
		Attempt:        1,
		Recipient:      incident.Customer{ID: "cust-1", Email: "sec@acme.test"},
		Subject:        "Security notice",
		Text:           "Dear customer, ...",
		IncidentID:     "inc-1",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityHigh,
	})
	// Output:
	// level=INFO msg="breach: notice" incident=inc-1 kind=api_key_leak severity=high channel=email recipient=cust-1 subject="Security notice" idempotency_key=brk_0123 attempt=1
}

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

func TestLogPagerWritesAuditRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		page func() notify.Page
		want map[string]any
	}{
		{"trigger", samplePage, map[string]any{
			"level":           "WARN",
			"msg":             notify.LogPageMessage,
			"incident":        "inc-7",
			"kind":            "api_key_leak",
			"severity":        "high",
			"action":          "trigger",
			"alert_key":       "inc-7/approval/disable-key",
			"idempotency_key": "pg_inc-7_2_1",
			"attempt":         float64(3),
			"subject":         "key_123",
			"title":           "Incident inc-7 (api_key_leak, high) needs a person",
			"reason":          "containment action disable-key needs approval",
			"needed":          "approve or deny containment action disable-key",
			"escalation":      map[string]any{"level": float64(2), "repeat": float64(1), "responder": "secops-primary"},
			"deadline":        "2026-03-01T12:00:00Z",
			"link":            "https://console.acme.example/incidents/inc-7",
		}},
		{"resolve without deadline or link", func() notify.Page {
			p := samplePage()
			p.Action, p.Deadline, p.Link, p.Reason, p.Needed = notify.PageResolve, time.Time{}, "", "", ""
			return p
		}, map[string]any{
			"level":           "WARN",
			"msg":             notify.LogPageMessage,
			"incident":        "inc-7",
			"kind":            "api_key_leak",
			"severity":        "high",
			"action":          "resolve",
			"alert_key":       "inc-7/approval/disable-key",
			"idempotency_key": "pg_inc-7_2_1",
			"attempt":         float64(3),
			"subject":         "key_123",
			"title":           "Incident inc-7 (api_key_leak, high) needs a person",
			"reason":          "",
			"needed":          "",
			"escalation":      map[string]any{"level": float64(2), "repeat": float64(1), "responder": "secops-primary"},
		}},
		{"invalid page is still recorded", func() notify.Page { return notify.Page{Action: "snooze"} }, map[string]any{
			"level": "WARN", "msg": notify.LogPageMessage, "incident": "", "kind": "", "severity": "unknown",
			"action": "snooze", "alert_key": "", "idempotency_key": "", "attempt": float64(0), "subject": "",
			"title": "", "reason": "", "needed": "",
			"escalation": map[string]any{"level": float64(0), "repeat": float64(0), "responder": ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, nil))
			require.NoError(t, notify.LogPager(logger, slog.LevelWarn).Page(context.Background(), tc.page()))

			var rec map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), "one JSON record: %s", buf.String())
			delete(rec, "time")
			assert.Equal(t, tc.want, rec, "the escalation level is not the record's level")
		})
	}
}

func TestLogPagerLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.NoError(t, notify.LogPager(logger, slog.LevelInfo).Page(context.Background(), samplePage()))
	assert.Empty(t, buf.String(), "below the handler's level")
	require.NoError(t, notify.LogPager(logger, slog.LevelError).Page(context.Background(), samplePage()))
	assert.Contains(t, buf.String(), `"level":"ERROR"`)
}

func TestLogPagerNilLoggerUsesDefault(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	require.NoError(t, notify.LogPager(nil, slog.LevelInfo).Page(context.Background(), samplePage()))
	assert.Contains(t, buf.String(), `"reason":"containment action disable-key needs approval"`)
}

func ExampleLogPager() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for a stable output
			}
			return a
		},
	}))
	oncall := notify.LogPager(logger, slog.LevelWarn)
	_ = oncall.Page(context.Background(), notify.Page{
		IdempotencyKey: "pg_inc-1_1_0",
		AlertKey:       "inc-1/approval",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-1",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityCritical,
		Subject:        "key_9",
		Title:          "Incident inc-1 needs a person",
		Reason:         "containment needs approval",
		Needed:         "approve or deny disable-key",
		Deadline:       time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC),
		Level:          1,
		Responder:      "secops-primary",
		Attempt:        1,
	})
	// Output:
	// level=WARN msg="breach: page" incident=inc-1 kind=api_key_leak severity=critical action=trigger alert_key=inc-1/approval idempotency_key=pg_inc-1_1_0 attempt=1 subject=key_9 title="Incident inc-1 needs a person" reason="containment needs approval" needed="approve or deny disable-key" escalation.level=1 escalation.repeat=0 escalation.responder=secops-primary deadline=2026-03-01T12:30:00.000Z
}
