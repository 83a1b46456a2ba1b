// Package pgstore keeps breach incidents in PostgreSQL, for hosts that run
// one or several replicas of an orchestrator on one database.
//
// Store implements incident.Store, incident.Leaser and incident.Lister (the
// register of every incident, open or ended, read by position with List).
// It keeps each incident in the parts of incident.Change:
//
//   - the head in incident_heads: one row per incident, the head in its
//     JSON form (see package incident) in a json column, beside the
//     columns the store queries on (dedup key, state, open, detected_at,
//     kind, account), the version and the timeline's chain (length and
//     last hash);
//   - the timeline in incident_entries, one row per entry, keyed by the
//     incident and the entry's position;
//   - the customer notices in incident_deliveries, keyed by the incident
//     and the idempotency key, with the order they were first written in
//     and their status;
//   - the affected customers in incident_customers, keyed by the incident
//     and the recipient ID (incident.RecipientID), with the order they
//     were first written in;
//   - leases in leases(incident_id, owner, until), a table of their own, so
//     that a lease may be taken on an incident that is not stored yet (the
//     Leaser contract allows it).
//
// Every Create and Apply is one transaction holding one SQL statement: the
// head is inserted, or replaced under a compare-and-swap on version and on
// the stored chain (UPDATE ... WHERE id = $1 AND version = $2 AND chain_len
// = $3), and the data-modifying common table expressions of the same
// statement append the entries with one multi-row INSERT and upsert the
// deliveries and the customers with one INSERT ... ON CONFLICT each, all of
// them from arrays and all of them only when the head was written. Its cost
// follows the change, whatever the size of the incident. The statement
// commits on its own, so a change costs one round trip. When ctx ends
// while the statement runs (waiting for the head's row lock, say) the store
// asks the server to cancel it rather than dropping the connection (which
// the server would not notice until the statement committed): the change
// is then rolled back and ctx's error returned, or, if it had already
// committed, reported written.
//
// One open incident per dedup key is a partial unique index on
// incident_heads(dedup_key) WHERE open: of two replicas opening an incident
// for one key at once, the loser's Create fails with an
// *incident.DuplicateError naming the winner, and the orchestrator joins it.
// The database's clock is the leases' clock: expiry is compared with now()
// on the server, so replicas' clocks need not agree.
//
// The json type keeps the text as written: \u0000, which jsonb and text
// refuse, survives. The columns that are text (incident ID, dedup key,
// state, kind, account, idempotency keys, delivery statuses, recipient
// IDs) cannot hold NUL or bytes that are not UTF-8: a change holding such a
// value fails with incident.ErrInvalidIncident.
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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/breachkit/breach/incident"
)

// Constraint names the store maps errors from.
const (
	pkeyConstraint  = "incident_heads_pkey"
	dedupConstraint = "incident_heads_open_dedup_key"
)

// Store is an incident.Store, incident.Leaser and incident.Lister on a
// PostgreSQL database whose schema Migrate brought to LatestVersion. It is
// safe for concurrent use, and any number of Stores, in any number of
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

// The parts of a change travel as arrays, $1 to $7, in both statements:
// $1 the entries (JSON), $2 the position of the first of them (the stored
// chain's length), $3, $4 and $5 the deliveries' keys, statuses and JSON,
// $6 and $7 the customers' recipient IDs and JSON. The statement's head CTE,
// h, returns the incident's ID and the order numbers the deliveries and
// customers start after (dbase, cbase); the parts are written for each row
// of h, so for none when the head was not written.
const partsSQL = `,
e AS (
	INSERT INTO incident_entries (incident_id, seq, entry)
	SELECT h.id, $2::bigint + u.ord - 1, u.entry
	  FROM h, unnest($1::json[]) WITH ORDINALITY AS u(entry, ord)
),
d AS (
	INSERT INTO incident_deliveries (incident_id, idempotency_key, seq, status, delivery)
	SELECT h.id, u.key, h.dbase + u.ord, u.status, u.delivery
	  FROM h, unnest($3::text[], $4::text[], $5::json[]) WITH ORDINALITY AS u(key, status, delivery, ord)
	ON CONFLICT (incident_id, idempotency_key) DO UPDATE SET status = excluded.status, delivery = excluded.delivery
),
c AS (
	INSERT INTO incident_customers (incident_id, recipient_id, seq, customer)
	SELECT h.id, u.rid, h.cbase + u.ord, u.customer
	  FROM h, unnest($6::text[], $7::json[]) WITH ORDINALITY AS u(rid, customer, ord)
	ON CONFLICT (incident_id, recipient_id) DO UPDATE SET customer = excluded.customer
)`

