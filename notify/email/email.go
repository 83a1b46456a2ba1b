// Package email delivers incident notices as e-mail: RFC 5322 messages with
// MIME parts, sent through an SMTP submission server with STARTTLS before
// AUTH. [New] builds the [Notifier] a playbook routes notices through; it
// also pages the on-call address of its [Config] (see [Notifier.Page]).
//
// A Notifier makes one SMTP transaction per Notify or Page call and does not
// retry:
// the delivery policy of the orchestrator (an [incident.Policy]) is the one
// retry layer. A 5xx reply, a missing STARTTLS or AUTH and an untrusted
// certificate are marked [incident.Permanent]; a 4xx reply and network
// errors are retryable.
package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// The errors of e-mail. Each is wrapped with details; test with errors.Is.
var (
	// ErrConfig: an Config that New refuses, or a page for a Notifier
	// without Config.OnCall (permanent).
	ErrConfig = errors.New("email: invalid configuration")
	// ErrHeader: a header value (subject, name, address, idempotency
	// key) with a CR or LF in it, which could inject headers. Permanent.
	ErrHeader = errors.New("email: line break in a header")
	// ErrRecipient: a recipient without an e-mail address, or with one
	// that is not a single bare address. Permanent.
	ErrRecipient = errors.New("email: recipient has no valid e-mail address")
	// ErrNoTLS: the server does not offer STARTTLS when TLS is
	// required, or a password would go over an unencrypted connection.
	// Permanent.
	ErrNoTLS = errors.New("email: SMTP server does not offer STARTTLS")
	// ErrNoAuth: credentials are configured but the server offers no
	// AUTH. Permanent.
	ErrNoAuth = errors.New("email: SMTP server does not offer AUTH")
)

// Config configures an Email notifier. Addr and From are required;
// every other zero field has a documented default.
type Config struct {
	// Addr is the submission server's host:port, such as
	// "smtp.example.com:587".
	Addr string
	// From is the sender: Address is required, Name is optional and may be
	// any Unicode text (it is RFC 2047 encoded when needed).
	From mail.Address
	// Username and Password, when Username is set, are sent with AUTH PLAIN,
	// only after STARTTLS. Password is a Secret, so a logged config does not
	// show it.
	Username string
	Password incident.Secret
	// TLSConfig is used for STARTTLS. nil means the system roots, with
	// ServerName the host of Addr; a config without ServerName gets it.
	// New keeps a copy, so later changes to it have no effect.
	TLSConfig *tls.Config
	// AllowPlaintext, when false (the default), requires TLS: the server
	// must offer STARTTLS, which is done before AUTH and MAIL, and a server
	// that does not is a permanent ErrNoTLS. When true, STARTTLS is
	// still used when offered, and mail goes in clear text otherwise;
	// credentials are never sent in clear text either way.
	AllowPlaintext bool
	// OnCall is where Page sends pages: the on-call rotation's address (a
	// team list, a pager service's e-mail integration). Address may be
	// empty, and Page then refuses every page; when set it must be one bare
	// address. Name is optional, as From's.
	OnCall mail.Address
	// Hello is the name given in EHLO. "" means "localhost".
	Hello string
	// Timeout bounds one Notify call (dial to QUIT) when ctx's deadline is
	// later or absent. 0 means 1 minute.
	Timeout time.Duration
	// Now gives the Date header. nil means time.Now.
	Now func() time.Time
}

// Notifier is a notify.Notifier that sends each message as an RFC 5322
// e-mail through an SMTP submission server (net/smtp), to
// msg.Recipient.Email, and a notify.Pager that sends each page to
// Config.OnCall. Build one with New; the zero value is not usable. A
// Notifier is immutable and safe for concurrent use; each Notify or Page
// call opens its own connection and makes one attempt.
//
// The Message-ID is derived from msg.IdempotencyKey, so that a notice sent
// again after an uncertain failure is recognisable as the same one.
type Notifier struct {
	cfg   Config
	host  string
	tls   *tls.Config
	msgID string // the domain of Message-IDs
}

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Pager    = (*Notifier)(nil)
)

