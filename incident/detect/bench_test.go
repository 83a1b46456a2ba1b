package detect

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
)

// The benchmarks run each rule's evaluation of an event (the work of the
// goroutine running Detect) beside a naive implementation behind a mutex,
// on streams over 100,000 distinct keys (1,000,000 pairs for NewTerms),
// after a warm-up that fills every key's state. The Observe benchmarks
// measure the enqueue path alone and the whole pipeline (Observe on one or
// two goroutines, Detect evaluating on its own).
//
//	go test -run '^$' -bench . -benchmem -count 5 ./incident/detect/

const benchKeys = 100_000

var benchKeyNames = func() []string {
	k := make([]string, benchKeys)
	for i := range k {
		k[i] = fmt.Sprintf("key_%06d", i)
	}
	return k
}()

// pool is a fixed set of events over benchKeys keys in random order, as
// they would sit in the queue; each event's time is set when it is used,
// step after the previous one.
type pool struct {
	evs  []Event
	base int64
	step int64
}

const poolSize = 1 << 17

func newPool(step time.Duration) *pool {
	r := rand.New(rand.NewPCG(1, 2))
	p := &pool{evs: make([]Event, poolSize), base: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano(), step: int64(step)}
	perm := r.Perm(benchKeys) // every key, then more at random
	for i := range p.evs {
		k := r.IntN(benchKeys)
		if i < benchKeys {
			k = perm[i]
		}
		p.evs[i] = Event{Key: benchKeyNames[k], Name: "auth.failed"}
	}
	return p
}

// newShardPool is newPool over the keys of one of two shards (by the
// key's number).
func newShardPool(step time.Duration, shard int) *pool {
	p := newPool(step)
	r := rand.New(rand.NewPCG(5, uint64(shard)))
	perm := r.Perm(benchKeys / 2)
	for i := range p.evs {
		k := r.IntN(benchKeys / 2)
		if i < benchKeys/2 {
			k = perm[i]
		}
		p.evs[i].Key = benchKeyNames[2*k+shard]
	}
	return p
}

func (p *pool) at(i int) int64 { return p.base + int64(i)*p.step }

// take returns up to n events from the i-th on, with their times set.
func (p *pool) take(i, n int) []Event {
	off := i & (poolSize - 1)
	b := p.evs[off:min(off+n, poolSize)]
	for j := range b {
		b[j].Time = time.Unix(0, p.at(i+j))
	}
	return b
}

// event returns a copy of the i-th event with its time set.
func (p *pool) event(i int) Event {
	ev := p.evs[i&(poolSize-1)]
	ev.Time = time.Unix(0, p.at(i))
	return ev
}

// batches runs fn over b.N events from the i-th on, in batches as Detect
// takes them from the queue, and returns the next index.
func batches(b *testing.B, p *pool, i, n int, fn func(batch []Event, now int64)) int {
	for done := 0; done < n; {
		batch := p.take(i+done, min(DefaultQueueSize, n-done))
		fn(batch, p.at(i+done+len(batch)))
		done += len(batch)
	}
	return i + n
}

// quietOptions allow an hour of skew: two goroutines observing may drift
// apart while one waits for room in the queue.
func quietOptions() Options { return Options{Logger: slog.New(slog.DiscardHandler), Skew: time.Hour} }

// Two densities for the threshold: "dense" gives each key about 20 events
// in its 60 s window (an event every 30 µs over 100,000 keys), "sparse"
// under one (every 1 ms). Neither crosses the threshold of 100, so the
// benchmarks measure the steady state, not signal building.
var densities = []struct {
	name string
	step time.Duration
}{{"dense", 30 * time.Microsecond}, {"sparse", time.Millisecond}}

func newBenchThreshold(b *testing.B) *Threshold {
	opts := quietOptions()
	opts.MaxKeys = benchKeys
	d, err := NewThreshold(ThresholdConfig{Name: "auth-failures", Kind: "apikey.bruteforce", Severity: incident.SeverityHigh,
		Window: time.Minute, Count: 100, Options: opts})
	if err != nil {
		b.Fatal(err)
	}
	d.e.sink = func(incident.Signal) {}
	return d
}

// warmup is how many events fill a window of every key (and the table).
func warmup(step time.Duration) int { return max(int(time.Minute/step), 2*benchKeys) }

