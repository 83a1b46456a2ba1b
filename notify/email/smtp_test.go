package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/email"
	"github.com/breachkit/breach/notify/internal/sample"
)

// The e-mail notifier is tested against a real SMTP server: aiosmtpd, run
// by Python (Debian's package python3-aiosmtpd), configured like a
// submission server: STARTTLS required, AUTH only after TLS, AUTH required.

const (
	smtpUser     = "breach"
	smtpPassword = "correct horse battery staple"
)

// smtpServerScript is the server. Arguments: port, output directory, TLS
// certificate and key files (both "" for a server without TLS and without
// required AUTH), user, password. It writes each accepted message to
// msg-N.eml and its envelope to msg-N.json, before answering 250, and
// prints READY once it accepts connections.
const smtpServerScript = `
import json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, outdir, certfile, keyfile, user, password = sys.argv[1:7]
user, password = user.encode(), password.encode()

class Handler:
    count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("later"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        base = os.path.join(outdir, "msg-%d" % Handler.count)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK: queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user and auth_data.password == password)
    return AuthResult(success=ok, handled=False)

kwargs = dict(hostname="127.0.0.1", port=int(port), server_hostname="smtp.test",
              authenticator=authenticator, auth_require_tls=True)
if certfile:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    kwargs.update(tls_context=context, require_starttls=True, auth_required=True)
controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)
sys.stdin.read()  # until the test ends
controller.stop()
`

// aiosmtpdPython returns a Python interpreter that can import aiosmtpd,
// trying python3 on PATH and then Debian's /usr/bin/python3 (PATH may lead
// to another Python, such as pyenv's, without Debian's packages). Without
// one the test is skipped, or fails when CI is set: CI installs it.
func aiosmtpdPython(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			return p
		}
	}
	const why = "no python3 with aiosmtpd (tried %s): apt-get install python3-aiosmtpd"
	if os.Getenv("CI") != "" {
		t.Fatalf(why, strings.Join(candidates, ", "))
	}
	t.Skipf(why, strings.Join(candidates, ", "))
	return ""
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key as PEM into
// dir and returns their paths and a pool that trusts the certificate.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "breach test SMTP server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// readyWriter collects a process's output and closes ready when a line
// READY has been written.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte("READY\n")) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// smtpServer is a running aiosmtpd.
type smtpServer struct {
	addr  string
	dir   string         // where messages arrive
	roots *x509.CertPool // trusts its certificate; nil without TLS
	mu    sync.Mutex     // guards log while the server runs
	log   bytes.Buffer   // its stderr, for failures
}

// startSMTPServer starts aiosmtpd on a free loopback port, with STARTTLS
// (and required AUTH) when withTLS, and stops it when the test ends.
func startSMTPServer(t *testing.T, withTLS bool) *smtpServer {
	t.Helper()
	python := aiosmtpdPython(t)
	dir := t.TempDir()
	s := &smtpServer{dir: filepath.Join(dir, "mail")}
	require.NoError(t, os.Mkdir(s.dir, 0o700))
	var certFile, keyFile string
	if withTLS {
		certFile, keyFile, s.roots = selfSignedCert(t, dir)
	}
	script := filepath.Join(dir, "smtpd.py")
	require.NoError(t, os.WriteFile(script, []byte(smtpServerScript), 0o600))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	cmd := exec.Command(python, script, strconv.Itoa(port), s.dir, certFile, keyFile, smtpUser, smtpPassword)
	stdin, err := cmd.StdinPipe() // held open until cleanup
	require.NoError(t, err)
	out := &readyWriter{ready: make(chan struct{})}
	cmd.Stdout = out
	cmd.Stderr = lockedWriter{&s.mu, &s.log}
	require.NoError(t, cmd.Start())
	exit := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exit)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exit
		if t.Failed() {
			t.Logf("aiosmtpd stderr:\n%s", s.stderr())
		}
	})

	timeout := time.NewTimer(30 * time.Second) // a bound, not a synchronisation
	defer timeout.Stop()
	select {
	case <-out.ready:
	case <-exit:
		t.Fatalf("aiosmtpd exited before it was ready (%v):\n%s", waitErr, s.stderr())
	case <-timeout.C:
		t.Fatalf("aiosmtpd not ready after 30s:\n%s", s.stderr())
	}
	// READY comes after the Controller has started; check the port anyway,
	// with a bounded number of tries.
	for try := 0; ; try++ {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		require.Less(t, try, 50, "aiosmtpd does not accept connections: %v", err)
		time.Sleep(20 * time.Millisecond) // polling a port of another process
	}
	return s
}

func (s *smtpServer) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// received is a message the server accepted.
type received struct {
	MailFrom      string   `json:"mail_from"`
	RcptTos       []string `json:"rcpt_tos"`
	TLS           bool     `json:"tls"`
	Authenticated bool     `json:"authenticated"`
	Content       []byte   `json:"-"`
}

