package detect

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/breachkit/breach/incident"
)

// Limits on an Event's fields. Observe refuses an event over a limit rather
// than cut it, so that every signal built from it passes
// incident.Signal.Validate.
const (
	// MaxKeyLen is the longest Key: the key becomes the signal's Subject.
	MaxKeyLen = incident.MaxSubjectLen
	// MaxNameLen is the longest Name.
	MaxNameLen = 128
	// MaxValueLen is the longest Value: it may become an attribute value.
	MaxValueLen = incident.MaxAttrValueLen
	// MaxAccountLen is the longest Account.
	MaxAccountLen = incident.MaxAccountLen
	// MaxEventAttributes is the most attributes an event may carry. A
	// signal holds a rule's evidence plus the attributes of at most two
	// events, within incident.MaxAttributes.
	MaxEventAttributes = 8
	// MaxEventAttrKeyLen is the longest attribute key: a signal prefixes it
	// with "attr.", "first.attr." or "then.attr.".
	MaxEventAttrKeyLen = 48
	// MaxEventAttrValueLen is the longest attribute value.
	MaxEventAttrValueLen = incident.MaxAttrValueLen
)

// Event is one thing the host saw happen: an authentication, an export, a
// change of payout details. Rules group events by Key.
//
// An Event is a value. Observe copies it, except for Attributes: the map is
// kept, and may end up in a signal, so the caller must not change it after
// Observe.
type Event struct {
	// Key is what the activity is about: an API key's ID, an account, a
	// user. It becomes the signal's Subject, so it must not be a secret;
	// when all the host has is the credential, leave Key empty and set
	// Credential. Required (or Credential), at most MaxKeyLen bytes.
	Key string
	// Name says what happened, such as "auth.failed" or "apikey.leaked".
	// Sequence matches on it; the other rules report it. At most MaxNameLen
	// bytes.
	Name string
	// Value is the term NewTerms learns per key: an IP address, a country,
	// a user agent, a partner ID. At most MaxValueLen bytes.
	Value string
	// Time is when it happened. The zero value means when Detect evaluates
	// it (the clock's time).
	Time time.Time
	// Weight is what Threshold sums when it counts weight (rows exported,
	// bytes sent); an event of weight 0 adds nothing. It must not be
	// negative. Rules that count events ignore it.
	Weight int64
	// Account is the customer account concerned, when known; it becomes the
	// signal's Account. At most MaxAccountLen bytes.
	Account string
	// Attributes are details for the signal's evidence (endpoint, region),
	// at most MaxEventAttributes of them, keys of at most MaxEventAttrKeyLen
	// bytes.
	Attributes map[string]string
	// Credential is the secret the event is about, when the host has it
	// (the token presented in a failed authentication). It is never kept:
	// Observe refuses the event with ErrCredential when any other field
	// contains it, and, when Key is empty, uses its Fingerprint as the key.
	Credential incident.Secret
}

// Times a detector can keep: those whose UnixNano is defined.
var (
	minTime = time.Unix(0, -1<<63+1)
	maxTime = time.Unix(0, 1<<63-1)
)

// check validates ev and prepares it for the queue: it fills Key from the
// credential's fingerprint and forgets the credential.
func check(ev *Event) error {
	if !ev.Credential.IsZero() {
		if err := checkCredential(ev); err != nil {
			return err
		}
		if ev.Key == "" {
			ev.Key = ev.Credential.Fingerprint()
		}
		ev.Credential = incident.Secret{}
	}
	switch {
	case ev.Key == "":
		return &EventError{Field: "Key", Reason: "required (or Credential)"}
	case len(ev.Key) > MaxKeyLen:
		return &EventError{Field: "Key", Reason: "longer than " + strconv.Itoa(MaxKeyLen) + " bytes"}
	case len(ev.Name) > MaxNameLen:
		return &EventError{Field: "Name", Reason: "longer than " + strconv.Itoa(MaxNameLen) + " bytes"}
	case len(ev.Value) > MaxValueLen:
		return &EventError{Field: "Value", Reason: "longer than " + strconv.Itoa(MaxValueLen) + " bytes"}
	case len(ev.Account) > MaxAccountLen:
		return &EventError{Field: "Account", Reason: "longer than " + strconv.Itoa(MaxAccountLen) + " bytes"}
	case ev.Weight < 0:
		return &EventError{Field: "Weight", Reason: "negative"}
	case !ev.Time.IsZero() && (ev.Time.Before(minTime) || ev.Time.After(maxTime)):
		return &EventError{Field: "Time", Reason: "outside the years 1678 to 2262"}
	case !validUTF8(ev.Key, ev.Name, ev.Value, ev.Account):
		return &EventError{Field: "Key, Name, Value or Account", Reason: "not valid UTF-8"}
	case len(ev.Attributes) > MaxEventAttributes:
		return &EventError{Field: "Attributes", Reason: "more than " + strconv.Itoa(MaxEventAttributes) + " entries"}
	}
	for k, v := range ev.Attributes {
		switch {
		case k == "" || len(k) > MaxEventAttrKeyLen:
			return &EventError{Field: "Attributes", Reason: "a key is empty or longer than " + strconv.Itoa(MaxEventAttrKeyLen) + " bytes"}
		case len(v) > MaxEventAttrValueLen:
			return &EventError{Field: "Attributes", Reason: "a value is longer than " + strconv.Itoa(MaxEventAttrValueLen) + " bytes"}
		case !validUTF8(k, v, "", ""):
			return &EventError{Field: "Attributes", Reason: "not valid UTF-8"}
		}
	}
	return nil
}

func checkCredential(ev *Event) error {
	c := ev.Credential.Reveal()
	bad := func(field string) error {
		return &EventError{Field: field, Reason: "contains the credential; identify it by ID or leave Key empty", Err: ErrCredential}
	}
	switch {
	case strings.Contains(ev.Key, c):
		return bad("Key")
	case strings.Contains(ev.Name, c):
		return bad("Name")
	case strings.Contains(ev.Value, c):
		return bad("Value")
	case strings.Contains(ev.Account, c):
		return bad("Account")
	}
	for k, v := range ev.Attributes {
		if strings.Contains(k, c) || strings.Contains(v, c) {
			return bad("Attributes")
		}
	}
	return nil
}

// validUTF8 is utf8.ValidString of four strings, with a fast path for ASCII.
func validUTF8(a, b, c, d string) bool {
	var or byte
	for _, s := range [...]string{a, b, c, d} {
		for i := 0; i < len(s); i++ {
			or |= s[i]
		}
	}
	if or < utf8.RuneSelf {
		return true
	}
	return utf8.ValidString(a) && utf8.ValidString(b) && utf8.ValidString(c) && utf8.ValidString(d)
}
