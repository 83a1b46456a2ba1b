package pgstore_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
)

// TestCollaboration: what people record on an incident (a commander,
// evidence, a severity change, a merge) is kept in the head, which is a
// JSON document: a second store on the same database reads it back, the
// merged child no longer holds its dedup key, and the register finds it
// by its state.
func TestCollaboration(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	o, err := breach.New(s, breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithPlaybook(breach.Playbook{Kind: "login.bruteforce", Strategy: breach.InvestigateFirst}))
	require.NoError(t, err)
	report := func(subject string) string {
		rc, err := o.Report(ctx, incident.Signal{Kind: "login.bruteforce", Subject: subject, Severity: incident.SeverityMedium})
		require.NoError(t, err)
		return rc.IncidentID
	}
	parent, child := report("user_7"), report("user_8")
	require.NoError(t, o.AssignCommander(ctx, parent, "alice", "bob", "on call"))
	require.NoError(t, o.AttachEvidence(ctx, child, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7",
		Source: "auth logs"}, "bob"))
	require.NoError(t, o.ChangeSeverity(ctx, child, incident.SeverityHigh, "bob", "a login succeeded"))
	require.NoError(t, o.AddNote(ctx, child, "bob", "same address as user_7's"))
	require.NoError(t, o.Merge(ctx, parent, child, "alice", "one attacker"))

	again, err := pgstore.New(ctx, s.Pool())
	require.NoError(t, err)
	p, err := incident.Load(ctx, again, parent)
	require.NoError(t, err)
	assert.Equal(t, "alice", p.Commander)
	assert.Equal(t, []string{child}, p.Merged)
	assert.Equal(t, incident.SeverityHigh, p.Severity, "raised by the child")
	if assert.Len(t, p.Evidence, 1) {
		assert.Equal(t, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "auth logs",
			AddedAt: p.Evidence[0].AddedAt, AddedBy: "bob"}, p.Evidence[0])
		assert.False(t, p.Evidence[0].AddedAt.IsZero())
	}
	assert.NoError(t, p.Timeline.Verify())
	c, err := incident.Load(ctx, again, child)
	require.NoError(t, err)
	assert.Equal(t, incident.StateMerged, c.State)
	assert.Equal(t, parent, c.MergedInto)
	assert.NoError(t, c.Timeline.Verify())

	_, err = again.FindOpen(ctx, c.DedupKey)
	assert.True(t, errors.Is(err, incident.ErrNotFound), "a merged incident does not hold its key: %v", err)
	page, err := again.List(ctx, incident.ListFilter{States: []incident.State{incident.StateMerged}})
	require.NoError(t, err)
	if assert.Len(t, page.Incidents, 1) {
		assert.Equal(t, child, page.Incidents[0].ID)
	}
	assert.Equal(t, parent, report("user_8"), "a later signal for the child's key joins the parent")
}