// messages returns what the server has accepted, in order. The server writes
// each before it answers the end of DATA, so a message that Notify reported
// sent is there.
func (s *smtpServer) messages(t *testing.T) []received {
	t.Helper()
	var out []received
	for n := 1; ; n++ {
		base := filepath.Join(s.dir, fmt.Sprintf("msg-%d", n))
		meta, err := os.ReadFile(base + ".json")
		if errors.Is(err, os.ErrNotExist) {
			return out
		}
		require.NoError(t, err)
		var r received
		require.NoError(t, json.Unmarshal(meta, &r))
		r.Content, err = os.ReadFile(base + ".eml")
		require.NoError(t, err)
		out = append(out, r)
	}
}

func (s *smtpServer) email(t *testing.T, edit ...func(*email.Config)) *email.Notifier {
	t.Helper()
	cfg := email.Config{
		Addr:      s.addr,
		From:      mail.Address{Name: "Acme Sicherheit", Address: "security@acme.example"},
		Username:  smtpUser,
		Password:  incident.NewSecret(smtpPassword),
		TLSConfig: &tls.Config{RootCAs: s.roots},
		Hello:     "breach.test",
	}
	for _, e := range edit {
		e(&cfg)
	}
	e, err := email.New(cfg)
	require.NoError(t, err)
	return e
}

func smtpContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSMTPDelivers(t *testing.T) {
	srv := startSMTPServer(t, true)
	msg := sample.Message()
	require.NoError(t, srv.email(t).Notify(smtpContext(t), msg))

	got := srv.messages(t)
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, "security@acme.example", r.MailFrom)
	assert.Equal(t, []string{"zoe@example.com"}, r.RcptTos)
	assert.True(t, r.TLS, "sent after STARTTLS")
	assert.True(t, r.Authenticated, "sent after AUTH")

	m := parseMessage(t, r.Content)
	from, err := mail.ParseAddress(m.header.Get("From"))
	require.NoError(t, err)
	assert.Equal(t, mail.Address{Name: "Acme Sicherheit", Address: "security@acme.example"}, *from)
	to, err := mail.ParseAddress(m.header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, mail.Address{Name: "Zoë Müller", Address: "zoe@example.com"}, *to)
	assert.Equal(t, "=?utf-8?q?Sicherheitshinweis_f=C3=BCr_Ihr_Konto?=", m.header.Get("Subject"))
	assert.Equal(t, "Sicherheitshinweis für Ihr Konto", decodeHeader(t, m.header.Get("Subject")))
	assert.Equal(t, "<"+msg.IdempotencyKey+"@acme.example>", m.header.Get("Message-ID"))
	_, err = m.header.Date()
	assert.NoError(t, err)

	mediaType, params, err := mime.ParseMediaType(m.header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(bytes.NewReader(m.body), params["boundary"])
	for _, want := range []struct{ typ, body string }{
		{"text/plain; charset=utf-8", crlf(msg.Text)},
		{"text/html; charset=utf-8", msg.HTML},
	} {
		p, err := mr.NextPart() // decodes quoted-printable
		require.NoError(t, err)
		assert.Equal(t, want.typ, p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p)
		require.NoError(t, err)
		assert.Equal(t, want.body, string(body))
	}
	_, err = mr.NextPart()
	assert.Equal(t, io.EOF, err)
}

func TestSMTPSendsAgainWithTheSameMessageID(t *testing.T) {
	srv := startSMTPServer(t, true)
	e := srv.email(t)
	msg := sample.Message()
	msg.HTML = ""
	require.NoError(t, e.Notify(smtpContext(t), msg))
	msg.Attempt = 2
	require.NoError(t, e.Notify(smtpContext(t), msg))
	got := srv.messages(t)
	require.Len(t, got, 2)
	assert.Equal(t, parseMessage(t, got[0].Content).header.Get("Message-ID"), parseMessage(t, got[1].Content).header.Get("Message-ID"))
	assert.Equal(t, "text/plain; charset=utf-8", parseMessage(t, got[1].Content).header.Get("Content-Type"))
}

