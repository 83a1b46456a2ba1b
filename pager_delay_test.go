package breach_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// TestUnreachablePagerDoesNotDelayContainment: a contain-first playbook with
// two actions: disable-key runs at once, block-addresses waits for a
// person's approval, which pages on-call. The pager's service is
// unreachable (each attempt waits for its context, honouring it, through
// the whole page policy): the automatic action does not wait for the pages.
func TestUnreachablePagerDoesNotDelayContainment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var disabledAt time.Time
		pager := notify.PagerFunc(func(ctx context.Context, p notify.Page) error {
			<-ctx.Done() // connect timeout: honours ctx
			return ctx.Err()
		})
		pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
		pb.Containment = []containment.Action{
			{Name: "disable-key", Container: containment.Func(func(ctx context.Context, req containment.Request) error {
				mu.Lock()
				if disabledAt.IsZero() {
					disabledAt = time.Now()
				}
				mu.Unlock()
				return nil
			})},
			{Name: "block-addresses", Container: containment.Func(func(ctx context.Context, req containment.Request) error { return nil }),
				Approval: &containment.ApprovalRule{}}, // always needs a person
		}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithOnCall(pager), quiet)
		require.NoError(t, err)
		running(t, o)
		start := time.Now()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.False(t, disabledAt.IsZero(), "the key was never disabled")
		delay := disabledAt.Sub(start)
		t.Logf("disable-key called %v after the Report", delay)
		assert.Less(t, delay, time.Second, "the automatic containment action does not wait for on-call pages")
		_ = rc
	})
}
