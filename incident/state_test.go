package incident_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

func TestSeverityString(t *testing.T) {
	tests := []struct {
		sev   incident.Severity
		want  string
		valid bool
	}{
		{incident.SeverityUnknown, "unknown", false},
		{incident.SeverityLow, "low", true},
		{incident.SeverityMedium, "medium", true},
		{incident.SeverityHigh, "high", true},
		{incident.SeverityCritical, "critical", true},
		{5, "severity(5)", false},
		{99, "severity(99)", false},
		{-1, "severity(-1)", false},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.sev.String())
			assert.Equal(t, tt.valid, tt.sev.Valid())
		})
	}
}

func TestSeverityTextRoundTrip(t *testing.T) {
	for _, sev := range []incident.Severity{incident.SeverityUnknown, incident.SeverityLow,
		incident.SeverityMedium, incident.SeverityHigh, incident.SeverityCritical} {
		t.Run(sev.String(), func(t *testing.T) {
			b, err := sev.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, sev.String(), string(b))

			var got incident.Severity = 42
			require.NoError(t, got.UnmarshalText(b))
			assert.Equal(t, sev, got)

			p, err := incident.ParseSeverity(string(b))
			require.NoError(t, err)
			assert.Equal(t, sev, p)

			// Through encoding/json, as a struct field.
			type rec struct{ S incident.Severity }
			j, err := json.Marshal(rec{sev})
			require.NoError(t, err)
			assert.JSONEq(t, `{"S":"`+sev.String()+`"}`, string(j))
			var back rec
			require.NoError(t, json.Unmarshal(j, &back))
			assert.Equal(t, sev, back.S)
		})
	}
}

func TestSeverityMarshalOutOfRange(t *testing.T) {
	for _, sev := range []incident.Severity{-1, 5, 99} {
		_, err := sev.MarshalText()
		assert.ErrorIs(t, err, incident.ErrUnknownSeverity, sev)
		_, err = json.Marshal(struct{ S incident.Severity }{sev})
		assert.ErrorIs(t, err, incident.ErrUnknownSeverity, sev)
	}
}

func TestParseSeverityUnknown(t *testing.T) {
	for _, name := range []string{"", "LOW", "High", "severe", " low", "severity(5)", "4"} {
		t.Run(name, func(t *testing.T) {
			sev, err := incident.ParseSeverity(name)
			assert.ErrorIs(t, err, incident.ErrUnknownSeverity)
			assert.Equal(t, incident.SeverityUnknown, sev)

			got := incident.SeverityHigh
			err = got.UnmarshalText([]byte(name))
			assert.ErrorIs(t, err, incident.ErrUnknownSeverity)
			assert.Equal(t, incident.SeverityHigh, got, "a failed UnmarshalText leaves the value alone")
		})
	}
	var v struct{ S incident.Severity }
	assert.ErrorIs(t, json.Unmarshal([]byte(`{"S":"severe"}`), &v), incident.ErrUnknownSeverity)
}

func TestSeverityOrdering(t *testing.T) {
	order := []incident.Severity{incident.SeverityUnknown, incident.SeverityLow,
		incident.SeverityMedium, incident.SeverityHigh, incident.SeverityCritical}
	assert.True(t, slices.IsSorted(order))
	for i := 1; i < len(order); i++ {
		assert.Less(t, order[i-1], order[i])
	}
	assert.Equal(t, incident.SeverityCritical, slices.Max(order))
	assert.Equal(t, incident.Severity(0), incident.SeverityUnknown, "the zero value is unknown")
}