// createSQL inserts a head (parameters $8 on) and its parts.
const createSQL = `WITH h AS (
	INSERT INTO incident_heads (id, dedup_key, state, open, detected_at, kind, account, head, version,
	                            chain_len, chain_head, deliveries_next, customers_next)
	VALUES ($8, $9, $10, $11, $12, $13, $14, $15::json, 1, $16, $17, cardinality($3::text[]), cardinality($6::text[]))
	RETURNING id, 0::bigint AS dbase, 0::bigint AS cbase
)` + partsSQL + `
SELECT count(*) FROM h`

// applySQL replaces the head if version ($9) and the stored chain (length
// $2; last hash $17 when no entry is appended) are as the change expects,
// and writes the parts if it did; a head that is not open ($12 false)
// gives up every lease on the incident (incident.Leaser).
const applySQL = `WITH h AS (
	UPDATE incident_heads
	   SET dedup_key = $10, state = $11, open = $12, detected_at = $13, kind = $14, account = $15, head = $16::json,
	       version = version + 1, chain_len = $8, chain_head = $17,
	       deliveries_next = deliveries_next + cardinality($3::text[]),
	       customers_next = customers_next + cardinality($6::text[])
	 WHERE id = $18 AND version = $9 AND chain_len = $2::bigint
	   AND (cardinality($1::json[]) > 0 OR chain_head = $17)
	RETURNING id, deliveries_next - cardinality($3::text[]) AS dbase, customers_next - cardinality($6::text[]) AS cbase
)` + partsSQL + `,
l AS (
	DELETE FROM leases WHERE NOT $12::boolean AND incident_id IN (SELECT id FROM h)
)
SELECT count(*) FROM h`

// encodedChange is a change as the statements' parameters.
type encodedChange struct {
	head                          []byte
	entries                       []string
	delKeys, delStatus, delBodies []string
	custIDs, custBodies           []string
}

// encodeChange encodes ch with its head at version. A delivery (customer)
// whose key (recipient ID) comes twice in ch is written once, where it
// first came, with the value it has last: what applying them in order
// would leave.
func encodeChange(ch incident.Change, version int64) (encodedChange, error) {
	var enc encodedChange
	h := *ch.Head // shallow: only Version changes, and json.Marshal only reads
	h.Version = version
	var err error
	if enc.head, err = json.Marshal(&h); err != nil {
		return enc, fmt.Errorf("pgstore: encoding incident %s: %w", h.ID, err)
	}
	enc.entries = make([]string, len(ch.Entries))
	for i := range ch.Entries {
		b, err := json.Marshal(&ch.Entries[i])
		if err != nil {
			return enc, fmt.Errorf("pgstore: encoding entry of incident %s: %w", h.ID, err)
		}
		enc.entries[i] = string(b)
	}
	var at map[string]int
	if len(ch.Deliveries) > 1 {
		at = make(map[string]int, len(ch.Deliveries))
	}
	for i := range ch.Deliveries {
		d := &ch.Deliveries[i]
		b, err := json.Marshal(d)
		if err != nil {
			return enc, fmt.Errorf("pgstore: encoding delivery of incident %s: %w", h.ID, err)
		}
		key := d.IdempotencyKey
		if j, ok := at[key]; ok {
			enc.delStatus[j], enc.delBodies[j] = string(d.Status), string(b)
			continue
		}
		if at != nil {
			at[key] = len(enc.delKeys)
		}
		enc.delKeys = append(enc.delKeys, key)
		enc.delStatus = append(enc.delStatus, string(d.Status))
		enc.delBodies = append(enc.delBodies, string(b))
	}
	at = nil
	if len(ch.Customers) > 1 {
		at = make(map[string]int, len(ch.Customers))
	}
	for i := range ch.Customers {
		b, err := json.Marshal(&ch.Customers[i])
		if err != nil {
			return enc, fmt.Errorf("pgstore: encoding customer of incident %s: %w", h.ID, err)
		}
		rid := incident.RecipientID(ch.Customers[i])
		if j, ok := at[rid]; ok {
			enc.custBodies[j] = string(b)
			continue
		}
		if at != nil {
			at[rid] = len(enc.custIDs)
		}
		enc.custIDs = append(enc.custIDs, rid)
		enc.custBodies = append(enc.custBodies, string(b))
	}
	// Empty slices, not nil: a nil slice is sent as NULL, whose cardinality
	// is NULL.
	for _, p := range []*[]string{&enc.entries, &enc.delKeys, &enc.delStatus, &enc.delBodies, &enc.custIDs, &enc.custBodies} {
		if *p == nil {
			*p = []string{}
		}
	}
	return enc, nil
}

