package breach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/consoleui"
)

// The console (NewConsole): this file holds its configuration, the
// security every route shares and the map of errors; console_actions.go
// the table of actions, console_html.go renders the pages, console_api.go
// answers in JSON.

// ConsoleConfig configures NewConsole. Only Actor is required.
type ConsoleConfig struct {
	// Actor names the person making the request, from the host's own
	// authentication (a session cookie, a header its auth proxy sets, a
	// client certificate). The console has no sign-in of its own. Every
	// route asks it first: an error or an empty name refuses the request
	// with 401 Unauthorized, and nothing is read or recorded. The error's
	// text is logged at debug level, never shown. The name is the actor
	// the timeline records for the person's actions, so it must be one
	// every action accepts (see ErrInvalidInput): a name that is not
	// UTF-8 or holds a control character, a line separator or a
	// bidirectional control is refused with 401 too, and logged at warn
	// level, since only the host can mend it. Actor must be safe for
	// concurrent use.
	Actor func(r *http.Request) (string, error)
	// Authorize says whether actor may do action on the incident with ID
	// incidentID: ConsoleView for every page and read of the JSON API
	// (with incidentID "" for the register; the style sheet needs only an
	// actor), one of the other ConsoleActions for each post; a merge is
	// asked for twice, for the parent (the incident posted to) and then
	// for the child (see ConsoleMerge). An error refuses the request with
	// 403 Forbidden, and nothing is recorded; the error's text is shown
	// to the caller, so it should say what is missing ("approvals need
	// the incident-commander role") and nothing secret. Nil allows every action to every actor Actor names.
	// Authorize must be safe for concurrent use.
	Authorize func(r *http.Request, actor string, action ConsoleAction, incidentID string) error
	// PageSize is the number of rows of a page: incidents of the
	// register, deliveries and timeline entries of an incident. 0 means
	// 50; more than incident.MaxListLimit (500) means 500; negative is
	// invalid. A JSON API request may ask for another limit.
	PageSize int
	// CrossOrigin refuses cross-origin posts (CSRF) on every POST route,
	// with 403 Forbidden. Nil means http.NewCrossOriginProtection(); set
	// one to trust other origins (AddTrustedOrigin). The console calls
	// only its Check method and never changes it.
	CrossOrigin *http.CrossOriginProtection
	// Logger receives failures the caller sees only as "internal error",
	// and refusals. Nil means the orchestrator's logger (WithLogger).
	Logger *slog.Logger
}

// consoleCSP is the Content-Security-Policy of every response: nothing
// but the console's own style sheet loads, forms post only to the
// console, and no other site may frame it.
const consoleCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// consoleMaxBody bounds the body of a post, form or JSON.
const consoleMaxBody = 64 << 10

// consoleVerifyMax is the longest timeline the incident page reads whole
// to check its hash chain; a longer one is left to Timeline.Verify offline.
const consoleVerifyMax = 5000

