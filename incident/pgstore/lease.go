package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// micros returns ttl in microseconds, the database's precision, rounded up
// so that a lease is never rounded down to nothing.
func micros(ttl time.Duration) int64 {
	return int64((ttl + time.Microsecond - 1) / time.Microsecond)
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
	var got bool
	err := s.pool.QueryRow(ctx,
		`INSERT INTO leases AS l (incident_id, owner, until)
		 VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		 ON CONFLICT (incident_id) DO UPDATE
		    SET owner = excluded.owner, until = excluded.until
		  WHERE l.owner = excluded.owner OR l.until <= now()
		 RETURNING true`,
		id, owner, micros(ttl)).Scan(&got)
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

// Renew implements incident.Leaser in one statement: every lease owner
// holds that has not run out by the database's clock is extended to ttl
// from now, and those are returned with their incidents' Versions. A
// lease that ran out is left alone, even if no one took it since.
func (s *Store) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// One statement renews and reads each incident's Version (0 for a
	// lease on an incident not stored).
	rows, err := s.pool.Query(ctx,
		`WITH renewed AS (
		   UPDATE leases SET until = now() + $2 * interval '1 microsecond'
		    WHERE owner = $1 AND until > now()
		   RETURNING incident_id)
		 SELECT r.incident_id, coalesce(h.version, 0)
		   FROM renewed r LEFT JOIN incident_heads h ON h.id = r.incident_id`, owner, micros(ttl))
	if err != nil {
		return nil, s.fail(ctx, "renew", "", err)
	}
	held := map[string]int64{}
	var id string
	var version int64
	_, err = pgx.ForEachRow(rows, []any{&id, &version}, func() error {
		held[id] = version
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "renew", "", err)
	}
	return held, nil
}

// Orphans implements incident.Leaser in one statement: the open incidents
// without a lease that has not run out by the database's clock, oldest
// DetectedAt first (ties by ID in byte order), at most limit of them, every
// one when limit is 0 or less.
func (s *Store) Orphans(ctx context.Context, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lim *int64 // LIMIT NULL is no limit
	if limit > 0 {
		n := int64(limit)
		lim = &n
	}
	rows, err := s.pool.Query(ctx,
		`SELECT h.id FROM incident_heads h
		   LEFT JOIN leases l ON l.incident_id = h.id AND l.until > now()
		  WHERE h.open AND l.incident_id IS NULL
		  ORDER BY h.detected_at, h.id COLLATE "C"
		  LIMIT $1`, lim)
	if err != nil {
		return nil, s.fail(ctx, "orphans", "", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "orphans", "", err)
	}
	return ids, nil
}
