package incident_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

// Credentials of the forms the checks know, made up for the tests.
const (
	githubToken = "ghp_R2d2C3poBb8Ee4Kk9Ll0Mm1Nn2Oo3Pp4Qq5x"
	awsSecret   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8vT3kLm2"
	jwtToken    = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXRoYXQtbG9va3MtcmVhbA"
	stripeKey   = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
)

func TestObservableValidate(t *testing.T) {
	ob := func(typ incident.ObservableType, v string) incident.Observable {
		return incident.Observable{Type: typ, Value: v}
	}
	tests := []struct {
		name   string
		ob     incident.Observable
		field  string // "" for valid
		secret bool   // the error matches ErrCredentialEvidence
	}{
		{"IPv4", ob(incident.ObservableIP, "203.0.113.7"), "", false},
		{"IPv6", ob(incident.ObservableIP, "2001:db8::1"), "", false},
		{"URL", ob(incident.ObservableURL, "https://paste.example/raw/abc?lang=go#L3"), "", false},
		{"URL with a long path", ob(incident.ObservableURL, "https://code.example/acme/sdk/blob/main/Documents/Reports2024/QuarterlyFinance/Summary.md"), "", false},
		{"MD5", ob(incident.ObservableHash, strings.Repeat("a1", 16)), "", false},
		{"SHA-1", ob(incident.ObservableHash, strings.Repeat("B2", 20)), "", false},
		{"SHA-256", ob(incident.ObservableHash, strings.Repeat("0f", 32)), "", false},
		{"SHA-512", ob(incident.ObservableHash, strings.Repeat("9e", 64)), "", false},
		{"user", ob(incident.ObservableUser, "Ada Lovelace <ada@example.com>"), "", false},
		{"key ID", ob(incident.ObservableKeyID, "key_42"), "", false},
		{"AWS access key ID", ob(incident.ObservableKeyID, "AKIAIOSFODNN7EXAMPLE"), "", false},
		{"UUID key ID", ob(incident.ObservableKeyID, "123e4567-e89b-12d3-a456-426614174000"), "", false},
		{"hex key ID", ob(incident.ObservableKeyID, strings.Repeat("4f2a", 10)), "", false},
		{"with source and who", incident.Observable{Type: incident.ObservableIP, Value: "198.51.100.9",
			Source: "gateway logs", AddedBy: "alice"}, "", false},

		{"no type", ob("", "203.0.113.7"), "Type", false},
		{"unknown type", ob("email", "a@example.com"), "Type", false},
		{"empty value", ob(incident.ObservableUser, ""), "Value", false},
		{"value too long", ob(incident.ObservableUser, strings.Repeat("a", incident.MaxObservableValue+1)), "Value", false},
		{"control character", ob(incident.ObservableUser, "alice\x1b[31m"), "Value", false},
		{"newline", ob(incident.ObservableUser, "alice\nbob"), "Value", false},
		{"bidi override", ob(incident.ObservableUser, "alice\u202e"), "Value", false},
		{"not UTF-8", ob(incident.ObservableUser, "al\xffice"), "Value", false},
		{"not an IP", ob(incident.ObservableIP, "203.0.113.300"), "Value", false},
		{"a prefix is no IP", ob(incident.ObservableIP, "203.0.113.0/24"), "Value", false},
		{"relative URL", ob(incident.ObservableURL, "/raw/abc"), "Value", false},
		{"URL without host", ob(incident.ObservableURL, "mailto:alice@example.com"), "Value", false},
		{"hash of no known length", ob(incident.ObservableHash, strings.Repeat("a", 33)), "Value", false},
		{"hash not hex", ob(incident.ObservableHash, strings.Repeat("g", 32)), "Value", false},
		{"key ID with space", ob(incident.ObservableKeyID, "key 42"), "Value", false},
		{"user padded", ob(incident.ObservableUser, " alice"), "Value", false},
		{"source too long", incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7",
			Source: strings.Repeat("s", incident.MaxObservableValue+1)}, "Source", false},
		{"AddedBy with a control character", incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7",
			AddedBy: "alice\x00"}, "AddedBy", false},

		{"GitHub token as key ID", ob(incident.ObservableKeyID, githubToken), "Value", true},
		{"cloud secret as key ID", ob(incident.ObservableKeyID, awsSecret), "Value", true},
		{"Stripe secret key as key ID", ob(incident.ObservableKeyID, stripeKey), "Value", true},
		{"JWT as user", ob(incident.ObservableUser, jwtToken), "Value", true},
		{"password assignment as user", ob(incident.ObservableUser, "alice password=hunter2hunter2"), "Value", true},
		{"URL with a password", ob(incident.ObservableURL, "https://alice:s3cr3t@db.example/"), "Value", true},
		{"URL with a token", ob(incident.ObservableURL, "https://api.example/v1?access_token=abc123"), "Value", true},
		{"URL with a token as the user", ob(incident.ObservableURL, "https://Zk3qT9vX2bLmN8pR4sW7yA1cD6fH0jKo@git.example.com/org/repo.git"), "Value", true},
		{"URL with a token as a bare query", ob(incident.ObservableURL, "https://hooks.example/in?Zk3qT9vX2bLmN8pR4sW7yA1cD6fH0jKo"), "Value", true},
		{"URL with a plain user", ob(incident.ObservableURL, "https://git@git.example.com/org/repo.git"), "", false},
		{"signed URL", ob(incident.ObservableURL, "https://bucket.example/o?X-Amz-Signature=deadbeef"), "Value", true},
		{"URL with a key in its path", ob(incident.ObservableURL, "https://hooks.example/services/"+awsSecret[:13]+"/"+githubToken), "Value", true},
		{"secret in the source", incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7",
			Source: "curl -H 'Authorization: Bearer " + githubToken + "'"}, "Source", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ob.Validate()
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrInvalidEvidence)
			var ee *incident.EvidenceError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.field, ee.Field)
			assert.Equal(t, tt.secret, errors.Is(err, incident.ErrCredentialEvidence), "matches ErrCredentialEvidence")
			if tt.ob.Value != "" && len(tt.ob.Value) > 3 {
				assert.NotContains(t, err.Error(), tt.ob.Value, "the error never quotes the value")
			}
			if tt.secret {
				for _, s := range []string{githubToken, awsSecret, jwtToken, stripeKey, "s3cr3t", "hunter2"} {
					assert.NotContains(t, err.Error(), s)
				}
			}
		})
	}
}

