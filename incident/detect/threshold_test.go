package detect_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
)

func TestThreshold(t *testing.T) {
	type want struct {
		key, count, first, last string
	}
	ev := func(key string, off time.Duration) detect.Event {
		return detect.Event{Key: key, Name: "auth.failed", Time: at(off)}
	}
	ts := func(off time.Duration) string { return at(off).Format(time.RFC3339Nano) }
	tests := []struct {
		name    string
		cfg     detect.ThresholdConfig
		events  []detect.Event
		want    []want
		late    uint64
		evicted uint64
	}{
		{
			name:   "exactly N events: no signal",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 3},
			events: []detect.Event{ev("k", 0), ev("k", time.Second), ev("k", 2*time.Second)},
		},
		{
			name:   "N+1 events: one signal with the evidence",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 3},
			events: []detect.Event{ev("k", 0), ev("k", time.Second), ev("k", 2*time.Second), ev("k", 3*time.Second)},
			want:   []want{{"k", "4", ts(0), ts(3 * time.Second)}},
		},
		{
			name:   "window edge: just inside",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1},
			events: []detect.Event{ev("k", 0), ev("k", time.Minute-time.Nanosecond)},
			want:   []want{{"k", "2", ts(0), ts(time.Minute - time.Nanosecond)}},
		},
		{
			name:   "window edge: one window later the first event no longer counts",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1},
			events: []detect.Event{ev("k", 0), ev("k", time.Minute)},
		},
		{
			name: "resolution: an event counts until its bucket leaves the window",
			cfg:  detect.ThresholdConfig{Window: time.Minute, Count: 1, Buckets: 2},
			// Buckets of 30 s: the event at 29 s is in bucket [0, 30 s), which
			// leaves the window at 60 s.
			events: []detect.Event{ev("k", 29*time.Second), ev("k", time.Minute)},
		},
		{
			name:   "one signal per key per window, then again",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1},
			events: []detect.Event{ev("k", 0), ev("k", 1*time.Second), ev("k", 2*time.Second), ev("k", 59*time.Second), ev("k", 61*time.Second), ev("k", 62*time.Second)},
			want: []want{{"k", "2", ts(0), ts(time.Second)},
				// One window after the first signal (bucket 15 of 4 s), the
				// window [4 s, 64 s) holds 59 s and 61 s; its first event
				// is no longer known exactly, so "first" is the window's start.
				{"k", "2", ts(4 * time.Second), ts(61 * time.Second)}},
		},
		{
			name:   "keys count apart",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1},
			events: []detect.Event{ev("a", 0), ev("b", 1), ev("c", 2), ev("b", 3)},
			want:   []want{{"b", "2", ts(1), ts(3)}},
		},
		{
			name:   "out of order within the skew counts in its own bucket",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1, Options: detect.Options{Skew: 10 * time.Second}},
			events: []detect.Event{ev("k", 30*time.Second), ev("k", 22*time.Second)},
			want:   []want{{"k", "2", ts(22 * time.Second), ts(22 * time.Second)}},
		},
		{
			name:   "older than the skew is dropped and counted",
			cfg:    detect.ThresholdConfig{Window: time.Minute, Count: 1, Options: detect.Options{Skew: 10 * time.Second}},
			events: []detect.Event{ev("k", 30*time.Second), ev("other", 50*time.Second), ev("k", 20*time.Second)},
			late:   1,
		},
		{
			name: "eviction: a key seen once makes room and loses its count",
			cfg:  detect.ThresholdConfig{Window: time.Minute, Count: 1, Options: detect.Options{MaxKeys: 2}},
			// a and b fill the table; c evicts a (unmarked); a comes back fresh.
			events:  []detect.Event{ev("a", 0), ev("b", 1), ev("c", 2), ev("a", 3)},
			evicted: 2, // c evicts a, then a evicts b
		},
		{
			name: "eviction spares a key seen again",
			cfg:  detect.ThresholdConfig{Window: time.Minute, Count: 2, Options: detect.Options{MaxKeys: 2}},
			// a is marked by its second event; c evicts b instead.
			events:  []detect.Event{ev("a", 0), ev("a", 1), ev("b", 2), ev("c", 3), ev("a", 4)},
			want:    []want{{"a", "3", ts(0), ts(4)}},
			evicted: 1,
		},
		{
			name: "weight: rows exported",
			cfg:  detect.ThresholdConfig{Window: time.Hour, Weight: 1000},
			events: []detect.Event{{Key: "acct_7", Weight: 400, Time: at(0)}, {Key: "acct_7", Weight: 600, Time: at(time.Minute)},
				{Key: "acct_7", Weight: 1, Time: at(2 * time.Minute)}},
			want: []want{{"acct_7", "", ts(0), ts(2 * time.Minute)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Name, cfg.Kind, cfg.Severity = "auth-failures", "apikey.bruteforce", incident.SeverityHigh
				clk := newClock()
				clk.Set(at(time.Hour))
				cfg.Now, cfg.Logger = clk.Now, quiet()
				d, err := detect.NewThreshold(cfg)
				require.NoError(t, err)
				rec := &recorder{}
				stop := running(t, d, rec)
				defer stop()
				for _, e := range tt.events {
					require.NoError(t, d.Observe(e))
					synctest.Wait() // one event at a time, in order
				}
				got := rec.all(t)
				require.Len(t, got, len(tt.want))
				for i, w := range tt.want {
					s := got[i]
					assert.Equal(t, w.key, s.Subject)
					assert.Equal(t, "detect/auth-failures/"+w.key, s.DedupKey)
					assert.Equal(t, incident.SeverityHigh, s.Severity)
					assert.Equal(t, "apikey.bruteforce", s.Kind)
					if w.count != "" {
						assert.Equal(t, w.count, attr(s, "count"))
					} else {
						assert.Equal(t, "1001", attr(s, "weight"))
					}
					assert.Equal(t, w.first, attr(s, "first"))
					assert.Equal(t, w.last, attr(s, "last"))
					assert.Equal(t, cfg.Window.String(), attr(s, "window"))
				}
				st := d.Stats()
				assert.Equal(t, tt.late, st.Late)
				assert.Equal(t, tt.evicted, st.Evicted)
				assert.Equal(t, uint64(len(tt.events)), st.Evaluated)
				assert.Equal(t, uint64(len(tt.want)), st.Signals)
			})
		})
	}
}

