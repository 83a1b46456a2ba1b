package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/breachkit/breach/incident"
)

// The conversions of migration 3, between whole records (one JSON value per
// incident, versions 1 and 2) and records in parts (version 3). They run in
// the migration's transaction, a batch of incidents at a time, in ID order.

// flushItems is how many parts (entries, deliveries, customers) a
// conversion holds in memory before it writes them.
const flushItems = 20_000

// unkeyedPrefix starts the key given to a delivery (customer) of a whole
// record whose idempotency key (recipient ID) is empty or holds NUL, which
// a key column cannot hold: "v1-unkeyed:" and its position. Version 3
// never writes such an item (Change.Check refuses it, and the store NUL in
// keys); a record of before might hold one. It is kept, under that key, as
// its IdempotencyKey (its ID, for a customer), so that pages of it are
// read by key as any other.
const unkeyedPrefix = "v1-unkeyed:"

// splitRecords is migration 3's conversion up: it reads every incident's
// whole record from the head column (either JSON form, see
// incident.Incident.UnmarshalJSON) and writes it in parts: the head in its
// place, the timeline, deliveries and customers in their tables, so that
// incident.Load returns the record as it was, with the same Version and
// the same hashes. Two deliveries with one idempotency key (two customers
// with one recipient ID) become one, with the value of the last, where the
// first was: what writing the record as one incident.Change does; an item
// without a key that a column can hold gets one (see unkeyedPrefix). What
// version 3 keeps in the head and a whole record of before did not hold is
// computed from the record: Chain from the timeline, Impact.Affected (when
// zero) as the number of customers kept, and, unless the record counts
// them already, Outreach's counts from the deliveries kept (its Cursor is
// left empty).
func splitRecords(ctx context.Context, tx pgx.Tx) error {
	after := ""
	for {
		rows, err := tx.Query(ctx,
			`SELECT id, version, head FROM incident_heads WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`,
			after, backfillBatch)
		if err != nil {
			return err
		}
		type whole struct {
			id      string
			version int64
			body    []byte
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (whole, error) {
			var w whole
			err := row.Scan(&w.id, &w.version, &w.body)
			return w, err
		})
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		var w partsWriter
		for _, r := range batch {
			inc := new(incident.Incident)
			if err := json.Unmarshal(r.body, inc); err != nil {
				return fmt.Errorf("incident %s: %w", r.id, err)
			}
			inc.ID = r.id // the column is the key
			inc.Version = r.version
			if err := w.add(inc); err != nil {
				return err
			}
			if w.items >= flushItems {
				if err := w.flush(ctx, tx); err != nil {
					return err
				}
			}
		}
		if err := w.flush(ctx, tx); err != nil {
			return err
		}
		after = batch[len(batch)-1].id
	}
}

// partsWriter collects the converted heads and parts of incidents and
// writes them: the heads with one UPDATE, the parts with one COPY per
// table.
type partsWriter struct {
	ids, heads, kinds, accounts []string
	chainLens, dNext, cNext     []int64
	chainHeads                  [][]byte
	entries, deliveries, custs  [][]any
	items                       int
}

func (w *partsWriter) add(inc *incident.Incident) error {
	ch := incident.Split(inc)
	h := ch.Head
	// The record is whole: its timeline is the truth.
	h.Chain = incident.Chain{Len: len(ch.Entries), Head: ch.Entries.Head()}
	for i := range ch.Deliveries { // Split's copies, as the customers
		if d := &ch.Deliveries[i]; d.IdempotencyKey == "" || !textOK(d.IdempotencyKey) {
			d.IdempotencyKey = unkeyedPrefix + strconv.Itoa(i)
		}
	}
	for i := range ch.Customers {
		if c := &ch.Customers[i]; !textOK(incident.RecipientID(*c)) || incident.RecipientID(*c) == "" {
			c.ID = unkeyedPrefix + strconv.Itoa(i)
		}
	}
	enc, err := encodeChange(ch, h.Version)
	if err != nil {
		return err
	}
	if inc.Investigation != nil && inc.Investigation.Impact.Affected == 0 {
		h.Investigation.Impact.Affected = len(enc.custIDs)
	}
	if h.Outreach == (incident.Outreach{}) {
		for _, st := range enc.delStatus {
			h.Outreach.Count(incident.DeliveryStatus(st), 1)
		}
	}
	if enc.head, err = json.Marshal(h); err != nil {
		return fmt.Errorf("pgstore: encoding incident %s: %w", h.ID, err)
	}
	w.ids = append(w.ids, h.ID)
	w.heads = append(w.heads, string(enc.head))
	w.kinds = append(w.kinds, h.Kind)
	w.accounts = append(w.accounts, h.Account)
	w.chainLens = append(w.chainLens, int64(h.Chain.Len))
	w.chainHeads = append(w.chainHeads, h.Chain.Head[:])
	w.dNext = append(w.dNext, int64(len(enc.delKeys)))
	w.cNext = append(w.cNext, int64(len(enc.custIDs)))
	for i, e := range enc.entries {
		w.entries = append(w.entries, []any{h.ID, int64(i), e})
	}
	for i := range enc.delKeys {
		w.deliveries = append(w.deliveries, []any{h.ID, enc.delKeys[i], int64(i + 1), enc.delStatus[i], enc.delBodies[i]})
	}
	for i := range enc.custIDs {
		w.custs = append(w.custs, []any{h.ID, enc.custIDs[i], int64(i + 1), enc.custBodies[i]})
	}
	w.items += 1 + len(enc.entries) + len(enc.delKeys) + len(enc.custIDs)
	return nil
}

