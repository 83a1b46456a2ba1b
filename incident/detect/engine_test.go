package detect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
)

// heavy is a Threshold whose events all weigh 2, so that a key's first
// event crosses its threshold of 1.
type heavy struct{ *detect.Threshold }

func (h heavy) Observe(ev detect.Event) error {
	ev.Weight = 2
	return h.Threshold.Observe(ev)
}

// oneEvent returns a Threshold that signals at every new key's first event,
// for tests of the machinery around the rules.
func oneEvent(t *testing.T, opts detect.Options) heavy {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	d, err := detect.NewThreshold(detect.ThresholdConfig{Name: "any", Kind: "test.any", Severity: incident.SeverityLow,
		Window: time.Minute, Weight: 1, Options: opts})
	require.NoError(t, err)
	return heavy{d}
}

func TestObserveRefuses(t *testing.T) {
	const secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
	cred := incident.NewSecret(secret)
	many := map[string]string{}
	for i := range detect.MaxEventAttributes + 1 {
		many[string(rune('a'+i))] = "v"
	}
	tests := []struct {
		name  string
		ev    detect.Event
		field string
		cred  bool
	}{
		{"no key", detect.Event{}, "Key", false},
		{"long key", detect.Event{Key: strings.Repeat("k", detect.MaxKeyLen+1)}, "Key", false},
		{"long name", detect.Event{Key: "k", Name: strings.Repeat("n", detect.MaxNameLen+1)}, "Name", false},
		{"long value", detect.Event{Key: "k", Value: strings.Repeat("v", detect.MaxValueLen+1)}, "Value", false},
		{"negative weight", detect.Event{Key: "k", Weight: -1}, "Weight", false},
		{"time out of range", detect.Event{Key: "k", Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, "Time", false},
		{"invalid UTF-8", detect.Event{Key: "k\xff"}, "Key, Name, Value or Account", false},
		{"too many attributes", detect.Event{Key: "k", Attributes: many}, "Attributes", false},
		{"long attribute key", detect.Event{Key: "k", Attributes: map[string]string{strings.Repeat("a", detect.MaxEventAttrKeyLen+1): "v"}}, "Attributes", false},
		{"credential in the key", detect.Event{Key: "key " + secret, Credential: cred}, "Key", true},
		{"credential in the value", detect.Event{Key: "k", Value: secret, Credential: cred}, "Value", true},
		{"credential in an attribute", detect.Event{Key: "k", Attributes: map[string]string{"auth": "Bearer " + secret}, Credential: cred}, "Attributes", true},
	}
	d := oneEvent(t, detect.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Threshold.Observe(tt.ev)
			require.ErrorIs(t, err, detect.ErrInvalidEvent)
			var fe *detect.EventError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.cred, errors.Is(err, detect.ErrCredential))
			assert.NotContains(t, err.Error(), secret)
		})
	}
	assert.Equal(t, uint64(len(tests)), d.Stats().Invalid)
}

func TestObserveFull(t *testing.T) {
	d := oneEvent(t, detect.Options{QueueSize: 2})
	require.NoError(t, d.Observe(detect.Event{Key: "a"}))
	require.NoError(t, d.Observe(detect.Event{Key: "b"}))
	assert.ErrorIs(t, d.Observe(detect.Event{Key: "c"}), detect.ErrFull, "nobody drains the queue: Observe does not wait")
	assert.Equal(t, uint64(1), d.Stats().Full)
}

// An event that only carries the credential is tracked by its
// fingerprint; the secret reaches neither the signal nor the logs.
func TestCredentialIsFingerprinted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
		var logs bytes.Buffer
		d := oneEvent(t, detect.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Report: incident.Policy{Attempts: 1}})
		failing := incident.Reporter(incident.ReporterFunc(func(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
			return incident.Receipt{}, errBoom
		}))
		stop := running(t, d, failing)
		observeAll(t, d, detect.Event{Name: "auth.failed", Credential: incident.NewSecret(secret), Time: t0})
		synctest.Wait()
		stop()
		assert.Equal(t, uint64(1), d.Stats().SignalsFailed)
		assert.Contains(t, logs.String(), incident.NewSecret(secret).Fingerprint())
		assert.NotContains(t, logs.String(), secret)
	})
}

// A reporter that fails, panics or hangs never stops the detector.
func TestFailingReporter(t *testing.T) {
	tests := []struct {
		name   string
		report func(n int) error // the nth call, from 1
		want   detect.Stats
	}{
		{"errors are retried, then given up", func(n int) error { return errBoom },
			detect.Stats{SignalsFailed: 2, ReportErrors: 6}},
		{"an error then success", func(n int) error {
			if n%2 == 1 {
				return errBoom
			}
			return nil
		}, detect.Stats{Signals: 2, ReportErrors: 2}},
		{"invalid signals are not retried", func(n int) error { return &incident.FieldError{Field: "Kind", Reason: "test"} },
			detect.Stats{SignalsFailed: 2, ReportErrors: 2}},
		{"permanent errors are not retried", func(n int) error { return incident.Permanent(errBoom) },
			detect.Stats{SignalsFailed: 2, ReportErrors: 2}},
		{"panics are recovered and retried", func(n int) error { panic("reporter") },
			detect.Stats{SignalsFailed: 2, ReportErrors: 6, ReportPanics: 6}},
		{"a panic then success", func(n int) error {
			if n == 1 {
				panic(errBoom)
			}
			return nil
		}, detect.Stats{Signals: 2, ReportErrors: 1, ReportPanics: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := oneEvent(t, detect.Options{Report: incident.Policy{Attempts: 3, Backoff: time.Second}})
				var mu sync.Mutex
				calls := 0
				called := make(chan struct{}, 100)
				r := incident.ReporterFunc(func(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
					mu.Lock()
					calls++
					n := calls
					mu.Unlock()
					defer func() { called <- struct{}{} }()
					return incident.Receipt{}, tt.report(n)
				})
				stop := running(t, d, r)
				observeAll(t, d, detect.Event{Key: "a", Time: t0}, detect.Event{Key: "b", Time: t0})
				// Waiting here lets the bubble's clock run through the backoffs.
				for range tt.want.Signals + tt.want.ReportErrors {
					<-called
				}
				synctest.Wait() // the counters are settled
				stop()
				got := d.Stats()
				assert.Equal(t, tt.want.Signals, got.Signals)
				assert.Equal(t, tt.want.SignalsFailed, got.SignalsFailed)
				assert.Equal(t, tt.want.ReportErrors, got.ReportErrors)
				assert.Equal(t, tt.want.ReportPanics, got.ReportPanics)
				assert.Equal(t, uint64(2), got.Evaluated)
			})
		})
	}
}

