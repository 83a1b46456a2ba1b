package incident_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/breachkit/breach/incident"
)

func TestPolicyDefaults(t *testing.T) {
	def := incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Second, MaxBackoff: 30 * time.Second}
	tests := []struct {
		name string
		in   incident.Policy
		want incident.Policy
	}{
		{"zero", incident.Policy{}, def},
		{"negative", incident.Policy{Attempts: -1, Timeout: -1, Backoff: -1, MaxBackoff: -1}, def},
		{"explicit kept", incident.Policy{Attempts: 1, Timeout: time.Second, Backoff: time.Millisecond, MaxBackoff: time.Minute},
			incident.Policy{Attempts: 1, Timeout: time.Second, Backoff: time.Millisecond, MaxBackoff: time.Minute}},
		{"partial", incident.Policy{Attempts: 7},
			incident.Policy{Attempts: 7, Timeout: 30 * time.Second, Backoff: time.Second, MaxBackoff: 30 * time.Second}},
		{"MaxBackoff raised to Backoff", incident.Policy{Backoff: time.Minute, MaxBackoff: time.Second},
			incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Minute, MaxBackoff: time.Minute}},
		{"large Backoff, default MaxBackoff", incident.Policy{Backoff: time.Hour},
			incident.Policy{Attempts: 3, Timeout: 30 * time.Second, Backoff: time.Hour, MaxBackoff: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Defaults()
			assert.Equal(t, tt.want, got)
			assert.Equal(t, got, got.Defaults(), "idempotent")
		})
	}
}

// assertWithin checks that got is base ±20%.
func TestPermanent(t *testing.T) {
	assert.NoError(t, incident.Permanent(nil))
	assert.False(t, incident.IsPermanent(nil))
	base := errors.New("base")
	assert.False(t, incident.IsPermanent(base))
	p := incident.Permanent(base)
	assert.True(t, incident.IsPermanent(p))
	assert.ErrorIs(t, p, base)
	assert.Equal(t, "base", p.Error())
	assert.True(t, incident.IsPermanent(fmt.Errorf("wrapped: %w", p)))
	assert.True(t, incident.IsPermanent(fmt.Errorf("a: %w", fmt.Errorf("b: %w", p))))

	// A joined error is permanent only when every part is.
	p2 := incident.Permanent(errors.New("other"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"join of permanents", errors.Join(p, p2), true},
		{"join with a retryable part", errors.Join(errors.New("x"), p), false},
		{"join with nil parts", errors.Join(nil, p, nil), true},
		{"multi %w all permanent", fmt.Errorf("%w; %w", p, p2), true},
		{"multi %w mixed", fmt.Errorf("%w; %w", p, base), false},
		{"wrapped join", fmt.Errorf("outer: %w", errors.Join(p, p2)), true},
		{"permanent wrapping a join", incident.Permanent(errors.Join(base, base)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, incident.IsPermanent(tt.err))
		})
	}
}

func TestPanicErrorUnwrapStops(t *testing.T) {
	pe := &incident.PanicError{Value: "x"}
	assert.NotErrorIs(t, pe, incident.ErrTimeout)
	assert.ErrorIs(t, pe, incident.ErrPanic)
	assert.True(t, strings.HasPrefix(pe.Error(), "plugin panicked: "))
}

func TestRetryAfter(t *testing.T) {
	base := errors.New("503")
	marked := incident.RetryAfter(base, 2*time.Minute)
	assert.NoError(t, incident.RetryAfter(nil, time.Second))
	assert.Same(t, base, incident.RetryAfter(base, 0), "no delay, no mark")
	assert.Same(t, base, incident.RetryAfter(base, -time.Second))
	assert.ErrorIs(t, marked, base)
	assert.Equal(t, "503", marked.Error(), "the mark does not change the message")
	assert.False(t, incident.IsPermanent(marked))

	other := incident.RetryAfter(errors.New("429"), 10*time.Second)
	tests := []struct {
		name  string
		err   error
		want  time.Duration
		found bool
	}{
		{"nil", nil, 0, false},
		{"unmarked", base, 0, false},
		{"marked", marked, 2 * time.Minute, true},
		{"wrapped", fmt.Errorf("webhook: %w", marked), 2 * time.Minute, true},
		{"joined: the longest", errors.Join(other, errors.New("x"), marked), 2 * time.Minute, true},
		{"joined without a mark", errors.Join(base, errors.New("x")), 0, false},
		{"multi %w", fmt.Errorf("%w; %w", other, base), 10 * time.Second, true},
		{"permanent keeps the delay readable", incident.Permanent(marked), 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := incident.RetryDelay(tt.err)
			assert.Equal(t, tt.found, ok)
			assert.Equal(t, tt.want, d)
		})
	}
}
