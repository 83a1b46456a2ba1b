package incident_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

const canary = "sk_live_CANARY_5f3c9a1e7d2b"

func validSignal() incident.Signal {
	return incident.Signal{
		Kind:       "apikey.compromised",
		Subject:    "key_123",
		Severity:   incident.SeverityHigh,
		Source:     "github-scanner",
		Account:    "acct_9",
		Summary:    "key found in a public repository",
		Attributes: map[string]string{"region": "eu-west-1", "url": "https://example.com/r"},
		Credential: incident.NewSecret(canary),
	}
}

func manyAttrs(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

func TestSignalValidateValid(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*incident.Signal)
	}{
		{"full", func(*incident.Signal) {}},
		{"minimal", func(s *incident.Signal) {
			*s = incident.Signal{Kind: "k", Subject: "s", Severity: incident.SeverityLow}
		}},
		{"every severity low..critical", func(s *incident.Signal) { s.Severity = incident.SeverityCritical }},
		{"limits exactly", func(s *incident.Signal) {
			s.Kind = strings.Repeat("k", incident.MaxKindLen)
			s.Subject = strings.Repeat("s", incident.MaxSubjectLen)
			s.DedupKey = strings.Repeat("d", incident.MaxDedupKeyLen)
			s.Summary = strings.Repeat("x", incident.MaxSummaryLen)
			s.Attributes = manyAttrs(incident.MaxAttributes)
			s.Attributes[strings.Repeat("a", incident.MaxAttrKeyLen)] = strings.Repeat("v", incident.MaxAttrValueLen)
			delete(s.Attributes, "k00")
		}},
		{"derived key exactly at the limit", func(s *incident.Signal) {
			s.Kind = strings.Repeat("k", 100)
			s.Subject = strings.Repeat("s", incident.MaxDedupKeyLen-101)
		}},
		{"long Kind/Subject with explicit DedupKey", func(s *incident.Signal) {
			s.Kind = strings.Repeat("k", incident.MaxKindLen)
			s.Subject = strings.Repeat("s", incident.MaxSubjectLen)
			s.DedupKey = "short"
		}},
		{"no credential", func(s *incident.Signal) { s.Credential = incident.Secret{} }},
		{"unicode", func(s *incident.Signal) { s.Summary = "Schlüssel geleakt – 🔑" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSignal()
			tt.mod(&s)
			assert.NoError(t, s.Validate())
		})
	}
}

