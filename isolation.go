package breach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/breachkit/breach/incident"
)

// isolate runs fn, a call into host code, on a goroutine of its own with a
// context that ends after timeout: a panic comes back as an
// *incident.PanicError and a call that outlives its timeout as an
// *incident.TimeoutError (fn's goroutine is left to end by itself; what it
// returns then is dropped). When ctx ends first, its cause is returned.
func isolate[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- result{err: &incident.PanicError{Value: v, Stack: debug.Stack()}}
			}
		}()
		v, err := fn(cctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-cctx.Done():
		select {
		case r := <-done:
			return r.v, r.err // it finished as the context ended: what it did counts
		default:
		}
		var zero T
		if ctx.Err() != nil {
			return zero, context.Cause(ctx)
		}
		return zero, &incident.TimeoutError{After: timeout}
	}
}

// guardedStore is the host's Store (and Leaser) as the orchestrator calls
// it: every call isolated, so that a store that panics or hangs fails the
// call (it is retried or escalated like any failed step) instead of taking
// the process down. The store sees copies of the caller's incident header,
// so that a call abandoned after its timeout cannot race with the caller.
type guardedStore struct {
	s       incident.Store
	l       incident.Leaser // s, when it leases
	timeout time.Duration
	// inline runs calls on the caller's goroutine, recovering panics: for
	// the library's own MemStore, which never blocks on I/O.
	inline bool
}

// call runs fn as the store's isolation asks.
func call[T any](g *guardedStore, ctx context.Context, fn func(context.Context) (T, error)) (v T, err error) {
	if !g.inline {
		return isolate(ctx, g.timeout, fn)
	}
	defer func() {
		if p := recover(); p != nil {
			err = &incident.PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

func (g *guardedStore) Create(ctx context.Context, ch incident.Change) error {
	return g.write(ctx, "create", ch, g.s.Create)
}

func (g *guardedStore) Apply(ctx context.Context, ch incident.Change) error {
	return g.write(ctx, "apply", ch, g.s.Apply)
}

// write hands the store a copy of ch's head and, on success, copies the
// Version it set back.
func (g *guardedStore) write(ctx context.Context, op string, ch incident.Change,
	fn func(context.Context, incident.Change) error) error {
	if g.inline {
		// The library's own store sets Version and keeps a copy.
		_, err := call(g, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx, ch) })
		return storeErr(op, err)
	}
	head := ch.Head
	c := *head
	ch.Head = &c
	_, err := call(g, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx, ch) })
	if err == nil {
		head.Version = c.Version
	}
	return storeErr(op, err)
}

func (g *guardedStore) Head(ctx context.Context, id string) (*incident.Incident, error) {
	inc, err := call(g, ctx, func(ctx context.Context) (*incident.Incident, error) { return g.s.Head(ctx, id) })
	return incOrErr("head of "+id, inc, storeErr("head", err))
}

func (g *guardedStore) FindOpen(ctx context.Context, key string) (*incident.Incident, error) {
	inc, err := call(g, ctx, func(ctx context.Context) (*incident.Incident, error) { return g.s.FindOpen(ctx, key) })
	return incOrErr("open incident for "+key, inc, storeErr("find open", err))
}

func (g *guardedStore) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	incs, err := call(g, ctx, func(ctx context.Context) ([]*incident.Incident, error) { return g.s.ListOpen(ctx) })
	if err == nil && slices.Contains(incs, nil) {
		return nil, fmt.Errorf("breach: store list open: %w", errNoIncident)
	}
	return incs, storeErr("list open", err)
}

// errNoIncident is a host store's broken answer: no incident and no error.
var errNoIncident = errors.New("the store returned no incident and no error")

// incOrErr is a store's answer (inc, err), with no incident and no error
// (a host store breaking its contract) made an error, what naming what was
// asked for, instead of a nil incident for the orchestrator to trip on.
func incOrErr(what string, inc *incident.Incident, err error) (*incident.Incident, error) {
	if err == nil && inc == nil {
		return nil, fmt.Errorf("breach: store: %s: %w", what, errNoIncident)
	}
	return inc, err
}

func (g *guardedStore) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	tl, err := call(g, ctx, func(ctx context.Context) (incident.Timeline, error) { return g.s.Entries(ctx, id, from, limit) })
	return tl, storeErr("entries", err)
}

func (g *guardedStore) Deliveries(ctx context.Context, id string, q incident.DeliveryQuery) ([]incident.Delivery, error) {
	ds, err := call(g, ctx, func(ctx context.Context) ([]incident.Delivery, error) { return g.s.Deliveries(ctx, id, q) })
	return ds, storeErr("deliveries", err)
}

func (g *guardedStore) Customers(ctx context.Context, id, after string, limit int) ([]incident.Customer, error) {
	cs, err := call(g, ctx, func(ctx context.Context) ([]incident.Customer, error) { return g.s.Customers(ctx, id, after, limit) })
	return cs, storeErr("customers", err)
}

func (g *guardedStore) Lease(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	ok, err := call(g, ctx, func(ctx context.Context) (bool, error) { return g.l.Lease(ctx, id, owner, ttl) })
	return ok, storeErr("lease", err)
}

func (g *guardedStore) Unlease(ctx context.Context, id, owner string) error {
	_, err := call(g, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, g.l.Unlease(ctx, id, owner)
	})
	return storeErr("unlease", err)
}

func (g *guardedStore) Renew(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	held, err := call(g, ctx, func(ctx context.Context) (map[string]int64, error) { return g.l.Renew(ctx, owner, ttl) })
	return held, storeErr("renew", err)
}

func (g *guardedStore) Orphans(ctx context.Context, limit int) ([]string, error) {
	ids, err := call(g, ctx, func(ctx context.Context) ([]string, error) { return g.l.Orphans(ctx, limit) })
	return ids, storeErr("orphans", err)
}

// storeErr says which store call a panic or a timeout came from; other
// errors (the store's own, ctx's) pass as they are.
func storeErr(op string, err error) error {
	switch err.(type) {
	case *incident.PanicError, *incident.TimeoutError:
		return fmt.Errorf("breach: store %s: %w", op, err)
	}
	return err
}

// safeHandler is the host's slog.Handler (WithLogger), isolated as the rest
// of its code is: a panic in it drops the record (or the attributes) and
// goes no further, so that a failing log sink never unwinds one of the
// library's goroutines (a worker, the group committer, a detector's
// runner, a lease's timer) and takes the process down.
type safeHandler struct{ h slog.Handler }

func (s safeHandler) Enabled(ctx context.Context, l slog.Level) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return s.h.Enabled(ctx, l)
}

func (s safeHandler) Handle(ctx context.Context, r slog.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("breach: the log handler panicked: %v", v)
		}
	}()
	return s.h.Handle(ctx, r)
}

func (s safeHandler) WithAttrs(attrs []slog.Attr) (h slog.Handler) {
	defer func() {
		if recover() != nil {
			h = s
		}
	}()
	return safeHandler{s.h.WithAttrs(attrs)}
}

func (s safeHandler) WithGroup(name string) (h slog.Handler) {
	defer func() {
		if recover() != nil {
			h = s
		}
	}()
	return safeHandler{s.h.WithGroup(name)}
}
