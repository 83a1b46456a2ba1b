// Package fake is the one implementation of the recording and failing fakes
// that containment/containmenttest and notify/notifytest publish: a [Log]
// of calls and a [Kit] that builds the failing fakes. It is generic over the
// recorded call type, so each public package is a thin typed wrapper that
// documents the behaviour for its own plugin kind.
package fake

import (
	"context"
	"math/rand/v2"
	"sync"

	"github.com/breachkit/breach/incident"
)

// Log records calls of type C in the order they arrive, numbering each in
// its series (see Record). The zero value is an empty log ready to use; a
// Log is safe for concurrent use and must not be copied after first use.
type Log[C any] struct {
	mu      sync.Mutex
	calls   []C
	seq     map[string]int
	changed chan struct{} // closed and cleared at each call; nil when no one waits
}

// Record numbers a call in series (1 for the series' first call), builds
// it with build, keeps it, wakes Wait, and returns clone of it, so that the
// kept call and the caller's never share memory. clone may be nil when C
// holds nothing shared.
func (l *Log[C]) Record(series string, build func(seq int) C, clone func(C) C) C {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq == nil {
		l.seq = make(map[string]int)
	}
	l.seq[series]++
	c := build(l.seq[series])
	l.calls = append(l.calls, c)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	if clone != nil {
		c = clone(c)
	}
	return c
}

// Calls returns every call recorded so far, in order, each passed through
// clone (when not nil).
func (l *Log[C]) Calls(clone func(C) C) []C {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]C, len(l.calls))
	for i, c := range l.calls {
		if clone != nil {
			c = clone(c)
		}
		out[i] = c
	}
	return out
}

// Count returns how many recorded calls match.
func (l *Log[C]) Count(match func(C) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if match(c) {
			n++
		}
	}
	return n
}

// Distinct returns the distinct values of key over the recorded calls, in
// the order each was first seen.
func (l *Log[C]) Distinct(key func(C) string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	seen := make(map[string]bool)
	for _, c := range l.calls {
		if k := key(c); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Wait blocks until at least n calls have been recorded, and returns nil,
// or until ctx ends, and returns ctx.Err().
func (l *Log[C]) Wait(ctx context.Context, n int) error {
	for {
		l.mu.Lock()
		if len(l.calls) >= n {
			l.mu.Unlock()
			return nil
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Answer is what a fake's Err returns for call c.
type Answer[C any] func(ctx context.Context, c C) error

// Reply returns a(ctx, c), or nil when a is nil: a fake without an answer
// succeeds.
func Reply[C any](ctx context.Context, a Answer[C], c C) error {
	if a == nil {
		return nil
	}
	return a(ctx, c)
}

// Kit builds the failing fakes of one public package: New wraps an answer
// into that package's recorder, Seq reads a call's number in its series,
// and Injected is the error used when a fake is given a nil one.
type Kit[R any, C any] struct {
	New      func(Answer[C]) R
	Seq      func(C) int
	Injected error
}

func (k Kit[R, C]) or(err error) error {
	if err == nil {
		return k.Injected
	}
	return err
}

// FailN fails the first n calls of each series with err, then succeeds.
func (k Kit[R, C]) FailN(n int, err error) R {
	err = k.or(err)
	return k.New(func(_ context.Context, c C) error {
		if k.Seq(c) <= n {
			return err
		}
		return nil
	})
}

// FailAlways fails every call with err, which is not marked permanent.
func (k Kit[R, C]) FailAlways(err error) R {
	err = k.or(err)
	return k.New(func(context.Context, C) error { return err })
}

// FailPermanent fails every call with incident.Permanent(err).
func (k Kit[R, C]) FailPermanent(err error) R {
	return k.FailAlways(incident.Permanent(k.or(err)))
}

// Hang blocks every call until its context ends and returns ctx.Err().
func (k Kit[R, C]) Hang() R {
	return k.New(func(ctx context.Context, _ C) error {
		<-ctx.Done()
		return ctx.Err()
	})
}

// Panic panics with v in every call.
func (k Kit[R, C]) Panic(v any) R {
	return k.New(func(context.Context, C) error { panic(v) })
}

// Flaky fails calls with err with probability p, drawn in arrival order
// from a generator seeded with seed.
func (k Kit[R, C]) Flaky(p float64, seed uint64, err error) R {
	err = k.or(err)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	return k.New(func(context.Context, C) error {
		mu.Lock()
		fail := rng.Float64() < p
		mu.Unlock()
		if fail {
			return err
		}
		return nil
	})
}