func TestObservableTypeValid(t *testing.T) {
	for _, typ := range []incident.ObservableType{incident.ObservableIP, incident.ObservableURL, incident.ObservableHash,
		incident.ObservableUser, incident.ObservableKeyID} {
		assert.True(t, typ.Valid(), typ)
	}
	for _, typ := range []incident.ObservableType{"", "IP", "email", "key-id"} {
		assert.False(t, typ.Valid(), typ)
	}
	assert.Equal(t, incident.ObservableKeyID, incident.ObservableType("key_id"))
}

func TestEvidenceErrorMessage(t *testing.T) {
	err := &incident.EvidenceError{Field: "Value", Reason: "looks like a credential", Err: incident.ErrCredentialEvidence}
	assert.Equal(t, "incident: invalid evidence: Value: looks like a credential", err.Error())
	assert.ErrorIs(t, err, incident.ErrInvalidEvidence)
	assert.ErrorIs(t, err, incident.ErrCredentialEvidence)
	assert.NotErrorIs(t, &incident.EvidenceError{Field: "Type"}, incident.ErrCredentialEvidence)
}

func TestLooksLikeCredential(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{githubToken, true},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF", true},
		{"glpat-xXxXxXxXxXxXxXxXxXxX", true},
		{"xoxb-1234567890-abcdefghij", true},
		{stripeKey, true},
		{"AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", true},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true},
		{"sk-proj-abcdefghijklmnopqrstuvwx", true},
		{jwtToken, true},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", true},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn", true},
		{"Authorization: Bearer abcdefghijklmnop1234", true},
		{"api_key=abcdef123456", true},
		{"client_secret: Zm9vYmFyYmF6", true},
		{"the key is " + awsSecret + " as pasted", true},

		{"", false},
		{"key_42", false},
		{"AKIAIOSFODNN7EXAMPLE", false},
		{"sha256:078a08441f4314f0a2833cfe58c62e555", false},
		{strings.Repeat("deadbeef", 8), false},
		{"brk_a61940a57455c8a3f45ab3d808ee3e6e", false},
		{"123e4567-e89b-12d3-a456-426614174000", false},
		{"CustomerAccountReportingService2024v2", false},
		{"ProjectAlphaQuarterlyFinanceReport2024Q3Final", false},
		{"the password was changed", false},
		{"rotated the token at 10:02", false},
		{"sk_live_...", false},
		{"Ada Lovelace <ada@example.com>", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			assert.Equal(t, tt.want, incident.LooksLikeCredential(tt.s))
		})
	}
}

func TestRedactCredentials(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"nothing to redact", "key rotated; customer told", "key rotated; customer told"},
		{"a token", "found " + githubToken + " in a gist", "found [REDACTED] in a gist"},
		{"a cloud secret", "secret key " + awsSecret + ", rotated", "secret key [REDACTED], rotated"},
		{"an assignment keeps its name", "they used password=hunter2hunter2 twice", "they used password=[REDACTED] twice"},
		{"a bearer token", "header Bearer abcdefghijklmnop1234", "header [REDACTED]"},
		{"a private key, all lines", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQ\n-----END EC PRIVATE KEY-----\nthen", "[REDACTED]\nthen"},
		{"two", githubToken + " and " + stripeKey, "[REDACTED] and [REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := incident.RedactCredentials(tt.in)
			assert.Equal(t, tt.want, got)
			assert.False(t, incident.LooksLikeCredential(got), "nothing is left to find: %q", got)
		})
	}
}
