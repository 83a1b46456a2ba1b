package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LatestVersion is the schema version this package's Store needs: the
// highest of its migrations. Call Migrate to reach it.
const LatestVersion = 3

// ErrSchema: the database's schema cannot be migrated as asked: a version
// this package has no migration for, or a target out of range.
var ErrSchema = errors.New("pgstore: schema")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// A migration is one numbered step of the schema, with the SQL that takes
// it up from the version before and back down to it.
type migration struct {
	version  int
	name     string // e.g. "0003_record_parts"
	up, down string
}

// migrations are the embedded steps, in order: versions 1 to LatestVersion
// without a gap, each with an up and a down file.
var migrations = mustLoad(migrationFiles)

func mustLoad(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	return ms
}

// loadMigrations reads migrations/NNNN_name.up.sql and .down.sql.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*migration{}
	for _, f := range files {
		base := path.Base(f)
		stem, dir, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), ".")
		num, _, _ := strings.Cut(stem, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || (dir != "up" && dir != "down") {
			return nil, fmt.Errorf("pgstore: migration file %s: want NNNN_name.up.sql or NNNN_name.down.sql", base)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &migration{version: v, name: stem}
			byVersion[v] = m
		}
		if m.name != stem {
			return nil, fmt.Errorf("pgstore: migration %d has two names: %s and %s", v, m.name, stem)
		}
		if dir == "up" {
			m.up = string(b)
		} else {
			m.down = string(b)
		}
	}
	out := make([]migration, 0, len(byVersion))
	for v := 1; v <= len(byVersion); v++ {
		m := byVersion[v]
		switch {
		case m == nil:
			return nil, fmt.Errorf("pgstore: migration %d is missing", v)
		case m.up == "" || m.down == "":
			return nil, fmt.Errorf("pgstore: migration %s needs both an up and a down file", m.name)
		}
		out = append(out, *m)
	}
	return out, nil
}

// migrateLock is the key of the transaction-level advisory lock every
// migration step takes, so that concurrent callers, in this process or
// others, apply each step once and in order. It is the key pgstore used
// before schema versions, so an old replica's Migrate waits too.
const migrateLock = 0x62726561636801 // "breach" and 1

