// Package pgstore keeps breach incidents in PostgreSQL, for hosts that run
// one or several replicas of an orchestrator on one database.
//
// Store implements incident.Store, incident.Leaser and incident.Lister (the
// register of every incident, open or ended, read by position with List):
//
//   - One open incident per dedup key: a partial unique index on
//     incidents(dedup_key) WHERE open. Two replicas opening an incident for
//     one key at once get one incident; the loser's Create fails with an
//     *incident.DuplicateError naming the winner, and the orchestrator joins
//     it.
//   - Compare-and-swap: Update writes only if the stored version still
//     equals the caller's (UPDATE ... WHERE id = $1 AND version = $2), and
//     bumps it, so two replicas never both win a step.
//   - Claims for deliveries and containment actions live in the incident
//     record itself: the orchestrator writes the claim (a Delivery in state
//     "claimed", an ActionRecord "pending") with a compare-and-swap before it
//     calls the notifier or container. Of two replicas racing to claim, one
//     wins the CAS and the other re-reads and sees the claim. A replica that
//     dies after claiming leaves the claim on the record; whoever takes the
//     incident over sends again with the same idempotency key (at least
//     once; the key lets the receiver drop the repeat). No table of its own
//     is needed for that.
//   - Leases in a table of their own, leases(incident_id, owner, until), so
//     that a lease may be taken on an incident that is not stored yet (the
//     Leaser contract allows it). The database's clock is the clock: expiry
//     is compared with now() on the server, so replicas' clocks need not
//     agree.
//
// Each incident is kept whole, in its JSON form (see package incident), in
// incidents.body (type json, which keeps the text as written: key order,
// and \u0000 that jsonb refuses), with the columns the store queries on
// beside it. The version column is the truth for Version; the copy in body
// is overwritten on read.
//
// The schema is versioned: the migrations are embedded in the package
// (migrations/NNNN_name.up.sql and .down.sql) and applied by Migrate, which
// records the version in the table breach_schema_migrations. Call Migrate
// before using a Store, from every replica if that is simpler (it is safe to
// call from several at once); SchemaVersion says where a database stands and
// MigrateDown undoes migrations. Everything lives in the first schema of the
// connection's search_path.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/breachkit/breach/incident"
)

// Constraint names the store maps errors from.
const (
	pkeyConstraint  = "incidents_pkey"
	dedupConstraint = "incidents_open_dedup_key"
)

// Store is an incident.Store and incident.Leaser on a PostgreSQL database.
// It is safe for concurrent use, and any number of Stores, in any number of
// processes, may share one database.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ incident.Store  = (*Store)(nil)
	_ incident.Leaser = (*Store)(nil)
)

// New returns a Store on pool after checking that the database answers. It
// does not create the tables: the Store needs the schema at LatestVersion,
// which Migrate brings it to.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("pgstore: %w", ctxErr(ctx, err))
	}
	return &Store{pool: pool}, nil
}

// Pool returns the pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Create implements incident.Store: it inserts inc with Version 1. It
// returns an *incident.DuplicateError when an open incident holds inc's
// dedup key, and an error matching incident.ErrInvalidIncident for an empty
// ID, DedupKey or State or an ID that exists.
func (s *Store) Create(ctx context.Context, inc *incident.Incident) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkStorable(inc); err != nil {
		return err
	}
	body, err := encode(inc, 1)
	if err != nil {
		return err
	}
	// The open incident holding the key may close between our INSERT and
	// the look-up of its ID; then the key is free and we try again.
	for range 3 {
		_, err = s.pool.Exec(ctx,
			`INSERT INTO incidents (id, dedup_key, state, open, version, detected_at, kind, account, body)
			 VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8)`,
			inc.ID, inc.DedupKey, string(inc.State), inc.State.Open(), inc.DetectedAt, inc.Kind, inc.Account, body)
		switch constraint(err) {
		case "":
			if err != nil {
				return s.fail(ctx, "create", inc.ID, err)
			}
			inc.Version = 1
			return nil
		case pkeyConstraint:
			return fmt.Errorf("pgstore: create: %w: ID %s exists", incident.ErrInvalidIncident, inc.ID)
		case dedupConstraint:
			dup, err := s.duplicate(ctx, inc.DedupKey, inc.ID)
			if err != nil || dup != nil {
				return dupOr(dup, err)
			}
		default:
			return s.fail(ctx, "create", inc.ID, err)
		}
	}
	return &incident.DuplicateError{DedupKey: inc.DedupKey}
}