// partArgs returns $1 to $7.
func (enc *encodedChange) partArgs(base int) []any {
	return []any{enc.entries, int64(base), enc.delKeys, enc.delStatus, enc.delBodies, enc.custIDs, enc.custBodies}
}

// Create implements incident.Store. In one statement it inserts the head
// of ch with Version 1, its entries, deliveries and customers, and sets
// ch.Head.Version to 1 on success. It returns an *incident.DuplicateError
// naming the open incident that holds the dedup key, and an error matching
// incident.ErrInvalidIncident when ch.Check(incident.Chain{}) fails, the ID
// exists, or a keyed value cannot be kept as text (see the package
// documentation).
func (s *Store) Create(ctx context.Context, ch incident.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ch.Check(incident.Chain{}); err != nil {
		return err
	}
	if err := checkText(ch); err != nil {
		return err
	}
	h := ch.Head
	enc, err := encodeChange(ch, 1)
	if err != nil {
		return err
	}
	args := append(enc.partArgs(0), h.ID, h.DedupKey, string(h.State), h.State.Open(), h.DetectedAt, h.Kind, h.Account,
		enc.head, int64(h.Chain.Len), h.Chain.Head[:])
	// The open incident holding the key may close between our INSERT and
	// the look-up of its ID; then the key is free and we try again.
	for range 3 {
		_, err = s.write(ctx, createSQL, args)
		switch constraint(err) {
		case "":
			if err != nil {
				return s.fail(ctx, "create", h.ID, err)
			}
			h.Version = 1
			return nil
		case pkeyConstraint:
			return idExists(h.ID)
		case dedupConstraint:
			holder, err := s.openHolder(ctx, h.DedupKey)
			switch {
			case err != nil:
				return s.fail(ctx, "create", h.ID, err)
			case holder == h.ID:
				return idExists(h.ID)
			case holder != "":
				return &incident.DuplicateError{DedupKey: h.DedupKey, ExistingID: holder}
			}
		default:
			return s.fail(ctx, "create", h.ID, err)
		}
	}
	return &incident.DuplicateError{DedupKey: h.DedupKey}
}

