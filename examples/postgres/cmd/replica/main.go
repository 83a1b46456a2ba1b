// Command replica is one replica of a host that responds to leaked API keys
// with breach, on a PostgreSQL database shared with its other replicas
// (package github.com/breachkit/breach/incident/pgstore). The multi-replica test of examples/postgres starts
// three of these and kills one with SIGKILL.
//
// It serves a small HTTP API on loopback and prints "listening ADDRESS" on
// stdout once it is ready:
//
//	POST /signal    a JSON signal (see wireSignal) → Orchestrator.Report
//	POST /complete  {"Incident": ID, "Task": ID}    → Orchestrator.CompleteTask
//
// Its plugins write what they do to tables of the host, so that a test can
// see it from outside:
//
//	steps(incident_id, replica, kind, started_at, finished_at)
//	    one row per plugin call (containment, investigation, notification),
//	    inserted when the call starts and finished when it returns; a row
//	    left unfinished is a call the replica died in.
//	deliveries_seen(idempotency_key, incident_id, replica, at)
//	    one row per customer notice handed over, duplicates included: the
//	    customers' inbox, before it drops repeats by key.
//
// The playbook contains first (one action), investigates (one affected
// customer, whose API access was exposed), notifies by email, and opens a
// mandatory "review" task; once it is done the playbook resolves and closes
// the incident by itself. The task keeps incidents open until a person (here
// the test) says the storm is over, so that every signal of a key joins one
// incident.
//
//	replica -db postgres://... -name replica-1 -lease 2s
//
// SIGTERM or SIGINT stops it gracefully.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
	"github.com/breachkit/breach/notify"
)

// Kind is the kind of incident the replica has a playbook for.
const Kind = "apikey.compromised"

// ReviewTask is the mandatory task that holds incidents open.
const ReviewTask = "review"