func TestSignalValidateBadField(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*incident.Signal)
		field     string
		sentinel  error // additional sentinel the error must match, or nil
		wantCount int   // number of FieldErrors; 0 means 1
	}{
		{name: "missing Kind", mod: func(s *incident.Signal) { s.Kind = "" }, field: "Kind"},
		{name: "missing Subject", mod: func(s *incident.Signal) { s.Subject = "" }, field: "Subject"},
		{name: "space in Kind", mod: func(s *incident.Signal) { s.Kind = "apikey compromised" }, field: "Kind"},
		{name: "tab in Kind", mod: func(s *incident.Signal) { s.Kind = "apikey\tcompromised" }, field: "Kind"},
		{name: "newline in Kind", mod: func(s *incident.Signal) { s.Kind = "apikey\n" }, field: "Kind"},
		{name: "Kind too long", mod: func(s *incident.Signal) {
			s.Kind = strings.Repeat("k", incident.MaxKindLen+1)
			s.DedupKey = "d"
		}, field: "Kind"},
		{name: "Subject too long", mod: func(s *incident.Signal) {
			s.Subject = strings.Repeat("s", incident.MaxSubjectLen+1)
			s.DedupKey = "d"
		}, field: "Subject"},
		{name: "zero Severity", mod: func(s *incident.Signal) { s.Severity = incident.SeverityUnknown },
			field: "Severity", sentinel: incident.ErrUnknownSeverity},
		{name: "Severity 99", mod: func(s *incident.Signal) { s.Severity = 99 },
			field: "Severity", sentinel: incident.ErrUnknownSeverity},
		{name: "negative Severity", mod: func(s *incident.Signal) { s.Severity = -1 },
			field: "Severity", sentinel: incident.ErrUnknownSeverity},
		{name: "DedupKey too long", mod: func(s *incident.Signal) {
			s.DedupKey = strings.Repeat("d", incident.MaxDedupKeyLen+1)
		}, field: "DedupKey"},
		{name: "derived key too long", mod: func(s *incident.Signal) {
			s.Kind = strings.Repeat("k", 100)
			s.Subject = strings.Repeat("s", incident.MaxDedupKeyLen-100)
		}, field: "DedupKey"},
		{name: "Source too long", mod: func(s *incident.Signal) {
			s.Source = strings.Repeat("x", incident.MaxSourceLen+1)
		}, field: "Source"},
		{name: "Account too long", mod: func(s *incident.Signal) {
			s.Account = strings.Repeat("x", incident.MaxAccountLen+1)
		}, field: "Account"},
		{name: "Summary too long", mod: func(s *incident.Signal) {
			s.Summary = strings.Repeat("x", incident.MaxSummaryLen+1)
		}, field: "Summary"},
		{name: "too many Attributes", mod: func(s *incident.Signal) {
			s.Attributes = manyAttrs(incident.MaxAttributes + 1)
		}, field: "Attributes"},
		{name: "attribute value too long", mod: func(s *incident.Signal) {
			s.Attributes["region"] = strings.Repeat("v", incident.MaxAttrValueLen+1)
		}, field: "Attributes[region]"},
		{name: "attribute value not UTF-8", mod: func(s *incident.Signal) {
			s.Attributes["region"] = "eu\xff"
		}, field: "Attributes[region]"},
		{name: "empty attribute key", mod: func(s *incident.Signal) { s.Attributes[""] = "v" }, field: "Attributes"},
		{name: "attribute key too long", mod: func(s *incident.Signal) {
			s.Attributes[strings.Repeat("a", incident.MaxAttrKeyLen+1)] = "v"
		}, field: "Attributes"},
		{name: "attribute key not UTF-8", mod: func(s *incident.Signal) { s.Attributes["k\xfe"] = "v" }, field: "Attributes"},
		{name: "Kind not UTF-8", mod: func(s *incident.Signal) { s.Kind = "apikey\xc3" }, field: "Kind"},
		{name: "Subject not UTF-8", mod: func(s *incident.Signal) { s.Subject = "\xffkey" }, field: "Subject"},
		{name: "Summary not UTF-8", mod: func(s *incident.Signal) { s.Summary = "bad \xed\xa0\x80 surrogate" }, field: "Summary"},
		{name: "credential in Subject", mod: func(s *incident.Signal) { s.Subject = canary }, field: "Subject"},
		{name: "credential inside Summary", mod: func(s *incident.Signal) {
			s.Summary = "leaked key " + canary + " in repo"
		}, field: "Summary"},
		{name: "credential in an attribute value", mod: func(s *incident.Signal) {
			s.Attributes["url"] = "https://example.com/?key=" + canary
		}, field: "Attributes"},
		{name: "credential in an attribute key", mod: func(s *incident.Signal) { s.Attributes[canary] = "v" }, field: "Attributes"},
		{name: "credential in Source", mod: func(s *incident.Signal) { s.Source = canary }, field: "Source"},
		{name: "credential in Account", mod: func(s *incident.Signal) { s.Account = "x" + canary }, field: "Account"},
		{name: "credential in DedupKey", mod: func(s *incident.Signal) { s.DedupKey = "k/" + canary }, field: "DedupKey"},
		{name: "credential in Kind", mod: func(s *incident.Signal) { s.Kind = canary }, field: "Kind"},
		// Kinds may not hold "/": derived keys of two kinds could collide.
		{name: "slash in Kind", mod: func(s *incident.Signal) { s.Kind = "github/secret" }, field: "Kind"},
		// Identifiers reject control, separator and bidi formatting characters.
		{name: "ESC in Kind", mod: func(s *incident.Signal) { s.Kind = "apikey\x1b[31m" }, field: "Kind"},
		{name: "DEL in Kind", mod: func(s *incident.Signal) { s.Kind = "apikey\x7f" }, field: "Kind"},
		{name: "ESC in Subject", mod: func(s *incident.Signal) { s.Subject = "key\x1b[2J" }, field: "Subject"},
		{name: "BEL in Subject", mod: func(s *incident.Signal) { s.Subject = "key\a" }, field: "Subject"},
		{name: "NUL in Subject", mod: func(s *incident.Signal) { s.Subject = "key\x00" }, field: "Subject"},
		{name: "CR LF in Subject", mod: func(s *incident.Signal) { s.Subject = "key\r\n# Forged heading" }, field: "Subject"},
		{name: "tab in Subject", mod: func(s *incident.Signal) { s.Subject = "key\t1" }, field: "Subject"},
		{name: "C1 control in Subject", mod: func(s *incident.Signal) { s.Subject = "key\u009b" }, field: "Subject"},
		{name: "line separator in Subject", mod: func(s *incident.Signal) { s.Subject = "key\u2028" }, field: "Subject"},
		{name: "paragraph separator in DedupKey", mod: func(s *incident.Signal) { s.DedupKey = "k\u2029" }, field: "DedupKey"},
		{name: "bidi override in Subject", mod: func(s *incident.Signal) { s.Subject = "key_\u202egnp.exe" }, field: "Subject"},
		{name: "bidi embedding in Account", mod: func(s *incident.Signal) { s.Account = "acct\u202a" }, field: "Account"},
		{name: "bidi isolate in Source", mod: func(s *incident.Signal) { s.Source = "scanner\u2066" }, field: "Source"},
		{name: "pop directional isolate in Source", mod: func(s *incident.Signal) { s.Source = "scanner\u2069" }, field: "Source"},
		{name: "NUL in DedupKey", mod: func(s *incident.Signal) { s.DedupKey = "k\x00" }, field: "DedupKey"},
		{name: "ESC in an attribute key", mod: func(s *incident.Signal) { s.Attributes["re\x1bgion"] = "v" }, field: "Attributes"},
		{name: "bidi in an attribute key", mod: func(s *incident.Signal) { s.Attributes["re\u202egion"] = "v" }, field: "Attributes"},
		// Free text rejects control characters other than tab and newline.
		{name: "ESC in Summary", mod: func(s *incident.Signal) { s.Summary = "found \x1b]0;pwned\a" }, field: "Summary"},
		{name: "CR in Summary", mod: func(s *incident.Signal) { s.Summary = "line\r\nline" }, field: "Summary"},
		{name: "NUL in Summary", mod: func(s *incident.Signal) { s.Summary = "a\x00b" }, field: "Summary"},
		{name: "C1 control in Summary", mod: func(s *incident.Signal) { s.Summary = "a\u0085b" }, field: "Summary"},
		{name: "BEL in an attribute value", mod: func(s *incident.Signal) { s.Attributes["region"] = "eu\a" }, field: "Attributes[region]"},
		{name: "CR LF in an attribute value", mod: func(s *incident.Signal) { s.Attributes["region"] = "eu\r\n| x |" }, field: "Attributes[region]"},
		{name: "credential too long", mod: func(s *incident.Signal) {
			s.Credential = incident.NewSecret(strings.Repeat("c", incident.MaxCredentialLen+1))
		}, field: "Credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSignal()
			tt.mod(&s)
			err := s.Validate()
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrInvalidSignal)
			var fe *incident.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.NotEmpty(t, fe.Reason)
			if tt.sentinel != nil {
				assert.ErrorIs(t, err, tt.sentinel)
				assert.Equal(t, tt.sentinel, fe.Err)
			} else {
				assert.NotErrorIs(t, err, incident.ErrUnknownSeverity)
			}
			assert.Len(t, fieldErrors(err), 1, "exactly one bad field: %v", err)
			msg := err.Error()
			assert.NotContains(t, msg, canary)
			assert.NotContains(t, msg, s.Credential.Reveal())
			assert.True(t, strings.HasPrefix(msg, "incident: invalid signal: "+tt.field+": "), msg)
		})
	}
}

