package notify

import "context"

// Chan returns a Notifier that sends each message on ch, for tests and for
// hosts that deliver from their own goroutine. Notify blocks until the
// message is received or ctx ends, and then returns ctx.Err() without
// having sent it; a message is never sent once ctx has ended. A nil ch never
// receives, so Notify on it always returns ctx.Err(). Safe for concurrent
// use, as channels are.
func Chan(ch chan<- Message) Notifier {
	return Func(func(ctx context.Context, msg Message) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case ch <- msg:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}
