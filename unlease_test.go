package breach_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// hangingUnleaseStore is a leasing MemStore whose Unlease, once hang is set,
// ignores its context and blocks until release is closed.
type hangingUnleaseStore struct {
	*incident.MemStore
	hang    atomic.Bool
	release chan struct{}
}

func (s *hangingUnleaseStore) Unlease(ctx context.Context, id, owner string) error {
	if s.hang.Load() {
		<-s.release
	}
	return s.MemStore.Unlease(ctx, id, owner)
}

// TestShutdownWithAHangingUnlease: Run holds the leases of five idle
// open incidents (resolving, a mandatory task open). When its ctx ends and
// the store's Unlease hangs, Run still returns within the shutdown grace
// and the two seconds it gives the Unleases of its leases all together
// (they run out by themselves): it took a TTL, 30 s here, before.
func TestShutdownWithAHangingUnlease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &hangingUnleaseStore{MemStore: incident.NewMemStore(), release: make(chan struct{})}
		defer close(s.release)
		const grace = time.Second
		o, err := breach.New(s, breach.WithLease("a", 30*time.Second), quiet, breach.WithShutdownGrace(grace),
			breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		synctest.Wait()
		for i := range 5 {
			sig := leak()
			sig.Subject = fmt.Sprintf("key_%d", i)
			rc, err := o.Report(context.Background(), sig)
			require.NoError(t, err)
			await(t, o, rc.IncidentID, incident.StateResolving)
		}
		synctest.Wait()
		s.hang.Store(true)
		start := time.Now()
		cancel()
		require.NoError(t, <-done)
		took := time.Since(start)
		t.Logf("Run returned %v after its ctx ended (grace %v)", took, grace)
		assert.LessOrEqual(t, took, grace+2*time.Second, "Run returns within the shutdown grace and the Unleases' budget")
	})
}
