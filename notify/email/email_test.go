package email_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/email"
	"github.com/breachkit/breach/notify/internal/sample"
)

var composedAt = time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600))

func testEmail(t *testing.T, edit ...func(*email.Config)) *email.Notifier {
	t.Helper()
	cfg := email.Config{
		Addr: "smtp.acme.example:587",
		From: mail.Address{Name: "Acme Security", Address: "security@acme.example"},
		Now:  func() time.Time { return composedAt },
	}
	for _, e := range edit {
		e(&cfg)
	}
	e, err := email.New(cfg)
	require.NoError(t, err)
	return e
}

// parsed is a composed message read back with net/mail.
type parsed struct {
	raw    []byte
	header mail.Header
	body   []byte
}

func parseMessage(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	body, err := io.ReadAll(m.Body)
	require.NoError(t, err)
	return parsed{raw: raw, header: m.Header, body: body}
}

func decodeHeader(t *testing.T, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	require.NoError(t, err)
	return s
}

func decodeQP(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(quotedprintable.NewReader(r))
	require.NoError(t, err)
	return string(b)
}

// crlf is s with the line breaks e-mail text has on the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// assertWellFormed checks what every composed message must be: 7-bit,
// CRLF line endings only, header lines within the 76 characters RFC 2047
// allows (none of our values has an unbreakable run that long) and body
// lines within 76.
func assertWellFormed(t *testing.T, raw []byte) {
	t.Helper()
	for i, c := range raw {
		require.Less(t, c, byte(0x80), "byte %d is not 7-bit", i)
		if c == '\n' {
			require.True(t, i > 0 && raw[i-1] == '\r', "bare LF at %d", i)
		}
		if c == '\r' {
			require.True(t, i+1 < len(raw) && raw[i+1] == '\n', "bare CR at %d", i)
		}
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	require.True(t, ok, "no blank line after the header")
	for _, l := range strings.Split(string(head), "\r\n") {
		assert.LessOrEqual(t, len(l), 76, "header line %q", l)
	}
	for _, l := range strings.Split(string(body), "\r\n") {
		assert.LessOrEqual(t, len(l), 76, "body line %q", l)
	}
}

func TestComposeMultipart(t *testing.T) {
	msg := sample.Message()
	raw, err := testEmail(t).Compose(msg)
	require.NoError(t, err)
	assertWellFormed(t, raw)
	m := parseMessage(t, raw)

	from, err := mail.ParseAddress(m.header.Get("From"))
	require.NoError(t, err)
	assert.Equal(t, mail.Address{Name: "Acme Security", Address: "security@acme.example"}, *from)

	assert.Equal(t, "=?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@example.com>", m.header.Get("To"))
	to, err := mail.ParseAddress(m.header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, mail.Address{Name: "Zoë Müller", Address: "zoe@example.com"}, *to)

	assert.Equal(t, "=?utf-8?q?Sicherheitshinweis_f=C3=BCr_Ihr_Konto?=", m.header.Get("Subject"))
	assert.Equal(t, "Sicherheitshinweis für Ihr Konto", decodeHeader(t, m.header.Get("Subject")))

	date, err := m.header.Date()
	require.NoError(t, err)
	assert.True(t, date.Equal(composedAt), "Date %v", date)
	assert.Equal(t, "Sun, 01 Mar 2026 12:30:00 +0100", m.header.Get("Date"))
	assert.Equal(t, "<brk_5f1e0c2d9a7b4e3f8c6d1a2b3c4d5e6f@acme.example>", m.header.Get("Message-ID"))
	assert.Equal(t, "1.0", m.header.Get("MIME-Version"))
	assert.Equal(t, "auto-generated", m.header.Get("Auto-Submitted"))
	assert.Empty(t, m.header.Get("Content-Transfer-Encoding"))

	mediaType, params, err := mime.ParseMediaType(m.header.Get("Content-Type"))
	require.NoError(t, err)
	assert.Equal(t, "multipart/alternative", mediaType)
	require.NotEmpty(t, params["boundary"])
	assert.Equal(t, 1, bytes.Count(raw, []byte("\r\n--"+params["boundary"]+"--")), "one closing boundary")

	mr := multipart.NewReader(bytes.NewReader(m.body), params["boundary"])
	for _, want := range []struct{ typ, body string }{
		{"text/plain; charset=utf-8", crlf(msg.Text)},
		{"text/html; charset=utf-8", msg.HTML},
	} {
		p, err := mr.NextRawPart() // raw: NextPart would decode quoted-printable itself
		require.NoError(t, err)
		assert.Equal(t, want.typ, p.Header.Get("Content-Type"))
		assert.Equal(t, "quoted-printable", p.Header.Get("Content-Transfer-Encoding"))
		assert.Equal(t, want.body, decodeQP(t, p))
	}
	_, err = mr.NextRawPart()
	assert.Equal(t, io.EOF, err)
}

func TestComposePlain(t *testing.T) {
	msg := sample.Message()
	msg.HTML = ""
	raw, err := testEmail(t).Compose(msg)
	require.NoError(t, err)
	assertWellFormed(t, raw)
	m := parseMessage(t, raw)
	assert.Equal(t, "text/plain; charset=utf-8", m.header.Get("Content-Type"))
	assert.Equal(t, "quoted-printable", m.header.Get("Content-Transfer-Encoding"))
	assert.Equal(t, crlf(msg.Text), decodeQP(t, bytes.NewReader(m.body)))
	assert.NotContains(t, string(raw), "multipart")
}

func TestComposeBodyRoundTrips(t *testing.T) {
	for _, text := range []string{
		"",
		"plain ASCII",
		"Grüße aus Köln — “quotes” and emoji 🔐\n",
		".a line starting with a dot\n.\nFrom the start\n",
		"trailing spaces   \nand tabs\t\nequals = signs =3D\n",
		strings.Repeat("a long line without breaks ", 20) + "\n",
		strings.Repeat("ü", 200),
	} {
		msg := sample.Message()
		msg.Text, msg.HTML = text, ""
		raw, err := testEmail(t).Compose(msg)
		require.NoError(t, err)
		assertWellFormed(t, raw)
		assert.Equal(t, crlf(text), decodeQP(t, bytes.NewReader(parseMessage(t, raw).body)), "text %q", text)
	}
}

func TestComposeASCIIHeadersStayReadable(t *testing.T) {
	msg := sample.Message()
	msg.Subject = "Security notice about your account"
	msg.Recipient.Name = `Acme "Ltd"`
	raw, err := testEmail(t).Compose(msg)
	require.NoError(t, err)
	m := parseMessage(t, raw)
	assert.Equal(t, "Security notice about your account", m.header.Get("Subject"))
	assert.Equal(t, `"Acme \"Ltd\"" <zoe@example.com>`, m.header.Get("To"))
	to, err := mail.ParseAddress(m.header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, `Acme "Ltd"`, to.Name)
}

func TestComposeFoldsLongHeaders(t *testing.T) {
	for _, subject := range []string{
		strings.Repeat("Sicherheitshinweis für Ihr Konto ", 8),
		strings.Repeat("Security notice about your account ", 8),
	} {
		msg := sample.Message()
		msg.Subject = strings.TrimSpace(subject)
		msg.Recipient.Name = strings.Repeat("Zoë Müller ", 10)
		raw, err := testEmail(t).Compose(msg)
		require.NoError(t, err)
		assertWellFormed(t, raw)
		assert.Contains(t, string(raw), "Subject:")
		m := parseMessage(t, raw)
		assert.Equal(t, msg.Subject, decodeHeader(t, m.header.Get("Subject")))
		to, err := mail.ParseAddress(m.header.Get("To"))
		require.NoError(t, err)
		assert.Equal(t, msg.Recipient.Name, to.Name)
	}
}

func TestComposeHeaderInjection(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*notify.Message)
	}{
		{"subject CRLF", func(m *notify.Message) { m.Subject = "Notice\r\nBcc: victim@example.com" }},
		{"subject LF", func(m *notify.Message) { m.Subject = "Notice\nBcc: victim@example.com" }},
		{"subject CR", func(m *notify.Message) { m.Subject = "Notice\rBcc: victim@example.com" }},
		{"name", func(m *notify.Message) { m.Recipient.Name = "Zoë\r\nBcc: victim@example.com" }},
		{"address", func(m *notify.Message) { m.Recipient.Email = "zoe@example.com\r\nBcc: victim@example.com" }},
		{"idempotency key", func(m *notify.Message) { m.IdempotencyKey = "brk_1\r\nBcc: victim@example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := sample.Message()
			tc.edit(&msg)
			raw, err := testEmail(t).Compose(msg)
			assert.Nil(t, raw)
			assert.ErrorIs(t, err, email.ErrHeader)
			assert.True(t, incident.IsPermanent(err))
			assertPrefixOnce(t, err)
			// Notify refuses before connecting (nothing listens at Addr).
			err = testEmail(t).Notify(context.Background(), msg)
			assert.ErrorIs(t, err, email.ErrHeader)
		})
	}
}

