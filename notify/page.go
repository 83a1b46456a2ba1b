package notify

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
)

// PageAction says what a Page does to the alert it names.
type PageAction string

// The page actions, as on-call services know them (PagerDuty's event
// actions).
const (
	// PageTrigger opens the alert, or repeats it: a person is needed.
	PageTrigger PageAction = "trigger"
	// PageAcknowledge says a person took the alert: stop escalating it.
	PageAcknowledge PageAction = "acknowledge"
	// PageResolve says nobody is needed any more (the incident moved on
	// or ended).
	PageResolve PageAction = "resolve"
)

// Page calls a person to an incident: what is needed from them and why. It
// is not a customer notice; on-call channels render it themselves.
//
// AlertKey names the alert across its trigger, repeats, acknowledgement
// and resolution (PagerDuty's dedup_key): it is the same for every page of
// one need of one incident. IdempotencyKey names this one page (a retry of
// it keeps the key; the next repeat or level has another).
type Page struct {
	IdempotencyKey string
	AlertKey       string
	Action         PageAction
	IncidentID     string
	Kind           string
	Severity       incident.Severity
	// Subject is what the incident is about (an API key's ID); never a
	// secret.
	Subject string
	// Title is one line for a pager's screen: "Incident inc_… (kind,
	// critical) needs a person".
	Title string
	// Reason is why a person is needed: the escalation's reason, the
	// approval asked for.
	Reason string
	// Needed says what the person is to do: "approve or deny containment
	// action disable-key", "decide whether to notify customers".
	Needed string
	// Deadline is when a clock runs out or a timeout applies, if one does.
	Deadline time.Time
	// Link is the incident's page in the console, when the host set one.
	Link string
	// Level is the escalation level paged (1 is the first); Repeat counts
	// the pages of the level before this one.
	Level, Repeat int
	// Responder is who the level pages (a schedule, a team, a person), as
	// the playbook's escalation policy names it.
	Responder string
	// Attempt is the delivery attempt of this page, from 1.
	Attempt int
}

// Pager sends pages to on-call people. Page makes one attempt: the
// orchestrator retries per its policy with the same IdempotencyKey, so an
// implementation should pass the key on when its service de-duplicates.
// Errors may be marked with incident.Permanent (a payload the service
// refuses) or incident.RetryAfter (a 429 with Retry-After). Implementations
// must be safe for concurrent use and honour ctx.
type Pager interface {
	Page(ctx context.Context, p Page) error
}

// PagerFunc adapts a function to Pager, like http.HandlerFunc.
type PagerFunc func(ctx context.Context, p Page) error

// Page calls f(ctx, p).
func (f PagerFunc) Page(ctx context.Context, p Page) error { return f(ctx, p) }

// ErrInvalidPage is matched by the error of a Page that lacks what every
// page needs: an IdempotencyKey, an AlertKey, an IncidentID and a known
// Action.
var ErrInvalidPage = errors.New("notify: invalid page")

// Validate returns an error matching ErrInvalidPage when p lacks an
// IdempotencyKey, an AlertKey, an IncidentID or a known Action.
func (p Page) Validate() error {
	switch {
	case p.IdempotencyKey == "":
		return pageError("no idempotency key")
	case p.AlertKey == "":
		return pageError("no alert key")
	case p.IncidentID == "":
		return pageError("no incident ID")
	}
	switch p.Action {
	case PageTrigger, PageAcknowledge, PageResolve:
		return nil
	case "":
		return pageError("no action")
	}
	return pageError("unknown action " + strconv.Quote(string(p.Action)))
}

func pageError(why string) error { return &invalidPageError{why: why} }

type invalidPageError struct{ why string }

func (e *invalidPageError) Error() string        { return "notify: invalid page: " + e.why }
func (e *invalidPageError) Is(target error) bool { return target == ErrInvalidPage }
