package breach

import (
	"context"
	"sync"
	"time"
)

// priority orders the work of the queue: every urgent incident is driven
// before any normal one.
type priority uint8

const (
	normal priority = iota + 1
	// prompt is work that has waited already or that a person is waiting
	// for elsewhere (an incident taken over from a dead replica, one
	// another replica wrote to): before normal work, after containment.
	prompt
	// urgent is containment work (a new contain-first incident, a step
	// that leads into containment, a containment retry): disabling a key
	// never waits behind notifications, flushes or resumes. Only urgent
	// work shuts the containment gate (gate.go).
	urgent
)

// scheduler is the queue of incidents waiting for their next step. An
// incident is queued at most once and stepped by one worker at a time; one
// added while it is being stepped is queued again afterwards, at the
// higher of the two priorities.
type scheduler struct {
	mu     sync.Mutex
	queues [urgent + 1][]string
	queued map[string]priority // the priority an incident is queued at
	active map[string]bool
	again  map[string]priority
	// wake holds a token while there may be queued work no worker is
	// taking: one worker takes it, and passes it on if work is left, so
	// that an added incident wakes one worker, not all of them (each woken
	// worker would take the processor's next slot from the one before,
	// and the one that gets the work could wait behind every runnable
	// goroutine).
	wake   chan struct{}
	timers map[*time.Timer]struct{}
	// onUrgent, when set, is told of an incident newly queued at urgent
	// priority (under s.mu: it must not call the scheduler).
	onUrgent func(id string)
}

func (s *scheduler) init() {
	s.queued = map[string]priority{}
	s.active = map[string]bool{}
	s.again = map[string]priority{}
	s.wake = make(chan struct{}, 1)
	s.timers = map[*time.Timer]struct{}{}
}

// add queues id at normal priority.
func (s *scheduler) add(id string) { s.addAt(id, normal) }

// addAt queues id at priority p, or raises its priority if it is queued
// lower, and wakes a worker.
func (s *scheduler) addAt(id string, p priority) {
	if s.queue(id, p) {
		s.poke()
	}
}

// addFor queues id at priority p as addAt does, and leaves the waking of a
// worker to the caller's poke, made from the goroutine that will next give
// up its processor: the worker woken then is the next to run there. In
// case that never comes (the caller gave up), a worker is woken after
// pokeAfter all the same, by the timer it returns (nil when id was not
// queued), which a caller that poked stops.
func (s *scheduler) addFor(id string, p priority) *time.Timer {
	if s.queue(id, p) {
		return time.AfterFunc(pokeAfter, s.poke)
	}
	return nil
}

// pokeAfter is when addFor's work wakes a worker if its caller did not.
const pokeAfter = time.Millisecond

// queue queues id at priority p unless it is active (it is queued again
// when done) or queued as high, and reports whether it did.
func (s *scheduler) queue(id string, p priority) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] {
		s.again[id] = max(s.again[id], p)
		return false
	}
	if q := s.queued[id]; q >= p {
		return false
	}
	// A lower entry, if any, stays in its queue and is skipped when met.
	s.queued[id] = p
	s.queues[p] = append(s.queues[p], id)
	if p == urgent && s.onUrgent != nil {
		s.onUrgent(id)
	}
	return true
}

// poke wakes one waiting worker, if none is already woken.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next blocks until there is an incident to step or ctx ends.
func (s *scheduler) next(ctx context.Context) (string, bool) {
	for {
		if ctx.Err() != nil {
			return "", false
		}
		s.mu.Lock()
		if id, ok := s.pop(); ok {
			if s.pending() {
				s.poke() // another worker takes the rest
			}
			s.mu.Unlock()
			return id, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-s.wake:
		}
	}
}

// pop takes the first incident of the highest non-empty queue; s.mu is
// held.
func (s *scheduler) pop() (string, bool) {
	for p := urgent; p >= normal; p-- {
		for len(s.queues[p]) > 0 {
			id := s.queues[p][0]
			s.queues[p][0] = ""
			s.queues[p] = s.queues[p][1:]
			if len(s.queues[p]) == 0 {
				s.queues[p] = nil
			}
			if s.queued[id] != p {
				continue // raised to a higher queue, already taken from there
			}
			delete(s.queued, id)
			s.active[id] = true
			return id, true
		}
	}
	return "", false
}

