package pgstore_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
)

// BenchmarkList reads pages of 50 from a register of 100,000 incidents
// heads (a tenth of them of one kind, a fiftieth of one account): the first
// page, a page half-way down by cursor, and filtered first pages. A page
// costs the same wherever it is: the query walks an index from the cursor.
func BenchmarkList(b *testing.B) {
	const n = 100_000
	pool := newPool(b)
	ctx := b.Context()
	require.NoError(b, pgstore.Migrate(ctx, pool))
	s, err := pgstore.New(ctx, pool)
	require.NoError(b, err)

	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([][]any, n)
	for i := range n {
		inc := incident.Split(newIncident(fmt.Sprintf("inc_%06d", i), fmt.Sprintf("key_%06d", i))).Head
		inc.DetectedAt = base.Add(time.Duration(i) * time.Minute)
		inc.State = incident.StateClosed
		inc.Kind = fmt.Sprintf("kind_%d", i%10)
		inc.Account = fmt.Sprintf("acct_%d", i%50)
		inc.Version = 1
		body, err := json.Marshal(inc)
		require.NoError(b, err)
		rows[i] = []any{inc.ID, inc.DedupKey, string(inc.State), false, int64(1), inc.DetectedAt, inc.Kind, inc.Account, string(body),
			int64(inc.Chain.Len), inc.Chain.Head[:]}
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"incident_heads"},
		[]string{"id", "dedup_key", "state", "open", "version", "detected_at", "kind", "account", "head", "chain_len", "chain_head"}, pgx.CopyFromRows(rows))
	require.NoError(b, err)
	_, err = pool.Exec(ctx, "ANALYZE incident_heads")
	require.NoError(b, err)

	mid := incident.CursorAfter(&incident.Incident{ID: fmt.Sprintf("inc_%06d", n/2), DetectedAt: base.Add(n / 2 * time.Minute)}).String()
	for _, bc := range []struct {
		name string
		f    incident.ListFilter
	}{
		{"first_page", incident.ListFilter{}},
		{"half_way", incident.ListFilter{Cursor: mid}},
		{"kind", incident.ListFilter{Kind: "kind_3"}},
		{"account_half_way", incident.ListFilter{Account: "acct_7", Cursor: mid}},
		{"state_and_range", incident.ListFilter{States: []incident.State{incident.StateClosed},
			DetectedFrom: base.Add(1000 * time.Minute), DetectedTo: base.Add(2000 * time.Minute)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := s.List(ctx, bc.f)
				if err != nil || len(p.Incidents) != incident.DefaultListLimit {
					b.Fatalf("List: %d incidents, %v", len(p.Incidents), err)
				}
			}
		})
	}
}