func TestComposeRecipient(t *testing.T) {
	for _, tc := range []struct{ name, email string }{
		{"none", ""},
		{"blank", "   "},
		{"not an address", "zoe at example.com"},
		{"a list", "zoe@example.com, eve@example.com"},
		{"with a name", "Zoë <zoe@example.com>"},
		{"in brackets", "<zoe@example.com>"},
		{"no domain", "zoe@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := sample.Message()
			msg.Recipient.Email = tc.email
			_, err := testEmail(t).Compose(msg)
			require.ErrorIs(t, err, email.ErrRecipient)
			assert.True(t, incident.IsPermanent(err))
			assert.ErrorContains(t, err, `recipient "cust-42"`)
			assertPrefixOnce(t, err)
		})
	}
	msg := sample.Message()
	msg.Recipient.Email = "  zoe@example.com "
	raw, err := testEmail(t).Compose(msg)
	require.NoError(t, err)
	assert.Equal(t, "=?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@example.com>", parseMessage(t, raw).header.Get("To"))
}

func TestComposeMessageID(t *testing.T) {
	e := testEmail(t)
	id := func(key string) string {
		msg := sample.Message()
		msg.IdempotencyKey = key
		raw, err := e.Compose(msg)
		require.NoError(t, err)
		return parseMessage(t, raw).header.Get("Message-ID")
	}
	assert.Equal(t, id("brk_1"), id("brk_1"), "a re-send has the same Message-ID")
	assert.NotEqual(t, id("brk_1"), id("brk_2"))
	assert.Regexp(t, `^<sha256\.[0-9a-f]{32}@acme\.example>$`, id("inc 7/cust:42"))
	assert.Equal(t, id("inc 7/cust:42"), id("inc 7/cust:42"))
	assert.Regexp(t, `^<rnd\.[a-z2-7]{26}@acme\.example>$`, id(""))
	assert.NotEqual(t, id(""), id(""))

	literal := testEmail(t, func(c *email.Config) { c.From.Address = "security@[192.0.2.1]" })
	raw, err := literal.Compose(sample.Message())
	require.NoError(t, err)
	assert.Equal(t, "<brk_5f1e0c2d9a7b4e3f8c6d1a2b3c4d5e6f@breach>", parseMessage(t, raw).header.Get("Message-ID"))
}