// New checks cfg and returns a Notifier. The error matches
// ErrConfig and never contains the password.
func New(cfg Config) (*Notifier, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("%w: Addr %q is not host:port", ErrConfig, cfg.Addr)
	}
	if hasLineBreak(cfg.From.Name) {
		return nil, fmt.Errorf("%w: From.Name has a line break", ErrConfig)
	}
	from, err := bareAddress(cfg.From.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: From.Address: %w", ErrConfig, err)
	}
	cfg.From.Address = from
	if hasLineBreak(cfg.OnCall.Name) {
		return nil, fmt.Errorf("%w: OnCall.Name has a line break", ErrConfig)
	}
	if cfg.OnCall.Address != "" {
		oncall, err := bareAddress(cfg.OnCall.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: OnCall.Address: %w", ErrConfig, err)
		}
		cfg.OnCall.Address = oncall
	}
	if (cfg.Username == "") != cfg.Password.IsZero() {
		return nil, fmt.Errorf("%w: set both Username and Password, or neither", ErrConfig)
	}
	if hasLineBreak(cfg.Username) {
		return nil, fmt.Errorf("%w: Username has a line break", ErrConfig)
	}
	if cfg.Hello == "" {
		cfg.Hello = "localhost"
	}
	if strings.ContainsAny(cfg.Hello, " \t\r\n") {
		return nil, fmt.Errorf("%w: Hello %q is not a host name", ErrConfig, cfg.Hello)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tc := &tls.Config{}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	cfg.TLSConfig = nil // e.tls is the copy in use
	domain := from[strings.LastIndexByte(from, '@')+1:]
	if !isDotAtom(domain) {
		domain = "breach"
	}
	return &Notifier{cfg: cfg, host: host, tls: tc, msgID: domain}, nil
}

// Notify sends msg to msg.Recipient.Email: STARTTLS (see
// Config.AllowPlaintext), AUTH when configured, MAIL, RCPT, DATA.
//
// It honours ctx (and Config.Timeout): dialing stops, and a connection
// in use is cut, when ctx ends; the error then wraps ctx's cause. A message
// that cannot be composed (see Compose), a missing STARTTLS or AUTH, an
// untrusted server certificate and an SMTP 5xx reply (a
// *textproto.Error with Code >= 500, such as 535 for bad credentials or 550
// for an unknown mailbox) are permanent (see incident.Permanent); a 4xx reply and
// network errors are retryable. Once the server has accepted the message,
// a failure to QUIT is ignored, so the notice is not sent twice.
func (e *Notifier) Notify(ctx context.Context, msg notify.Message) error {
	data, err := e.Compose(msg)
	if err != nil {
		return err
	}
	rcpt, _ := bareAddress(msg.Recipient.Email) // checked by Compose
	return e.send(ctx, rcpt, data)
}

// send makes the SMTP transaction that delivers data to rcpt (see Notify).
func (e *Notifier) send(ctx context.Context, rcpt string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return smtpError(ctx, "dial", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// When ctx ends, cut the I/O in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		_ = conn.Close()
		return smtpError(ctx, "greeting", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello(e.cfg.Hello); err != nil {
		return smtpError(ctx, "EHLO", err)
	}
	secure := false
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(e.tls); err != nil {
			return smtpError(ctx, "STARTTLS", err)
		}
		secure = true
	} else if !e.cfg.AllowPlaintext {
		return incident.Permanent(fmt.Errorf("%w (%s), and TLS is required", ErrNoTLS, e.cfg.Addr))
	}
	if e.cfg.Username != "" {
		if !secure {
			return incident.Permanent(fmt.Errorf("%w (%s); refusing to send the password unencrypted", ErrNoTLS, e.cfg.Addr))
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return incident.Permanent(fmt.Errorf("%w (%s)", ErrNoAuth, e.cfg.Addr))
		}
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password.Reveal(), e.host)); err != nil {
			return smtpError(ctx, "AUTH", err)
		}
	}
	if err := c.Mail(e.cfg.From.Address); err != nil {
		return smtpError(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return smtpError(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(ctx, "DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		return smtpError(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil { // reads the server's verdict on the message
		return smtpError(ctx, "end of DATA", err)
	}
	_ = c.Quit()
	return nil
}

// smtpError wraps err from the named step and classifies it.
func smtpError(ctx context.Context, step string, err error) error {
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		// The connection's deadline is ctx's, and may have cut the I/O a
		// moment before ctx's own timer ends it; it will at once.
		<-ctx.Done()
	}
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("email: %s: %w: %w", step, cause, err)
	}
	err = fmt.Errorf("email: %s: %w", step, err)
	var tpErr *textproto.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &tpErr) && tpErr.Code >= 500,
		errors.As(err, &certErr):
		return incident.Permanent(err)
	}
	return err
}

