package notify_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/internal/sample"
)

func TestChanDelivers(t *testing.T) {
	ch := make(chan notify.Message, 1)
	msg := sample.Message()
	require.NoError(t, notify.Chan(ch).Notify(context.Background(), msg))
	assert.Equal(t, msg, <-ch)
}

func TestChanBlocksUntilReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan notify.Message)
		done := make(chan error, 1)
		go func() { done <- notify.Chan(ch).Notify(context.Background(), sample.Message()) }()
		synctest.Wait() // Notify is blocked in the send
		select {
		case err := <-done:
			t.Fatalf("Notify returned %v before the message was received", err)
		default:
		}
		got := <-ch
		assert.Equal(t, sample.Message().IdempotencyKey, got.IdempotencyKey)
		assert.NoError(t, <-done)
	})
}

func TestChanContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   func() chan notify.Message // made inside the bubble, so a send on it blocks durably
	}{
		{"nobody receives", func() chan notify.Message { return make(chan notify.Message) }},
		{"nil channel", func() chan notify.Message { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ch := tc.ch()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- notify.Chan(ch).Notify(ctx, sample.Message()) }()
				synctest.Wait()
				cancel()
				assert.ErrorIs(t, <-done, context.Canceled)
			})
		})
	}
}

func TestChanNeverSendsAfterContextEnded(t *testing.T) {
	ch := make(chan notify.Message, 1) // ready to receive
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 { // a select between two ready cases would pick either
		require.ErrorIs(t, notify.Chan(ch).Notify(ctx, sample.Message()), context.Canceled)
	}
	assert.Empty(t, ch)
}