// naiveThreshold is the obvious implementation: every event time of each
// key in a slice, behind a mutex.
type naiveThreshold struct {
	mu     sync.Mutex
	m      map[string][]time.Time
	window time.Duration
	n      int
}

func (n *naiveThreshold) observe(key string, t time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ts := n.m[key]
	cut := t.Add(-n.window)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = append(ts[i:], t)
	n.m[key] = ts
	return len(ts) > n.n
}

func (n *naiveThreshold) batch(batch []Event, _ int64) {
	for i := range batch {
		n.observe(batch[i].Key, batch[i].Time)
	}
}

func newNaiveThreshold() *naiveThreshold {
	return &naiveThreshold{m: map[string][]time.Time{}, window: time.Minute, n: 100}
}

func BenchmarkThreshold(b *testing.B) {
	for _, den := range densities {
		warm := warmup(den.step)
		b.Run("eval/"+den.name, func(b *testing.B) {
			d, p := newBenchThreshold(b), newPool(den.step)
			i := batches(b, p, 0, warm, d.e.batch)
			b.ResetTimer()
			batches(b, p, i, b.N, d.e.batch)
			reportRate(b)
			if st := d.Stats(); st.Late+st.Early > 0 || st.Keys != benchKeys {
				b.Fatalf("%+v", st)
			}
		})
		b.Run("naive-baseline/"+den.name, func(b *testing.B) {
			n, p := newNaiveThreshold(), newPool(den.step)
			i := batches(b, p, 0, warm, n.batch)
			b.ResetTimer()
			batches(b, p, i, b.N, n.batch)
			reportRate(b)
		})
		b.Run("naive-baseline-parallel/"+den.name, func(b *testing.B) {
			n, p := newNaiveThreshold(), newPool(den.step)
			var next atomic.Int64
			next.Store(int64(batches(b, p, 0, warm, n.batch)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i, end := 0, 0
				for pb.Next() {
					if i == end {
						i = int(next.Add(64)) - 64
						end = i + 64
					}
					n.observe(p.evs[i&(poolSize-1)].Key, time.Unix(0, p.at(i)))
					i++
				}
			})
			reportRate(b)
		})
		b.Run("eval-2-shards-parallel/"+den.name, func(b *testing.B) {
			// Two Thresholds, each with half of the keys and its own
			// goroutine: how a host spreads evaluation over cores.
			var shards [2]*Threshold
			var pools [2]*pool
			for s := range shards {
				shards[s], pools[s] = newBenchThreshold(b), newShardPool(2*den.step, s)
				batches(b, pools[s], 0, warm/2, shards[s].e.batch)
			}
			var next atomic.Int32
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				s := int(next.Add(1)-1) % 2
				d, p, i, n := shards[s], pools[s], warm/2, 0
				for pb.Next() {
					if n++; n == DefaultQueueSize {
						i = batches(b, p, i, n, d.e.batch)
						n = 0
					}
				}
				batches(b, p, i, n, d.e.batch)
			})
			reportRate(b)
		})
		b.Run("observe+detect-parallel/"+den.name, func(b *testing.B) {
			benchPipeline(b, newBenchThreshold(b), newPool(den.step), warm, true)
		})
	}
	b.Run("observe+detect/dense", func(b *testing.B) {
		benchPipeline(b, newBenchThreshold(b), newPool(densities[0].step), warmup(densities[0].step), false)
	})
	b.Run("observe-enqueue", func(b *testing.B) {
		d, p := newBenchThreshold(b), newPool(densities[0].step)
		spare := make([]Event, 0, d.e.opts.QueueSize)
		// A host observes the key it is handling: in the cache.
		hot := make([]Event, 256)
		for i := range hot {
			hot[i] = p.event(i)
		}
		i := 0
		for b.Loop() {
			if err := d.Observe(hot[i&255]); err != nil {
				spare = d.e.q.swap(spare) // drain without evaluating
				clear(spare)
				spare = spare[:0]
			}
			i++
		}
		reportRate(b)
	})
}

