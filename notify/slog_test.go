package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"

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
