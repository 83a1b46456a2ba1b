//go:build !race

package pgstore_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
