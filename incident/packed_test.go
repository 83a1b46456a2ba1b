package incident_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestMemStoreKeepsTimelineTimesOfAnyYear: MemStore packs timeline times as
// integers; times outside the years int64 nanoseconds can hold (1678 to
// 2262) and the zero time come back equal, and the timeline still
// verifies. Before the fix they were packed as Unix nanoseconds, which
// overflowed.
func TestMemStoreKeepsTimelineTimesOfAnyYear(t *testing.T) {
	times := []time.Time{
		time.Date(1500, 7, 1, 12, 30, 15, 123456000, time.UTC),
		{}, // the zero time
		time.Date(2300, 1, 2, 3, 4, 5, 6000, time.UTC),
		time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC),   // just before what nanoseconds hold
		time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC),   // just after
		time.Date(2026, 3, 2, 9, 0, 0, 1000, time.UTC), // an ordinary time
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),    // a microsecond after the zero time
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	s := incident.NewMemStore()
	ctx := context.Background()
	inc := &incident.Incident{ID: "inc_years", Kind: "apikey.compromised", Subject: "key_years",
		DedupKey: "apikey.compromised/key_years", Severity: incident.SeverityHigh, State: incident.StateDetected}
	for i, at := range times {
		inc.Timeline.Append(incident.Entry{At: at, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "entry " + string(rune('a'+i))})
	}
	require.NoError(t, inc.Timeline.Verify())
	ch := incident.Split(inc)
	require.NoError(t, s.Create(ctx, ch))

	check := func(t *testing.T, got *incident.Incident) {
		t.Helper()
		require.Len(t, got.Timeline, len(times))
		for i, at := range times {
			assert.True(t, at.Equal(got.Timeline[i].At), "entry %d: want %v, got %v", i, at, got.Timeline[i].At)
			assert.Equal(t, at.IsZero(), got.Timeline[i].At.IsZero(), "entry %d", i)
		}
		assert.NoError(t, got.Timeline.Verify())
		assert.NoError(t, got.Timeline.VerifyHead(inc.Timeline.Head()))
	}
	got, err := incident.Load(ctx, s, inc.ID)
	require.NoError(t, err)
	check(t, got)
	for from := range times {
		page, err := s.Entries(ctx, inc.ID, from, 1)
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.True(t, times[from].Equal(page[0].At), "Entries from %d", from)
	}

	// And through an update.
	h := ch.Head
	h.State = incident.StateInvestigating
	require.NoError(t, s.Apply(ctx, incident.Split(h)))
	again, err := incident.Load(ctx, s, inc.ID)
	require.NoError(t, err)
	check(t, again)
}
