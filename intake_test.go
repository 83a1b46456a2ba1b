package breach_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// TestReportWithEndedContextRecordsNothing: a Report whose context has
// already ended returns its error and records nothing, whether the key is
// open in this process (the fast path), open in the store only (another
// replica opened it), or new.
func TestReportWithEndedContextRecordsNothing(t *testing.T) {
	tests := []struct {
		name string
		open bool // the key is already open in the store
		hot  bool // and this process knows it
	}{
		{"fast path", true, true},
		{"open in the store only", true, false},
		{"new key", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := incident.NewMemStore()
			pb := breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil))
			o, err := breach.New(store, pb, quiet)
			require.NoError(t, err)
			ctx := context.Background()
			id := ""
			if tt.open {
				rc, err := o.Report(ctx, leak())
				require.NoError(t, err)
				id = rc.IncidentID
			}
			if !tt.hot {
				o, err = breach.New(store, pb, quiet) // a replica that never saw the key
				require.NoError(t, err)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			rc, err := o.Report(cancelled, leak())
			assert.ErrorIs(t, err, context.Canceled)
			assert.Empty(t, rc.IncidentID)
			require.NoError(t, o.Flush(ctx))
			open, err := store.ListOpen(ctx)
			require.NoError(t, err)
			if !tt.open {
				assert.Empty(t, open, "nothing recorded")
				return
			}
			require.Len(t, open, 1)
			assert.Equal(t, id, open[0].ID)
			assert.EqualValues(t, 1, open[0].Signals.Count, "the signal is not counted")
		})
	}
}

// TestReportCancelledWhileTheStoreBlocks: a Report whose context ends
// while the store's FindOpen or Create hangs returns at once with an error
// matching ErrOutcomeUnknown and context.Canceled; reporting again once the
// store answers joins the one incident. (FindOpen is reached for a key an
// incident the orchestrator has not seen holds: its Create is refused.)
func TestReportCancelledWhileTheStoreBlocks(t *testing.T) {
	for _, op := range []string{"findopen", "create"} {
		t.Run(op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hs := &hangingStore{MemStore: incident.NewMemStore(), hang: make(chan struct{})}
				sig := leak()
				if op == "findopen" {
					require.NoError(t, hs.MemStore.Create(context.Background(), incident.Split(investigated())))
					sig.Subject = "key_7"
				}
				hs.op.Store(op)
				o, err := breach.New(hs, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := o.Report(ctx, sig)
					done <- err
				}()
				synctest.Wait() // the store call hangs
				cancel()
				err = <-done
				assert.ErrorIs(t, err, breach.ErrOutcomeUnknown)
				assert.ErrorIs(t, err, context.Canceled)

				hs.op.Store("")
				close(hs.hang)
				synctest.Wait()
				rc, err := o.Report(context.Background(), sig)
				require.NoError(t, err)
				open, err := hs.MemStore.ListOpen(context.Background())
				require.NoError(t, err)
				require.Len(t, open, 1, "reporting again is safe")
				assert.Equal(t, open[0].ID, rc.IncidentID)
			})
		})
	}
}

// TestReportOfAKindWithoutPlaybook: with Run going and a playbook for
// another kind, a signal of a kind no playbook answers is rejected and
// nothing is stored.
func TestReportOfAKindWithoutPlaybook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)), quiet)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		sig := leak()
		sig.Kind = "db.exfiltration"
		for range 2 { // the second time, nothing of the first is remembered
			rc, err := o.Report(context.Background(), sig)
			assert.ErrorIs(t, err, breach.ErrUnknownKind)
			assert.ErrorIs(t, err, incident.ErrInvalidSignal)
			assert.Empty(t, rc.IncidentID)
		}
		synctest.Wait()
		open, err := store.ListOpen(context.Background())
		require.NoError(t, err)
		assert.Empty(t, open, "nothing stored")
	})
}
