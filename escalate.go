package breach

import (
	"context"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
)

// alert is a message to responders decided during a check.
type alert struct {
	subject, text string
	key           string
}

// page tells the on-call notifier, best effort, and logs what it could not.
// It returns the failure, redacted, already logged; nil without an on-call
// notifier.
func (o *Orchestrator) page(ctx context.Context, inc *incident.Incident, a alert) error {
	if o.cfg.oncall == nil {
		return nil
	}
	msg := notify.Message{IdempotencyKey: a.key, Attempt: 1, Channel: "on-call", Recipient: incident.Customer{ID: "on-call"},
		Subject: a.subject, Text: a.text, IncidentID: inc.ID, Kind: inc.Kind, Severity: inc.Severity}
	err := o.redactErr(inc.ID, retry.Call(ctx, 30*time.Second, func(ctx context.Context) error { return o.cfg.oncall.Notify(ctx, msg) }))
	if err != nil {
		o.log.Error("breach: paging on-call failed", "incident", inc.ID, "subject", a.subject, "err", err)
	}
	return err
}

// escalate hands the incident to a person, recording why, and tells the
// on-call notifier.
func (o *Orchestrator) escalate(ctx context.Context, inc *incident.Incident, from incident.State, reason string) error {
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.State != from {
			return errStale
		}
		inc.Escalation = &incident.Escalation{From: from, Reason: o.redact(inc.ID, reason), At: o.cfg.now()}
		return o.fire(inc, incident.EventEscalate, incident.ActorSystem, reason)
	})
	if err != nil {
		return err
	}
	o.log.Warn("breach: incident escalated", "incident", inc.ID, "from", string(from), "reason", o.redact(inc.ID, reason))
	if o.cfg.oncall == nil {
		return nil
	}
	nerr := o.page(ctx, inc, alert{
		key:     incident.IdempotencyKey(inc.ID, "escalate", strconv.Itoa(inc.Chain.Len)),
		subject: "Incident " + inc.ID + " (" + inc.Kind + ", " + inc.Severity.String() + ") needs a person",
		text: "Incident " + inc.ID + " about " + inc.Subject + " was escalated from " + string(from) + ".\n\nReason: " +
			o.redact(inc.ID, reason) + "\n",
	})
	detail := "on-call notified of the escalation"
	if nerr != nil {
		detail = "telling on-call of the escalation failed: " + nerr.Error()
	}
	return o.mutate(ctx, inc, func(inc *incident.Incident) error {
		o.record(inc, incident.ActorSystem, incident.EntryNote, detail)
		return nil
	})
}