// HostSchema is the DDL of the host's own tables (see the package doc).
const HostSchema = `
CREATE TABLE IF NOT EXISTS steps (
	id          bigserial   PRIMARY KEY,
	incident_id text        NOT NULL,
	replica     text        NOT NULL,
	kind        text        NOT NULL,
	started_at  timestamptz NOT NULL,
	finished_at timestamptz,
	ok          boolean
);
CREATE INDEX IF NOT EXISTS steps_incident ON steps (incident_id);
CREATE TABLE IF NOT EXISTS deliveries_seen (
	idempotency_key text        NOT NULL,
	incident_id     text        NOT NULL,
	replica         text        NOT NULL,
	at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

type options struct {
	db          string
	schema      string
	name        string
	lease       time.Duration
	flush       time.Duration
	concurrency int
	conns       int
	work        time.Duration
	grace       time.Duration
	logLevel    slog.Level
}

func run() error {
	var o options
	flag.StringVar(&o.db, "db", os.Getenv("BREACH_POSTGRES_URL"), "PostgreSQL URL (default $BREACH_POSTGRES_URL)")
	flag.StringVar(&o.schema, "schema", "", "schema to use (search_path); empty: the URL's default")
	flag.StringVar(&o.name, "name", "", "this replica's name: its lease owner (required)")
	flag.DurationVar(&o.lease, "lease", 2*time.Second, "lease TTL: how long a dead replica holds its incidents")
	flag.DurationVar(&o.flush, "flush", 5*time.Millisecond, "group commit interval: how often joined signals are written to the store")
	flag.IntVar(&o.concurrency, "concurrency", 16, "incidents driven at once")
	flag.IntVar(&o.conns, "conns", 16, "connections in this replica's pool")
	flag.DurationVar(&o.work, "work", 10*time.Millisecond, "how long the containment action works")
	flag.DurationVar(&o.grace, "grace", 10*time.Second, "shutdown grace: plugin calls in flight and the final flush of signal counts share it")
	flag.TextVar(&o.logLevel, "log", slog.LevelWarn, "log level")
	flag.Parse()
	if o.db == "" || o.name == "" {
		return errors.New("-db (or $BREACH_POSTGRES_URL) and -name are required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel})).With("replica", o.name)

	cfg, err := pgxpool.ParseConfig(o.db)
	if err != nil {
		return err
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = o.schema
	}
	cfg.MaxConns = int32(o.conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool); err != nil {
		return err
	}
	store, err := pgstore.New(ctx, pool)
	if err != nil {
		return err
	}
	if err := migrateHost(ctx, pool); err != nil {
		return err
	}

	h := &host{pool: pool, name: o.name, work: o.work}
	orch, err := breach.New(store,
		breach.WithPlaybook(h.playbook()),
		breach.WithLease(o.name, o.lease),
		breach.WithFlushInterval(o.flush),
		breach.WithConcurrency(o.concurrency),
		breach.WithShutdownGrace(o.grace),
		breach.WithLogger(log),
	)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h.api(orch), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	// Run stops after the API: a signal taken after Run's final flush
	// would be counted nowhere.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	done := make(chan error, 1)
	go func() { done <- orch.Run(runCtx) }()
	fmt.Printf("listening %s\n", ln.Addr())

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopRun()
	err = <-done
	log.Info("stopped", "err", err)
	return err
}

// hostLock is the advisory lock key that serialises concurrent migrations
// of the host's tables.
const hostLock = 0x686f737401

func migrateHost(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(hostLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, HostSchema)
		return err
	})
}

// host is the replica's side of the plugins.
type host struct {
	pool *pgxpool.Pool
	name string
	work time.Duration
}

// step records one plugin call in steps around fn, with the database's
// clock.
func (h *host) step(ctx context.Context, incidentID, kind string, fn func(ctx context.Context) error) error {
	var id int64
	if err := h.pool.QueryRow(ctx,
		`INSERT INTO steps (incident_id, replica, kind, started_at) VALUES ($1, $2, $3, clock_timestamp()) RETURNING id`,
		incidentID, h.name, kind).Scan(&id); err != nil {
		return err
	}
	err := fn(ctx)
	// Record the end even when ctx ended: the call did end.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, uerr := h.pool.Exec(wctx, `UPDATE steps SET finished_at = clock_timestamp(), ok = $2 WHERE id = $1`, id, err == nil); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

func (h *host) playbook() breach.Playbook {
	policy := incident.Policy{Attempts: 5, Timeout: 10 * time.Second, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	return breach.Playbook{
		Kind:     Kind,
		Strategy: breach.ContainFirst,
		Containment: []containment.Action{{
			Name:        "disable-key",
			Description: "disabled the leaked API key",
			Policy:      policy,
			Container: containment.Func(func(ctx context.Context, req containment.Request) error {
				return h.step(ctx, req.IncidentID, "contain", func(ctx context.Context) error {
					select { // the key service at work
					case <-time.After(h.work):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
			}),
		}},
		Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			var f incident.Findings
			err := h.step(ctx, inc.ID, "investigate", func(context.Context) error {
				f = incident.Findings{
					RootCause: "API key " + inc.Subject + " leaked",
					Impact: incident.Impact{
						Customers: []incident.Customer{{ID: "cust-" + inc.Subject, Email: inc.Subject + "@customer.example"}},
						Data:      []incident.DataCategory{incident.DataAPIAccess},
						Summary:   "the key could read the customer's API data",
					},
				}
				return nil
			})
			return f, err
		}),
		Investigation: policy,
		Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
			return h.step(ctx, m.IncidentID, "notify", func(ctx context.Context) error {
				_, err := h.pool.Exec(ctx, `INSERT INTO deliveries_seen (idempotency_key, incident_id, replica) VALUES ($1, $2, $3)`,
					m.IdempotencyKey, m.IncidentID, h.name)
				return err
			})
		})}},
		Delivery:        policy,
		Recommendations: []string{"Generate a new API key"},
		Tasks:           []breach.TaskSpec{{ID: ReviewTask, Title: "Review once the signal storm is over", Mandatory: true}},
		AutoResolve:     true,
		AutoClose:       true,
	}
}

// wireSignal is a signal as the API takes it. incident.Signal does not
// decode from JSON: its Credential is a Secret, which encodes redacted and
// has no decoder, on purpose.
type wireSignal struct {
	Kind       string
	Subject    string
	DedupKey   string
	Severity   incident.Severity
	Source     string
	Account    string
	Summary    string
	At         time.Time
	Attributes map[string]string
	Credential string
}

// Completion names a task to mark done.
type Completion struct {
	Incident string
	Task     string
}

func (h *host) api(o *breach.Orchestrator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signal", func(w http.ResponseWriter, r *http.Request) {
		var s wireSignal
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc, err := o.Report(r.Context(), incident.Signal{
			Kind: s.Kind, Subject: s.Subject, DedupKey: s.DedupKey, Severity: s.Severity, Source: s.Source,
			Account: s.Account, Summary: s.Summary, At: s.At, Attributes: s.Attributes,
			Credential: incident.NewSecret(s.Credential),
		})
		switch {
		case errors.Is(err, incident.ErrInvalidSignal):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rc)
	})
	mux.HandleFunc("POST /complete", func(w http.ResponseWriter, r *http.Request) {
		var c Completion
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		err := o.CompleteTask(r.Context(), c.Incident, c.Task, "operator@host.example", "signal storm over")
		switch {
		case errors.Is(err, incident.ErrNotFound), errors.Is(err, breach.ErrNoSuchTask):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	return mux
}
