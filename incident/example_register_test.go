package incident_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/breachkit/breach/incident"
)

// The register pages through every incident, open or ended, newest first,
// and exports it.
func ExampleLister() {
	ctx := context.Background()
	store := incident.NewMemStore()
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	for i, state := range []incident.State{incident.StateClosed, incident.StateDismissed, incident.StateDetected} {
		inc := &incident.Incident{ID: fmt.Sprintf("inc_%d", i+1), Kind: "apikey.compromised", Subject: fmt.Sprintf("key_%d", i+1),
			DedupKey: fmt.Sprintf("k%d", i+1), Severity: incident.SeverityHigh, State: state, DetectedAt: at.Add(time.Duration(i) * time.Hour)}
		if state == incident.StateClosed {
			inc.ClosedAt = inc.DetectedAt.Add(30 * time.Minute)
			inc.Decision = &incident.Decision{Notify: false, Reason: "no customer data affected"}
		}
		if err := store.Create(ctx, incident.Split(inc)); err != nil {
			panic(err)
		}
	}

	var register []*incident.Incident
	f := incident.ListFilter{Limit: 2}
	for {
		page, err := store.List(ctx, f)
		if err != nil {
			panic(err)
		}
		register = append(register, page.Incidents...)
		if f.Cursor = page.Next; f.Cursor == "" {
			break
		}
	}
	if err := incident.WriteMarkdownRegister(os.Stdout, register...); err != nil {
		panic(err)
	}
	// Output:
	// # Register of incidents
	//
	// 3 incidents.
	//
	// | ID | Kind | Subject | Account | Severity | State | Detected | Closed | Notified |
	// |---|---|---|---|---|---|---|---|---|
	// | inc_3 | apikey.compromised | key_3 | — | high | detected | 2025-03-14 11:00:00 UTC | — | undecided |
	// | inc_2 | apikey.compromised | key_2 | — | high | dismissed | 2025-03-14 10:00:00 UTC | — | undecided |
	// | inc_1 | apikey.compromised | key_1 | — | high | closed | 2025-03-14 09:00:00 UTC | 2025-03-14 09:30:00 UTC | no: no customer data affected |
}
