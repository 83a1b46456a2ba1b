package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpacesCalls(t *testing.T) {
	l := New(500) // one every 2ms
	start := time.Now()
	var wg sync.WaitGroup
	for range 26 {
		wg.Go(func() { assert.NoError(t, l.Wait(context.Background())) })
	}
	wg.Wait()
	// The first goes at once, the 25 after it 2ms apart.
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
}

func TestNilHasNoLimit(t *testing.T) {
	var l *Limiter
	for range 1000 {
		require.NoError(t, l.Wait(context.Background()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, l.Wait(ctx), context.Canceled)
}

func TestWaitEndsWithItsContext(t *testing.T) {
	l := New(1.0 / 3600) // one an hour
	require.NoError(t, l.Wait(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, l.Wait(ctx), context.DeadlineExceeded)
}
