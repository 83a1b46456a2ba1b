//go:build race

package pgstore_test

// raceEnabled: the race detector's cost would be what the timed scale
// tests measure; .ci/run runs them on their own, without it.
const raceEnabled = true
