// Package relay carries a panic from the goroutines a call starts back to
// the goroutine that waits for them, where the library recovers panics in
// host code: a panic on a goroutine nobody recovers on would take the
// host's process down.
package relay

import (
	"runtime/debug"
	"sync"

	"github.com/breachkit/breach/incident"
)

// Panics gathers the first panic of the goroutines started with Go. The
// zero value is ready for use; it is safe for concurrent use.
type Panics struct {
	mu    sync.Mutex
	first *incident.PanicError
}

// Go runs fn on a goroutine of wg, recovering a panic in it into p.
func (p *Panics) Go(wg *sync.WaitGroup, fn func()) {
	wg.Go(func() {
		defer func() {
			if v := recover(); v != nil {
				p.mu.Lock()
				if p.first == nil {
					p.first = &incident.PanicError{Value: v, Stack: debug.Stack()}
				}
				p.mu.Unlock()
			}
		}()
		fn()
	})
}

// Repanic panics, on the caller's goroutine, with the first panic Go
// recovered (an *incident.PanicError holding its value and stack), if
// there was one. Call it once the goroutines have ended (wg.Wait).
func (p *Panics) Repanic() {
	p.mu.Lock()
	first := p.first
	p.mu.Unlock()
	if first != nil {
		panic(first)
	}
}

// Group is a sync.WaitGroup whose goroutines' panics are raised again on
// the goroutine that waits for them (see Panics). The zero value is ready
// for use.
type Group struct {
	wg     sync.WaitGroup
	panics Panics
}

// Go runs fn on a goroutine of g.
func (g *Group) Go(fn func()) { g.panics.Go(&g.wg, fn) }

// End waits for g's goroutines, then, when *returned (the waiting function
// returned normally: it is not itself panicking), raises the first panic
// of theirs. It is meant to be deferred: defer g.End(&returned).
func (g *Group) End(returned *bool) {
	g.wg.Wait()
	if *returned {
		g.panics.Repanic()
	}
}
