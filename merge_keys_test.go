package breach_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// Where signals for a merged incident's dedup key go (Merge, in merge.go;
// the routing is in intake.go).

// TestMergeRoutesSignals: a merged child's key leads to its parent in a
// process started after the merge (Run resumes the parent), through a
// parent merged in turn, and nowhere once the parent has closed: then a
// new incident opens.
func TestMergeRoutesSignals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		o, store := desk(t)
		top := file(t, o, bruteforce("top"))
		mid := file(t, o, bruteforce("mid"))
		low := file(t, o, bruteforce("low"))
		require.NoError(t, o.Merge(ctx, mid, low, "alice", "same attacker"))
		require.NoError(t, o.Merge(ctx, top, mid, "alice", "same campaign"))

		// A new process on the store: Run finds where the keys lead.
		o2, err := breach.New(store, breach.WithPlaybook(loginPlaybook()), quiet)
		require.NoError(t, err)
		stop := running(t, o2)
		defer stop()
		synctest.Wait()
		for _, subject := range []string{"mid", "low"} {
			rc, err := o2.Report(ctx, bruteforce(subject))
			require.NoError(t, err)
			assert.Equal(t, top, rc.IncidentID, "%s's key leads to the top", subject)
		}
		synctest.Wait()
		assert.EqualValues(t, 5, get(t, o2, top).Signals.Count, "3 merged + 2 later")

		await(t, o2, top, incident.StateResolving)
		require.NoError(t, o2.Resolve(ctx, top, "alice", "accounts locked"))
		require.NoError(t, o2.Close(ctx, top, "alice", "reviewed"))
		rc, err := o2.Report(ctx, bruteforce("low"))
		require.NoError(t, err)
		assert.True(t, rc.Opened, "a closed parent takes no more signals")
		assert.NotContains(t, []string{top, mid, low}, rc.IncidentID)
	})
}

// TestMergeOtherReplica: a replica that was counting signals for the
// child's key when another replica merged it learns of the merge from the
// store when it next writes them: the later signal joins the parent, and
// so do those after it.
func TestMergeOtherReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		o1, store := desk(t)
		o2, err := breach.New(store, breach.WithPlaybook(loginPlaybook()), quiet)
		require.NoError(t, err)
		parent := file(t, o1, bruteforce("parent"))
		child := file(t, o1, bruteforce("child"))
		require.Equal(t, child, file(t, o2, bruteforce("child")), "o2 counts the child's signals")
		require.NoError(t, o1.Merge(ctx, parent, child, "alice", "same attacker"))
		time.Sleep(time.Second)

		for range 2 {
			rc, err := o2.Report(ctx, bruteforce("child"))
			require.NoError(t, err)
			assert.Equal(t, parent, rc.IncidentID)
			assert.False(t, rc.Opened)
		}
		synctest.Wait()
		assert.EqualValues(t, 1+2+2, get(t, o2, parent).Signals.Count, "its own, the child's two, and two later")
		assert.EqualValues(t, 2, get(t, o2, child).Signals.Count)
	})
}
