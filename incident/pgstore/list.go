package pgstore

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/breachkit/breach/incident"
)

var _ incident.Lister = (*Store)(nil)

// List implements incident.Lister: the register, every incident open or
// ended, newest detected_at first and ties by ID in byte order (COLLATE
// "C"), read by position (keyset pagination) on the head table's register
// indexes. Each page is one query whose cost follows the page, not the
// register: the filters are columns (state, kind, account, detected_at),
// and the page holds heads (incident.Load reads a whole record).
func (s *Store) List(ctx context.Context, f incident.ListFilter) (incident.Page, error) {
	if err := ctx.Err(); err != nil {
		return incident.Page{}, err
	}
	if err := f.Validate(); err != nil {
		return incident.Page{}, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "state = ANY("+arg(states)+")")
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(f.Kind))
	}
	if f.Account != "" {
		where = append(where, "account = "+arg(f.Account))
	}
	if !f.DetectedFrom.IsZero() {
		where = append(where, "detected_at >= "+arg(f.DetectedFrom))
	}
	if !f.DetectedTo.IsZero() {
		where = append(where, "detected_at < "+arg(f.DetectedTo))
	}
	if f.Cursor != "" {
		c, _ := incident.ParseCursor(f.Cursor) // valid: checked above
		at, id := arg(c.DetectedAt), arg(c.ID)
		where = append(where, "(detected_at, id COLLATE \"C\") < ("+at+", "+id+" COLLATE \"C\")")
	}
	size := f.PageSize()
	q := `SELECT version, head FROM incident_heads`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY detected_at DESC, id COLLATE "C" DESC LIMIT ` + arg(size+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return incident.Page{}, s.fail(ctx, "list", "", err)
	}
	incs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*incident.Incident, error) { return scanHead(row) })
	if err != nil {
		return incident.Page{}, s.fail(ctx, "list", "", err)
	}
	var p incident.Page
	if len(incs) > size {
		incs = incs[:size]
		p.Next = incident.CursorAfter(incs[size-1]).String()
	}
	p.Incidents = incs
	return p, nil
}