func TestThresholdConfig(t *testing.T) {
	base := detect.ThresholdConfig{Name: "r", Kind: "k", Severity: incident.SeverityLow, Window: time.Minute, Count: 1}
	tests := []struct {
		name  string
		edit  func(*detect.ThresholdConfig)
		field string
	}{
		{"no name", func(c *detect.ThresholdConfig) { c.Name = "" }, "Name"},
		{"name with a slash", func(c *detect.ThresholdConfig) { c.Name = "a/b" }, "Name"},
		{"kind with a space", func(c *detect.ThresholdConfig) { c.Kind = "a b" }, "Kind"},
		{"no severity", func(c *detect.ThresholdConfig) { c.Severity = 0 }, "Severity"},
		{"no window", func(c *detect.ThresholdConfig) { c.Window = 0 }, "Window"},
		{"neither count nor weight", func(c *detect.ThresholdConfig) { c.Count = 0 }, "Count"},
		{"both count and weight", func(c *detect.ThresholdConfig) { c.Weight = 5 }, "Count"},
		{"too many buckets", func(c *detect.ThresholdConfig) { c.Buckets = 16 }, "Buckets"},
		{"buckets that do not divide the window", func(c *detect.ThresholdConfig) { c.Window = 7 }, "Buckets"},
		{"negative skew", func(c *detect.ThresholdConfig) { c.Skew = -1 }, "Skew"},
		{"too many keys", func(c *detect.ThresholdConfig) { c.MaxKeys = detect.MaxMaxKeys + 1 }, "MaxKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := detect.NewThreshold(cfg)
			require.ErrorIs(t, err, detect.ErrInvalidConfig)
			var ce *detect.ConfigError
			require.True(t, errors.As(err, &ce))
			assert.Equal(t, tt.field, ce.Field)
		})
	}
	_, err := detect.NewThreshold(base)
	assert.NoError(t, err)
}