// benchPipeline measures events per second from Observe to evaluation:
// one goroutine (or b.RunParallel's) observes, retrying when the queue is
// full, while Detect evaluates on its own goroutine. The time ends when
// every event has been evaluated.
func benchPipeline(b *testing.B, d *Threshold, p *pool, warm int, parallel bool) {
	batches(b, p, 0, warm, d.e.batch)
	d.e.sink = nil
	start := d.e.st.evaluated.Load()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Detect(ctx, nopReporter{})
	}()
	var next atomic.Int64
	next.Store(int64(warm))
	var full atomic.Int64
	observe := func(i int) {
		for d.Observe(p.event(i)) == ErrFull {
			full.Add(1)
			runtime.Gosched()
		}
	}
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			i, end := 0, 0
			for pb.Next() {
				if i == end {
					i = int(next.Add(64)) - 64
					end = i + 64
				}
				observe(i)
				i++
			}
		})
	} else {
		for i := range b.N {
			observe(warm + i)
		}
	}
	for d.e.st.evaluated.Load()-start < uint64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	cancel()
	<-done
	reportRate(b)
	b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
	if st := d.Stats(); st.Late+st.Early > 0 {
		b.Fatalf("dropped: %+v", st)
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mevents/s")
}

type nopReporter struct{}

func (nopReporter) Report(context.Context, incident.Signal) (incident.Receipt, error) {
	return incident.Receipt{}, nil
}

// retained runs fill and reports the heap it leaves behind per unit.
func retained(b *testing.B, units float64, unit string, fill func() any) {
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		v := fill()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/units, "B/"+unit)
		b.StartTimer()
	}
}

// BenchmarkThresholdRetained measures the heap a Threshold keeps per
// tracked key (the queue, the table, the key's copy and its window), for
// 100,000 keys with 60 events each in the window, beside the naive
// implementation with the same events.
func BenchmarkThresholdRetained(b *testing.B) {
	const perKey = 60
	b.Run("threshold", func(b *testing.B) {
		retained(b, benchKeys, "key", func() any {
			d := newBenchThreshold(b)
			ev := new(Event)
			for j := range perKey {
				for i, k := range benchKeyNames {
					*ev = Event{Key: k, Time: time.Unix(0, int64(j*benchKeys+i)*int64(10*time.Microsecond))}
					d.e.process(ev, 1<<62)
				}
			}
			return d
		})
	})
	b.Run("naive-baseline", func(b *testing.B) {
		retained(b, benchKeys, "key", func() any {
			n := &naiveThreshold{m: map[string][]time.Time{}, window: time.Minute, n: 100}
			for j := range perKey {
				for i, k := range benchKeyNames {
					n.observe(k, time.Unix(0, int64(j*benchKeys+i)*int64(10*time.Microsecond)))
				}
			}
			return n
		})
	})
}

// NewTerms: 1,000,000 distinct (key, value) pairs, ten values for each of
// 100,000 keys, all learned; the stream then shows known pairs at random.
const benchValues = 10

var benchValueNames = func() []string {
	v := make([]string, benchValues)
	for i := range v {
		v[i] = fmt.Sprintf("203.0.113.%d", i)
	}
	return v
}()

func newBenchNewTerms(b *testing.B) *NewTerms {
	opts := quietOptions()
	opts.MaxKeys = benchKeys
	d, err := NewNewTerms(NewTermsConfig{Name: "new-ip", Kind: "apikey.suspicious", Severity: incident.SeverityMedium,
		Learn: 24 * time.Hour, MaxTerms: 2 * benchKeys * benchValues, Options: opts})
	if err != nil {
		b.Fatal(err)
	}
	d.e.sink = func(incident.Signal) {}
	return d
}

func learnAll(d *NewTerms) {
	ev := new(Event)
	for v, val := range benchValueNames {
		for i, k := range benchKeyNames {
			*ev = Event{Key: k, Value: val, Time: time.Unix(0, int64(v*benchKeys+i))}
			d.e.process(ev, 1<<62)
		}
	}
}

// naiveNewTerms is the obvious implementation: a set of values per key,
// behind a mutex.
type naiveNewTerms struct {
	mu sync.Mutex
	m  map[string]map[string]struct{}
}

func (n *naiveNewTerms) observe(key, value string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	vs := n.m[key]
	if vs == nil {
		vs = map[string]struct{}{}
		n.m[key] = vs
	}
	if _, ok := vs[value]; ok {
		return false
	}
	vs[value] = struct{}{}
	return true
}

func naiveLearnAll(n *naiveNewTerms) {
	for _, val := range benchValueNames {
		for _, k := range benchKeyNames {
			n.observe(k, val)
		}
	}
}

