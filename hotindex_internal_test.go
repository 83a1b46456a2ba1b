package breach

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// TestRetiredEntryKeepsAnAddInFlight: an entry retired while a Report's
// add is under way (it found the entry live) is kept until that add has
// counted, and the count is then pending, not dropped.
func TestRetiredEntryKeepsAnAddInFlight(t *testing.T) {
	var h hotIndex
	inc := &incident.Incident{ID: "inc_1", Kind: "apikey.compromised", Subject: "key_42"}
	k := hotKey{kind: inc.Kind, subject: inc.Subject}
	e := h.put(k, inc)
	sig := &incident.Signal{Kind: inc.Kind, Subject: inc.Subject, Severity: incident.SeverityHigh}

	e.inflight.Add(1) // a Report's add found the entry live
	h.remove(inc.ID)  // the incident ends meanwhile
	assert.Empty(t, h.pending(), "nothing counted yet")
	assert.Nil(t, h.get(k), "the next signal takes the slow path")
	e.observe(sig, time.Now) // the add counts
	e.inflight.Add(-1)

	p := h.pending()
	require.Len(t, p, 1, "the count is pending")
	assert.Same(t, e, p[0])
	assert.EqualValues(t, 1, e.take().count)
	assert.Empty(t, h.pending(), "flushed: the entry is dropped")
	assert.Empty(t, h.retiring)
}

// TestCountOfAnAddInFlightAtTheEndIsFlushed: the same through the
// orchestrator: a signal added while its incident is dismissed is counted
// on the incident by the next flush.
func TestCountOfAnAddInFlightAtTheEndIsFlushed(t *testing.T) {
	o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ctx := context.Background()
	sig := incident.Signal{Kind: "apikey.compromised", Subject: "key_42", Severity: incident.SeverityHigh}
	rc, err := o.Report(ctx, sig)
	require.NoError(t, err)
	o.hot.mu.Lock()
	e := o.hot.live[rc.IncidentID]
	o.hot.mu.Unlock()
	require.NotNil(t, e)

	e.inflight.Add(1)
	sig.At = o.cfg.now() // seen while it was open
	require.NoError(t, o.Dismiss(ctx, rc.IncidentID, "carol", "test key"))
	require.NoError(t, o.flush(ctx))
	e.observe(&sig, o.cfg.now)
	e.inflight.Add(-1)
	require.NoError(t, o.flush(ctx))

	inc, err := o.Get(ctx, rc.IncidentID)
	require.NoError(t, err)
	assert.Equal(t, incident.StateDismissed, inc.State)
	assert.EqualValues(t, 2, inc.Signals.Count, "the signal in flight is counted")
}
