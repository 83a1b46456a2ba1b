package incident_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
)

// BenchmarkMemStoreRetained measures the heap MemStore keeps per open
// incident, for 100,000 incidents of the API-key kind with a 10-entry
// timeline, as the orchestrator writes them. It reports bytes/incident.
func BenchmarkMemStoreRetained(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		s := incident.NewMemStore()
		for i := range n {
			if err := s.Create(context.Background(), incident.Split(typicalIncident(i))); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/incident")
		b.StartTimer()
	}
}

// typicalIncident is an open API-key incident part way through its
// response: contained, investigated, one notice sent, ten timeline entries.
func typicalIncident(i int) *incident.Incident {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	id := fmt.Sprintf("inc_%016x", i)
	subject := fmt.Sprintf("key_%06d", i)
	inc := &incident.Incident{
		ID: id, Kind: "apikey.compromised", Subject: subject, Account: "acct_7",
		DedupKey: "apikey.compromised/" + subject, Severity: incident.SeverityCritical, State: incident.StateNotifying,
		Summary:    "live API key found in a public repository",
		DetectedAt: t0, UpdatedAt: t0, ContainedAt: t0.Add(2 * time.Second),
	}
	inc.Signals = incident.SignalSummary{Count: 1, FirstSeen: t0, LastSeen: t0,
		Samples: []incident.SignalSample{{At: t0, Source: "scanner", Severity: incident.SeverityCritical}}}
	inc.Investigation = &incident.Investigation{Findings: incident.Findings{
		Impact: incident.Impact{Customers: []incident.Customer{{ID: "acct_7", Email: "security@example.com"}},
			Data: []incident.DataCategory{incident.DataAPIAccess}},
	}}
	inc.Deliveries = []incident.Delivery{{IdempotencyKey: id + "/notify/acct_7/email", Recipient: "acct_7",
		Channel: "email", Status: incident.DeliverySent, Attempts: 1, SentAt: t0.Add(8 * time.Second)}}
	details := []string{
		"opened from a critical apikey.compromised signal about " + subject,
		"contain-first playbook: containing before investigating",
		"containment action \"disable-key\" applied",
		"every containment action applied",
		"containment holds; investigating",
		"investigation done; impact: 1 customer(s); data: API access",
		"notify customers: customer data affected",
		"customer data affected; notifying customers",
		"notice to customer \"acct_7\" via email sent",
		"clock started",
	}
	for j, d := range details {
		inc.Timeline.Append(incident.Entry{At: t0.Add(time.Duration(j) * time.Second), Actor: incident.ActorSystem,
			Type: incident.EntryNote, Detail: d})
	}
	return inc
}
