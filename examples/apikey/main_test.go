package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScenarios(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	withImpact, noImpact, ok := strings.Cut(out.String(), "=== Scenario 2")
	require.True(t, ok)

	// Detection → containment → investigation → notification → resolution → closed.
	for _, step := range []string{
		"opened from a critical apikey.compromised signal",
		"detected -> containing",
		`containment action "disable-api-key" applied`,
		`containment action "block-abusing-addresses" applied`,
		"contained -> investigating",
		"notify customers: customer data affected",
		"investigating -> notifying",
		"notices via email: 1 sent",
		"notifying -> resolving",
		"resolving -> resolved",
		"resolved -> closed",
		"Timeline verified",
		"Generate a new API key",
		"Subject: Security notice about your account",
		`Clock "GDPR Art. 33: notify the supervisory authority": met`,
		"--- Post-incident report ---",
		"## Notification deadlines",
		"```mermaid",
	} {
		assert.Contains(t, withImpact, step)
	}
	assert.Less(t, strings.Index(withImpact, "detected -> containing"), strings.Index(withImpact, "contained -> investigating"))
	assert.Less(t, strings.Index(withImpact, "contained -> investigating"), strings.Index(withImpact, "investigating -> notifying"))

	assert.Contains(t, noImpact, "do not notify customers: the investigation found no customer data affected")
	assert.Contains(t, noImpact, "No customer notice was sent: the investigation found no customer data affected.")
	assert.Contains(t, noImpact, "resolved -> closed")
	assert.NotContains(t, noImpact, "Customer notice via")

	assert.NotContains(t, out.String(), "sk_live_", "the credential never appears")

	// Both incidents are closed: no clock is left running, in the summary
	// lines or in the reports' deadline tables.
	clocks := 0
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "Clock ") || strings.HasPrefix(line, "| GDPR") {
			clocks++
			assert.NotContains(t, line, "running", "a clock of a closed incident")
		}
	}
	assert.GreaterOrEqual(t, clocks, 2, "each scenario shows its clock")
	assert.Contains(t, noImpact, `Clock "GDPR Art. 33: notify the supervisory authority": not_applicable`)
}
