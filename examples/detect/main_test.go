package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScenario(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	got := out.String()

	steps := []string{
		"secret-scanner for key_42 -> apikey.leaked",
		"detect/new-ip for key_77 -> apikey.used.new-ip", // new, but never leaked: no incident
		"detect/new-ip for key_42 -> apikey.used.new-ip",
		"Signal from detect/leak-then-use: apikey.compromised, critical",
		"Incident inc_0001 about key_42 (dedup key detect/leak-then-use/key_42): apikey.used.new-ip 1h12m0s after apikey.leaked for key_42",
		"opened from a critical apikey.compromised signal about key_42",
		"detected -> containing",
		`containment action "disable-api-key" applied`,
		"contained -> investigating",
		"investigating -> notifying",
		"notices via email: 1 sent",
		"resolving -> resolved",
		"resolved -> closed",
		"key_42 active: false; key_77 active: true",
		"Customer notice via email to security@northwind.example",
		"leak-then-use: 3 events, 2 keys, 1 signal(s); new-ip: 18 events, 2 signal(s)",
	}
	last := -1
	for _, s := range steps {
		i := strings.Index(got, s)
		if assert.GreaterOrEqual(t, i, 0, "missing %q", s) {
			assert.Greater(t, i, last, "%q out of order", s)
			last = i
		}
	}
	assert.Equal(t, 1, strings.Count(got, "opened from"), "one incident, for key_42 only")
	assert.NotContains(t, got, leaked, "the credential never appears")

	// The same every time.
	var again strings.Builder
	require.NoError(t, run(&again))
	assert.Equal(t, got, again.String())
}