// Apply implements incident.Store. In one statement it replaces the head of
// ch.Head.ID if the stored Version equals ch.Head.Version and ch continues
// the stored chain, appends the entries and upserts the deliveries and
// customers; then it sets ch.Head.Version to the stored Version plus one.
// Otherwise it writes nothing and returns an *incident.ConflictError (the
// Version differs), an error matching incident.ErrNotFound (no such
// incident) or incident.ErrInvalidIncident (ch.Check fails against the
// stored chain, or a keyed value cannot be kept as text), in that order of
// precedence, as MemStore does. It returns an *incident.DuplicateError when
// the head is open and another open incident holds its dedup key.
func (s *Store) Apply(ctx context.Context, ch incident.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := ch.Head
	if h == nil || h.ID == "" || h.DedupKey == "" || h.State == "" {
		return ch.Check(incident.Chain{}) // says which
	}
	// Check everything that does not depend on the stored chain, with the
	// one chain that could pass; what depends on it is compared in the
	// statement.
	stored := incident.Chain{Len: h.Chain.Len - len(ch.Entries)}
	if len(ch.Entries) == 0 {
		stored.Head = h.Chain.Head
	}
	invalid := ch.Check(stored)
	if invalid == nil {
		invalid = checkText(ch)
	}
	if invalid != nil || !textOK(h.ID) {
		// Nothing to write; say why in MemStore's order.
		return s.applyFailed(ctx, ch, invalid)
	}
	next := h.Version + 1
	enc, err := encodeChange(ch, next)
	if err != nil {
		return err
	}
	args := append(enc.partArgs(stored.Len), int64(h.Chain.Len), h.Version, h.DedupKey, string(h.State), h.State.Open(),
		h.DetectedAt, h.Kind, h.Account, enc.head, h.Chain.Head[:], h.ID)
	for range 3 {
		var n int
		n, err = s.write(ctx, applySQL, args)
		switch constraint(err) {
		case "":
			if err != nil {
				return s.fail(ctx, "apply", h.ID, err)
			}
			if n == 1 {
				h.Version = next
				return nil
			}
			return s.applyFailed(ctx, ch, nil)
		case dedupConstraint:
			holder, err := s.openHolder(ctx, h.DedupKey)
			if err != nil {
				return s.fail(ctx, "apply", h.ID, err)
			}
			if holder != "" && holder != h.ID {
				return &incident.DuplicateError{DedupKey: h.DedupKey, ExistingID: holder}
			}
			// The holder closed meanwhile: try again.
		default:
			return s.fail(ctx, "apply", h.ID, err)
		}
	}
	return &incident.DuplicateError{DedupKey: h.DedupKey}
}

// writeTimeout bounds a change's statement whatever ctx does, and
// cancelGrace the wait for its answer once ctx has ended and the server has
// been asked to cancel it.
const (
	writeTimeout = 30 * time.Second
	cancelGrace  = 2 * time.Second
	// cancelAgain is how often the cancel request is sent again while
	// the statement has not answered.
	cancelAgain = 50 * time.Millisecond
)

// write runs the statement of a change (createSQL or applySQL), committed
// on its own (one round trip), and returns its count of head rows written:
// 1, or 0 when the compare-and-swap failed.
//
// The statement does not run on ctx: pgx drops the connection when a
// query's context ends, and the server would still commit a statement
// that was waiting for the head's row lock once the lock is free, after
// its caller was told it failed. When ctx ends, the server is asked to
// cancel the statement instead (a cancel request, sent again every
// cancelAgain until the statement answers, in case the first reached the
// server before the statement), and its answer decides:
// cancelled, the statement rolled back and ctx's error is returned; done
// before the request arrived, the change is written and reported so. Only
// when the server does not answer within cancelGrace of the request is the
// connection dropped and ctx's error returned with the outcome unknown
// (the Store contract: nothing or all of it). A connection a cancel request
// was sent on is closed, never reused, so that a late request cannot cancel
// another caller's statement.
func (s *Store) write(ctx context.Context, sql string, args []any) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	wctx, cut := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cut()
	asked := make(chan struct{})
	finished := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(asked)
		// Asked again until the statement answers: a request that reaches
		// the server before the statement does finds nothing to cancel.
		grace := time.NewTimer(cancelGrace)
		defer grace.Stop()
		for {
			rctx, done := context.WithTimeout(wctx, cancelGrace)
			_ = conn.Conn().PgConn().CancelRequest(rctx)
			done()
			select {
			case <-finished:
				return
			case <-grace.C:
				cut() // no answer: drop the connection
				return
			case <-time.After(cancelAgain):
			}
		}
	})
	var n int
	err = conn.QueryRow(wctx, sql, args...).Scan(&n)
	close(finished)
	if stop() {
		return n, err
	}
	<-asked
	// A cancel request was sent on this connection: it must not serve
	// another statement.
	cctx, done := context.WithTimeout(context.Background(), time.Second)
	defer done()
	_ = conn.Conn().Close(cctx)
	if err == nil {
		return n, nil
	}
	return 0, ctx.Err()
}

