// Command httpserver is an ordinary net/http backend that embeds the breach
// orchestrator. It receives leaked-credential alerts from a code-hosting
// platform's secret-scanning partner program, revokes the leaked API key,
// tells the customer, and gives responders a small JSON API:
//
//	POST /secret-scanning                 the partner-program endpoint (signed alerts)
//	GET  /incidents                       open incidents, JSON
//	GET  /incidents/{id}                  one incident, JSON; the Markdown report with Accept: text/markdown
//	POST /incidents/{id}/{action}         dismiss, resolve, close, reopen, retry; body {"actor": "...", "note": "..."}
//	POST /incidents/{id}/milestones/{m}   record a milestone such as authority-notified
//	POST /incidents/{id}/tasks/{task}     mark a prevention task done
//	GET  /debug/vars                      expvar counters fed by the orchestrator's Observer
//
// The API keys, the customer directory and the mail outbox are in memory;
// a real backend wires its own.
//
//	go run ./examples/httpserver -addr 127.0.0.1:8080
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
	"github.com/breachkit/breach/notify"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	keysURL := flag.String("keys-url", secretscan.GitHubKeysURL, "where the platform publishes its signing keys")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := newApp(secretscan.URLKeys(http.DefaultClient, *keysURL, nil), log)
	if err != nil {
		log.Error("starting", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: *addr, Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	go func() {
		if err := a.orchestrator.Run(ctx); err != nil {
			log.Error("orchestrator", "err", err)
		}
	}()
	log.Info("listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving", "err", err)
		os.Exit(1)
	}
}

// ---- the host's own parts, in memory ----

type apiKey struct {
	ID, Account, Secret string
	Active              bool
}

type keyService struct {
	mu   sync.Mutex
	keys map[string]*apiKey // by ID
}

// Create issues a new key for account and returns it.
func (s *keyService) Create(account string) apiKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b [16]byte
	_, _ = rand.Read(b[:])
	k := &apiKey{ID: "key_" + hex.EncodeToString(b[:4]), Account: account, Secret: "sk_live_" + hex.EncodeToString(b[:]), Active: true}
	s.keys[k.ID] = k
	return *k
}

func (s *keyService) byToken(token string) (apiKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Secret == token {
			return *k, true
		}
	}
	return apiKey{}, false
}

func (s *keyService) setActive(id string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return incident.Permanent(fmt.Errorf("no API key %s", id))
	}
	k.Active = active
	return nil
}

// Authenticate reports whether token is an active key.
func (s *keyService) Authenticate(token string) bool {
	k, ok := s.byToken(token)
	return ok && k.Active
}

type revoke struct{ keys *keyService }

func (r revoke) Contain(ctx context.Context, req containment.Request) error {
	return r.keys.setActive(req.Subject, false)
}

func (r revoke) Release(ctx context.Context, req containment.Request) error {
	return r.keys.setActive(req.Subject, true)
}

func (r revoke) Verify(ctx context.Context, req containment.Request) error {
	if !req.Credential.IsZero() && r.keys.Authenticate(req.Credential.Reveal()) {
		return errors.New("the revoked key still authenticates")
	}
	return nil
}

// outbox stands for the host's e-mail provider: it keeps what was sent and
// drops a repeat with the same idempotency key.
type outbox struct {
	mu   sync.Mutex
	sent []notify.Message
}

func (b *outbox) Notify(ctx context.Context, m notify.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sent {
		if s.IdempotencyKey == m.IdempotencyKey {
			return nil
		}
	}
	b.sent = append(b.sent, m)
	return nil
}

func (b *outbox) Sent() []notify.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]notify.Message(nil), b.sent...)
}

var customers = map[string]incident.Customer{
	"acct_7": {ID: "acct_7", Name: "Northwind Ads", Email: "security@northwind.example"},
}

// metrics are published at /debug/vars.
var metrics = expvar.NewMap("breach")

// ---- the app ----

type app struct {
	orchestrator *breach.Orchestrator
	keys         *keyService
	mail         *outbox
	scan         *secretscan.Handler
	log          *slog.Logger
}

func newApp(keySource secretscan.KeySource, log *slog.Logger) (*app, error) {
	a := &app{keys: &keyService{keys: map[string]*apiKey{}}, mail: &outbox{}, log: log}
	investigate := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		// A public key grants API access to the account's data until revoked.
		c, ok := customers[inc.Account]
		if !ok {
			return incident.Findings{Summary: "the key belongs to no known customer"}, nil
		}
		return incident.Findings{
			RootCause: "API key published in a public repository",
			Summary:   "An API key of your account was published in a public code repository, where anyone could use it to access your account through our API.",
			Impact:    incident.Impact{Customers: []incident.Customer{c}, Data: []incident.DataCategory{incident.DataAPIAccess}},
		}, nil
	})
	o, err := breach.New(incident.NewMemStore(),
		breach.WithLogger(log),
		breach.WithObserver(breach.ObserverFunc(count)),
		breach.WithPlaybook(breach.Playbook{
			Kind:     secretscan.DefaultKind,
			Strategy: breach.ContainFirst,
			Containment: []containment.Action{{
				Name: "revoke-api-key", Description: "revoked the exposed API key", Container: revoke{a.keys},
				Policy: incident.Policy{Attempts: 5, Timeout: 5 * time.Second},
			}},
			Investigator:    investigate,
			Notifiers:       []notify.Route{{Channel: "email", Notifier: a.mail}},
			Recommendations: []string{"Generate a new API key in your dashboard and replace the revoked one wherever it is used."},
			Clocks:          []breach.Clock{breach.GDPR()},
			Tasks:           []breach.TaskSpec{{ID: "confirm-rotation", Title: "Confirm the customer rotated the key", Mandatory: true}},
			Sender:          "The Example security team",
			Contact:         "security@example.com",
		}))
	if err != nil {
		return nil, err
	}
	a.orchestrator = o
	a.scan, err = secretscan.New(secretscan.Config{
		Keys:     &secretscan.KeySet{Source: keySource},
		Reporter: o,
		Logger:   log,
		Resolve: func(ctx context.Context, m secretscan.Match) (secretscan.Identity, error) {
			k, ok := a.keys.byToken(m.Token.Reveal())
			if !ok {
				return secretscan.Identity{}, secretscan.ErrUnknownToken
			}
			return secretscan.Identity{Subject: k.ID, Account: k.Account}, nil
		},
	})
	return a, err
}

