package breach_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// nilHeadStore is a MemStore whose Head, once armed, answers (nil, nil): a
// host store's bug (a row scanned into nothing).
type nilHeadStore struct {
	*incident.MemStore
	armed atomic.Bool
}

func (s *nilHeadStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if s.armed.Load() {
		return nil, nil
	}
	return s.MemStore.Head(ctx, id)
}

// TestNilHeadFromTheStoreIsAnError: a person's action and a read get a nil
// head with no error from the store: each gets an error, not a panic.
func TestNilHeadFromTheStoreIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &nilHeadStore{MemStore: incident.NewMemStore()}
		o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))), quiet)
		require.NoError(t, err)
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		s.armed.Store(true)
		assert.NotPanics(t, func() { err = o.AddNote(context.Background(), rc.IncidentID, "alice", "looking") })
		assert.Error(t, err)
		assert.NotPanics(t, func() { _, err = o.Get(context.Background(), rc.IncidentID) })
		assert.Error(t, err)
	})
}

// conflictThenNilHeadStore: the next Apply, once armed, fails with a
// conflict, and Heads answer (nil, nil) from then on.
type conflictThenNilHeadStore struct {
	*incident.MemStore
	armed, nilHeads atomic.Bool
}

func (s *conflictThenNilHeadStore) Apply(ctx context.Context, ch incident.Change) error {
	if s.armed.CompareAndSwap(true, false) {
		s.nilHeads.Store(true)
		return incident.ErrConflict
	}
	return s.MemStore.Apply(ctx, ch)
}

func (s *conflictThenNilHeadStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	if s.nilHeads.Load() {
		return nil, nil
	}
	return s.MemStore.Head(ctx, id)
}

// TestNilHeadInTheGroupCommitterIsAnError: the group committer's write of a
// joined signal conflicts, and the re-read head is (nil, nil): the Report
// fails, and the process lives on.
func TestNilHeadInTheGroupCommitterIsAnError(t *testing.T) {
	s := &conflictThenNilHeadStore{MemStore: incident.NewMemStore()}
	o, err := breach.New(s, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
	require.NoError(t, err)
	_, err = o.Report(context.Background(), leak())
	require.NoError(t, err)
	s.armed.Store(true)
	_, err = o.Report(context.Background(), leak())
	assert.Error(t, err)
}