// duplicate returns the *incident.DuplicateError naming the open incident
// other than id that holds key, or nil when there is none (any more).
func (s *Store) duplicate(ctx context.Context, key, id string) (*incident.DuplicateError, error) {
	var existing string
	err := s.pool.QueryRow(ctx, `SELECT id FROM incidents WHERE dedup_key = $1 AND open AND id <> $2`, key, id).Scan(&existing)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "find duplicate", id, err)
	}
	return &incident.DuplicateError{DedupKey: key, ExistingID: existing}, nil
}

// dupOr returns err, or else dup as an error.
func dupOr(dup *incident.DuplicateError, err error) error {
	if err != nil || dup == nil {
		return err
	}
	return dup
}

// Get implements incident.Store.
func (s *Store) Get(ctx context.Context, id string) (*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inc, err := scanOne(s.pool.QueryRow(ctx, `SELECT version, body FROM incidents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: incident %s: %w", id, incident.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail(ctx, "get", id, err)
	}
	return inc, nil
}

// Update implements incident.Store: a compare-and-swap on Version. It
// returns an *incident.ConflictError when the stored Version differs from
// inc.Version, an error matching incident.ErrNotFound for an unknown ID, and
// an *incident.DuplicateError when inc is open and another open incident
// holds its dedup key. On success inc.Version is the new Version; on error
// inc is left alone.
func (s *Store) Update(ctx context.Context, inc *incident.Incident) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkStorable(inc); err != nil {
		return err
	}
	next := inc.Version + 1
	body, err := encode(inc, next)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE incidents
		    SET dedup_key = $3, state = $4, open = $5, version = version + 1, detected_at = $6,
		        kind = $7, account = $8, body = $9
		  WHERE id = $1 AND version = $2`,
		inc.ID, inc.Version, inc.DedupKey, string(inc.State), inc.State.Open(), inc.DetectedAt, inc.Kind, inc.Account, body)
	switch constraint(err) {
	case "":
	case dedupConstraint:
		dup, err := s.duplicate(ctx, inc.DedupKey, inc.ID)
		if err == nil && dup == nil {
			// The holder closed meanwhile; the caller may simply retry.
			dup = &incident.DuplicateError{DedupKey: inc.DedupKey}
		}
		return dupOr(dup, err)
	default:
		return s.fail(ctx, "update", inc.ID, err)
	}
	if err != nil {
		return s.fail(ctx, "update", inc.ID, err)
	}
	if tag.RowsAffected() == 1 {
		inc.Version = next
		return nil
	}
	var actual int64
	err = s.pool.QueryRow(ctx, `SELECT version FROM incidents WHERE id = $1`, inc.ID).Scan(&actual)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: incident %s: %w", inc.ID, incident.ErrNotFound)
	}
	if err != nil {
		return s.fail(ctx, "update", inc.ID, err)
	}
	return &incident.ConflictError{ID: inc.ID, Expected: inc.Version, Actual: actual}
}

// FindOpen implements incident.Store.
func (s *Store) FindOpen(ctx context.Context, dedupKey string) (*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inc, err := scanOne(s.pool.QueryRow(ctx, `SELECT version, body FROM incidents WHERE dedup_key = $1 AND open`, dedupKey))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: open incident with dedup key %q: %w", dedupKey, incident.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail(ctx, "find open", dedupKey, err)
	}
	return inc, nil
}

