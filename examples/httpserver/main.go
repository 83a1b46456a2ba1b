// Command httpserver is an ordinary net/http backend that embeds the breach
// orchestrator. It receives leaked-credential alerts from a code-hosting
// platform's secret-scanning partner program, revokes the leaked API key,
// tells the customer, and mounts the library's console for responders:
//
//	POST /secret-scanning                 the partner-program endpoint (signed alerts)
//	GET  /console/                        the console: the register, each incident, forms for every action
//	     /console/api/...                 the console's JSON API (see breach.NewConsole)
//	GET  /debug/vars                      expvar counters fed by the orchestrator's Observer
//
// The console needs the host to say who is asking. This example asks for
// HTTP basic auth against a fixed list of responders (-responders
// "alice:secret,bob:secret"; without it, one responder with a random
// password written to the log); a real backend names the actor from its own
// sign-in (a session, a header its auth proxy sets).
//
// The API keys, the customer directory and the mail outbox are in memory;
// a real backend wires its own.
//
//	go run ./examples/httpserver -addr 127.0.0.1:8080
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
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
	users := flag.String("responders", "", "console users, name:password,... (default: responder with a random password)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	team, err := parseResponders(*users)
	if err != nil {
		log.Error("starting", "err", err)
		os.Exit(1)
	}
	if len(team) == 0 {
		var b [12]byte
		_, _ = rand.Read(b[:])
		team = responders{"responder": hex.EncodeToString(b[:])}
		log.Info("console sign-in", "user", "responder", "password", team["responder"])
	}
	a, err := newApp(secretscan.URLKeys(http.DefaultClient, *keysURL, nil), log, team,
		breach.WithConsoleURL("http://"+*addr+"/console"))
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
	log.Info("listening", "addr", *addr, "console", "http://"+*addr+"/console/")
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
	console      http.Handler
	team         responders
	log          *slog.Logger
}

func newApp(keySource secretscan.KeySource, log *slog.Logger, team responders, opts ...breach.Option) (*app, error) {
	a := &app{keys: &keyService{keys: map[string]*apiKey{}}, mail: &outbox{}, team: team, log: log}
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
	o, err := breach.New(incident.NewMemStore(), append([]breach.Option{
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
		})}, opts...)...)
	if err != nil {
		return nil, err
	}
	a.orchestrator = o
	// The console names each person from the host's own sign-in: here the
	// basic-auth user that responders.require let through.
	if a.console, err = breach.NewConsole(o, breach.ConsoleConfig{Actor: team.actor, Logger: log}); err != nil {
		return nil, err
	}
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
	mux.Handle("/console/", a.team.require(http.StripPrefix("/console", a.console)))
	mux.Handle("GET /debug/vars", expvar.Handler())
	return mux
}

// ---- who is asking: the host's authentication, not the library's ----

// responders stands for the host's own sign-in: HTTP basic auth against a
// fixed list of names and passwords. A real backend has sessions or an
// auth proxy; the console only needs its ConsoleConfig.Actor to say who is
// asking.
type responders map[string]string // name → password

// parseResponders reads "alice:secret,bob:secret".
func parseResponders(s string) (responders, error) {
	rs := responders{}
	for pair := range strings.SplitSeq(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		name, password, ok := strings.Cut(pair, ":")
		if !ok || name == "" || password == "" {
			return nil, fmt.Errorf("responder %q is not name:password", name)
		}
		rs[name] = password
	}
	return rs, nil
}

// user is the responder r signs in as, if its basic-auth credentials are
// right.
func (rs responders) user(r *http.Request) (string, bool) {
	name, password, ok := r.BasicAuth()
	want, known := rs[name]
	if !ok || !known {
		return "", false
	}
	return name, subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

// require asks the browser to sign in before next.
func (rs responders) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := rs.user(r); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="breach console", charset="UTF-8"`)
			http.Error(w, "sign in to use the console", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// actor is the console's ConsoleConfig.Actor.
func (rs responders) actor(r *http.Request) (string, error) {
	if name, ok := rs.user(r); ok {
		return name, nil
	}
	return "", errors.New("not signed in")
}
