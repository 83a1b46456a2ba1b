package detect_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
)

func newTermsConfig(clk *clock) detect.NewTermsConfig {
	return detect.NewTermsConfig{Name: "new-ip", Kind: "apikey.suspicious", Severity: incident.SeverityMedium,
		Learn: 7 * 24 * time.Hour, Options: detect.Options{Now: clk.Now, Logger: quiet(), Skew: time.Hour}}
}

func TestNewTerms(t *testing.T) {
	week := 7 * 24 * time.Hour
	ip := func(key string, off time.Duration, v string) detect.Event {
		return detect.Event{Key: key, Name: "api.call", Value: v, Time: at(off), Attributes: map[string]string{"endpoint": "GET /v1/conversions"}}
	}
	type want struct{ key, value string }
	tests := []struct {
		name    string
		edit    func(*detect.NewTermsConfig)
		events  []detect.Event
		want    []want
		late    uint64
		evicted uint64
	}{
		{
			name:   "values seen while learning are not new",
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week-1, "10.0.0.2"), ip("k", week, "10.0.0.1"), ip("k", 2*week, "10.0.0.2")},
		},
		{
			name:   "the learning period ends exactly at Learn",
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week-1, "10.0.0.2"), ip("k", week, "10.0.0.3")},
			want:   []want{{"k", "10.0.0.3"}},
		},
		{
			name:   "a new value signals once",
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week, "203.0.113.9"), ip("k", week+1, "203.0.113.9")},
			want:   []want{{"k", "203.0.113.9"}},
		},
		{
			name: "learning is per key",
			events: []detect.Event{ip("a", 0, "10.0.0.1"), ip("b", week, "10.0.0.9"), ip("a", week, "10.0.0.9"),
				ip("b", week+time.Hour, "10.0.0.1")},
			want: []want{{"a", "10.0.0.9"}},
		},
		{
			name:   "allowlisted values are never new",
			edit:   func(c *detect.NewTermsConfig) { c.Allow = []string{"192.0.2.1"} },
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week, "192.0.2.1"), ip("k", week, "192.0.2.2")},
			want:   []want{{"k", "192.0.2.2"}},
		},
		{
			name: "AllowFunc decides; a panic counts as not allowed",
			edit: func(c *detect.NewTermsConfig) {
				c.AllowFunc = func(key, value string) bool {
					if value == "boom" {
						panic("allow")
					}
					return value == "192.0.2.1"
				}
			},
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week, "192.0.2.1"), ip("k", week, "boom")},
			want:   []want{{"k", "boom"}},
		},
		{
			name:   "no learning: every unseen value is new",
			edit:   func(c *detect.NewTermsConfig) { c.Learn = 0 },
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", 1, "10.0.0.1"), ip("k", 2, "10.0.0.2")},
			want:   []want{{"k", "10.0.0.1"}, {"k", "10.0.0.2"}},
		},
		{
			name:   "a late event within the skew still teaches at its own time",
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week+time.Minute, "10.0.0.1"), ip("k", week-time.Second, "10.0.0.2"), ip("k", week+time.Hour, "10.0.0.2")},
		},
		{
			name:   "older than the skew is dropped",
			events: []detect.Event{ip("k", 0, "10.0.0.1"), ip("k", week+2*time.Hour, "10.0.0.1"), ip("k", week, "10.0.0.2")},
			late:   1,
		},
		{
			name:    "eviction: a key evicted learns again",
			edit:    func(c *detect.NewTermsConfig) { c.MaxKeys = 1 },
			events:  []detect.Event{ip("a", 0, "10.0.0.1"), ip("b", week, "10.0.0.1"), ip("a", week, "10.0.0.2")},
			evicted: 2,
		},
		{
			name: "pairs are forgotten two generations later",
			edit: func(c *detect.NewTermsConfig) { c.MaxTerms = 2; c.Learn = 0 },
			// generations of one pair: 1 is forgotten when 3 arrives.
			events: []detect.Event{ip("k", 0, "1"), ip("k", 1, "2"), ip("k", 2, "3"), ip("k", 3, "1")},
			want:   []want{{"k", "1"}, {"k", "2"}, {"k", "3"}, {"k", "1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := newClock()
				clk.Set(at(10 * week))
				cfg := newTermsConfig(clk)
				if tt.edit != nil {
					tt.edit(&cfg)
				}
				d, err := detect.NewNewTerms(cfg)
				require.NoError(t, err)
				rec := &recorder{}
				stop := running(t, d, rec)
				defer stop()
				for _, e := range tt.events {
					require.NoError(t, d.Observe(e))
					synctest.Wait()
				}
				got := rec.all(t)
				require.Len(t, got, len(tt.want))
				for i, w := range tt.want {
					s := got[i]
					assert.Equal(t, w.key, s.Subject)
					assert.Equal(t, "detect/new-ip/"+w.key, s.DedupKey)
					assert.Equal(t, w.value, attr(s, "value"))
					assert.Equal(t, "api.call", attr(s, "name"))
					assert.Equal(t, "GET /v1/conversions", attr(s, "attr.endpoint"))
					assert.Equal(t, incident.SeverityMedium, s.Severity)
				}
				st := d.Stats()
				assert.Equal(t, tt.late, st.Late)
				assert.Equal(t, tt.evicted, st.Evicted)
			})
		})
	}
}

