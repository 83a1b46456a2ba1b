// Package ratelimit spaces out calls to a rate: at most so many per second,
// evenly, with no burst beyond one call.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limiter lets calls through at most PerSecond times a second. It is safe
// for concurrent use. A nil *Limiter has no limit.
type Limiter struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time // when the next call may go
}

// New returns a Limiter of perSecond calls a second; perSecond must be
// positive.
func New(perSecond float64) *Limiter {
	return &Limiter{interval: time.Duration(float64(time.Second) / perSecond)}
}

// Wait blocks until the caller may go, or until ctx ends, when it returns
// ctx's error (the turn it was given is not handed back: the calls after
// it keep their spacing).
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