// NewConsole returns the console of o as an http.Handler, to be mounted
// under a prefix with http.StripPrefix:
//
//	console, err := breach.NewConsole(o, breach.ConsoleConfig{Actor: actorFromSession})
//	mux.Handle("/console/", http.StripPrefix("/console", console))
//
// Its pages, relative to the prefix, work without JavaScript and load
// nothing from elsewhere:
//
//	GET  /                            the register, newest first: filters state, kind, account, from, to; cursor pages
//	GET  /incidents/{id}              the incident, with a form for every action it allows
//	GET  /incidents/{id}/report.md    Incident.Markdown, as a download
//	POST /incidents/{id}/{action}     a form post of one ConsoleAction; 303 See Other to the incident's page
//	GET  /console.css                 the only style sheet
//
// The JSON API under /api/ answers with the incident's own JSON form (its
// head, see incident.Incident: snake_case names, stable across releases);
// the timeline and the notices are paged apart:
//
//	GET  /api/incidents?state=&kind=&account=&from=&to=&cursor=&limit=  {"incidents": [...], "next_cursor": "..."}
//	GET  /api/incidents/{id}                                             the incident
//	GET  /api/incidents/{id}/timeline?from=&limit=                       {"entries": [...], "next_from": 50, "chain": {...}}
//	GET  /api/incidents/{id}/deliveries?after=&limit=&status=            {"deliveries": [...], "next_after": "..."}
//	POST /api/incidents/{id}/{action}    {"action": "disable-key", ...}  the incident after the action
//	a refusal or failure: {"error": {"code": "open_tasks", "message": "...", "open_tasks": ["scan"]}}
//
// (console_api.go documents every field and code.) Every response carries a strict
// Content-Security-Policy, X-Content-Type-Options: nosniff and
// Referrer-Policy: same-origin; every page and JSON answer Cache-Control:
// no-store. Every value is escaped by html/template. Posts are refused
// without an actor (401), from another origin (403, see
// ConsoleConfig.CrossOrigin), without Authorize's leave (403), and with a
// body over 64 KiB (413); JSON posts also need Content-Type
// application/json (415). A post's action runs to its end (for at most a
// minute) even when the caller goes away.
//
// Errors of the orchestrator map to statuses: ErrInvalidInput and other
// bad arguments to 400 (incident.ErrInvalidEvidence and
// incident.ErrCredentialEvidence among them: the message names the field,
// never the value refused), incident.ErrNotFound to 404 (also for a merge
// whose child does not exist), an action the incident's state refuses (a
// *incident.TransitionError, ErrOpenTasks, ErrNoApprovalPending,
// ErrNoAlert, ErrNotEscalated, ErrNoSuchClock, ErrIncidentEnded,
// ErrSameSeverity, ErrMerged, ErrMergeBlocked, ...) and write conflicts
// to 409, ErrLimitReached to 409 as well (the incident holds as much as
// it may: the same request will not succeed later), anything else to 500
// with a generic message and the detail in the log. A failed form post
// shows the incident's page again with the message (and the open tasks
// that keep it from being resolved).
//
// NewConsole returns an error matching ErrInvalidConsoleConfig for a nil
// orchestrator, a nil Actor or a negative PageSize. The handler is safe for
// concurrent use.
func NewConsole(o *Orchestrator, cfg ConsoleConfig) (http.Handler, error) {
	switch {
	case o == nil:
		return nil, fmt.Errorf("%w: nil orchestrator", ErrInvalidConsoleConfig)
	case cfg.Actor == nil:
		return nil, fmt.Errorf("%w: nil Actor: the console needs the host to say who is asking", ErrInvalidConsoleConfig)
	case cfg.PageSize < 0:
		return nil, fmt.Errorf("%w: negative PageSize %d", ErrInvalidConsoleConfig, cfg.PageSize)
	}
	ui, err := consoleui.Load()
	if err != nil {
		return nil, err
	}
	c := &console{o: o, cfg: cfg, ui: ui, log: cfg.Logger, cop: cfg.CrossOrigin,
		pageSize: incident.ListFilter{Limit: cfg.PageSize}.PageSize()}
	if c.log == nil {
		c.log = o.log
	}
	if c.cop == nil {
		c.cop = http.NewCrossOriginProtection()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.register)
	mux.HandleFunc("GET /console.css", c.css)
	mux.HandleFunc("GET /incidents/{id}", c.incident)
	mux.HandleFunc("GET /incidents/{id}/report.md", c.report)
	mux.HandleFunc("POST /incidents/{id}/{action}", c.post)
	mux.HandleFunc("GET /api/incidents", c.apiList)
	mux.HandleFunc("GET /api/incidents/{id}", c.apiIncident)
	mux.HandleFunc("GET /api/incidents/{id}/timeline", c.apiTimeline)
	mux.HandleFunc("GET /api/incidents/{id}/deliveries", c.apiDeliveries)
	mux.HandleFunc("POST /api/incidents/{id}/{action}", c.apiPost)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, refuse(http.StatusNotFound, "not_found", "no such page in the console"))
	})
	c.mux = mux
	return c, nil
}

type console struct {
	o        *Orchestrator
	cfg      ConsoleConfig
	ui       *consoleui.UI
	log      *slog.Logger
	cop      *http.CrossOriginProtection
	mux      *http.ServeMux
	pageSize int
}

type actorKey struct{}

