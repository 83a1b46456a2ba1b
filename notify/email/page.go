package email

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// Page sends p to Config.OnCall as a plain-text e-mail (see ComposePage),
// in one SMTP transaction like Notify's, and fails like it. A Notifier
// without Config.OnCall refuses every page with a permanent error matching
// ErrConfig; a page that fails p.Validate is a permanent error matching
// notify.ErrInvalidPage. Neither connects to the server.
//
// It honours ctx (and Config.Timeout) as Notify does; the error then wraps
// ctx's cause.
func (e *Notifier) Page(ctx context.Context, p notify.Page) error {
	data, err := e.ComposePage(p)
	if err != nil {
		return err
	}
	return e.send(ctx, e.cfg.OnCall.Address, data)
}

// ComposePage returns the RFC 5322 message that Page sends for p, CRLF line
// endings and all: headers From, To (Config.OnCall), Subject, Date,
// Message-ID, References, MIME-Version, Auto-Submitted and the content
// headers; a text/plain; charset=utf-8 body, quoted-printable.
//
// The subject is p.Title (or "Incident ID needs a person") for a trigger,
// and "Acknowledged: " or "Resolved: " before the title (or "incident
// ID") for the others, with every run of white space, line breaks
// included, made one space: a page is not refused for its title. The body
// says what is needed, why and by when, the incident, the escalation level
// and responder, the link, the alert key and the page's idempotency key
// and attempt, leaving out what p does not have.
//
// The Message-ID is derived from p.IdempotencyKey as Compose derives a
// notice's, so a retried page keeps it; References names the alert (from
// p.AlertKey), so that mail clients thread the pages of one alert.
//
// An error is permanent (see incident.Permanent) and matches ErrConfig
// (no Config.OnCall) or notify.ErrInvalidPage.
func (e *Notifier) ComposePage(p notify.Page) ([]byte, error) {
	if e.cfg.OnCall.Address == "" {
		return nil, incident.Permanent(fmt.Errorf("%w: no OnCall address to page", ErrConfig))
	}
	if err := p.Validate(); err != nil {
		return nil, incident.Permanent(fmt.Errorf("email: %w", err))
	}
	title := oneLine(p.Title)
	var subject, status string
	switch p.Action {
	case notify.PageTrigger:
		if title == "" {
			title = oneLine("Incident " + p.IncidentID + " needs a person")
		}
		subject = title
	case notify.PageAcknowledge, notify.PageResolve:
		what := "Acknowledged"
		status = "A person took the alert; escalation stops."
		if p.Action == notify.PageResolve {
			what, status = "Resolved", "Nobody is needed any more."
		}
		if title == "" {
			title = oneLine("incident " + p.IncidentID)
		}
		subject = what + ": " + title
	}

	var b bytes.Buffer
	writeHeader(&b, "From", e.cfg.From.String())
	writeHeader(&b, "To", e.cfg.OnCall.String())
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", subject))
	writeHeader(&b, "Date", e.cfg.Now().Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+messageIDLeft(p.IdempotencyKey)+"@"+e.msgID+">")
	writeHeader(&b, "References", "<"+alertIDLeft(p.AlertKey)+"@"+e.msgID+">")
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Auto-Submitted", "auto-generated")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	if err := writeQP(&b, pageText(p, title, status)); err != nil {
		return nil, incident.Permanent(fmt.Errorf("email: %w", err))
	}
	return b.Bytes(), nil
}

// pageText is the body of a page's e-mail.
func pageText(p notify.Page, title, status string) string {
	var b strings.Builder
	line := func(label, value string) {
		if value != "" {
			b.WriteString(label + ": " + value + "\n")
		}
	}
	b.WriteString(title + "\n\n")
	if status != "" {
		b.WriteString(status + "\n\n")
	}
	line("Needed", p.Needed)
	line("Why", p.Reason)
	if !p.Deadline.IsZero() {
		line("Deadline", p.Deadline.UTC().Format("2006-01-02 15:04 MST"))
	}
	inc := p.IncidentID
	if p.Kind != "" {
		inc += " (" + p.Kind + ", " + p.Severity.String() + ")"
	} else {
		inc += " (" + p.Severity.String() + ")"
	}
	line("Incident", inc)
	line("Subject", p.Subject)
	var esc []string
	if p.Level > 0 {
		esc = append(esc, "level "+strconv.Itoa(p.Level))
		if p.Repeat > 0 {
			esc = append(esc, "repeat "+strconv.Itoa(p.Repeat))
		}
	}
	if p.Responder != "" {
		esc = append(esc, "responder "+p.Responder)
	}
	line("Escalation", strings.Join(esc, ", "))
	line("Link", p.Link)
	b.WriteString("\n")
	line("Alert", p.AlertKey)
	page := p.IdempotencyKey
	if p.Attempt > 0 {
		page += ", attempt " + strconv.Itoa(p.Attempt)
	}
	line("Page", page)
	return b.String()
}

// oneLine collapses every run of white space in s, line breaks included,
// into one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// alertIDLeft is the part before the @ of the Message-ID that References
// names for an alert: the same for every page of it, and never a page's.
func alertIDLeft(alertKey string) string { return messageIDLeft("alert." + alertKey) }
