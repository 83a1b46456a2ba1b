package fake_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/fake"
)

// call is the recorded call of a minimal fake built on the package.
type call struct {
	key string
	seq int
}

type recorder struct {
	err fake.Answer[call]
	log fake.Log[call]
}

func (r *recorder) do(ctx context.Context, key string) error {
	return fake.Reply(ctx, r.err, r.log.Record(key, func(seq int) call { return call{key, seq} }, nil))
}

var errInjected = errors.New("errInjected")

var kit = fake.Kit[*recorder, call]{
	New:      func(a fake.Answer[call]) *recorder { return &recorder{err: a} },
	Seq:      func(c call) int { return c.seq },
	Injected: errInjected,
}

func TestLogNumbersEachSeries(t *testing.T) {
	var r recorder // the zero value records
	for _, k := range []string{"a", "b", "a", "a"} {
		require.NoError(t, r.do(t.Context(), k))
	}
	assert.Equal(t, []call{{"a", 1}, {"b", 1}, {"a", 2}, {"a", 3}}, r.log.Calls(nil))
	assert.Equal(t, 3, r.log.Count(func(c call) bool { return c.key == "a" }))
	assert.Equal(t, []string{"a", "b"}, r.log.Distinct(func(c call) string { return c.key }))
}

func TestKit(t *testing.T) {
	ctx := t.Context()
	r := kit.FailN(2, nil)
	assert.ErrorIs(t, r.do(ctx, "a"), errInjected)
	assert.ErrorIs(t, r.do(ctx, "b"), errInjected, "each series fails on its own")
	assert.ErrorIs(t, r.do(ctx, "a"), errInjected)
	assert.NoError(t, r.do(ctx, "a"))

	p := kit.FailPermanent(nil)
	err := p.do(ctx, "a")
	assert.ErrorIs(t, err, errInjected)
	assert.True(t, incident.IsPermanent(err))
	assert.False(t, incident.IsPermanent(kit.FailAlways(nil).do(ctx, "a")))
	assert.PanicsWithValue(t, "boom", func() { _ = kit.Panic("boom").do(ctx, "a") })

	a, b := kit.Flaky(0.5, 7, nil), kit.Flaky(0.5, 7, nil)
	for range 20 {
		assert.Equal(t, a.do(ctx, "k") == nil, b.do(ctx, "k") == nil, "the same seed, the same outcomes")
	}
}

func TestHangAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := kit.Hang()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.do(ctx, "a") }()
		require.NoError(t, r.log.Wait(t.Context(), 1), "the hanging call is recorded")
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
}
