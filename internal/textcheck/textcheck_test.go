package textcheck

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRules(t *testing.T) {
	tests := []struct {
		name        string
		s           string
		ident, text bool
	}{
		{"plain", "alice@example.com", true, true},
		{"accents and CJK", "Zoë 山田", true, true},
		{"empty", "", true, true},
		{"tab", "a\tb", false, true},
		{"newline", "a\nb", false, true},
		{"carriage return", "a\rb", false, false},
		{"NUL", "a\x00b", false, false},
		{"DEL", "a\x7fb", false, false},
		{"C1 control", "a\u0085b", false, false},
		{"invalid UTF-8", "a\xffb", false, false},
		{"line separator", "a\u2028b", false, true},
		{"right-to-left override", "admin\u202egnp.exe", false, true},
		{"first strong isolate", "a\u2068b", false, true},
		{"zero-width joiner", "a\u200db", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.ident, Ident(tt.s), "Ident")
			assert.Equal(t, tt.text, Text(tt.s), "Text")
		})
	}
}

func TestNoAllocation(t *testing.T) {
	s := "Zoë 山田 alice@example.com\tnote"
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = Ident(s) || Text(s) }))
}