// A restarted rule loads what the last one saved: known values stay known
// and learning periods keep their end.
func TestNewTermsRestart(t *testing.T) {
	week := 7 * 24 * time.Hour
	var store detect.TermStore = &detect.MemTermStore{}
	runOnce := func(t *testing.T, now time.Time, evs ...detect.Event) []incident.Signal {
		var got []incident.Signal
		synctest.Test(t, func(t *testing.T) {
			clk := newClock()
			clk.Set(now)
			cfg := newTermsConfig(clk)
			cfg.Store = store
			d, err := detect.NewNewTerms(cfg)
			require.NoError(t, err)
			rec := &recorder{}
			stop := running(t, d, rec)
			observeAll(t, d, evs...)
			synctest.Wait()
			stop()
			got = rec.all(t)
			assert.Zero(t, d.Stats().StoreErrors)
		})
		return got
	}
	ev := func(key string, off time.Duration, v string) detect.Event {
		return detect.Event{Key: key, Value: v, Time: at(off)}
	}
	// First process: learns 10.0.0.1 for k during its first week; j is new.
	require.Empty(t, runOnce(t, at(time.Hour), ev("k", 0, "10.0.0.1"), ev("j", time.Hour, "10.0.0.7")))
	// Second process, two weeks later: k's 10.0.0.1 is known, 203.0.113.9 is
	// new; j's learning period (from its first event) is over too.
	got := runOnce(t, at(2*week), ev("k", 2*week, "10.0.0.1"), ev("k", 2*week, "203.0.113.9"), ev("j", 2*week, "10.0.0.7"))
	require.Len(t, got, 1)
	assert.Equal(t, "203.0.113.9", attr(got[0], "value"))
	assert.Equal(t, at(0).Format(time.RFC3339Nano), attr(got[0], "key_first_seen"))
	// Third process: 203.0.113.9 was learned when it signalled.
	assert.Empty(t, runOnce(t, at(3*week), ev("k", 3*week, "203.0.113.9")))

	// Without the store, the same events teach a fresh rule.
	store = nil
	assert.Empty(t, runOnce(t, at(3*week), ev("k", 3*week, "198.51.100.1")))
}

func TestNewTermsStoreFailures(t *testing.T) {
	t.Run("load fails: Detect returns the error", func(t *testing.T) {
		clk := newClock()
		cfg := newTermsConfig(clk)
		cfg.Store = detect.TermStoreFuncs{LoadFunc: func(context.Context) (*detect.Snapshot, error) { return nil, errBoom }}
		d, err := detect.NewNewTerms(cfg)
		require.NoError(t, err)
		assert.ErrorIs(t, d.Detect(t.Context(), &recorder{}), errBoom)
	})
	t.Run("save fails or panics: counted, detection goes on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newClock()
			cfg := newTermsConfig(clk)
			cfg.Learn = 0
			cfg.SaveEvery = time.Minute
			calls := 0
			cfg.Store = detect.TermStoreFuncs{SaveFunc: func(context.Context, *detect.Snapshot) error {
				calls++
				if calls == 1 {
					panic("store")
				}
				return errBoom
			}}
			d, err := detect.NewNewTerms(cfg)
			require.NoError(t, err)
			rec := &recorder{}
			stop := running(t, d, rec)
			clk.Set(at(time.Hour))
			observeAll(t, d, detect.Event{Key: "k", Value: "a", Time: at(time.Hour)})
			synctest.Wait()
			clk.Set(at(2 * time.Hour))
			observeAll(t, d, detect.Event{Key: "k", Value: "b", Time: at(2 * time.Hour)})
			synctest.Wait()
			stop()
			assert.Len(t, rec.all(t), 2)
			assert.Equal(t, uint64(3), d.Stats().StoreErrors, "two periodic saves and the final one")
		})
	})
}

func TestNewTermsConfig(t *testing.T) {
	base := detect.NewTermsConfig{Name: "r", Kind: "k", Severity: incident.SeverityLow}
	tests := []struct {
		name  string
		edit  func(*detect.NewTermsConfig)
		field string
	}{
		{"negative learning", func(c *detect.NewTermsConfig) { c.Learn = -1 }, "Learn"},
		{"one term", func(c *detect.NewTermsConfig) { c.MaxTerms = 1 }, "MaxTerms"},
		{"negative save interval", func(c *detect.NewTermsConfig) { c.SaveEvery = -1 }, "SaveEvery"},
		{"negative signal queue", func(c *detect.NewTermsConfig) { c.SignalQueue = -1 }, "SignalQueue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := detect.NewNewTerms(cfg)
			var ce *detect.ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
	d, err := detect.NewNewTerms(base)
	require.NoError(t, err)
	var fe *detect.EventError
	require.ErrorAs(t, d.Observe(detect.Event{Key: "k"}), &fe, "a NewTerms event needs a value")
	assert.Equal(t, "Value", fe.Field)
}

func TestSnapshotEncoding(t *testing.T) {
	s := &detect.Snapshot{HashKey: [16]byte{1, 2, 3}, Keys: []detect.KeyState{{Key: "key_42", LearnUntil: t0}, {Key: "ü", LearnUntil: t0.Add(time.Hour)}},
		Pairs: []uint64{1, 2, 1 << 63}}
	b, err := s.MarshalBinary()
	require.NoError(t, err)
	var got detect.Snapshot
	require.NoError(t, got.UnmarshalBinary(b))
	assert.Equal(t, *s, got)
	for i := range len(b) {
		assert.ErrorIs(t, new(detect.Snapshot).UnmarshalBinary(b[:i]), detect.ErrBadSnapshot, "truncated at %d", i)
	}
	assert.ErrorIs(t, new(detect.Snapshot).UnmarshalBinary(append(b, 0)), detect.ErrBadSnapshot)
	assert.True(t, errors.Is(new(detect.Snapshot).UnmarshalBinary([]byte("nope")), detect.ErrBadSnapshot))
}