// ServeHTTP sets the security headers, asks for the actor and routes.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	actor, err := c.cfg.Actor(r)
	if err == nil && actor != "" {
		if err = checkActor(actor); err != nil {
			c.log.Warn("breach: console: the host's Actor named someone no action accepts", "method", r.Method,
				"path", r.URL.Path, "actor", strconv.QuoteToASCII(actor), "err", err)
		}
	}
	if err != nil || actor == "" {
		if err != nil {
			c.log.Debug("breach: console: no actor", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		c.fail(w, r, refuse(http.StatusUnauthorized, "unauthorized", "sign-in required: the console could not tell who you are"))
		return
	}
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
}

// actorOf is the actor ServeHTTP found for r.
func actorOf(r *http.Request) string {
	a, _ := r.Context().Value(actorKey{}).(string)
	return a
}

// authorize asks ConsoleConfig.Authorize whether r's actor may do action on
// incident id.
func (c *console) authorize(r *http.Request, action ConsoleAction, id string) error {
	if c.cfg.Authorize == nil {
		return nil
	}
	actor := actorOf(r)
	if err := c.cfg.Authorize(r, actor, action, id); err != nil {
		c.log.Info("breach: console refused an action", "actor", actor, "action", string(action), "incident", id, "err", err)
		return refuse(http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not %s: %v", actor, action, err))
	}
	return nil
}

// viewing returns the ID of the incident r's path names when r's actor
// may view it; otherwise it answers r with the refusal and reports false.
func (c *console) viewing(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := c.authorize(r, ConsoleView, id); err != nil {
		c.fail(w, r, err)
		return "", false
	}
	return id, true
}

// consoleActionTimeout bounds an action a post runs. The action runs to
// its end even when the caller goes away (a closed tab must not leave a
// dismissal half done).
const consoleActionTimeout = time.Minute

// act runs action on incident id for r's actor, with the fields read
// reads. The refusals come first, and nothing is recorded when one
// applies: a cross-origin post, an action the console does not have,
// Authorize's refusal, a bad body.
func (c *console) act(r *http.Request, action ConsoleAction, id string, read func(op consoleOp) (map[string]string, error)) error {
	if err := c.cop.Check(r); err != nil {
		return refuse(http.StatusForbidden, "cross_origin", "cross-origin request refused: post from the console's own pages")
	}
	op, ok := consoleOps[action]
	if !ok {
		return refuse(http.StatusNotFound, "not_found", "the console has no action "+strconv.Quote(string(action)))
	}
	if err := c.authorize(r, action, id); err != nil {
		return err
	}
	in, err := read(op)
	if err != nil {
		return err
	}
	if op.also != "" {
		if err := c.authorize(r, action, in[op.also]); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), consoleActionTimeout)
	defer cancel()
	may := func(also ConsoleAction) error { return c.authorize(r, also, id) }
	return op.run(consoleCall{ctx: ctx, o: c.o, id: id, actor: actorOf(r), in: in, may: may})
}

// consoleRefusal is an error the console answers with its own status and
// code.
type consoleRefusal struct {
	status        int
	code, message string
}

func (e *consoleRefusal) Error() string { return e.message }

func refuse(status int, code, message string) error {
	return &consoleRefusal{status: status, code: code, message: message}
}

// consoleProblem is what a caller is told of an error.
type consoleProblem struct {
	status    int
	code      string
	message   string
	openTasks []string
}

// classify maps err to a status, a code and a message. Messages of 4xx
// errors are the errors' own text (the orchestrator's errors name no
// secret); anything else is "internal", its detail only in the log.
func classify(err error) consoleProblem {
	var (
		refusal *consoleRefusal
		open    *OpenTasksError
		te      *incident.TransitionError
		mbe     *http.MaxBytesError
		ae      *containment.ActionError
	)
	p := func(status int, code string) consoleProblem {
		return consoleProblem{status: status, code: code, message: err.Error()}
	}
	switch {
	case errors.As(err, &refusal):
		return consoleProblem{status: refusal.status, code: refusal.code, message: refusal.message}
	case errors.As(err, &mbe):
		return consoleProblem{status: http.StatusRequestEntityTooLarge, code: "too_large",
			message: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &open):
		pr := p(http.StatusConflict, "open_tasks")
		pr.message, pr.openTasks = "mandatory tasks are open: complete them before resolving", open.Tasks
		return pr
	case errors.Is(err, incident.ErrNotFound):
		return p(http.StatusNotFound, "not_found")
	case errors.Is(err, ErrInvalidInput), errors.Is(err, ErrNoSuchTask), errors.Is(err, incident.ErrInvalidFilter),
		errors.Is(err, incident.ErrInvalidEvidence), errors.Is(err, incident.ErrUnknownSeverity):
		// An *incident.EvidenceError never quotes the value it refused
		// (a credential, perhaps): its text is safe to show.
		return p(http.StatusBadRequest, "invalid_input")
	case errors.Is(err, ErrLimitReached):
		return p(http.StatusConflict, "limit_reached")
	case errors.Is(err, ErrDismissalPending), errors.As(err, &te), errors.Is(err, ErrNoApprovalPending),
		errors.Is(err, ErrNoAlert), errors.Is(err, ErrNotEscalated), errors.Is(err, ErrNoSuchClock),
		errors.Is(err, ErrDecisionLocked), errors.Is(err, incident.ErrConflict), errors.Is(err, incident.ErrDuplicate),
		errors.Is(err, ErrIncidentEnded), errors.Is(err, ErrSameSeverity), errors.Is(err, ErrMerged), errors.Is(err, ErrMergeBlocked):
		return p(http.StatusConflict, "conflict")
	case errors.As(err, &ae):
		// Dismiss: the incident is dismissed, some containment was not undone.
		return p(http.StatusBadGateway, "release_failed")
	case errors.Is(err, incident.ErrNotSupported):
		return p(http.StatusNotImplemented, "not_supported")
	case errors.Is(err, incident.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return consoleProblem{status: http.StatusServiceUnavailable, code: "unavailable", message: "the store did not answer in time; try again"}
	}
	return consoleProblem{status: http.StatusInternalServerError, code: "internal", message: "internal error: the details are in the server's log"}
}

// fail answers r with err: as JSON under /api/, as a page elsewhere.
func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if p.status >= 500 {
		c.log.Error("breach: console request failed", "method", r.Method, "path", r.URL.Path, "actor", actorOf(r), "err", err)
	}
	if isAPI(r) {
		c.apiError(w, p)
		return
	}
	c.errorPage(w, r, p)
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
