package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints, marshals and logs as.
const Redacted = "[REDACTED]"

// Secret holds a credential (an API key, a token) that a containment action
// may need to act on, such as revoking a leaked key by its value. It never
// shows its value: fmt verbs, encoding/json, encoding/text and log/slog all
// render it as Redacted. Only Reveal returns the value; call it at the point
// of use and do not keep the result.
//
// The zero value is an empty secret. A Secret is a value and safe to copy and
// to use concurrently.
type Secret struct {
	value string
}

// NewSecret wraps a credential.
func NewSecret(value string) Secret { return Secret{value: value} }

// Reveal returns the credential. It is the only way to get it back.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// Fingerprint returns a stable, non-reversible identifier of the credential:
// "sha256:" and the first 16 bytes of its SHA-256, in hex. Stores and
// timelines keep this instead of the secret. It returns "" for an empty
// secret.
func (s Secret) Fingerprint() string {
	if s.value == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.value))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// String returns Redacted, or "" for an empty secret.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return Redacted
}

// GoString returns Redacted, so %#v does not show the value.
func (s Secret) GoString() string { return "incident.Secret(" + Redacted + ")" }

// Format writes the redacted form for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// LogValue makes log/slog record the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText encodes the redacted form, so encoding/json and other text
// encoders never see the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON encodes the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }
