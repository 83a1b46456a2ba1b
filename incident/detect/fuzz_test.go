package detect

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
)

// The fuzz targets feed random event streams to a rule and to a slow
// reference written here with plain slices and maps, and require the same
// signals, in the same order, with the same evidence.

const fuzzUnit = int64(time.Second)

// fuzzNow is the clock during fuzzing: later than every event.
var fuzzNow = int64(1) << 60

// decode turns data into events, three bytes each: the key, a step of the
// time (a high bit means "this event is late by that much" instead), and a
// byte for the name, value and weight.
func decode(data []byte, keys, values byte) []Event {
	var evs []Event
	cur := int64(1_000_000) * fuzzUnit
	for ; len(data) >= 3; data = data[3:] {
		k, dt, v := data[0], data[1], data[2]
		t := cur
		if dt&0x80 != 0 {
			t = cur - int64(dt&0x7f)*fuzzUnit/4
		} else {
			cur += int64(dt) * fuzzUnit / 4
			t = cur
		}
		name := "a"
		if v&0x80 != 0 {
			name = "b"
		}
		if v&0x40 != 0 {
			name = "other"
		}
		evs = append(evs, Event{Key: "k" + strconv.Itoa(int(k%keys)), Name: name, Value: "v" + strconv.Itoa(int(v%values)),
			Weight: int64(v % 5), Time: time.Unix(0, t)})
	}
	return evs
}

// feed runs evs through e as Observe and Detect would, collecting signals.
func feed(e *engine, evs []Event) []incident.Signal {
	var got []incident.Signal
	e.sink = func(s incident.Signal) { got = append(got, s) }
	for _, ev := range evs {
		if check(&ev) != nil || e.rule.accept(ev.Name, ev.Value) != nil {
			continue
		}
		e.process(&ev, fuzzNow)
	}
	return got
}

// refClock is CLOCK eviction, the slow way.
type refClock struct {
	slots []string
	marks []bool
	pos   map[string]int
	hand  int
	max   int
}

func newRefClock(max int) *refClock { return &refClock{pos: map[string]int{}, max: max} }

// touch reports whether key is new, and which key it evicted.
func (c *refClock) touch(key string) (isNew bool, evicted string) {
	if i, ok := c.pos[key]; ok {
		c.marks[i] = true
		return false, ""
	}
	if len(c.slots) < c.max {
		c.pos[key] = len(c.slots)
		c.slots = append(c.slots, key)
		c.marks = append(c.marks, false)
		return true, ""
	}
	for {
		i := c.hand
		c.hand = (c.hand + 1) % len(c.slots)
		if c.marks[i] {
			c.marks[i] = false
			continue
		}
		evicted = c.slots[i]
		delete(c.pos, evicted)
		c.slots[i], c.pos[key] = key, i
		return true, evicted
	}
}

// refWatermark is the skew check, the slow way.
type refWatermark struct {
	skew, wm int64
	has      bool
	late     int
}

func (w *refWatermark) accept(t int64) bool {
	if w.has && t < w.wm-w.skew {
		w.late++
		return false
	}
	if !w.has || t > w.wm {
		w.wm, w.has = t, true
	}
	return true
}

type refThKey struct {
	evs            []struct{ t, amount int64 }
	head, runStart int64
	fired          bool
	fireHead       int64
}

func FuzzThreshold(f *testing.F) {
	f.Add([]byte{14, 0, 2, 0, 0, 4, 1, 0, 4, 2, 0, 4, 3})
	f.Add([]byte{1, 1, 0, 3, 0, 1, 0, 1, 1, 0, 2, 0x85, 0, 1, 9, 0, 0x83, 1})
	f.Add([]byte{3, 2, 1, 0x21, 0, 8, 1, 1, 8, 2, 2, 0x90, 3, 0, 0x88, 4, 3, 7, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		buckets := int64(data[0]%MaxBuckets) + 1
		width := int64(data[1]%4+1) * fuzzUnit
		limit := int64(data[2]%6) + 1 // signal above it
		weightMode := data[3]&1 == 1
		maxKeys := int(data[3]>>1&7) + 1
		skew := int64(data[3]>>4)*fuzzUnit + 1
		cfg := ThresholdConfig{Name: "fz", Kind: "fuzz.threshold", Severity: incident.SeverityLow,
			Window: time.Duration(width * buckets), Buckets: int(buckets),
			Options: Options{MaxKeys: maxKeys, Skew: time.Duration(skew), QueueSize: 1, Logger: slog.New(slog.DiscardHandler)}}
		if weightMode {
			cfg.Weight = limit
		} else {
			cfg.Count = limit
		}
		d, err := NewThreshold(cfg)
		if err != nil {
			t.Fatal(err)
		}
		evs := decode(data[4:], 7, 9)
		got := feed(&d.e, evs)

		// The reference keeps every event of each key.
		clk, wm := newRefClock(maxKeys), &refWatermark{skew: skew}
		keys := map[string]*refThKey{}
		type sig struct {
			key                string
			total, first, last int64
		}
		var want []sig
		for _, ev := range evs {
			tm := ev.Time.UnixNano()
			if !wm.accept(tm) {
				continue
			}
			isNew, evicted := clk.touch(ev.Key)
			delete(keys, evicted)
			b := floorDiv(tm, width)
			if isNew {
				keys[ev.Key] = &refThKey{head: b}
			}
			k := keys[ev.Key]
			k.head = max(k.head, b)
			if b <= k.head-buckets {
				continue
			}
			inWindow := func() (sum int64) {
				for _, e := range k.evs {
					if floorDiv(e.t, width) > k.head-buckets {
						sum += e.amount
					}
				}
				return sum
			}
			if inWindow() == 0 || tm < k.runStart {
				k.runStart = tm
			}
			amount := int64(1)
			if weightMode {
				amount = ev.Weight
			}
			k.evs = append(k.evs, struct{ t, amount int64 }{tm, amount})
			if total := inWindow(); total > limit && (!k.fired || k.head-k.fireHead >= buckets) {
				k.fired, k.fireHead = true, k.head
				want = append(want, sig{ev.Key, total, max(k.runStart, (k.head-buckets+1)*width), tm})
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d signals, want %d: %v vs %v", len(got), len(want), got, want)
		}
		what := "count"
		if weightMode {
			what = "weight"
		}
		for i, w := range want {
			s := got[i]
			if err := s.Validate(); err != nil {
				t.Fatalf("signal %d invalid: %v", i, err)
			}
			if s.Subject != w.key || s.Attributes[what] != strconv.FormatInt(w.total, 10) ||
				s.Attributes["first"] != formatTime(w.first) || s.Attributes["last"] != formatTime(w.last) {
				t.Fatalf("signal %d: got %s %v, want %+v", i, s.Subject, s.Attributes, w)
			}
		}
		if int(d.e.st.late.Load()) != wm.late {
			t.Fatalf("late: got %d, want %d", d.e.st.late.Load(), wm.late)
		}
	})
}

func FuzzNewTerms(f *testing.F) {
	f.Add([]byte{10, 3, 0, 0, 0, 1, 0, 5, 2, 0, 40, 3, 0, 0, 4})
	f.Add([]byte{0, 1, 2, 0, 0, 1, 1, 0x82, 2, 0, 1, 3, 2, 0, 3, 0, 1, 1})
	f.Add([]byte{4, 2, 7, 1, 9, 1, 2, 0x84, 2, 3, 30, 7, 1, 0, 8, 2, 0x90, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		learn := int64(data[0]%16) * fuzzUnit
		maxKeys := int(data[1]%5) + 1
		maxTerms := int(data[2]%8) + 2
		skew := int64(data[2]>>3)*fuzzUnit + 1
		d, err := NewNewTerms(NewTermsConfig{Name: "fz", Kind: "fuzz.newterms", Severity: incident.SeverityLow,
			Learn: time.Duration(learn), Allow: []string{"v0"}, MaxTerms: maxTerms,
			Options: Options{MaxKeys: maxKeys, Skew: time.Duration(skew), QueueSize: 1, Logger: slog.New(slog.DiscardHandler)}})
		if err != nil {
			t.Fatal(err)
		}
		evs := decode(data[3:], 5, 6)
		got := feed(&d.e, evs)

		clk, wm := newRefClock(maxKeys), &refWatermark{skew: skew}
		learnUntil := map[string]int64{}
		cur, prev := map[string]bool{}, map[string]bool{}
		seen := func(p string) bool {
			if cur[p] {
				return true
			}
			known := prev[p]
			if len(cur) >= maxTerms/2 {
				prev, cur = cur, map[string]bool{}
			}
			cur[p] = true
			return known
		}
		type sig struct{ key, value string }
		var want []sig
		for _, ev := range evs {
			tm := ev.Time.UnixNano()
			if !wm.accept(tm) {
				continue
			}
			isNew, evicted := clk.touch(ev.Key)
			delete(learnUntil, evicted)
			if isNew {
				learnUntil[ev.Key] = tm + learn
			}
			if !seen(ev.Key+"\x00"+ev.Value) && tm >= learnUntil[ev.Key] && ev.Value != "v0" {
				want = append(want, sig{ev.Key, ev.Value})
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d signals, want %d", len(got), len(want))
		}
		for i, w := range want {
			if err := got[i].Validate(); err != nil {
				t.Fatalf("signal %d invalid: %v", i, err)
			}
			if got[i].Subject != w.key || got[i].Attributes["value"] != w.value {
				t.Fatalf("signal %d: got %s %v, want %+v", i, got[i].Subject, got[i].Attributes, w)
			}
		}
		if int(d.e.st.late.Load()) != wm.late {
			t.Fatalf("late: got %d, want %d", d.e.st.late.Load(), wm.late)
		}
	})
}

func FuzzSequence(f *testing.F) {
	f.Add([]byte{8, 3, 0, 0, 1, 0, 4, 0x81, 0, 0x82, 0x81, 1, 1, 0x80})
	f.Add([]byte{2, 1, 0, 1, 0x80, 0, 0x84, 1, 1, 0, 0x41, 0, 3, 2})
	f.Add([]byte{30, 0x42, 1, 0, 3, 1, 2, 0x83, 0x81, 0, 0x81, 2, 2, 0x10, 0x80, 0, 0x88, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		within := int64(data[0]%40+1) * fuzzUnit / 4
		maxKeys := int(data[1]%4) + 1
		skew := int64(data[1]>>2)*fuzzUnit/4 + 1
		d, err := NewSequence(SequenceConfig{Name: "fz", Kind: "fuzz.sequence", Severity: incident.SeverityLow,
			First: "a", Then: "b", Within: time.Duration(within),
			Options: Options{MaxKeys: maxKeys, Skew: time.Duration(skew), QueueSize: 1, Logger: slog.New(slog.DiscardHandler)}})
		if err != nil {
			t.Fatal(err)
		}
		evs := decode(data[2:], 4, 5)
		got := feed(&d.e, evs)

		type refEv struct {
			t     int64
			value string
		}
		latest := func(evs []refEv) (refEv, bool) {
			if len(evs) == 0 {
				return refEv{}, false
			}
			best := evs[0]
			for _, e := range evs[1:] {
				if e.t >= best.t {
					best = e
				}
			}
			return best, true
		}
		clk, wm := newRefClock(maxKeys), &refWatermark{skew: skew}
		firsts, thens := map[string][]refEv{}, map[string][]refEv{}
		type sig struct {
			key, firstValue, thenValue string
			firstAt, thenAt            int64
		}
		var want []sig
		for _, ev := range evs {
			if ev.Name != "a" && ev.Name != "b" {
				continue // Observe ignores it
			}
			tm := ev.Time.UnixNano()
			if !wm.accept(tm) {
				continue
			}
			_, evicted := clk.touch(ev.Key)
			delete(firsts, evicted)
			delete(thens, evicted)
			if ev.Name == "a" {
				firsts[ev.Key] = append(firsts[ev.Key], refEv{tm, ev.Value})
			} else {
				thens[ev.Key] = append(thens[ev.Key], refEv{tm, ev.Value})
			}
			a, okA := latest(firsts[ev.Key])
			b, okB := latest(thens[ev.Key])
			if okA && okB && a.t <= b.t && b.t-a.t <= within {
				want = append(want, sig{ev.Key, a.value, b.value, a.t, b.t})
				delete(firsts, ev.Key)
				delete(thens, ev.Key)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d signals, want %d", len(got), len(want))
		}
		for i, w := range want {
			s := got[i]
			if err := s.Validate(); err != nil {
				t.Fatalf("signal %d invalid: %v", i, err)
			}
			if s.Subject != w.key || s.Attributes["first.value"] != w.firstValue || s.Attributes["then.value"] != w.thenValue ||
				s.Attributes["first.at"] != formatTime(w.firstAt) || s.Attributes["then.at"] != formatTime(w.thenAt) {
				t.Fatalf("signal %d: got %s %v, want %+v", i, s.Subject, s.Attributes, w)
			}
		}
		if int(d.e.st.late.Load()) != wm.late {
			t.Fatalf("late: got %d, want %d", d.e.st.late.Load(), wm.late)
		}
	})
}