// pending reports whether anything is queued; s.mu is held.
func (s *scheduler) pending() bool {
	for p := urgent; p >= normal; p-- {
		if len(s.queues[p]) > 0 {
			return true
		}
	}
	return false
}

func (s *scheduler) done(id string) {
	s.mu.Lock()
	delete(s.active, id)
	again := s.again[id]
	delete(s.again, id)
	s.mu.Unlock()
	if again != 0 {
		s.addAt(id, again)
	}
}

// later adds id after d at priority p, unless stopTimers runs first.
func (s *scheduler) later(d time.Duration, id string, p priority) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		delete(s.timers, t)
		s.mu.Unlock()
		s.addAt(id, p)
	})
	s.timers[t] = struct{}{}
}

func (s *scheduler) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.timers {
		t.Stop()
		delete(s.timers, t)
	}
}

// slots give one goroutine of this process at a time the right to run a
// step of an incident. A worker holds an incident's slot for one step; a
// dismissal takes it between steps, after interrupting the running one.
// People's other actions take no slot: they change the record under
// compare-and-swap, and a step that read the record before them finds the
// change when it writes.
type slots struct {
	mu      sync.Mutex
	held    map[string]*slot
	waiting map[string]int  // interruptions waiting for the slot: no new step starts
	refused map[string]bool // a step was refused while the slot was held or awaited
	// requeue queues an incident whose step was refused, once the slot is
	// free: the holder's own requeue may have come before the refusal.
	requeue func(id string)
}

type slot struct {
	free   chan struct{} // closed when the holder releases it
	cancel context.CancelCauseFunc
}

func (s *slots) init(requeue func(id string)) {
	s.held = map[string]*slot{}
	s.waiting = map[string]int{}
	s.refused = map[string]bool{}
	s.requeue = requeue
}

// begin gives the slot of id to a step whose work cancel interrupts. It
// reports false, without waiting, when the slot is held or an interruption
// waits for it: the incident is queued again when the slot is released.
func (s *slots) begin(id string, cancel context.CancelCauseFunc) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.held[id]; busy || s.waiting[id] > 0 {
		s.refused[id] = true
		return nil, false
	}
	sl := &slot{free: make(chan struct{}), cancel: cancel}
	s.held[id] = sl
	return func() { s.release(id, sl) }, true
}

// interrupt takes the slot of id for a person's action that makes the
// running step moot: the step's work is cancelled with cause and no new
// step starts meanwhile. It waits for the running step to wind down, and
// returns ctx's error when ctx ends first.
func (s *slots) interrupt(ctx context.Context, id string, cause error) (release func(), err error) {
	s.mu.Lock()
	s.waiting[id]++
	requeue := false
	defer func() {
		if s.waiting[id]--; s.waiting[id] == 0 {
			delete(s.waiting, id)
		}
		s.mu.Unlock()
		if requeue && s.requeue != nil {
			s.requeue(id)
		}
	}()
	for {
		sl, busy := s.held[id]
		if !busy {
			mine := &slot{free: make(chan struct{})}
			s.held[id] = mine
			return func() { s.release(id, mine) }, nil
		}
		if sl.cancel != nil {
			sl.cancel(cause)
		}
		s.mu.Unlock()
		select {
		case <-sl.free:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if err := ctx.Err(); err != nil {
			// The step was cut for an interruption that gave up: it does
			// not queue itself again, so the release of the slot does,
			// or this, when the slot is free already.
			if _, busy := s.held[id]; busy || s.waiting[id] > 1 {
				s.refused[id] = true
			} else {
				delete(s.refused, id)
				requeue = true
			}
			return nil, err
		}
	}
}

// release frees the slot sl of id and queues the incident when a step was
// refused meanwhile (unless an interruption still waits for the slot: its
// own release will).
func (s *slots) release(id string, sl *slot) {
	s.mu.Lock()
	if s.held[id] == sl {
		delete(s.held, id)
	}
	requeue := s.refused[id] && s.waiting[id] == 0
	if requeue {
		delete(s.refused, id)
	}
	s.mu.Unlock()
	close(sl.free)
	if requeue && s.requeue != nil {
		s.requeue(id)
	}
}
