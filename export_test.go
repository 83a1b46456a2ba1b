package breach

import (
	"context"
	"time"

	"github.com/breachkit/breach/incident"
)

// Flush writes the signal counts gathered in memory, as Run does every
// flush interval: for tests that report without Run.
func (o *Orchestrator) Flush(ctx context.Context) error { return o.flush(ctx) }

// ClockDue is when clock c started at start is due.
func ClockDue(c Clock, start time.Time) time.Time { return c.due(start) }

// CheckDeadlines runs the clock and approval checks Run makes every
// deadline interval.
func (o *Orchestrator) CheckDeadlines(ctx context.Context) error { return o.checkDeadlines(ctx) }

// ListOpen returns the open incidents, oldest first.
func (o *Orchestrator) ListOpen(ctx context.Context) ([]*incident.Incident, error) {
	return o.store.ListOpen(ctx)
}
