package breach

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// benchOrchestrator is an orchestrator of benchPlaybook on a MemStore,
// logging nothing, not running.
func benchOrchestrator(b *testing.B) *Orchestrator {
	b.Helper()
	o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	return o
}

// BenchmarkIncidentEndToEnd: one incident from Report to closed through the
// whole API-key playbook (contain, investigate, notify one customer,
// resolve, close) with MemStore and no-op plugins, against the bare
// looplab/fsm happy path (NewFSM and the same seven events).
func BenchmarkIncidentEndToEnd(b *testing.B) {
	b.Run("orchestrator", func(b *testing.B) {
		o := benchOrchestrator(b)
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
		inc, err := o.store.Head(ctx, o.cfg.newID())
		if err == nil || inc != nil {
			b.Fatal("unexpected incident")
		}
	})
	b.Run("orchestrator-parallel", func(b *testing.B) {
		o := benchOrchestrator(b)
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
//
// It measures the path of WithUnsafeAcks (counted in memory); BenchmarkStorm
// measures durable acknowledgement, where every Report waits for its group
// commit.
func BenchmarkReportOpen(b *testing.B) {
	o, err := New(incident.NewMemStore(), WithPlaybook(benchPlaybook()), WithLogger(slog.New(slog.DiscardHandler)), WithUnsafeAcks())
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
	// The same, each signal bringing the key's credential (a leaked-key
	// report does): kept for containment, not stored again while fresh.
	withCred := sig
	withCred.Credential = incident.NewSecret("sk_live_benchmark_0123456789")
	b.Run("report-credential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := o.Report(ctx, withCred); err != nil {
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

// BenchmarkStorm: duplicate signals over 1,000 open incidents from 8,192
// reporters, with durable acknowledgement (every Report returns once its
// count is stored by group commit), Run going. Meanwhile a new contain-first
// incident is reported every millisecond and the time from its Report to its
// container's call is measured: containment must not wait behind the storm.
// The baseline is the same number of reporters bumping a mutex-guarded map.
// After the storm every acknowledged signal must be counted, exactly.
func BenchmarkStorm(b *testing.B) {
	const keys, reporters = 1000, 8192
	b.Run("durable", func(b *testing.B) { storm(b, keys, reporters, 1, 0) })
	// ReportAll: 64 reporters, each filing batches of 4,096 signals and
	// waiting once per batch for their group commits.
	b.Run("durable-batched", func(b *testing.B) { storm(b, keys, 64, 4096, 0) })
	// The same, paced at 2 million signals a second: the time to
	// containment during a storm of that rate, with the cores not
	// saturated by reporters the orchestrator could not keep up with.
	b.Run("durable-batched-2M", func(b *testing.B) { storm(b, keys, 64, 4096, 2_000_000) })
	// Batches of 512: each reporter's ring holds 1,512 signals (15 MB in
	// all) instead of 5,096 (50 MB), which every collection must mark;
	// while it marks, one of two processors is the collector's, so the
	// containment tail follows how long a collection takes.
	b.Run("durable-batched512", func(b *testing.B) { storm(b, keys, 64, 512, 0) })
	b.Run("durable-batched512-2M", func(b *testing.B) { storm(b, keys, 64, 512, 2_000_000) })
	b.Run("mutex-map-baseline", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]int64{}
		var next atomic.Int64
		total := int64(b.N)
		start := time.Now()
		var sw sync.WaitGroup
		for range reporters {
			sw.Go(func() {
				for next.Add(1) <= total {
					mu.Lock()
					m["key"]++
					mu.Unlock()
				}
			})
		}
		sw.Wait()
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "signals/s")
	})
}

// storm is a BenchmarkStorm run: b.N duplicate signals over keys open
// incidents from reporters goroutines, each Report waiting for its group
// commit (batch 1) or each ReportAll of batch signals waiting for theirs;
// with rate > 0, a batch is filed no earlier than its place in a storm of
// rate signals a second.
func storm(b *testing.B, keys, reporters, batch, rate int) {
	{
		store := incident.NewMemStore()
		// The probe and the containers share no lock: a lock they both
		// took would itself hand the processor from one to the other and
		// add its own delays to what is measured.
		var (
			reported     sync.Map // subject → time.Time of its Report
			mu           sync.Mutex
			delays       []time.Duration // under mu
			reportDelays []time.Duration // the probe's own
		)
		probe := Playbook{Kind: "probe.compromised", Strategy: ContainFirst,
			Containment: []containment.Action{{Name: "disable", Container: containment.Func(func(_ context.Context, r containment.Request) error {
				if at, ok := reported.LoadAndDelete(r.Subject); ok {
					d := time.Since(at.(time.Time))
					mu.Lock()
					delays = append(delays, d)
					mu.Unlock()
				}
				return nil
			})}},
		}
		pb := benchPlaybook()
		pb.Investigator = incident.InvestigatorFunc(func(context.Context, *incident.Incident) (incident.Findings, error) {
			return incident.Findings{}, nil // no impact: the incidents wait in resolving, open
		})
		pb.AutoResolve, pb.AutoClose = false, false
		o, err := New(store, WithPlaybook(pb), WithPlaybook(probe), WithLogger(slog.New(slog.DiscardHandler)), WithConcurrency(8))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		// The subjects are made once: the storm measures the orchestrator,
		// not the garbage of the reporters' own string building.
		subjects := make([]string, keys)
		for i := range subjects {
			subjects[i] = "key_" + strconv.Itoa(i)
		}
		sig := func(i int) incident.Signal {
			return incident.Signal{Kind: "apikey.compromised", Subject: subjects[i%keys], Severity: incident.SeverityCritical,
				Source: "gateway", Summary: "disabled key presented"}
		}
		for i := range keys {
			if _, err := o.Report(ctx, sig(i)); err != nil {
				b.Fatal(err)
			}
		}
		// Each reporter files its batches from a ring of signals made
		// before the storm (ReportAll does not change them), as a
		// gateway's batches are made by the gateway: building 4,096
		// signals per batch in the storm was an eighth of its processor
		// time, and at its onset the reporters' first batches (50 MB)
		// were all being made at once while the first probes waited.
		rings := make([][]incident.Signal, reporters)
		if batch > 1 {
			for r := range rings {
				rings[r] = make([]incident.Signal, keys+batch)
				for j := range rings[r] {
					rings[r][j] = sig(j)
				}
			}
		}
		var next atomic.Int64
		stopProbe := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-stopProbe:
					return
				case <-t.C:
				}
				subject := "probe_" + strconv.Itoa(n)
				t0 := time.Now()
				reported.Store(subject, t0)
				if _, err := o.Report(ctx, incident.Signal{Kind: "probe.compromised", Subject: subject, Severity: incident.SeverityCritical}); err != nil {
					b.Error(err)
					return
				}
				reportDelays = append(reportDelays, time.Since(t0))
			}
		})
		total := int64(b.N)
		b.ResetTimer()
		start := time.Now()
		var sw sync.WaitGroup
		for r := range reporters {
			sw.Go(func() {
				ring := rings[r]
				if batch > 1 {
					for {
						to := next.Add(int64(batch))
						from := to - int64(batch) + 1
						if from > total {
							return
						}
						if rate > 0 {
							time.Sleep(time.Until(start.Add(time.Duration(float64(from) / float64(rate) * float64(time.Second)))))
						}
						at := int(from) % keys
						sigs := ring[at : at+int(min(to, total)-from+1)]
						if _, err := o.ReportAll(ctx, sigs); err != nil {
							b.Error(err)
							return
						}
					}
				}
				for {
					n := next.Add(1)
					if n > total {
						return
					}
					if _, err := o.Report(ctx, sig(int(n))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		sw.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		close(stopProbe)
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		open, err := store.ListOpen(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var counted int64
		for _, inc := range open {
			if inc.Kind == "apikey.compromised" {
				counted += inc.Signals.Count
			}
		}
		if want := int64(keys) + total; counted != want {
			b.Fatalf("counted %d signals, acknowledged %d", counted, want)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "signals/s")
		mu.Lock()
		slices.Sort(reportDelays)
		if n := len(reportDelays); n > 0 {
			b.ReportMetric(float64(reportDelays[n*99/100].Microseconds())/1000, "report-p99-ms")
		}
		slices.Sort(delays)
		if n := len(delays); n > 0 {
			b.ReportMetric(float64(delays[n/2].Microseconds())/1000, "contain-p50-ms")
			b.ReportMetric(float64(delays[n*99/100].Microseconds())/1000, "contain-p99-ms")
		}
		mu.Unlock()
	}
}
