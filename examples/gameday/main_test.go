package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRehearsal(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	s := out.String()
	for _, want := range []string{
		"contain disable-api-key on key_42",
		"notify acct_7 via email",
		"Deadline missed: NIS2 Art. 23: early warning",
		"NIS2 Art. 23: early warning                   late",
		"(late: DPO reached on Monday)",
		"GDPR Art. 33: notify the supervisory authority met",
		"NIS2 Art. 23: final report                    met",
		"# Incident gameday: apikey.compromised",
		"| State | closed |",
		"Timeline verified",
	} {
		assert.Contains(t, s, want)
	}
	var again strings.Builder
	require.NoError(t, run(&again))
	assert.Equal(t, s, again.String(), "a rehearsal is deterministic")
}
