package incident

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/breachkit/breach/internal/textcheck"
)

// Bounds of what people add to an incident's head, which stays bounded
// (see Store).
const (
	// MaxObservableValue bounds Observable.Value and Observable.Source, in
	// bytes.
	MaxObservableValue = 2048
	// MaxEvidence bounds Incident.Evidence: an incident holds at most this
	// many observables.
	MaxEvidence = 200
	// MaxMerged bounds Incident.Merged: at most this many incidents are
	// merged into one.
	MaxMerged = 100
)

// ObservableType says what an Observable's Value is. Its zero value is not
// valid.
type ObservableType string

// The observable types.
const (
	// ObservableIP: an IPv4 or IPv6 address, as net/netip parses it.
	ObservableIP ObservableType = "ip"
	// ObservableURL: an absolute URL, with a scheme and a host.
	ObservableURL ObservableType = "url"
	// ObservableHash: a digest in hex, of the length of MD5, SHA-1, SHA-256
	// or SHA-512 (32, 40, 64 or 128 hex digits).
	ObservableHash ObservableType = "hash"
	// ObservableUser: a user name, login or e-mail address.
	ObservableUser ObservableType = "user"
	// ObservableKeyID: the identifier of a key or token ("key_42",
	// "AKIA…"), never the key itself.
	ObservableKeyID ObservableType = "key_id"
)

// Valid reports whether t is one of the observable types.
func (t ObservableType) Valid() bool {
	switch t {
	case ObservableIP, ObservableURL, ObservableHash, ObservableUser, ObservableKeyID:
		return true
	}
	return false
}

// Observable is one piece of evidence on an incident: an address, a URL, a
// hash, a user or a key ID seen in the incident, where it was seen and
// who attached it. It is plain data, safe to copy.
type Observable struct {
	Type  ObservableType `json:"type"`
	Value string         `json:"value"`
	// Source says where it was seen: a log, a tool, a report. Optional.
	Source string `json:"source,omitempty"`
	// SeenAt is when it was observed, when known.
	SeenAt time.Time `json:"seen_at,omitzero"`
	// AddedAt and AddedBy say when and by whom it was attached; the
	// orchestrator sets them.
	AddedAt time.Time `json:"added_at,omitzero"`
	AddedBy string    `json:"added_by,omitempty"`
}

// Validate returns nil for an observable an incident may hold, or an
// *EvidenceError (matching ErrInvalidEvidence) naming the first bad field:
// a Type that is not one of the observable types; a Value that is empty,
// longer than MaxObservableValue bytes, not UTF-8 or holds a control, line
// separator or bidirectional formatting character, or does not parse as
// its type says (an IP address for ObservableIP, an absolute URL with a
// host for ObservableURL, hex of an MD5, SHA-1, SHA-256 or SHA-512 length
// for ObservableHash, printable text for ObservableUser, and one printable
// word for ObservableKeyID); a Source or AddedBy that is too long or holds
// such a character.
//
// A Value or Source that looks like a credential (LooksLikeCredential; for
// a URL also a password in its user information, or a query parameter
// named like a credential, such as token, sig or X-Amz-Signature) is
// refused with an *EvidenceError that also matches ErrCredentialEvidence:
// evidence is kept, exported and reported, and a credential must never be.
// No error quotes the value. Validate does not look at the times.
func (ob Observable) Validate() error {
	if !ob.Type.Valid() {
		return &EvidenceError{Field: "Type", Reason: "not one of ip, url, hash, user, key_id"}
	}
	if err := evidenceText("Value", ob.Value, true, ob.Type != ObservableURL); err != nil {
		return err
	}
	if err := evidenceText("Source", ob.Source, false, true); err != nil {
		return err
	}
	if err := evidenceText("AddedBy", ob.AddedBy, false, false); err != nil {
		return err
	}
	v := ob.Value
	switch ob.Type {
	case ObservableIP:
		if _, err := netip.ParseAddr(v); err != nil {
			return &EvidenceError{Field: "Value", Reason: "not an IP address"}
		}
	case ObservableURL:
		return validURL(v)
	case ObservableHash:
		if !hexDigest(v) {
			return &EvidenceError{Field: "Value", Reason: "not the hex digest of MD5, SHA-1, SHA-256 or SHA-512 (32, 40, 64 or 128 hex digits)"}
		}
	case ObservableUser, ObservableKeyID:
		for _, r := range v {
			if !unicode.IsPrint(r) {
				return &EvidenceError{Field: "Value", Reason: "holds a character that is not printable"}
			}
			if ob.Type == ObservableKeyID && unicode.IsSpace(r) {
				return &EvidenceError{Field: "Value", Reason: "holds white space: a key ID is one word"}
			}
		}
		if strings.TrimSpace(v) != v {
			return &EvidenceError{Field: "Value", Reason: "begins or ends with white space"}
		}
	}
	return nil
}

// evidenceText checks one text field of an Observable; with secret, that
// it does not look like a credential (a URL is looked at in its parts by
// validURL, since "/" joins its segments into what looks like one token).
func evidenceText(field, s string, required, secret bool) error {
	switch {
	case s == "" && required:
		return &EvidenceError{Field: field, Reason: "empty"}
	case len(s) > MaxObservableValue:
		return &EvidenceError{Field: field, Reason: "longer than " + strconv.Itoa(MaxObservableValue) + " bytes"}
	case !textcheck.Ident(s):
		return &EvidenceError{Field: field, Reason: "not UTF-8, or holds a control, line separator or bidirectional formatting character"}
	case secret && LooksLikeCredential(s):
		return credentialEvidence(field)
	}
	return nil
}

func credentialEvidence(field string) error {
	return &EvidenceError{Field: field, Reason: "looks like a credential; attach its identifier or fingerprint, never the secret",
		Err: ErrCredentialEvidence}
}

// credentialParams are query parameters that carry credentials in URLs
// (OAuth, signed URLs of the large clouds, SAS tokens), lower case.
var credentialParams = map[string]bool{
	"access_token": true, "id_token": true, "refresh_token": true, "token": true, "auth": true,
	"api_key": true, "apikey": true, "secret": true, "client_secret": true,
	"password": true, "passwd": true, "pwd": true, "sig": true, "signature": true,
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"x-goog-signature": true, "x-goog-credential": true,
}

func validURL(v string) error {
	if credentialPatterns.MatchString(v) || credentialAssignment.MatchString(v) {
		return credentialEvidence("Value")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return &EvidenceError{Field: "Value", Reason: "not an absolute URL with a scheme and a host"}
	}
	if _, ok := u.User.Password(); ok {
		return credentialEvidence("Value")
	}
	if name := u.User.Username(); name != "" && (LooksLikeCredential(name) || randomToken(name, "") >= 0) {
		return credentialEvidence("Value") // a token given as the user: https://<token>@host/
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return &EvidenceError{Field: "Value", Reason: "its query does not parse"}
	}
	for k, vs := range q {
		if randomToken(k, "") >= 0 {
			return credentialEvidence("Value") // a token as a bare query: ?<token>
		}
		for _, val := range vs {
			if val != "" && (credentialParams[strings.ToLower(k)] || randomToken(val, "") >= 0) {
				return credentialEvidence("Value")
			}
		}
	}
	// Path segments are tokens of their own: "/" is not part of one here.
	if randomToken(u.EscapedPath(), "/") >= 0 || randomToken(u.Fragment, "/") >= 0 {
		return credentialEvidence("Value")
	}
	return nil
}

// hexDigest reports whether s is hex of a common digest's length.
func hexDigest(s string) bool {
	switch len(s) {
	case 32, 40, 64, 128:
	default:
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