func TestComposeFromName(t *testing.T) {
	e := testEmail(t, func(c *email.Config) { c.From.Name = "Sécurité Acme" })
	raw, err := e.Compose(sample.Message())
	require.NoError(t, err)
	assertWellFormed(t, raw)
	from, err := mail.ParseAddress(parseMessage(t, raw).header.Get("From"))
	require.NoError(t, err)
	assert.Equal(t, "Sécurité Acme", from.Name)
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*email.Config)
	}{
		{"no Addr", func(c *email.Config) { c.Addr = "" }},
		{"Addr without port", func(c *email.Config) { c.Addr = "smtp.acme.example" }},
		{"Addr without host", func(c *email.Config) { c.Addr = ":587" }},
		{"no From", func(c *email.Config) { c.From = mail.Address{} }},
		{"From with a name inside", func(c *email.Config) { c.From.Address = "Acme <security@acme.example>" }},
		{"From not an address", func(c *email.Config) { c.From.Address = "security" }},
		{"From name with a line break", func(c *email.Config) { c.From.Name = "Acme\r\nBcc: x@y.example" }},
		{"Username without Password", func(c *email.Config) { c.Username = "acme" }},
		{"Password without Username", func(c *email.Config) { c.Password = incident.NewSecret("hunter2") }},
		{"Hello with a space", func(c *email.Config) { c.Hello = "my host" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := email.Config{Addr: "smtp.acme.example:587", From: mail.Address{Address: "security@acme.example"}}
			tc.edit(&cfg)
			e, err := email.New(cfg)
			assert.Nil(t, e)
			require.ErrorIs(t, err, email.ErrConfig)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestDialErrorIsRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	e := testEmail(t, func(c *email.Config) { c.Addr = addr })
	err = e.Notify(context.Background(), sample.Message())
	require.ErrorContains(t, err, "email: dial")
	assert.False(t, incident.IsPermanent(err))
}

// silentServer accepts connections and never says anything, like a hung
// server; accepted is told of each connection.
func silentServer(t *testing.T, accepted func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			accepted()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestHonoursContext(t *testing.T) {
	t.Run("cancelled while waiting for the greeting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addr := silentServer(t, cancel)
		e := testEmail(t, func(c *email.Config) { c.Addr = addr })
		err := e.Notify(ctx, sample.Message())
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, incident.IsPermanent(err))
	})
	t.Run("Timeout", func(t *testing.T) {
		addr := silentServer(t, func() {})
		e := testEmail(t, func(c *email.Config) { c.Addr = addr; c.Timeout = 50 * time.Millisecond })
		err := e.Notify(context.Background(), sample.Message())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "greeting")
		assert.False(t, incident.IsPermanent(err))
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		addr := silentServer(t, func() { t.Error("connected") })
		e := testEmail(t, func(c *email.Config) { c.Addr = addr })
		require.ErrorIs(t, e.Notify(ctx, sample.Message()), context.Canceled)
	})
}

