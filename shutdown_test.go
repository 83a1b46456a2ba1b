package breach_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// TestShutdownLetsStartedEffectFinish cancels Run while a containment call
// is in flight: Run waits for it (within the grace), records the result, and
// returns with nothing left running.
func TestShutdownLetsStartedEffectFinish(t *testing.T) {
	tests := []struct {
		name     string
		takes    time.Duration // how long the container works
		grace    time.Duration
		status   incident.ActionStatus
		maxPause time.Duration // how long Run may take to return after cancel
	}{
		{"finishes within grace", 3 * time.Second, 10 * time.Second, incident.ActionApplied, 3 * time.Second},
		{"outlives grace", time.Minute, 5 * time.Second, incident.ActionPending, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := incident.NewMemStore()
				started := make(chan struct{})
				slow := containment.Func(func(ctx context.Context, req containment.Request) error {
					close(started)
					select {
					case <-time.After(tt.takes):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
				pb := apiKeyPlaybook(&fakes{}, nil)
				pb.Containment[0].Container = slow
				pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 2 * time.Minute}
				o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithShutdownGrace(tt.grace),
					breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- o.Run(ctx) }()
				rc, err := o.Report(ctx, leak())
				require.NoError(t, err)
				<-started
				cancel()
				begin := time.Now()
				require.NoError(t, <-done)
				assert.LessOrEqual(t, time.Since(begin), tt.maxPause, "Run returns within the grace")

				inc, err := store.Head(context.Background(), rc.IncidentID)
				require.NoError(t, err)
				assert.Equal(t, tt.status, inc.Actions[0].Status)
				if tt.status == incident.ActionApplied {
					// The result's write folds the moves that need no plugin
					// call; nothing more ran after the stop.
					assert.Equal(t, incident.StateInvestigating, inc.State)
					assert.Nil(t, inc.Investigation, "no investigation started after the stop")
				} else {
					assert.Equal(t, incident.StateContaining, inc.State, "nothing moved on after the stop")
				}
				if tt.status == incident.ActionPending {
					assert.Nil(t, inc.Escalation, "an interrupted step is not a failure")
				}
			})
		})
	}
}

// TestResumeAfterShutdown stops Run mid-containment and lets a new
// Orchestrator on the same store finish, with the same idempotency key.
func TestResumeAfterShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := incident.NewMemStore()
		var keys []string
		block := make(chan struct{})
		c := containment.Func(func(ctx context.Context, req containment.Request) error {
			keys = append(keys, req.IdempotencyKey)
			if len(keys) == 1 {
				<-ctx.Done() // the first process never finishes this call
				return ctx.Err()
			}
			return nil
		})
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = c
		o1, err := breach.New(store, breach.WithPlaybook(pb), breach.WithShutdownGrace(time.Second),
			breach.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o1.Run(ctx) }()
		rc, err := o1.Report(ctx, leak())
		require.NoError(t, err)
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		close(block)

		o2, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		stop := running(t, o2)
		defer stop()
		inc := await(t, o2, rc.IncidentID, incident.StateResolving)
		require.Len(t, keys, 2)
		assert.Equal(t, keys[0], keys[1], "the resumed call carries the same key")
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
		assert.GreaterOrEqual(t, inc.Actions[0].Attempts, 1)
	})
}
