package notify

import (
	"context"
	"log/slog"
)

// LogMessage is the message of the records Log writes.
const LogMessage = "breach: notice"

// Log returns a Notifier that writes each message as one audit record to
// logger at level, with the attributes incident, kind, severity, channel,
// recipient (the customer's ID), subject, idempotency_key and attempt. It
// leaves out the body and the recipient's name and e-mail address, which are
// personal data that logs tend to keep longer and guard less; the ID leads
// to them in the host's records. (Message holds no credentials.)
//
// A nil logger means slog.Default() at the time of each call. Notify always
// returns nil, and writes nothing when the logger is not enabled for level.
// It is safe for concurrent use when the logger's handler is, as slog's
// handlers are.
func Log(logger *slog.Logger, level slog.Level) Notifier {
	return Func(func(ctx context.Context, msg Message) error {
		l := logger
		if l == nil {
			l = slog.Default()
		}
		if !l.Enabled(ctx, level) {
			return nil
		}
		l.LogAttrs(ctx, level, LogMessage,
			slog.String("incident", msg.IncidentID),
			slog.String("kind", msg.Kind),
			slog.String("severity", msg.Severity.String()),
			slog.String("channel", msg.Channel),
			slog.String("recipient", msg.Recipient.ID),
			slog.String("subject", msg.Subject),
			slog.String("idempotency_key", msg.IdempotencyKey),
			slog.Int("attempt", msg.Attempt),
		)
		return nil
	})
}
