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

// LogPageMessage is the message of the records LogPager writes.
const LogPageMessage = "breach: page"

// LogPager returns a Pager that writes each page as one audit record to
// logger at level, with the attributes incident, kind, severity, action,
// alert_key, idempotency_key, attempt, subject, title, reason, needed, the
// group escalation (level, repeat, responder; a group, since slog's own
// "level" is the record's), and deadline (UTC) and link when the page has
// them: all a person on call needs to act on it from the log alone. (A
// Page holds no credentials: its Subject is never a secret.)
//
// It is a Pager of its own rather than a second face of Log's Notifier:
// pages and notices are different records for different readers, and Log
// keeps its signature.
//
// A nil logger means slog.Default() at the time of each call. Page always
// returns nil, even for a page that fails Validate (the record is the
// evidence), and writes nothing when the logger is not enabled for level.
// It is safe for concurrent use when the logger's handler is, as slog's
// handlers are.
func LogPager(logger *slog.Logger, level slog.Level) Pager {
	return PagerFunc(func(ctx context.Context, p Page) error {
		l := logger
		if l == nil {
			l = slog.Default()
		}
		if !l.Enabled(ctx, level) {
			return nil
		}
		attrs := []slog.Attr{
			slog.String("incident", p.IncidentID),
			slog.String("kind", p.Kind),
			slog.String("severity", p.Severity.String()),
			slog.String("action", string(p.Action)),
			slog.String("alert_key", p.AlertKey),
			slog.String("idempotency_key", p.IdempotencyKey),
			slog.Int("attempt", p.Attempt),
			slog.String("subject", p.Subject),
			slog.String("title", p.Title),
			slog.String("reason", p.Reason),
			slog.String("needed", p.Needed),
			slog.Group("escalation",
				slog.Int("level", p.Level),
				slog.Int("repeat", p.Repeat),
				slog.String("responder", p.Responder),
			),
		}
		if !p.Deadline.IsZero() {
			attrs = append(attrs, slog.Time("deadline", p.Deadline.UTC()))
		}
		if p.Link != "" {
			attrs = append(attrs, slog.String("link", p.Link))
		}
		l.LogAttrs(ctx, level, LogPageMessage, attrs...)
		return nil
	})
}
