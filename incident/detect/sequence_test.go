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

func TestSequence(t *testing.T) {
	type want struct{ key, firstAt, thenAt, thenValue string }
	leaked := func(key string, off time.Duration) detect.Event {
		return detect.Event{Key: key, Name: "apikey.leaked", Time: at(off), Attributes: map[string]string{"url": "https://code.example/x"}}
	}
	used := func(key string, off time.Duration, ip string) detect.Event {
		return detect.Event{Key: key, Name: "apikey.used.new-ip", Value: ip, Time: at(off), Account: "acct_7"}
	}
	ts := func(off time.Duration) string { return at(off).Format(time.RFC3339Nano) }
	day := 24 * time.Hour
	tests := []struct {
		name    string
		opts    detect.Options
		events  []detect.Event
		want    []want
		late    uint64
		evicted uint64
		ignored uint64
	}{
		{
			name:   "first then second within the window",
			events: []detect.Event{leaked("k", 0), used("k", time.Hour, "203.0.113.9")},
			want:   []want{{"k", ts(0), ts(time.Hour), "203.0.113.9"}},
		},
		{
			name:   "exactly at the edge counts",
			events: []detect.Event{leaked("k", 0), used("k", day, "203.0.113.9")},
			want:   []want{{"k", ts(0), ts(day), "203.0.113.9"}},
		},
		{
			name:   "one nanosecond past the edge does not",
			events: []detect.Event{leaked("k", 0), used("k", day+time.Nanosecond, "203.0.113.9")},
		},
		{
			name:   "second without a first",
			events: []detect.Event{used("k", 0, "203.0.113.9")},
		},
		{
			name:   "second before the first, in time",
			events: []detect.Event{used("k", 0, "203.0.113.9"), leaked("k", time.Hour)},
		},
		{
			name:   "other keys do not pair",
			events: []detect.Event{leaked("a", 0), used("b", time.Hour, "203.0.113.9")},
		},
		{
			name: "each pair signals once; a new first pairs again",
			events: []detect.Event{leaked("k", 0), used("k", time.Hour, "203.0.113.9"), used("k", 2*time.Hour, "198.51.100.1"),
				leaked("k", 3*time.Hour), used("k", 4*time.Hour, "198.51.100.2")},
			want: []want{{"k", ts(0), ts(time.Hour), "203.0.113.9"}, {"k", ts(3 * time.Hour), ts(4 * time.Hour), "198.51.100.2"}},
		},
		{
			name:   "the latest first counts",
			events: []detect.Event{leaked("k", 0), leaked("k", 2*day), used("k", 2*day+time.Hour, "203.0.113.9")},
			want:   []want{{"k", ts(2 * day), ts(2*day + time.Hour), "203.0.113.9"}},
		},
		{
			name:   "out of order within the skew: the first arrives after the second",
			opts:   detect.Options{Skew: time.Minute},
			events: []detect.Event{used("k", time.Hour, "203.0.113.9"), leaked("k", time.Hour-30*time.Second)},
			want:   []want{{"k", ts(time.Hour - 30*time.Second), ts(time.Hour), "203.0.113.9"}},
		},
		{
			name:   "older than the skew is dropped",
			opts:   detect.Options{Skew: time.Minute},
			events: []detect.Event{used("k", time.Hour, "203.0.113.9"), leaked("k", time.Hour-2*time.Minute)},
			late:   1,
		},
		{
			name:    "eviction forgets a pending first",
			opts:    detect.Options{MaxKeys: 1},
			events:  []detect.Event{leaked("a", 0), leaked("b", 1), used("a", 2, "203.0.113.9")},
			evicted: 2,
		},
		{
			name:    "other event names are ignored",
			events:  []detect.Event{leaked("k", 0), {Key: "k", Name: "apikey.used", Time: at(1)}},
			ignored: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := newClock()
				clk.Set(at(10 * day))
				opts := tt.opts
				opts.Now, opts.Logger = clk.Now, quiet()
				d, err := detect.NewSequence(detect.SequenceConfig{Name: "leak-then-use", Kind: "apikey.compromised",
					Severity: incident.SeverityCritical, First: "apikey.leaked", Then: "apikey.used.new-ip", Within: day, Options: opts})
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
					assert.Equal(t, "detect/leak-then-use/"+w.key, s.DedupKey)
					assert.Equal(t, incident.SeverityCritical, s.Severity)
					assert.Equal(t, "apikey.leaked", attr(s, "first.name"))
					assert.Equal(t, "apikey.used.new-ip", attr(s, "then.name"))
					assert.Equal(t, w.firstAt, attr(s, "first.at"))
					assert.Equal(t, w.thenAt, attr(s, "then.at"))
					assert.Equal(t, w.thenValue, attr(s, "then.value"))
					assert.Equal(t, "https://code.example/x", attr(s, "first.attr.url"))
					assert.Equal(t, "acct_7", s.Account)
				}
				st := d.Stats()
				assert.Equal(t, tt.late, st.Late)
				assert.Equal(t, tt.evicted, st.Evicted)
				assert.Equal(t, tt.ignored, st.Ignored)
			})
		})
	}
}

func TestSequenceConfig(t *testing.T) {
	base := detect.SequenceConfig{Name: "r", Kind: "k", Severity: incident.SeverityLow, First: "a", Then: "b", Within: time.Minute}
	tests := []struct {
		name  string
		edit  func(*detect.SequenceConfig)
		field string
	}{
		{"no first", func(c *detect.SequenceConfig) { c.First = "" }, "First"},
		{"no then", func(c *detect.SequenceConfig) { c.Then = "" }, "Then"},
		{"first is then", func(c *detect.SequenceConfig) { c.Then = "a" }, "Then"},
		{"no window", func(c *detect.SequenceConfig) { c.Within = 0 }, "Within"},
		{"no kind", func(c *detect.SequenceConfig) { c.Kind = "" }, "Kind"},
		{"negative queue", func(c *detect.SequenceConfig) { c.QueueSize = -1 }, "QueueSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := detect.NewSequence(cfg)
			var ce *detect.ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.ErrorIs(t, err, detect.ErrInvalidConfig)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}
