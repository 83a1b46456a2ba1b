package incident

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/breachkit/breach/internal/textcheck"
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

// Bounds on a signal's At, checked by ValidateAt.
const (
	// MaxSignalAge is how long before now a signal may have been observed:
	// 30 days. Detectors report within minutes or hours, and a backfill of
	// the last month (a scanner catching up, a log replay) still fits; an
	// older date is a bug or a forgery, and would push an incident's
	// FirstSeen, and the clocks measured from it, into the past.
	MaxSignalAge = 30 * 24 * time.Hour
	// MaxClockSkew is how far after now a signal may say it was observed:
	// 5 minutes, the skew that the webhook and signature schemes the
	// library speaks tolerate between two honest clocks. A later date
	// cannot be an observation, and would move LastSeen into the future.
	MaxClockSkew = 5 * time.Minute
)

// Signal is one observation by a detector: something about Subject looks
// wrong. Signals with the same dedup key (see Key) while an incident is open
// join that incident; the first one opens it.
//
// A Signal is a value. Validate checks it; the orchestrator validates every
// signal it is handed.
type Signal struct {
	// Kind names what happened and chooses the playbook, such as
	// "apikey.compromised". Required; no white space and no "/" (see Key).
	Kind string
	// Subject is what is affected: an API key's ID, an account, a host.
	// Never a secret. Required.
	Subject string
	// DedupKey groups signals into one incident. Empty means Kind + "/" +
	// Subject (see Key).
	DedupKey string
	// Severity ranks the signal. Required: SeverityLow to SeverityCritical.
	Severity Severity
	// Source names the detector, for the timeline.
	Source string
	// Account is the customer account concerned, when the detector knows it.
	Account string
	// Summary is a human-readable line about what was seen: free text, in
	// which tab and newline are the only control characters allowed.
	Summary string
	// At is when it was observed. The zero value means "when reported";
	// ValidateAt bounds it (see MaxSignalAge and MaxClockSkew).
	At time.Time
	// Attributes carry detector-specific details (region, IP, URL). Keys
	// are identifiers, values free text (see Validate).
	Attributes map[string]string
	// Credential is the compromised secret, when containment needs its
	// value. It is handed to containers while the incident is contained by
	// this process and never stored: the incident keeps its Fingerprint.
	Credential Secret
}

// Key returns the dedup key: DedupKey, or Kind + "/" + Subject when it is
// empty. A valid Kind holds no "/", so the derived key of one kind never
// equals that of another: kind "github" with subject "secret/key_1" gives
// "github/secret/key_1", and kind "github/secret" is refused. An explicit
// DedupKey shares the key space with derived ones; a detector that sets one
// in the Kind/Subject form joins that kind's incidents on purpose.
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
//
// Every text field must be valid UTF-8 within its length limit. The
// identifiers (Kind, Subject, DedupKey, Source, Account and attribute keys)
// may hold no control character (Unicode category Cc: C0, DEL and C1), no
// line or paragraph separator (U+2028, U+2029) and no bidirectional
// embedding, override or isolate (U+202A–U+202E, U+2066–U+2069), which
// would make one identifier display as another. Free text (Summary and
// attribute values) may hold tab and newline but no other control
// character. Kind also may not hold white space or "/" (see Key).
//
// Validate does not look at At; ValidateAt does.
func (s *Signal) Validate() error {
	if s.valid() {
		return nil
	}
	return s.problems()
}

// ValidateAt is Validate plus a check of At against now: a non-zero At must
// lie within [now − MaxSignalAge, now + MaxClockSkew], so that a signal
// dated a century ahead, or in year 1, cannot move an incident's LastSeen
// or FirstSeen (and the clocks measured from them) there. A bad At is a
// *FieldError with Field "At" matching ErrInvalidSignal and ErrSignalTime,
// joined to Validate's error when there is one. The orchestrator's Report
// calls ValidateAt with its clock.
func (s *Signal) ValidateAt(now time.Time) error {
	err := s.Validate()
	if s.At.IsZero() {
		return err
	}
	var reason string
	switch {
	case s.At.Before(now.Add(-MaxSignalAge)):
		reason = "more than " + MaxSignalAge.String() + " before now"
	case s.At.After(now.Add(MaxClockSkew)):
		reason = "more than " + MaxClockSkew.String() + " after now"
	default:
		return err
	}
	fe := &FieldError{Field: "At", Reason: reason, Err: ErrSignalTime}
	if err == nil {
		return fe
	}
	return errors.Join(err, fe)
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
		if c := s.Kind[i]; c <= ' ' || c == '/' || c == 0x7f || c >= utf8.RuneSelf {
			return false // the full check decides
		}
	}
	return textcheck.Ident(s.Subject) && textcheck.Ident(s.DedupKey) && textcheck.Ident(s.Source) && textcheck.Ident(s.Account) &&
		textcheck.Text(s.Summary)
}

// problems is the full check, naming every bad field.
func (s *Signal) problems() error {
	var errs []error
	bad := func(field, reason string, sentinel error) {
		errs = append(errs, &FieldError{Field: field, Reason: reason, Err: sentinel})
	}
	check := func(field, v string, max int, required, ident bool) {
		switch {
		case v == "" && required:
			bad(field, "required", nil)
		case len(v) > max:
			bad(field, "longer than "+strconv.Itoa(max)+" bytes", nil)
		case !utf8.ValidString(v):
			bad(field, "not valid UTF-8", nil)
		case ident && !textcheck.Ident(v):
			bad(field, "contains a control, separator or bidirectional formatting character", nil)
		case !ident && !textcheck.Text(v):
			bad(field, "contains a control character other than tab and newline", nil)
		}
	}
	ident := func(field, v string, max int, required bool) { check(field, v, max, required, true) }
	text := func(field, v string, max int) { check(field, v, max, false, false) }
	ident("Kind", s.Kind, MaxKindLen, true)
	if strings.Contains(s.Kind, " ") { // tab and line breaks are control characters
		bad("Kind", "contains white space", nil)
	}
	if strings.Contains(s.Kind, "/") {
		bad("Kind", `contains "/", which separates kind and subject in the derived dedup key`, nil)
	}
	ident("Subject", s.Subject, MaxSubjectLen, true)
	ident("DedupKey", s.DedupKey, MaxDedupKeyLen, false)
	if s.DedupKey == "" && len(s.Kind)+1+len(s.Subject) > MaxDedupKeyLen {
		bad("DedupKey", "derived key Kind/Subject longer than "+strconv.Itoa(MaxDedupKeyLen)+" bytes; set a shorter DedupKey", nil)
	}
	if !s.Severity.Valid() {
		bad("Severity", "unknown severity "+s.Severity.String(), ErrUnknownSeverity)
	}
	ident("Source", s.Source, MaxSourceLen, false)
	ident("Account", s.Account, MaxAccountLen, false)
	text("Summary", s.Summary, MaxSummaryLen)
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
		case !textcheck.Ident(k):
			bad("Attributes", "a key contains a control, separator or bidirectional formatting character", nil)
		case c != "" && (strings.Contains(k, c) || strings.Contains(v, c)):
			bad("Attributes", "an attribute contains the credential", nil)
		default:
			text("Attributes["+k+"]", v, MaxAttrValueLen)
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
