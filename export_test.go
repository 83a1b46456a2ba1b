package breach

import (
	"context"
	"time"
)

// Flush writes the signal counts gathered in memory, as Run does every
// flush interval: for tests that report without Run.
func (o *Orchestrator) Flush(ctx context.Context) error { return o.flush(ctx) }

// ClockDue is when clock c started at start is due.
func ClockDue(c Clock, start time.Time) time.Time { return c.due(start) }
