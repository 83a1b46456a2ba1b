package breach

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The containment gate: how "disable the key at once" does not wait behind
// a storm on busy cores.
//
// Containment work is queued before any other (sched.go), but a queue of
// steps does not order goroutines: with every core busy counting a storm's
// signals, the worker woken for a new contain-first incident, and the
// goroutine its containment call runs on, wait in the Go scheduler's run
// queue behind every runnable reporter, tens of milliseconds on two cores.
// So while such work waits to make its first containment call, the gate is
// closed: signal intake for open incidents (the counting of duplicates by
// Report and ReportAll, the bulk of a storm) parks at its next signal
// instead of running, which empties the run queue in front of the
// containment call. The gate opens when the call starts (or the step ends
// without one), and holds intake for maxGateHold at most from the latest
// reason it was shut for: a step that never reaches its call pauses
// intake no longer than that, and only a stream of new containment work
// keeps it paused. Opening new incidents is never held; the group
// committer yields its processor between incidents while the gate is shut
// (yield); and a signal that may open a contain-first incident shuts the
// gate already while it looks its key up under the hot index's lock.
type gate struct {
	shut atomic.Bool // read on every signal: nothing else is touched while it is open

	mu     sync.Mutex
	on     bool                // Run is going: holds are taken (see start and stop)
	holds  int                 // reasons the gate is shut
	latest time.Time           // when the latest of them came
	open   chan struct{}       // closed when it opens again
	ids    map[string]struct{} // incidents whose containment work holds it

	gosched func() // runtime.Gosched when nil; tests count the yields
}

// maxGateHold bounds how long intake waits at a shut gate, from the latest
// hold.
const maxGateHold = 10 * time.Millisecond

// start lets holds be taken: Run calls it as it starts.
func (g *gate) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = true
}

// stop opens the gate and takes no hold until the next start: Run is
// stopping and drives nothing more. A hold asked for at the same time is
// either released here or not taken.
func (g *gate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = false
	for id := range g.ids {
		delete(g.ids, id)
		g.releaseLocked()
	}
}

// yield lets waiting containment work go first while the gate is shut:
// the group committer calls it between incidents. Its writes are what
// acknowledgements wait for, so it does not park as intake does; but on
// busy cores a committer that keeps its processor keeps the worker, and the
// containment call, queued behind it (with a collection marking, the
// committer is all that runs on the other processor).
func (g *gate) yield() {
	if !g.shut.Load() {
		return
	}
	if g.gosched != nil {
		g.gosched()
		return
	}
	runtime.Gosched()
}

// hold shuts the gate for one more reason, while Run is going, and
// returns the function that takes it back.
func (g *gate) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return func() {}
	}
	g.holdLocked()
	return g.release
}

func (g *gate) holdLocked() {
	g.holds++
	g.latest = time.Now()
	if g.holds == 1 {
		g.open = make(chan struct{})
		g.shut.Store(true)
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked()
}

func (g *gate) releaseLocked() {
	g.holds--
	if g.holds == 0 {
		g.shut.Store(false)
		close(g.open)
		g.open = nil
	}
}

// holdFor shuts the gate for the containment work of incident id, while
// Run is going, once however often it is asked; releaseFor takes it back.
func (g *gate) holdFor(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return
	}
	if _, ok := g.ids[id]; ok {
		return
	}
	if g.ids == nil {
		g.ids = map[string]struct{}{}
	}
	g.ids[id] = struct{}{}
	g.holdLocked()
}

func (g *gate) releaseFor(id string) {
	if !g.shut.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.ids[id]; !ok {
		return
	}
	delete(g.ids, id)
	g.releaseLocked()
}

// wait parks the caller while the gate is shut, for maxGateHold from the
// latest hold at most, or until ctx ends.
func (g *gate) wait(ctx context.Context) {
	if !g.shut.Load() {
		return
	}
	g.mu.Lock()
	open, latest := g.open, g.latest
	g.mu.Unlock()
	if open == nil {
		return
	}
	left := maxGateHold - time.Since(latest)
	if left <= 0 {
		return
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-open:
	case <-t.C:
	case <-ctx.Done():
	}
}
