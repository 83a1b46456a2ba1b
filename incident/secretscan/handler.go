package secretscan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

// The request headers of the protocol.
const (
	HeaderKeyIdentifier = "Github-Public-Key-Identifier"
	HeaderSignature     = "Github-Public-Key-Signature"
)

// Defaults of a Config's zero fields.
const (
	DefaultKind         = "credential.compromised"
	DefaultMaxBodyBytes = 1 << 20
	defaultMaxMatches   = 1000
	DefaultConcurrency  = 8
	defaultTimeout      = 30 * time.Second
)

// Limits on a match's fields. A batch with a match over a limit is rejected
// whole (ErrBadPayload); the platform's type names and source values are
// short identifiers, and a token longer than incident.MaxCredentialLen
// cannot be carried by a signal.
const (
	MaxTypeLen   = 128
	MaxSourceLen = 64
)

// SourcePrefix starts the Source of every signal the handler reports; the
// match's source ("commit", "content", …) follows it.
const SourcePrefix = "secret-scanning"

// Match is one leaked token the platform found.
type Match struct {
	// Token is the leaked credential. It prints as incident.Redacted; call
	// Token.Reveal() to look it up.
	Token incident.Secret
	// Type is the token type name the provider registered with the
	// platform, such as "mycompany_api_token".
	Type string
	// URL is the public URL where the token was found; it may be empty.
	URL string
	// Source is where on the platform the token was found: "content",
	// "commit", "pull_request_comment", "npm", … (the platform's docs list
	// them, in varying case); it may be empty.
	Source string
}

// Identity is what a token belongs to, as the host's Resolve function
// tells it.
type Identity struct {
	// Subject identifies the credential without revealing it: the API
	// key's ID, for instance. Required; it becomes Signal.Subject and must
	// not contain the token.
	Subject string
	// Account is the customer account that owns the credential, if known.
	Account string
	// DedupKey groups signals into one incident; empty means the
	// orchestrator's default, Kind + "/" + Subject, so every report of the
	// same credential joins the incident open for it.
	DedupKey string
}

// Label is the verdict on one token in the feedback.
type Label string

// The labels the protocol allows.
const (
	TruePositive  Label = "true_positive"  // the token is one of the host's credentials; a signal was reported
	FalsePositive Label = "false_positive" // Resolve said ErrUnknownToken: not a credential of the host
)

// Feedback is one entry of the response body. The token is identified by
// the lowercase hex SHA-256 of its raw value ("token_hash"), which the
// protocol accepts in place of the raw token, so the response never carries
// the secret.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     Label  `json:"label"`
}

// Config configures a Handler. Keys, Reporter and Resolve are required;
// every other zero field has the documented default.
type Config struct {
	// Keys verifies the request signatures.
	Keys *KeySet
	// Reporter receives one signal per token that is the host's, usually the
	// orchestrator. It must be safe for concurrent use.
	Reporter incident.Reporter
	// Resolve tells which of the host's credentials m.Token is (look the
	// token up the way the host authenticates it). It returns ErrUnknownToken
	// (possibly wrapped) when the token is not one of the host's: the match
	// is labelled false_positive and nothing is reported. Any other error
	// fails the whole request with status 503, so the platform may retry.
	// Resolve is called concurrently for the matches of a batch, must honour
	// ctx, and must not keep or log the token.
	Resolve func(ctx context.Context, m Match) (Identity, error)

	// Kind of the signals. Default DefaultKind ("credential.compromised").
	Kind string
	// Severity of the signals. Default incident.SeverityCritical: the
	// platform tells of secrets found in public.
	Severity incident.Severity
	// MaxBodyBytes bounds the request body; a longer one is answered 413.
	// Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// MaxMatches bounds the matches in one request; more is answered 400.
	// Default 1000.
	MaxMatches int
	// Concurrency bounds the Resolve calls, and then the Report calls, in
	// flight for one request. Default DefaultConcurrency (8).
	Concurrency int
	// Timeout bounds the work on one request after the body is read:
	// verification (with a key refresh), Resolve and Report. That work runs
	// on a context detached from the request's (it keeps its values), so a
	// platform that hangs up does not abort a batch half reported. Default
	// 30 s (the platform's request timeout for partners that
	// give feedback).
	Timeout time.Duration
	// Logger receives one record per request and one per match handled.
	// Records never contain a token. Default slog.Default().
	Logger *slog.Logger
}