// applyFailed returns the error of a change that was not written: the
// incident is unknown, its Version is not the change's, or the change is
// invalid against the stored chain (invalid, when already known not to
// depend on it).
func (s *Store) applyFailed(ctx context.Context, ch incident.Change, invalid error) error {
	h := ch.Head
	if !textOK(h.ID) {
		return notFound(h.ID)
	}
	var (
		version  int64
		chainLen int64
		head     []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT version, chain_len, chain_head FROM incident_heads WHERE id = $1`, h.ID).
		Scan(&version, &chainLen, &head)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound(h.ID)
	}
	if err != nil {
		return s.fail(ctx, "apply", h.ID, err)
	}
	if version != h.Version {
		return &incident.ConflictError{ID: h.ID, Expected: h.Version, Actual: version}
	}
	stored := incident.Chain{Len: int(chainLen)}
	copy(stored.Head[:], head)
	if err := ch.Check(stored); err != nil {
		return err
	}
	if invalid != nil {
		return invalid
	}
	// The Version is the change's now but was not when the statement ran:
	// the change carried a Version ahead of the store's, which other
	// writes have reached since.
	return &incident.ConflictError{ID: h.ID, Expected: h.Version, Actual: version}
}

// openHolder returns the ID of the open incident with the dedup key, or ""
// when there is none (any more).
func (s *Store) openHolder(ctx context.Context, key string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM incident_heads WHERE dedup_key = $1 AND open`, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// Head implements incident.Store: the head row alone, with the version
// column as Version.
func (s *Store) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !textOK(id) {
		return nil, notFound(id)
	}
	inc, err := scanHead(s.pool.QueryRow(ctx, `SELECT version, head FROM incident_heads WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, s.fail(ctx, "head", id, err)
	}
	return inc, nil
}

// FindOpen implements incident.Store: the head of the open incident with
// the dedup key, found by the partial unique index.
func (s *Store) FindOpen(ctx context.Context, dedupKey string) (*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	missing := fmt.Errorf("pgstore: open incident with dedup key %q: %w", dedupKey, incident.ErrNotFound)
	if !textOK(dedupKey) {
		return nil, missing
	}
	inc, err := scanHead(s.pool.QueryRow(ctx, `SELECT version, head FROM incident_heads WHERE dedup_key = $1 AND open`, dedupKey))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, missing
	}
	if err != nil {
		return nil, s.fail(ctx, "find open", dedupKey, err)
	}
	return inc, nil
}

// ListOpen implements incident.Store: the heads of the open incidents,
// oldest DetectedAt first, ties by ID in byte order (COLLATE "C", whatever
// the database's collation).
func (s *Store) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT version, head FROM incident_heads WHERE open ORDER BY detected_at, id COLLATE "C"`)
	if err != nil {
		return nil, s.fail(ctx, "list open", "", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*incident.Incident, error) { return scanHead(row) })
	if err != nil {
		return nil, s.fail(ctx, "list open", "", err)
	}
	return out, nil
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

func scanHead(row pgx.Row) (*incident.Incident, error) {
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

// textOK reports whether PostgreSQL can keep s in a text column: valid
// UTF-8 without NUL.
func textOK(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// checkText returns an error matching incident.ErrInvalidIncident when a
// value of ch that the store keeps in a text column cannot be kept there.
func checkText(ch incident.Change) error {
	h := ch.Head
	for _, f := range [...]struct{ name, v string }{
		{"ID", h.ID}, {"dedup key", h.DedupKey}, {"state", string(h.State)}, {"kind", h.Kind}, {"account", h.Account},
	} {
		if !textOK(f.v) {
			return invalidText("the " + f.name)
		}
	}
	for i := range ch.Deliveries {
		if !textOK(ch.Deliveries[i].IdempotencyKey) || !textOK(string(ch.Deliveries[i].Status)) {
			return invalidText(fmt.Sprintf("delivery %d's idempotency key or status", i))
		}
	}
	for i := range ch.Customers {
		if !textOK(incident.RecipientID(ch.Customers[i])) {
			return invalidText(fmt.Sprintf("customer %d's recipient ID", i))
		}
	}
	return nil
}

func invalidText(what string) error {
	return fmt.Errorf("pgstore: %w: %s holds NUL or bytes that are not UTF-8, which PostgreSQL text cannot keep",
		incident.ErrInvalidIncident, what)
}

// ---- errors ----

func notFound(id string) error {
	return fmt.Errorf("pgstore: incident %s: %w", id, incident.ErrNotFound)
}

func idExists(id string) error {
	return fmt.Errorf("pgstore: create: %w: ID %s exists", incident.ErrInvalidIncident, id)
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
