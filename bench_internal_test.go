package breach

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/looplab/fsm"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// Benchmarks of the orchestrator, each beside its baseline. Run:
//
//	go test -run '^$' -bench . -benchmem .

func benchPlaybook() Playbook {
	noop := containment.Func(func(context.Context, containment.Request) error { return nil })
	return Playbook{
		Kind:     "apikey.compromised",
		Strategy: ContainFirst,
		Containment: []containment.Action{
			{Name: "disable-key", Description: "disabled the key", Container: noop},
		},
		Investigator: incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
			return incident.Findings{Impact: incident.Impact{
				Customers: []incident.Customer{{ID: "acct_7", Email: "sec@example.com"}},
				Data:      []incident.DataCategory{incident.DataAPIAccess},
			}}, nil
		}),
		Notifiers:       []notify.Route{{Channel: "email", Notifier: notify.Func(func(context.Context, notify.Message) error { return nil })}},
		Recommendations: []string{"Generate a new API key."},
		AutoResolve:     true,
		AutoClose:       true,
	}
}

// BenchmarkIncidentEndToEnd: one incident from Report to closed through the
// whole API-key playbook (contain, investigate, notify one customer,
// resolve, close) with MemStore and no-op plugins, against the bare
// looplab/fsm happy path (NewFSM and the same seven events).
func BenchmarkIncidentEndToEnd(b *testing.B) {
	b.Run("orchestrator", func(b *testing.B) {
		o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		sig := incident.Signal{Kind: "apikey.compromised", Account: "acct_7", Severity: incident.SeverityCritical}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			sig.Subject = "key_" + strconv.Itoa(i)
			rc, err := o.Report(ctx, sig)
			if err != nil {
				b.Fatal(err)
			}
			if err := o.settle(ctx, rc.IncidentID); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		inc, err := o.store.Get(ctx, o.cfg.newID())
		if err == nil || inc != nil {
			b.Fatal("unexpected incident")
		}
	})
	b.Run("orchestrator-parallel", func(b *testing.B) {
		o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			sig := incident.Signal{Kind: "apikey.compromised", Account: "acct_7", Severity: incident.SeverityCritical}
			for pb.Next() {
				sig.Subject = "key_" + strconv.FormatInt(n.Add(1), 10)
				rc, err := o.Report(ctx, sig)
				if err != nil {
					b.Fatal(err)
				}
				if err := o.settle(ctx, rc.IncidentID); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("looplab-fsm-baseline-parallel", func(b *testing.B) {
		var table fsm.Events
		for _, t := range incident.Standard().Transitions() {
			table = append(table, fsm.EventDesc{Name: string(t.Event), Src: []string{string(t.From)}, Dst: string(t.To)})
		}
		events := []string{"contain", "contained", "investigate", "notify", "notified", "resolve", "close"}
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				f := fsm.NewFSM("detected", table, nil)
				for _, ev := range events {
					if err := f.Event(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	})
	b.Run("looplab-fsm-baseline", func(b *testing.B) {
		var table fsm.Events
		for _, t := range incident.Standard().Transitions() {
			table = append(table, fsm.EventDesc{Name: string(t.Event), Src: []string{string(t.From)}, Dst: string(t.To)})
		}
		events := []string{"contain", "contained", "investigate", "notify", "notified", "resolve", "close"}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			f := fsm.NewFSM("detected", table, nil)
			for _, ev := range events {
				if err := f.Event(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkReportOpen: a signal for an incident that is already open, the
// storm case, against a bare mutex-guarded map lookup.
func BenchmarkReportOpen(b *testing.B) {
	o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	sig := incident.Signal{Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7", Severity: incident.SeverityCritical,
		Source: "gateway", Summary: "disabled key presented"}
	if _, err := o.Report(context.Background(), sig); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("report", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := o.Report(ctx, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	var mu sync.Mutex
	m := map[string]int64{"apikey.compromised/key_42": 0}
	b.Run("mutex-map-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mu.Lock()
			m["apikey.compromised/key_42"]++
			mu.Unlock()
		}
	})
	b.Run("report-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := o.Report(ctx, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("mutex-map-baseline-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				m["apikey.compromised/key_42"]++
				mu.Unlock()
			}
		})
	})
}