func TestSMTPRefusals(t *testing.T) {
	srv := startSMTPServer(t, true)
	for _, tc := range []struct {
		name      string
		edit      func(*email.Config)
		recipient string
		permanent bool
		code      int // the SMTP reply, when the server refused
		check     func(t *testing.T, err error)
	}{
		{name: "wrong password", permanent: true, code: 535, edit: func(c *email.Config) {
			c.Password = incident.NewSecret("wrong")
		}},
		{name: "unknown user", permanent: true, code: 535, edit: func(c *email.Config) { c.Username = "mallory" }},
		{name: "no credentials where AUTH is required", permanent: true, code: 530, edit: func(c *email.Config) {
			c.Username, c.Password = "", incident.Secret{}
		}},
		{name: "mailbox unknown", recipient: "reject@example.com", permanent: true, code: 550},
		{name: "mailbox busy", recipient: "later@example.com", permanent: false, code: 451},
		{name: "untrusted certificate", permanent: true, edit: func(c *email.Config) { c.TLSConfig = nil }, check: func(t *testing.T, err error) {
			var cv *tls.CertificateVerificationError
			assert.ErrorAs(t, err, &cv)
			assert.ErrorContains(t, err, "STARTTLS")
		}},
		{name: "certificate for another name", permanent: true, edit: func(c *email.Config) {
			c.TLSConfig = &tls.Config{RootCAs: srv.roots, ServerName: "smtp.acme.example"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var edits []func(*email.Config)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			msg := sample.Message()
			if tc.recipient != "" {
				msg.Recipient.Email = tc.recipient
			}
			err := srv.email(t, edits...).Notify(smtpContext(t), msg)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, incident.IsPermanent(err), "permanent: %v", err)
			if tc.code != 0 {
				var tp *textproto.Error
				require.ErrorAs(t, err, &tp)
				assert.Equal(t, tc.code, tp.Code)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			assert.NotContains(t, err.Error(), smtpPassword)
		})
	}
	assert.Empty(t, srv.messages(t), "nothing was accepted")
}

func TestSMTPWithoutSTARTTLS(t *testing.T) {
	srv := startSMTPServer(t, false) // accepts anything, in clear text
	msg := sample.Message()

	t.Run("TLS required: refused", func(t *testing.T) {
		err := srv.email(t, func(c *email.Config) { c.Username, c.Password = "", incident.Secret{} }).Notify(smtpContext(t), msg)
		require.ErrorIs(t, err, email.ErrNoTLS)
		assert.True(t, incident.IsPermanent(err))
		assertPrefixOnce(t, err)
		assert.Empty(t, srv.messages(t))
	})
	t.Run("plaintext allowed, but never the password", func(t *testing.T) {
		err := srv.email(t, func(c *email.Config) { c.AllowPlaintext = true }).Notify(smtpContext(t), msg)
		require.ErrorIs(t, err, email.ErrNoTLS)
		assert.ErrorContains(t, err, "refusing to send the password unencrypted")
		assertPrefixOnce(t, err)
		assert.True(t, incident.IsPermanent(err))
		assert.Empty(t, srv.messages(t))
	})
	t.Run("plaintext allowed without credentials", func(t *testing.T) {
		e := srv.email(t, func(c *email.Config) {
			c.AllowPlaintext = true
			c.Username, c.Password = "", incident.Secret{}
		})
		require.NoError(t, e.Notify(smtpContext(t), msg))
		got := srv.messages(t)
		require.Len(t, got, 1)
		assert.False(t, got[0].TLS)
		assert.False(t, got[0].Authenticated)
		assert.Equal(t, "Sicherheitshinweis für Ihr Konto", decodeHeader(t, parseMessage(t, got[0].Content).header.Get("Subject")))
	})
}

func TestSMTPConcurrentSends(t *testing.T) {
	srv := startSMTPServer(t, true)
	e := srv.email(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			msg := sample.Message()
			msg.IdempotencyKey = fmt.Sprintf("brk_%d", i)
			errs[i] = e.Notify(smtpContext(t), msg)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	var ids []string
	for _, r := range srv.messages(t) {
		ids = append(ids, parseMessage(t, r.Content).header.Get("Message-ID"))
	}
	assert.Len(t, ids, len(errs))
	for i := range errs {
		assert.Contains(t, ids, fmt.Sprintf("<brk_%d@acme.example>", i))
	}
}

func TestSMTPPages(t *testing.T) {
	srv := startSMTPServer(t, true)
	e := srv.email(t, func(c *email.Config) { c.OnCall = mail.Address{Name: "SecOps", Address: "oncall@acme.example"} })
	pg := notify.Page{
		IdempotencyKey: "pg_inc-7_1_0",
		AlertKey:       "inc-7/approval",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-7",
		Severity:       incident.SeverityCritical,
		Title:          "Incident inc-7 needs a person",
		Needed:         "approve or deny disable-key",
	}
	require.NoError(t, e.Page(smtpContext(t), pg))

	got := srv.messages(t)
	require.Len(t, got, 1)
	assert.Equal(t, "security@acme.example", got[0].MailFrom)
	assert.Equal(t, []string{"oncall@acme.example"}, got[0].RcptTos)
	assert.True(t, got[0].TLS, "sent after STARTTLS")
	assert.True(t, got[0].Authenticated, "sent after AUTH")
	m := parseMessage(t, got[0].Content)
	assert.Equal(t, "Incident inc-7 needs a person", decodeHeader(t, m.header.Get("Subject")))
	assert.Equal(t, "<pg_inc-7_1_0@acme.example>", m.header.Get("Message-ID"))
	assert.Contains(t, decodeQP(t, bytes.NewReader(m.body)), "Needed: approve or deny disable-key\r\n")
}
