package breach

import (
	"context"
	"crypto/sha256"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
)

// BenchmarkIncidentFloor is the floor of BenchmarkIncidentEndToEnd's
// guarantees, run beside it (go test -bench 'IncidentEndToEnd|IncidentFloor'):
// what the API-key incident must do at the least, with nothing else. It
// makes as many head writes as the orchestrator makes store writes
// (floorWrites), each a copy of the head into a map under a lock; one
// SHA-256 per timeline entry (floorEntries); and one isolated call per
// plugin call (floorCalls), each on its own goroutine under a timeout, as
// the orchestrator makes them.
func BenchmarkIncidentFloor(b *testing.B) {
	const writes, entries, calls = floorWrites, floorEntries, floorCalls
	head := floorHead()
	detail := []byte("containment action \"disable-key\" applied (attempt 1, key brk_fee1c988b361103ae84f2f3561b6a43a)")
	var mu sync.Mutex
	heads := map[string]*incident.Incident{}
	plugin := func(context.Context) error { return nil }
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		id := "inc_" + strconv.Itoa(i)
		for range writes {
			h := head.Clone()
			h.ID = id
			mu.Lock()
			heads[id] = h
			mu.Unlock()
		}
		var prev [32]byte
		for range entries {
			d := sha256.New()
			d.Write(prev[:])
			d.Write(detail)
			d.Sum(prev[:0])
		}
		for range calls {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			done := make(chan error, 1)
			go func() { done <- plugin(cctx) }()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	}
}

// What the API-key incident of BenchmarkIncidentEndToEnd makes:
// floorWrites store writes (the creation holding the first claims, the
// containment result, the findings holding the notice claims, the notice
// result), floorEntries timeline entries (BenchmarkIncidentParts checks
// the count) and floorCalls plugin calls (container, investigator,
// notifier).
const floorWrites, floorEntries, floorCalls = 4, 12, 3

// BenchmarkWrite is one of the incident's writes, the unit both the
// orchestrator and BenchmarkIncidentFloor count: a change recording one
// timeline entry on an open incident (the working copy's changes, the
// store's write, the kept copy), against the floor's write (a copy of the
// head into a map under a lock, and one SHA-256 for the entry).
func BenchmarkWrite(b *testing.B) {
	b.Run("orchestrator", func(b *testing.B) {
		o := benchOrchestrator(b)
		ctx := context.Background()
		// A new incident every writesPerIncident writes (outside the
		// timer), so that what is measured is a write on an incident of
		// an API-key incident's size, not on one holding b.N entries.
		const writesPerIncident = 64
		var inc *incident.Incident
		open := func(n int) {
			rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_" + strconv.Itoa(n), Severity: incident.SeverityLow})
			if err != nil {
				b.Fatal(err)
			}
			if inc, err = o.head(ctx, rc.IncidentID, true); err != nil {
				b.Fatal(err)
			}
		}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			if n%writesPerIncident == 0 {
				b.StopTimer()
				open(n)
				b.StartTimer()
			}
			n++
			err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
				o.record(inc, incident.ActorSystem, incident.EntryNote, "containment action \"disable-key\" applied")
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		head := floorHead()
		detail := []byte("containment action \"disable-key\" applied")
		var mu sync.Mutex
		heads := map[string]*incident.Incident{}
		var prev [32]byte
		b.ReportAllocs()
		for b.Loop() {
			h := head.Clone()
			d := sha256.New()
			d.Write(prev[:])
			d.Write(detail)
			d.Sum(prev[:0])
			mu.Lock()
			heads[h.ID] = h
			mu.Unlock()
		}
	})
}

// floorHead is the head the floor copies at each write: an API-key
// incident with its containment action applied and its notice sent.
func floorHead() *incident.Incident {
	return &incident.Incident{ID: "inc_0", Kind: "apikey.compromised", Subject: "key_0", Account: "acct_7",
		DedupKey: "apikey.compromised/key_0", Severity: incident.SeverityCritical, State: incident.StateDetected,
		DetectedAt: time.Now(), Signals: incident.SignalSummary{Count: 1, Samples: []incident.SignalSample{{Summary: "found in a public repository"}}},
		Actions:  []incident.ActionRecord{{Name: "disable-key", IdempotencyKey: "brk_0", Status: incident.ActionApplied}},
		Outreach: incident.Outreach{Sent: 1}}
}

// BenchmarkIncidentParts measures work BenchmarkIncidentFloor leaves out
// but the API-key incident needs, each part on the incident's own record
// as BenchmarkIncidentEndToEnd leaves it: rendering the customer's notice,
// recording the incident's 13 timeline entries (their content redacted and
// sealed, against the floor's 13 bare SHA-256), and a copy of its head
// (against the floor's copy of its smaller head).
func BenchmarkIncidentParts(b *testing.B) {
	o := benchOrchestrator(b)
	ctx := context.Background()
	rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Account: "acct_7", Severity: incident.SeverityCritical})
	if err != nil {
		b.Fatal(err)
	}
	if err := o.settle(ctx, rc.IncidentID); err != nil {
		b.Fatal(err)
	}
	inc, err := incident.Load(ctx, o.store, rc.IncidentID)
	if err != nil {
		b.Fatal(err)
	}
	if inc.Investigation == nil || len(inc.Investigation.Impact.Customers) != 1 || len(inc.Timeline) != floorEntries {
		b.Fatalf("not the API-key incident BenchmarkIncidentEndToEnd makes: %d entries", len(inc.Timeline))
	}
	pb := o.cfg.playbooks[inc.Kind]
	b.Run("notice", func(b *testing.B) {
		actions := o.actionDescriptions(inc, pb)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pb.template().Render(o.notice(inc, pb, inc.Investigation.Impact.Customers[0], actions)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("entries", func(b *testing.B) {
		h := inc.Clone()
		entries := slices.Clone(inc.Timeline)
		h.Timeline = make(incident.Timeline, 0, len(entries))
		b.ReportAllocs()
		for b.Loop() {
			h.Timeline, h.Chain = h.Timeline[:0], incident.Chain{}
			for _, e := range entries {
				o.record(h, e.Actor, e.Type, e.Detail)
			}
		}
	})
	b.Run("entries-floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var prev [32]byte
			for _, e := range inc.Timeline {
				d := sha256.New()
				d.Write(prev[:])
				d.Write([]byte(e.Detail))
				d.Sum(prev[:0])
			}
		}
	})
	b.Run("head-copy", func(b *testing.B) {
		h := inc.Clone()
		h.Timeline, h.Deliveries = nil, nil
		h.Investigation.Impact.Customers = nil
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Clone()
		}
	})
	b.Run("head-copy-floor", func(b *testing.B) {
		h := floorHead()
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Clone()
		}
	})
}
