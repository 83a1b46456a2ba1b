package breach

import (
	"context"
	"sync"
	"time"
)

// scheduler is the queue of incidents waiting to be driven. An incident is
// queued at most once and driven by one worker at a time; one added while
// it is being driven is driven again afterwards.
type scheduler struct {
	mu     sync.Mutex
	queue  []string
	queued map[string]bool
	active map[string]bool
	again  map[string]bool
	signal chan struct{} // closed and replaced when work is added
	timers map[*time.Timer]struct{}
}

func (s *scheduler) init() {
	s.queued = map[string]bool{}
	s.active = map[string]bool{}
	s.again = map[string]bool{}
	s.signal = make(chan struct{})
	s.timers = map[*time.Timer]struct{}{}
}

func (s *scheduler) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] {
		s.again[id] = true
		return
	}
	if s.queued[id] {
		return
	}
	s.queued[id] = true
	s.queue = append(s.queue, id)
	close(s.signal)
	s.signal = make(chan struct{})
}

// next blocks until there is an incident to drive or ctx ends.
func (s *scheduler) next(ctx context.Context) (string, bool) {
	for {
		if ctx.Err() != nil {
			return "", false
		}
		s.mu.Lock()
		if len(s.queue) > 0 {
			id := s.queue[0]
			s.queue[0] = ""
			s.queue = s.queue[1:]
			if len(s.queue) == 0 {
				s.queue = nil
			}
			delete(s.queued, id)
			s.active[id] = true
			s.mu.Unlock()
			return id, true
		}
		ch := s.signal
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-ch:
		}
	}
}

func (s *scheduler) done(id string) {
	s.mu.Lock()
	delete(s.active, id)
	again := s.again[id]
	delete(s.again, id)
	s.mu.Unlock()
	if again {
		s.add(id)
	}
}

// later adds id after d, unless stopTimers runs first.
func (s *scheduler) later(d time.Duration, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		delete(s.timers, t)
		s.mu.Unlock()
		s.add(id)
	})
	s.timers[t] = struct{}{}
}

func (s *scheduler) wakeAll() {
	s.mu.Lock()
	close(s.signal)
	s.signal = make(chan struct{})
	s.mu.Unlock()
}

func (s *scheduler) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.timers {
		t.Stop()
		delete(s.timers, t)
	}
}

// slots gives one goroutine of this process at a time the right to change
// an incident: a worker driving it, or a person's action.
type slots struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func (s *slots) init() { s.held = map[string]chan struct{}{} }

func (s *slots) acquire(ctx context.Context, id string) (release func(), err error) {
	for {
		s.mu.Lock()
		ch, busy := s.held[id]
		if !busy {
			ch = make(chan struct{})
			s.held[id] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.held, id)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
