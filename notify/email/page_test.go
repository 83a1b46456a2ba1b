package email_test

import (
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/email"
)

var oncall = mail.Address{Name: "SecOps on call", Address: "oncall@acme.example"}

func withOnCall(c *email.Config) { c.OnCall = oncall }

func samplePage() notify.Page {
	return notify.Page{
		IdempotencyKey: "pg_inc-7_2_1",
		AlertKey:       "inc-7/approval/disable-key",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-7",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityHigh,
		Subject:        "key_123",
		Title:          "Incident inc-7 (api_key_leak, high) needs a person",
		Reason:         "containment action disable-key needs approval",
		Needed:         "approve or deny containment action disable-key",
		Deadline:       time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
		Link:           "https://console.acme.example/incidents/inc-7",
		Level:          2,
		Repeat:         1,
		Responder:      "secops-primary",
		Attempt:        3,
	}
}

func TestComposePage(t *testing.T) {
	raw, err := testEmail(t, withOnCall).ComposePage(samplePage())
	require.NoError(t, err)
	assertWellFormed(t, raw)
	m := parseMessage(t, raw)

	to, err := mail.ParseAddress(m.header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, oncall, *to)
	assert.Equal(t, "Incident inc-7 (api_key_leak, high) needs a person", decodeHeader(t, m.header.Get("Subject")))
	assert.Equal(t, "<pg_inc-7_2_1@acme.example>", m.header.Get("Message-ID"))
	assert.Equal(t, "<alert.inc-7/approval/disable-key@acme.example>", m.header.Get("References"))
	assert.Equal(t, "auto-generated", m.header.Get("Auto-Submitted"))
	assert.Equal(t, "text/plain; charset=utf-8", m.header.Get("Content-Type"))
	assert.Equal(t, "quoted-printable", m.header.Get("Content-Transfer-Encoding"))
	assert.Equal(t, crlf(`Incident inc-7 (api_key_leak, high) needs a person

Needed: approve or deny containment action disable-key
Why: containment action disable-key needs approval
Deadline: 2026-03-01 12:00 UTC
Incident: inc-7 (api_key_leak, high)
Subject: key_123
Escalation: level 2, repeat 1, responder secops-primary
Link: https://console.acme.example/incidents/inc-7

Alert: inc-7/approval/disable-key
Page: pg_inc-7_2_1, attempt 3
`), decodeQP(t, strings.NewReader(string(m.body))))
}

func TestComposePageActions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*notify.Page)
		subject string
		body    string
	}{
		{"acknowledge", func(p *notify.Page) { p.Action = notify.PageAcknowledge },
			"Acknowledged: Incident inc-7 (api_key_leak, high) needs a person",
			"Incident inc-7 (api_key_leak, high) needs a person\n\nA person took the alert; escalation stops.\n\n"},
		{"resolve", func(p *notify.Page) { p.Action = notify.PageResolve },
			"Resolved: Incident inc-7 (api_key_leak, high) needs a person",
			"Incident inc-7 (api_key_leak, high) needs a person\n\nNobody is needed any more.\n\n"},
		{"resolve without a title", func(p *notify.Page) { p.Action, p.Title = notify.PageResolve, "" },
			"Resolved: incident inc-7", "incident inc-7\n\nNobody is needed any more.\n\n"},
		{"trigger without a title", func(p *notify.Page) { p.Title = "" },
			"Incident inc-7 needs a person", "Incident inc-7 needs a person\n\nNeeded: "},
		{"a title with line breaks", func(p *notify.Page) { p.Title = "Incident inc-7\r\nBcc: everyone@acme.example\n needs  a person" },
			"Incident inc-7 Bcc: everyone@acme.example needs a person", "Incident inc-7 Bcc: everyone@acme.example needs a person\n\n"},
		{"non-ASCII", func(p *notify.Page) { p.Title = "Vorfall inc-7 braucht eine Person für die Freigabe" },
			"Vorfall inc-7 braucht eine Person für die Freigabe", "Vorfall inc-7 braucht eine Person für die Freigabe\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := samplePage()
			tc.edit(&pg)
			raw, err := testEmail(t, withOnCall).ComposePage(pg)
			require.NoError(t, err)
			assertWellFormed(t, raw)
			m := parseMessage(t, raw)
			assert.Equal(t, tc.subject, decodeHeader(t, m.header.Get("Subject")))
			assert.Empty(t, m.header.Get("Bcc"), "no header injection")
			assert.True(t, strings.HasPrefix(decodeQP(t, strings.NewReader(string(m.body))), crlf(tc.body)))
		})
	}
}