// pairPool is a pool of events showing known pairs at random.
func pairPool() *pool {
	r := rand.New(rand.NewPCG(3, 4))
	p := &pool{evs: make([]Event, poolSize), base: int64(benchKeys * benchValues), step: 1}
	for i := range p.evs {
		k := r.IntN(benchKeys * benchValues)
		p.evs[i] = Event{Key: benchKeyNames[k/benchValues], Value: benchValueNames[k%benchValues]}
	}
	return p
}

func (n *naiveNewTerms) batch(batch []Event, _ int64) {
	for i := range batch {
		n.observe(batch[i].Key, batch[i].Value)
	}
}

func BenchmarkNewTerms(b *testing.B) {
	b.Run("eval", func(b *testing.B) {
		d, p := newBenchNewTerms(b), pairPool()
		learnAll(d)
		b.ResetTimer()
		batches(b, p, 0, b.N, d.e.batch)
		reportRate(b)
		if st := d.Stats(); st.Late+st.Early > 0 || st.Keys != benchKeys || d.pairs.len() != benchKeys*benchValues {
			b.Fatalf("%+v", st)
		}
	})
	b.Run("naive-baseline", func(b *testing.B) {
		n, p := &naiveNewTerms{m: map[string]map[string]struct{}{}}, pairPool()
		naiveLearnAll(n)
		b.ResetTimer()
		batches(b, p, 0, b.N, n.batch)
		reportRate(b)
	})
}

func BenchmarkNewTermsRetained(b *testing.B) {
	b.Run("newterms", func(b *testing.B) {
		retained(b, benchKeys*benchValues, "pair", func() any {
			d := newBenchNewTerms(b)
			learnAll(d)
			return d
		})
	})
	b.Run("naive-baseline", func(b *testing.B) {
		retained(b, benchKeys*benchValues, "pair", func() any {
			n := &naiveNewTerms{m: map[string]map[string]struct{}{}}
			naiveLearnAll(n)
			return n
		})
	})
}

// Sequence: 100,000 keys in flight, each with a remembered first event;
// the stream alternates first and second events at random keys, too far
// apart to pair, so the state stays full.
func BenchmarkSequence(b *testing.B) {
	names := [2]string{"apikey.leaked", "apikey.used.new-ip"}
	seqPool := func() *pool {
		p := newPool(10 * time.Microsecond)
		for i := range p.evs {
			p.evs[i].Name = names[i&1]
		}
		return p
	}
	b.Run("eval", func(b *testing.B) {
		opts := quietOptions()
		opts.MaxKeys = benchKeys
		d, err := NewSequence(SequenceConfig{Name: "leak-then-use", Kind: "apikey.compromised", Severity: incident.SeverityCritical,
			First: names[0], Then: names[1], Within: time.Microsecond, Options: opts})
		if err != nil {
			b.Fatal(err)
		}
		d.e.sink = func(incident.Signal) {}
		p := seqPool()
		for i, k := range benchKeyNames {
			ev := Event{Key: k, Name: names[0], Time: time.Unix(0, p.at(i))}
			d.e.process(&ev, 1<<62)
		}
		b.ResetTimer()
		batches(b, p, benchKeys, b.N, d.e.batch)
		reportRate(b)
		if st := d.Stats(); st.Late+st.Early > 0 || st.Keys != benchKeys {
			b.Fatalf("%+v", st)
		}
	})
	b.Run("naive-baseline", func(b *testing.B) {
		type pending struct{ first, then time.Time }
		var mu sync.Mutex
		m := map[string]*pending{}
		observe := func(key string, first bool, t time.Time) bool {
			mu.Lock()
			defer mu.Unlock()
			p := m[key]
			if p == nil {
				p = &pending{}
				m[key] = p
			}
			if first {
				p.first = t
			} else {
				p.then = t
			}
			if !p.first.IsZero() && !p.then.IsZero() && !p.then.Before(p.first) && p.then.Sub(p.first) <= time.Microsecond {
				delete(m, key)
				return true
			}
			return false
		}
		p := seqPool()
		for i, k := range benchKeyNames {
			observe(k, true, time.Unix(0, p.at(i)))
		}
		b.ResetTimer()
		batches(b, p, benchKeys, b.N, func(batch []Event, _ int64) {
			for i := range batch {
				observe(batch[i].Key, batch[i].Name == names[0], batch[i].Time)
			}
		})
		reportRate(b)
	})
}