// assertPrefixOnce checks that err names the package once: a sentinel
// wrapped with a second "email: " reads "email: email: …".
func assertPrefixOnce(t *testing.T, err error) {
	t.Helper()
	assert.Equal(t, 1, strings.Count(err.Error(), "email: "), "%q", err)
}

// The e-mail notifier does not retry inside Notify either: a server that
// answers every connection "421 busy" sees exactly as many connections as
// the delivery policy has attempts, and the error stays retryable.
func TestOneTransactionPerAttempt(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			_, _ = io.WriteString(c, "421 4.3.2 busy, try again later\r\n")
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	e := testEmail(t, func(c *email.Config) { c.Addr = l.Addr().String() })

	out := retry.Do(context.Background(), incident.Policy{Attempts: 3, Backoff: time.Millisecond}, nil,
		func(ctx context.Context, attempt int) error {
			m := sample.Message()
			m.Attempt = attempt
			return e.Notify(ctx, m)
		})

	require.Error(t, out.Err)
	assert.Equal(t, 3, out.Attempts)
	assert.Equal(t, int32(3), conns.Load(), "one connection per attempt")
	assert.False(t, incident.IsPermanent(out.Err))
	var tpErr *textproto.Error
	require.ErrorAs(t, out.Err, &tpErr)
	assert.Equal(t, 421, tpErr.Code)
}