// ListOpen implements incident.Store: oldest DetectedAt first, ties by ID
// in byte order (COLLATE "C", whatever the database's collation).
func (s *Store) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT version, body FROM incidents WHERE open ORDER BY detected_at, id COLLATE "C"`)
	if err != nil {
		return nil, s.fail(ctx, "list open", "", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*incident.Incident, error) { return scanOne(row) })
	if err != nil {
		return nil, s.fail(ctx, "list open", "", err)
	}
	return out, nil
}

// Lease implements incident.Leaser: it takes or renews the lease on id for
// owner until ttl from now by the database's clock, and reports false when
// another owner's lease has not run out. The incident need not exist.
func (s *Store) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if id == "" || owner == "" {
		return false, errors.New("pgstore: lease needs an incident ID and an owner")
	}
	micros := (ttl + time.Microsecond - 1) / time.Microsecond // never round a lease down to nothing
	var got bool
	err := s.pool.QueryRow(ctx,
		`INSERT INTO leases AS l (incident_id, owner, until)
		 VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		 ON CONFLICT (incident_id) DO UPDATE
		    SET owner = excluded.owner, until = excluded.until
		  WHERE l.owner = excluded.owner OR l.until <= now()
		 RETURNING true`,
		id, owner, int64(micros)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // held by another owner
	}
	if err != nil {
		return false, s.fail(ctx, "lease", id, err)
	}
	return got, nil
}

// Unlease implements incident.Leaser: it drops owner's lease on id, and does
// nothing when owner does not hold it.
func (s *Store) Unlease(ctx context.Context, id, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE incident_id = $1 AND owner = $2`, id, owner); err != nil {
		return s.fail(ctx, "unlease", id, err)
	}
	return nil
}

// PruneLeases deletes leases that ran out more than olderThan ago: those a
// replica held when it died on an incident that has closed since, which no
// one will take again. It returns how many it deleted. Running it is
// optional; stale leases cost a row each and nothing else.
func (s *Store) PruneLeases(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE until < now() - $1 * interval '1 microsecond'`, olderThan.Microseconds())
	if err != nil {
		return 0, s.fail(ctx, "prune leases", "", err)
	}
	return tag.RowsAffected(), nil
}

// ---- encoding ----

// encode returns inc as JSON with Version set to version.
func encode(inc *incident.Incident, version int64) ([]byte, error) {
	c := *inc // shallow: only Version changes, and json.Marshal only reads
	c.Version = version
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("pgstore: encoding incident %s: %w", inc.ID, err)
	}
	return b, nil
}

func scanOne(row pgx.Row) (*incident.Incident, error) {
	var (
		version int64
		body    []byte
	)
	if err := row.Scan(&version, &body); err != nil {
		return nil, err
	}
	inc := new(incident.Incident)
	if err := json.Unmarshal(body, inc); err != nil {
		return nil, fmt.Errorf("pgstore: decoding incident: %w", err)
	}
	inc.Version = version
	return inc, nil
}

// ---- errors ----

func checkStorable(inc *incident.Incident) error {
	var reason string
	switch {
	case inc == nil:
		reason = "nil incident"
	case inc.ID == "":
		reason = "empty ID"
	case inc.DedupKey == "":
		reason = "empty dedup key"
	case inc.State == "":
		reason = "empty state"
	default:
		return nil
	}
	return fmt.Errorf("pgstore: %w: %s", incident.ErrInvalidIncident, reason)
}

// constraint returns the name of the unique constraint err violated, "" for
// a nil error or another error, and "?" for a unique violation of an
// unknown constraint.
func constraint(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return ""
	}
	switch pe.ConstraintName {
	case pkeyConstraint, dedupConstraint:
		return pe.ConstraintName
	}
	return "?"
}

// fail wraps a database error, making sure it matches ctx's error when ctx
// ended: pgx reports a cancelled query in its own words.
func (s *Store) fail(ctx context.Context, op, id string, err error) error {
	err = ctxErr(ctx, err)
	if id != "" {
		return fmt.Errorf("pgstore: %s %s: %w", op, id, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
