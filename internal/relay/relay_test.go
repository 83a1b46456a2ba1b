package relay_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/relay"
)

func TestRepanicCarriesTheFirstPanicToTheWaiter(t *testing.T) {
	var p relay.Panics
	var wg sync.WaitGroup
	p.Go(&wg, func() { panic("host code failed") })
	p.Go(&wg, func() {})
	wg.Wait()
	var got any
	func() {
		defer func() { got = recover() }()
		p.Repanic()
	}()
	var pe *incident.PanicError
	require.True(t, errors.As(got.(error), &pe), "the value is an *incident.PanicError: %v", got)
	assert.Equal(t, "host code failed", pe.Value)
	assert.Contains(t, string(pe.Stack), "relay_test.go", "the stack is the panicking goroutine's")
}

func TestRepanicWithoutAPanicReturns(t *testing.T) {
	var p relay.Panics
	var wg sync.WaitGroup
	p.Go(&wg, func() {})
	wg.Wait()
	assert.NotPanics(t, p.Repanic)
}

func TestGroupEndRaisesOnlyWhenTheWaiterReturned(t *testing.T) {
	for _, returned := range []bool{true, false} {
		var g relay.Group
		g.Go(func() { panic("host code failed") })
		var got any
		func() {
			defer func() { got = recover() }()
			g.End(&returned)
		}()
		if returned {
			assert.NotNil(t, got, "raised on the waiter's goroutine")
		} else {
			assert.Nil(t, got, "a waiter already panicking keeps its own panic")
		}
	}
}
