package breach_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// TestOptionsValidate: a bad option makes New fail with ErrInvalidOption;
// none panics.
func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opt  func() breach.Option
	}{
		{"lease TTL of a nanosecond", func() breach.Option { return breach.WithLease("a", time.Nanosecond) }},
		{"lease without owner", func() breach.Option { return breach.WithLease("", time.Minute) }},
		{"nil observer", func() breach.Option { return breach.WithObserver(nil) }},
		{"zero store timeout", func() breach.Option { return breach.WithStoreTimeout(0) }},
		{"negative store timeout", func() breach.Option { return breach.WithStoreTimeout(-time.Second) }},
		{"zero credential TTL", func() breach.Option { return breach.WithCredentialTTL(0) }},
		{"negative credential TTL", func() breach.Option { return breach.WithCredentialTTL(-time.Hour) }},
		{"nil time source", func() breach.Option { return breach.WithNow(nil) }},
		{"zero delivery batch", func() breach.Option { return breach.WithDelivery(0, 4) }},
		{"delivery batch above a page", func() breach.Option { return breach.WithDelivery(incident.MaxPageSize+1, 4) }},
		{"zero delivery concurrency", func() breach.Option { return breach.WithDelivery(500, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				o, err := breach.New(incident.NewMemStore(), tt.opt())
				assert.Nil(t, o)
				assert.ErrorIs(t, err, breach.ErrInvalidOption)
			})
		})
	}
}