// fieldErrors flattens err, a *FieldError or a join of them, into its
// *FieldError values.
func fieldErrors(err error) []*incident.FieldError {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*incident.FieldError
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *incident.FieldError
	if errors.As(err, &fe) {
		return []*incident.FieldError{fe}
	}
	return nil
}

func TestSignalValidateSeveralBadFields(t *testing.T) {
	s := validSignal()
	s.Kind = ""
	s.Subject = "see " + canary
	s.Severity = 0
	s.Summary = strings.Repeat("x", incident.MaxSummaryLen+1)
	s.Attributes = map[string]string{"": "v", "z": strings.Repeat("v", incident.MaxAttrValueLen+1)}

	err := s.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, incident.ErrInvalidSignal)
	assert.ErrorIs(t, err, incident.ErrUnknownSeverity)

	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "several bad fields must join their errors, got %T", err)

	var fields []string
	for _, e := range joined.Unwrap() {
		var fe *incident.FieldError
		require.ErrorAs(t, e, &fe)
		fields = append(fields, fe.Field)
	}
	assert.Equal(t, []string{"Kind", "Severity", "Summary", "Attributes", "Attributes[z]", "Subject"}, fields)

	// errors.As finds the first bad field.
	var first *incident.FieldError
	require.ErrorAs(t, err, &first)
	assert.Equal(t, "Kind", first.Field)

	assert.NotContains(t, err.Error(), canary)
	assert.Equal(t, 6, strings.Count(err.Error(), "incident: invalid signal: "))
}