// Handler is the http.Handler for the secret scanning partner protocol.
// Build it with New; it is safe for concurrent use.
//
// A request is answered:
//
//   - 405 Method Not Allowed, with "Allow: POST", unless it is a POST;
//   - 401 Unauthorized when a signature header is missing, the key is
//     unknown (after one refresh), or the signature does not verify over the
//     raw body: the request is not from the platform, and nothing is
//     reported;
//   - 413 Request Entity Too Large when the body is over MaxBodyBytes;
//   - 400 Bad Request when the signed body is not a JSON array of matches
//     (each an object with a non-empty string "token" and "type"; "url" and
//     "source" are optional strings; unknown fields are ignored), holds more
//     than MaxMatches, or cannot be read. The whole batch is checked before
//     any match is handled, so nothing is reported;
//   - 503 Service Unavailable when the keys cannot be fetched, or Resolve or
//     the Reporter fails: the platform may send the batch again;
//   - 500 Internal Server Error when a signal built from a match is invalid
//     (Resolve returned an Identity without Subject, or one that contains
//     the token), or host code panicked;
//   - 200 OK with a JSON array of Feedback, one entry per match in order,
//     otherwise.
//
// Checks run in that order, so an unsigned request is refused before its
// body is read, and a body is parsed only once its signature verifies. The
// Content-Type is not checked. Error responses are plain text naming the
// class of error only. See Status for the mapping of errors to codes.
//
// Idempotency: the platform may deliver a batch more than once, and a 503
// invites it to. Each delivery reports its tokens again; a report of a
// credential whose incident is still open joins that incident (same dedup
// key: Identity.DedupKey, or Kind + "/" + Subject) instead of opening
// another, so a repeated delivery adds to the incident's signal count and
// nothing else. A batch that failed half way through reporting is
// therefore safe to resend whole.
type Handler struct {
	keys     *KeySet
	reporter incident.Reporter
	resolve  func(ctx context.Context, m Match) (Identity, error)
	kind     string
	severity incident.Severity
	maxBody  int64
	maxMatch int
	conc     int
	timeout  time.Duration
	log      *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New checks cfg, fills in its defaults and returns the Handler. The error
// matches ErrInvalidConfig, and incident.ErrInvalidSignal when Kind or
// Severity would make invalid signals.
func New(cfg Config) (*Handler, error) {
	h := &Handler{
		keys: cfg.Keys, reporter: cfg.Reporter, resolve: cfg.Resolve,
		kind: cfg.Kind, severity: cfg.Severity, maxBody: cfg.MaxBodyBytes, maxMatch: cfg.MaxMatches,
		conc: cfg.Concurrency, timeout: cfg.Timeout, log: cfg.Logger,
	}
	var errs []error
	if h.keys == nil {
		errs = append(errs, errors.New("no Keys"))
	}
	if h.reporter == nil {
		errs = append(errs, errors.New("no Reporter"))
	}
	if h.resolve == nil {
		errs = append(errs, errors.New("no Resolve"))
	}
	if h.kind == "" {
		h.kind = DefaultKind
	}
	if h.severity == incident.SeverityUnknown {
		h.severity = incident.SeverityCritical
	}
	probe := incident.Signal{Kind: h.kind, Subject: "probe", Severity: h.severity}
	if err := probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxMatch <= 0 {
		h.maxMatch = defaultMaxMatches
	}
	if h.conc <= 0 {
		h.conc = DefaultConcurrency
	}
	if h.timeout <= 0 {
		h.timeout = defaultTimeout
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return h, nil
}

// ServeHTTP answers one delivery of the partner protocol, as the Handler
// doc describes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		h.log.WarnContext(r.Context(), "secretscan: request refused", "status", http.StatusMethodNotAllowed,
			"method", r.Method, "remote", r.RemoteAddr)
		return
	}
	keyID, sig := r.Header.Get(HeaderKeyIdentifier), r.Header.Get(HeaderSignature)
	if keyID == "" || sig == "" {
		h.fail(w, r, keyID, ErrUnsigned)
		return
	}
	if r.ContentLength > h.maxBody {
		h.fail(w, r, keyID, fmt.Errorf("%w: Content-Length %d is over %d bytes", ErrTooLarge, r.ContentLength, h.maxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fmt.Errorf("%w: over %d bytes", ErrTooLarge, h.maxBody)
		} else {
			err = &PayloadError{Index: -1, Reason: "reading the body: " + err.Error()}
		}
		h.fail(w, r, keyID, err)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	defer cancel()
	feedback, err := h.Process(ctx, keyID, sig, body)
	if err != nil {
		h.fail(w, r, keyID, err)
		return
	}
	out, err := json.Marshal(feedback)
	if err != nil { // cannot happen: Feedback is plain strings
		h.fail(w, r, keyID, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	var ours int
	for _, f := range feedback {
		if f.Label == TruePositive {
			ours++
		}
	}
	h.log.InfoContext(r.Context(), "secretscan: report handled", "status", http.StatusOK, "key_id", trimID(keyID),
		"matches", len(feedback), "reported", ours, "not_ours", len(feedback)-ours)
}

// fail answers err with its Status and logs it. The response body names the
// class of error only.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, keyID string, err error) {
	code := Status(err)
	var text string
	switch code {
	case http.StatusUnauthorized:
		text = "signature verification failed"
	case http.StatusBadRequest:
		text = "malformed payload"
	case http.StatusRequestEntityTooLarge:
		text = "request body too large"
	case http.StatusServiceUnavailable:
		text = "temporarily unavailable, try again later"
	default:
		text = "internal error"
	}
	http.Error(w, text, code)
	level := slog.LevelWarn
	if code >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "secretscan: request refused", "status", code, "err", err,
		"key_id", trimID(keyID), "remote", r.RemoteAddr)
}

// Process handles one delivery whose body has been read: it verifies the
// signature over body, parses and checks the whole batch, resolves every
// token, builds and validates every signal, and only then reports them. It
// returns the feedback, one entry per match in order, or an error (see
// Status for what each means); after an error, the signals reported before
// it are not taken back (reporting is idempotent, see Handler).
//
// ServeHTTP calls it; a host that does not serve with net/http can call it
// with the header values and the raw body, and answer with Status(err).
func (h *Handler) Process(ctx context.Context, keyID, signature string, body []byte) ([]Feedback, error) {
	if err := h.keys.Verify(ctx, keyID, signature, body); err != nil {
		return nil, err
	}
	matches, err := parseMatches(body, h.maxMatch)
	if err != nil {
		return nil, err
	}

	// Resolve every token before reporting any.
	ids := make([]Identity, len(matches))
	ours := make([]bool, len(matches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.conc)
	for i, m := range matches {
		g.Go(func() error {
			var id Identity
			err := retry.Call(gctx, 0, func(ctx context.Context) error {
				var err error
				id, err = h.resolve(ctx, m)
				return err
			})
			switch {
			case err == nil:
				ids[i], ours[i] = id, true
			case errors.Is(err, ErrUnknownToken):
			default:
				return newMatchError(i, m, OpResolve, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	sigs := make([]incident.Signal, len(matches))
	for i, m := range matches {
		if !ours[i] {
			continue
		}
		sigs[i] = h.signal(m, ids[i])
		if err := sigs[i].Validate(); err != nil {
			return nil, newMatchError(i, m, OpValidate, err)
		}
	}

	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(h.conc)
	for i, m := range matches {
		if !ours[i] {
			tok := m.Token.Reveal()
			h.log.InfoContext(ctx, "secretscan: token is not ours; labelled false positive",
				"type", redact(m.Type, tok), "source", redact(m.Source, tok), "token", m.Token.Fingerprint())
			continue
		}
		g.Go(func() error {
			var rc incident.Receipt
			err := retry.Call(gctx, 0, func(ctx context.Context) error {
				var err error
				rc, err = h.reporter.Report(ctx, sigs[i])
				return err
			})
			if err != nil {
				return newMatchError(i, m, OpReport, err)
			}
			h.log.InfoContext(ctx, "secretscan: leaked credential reported", "incident", rc.IncidentID,
				"opened", rc.Opened, "subject", sigs[i].Subject, "type", sigs[i].Attributes["type"], "source", sigs[i].Attributes["source"],
				"url", sigs[i].Attributes["url"], "token", m.Token.Fingerprint())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	feedback := make([]Feedback, len(matches))
	for i, m := range matches {
		tok := m.Token.Reveal()
		sum := sha256.Sum256([]byte(tok))
		feedback[i] = Feedback{TokenHash: hex.EncodeToString(sum[:]), TokenType: redact(m.Type, tok), Label: FalsePositive}
		if ours[i] {
			feedback[i].Label = TruePositive
		}
	}
	return feedback, nil
}

// signal builds the signal for a match of ours. Text fields that would
// contain the token are redacted, so the signal cannot leak it.
func (h *Handler) signal(m Match, id Identity) incident.Signal {
	tok := m.Token.Reveal()
	typ, src := redact(m.Type, tok), redact(m.Source, tok)
	url := cut(redact(m.URL, tok), incident.MaxAttrValueLen)

	attrs := map[string]string{"type": typ}
	source := SourcePrefix
	if src != "" {
		source += ":" + src
		attrs["source"] = src
	}
	where := "at an unknown location"
	if url != "" {
		attrs["url"] = url
		where = "at " + url
	}
	found := ""
	if src != "" {
		found = " (found in " + src + ")"
	}
	return incident.Signal{
		Kind:       h.kind,
		Subject:    id.Subject,
		DedupKey:   id.DedupKey,
		Severity:   h.severity,
		Source:     source,
		Account:    id.Account,
		Summary:    "Secret scanning found a leaked " + typ + " token " + where + found,
		Attributes: attrs,
		Credential: m.Token,
	}
}

// cut shortens s to at most max bytes on a rune boundary, ending it with
// "…" when it was cut.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	n := max - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// trimID shortens a key identifier from a request for a log record.
func trimID(id string) string { return cut(id, 80) }

type rawMatch struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// parseMatches decodes the body as a JSON array of matches and checks every
// one, stopping at the first bad one or at max+1 matches.
func parseMatches(body []byte, max int) ([]Match, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, &PayloadError{Index: -1, Reason: "not JSON: " + jsonReason(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, &PayloadError{Index: -1, Reason: "not a JSON array"}
	}
	var matches []Match
	for i := 0; dec.More(); i++ {
		if i == max {
			return nil, &PayloadError{Index: -1, Reason: "more than " + strconv.Itoa(max) + " matches", Err: ErrTooManyMatches}
		}
		var rm rawMatch
		if err := dec.Decode(&rm); err != nil {
			return nil, &PayloadError{Index: i, Reason: "not a match object: " + jsonReason(err)}
		}
		switch {
		case rm.Token == "":
			return nil, &PayloadError{Index: i, Reason: "no token"}
		case len(rm.Token) > incident.MaxCredentialLen:
			return nil, &PayloadError{Index: i, Reason: "token longer than " + strconv.Itoa(incident.MaxCredentialLen) + " bytes"}
		case rm.Type == "":
			return nil, &PayloadError{Index: i, Reason: "no type"}
		case len(rm.Type) > MaxTypeLen:
			return nil, &PayloadError{Index: i, Reason: "type longer than " + strconv.Itoa(MaxTypeLen) + " bytes"}
		case len(rm.Source) > MaxSourceLen:
			return nil, &PayloadError{Index: i, Reason: "source longer than " + strconv.Itoa(MaxSourceLen) + " bytes"}
		}
		matches = append(matches, Match{Token: incident.NewSecret(rm.Token), Type: rm.Type, URL: rm.URL, Source: rm.Source})
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, &PayloadError{Index: -1, Reason: "unterminated array: " + jsonReason(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &PayloadError{Index: -1, Reason: "data after the array"}
	}
	return matches, nil
}

// jsonReason describes a decoding error without quoting the body: a syntax
// error's offset, or the JSON type found where a string was expected.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return "field " + te.Field + " is a JSON " + te.Value + ", not a string"
		}
		return "a JSON " + te.Value + ", not an object"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "invalid JSON"
}