// A reporter that hangs delays only the signals: events are still
// evaluated, and signals beyond the queue are dropped and counted.
func TestHangingReporter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := oneEvent(t, detect.Options{SignalQueue: 2, Report: incident.Policy{Timeout: time.Hour}})
		release := make(chan struct{})
		r := incident.ReporterFunc(func(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return incident.Receipt{}, nil
		})
		stop := running(t, d, r)
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			require.NoError(t, d.Observe(detect.Event{Key: k, Time: t0}))
			synctest.Wait()
		}
		st := d.Stats()
		assert.Equal(t, uint64(5), st.Evaluated)
		assert.Equal(t, uint64(2), st.SignalsDropped, "one in the reporter, two queued, two dropped")
		close(release)
		synctest.Wait()
		stop()
		st = d.Stats()
		assert.Equal(t, uint64(3), st.Signals)
		assert.Equal(t, uint64(2), st.SignalsDropped)
	})
}

func TestDetectCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := oneEvent(t, detect.Options{})
		assert.ErrorIs(t, d.Detect(t.Context(), nil), detect.ErrNilReporter)
		stop := running(t, d, &recorder{})
		assert.ErrorIs(t, d.Detect(t.Context(), &recorder{}), detect.ErrRunning)
		stop()
		// Events wait while no Detect runs, and a new Detect takes them.
		observeAll(t, d, detect.Event{Key: "a", Time: t0})
		rec := &recorder{}
		stop = running(t, d, rec)
		synctest.Wait()
		stop()
		assert.Len(t, rec.all(t), 1)
	})
	// synctest.Test fails if a goroutine of the bubble outlives it: Detect
	// leaves none behind.
}

func TestClockAndSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		d := oneEvent(t, detect.Options{Now: clk.Now, Skew: time.Minute})
		rec := &recorder{}
		stop := running(t, d, rec)
		defer stop()
		observeAll(t, d,
			detect.Event{Key: "future", Time: t0.Add(time.Minute + 1)}, // beyond the skew ahead of the clock
			detect.Event{Key: "soon", Time: t0.Add(time.Minute)},
			detect.Event{Key: "now"}, // stamped by the clock
		)
		synctest.Wait()
		got := rec.all(t)
		require.Len(t, got, 2)
		assert.Equal(t, "soon", got[0].Subject)
		assert.Equal(t, "now", got[1].Subject)
		assert.Equal(t, t0, got[1].At)
		assert.Equal(t, uint64(1), d.Stats().Early)
	})
}

func TestDedupKey(t *testing.T) {
	assert.Equal(t, "detect/auth-failures/key_42", detect.DedupKey("auth-failures", "key_42"))
	assert.NotEqual(t, detect.DedupKey("a", "b/c"), detect.DedupKey("a.b", "c"))
	long := strings.Repeat("k", detect.MaxKeyLen)
	k := detect.DedupKey("rule", long)
	assert.LessOrEqual(t, len(k), incident.MaxDedupKeyLen)
	assert.True(t, strings.HasPrefix(k, "detect/rule#"))
	assert.NotEqual(t, k, detect.DedupKey("rule", long[1:]))
	assert.NotEqual(t, k, detect.DedupKey("rule2", long))
}

// A storm of unique keys cannot grow the table beyond MaxKeys, and a key
// that keeps coming back survives it while fewer than MaxKeys new keys
// arrive between two of its events: CLOCK evicts the one-off keys.
func TestKeyStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxKeys, storm, rounds = 1000, 500, 20
		d, err := detect.NewThreshold(detect.ThresholdConfig{Name: "auth-failures", Kind: "apikey.bruteforce",
			Severity: incident.SeverityHigh, Window: time.Hour, Count: rounds - 1,
			Options: detect.Options{MaxKeys: maxKeys, QueueSize: storm + 1, Logger: quiet(), Now: newClock().Now}})
		require.NoError(t, err)
		rec := &recorder{}
		stop := running(t, d, rec)
		defer stop()
		n := 0
		for r := range rounds {
			evs := []detect.Event{{Key: "attacked", Time: t0}}
			for range storm {
				evs = append(evs, detect.Event{Key: fmt.Sprint("unique-", n), Time: t0})
				n++
			}
			observeAll(t, d, evs...)
			synctest.Wait()
			assert.LessOrEqual(t, d.Stats().Keys, maxKeys, "round %d", r)
		}
		st := d.Stats()
		assert.Equal(t, maxKeys, st.Keys)
		assert.Equal(t, uint64(rounds*storm+1-maxKeys), st.Evicted)
		got := rec.all(t)
		require.Len(t, got, 1, "the attacked key kept its count through the storm")
		assert.Equal(t, "attacked", got[0].Subject)
		assert.Equal(t, "20", attr(got[0], "count"))
	})
}