func (w *partsWriter) flush(ctx context.Context, tx pgx.Tx) error {
	if len(w.ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx,
		`UPDATE incident_heads AS i
		    SET head = u.head, kind = u.kind, account = u.account, chain_len = u.chain_len, chain_head = u.chain_head,
		        deliveries_next = u.dnext, customers_next = u.cnext
		   FROM unnest($1::text[], $2::json[], $3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::bigint[], $8::bigint[])
		        AS u(id, head, kind, account, chain_len, chain_head, dnext, cnext)
		  WHERE i.id = u.id`,
		w.ids, w.heads, w.kinds, w.accounts, w.chainLens, w.chainHeads, w.dNext, w.cNext); err != nil {
		return err
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"incident_entries", []string{"incident_id", "seq", "entry"}, w.entries},
		{"incident_deliveries", []string{"incident_id", "idempotency_key", "seq", "status", "delivery"}, w.deliveries},
		{"incident_customers", []string{"incident_id", "recipient_id", "seq", "customer"}, w.custs},
	} {
		if len(c.rows) == 0 {
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return fmt.Errorf("writing %s: %w", c.table, err)
		}
	}
	*w = partsWriter{}
	return nil
}

// joinRecords is migration 3's conversion down: it writes every incident's
// whole record, as incident.Load reads it (head, every entry, delivery and
// customer, in order), into the head column, in its JSON form, with the
// Version of the version column. The fields a whole record of before did
// not hold (Chain, Outreach, Impact.Affected) stay in the JSON, which
// releases before ignore. Customers of an incident whose head has no
// Investigation are dropped, as Load drops them: a whole record holds
// customers only in its investigation.
func joinRecords(ctx context.Context, tx pgx.Tx) error {
	after := ""
	for {
		rows, err := tx.Query(ctx,
			`SELECT version, head FROM incident_heads WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`,
			after, backfillBatch)
		if err != nil {
			return err
		}
		heads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*incident.Incident, error) { return scanHead(row) })
		if err != nil {
			return err
		}
		if len(heads) == 0 {
			return nil
		}
		ids := make([]string, len(heads))
		byID := make(map[string]*incident.Incident, len(heads))
		for i, h := range heads {
			ids[i] = h.ID
			byID[h.ID] = h
		}
		if err := joinPart(ctx, tx, `SELECT incident_id, entry FROM incident_entries WHERE incident_id = ANY($1) ORDER BY incident_id, seq`,
			ids, byID, func(inc *incident.Incident, raw []byte) error {
				var e incident.Entry
				err := json.Unmarshal(raw, &e)
				inc.Timeline = append(inc.Timeline, e)
				return err
			}); err != nil {
			return err
		}
		if err := joinPart(ctx, tx, `SELECT incident_id, delivery FROM incident_deliveries WHERE incident_id = ANY($1) ORDER BY incident_id, seq`,
			ids, byID, func(inc *incident.Incident, raw []byte) error {
				var d incident.Delivery
				err := json.Unmarshal(raw, &d)
				inc.Deliveries = append(inc.Deliveries, d)
				return err
			}); err != nil {
			return err
		}
		if err := joinPart(ctx, tx, `SELECT incident_id, customer FROM incident_customers WHERE incident_id = ANY($1) ORDER BY incident_id, seq`,
			ids, byID, func(inc *incident.Incident, raw []byte) error {
				if inc.Investigation == nil {
					return nil
				}
				var c incident.Customer
				err := json.Unmarshal(raw, &c)
				inc.Investigation.Impact.Customers = append(inc.Investigation.Impact.Customers, c)
				return err
			}); err != nil {
			return err
		}
		bodies := make([]string, len(heads))
		for i, inc := range heads {
			b, err := json.Marshal(inc)
			if err != nil {
				return fmt.Errorf("incident %s: %w", inc.ID, err)
			}
			bodies[i] = string(b)
		}
		if _, err := tx.Exec(ctx,
			`UPDATE incident_heads AS i SET head = u.body FROM unnest($1::text[], $2::json[]) AS u(id, body) WHERE i.id = u.id`,
			ids, bodies); err != nil {
			return err
		}
		after = ids[len(ids)-1]
	}
}

// joinPart reads the rows of one part of the incidents ids, (incident_id,
// JSON) in order, and hands each to add with its incident.
func joinPart(ctx context.Context, tx pgx.Tx, sql string, ids []string, byID map[string]*incident.Incident,
	add func(*incident.Incident, []byte) error) error {
	rows, err := tx.Query(ctx, sql, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  string
			raw []byte
		)
		if err := rows.Scan(&id, &raw); err != nil {
			return err
		}
		if inc := byID[id]; inc != nil {
			if err := add(inc, raw); err != nil {
				return fmt.Errorf("incident %s: %w", id, err)
			}
		}
	}
	return rows.Err()
}