func TestSignalValidateErrorNeverQuotesValues(t *testing.T) {
	s := validSignal()
	s.Summary = "secret summary text " + canary
	s.Attributes = map[string]string{
		"a": canary,
		"b": strings.Repeat("V", incident.MaxAttrValueLen+1),
	}
	s.Subject = canary + canary
	err := s.Validate()
	require.Error(t, err)
	msg := err.Error()
	assert.NotContains(t, msg, canary)
	assert.NotContains(t, msg, "secret summary text")
	assert.NotContains(t, msg, "VVVV")
	assert.NotContains(t, fmt.Sprintf("%+v", err), canary)
	assert.NotContains(t, fmt.Sprintf("%#v", err), canary)
}

func TestSignalKey(t *testing.T) {
	tests := []struct {
		name string
		sig  incident.Signal
		want string
	}{
		{"default", incident.Signal{Kind: "apikey.compromised", Subject: "key_1"}, "apikey.compromised/key_1"},
		{"explicit", incident.Signal{Kind: "apikey.compromised", Subject: "key_1", DedupKey: "acct_9"}, "acct_9"},
		{"empty", incident.Signal{}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.sig.Key())
		})
	}
}

func TestFieldErrorIs(t *testing.T) {
	fe := &incident.FieldError{Field: "Kind", Reason: "required"}
	assert.ErrorIs(t, fe, incident.ErrInvalidSignal)
	assert.NotErrorIs(t, fe, incident.ErrUnknownSeverity)
	assert.NotErrorIs(t, fe, incident.ErrInvalidIncident)
	assert.Nil(t, fe.Unwrap())
	assert.Equal(t, "incident: invalid signal: Kind: required", fe.Error())
}

// Free text keeps tab and newline; identifiers may hold any other printable
// Unicode.
func TestSignalValidateAcceptsPrintableText(t *testing.T) {
	s := validSignal()
	s.Summary = "found in\ta commit:\n  line 2"
	s.Attributes["note"] = "first\nsecond\tcolumn"
	s.Subject = "clé_42 — ключ"
	s.Account = "acct/7"
	assert.NoError(t, s.Validate())
	assert.True(t, incident.SignalFastPath(&incident.Signal{Kind: "k", Subject: "clé", Summary: "a\tb\nc",
		Severity: incident.SeverityLow}))
}

// Derived keys of different kinds never collide: the kind that would have
// produced the same key is refused.
func TestDedupKeysDoNotCollideAcrossKinds(t *testing.T) {
	a := incident.Signal{Kind: "github", Subject: "secret/key_1", Severity: incident.SeverityHigh}
	b := incident.Signal{Kind: "github/secret", Subject: "key_1", Severity: incident.SeverityHigh}
	require.NoError(t, a.Validate())
	assert.Equal(t, "github/secret/key_1", a.Key())
	err := b.Validate()
	require.ErrorIs(t, err, incident.ErrInvalidSignal)
	var fe *incident.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Kind", fe.Field)
}

func TestSignalValidateAt(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"zero means now", time.Time{}, true},
		{"now", now, true},
		{"an hour ago", now.Add(-time.Hour), true},
		{"oldest allowed", now.Add(-incident.MaxSignalAge), true},
		{"just too old", now.Add(-incident.MaxSignalAge - time.Second), false},
		{"year 1", time.Date(1, 6, 1, 0, 0, 0, 0, time.UTC), false},
		{"latest allowed", now.Add(incident.MaxClockSkew), true},
		{"just too new", now.Add(incident.MaxClockSkew + time.Second), false},
		{"a century ahead", now.AddDate(100, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSignal()
			s.At = tt.at
			err := s.ValidateAt(now)
			require.NoError(t, s.Validate(), "Validate does not look at At")
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrInvalidSignal)
			assert.ErrorIs(t, err, incident.ErrSignalTime)
			var fe *incident.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "At", fe.Field)
		})
	}
	t.Run("joined with the other problems", func(t *testing.T) {
		s := validSignal()
		s.Subject = ""
		s.At = now.AddDate(100, 0, 0)
		fields := fieldErrors(s.ValidateAt(now))
		require.Len(t, fields, 2)
		assert.Equal(t, "Subject", fields[0].Field)
		assert.Equal(t, "At", fields[1].Field)
	})
}

// Validate's fast path stays allocation-free, for ASCII and for other
// printable Unicode.
func TestSignalValidateDoesNotAllocate(t *testing.T) {
	for _, s := range []incident.Signal{
		{Kind: "apikey.compromised", Subject: "key_42", Severity: incident.SeverityHigh, Source: "scanner",
			Summary: "found in a public repository\n", At: time.Now()},
		{Kind: "apikey.compromised", Subject: "clé_42", Severity: incident.SeverityHigh, Summary: "trouvée — publique"},
	} {
		require.True(t, incident.SignalFastPath(&s))
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = s.Validate() }))
		now := time.Now()
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = s.ValidateAt(now) }))
	}
}
