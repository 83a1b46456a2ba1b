package secretscan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/breachkit/breach/incident"
)

// Sentinel errors. Every error this package returns matches one of them (or
// a context error) with errors.Is; [Status] maps them to HTTP status codes.
// No error message quotes a token.
var (
	// ErrUnsigned: the request lacks the Github-Public-Key-Identifier or the
	// Github-Public-Key-Signature header. Status 401.
	ErrUnsigned = errors.New("secretscan: request is not signed")
	// ErrUnknownKey: the key identifier names no key of the KeySet, even
	// after a refresh. Status 401.
	ErrUnknownKey = errors.New("secretscan: unknown public key identifier")
	// ErrBadSignature: the signature is not base64, not ASN.1, or does not
	// verify over the body with the named key. Status 401.
	ErrBadSignature = errors.New("secretscan: signature does not verify")
	// ErrKeySource: the KeySource failed (the platform's key endpoint is
	// down), so the key named by the request could not be looked up.
	// Status 503: the platform may retry later.
	ErrKeySource = errors.New("secretscan: public keys unavailable")
	// ErrBadKey: a key document or a key in it cannot be used: the JSON is
	// not a public_keys document, or a key is not a PEM "PUBLIC KEY" block
	// holding an ECDSA P-256 key.
	ErrBadKey = errors.New("secretscan: unusable public key")

	// ErrTooLarge: the body is longer than the handler's MaxBodyBytes.
	// Status 413.
	ErrTooLarge = errors.New("secretscan: request body too large")
	// ErrBadPayload: the signed body is not a JSON array of well-formed
	// matches. The error is a *PayloadError. Status 400.
	ErrBadPayload = errors.New("secretscan: malformed payload")
	// ErrTooManyMatches: the array holds more matches than the handler's
	// MaxMatches. It comes inside a *PayloadError, so it matches
	// ErrBadPayload too. Status 400.
	ErrTooManyMatches = errors.New("secretscan: too many matches")

	// ErrUnknownToken is what a Resolve function returns (possibly wrapped)
	// for a token that is not one of the host's credentials. The match is
	// labelled "false_positive" and no signal is made.
	ErrUnknownToken = errors.New("secretscan: token is not ours")
	// ErrResolve: Resolve failed with another error (the host's key
	// database is down). The error is a *MatchError. Status 503.
	ErrResolve = errors.New("secretscan: resolving a token failed")
	// ErrReport: the Reporter failed (the incident store is down). The error
	// is a *MatchError. Status 503, unless the Reporter said the signal
	// itself is invalid (incident.ErrInvalidSignal), which is status 500.
	ErrReport = errors.New("secretscan: reporting a signal failed")

	// ErrInvalidConfig: New was handed a Config it cannot work with.
	ErrInvalidConfig = errors.New("secretscan: invalid config")
)

// PayloadError says what is wrong with the body. It matches ErrBadPayload,
// and through Unwrap a more specific sentinel (ErrTooManyMatches) when
// there is one. It never quotes the body.
type PayloadError struct {
	// Index is the position of the bad match in the array, or -1 when the
	// body as a whole is at fault.
	Index  int
	Reason string
	Err    error
}

func (e *PayloadError) Error() string {
	if e.Index < 0 {
		return "secretscan: malformed payload: " + e.Reason
	}
	return "secretscan: malformed payload: match " + strconv.Itoa(e.Index) + ": " + e.Reason
}

// Is makes a *PayloadError match ErrBadPayload.
func (e *PayloadError) Is(target error) bool { return target == ErrBadPayload }

// Unwrap returns the more specific sentinel, if any.
func (e *PayloadError) Unwrap() error { return e.Err }

// Operations a MatchError names.
const (
	OpResolve  = "resolve"  // the host's Resolve function
	OpValidate = "validate" // the signal built from the match failed incident.Signal.Validate
	OpReport   = "report"   // the Reporter
)

// MatchError says which match of a batch could not be handled, and why. It
// matches ErrResolve (Op "resolve") or ErrReport (Op "report"); Unwrap gives
// the cause, so a validation failure matches incident.ErrInvalidSignal.
//
// Its message names the token by fingerprint only, and any occurrence of the
// token in the cause's message is replaced with incident.Redacted. The cause
// itself (Err) comes from host code and is not rewritten: do not print it on
// its own.
type MatchError struct {
	Index       int    // position of the match in the array
	Type        string // the match's token type
	Fingerprint string // incident.Secret.Fingerprint of the token
	Op          string // OpResolve, OpValidate or OpReport
	Err         error

	msg string // the redacted message, when built by this package
}

func newMatchError(i int, m Match, op string, err error) *MatchError {
	e := &MatchError{Index: i, Type: m.Type, Fingerprint: m.Token.Fingerprint(), Op: op, Err: err}
	e.msg = redact(e.build(), m.Token.Reveal())
	return e
}

func (e *MatchError) build() string {
	return fmt.Sprintf("secretscan: match %d (type %q, token %s): %s: %v", e.Index, e.Type, e.Fingerprint, e.Op, e.Err)
}

func (e *MatchError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return e.build()
}

// Is makes a *MatchError match ErrResolve or ErrReport, after its Op.
func (e *MatchError) Is(target error) bool {
	return (target == ErrResolve && e.Op == OpResolve) || (target == ErrReport && e.Op == OpReport)
}

// Unwrap returns the cause.
func (e *MatchError) Unwrap() error { return e.Err }

// redact replaces every occurrence of token in s with incident.Redacted.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, incident.Redacted)
}

// Status returns the HTTP status code the handler answers err with:
//
//	nil                                          200 OK
//	ErrTooLarge                                  413 Request Entity Too Large
//	ErrBadPayload (and ErrTooManyMatches)        400 Bad Request
//	ErrUnsigned, ErrUnknownKey, ErrBadSignature  401 Unauthorized
//	incident.ErrInvalidSignal, incident.ErrPanic 500 Internal Server Error (a host or config bug; retrying will not help)
//	ErrKeySource, ErrResolve, ErrReport,
//	context errors, incident.ErrTimeout          503 Service Unavailable (try again later)
//	anything else                                500 Internal Server Error
//
// Hosts that call Handler.Process from another framework can use it to
// answer the same way.
func Status(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadPayload):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnsigned), errors.Is(err, ErrUnknownKey), errors.Is(err, ErrBadSignature):
		return http.StatusUnauthorized
	case errors.Is(err, incident.ErrInvalidSignal), errors.Is(err, incident.ErrPanic):
		return http.StatusInternalServerError
	case errors.Is(err, ErrKeySource), errors.Is(err, ErrResolve), errors.Is(err, ErrReport),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, incident.ErrTimeout):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
