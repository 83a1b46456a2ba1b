package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/breachkit/breach/incident"
)

// The reads of the parts are one query each. The head row is selected
// first and the page LEFT JOINed to it, so that an unknown incident gives
// no row (ErrNotFound) and a known one without a page one row of NULL.
// Pages follow the order columns, through the indexes on (incident_id,
// seq) (and (incident_id, status, seq)); an After cursor is the order of the
// item it names, found by the primary key.

const entriesSQL = `SELECT p.entry FROM incident_heads h LEFT JOIN LATERAL (
	SELECT entry, seq FROM incident_entries WHERE incident_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3
) p ON true WHERE h.id = $1 ORDER BY p.seq`

// Entries implements incident.Store: the entries at positions from on, at
// most incident.PartPage(limit) of them.
func (s *Store) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := incident.CheckLimit(limit); err != nil {
		return nil, err
	}
	if from < 0 {
		return nil, &incident.FilterError{Field: "from", Reason: "negative: " + strconv.Itoa(from)}
	}
	if !textOK(id) {
		return nil, notFound(id)
	}
	return readPage[incident.Entry](ctx, s, "entries", id, entriesSQL, id, int64(from), incident.PartPage(limit))
}

// afterSeq is the order column of the item a cursor names: -1 (before the
// first) for no cursor, NULL (no item follows) for a key that names none.
const (
	afterDelivery = `(CASE WHEN $2 = '' THEN -1 ELSE (SELECT seq FROM incident_deliveries WHERE incident_id = $1 AND idempotency_key = $2) END)`
	afterCustomer = `(CASE WHEN $2 = '' THEN -1 ELSE (SELECT seq FROM incident_customers WHERE incident_id = $1 AND recipient_id = $2) END)`
)

const (
	deliveriesSQL = `SELECT p.delivery FROM incident_heads h LEFT JOIN LATERAL (
	SELECT delivery, seq FROM incident_deliveries
	 WHERE incident_id = $1 AND seq > ` + afterDelivery + ` ORDER BY seq LIMIT $3
) p ON true WHERE h.id = $1 ORDER BY p.seq`
	// A query of its own, so that its plan uses the index on status.
	deliveriesByStatusSQL = `SELECT p.delivery FROM incident_heads h LEFT JOIN LATERAL (
	SELECT delivery, seq FROM incident_deliveries
	 WHERE incident_id = $1 AND status = $4 AND seq > ` + afterDelivery + ` ORDER BY seq LIMIT $3
) p ON true WHERE h.id = $1 ORDER BY p.seq`
	deliveriesByKeySQL = `SELECT p.delivery FROM incident_heads h LEFT JOIN LATERAL (
	SELECT d.delivery, k.ord FROM unnest($2::text[]) WITH ORDINALITY AS k(key, ord)
	  JOIN incident_deliveries d ON d.incident_id = $1 AND d.idempotency_key = k.key
	 WHERE $3 = '' OR d.status = $3
) p ON true WHERE h.id = $1 ORDER BY p.ord`
)

// Deliveries implements incident.Store: the deliveries q selects, in the
// order they were first written (of q.Keys, for Keys), a page of
// q.PageSize() at most unless q.Keys is set.
func (s *Store) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if !textOK(id) {
		return nil, notFound(id)
	}
	if !textOK(string(q.Status)) {
		return emptyPage[incident.Delivery](ctx, s, "deliveries", id)
	}
	if len(q.Keys) > 0 {
		keys := make([]string, 0, len(q.Keys))
		for _, k := range q.Keys {
			if textOK(k) { // any other is no delivery's key
				keys = append(keys, k)
			}
		}
		return readPage[incident.Delivery](ctx, s, "deliveries", id, deliveriesByKeySQL, id, keys, string(q.Status))
	}
	if !textOK(q.After) {
		return emptyPage[incident.Delivery](ctx, s, "deliveries", id)
	}
	if q.Status != "" {
		return readPage[incident.Delivery](ctx, s, "deliveries", id, deliveriesByStatusSQL, id, q.After, q.PageSize(), string(q.Status))
	}
	return readPage[incident.Delivery](ctx, s, "deliveries", id, deliveriesSQL, id, q.After, q.PageSize())
}

const customersSQL = `SELECT p.customer FROM incident_heads h LEFT JOIN LATERAL (
	SELECT customer, seq FROM incident_customers
	 WHERE incident_id = $1 AND seq > ` + afterCustomer + ` ORDER BY seq LIMIT $3
) p ON true WHERE h.id = $1 ORDER BY p.seq`

// Customers implements incident.Store: the affected customers after the one
// whose recipient ID is after, in the order they were first written, at
// most incident.PartPage(limit) of them.
func (s *Store) Customers(ctx context.Context, id string, after string, limit int) ([]incident.Customer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := incident.CheckLimit(limit); err != nil {
		return nil, err
	}
	if !textOK(id) {
		return nil, notFound(id)
	}
	if !textOK(after) {
		return emptyPage[incident.Customer](ctx, s, "customers", id)
	}
	return readPage[incident.Customer](ctx, s, "customers", id, customersSQL, id, after, incident.PartPage(limit))
}

// readPage runs one of the page queries above and decodes its rows.
func readPage[T any](ctx context.Context, s *Store, op, id, sql string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.fail(ctx, op, id, err)
	}
	defer rows.Close()
	var (
		out   []T
		found bool
	)
	for rows.Next() {
		found = true
		raw := rows.RawValues()[0]
		if raw == nil {
			continue // the incident, without a page
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pgstore: %s %s: decoding: %w", op, id, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, id, err)
	}
	if !found {
		return nil, notFound(id)
	}
	return out, nil
}

// emptyPage returns an empty page for a known incident, and ErrNotFound
// for an unknown one.
func emptyPage[T any](ctx context.Context, s *Store, op, id string) ([]T, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM incident_heads WHERE id = $1)`, id).Scan(&ok)
	if err != nil {
		return nil, s.fail(ctx, op, id, err)
	}
	if !ok {
		return nil, notFound(id)
	}
	return nil, nil
}