// count feeds the expvar counters.
func count(_ context.Context, ob breach.Observation) {
	switch ob.Kind {
	case breach.ObserveSignal:
		metrics.Add("signals_"+ob.Outcome, 1)
	case breach.ObserveTransition:
		metrics.Add("incidents_"+string(ob.To), 1)
	case breach.ObserveStep:
		metrics.Add("steps_"+ob.Step+"_"+ob.Outcome, 1)
	}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /secret-scanning", a.scan)
	mux.HandleFunc("GET /incidents", a.list)
	mux.HandleFunc("GET /incidents/{id}", a.get)
	mux.HandleFunc("POST /incidents/{id}/{action}", a.act)
	mux.HandleFunc("POST /incidents/{id}/milestones/{milestone}", a.milestone)
	mux.HandleFunc("POST /incidents/{id}/tasks/{task}", a.task)
	mux.Handle("GET /debug/vars", expvar.Handler())
	return mux
}

type incidentSummary struct {
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	Subject  string         `json:"subject"`
	Severity string         `json:"severity"`
	State    incident.State `json:"state"`
	Detected time.Time      `json:"detected_at"`
}

func (a *app) list(w http.ResponseWriter, r *http.Request) {
	page, err := a.orchestrator.List(r.Context(), incident.ListFilter{})
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]incidentSummary, 0, len(page.Incidents))
	for _, inc := range page.Incidents {
		out = append(out, incidentSummary{inc.ID, inc.Kind, inc.Subject, inc.Severity.String(), inc.State, inc.DetectedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *app) get(w http.ResponseWriter, r *http.Request) {
	inc, err := a.orchestrator.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/markdown") || r.URL.Query().Get("format") == "markdown" {
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		_, _ = w.Write([]byte(inc.Markdown()))
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

type actionBody struct {
	Actor string `json:"actor"`
	Note  string `json:"note"`
}

func readAction(w http.ResponseWriter, r *http.Request) (actionBody, bool) {
	var b actionBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&b); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON {\"actor\":...,\"note\":...}: " + err.Error()})
		return b, false
	}
	return b, true
}

func (a *app) act(w http.ResponseWriter, r *http.Request) {
	b, ok := readAction(w, r)
	if !ok {
		return
	}
	ctx, id, o := r.Context(), r.PathValue("id"), a.orchestrator
	var err error
	switch r.PathValue("action") {
	case "dismiss":
		err = o.Dismiss(ctx, id, b.Actor, b.Note)
	case "resolve":
		err = o.Resolve(ctx, id, b.Actor, b.Note)
	case "close":
		err = o.Close(ctx, id, b.Actor, b.Note)
	case "reopen":
		err = o.Reopen(ctx, id, b.Actor, b.Note)
	case "retry":
		err = o.Retry(ctx, id, b.Actor, b.Note)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown action " + r.PathValue("action")})
		return
	}
	a.done(w, r, err)
}

func (a *app) milestone(w http.ResponseWriter, r *http.Request) {
	if b, ok := readAction(w, r); ok {
		a.done(w, r, a.orchestrator.RecordMilestone(r.Context(), r.PathValue("id"), incident.Milestone(r.PathValue("milestone")), b.Actor, b.Note))
	}
}

func (a *app) task(w http.ResponseWriter, r *http.Request) {
	if b, ok := readAction(w, r); ok {
		a.done(w, r, a.orchestrator.CompleteTask(r.Context(), r.PathValue("id"), r.PathValue("task"), b.Actor, b.Note))
	}
}

func (a *app) done(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		a.fail(w, err)
		return
	}
	inc, err := a.orchestrator.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, incidentSummary{inc.ID, inc.Kind, inc.Subject, inc.Severity.String(), inc.State, inc.DetectedAt})
}

// fail maps the library's typed errors to HTTP statuses.
func (a *app) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var te *incident.TransitionError
	switch {
	case errors.Is(err, incident.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, breach.ErrInvalidInput), errors.Is(err, breach.ErrNoSuchTask), errors.Is(err, breach.ErrInvalidInput):
		status = http.StatusBadRequest
	case errors.As(err, &te), errors.Is(err, breach.ErrOpenTasks), errors.Is(err, breach.ErrNotEscalated),
		errors.Is(err, incident.ErrDuplicate), errors.Is(err, incident.ErrConflict):
		status = http.StatusConflict
	default:
		a.log.Error("request failed", "err", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