// Compose returns the RFC 5322 message that Notify sends for msg, CRLF line
// endings and all: headers From, To (msg.Recipient's name and address),
// Subject, Date, Message-ID, MIME-Version, Auto-Submitted and the content
// headers. Non-ASCII header text is RFC 2047 encoded, and long headers are
// folded. The body is text/plain; charset=utf-8, quoted-printable, or, when
// msg.HTML is set, multipart/alternative with that part and a text/html one.
//
// The Message-ID is <KEY@DOMAIN>, KEY the idempotency key (or its SHA-256
// when it is not valid there, or random when it is empty) and DOMAIN that of
// the From address.
//
// An error is permanent (see incident.Permanent) and matches ErrRecipient or
// ErrHeader.
func (e *Notifier) Compose(msg notify.Message) ([]byte, error) {
	if hasLineBreak(msg.Recipient.Email) {
		return nil, incident.Permanent(fmt.Errorf("%w: recipient %q's address", ErrHeader, msg.Recipient.ID))
	}
	rcpt, err := bareAddress(msg.Recipient.Email)
	if err != nil {
		return nil, incident.Permanent(fmt.Errorf("%w: recipient %q", err, msg.Recipient.ID))
	}
	for _, h := range []struct{ what, value string }{
		{"subject", msg.Subject}, {"recipient name", msg.Recipient.Name}, {"idempotency key", msg.IdempotencyKey},
	} {
		if hasLineBreak(h.value) {
			return nil, incident.Permanent(fmt.Errorf("%w: the %s", ErrHeader, h.what))
		}
	}

	var b bytes.Buffer
	writeHeader(&b, "From", e.cfg.From.String())
	writeHeader(&b, "To", (&mail.Address{Name: msg.Recipient.Name, Address: rcpt}).String())
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	writeHeader(&b, "Date", e.cfg.Now().Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+messageIDLeft(msg.IdempotencyKey)+"@"+e.msgID+">")
	writeHeader(&b, "MIME-Version", "1.0")
	// RFC 3834: an automatic notice; auto-responders should not answer.
	writeHeader(&b, "Auto-Submitted", "auto-generated")

	if msg.HTML == "" {
		writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
		writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, msg.Text); err != nil {
			return nil, incident.Permanent(fmt.Errorf("email: %w", err))
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	writeHeader(&b, "Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	for _, p := range []struct{ typ, body string }{{"text/plain", msg.Text}, {"text/html", msg.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err == nil {
			err = writeQP(w, p.body)
		}
		if err != nil {
			return nil, incident.Permanent(fmt.Errorf("email: %w", err))
		}
	}
	if err := mw.Close(); err != nil {
		return nil, incident.Permanent(fmt.Errorf("email: %w", err))
	}
	return b.Bytes(), nil
}

func writeQP(w io.Writer, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return err
	}
	return qp.Close()
}

// maxHeaderLine is the longest header line RFC 2047 section 2 allows when
// it holds an encoded-word (RFC 5322 recommends 78 for any line).
const maxHeaderLine = 76

// writeHeader writes "name: value" CRLF, folding the value at its spaces
// (and after the colon, should the first word not fit) so that lines keep to
// maxHeaderLine where a space allows. Unfolding (removing each CRLF) gives
// the value back.
func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	line := len(name) + 1
	for _, word := range strings.Split(value, " ") {
		if word == "" || line+1+len(word) <= maxHeaderLine {
			b.WriteString(" ")
			line++
		} else {
			b.WriteString("\r\n ")
			line = 1
		}
		b.WriteString(word)
		line += len(word)
	}
	b.WriteString("\r\n")
}

// bareAddress returns s if it is one bare address ("user@example.com"),
// trimmed; a display name, angle brackets or a list are refused.
func bareAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrRecipient
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%w: not one bare address", ErrRecipient)
	}
	return s, nil
}

func hasLineBreak(s string) bool { return strings.ContainsAny(s, "\r\n") }

// messageIDLeft returns the part of a Message-ID before the @.
func messageIDLeft(key string) string {
	switch {
	case key == "":
		return "rnd." + strings.ToLower(rand.Text())
	case isDotAtom(key):
		return key
	default:
		sum := sha256.Sum256([]byte(key))
		return "sha256." + hex.EncodeToString(sum[:16])
	}
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text: atext runs
// separated by single dots.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}
