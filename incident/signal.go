package incident

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on a Signal's fields. A signal over a limit is rejected by Validate
// rather than cut, so nothing is silently lost.
const (
	MaxKindLen       = 128
	MaxSubjectLen    = 256
	MaxDedupKeyLen   = 256
	MaxSourceLen     = 128
	MaxAccountLen    = 256
	MaxSummaryLen    = 2048
	MaxAttributes    = 32
	MaxAttrKeyLen    = 64
	MaxAttrValueLen  = 1024
	MaxCredentialLen = 8192
)

// Signal is one observation by a detector: something about Subject looks
// wrong. Signals with the same dedup key (see Key) while an incident is open
// join that incident; the first one opens it.
//
// A Signal is a value. Validate checks it; the orchestrator validates every
// signal it is handed.
type Signal struct {
	// Kind names what happened and chooses the playbook, such as
	// "apikey.compromised". Required.
	Kind string
	// Subject is what is affected: an API key's ID, an account, a host.
	// Never a secret. Required.
	Subject string
	// DedupKey groups signals into one incident. Empty means Kind + "/" +
	// Subject.
	DedupKey string
	// Severity ranks the signal. Required: SeverityLow to SeverityCritical.
	Severity Severity
	// Source names the detector, for the timeline.
	Source string
	// Account is the customer account concerned, when the detector knows it.
	Account string
	// Summary is a human-readable line about what was seen.
	Summary string
	// At is when it was observed. The zero value means "when reported".
	At time.Time
	// Attributes carry detector-specific details (region, IP, URL).
	Attributes map[string]string
	// Credential is the compromised secret, when containment needs its
	// value. It is handed to containers while the incident is contained by
	// this process and never stored: the incident keeps its Fingerprint.
	Credential Secret
}

// Key returns the dedup key: DedupKey, or Kind + "/" + Subject when it is
// empty.
func (s *Signal) Key() string {
	if s.DedupKey != "" {
		return s.DedupKey
	}
	return s.Kind + "/" + s.Subject
}

// Validate reports every problem with the signal. The error matches
// ErrInvalidSignal; errors.As finds a *FieldError naming the first bad field,
// and the error joins one *FieldError per bad field. A bad Severity also
// matches ErrUnknownSeverity. A field that contains the credential's value is
// rejected, so the secret cannot leak into the record through it, and the
// error never quotes field values.
func (s *Signal) Validate() error {
	if s.valid() {
		return nil
	}
	return s.problems()
}

// valid is the allocation-free check of the common case: it reports true
// only for a signal problems would accept. FuzzSignalValidate keeps the two
// in step.
func (s *Signal) valid() bool {
	if !s.Severity.Valid() || s.Kind == "" || s.Subject == "" ||
		len(s.Kind) > MaxKindLen || len(s.Subject) > MaxSubjectLen || len(s.DedupKey) > MaxDedupKeyLen ||
		len(s.Source) > MaxSourceLen || len(s.Account) > MaxAccountLen || len(s.Summary) > MaxSummaryLen ||
		(s.DedupKey == "" && len(s.Kind)+1+len(s.Subject) > MaxDedupKeyLen) ||
		len(s.Attributes) > 0 || !s.Credential.IsZero() {
		return false // attributes and credentials take the full check
	}
	for i := 0; i < len(s.Kind); i++ {
		if c := s.Kind[i]; c == ' ' || c == '\t' || c == '\r' || c == '\n' || c >= utf8.RuneSelf {
			return false
		}
	}
	// ASCII is valid UTF-8: OR every byte, and only look closer when one
	// has the high bit set.
	var or byte
	for _, v := range [...]string{s.Subject, s.DedupKey, s.Source, s.Account, s.Summary} {
		for i := 0; i < len(v); i++ {
			or |= v[i]
		}
	}
	if or < utf8.RuneSelf {
		return true
	}
	return utf8.ValidString(s.Subject) && utf8.ValidString(s.DedupKey) && utf8.ValidString(s.Source) &&
		utf8.ValidString(s.Account) && utf8.ValidString(s.Summary)
}

// problems is the full check, naming every bad field.
func (s *Signal) problems() error {
	var errs []error
	bad := func(field, reason string, sentinel error) {
		errs = append(errs, &FieldError{Field: field, Reason: reason, Err: sentinel})
	}
	text := func(field, v string, max int, required bool) {
		switch {
		case v == "" && required:
			bad(field, "required", nil)
		case len(v) > max:
			bad(field, "longer than "+strconv.Itoa(max)+" bytes", nil)
		case !utf8.ValidString(v):
			bad(field, "not valid UTF-8", nil)
		}
	}
	text("Kind", s.Kind, MaxKindLen, true)
	if strings.ContainsAny(s.Kind, " \t\r\n") {
		bad("Kind", "contains white space", nil)
	}
	text("Subject", s.Subject, MaxSubjectLen, true)
	text("DedupKey", s.DedupKey, MaxDedupKeyLen, false)
	if s.DedupKey == "" && len(s.Kind)+1+len(s.Subject) > MaxDedupKeyLen {
		bad("DedupKey", "derived key Kind/Subject longer than "+strconv.Itoa(MaxDedupKeyLen)+" bytes; set a shorter DedupKey", nil)
	}
	if !s.Severity.Valid() {
		bad("Severity", "unknown severity "+s.Severity.String(), ErrUnknownSeverity)
	}
	text("Source", s.Source, MaxSourceLen, false)
	text("Account", s.Account, MaxAccountLen, false)
	text("Summary", s.Summary, MaxSummaryLen, false)
	if len(s.Attributes) > MaxAttributes {
		bad("Attributes", "more than "+strconv.Itoa(MaxAttributes)+" entries", nil)
	}
	keys := make([]string, 0, len(s.Attributes))
	for k := range s.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c := s.Credential.value
	for _, k := range keys {
		v := s.Attributes[k]
		switch {
		case k == "":
			bad("Attributes", "empty key", nil)
		case len(k) > MaxAttrKeyLen || !utf8.ValidString(k):
			bad("Attributes", "a key is longer than "+strconv.Itoa(MaxAttrKeyLen)+" bytes or not UTF-8", nil)
		case c != "" && (strings.Contains(k, c) || strings.Contains(v, c)):
			bad("Attributes", "an attribute contains the credential", nil)
		default:
			text("Attributes["+k+"]", v, MaxAttrValueLen, false)
		}
	}
	if c != "" {
		if len(c) > MaxCredentialLen {
			bad("Credential", "longer than "+strconv.Itoa(MaxCredentialLen)+" bytes", nil)
		}
		for _, f := range []struct{ name, v string }{{"Kind", s.Kind}, {"Subject", s.Subject},
			{"DedupKey", s.DedupKey}, {"Source", s.Source}, {"Account", s.Account}, {"Summary", s.Summary}} {
			if strings.Contains(f.v, c) {
				bad(f.name, "contains the credential; identify the key by ID or fingerprint", nil)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