// versionTable records the schema version: one row per applied migration.
const versionTable = `CREATE TABLE IF NOT EXISTS breach_schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate brings the schema in the first schema of the connection's
// search_path up to LatestVersion, applying each pending migration in
// order, each in a transaction of its own that also records its version
// in breach_schema_migrations. It is safe to call from several processes at
// once: each step runs under an advisory lock and re-reads the version
// first, so every step is applied exactly once. On an up-to-date database
// it changes nothing.
//
// Some steps also convert the stored rows, in Go, after their SQL and in
// their transaction: migration 2 fills the register's columns from each
// record's JSON, and migration 3 splits each whole record into its head,
// timeline entries, deliveries and customers, keeping its Version and its
// hashes, so that incident.Load returns it as it was (the package's
// README says what is computed for the fields a whole record lacked). Migration 3 renames the incidents table, so
// that replicas of a release before it fail rather than write whole
// records: stop them before it runs.
//
// A database created before schema versions (the tables exist, the version
// table does not) is adopted: migration 1 is written with IF NOT EXISTS,
// so it leaves those tables and their rows alone and records version 1;
// the later steps then run on the data as they would on any version-1
// database. A database at a version newer than LatestVersion (migrated by a
// newer release) is left alone.
//
// When ctx ends, or a step fails, the steps committed so far stay applied
// and the failing one is rolled back; the error says which step it was.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		done, err := step(ctx, pool, func(ctx context.Context, tx pgx.Tx, current int) (bool, error) {
			if current >= LatestVersion {
				return true, nil
			}
			m := migrations[current] // version current+1
			if _, err := tx.Exec(ctx, m.up); err != nil {
				return false, fmt.Errorf("pgstore: migration %s up: %w", m.name, ctxErr(ctx, err))
			}
			if fill := backfills[m.version]; fill != nil {
				if err := fill(ctx, tx); err != nil {
					return false, fmt.Errorf("pgstore: migration %s up: converting the rows: %w", m.name, ctxErr(ctx, err))
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO breach_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return false, fmt.Errorf("pgstore: migration %s up: recording the version: %w", m.name, ctxErr(ctx, err))
			}
			return false, nil
		})
		if err != nil || done {
			return err
		}
	}
}

// MigrateDown takes the schema down to version to (0 removes every table
// but the version table), undoing one migration at a time, newest first,
// each in a transaction of its own, under the lock Migrate takes. Undoing a
// migration drops what it created, after converting the rows back where it
// converted them: undoing migration 3 writes every incident whole again,
// as incident.Load reads it, for the releases before it; undoing 2 drops
// the register's columns; going below version 1 deletes every incident and
// lease. It returns an error matching ErrSchema for a negative to, or when
// the database is at a version this package has no migration for. A
// database at or below to is left alone.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, to int) error {
	if to < 0 {
		return fmt.Errorf("%w: cannot migrate down to version %d", ErrSchema, to)
	}
	for {
		done, err := step(ctx, pool, func(ctx context.Context, tx pgx.Tx, current int) (bool, error) {
			if current <= to {
				return true, nil
			}
			if current > LatestVersion {
				return false, fmt.Errorf("%w: the database is at version %d; this package knows versions up to %d", ErrSchema, current, LatestVersion)
			}
			m := migrations[current-1]
			if join := downfills[m.version]; join != nil {
				if err := join(ctx, tx); err != nil {
					return false, fmt.Errorf("pgstore: migration %s down: converting the rows: %w", m.name, ctxErr(ctx, err))
				}
			}
			if _, err := tx.Exec(ctx, m.down); err != nil {
				return false, fmt.Errorf("pgstore: migration %s down: %w", m.name, ctxErr(ctx, err))
			}
			if _, err := tx.Exec(ctx, `DELETE FROM breach_schema_migrations WHERE version = $1`, m.version); err != nil {
				return false, fmt.Errorf("pgstore: migration %s down: recording the version: %w", m.name, ctxErr(ctx, err))
			}
			return false, nil
		})
		if err != nil || done {
			return err
		}
	}
}

// step runs fn in a transaction that holds the migration lock, with the
// version read under it, and commits unless fn fails. fn reports true when
// there is nothing left to do.
func step(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx, current int) (bool, error)) (bool, error) {
	var done bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
			return fmt.Errorf("pgstore: migrate: taking the lock: %w", ctxErr(ctx, err))
		}
		if _, err := tx.Exec(ctx, versionTable); err != nil {
			return fmt.Errorf("pgstore: migrate: creating the version table: %w", ctxErr(ctx, err))
		}
		current, err := readVersion(ctx, tx)
		if err != nil {
			return err
		}
		done, err = fn(ctx, tx, current)
		return err
	})
	if err != nil {
		return false, ctxErr(ctx, err)
	}
	return done, nil
}

// backfills convert the stored rows, after a migration's SQL and in its
// transaction, where SQL cannot: it cannot read the stored JSON when it
// holds \u0000.
var backfills = map[int]func(context.Context, pgx.Tx) error{
	2: backfillRegister,
	3: splitRecords,
}

// downfills convert the stored rows back, before a migration's down SQL
// and in its transaction.
var downfills = map[int]func(context.Context, pgx.Tx) error{
	3: joinRecords,
}

// backfillBatch is how many incidents the conversions read and write at a
// time; a variable for the tests.
var backfillBatch = 1000

// backfillRegister sets incidents.kind and incidents.account from the JSON
// of each row whose kind is empty, in either encoding ("kind" or, before
// the register, "Kind": encoding/json matches names without regard to
// case), a batch of rows at a time in ID order. Every incident has a kind
// (Signal.Validate requires one), so an empty kind means a row that was
// stored before migration 2 or written since by a release before it; the
// index on (kind, ...) finds those. (Migration 3 sets them again, from the
// same JSON.)
func backfillRegister(ctx context.Context, tx pgx.Tx) error {
	after := ""
	for {
		rows, err := tx.Query(ctx, `SELECT id, body::text FROM incidents WHERE kind = '' AND id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`, after, backfillBatch)
		if err != nil {
			return err
		}
		var ids, kinds, accounts []string
		for rows.Next() {
			var id, body string
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return err
			}
			var head struct {
				Kind    string `json:"kind"`
				Account string `json:"account"`
			}
			if err := json.Unmarshal([]byte(body), &head); err != nil {
				rows.Close()
				return fmt.Errorf("incident %s: %w", id, err)
			}
			ids, kinds, accounts = append(ids, id), append(kinds, head.Kind), append(accounts, head.Account)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx,
			`UPDATE incidents AS i SET kind = u.kind, account = u.account
			   FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, kind, account)
			  WHERE i.id = u.id`, ids, kinds, accounts); err != nil {
			return err
		}
		after = ids[len(ids)-1]
	}
}

// SchemaVersion returns the schema version of the database (in the first
// schema of the connection's search_path): the highest migration applied,
// or 0 when none is recorded, which includes a database whose tables were
// created before schema versions (Migrate adopts it as version 1).
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('breach_schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("pgstore: schema version: %w", ctxErr(ctx, err))
	}
	if !exists {
		return 0, nil
	}
	return readVersion(ctx, pool)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM breach_schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("pgstore: schema version: %w", ctxErr(ctx, err))
	}
	return v, nil
}