// The pages of one alert thread together; a retried page keeps its
// Message-ID.
func TestComposePageIDs(t *testing.T) {
	e := testEmail(t, withOnCall)
	ids := func(edit func(*notify.Page)) (messageID, references string) {
		pg := samplePage()
		edit(&pg)
		raw, err := e.ComposePage(pg)
		require.NoError(t, err)
		m := parseMessage(t, raw)
		return m.header.Get("Message-ID"), m.header.Get("References")
	}
	trigger, alert := ids(func(*notify.Page) {})
	retried, _ := ids(func(p *notify.Page) { p.Attempt = 4 })
	resolved, resolveAlert := ids(func(p *notify.Page) { p.IdempotencyKey, p.Action = "pg_inc-7_resolve", notify.PageResolve })
	_, other := ids(func(p *notify.Page) { p.AlertKey = "inc-7/notify-customers" })
	assert.Equal(t, trigger, retried)
	assert.NotEqual(t, trigger, resolved)
	assert.Equal(t, alert, resolveAlert)
	assert.NotEqual(t, alert, other)
	_, hashed := ids(func(p *notify.Page) { p.AlertKey = "inc 7: approval" })
	assert.Regexp(t, `^<sha256\.[0-9a-f]{32}@acme\.example>$`, hashed, "not a dot-atom")
}

func TestComposePageRefuses(t *testing.T) {
	_, err := testEmail(t).ComposePage(samplePage())
	require.ErrorIs(t, err, email.ErrConfig, "no OnCall")
	assert.True(t, incident.IsPermanent(err))
	assertPrefixOnce(t, err)

	for _, edit := range []func(*notify.Page){
		func(p *notify.Page) { p.AlertKey = "" },
		func(p *notify.Page) { p.IdempotencyKey = "" },
		func(p *notify.Page) { p.Action = "snooze" },
	} {
		pg := samplePage()
		edit(&pg)
		_, err := testEmail(t, withOnCall).ComposePage(pg)
		require.ErrorIs(t, err, notify.ErrInvalidPage)
		assert.True(t, incident.IsPermanent(err))
	}
}

func TestPageRefusesWithoutConnecting(t *testing.T) {
	addr := silentServer(t, func() { t.Error("connected") })
	err := testEmail(t, func(c *email.Config) { c.Addr = addr }).Page(context.Background(), samplePage())
	require.ErrorIs(t, err, email.ErrConfig)
	assert.True(t, incident.IsPermanent(err))
}

func TestPageHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := silentServer(t, cancel)
	e := testEmail(t, withOnCall, func(c *email.Config) { c.Addr = addr })
	err := e.Page(ctx, samplePage())
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, incident.IsPermanent(err))
}

func TestNewOnCallErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oncall mail.Address
	}{
		{"not an address", mail.Address{Address: "oncall"}},
		{"a name inside", mail.Address{Address: "On call <oncall@acme.example>"}},
		{"a list", mail.Address{Address: "a@acme.example, b@acme.example"}},
		{"name with a line break", mail.Address{Name: "On call\r\nBcc: x@y.example", Address: "oncall@acme.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := email.New(email.Config{Addr: "smtp.acme.example:587", From: mail.Address{Address: "security@acme.example"}, OnCall: tc.oncall})
			require.ErrorIs(t, err, email.ErrConfig)
			assert.ErrorContains(t, err, "OnCall")
		})
	}
}
