package detect_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
)

// t0 is the start of every test's clock, aligned to every window used.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is a manual clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// recorder is a Reporter that keeps every signal and checks it is valid.
type recorder struct {
	mu      sync.Mutex
	signals []incident.Signal
	invalid []error
}

func (r *recorder) Report(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := s.Validate(); err != nil {
		r.invalid = append(r.invalid, err)
		return incident.Receipt{}, err
	}
	r.signals = append(r.signals, s)
	return incident.Receipt{IncidentID: "inc"}, nil
}

func (r *recorder) all(t *testing.T) []incident.Signal {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.invalid, "every signal passes Validate")
	return append([]incident.Signal(nil), r.signals...)
}

// detector is what every rule of the package offers.
type detector interface {
	incident.Detector
	Observe(detect.Event) error
	Stats() detect.Stats
}

// running starts d.Detect with r inside a synctest bubble and returns a
// function that stops it and checks how it returned.
func running(t *testing.T, d detector, r incident.Reporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Detect(ctx, r) }()
	synctest.Wait() // Detect has started and waits for events
	return func() {
		t.Helper()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	}
}

// observeAll observes every event and requires that each is accepted.
func observeAll(t *testing.T, d detector, evs ...detect.Event) {
	t.Helper()
	for i, ev := range evs {
		require.NoError(t, d.Observe(ev), "event %d", i)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func attr(s incident.Signal, k string) string { return s.Attributes[k] }

var errBoom = errors.New("boom")
