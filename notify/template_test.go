package notify_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// apiKeyNotice is the notice for a leaked API key, as the orchestrator
// would fill it.
func apiKeyNotice() notify.Notice {
	return notify.Notice{
		IncidentID:  "inc_7f3a9c",
		Kind:        "api_key_leak",
		Severity:    incident.SeverityHigh,
		Customer:    incident.Customer{ID: "cust-42", Name: "Acme Ltd", Email: "security@acme.test"},
		Summary:     "An API key for your account was published in a public code repository.",
		DetectedAt:  time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC),
		ContainedAt: time.Date(2025, 3, 4, 9, 42, 0, 0, time.UTC),
		Impact: incident.Impact{
			Customers: []incident.Customer{{ID: "cust-42", Name: "Acme Ltd"}},
			Data:      []incident.DataCategory{incident.DataAPIAccess, incident.DataCampaignReports},
			Summary:   "Anyone holding the key could have read your campaign reports through our API.",
		},
		Actions:         []string{"disabled the compromised API key"},
		Recommendations: []string{"Generate a new API key in your dashboard"},
		Sender:          "The Example Ads security team",
		Contact:         "security@example.test",
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	assert.Equal(t, string(want), got, "%s differs; run go test -update and review the diff", path)
}

func TestDefaultTemplateGolden(t *testing.T) {
	r, err := notify.DefaultTemplate().Render(apiKeyNotice())
	require.NoError(t, err)

	assert.Equal(t, "Security notice about your account, Acme Ltd", r.Subject)
	golden(t, "notice.txt", r.Text)
	golden(t, "notice.html", r.HTML)
}

func TestDefaultTemplateVariants(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*notify.Notice)
		subject     string
		contains    []string // in both Text and HTML
		notContains []string // in neither
		htmlHas     []string
	}{
		{
			name:        "no customer name",
			edit:        func(n *notify.Notice) { n.Customer.Name = "" },
			subject:     "Security notice about your account",
			contains:    []string{"Dear customer,"},
			notContains: []string{"Dear ,", "Acme"},
		},
		{
			name:        "no recommendations",
			edit:        func(n *notify.Notice) { n.Recommendations = nil },
			contains:    []string{"What we have done", "For more information"},
			notContains: []string{"What you should do", "Generate a new API key"},
		},
		{
			name:        "no actions",
			edit:        func(n *notify.Notice) { n.Actions = nil },
			contains:    []string{"What you should do"},
			notContains: []string{"What we have done"},
		},
		{
			name:        "not contained",
			edit:        func(n *notify.Notice) { n.ContainedAt = time.Time{} },
			contains:    []string{"We detected it on 4 March 2025 at 09:30 UTC."},
			notContains: []string{"We contained it"},
		},
		{
			name:        "no detection time",
			edit:        func(n *notify.Notice) { n.DetectedAt, n.ContainedAt = time.Time{}, time.Time{} },
			notContains: []string{"0001", "We detected it on"},
		},
		{
			name:        "contained, detection time unknown",
			edit:        func(n *notify.Notice) { n.DetectedAt = time.Time{} },
			contains:    []string{"We contained it on 4 March 2025 at 09:42 UTC."},
			notContains: []string{"0001", "We detected it on"},
		},
		{
			name:        "times shown in UTC",
			edit:        func(n *notify.Notice) { n.DetectedAt = n.DetectedAt.In(time.FixedZone("CET", 3600)) },
			contains:    []string{"We detected it on 4 March 2025 at 09:30 UTC."},
			notContains: []string{"10:30"},
		},
		{
			name:     "no summary, contact or sender",
			edit:     func(n *notify.Notice) { n.Summary, n.Contact, n.Sender = "", "", "" },
			contains: []string{"We detected a security incident involving your account.", "reply to this message and quote reference inc_7f3a9c", "The security team"},
		},
		{
			name:        "nothing known about the impact",
			edit:        func(n *notify.Notice) { n.Impact = incident.Impact{} },
			contains:    []string{"We are still assessing which information was involved."},
			notContains: []string{"<ul></ul>", "API access"},
		},
		{
			name:    "HTML escapes the fields",
			edit:    func(n *notify.Notice) { n.Summary = `<script>alert("x")</script>` },
			htmlHas: []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"},
		},
		{
			name:    "subject is folded to one line",
			edit:    func(n *notify.Notice) { n.Customer.Name = "Acme\nLtd  \r\n Inc" },
			subject: "Security notice about your account, Acme Ltd Inc",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := apiKeyNotice()
			tt.edit(&n)

			r, err := notify.DefaultTemplate().Render(n)

			require.NoError(t, err)
			assert.NotContains(t, r.Subject, "\n")
			if tt.subject != "" {
				assert.Equal(t, tt.subject, r.Subject)
			}
			for _, s := range tt.contains {
				assert.Contains(t, r.Text, s, "text")
				assert.Contains(t, r.HTML, s, "html")
			}
			for _, s := range tt.notContains {
				assert.NotContains(t, r.Text, s, "text")
				assert.NotContains(t, r.HTML, s, "html")
			}
			for _, s := range tt.htmlHas {
				assert.Contains(t, r.HTML, s)
			}
			assert.NotContains(t, r.HTML, "<script>")
		})
	}
}

func TestRenderCustomTemplate(t *testing.T) {
	tmpl, err := notify.NewTemplate(
		"[{{.Severity}}]\n{{.Kind}}\t{{.IncidentID}}",
		"Please: {{join .Recommendations \", \"}}.\nData: {{join .DataDescribed \"; \"}}",
		"",
	)
	require.NoError(t, err)
	n := apiKeyNotice()
	n.Recommendations = append(n.Recommendations, "Review recent API activity")

	r, err := tmpl.Render(n)

	require.NoError(t, err)
	assert.Equal(t, "[high] api_key_leak inc_7f3a9c", r.Subject)
	assert.Equal(t, "Please: Generate a new API key in your dashboard, Review recent API activity.\nData: API access; campaign reports", r.Text)
	assert.Empty(t, r.HTML, "no HTML part without an HTML template")
}

func TestRenderCustomHTMLUsesJoin(t *testing.T) {
	tmpl, err := notify.NewTemplate("s", "t", `<p>{{join .Actions " and "}}</p>`)
	require.NoError(t, err)
	n := apiKeyNotice()
	n.Actions = []string{"disabled <the> key", "logged everyone out"}

	r, err := tmpl.Render(n)

	require.NoError(t, err)
	assert.Equal(t, "<p>disabled &lt;the&gt; key and logged everyone out</p>", r.HTML)
}

func TestNewTemplateErrors(t *testing.T) {
	tests := []struct {
		name                string
		subject, text, html string
	}{
		{"empty subject", "", "text", ""},
		{"blank subject", " \n\t", "text", ""},
		{"empty text", "subject", "", "<p>x</p>"},
		{"subject parse error", "{{.Kind", "text", ""},
		{"text parse error", "subject", "{{if .Kind}}unterminated", ""},
		{"html parse error", "subject", "text", "<p>{{end}}</p>"},
		{"unknown function", "subject", "{{shout .Kind}}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := notify.NewTemplate(tt.subject, tt.text, tt.html)

			require.Error(t, err)
			assert.ErrorIs(t, err, notify.ErrTemplate)
			assert.Nil(t, tmpl)
			assert.Panics(t, func() { notify.MustTemplate(tt.subject, tt.text, tt.html) })
		})
	}
}

func TestRenderExecutionErrors(t *testing.T) {
	tests := []struct {
		name                string
		subject, text, html string
		part                string
	}{
		{"subject", "{{.Nope}}", "text", "", "subject"},
		{"text", "subject", "{{.Nope}}", "", "text"},
		{"html", "subject", "text", "<p>{{.Nope}}</p>", "html"},
		{"function error", "subject", `{{index .Actions 5}}`, "", "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := notify.NewTemplate(tt.subject, tt.text, tt.html)
			require.NoError(t, err, "the error shows only when the template runs")

			_, err = tmpl.Render(apiKeyNotice())

			require.Error(t, err)
			assert.ErrorIs(t, err, notify.ErrTemplate)
			assert.Contains(t, err.Error(), tt.part+":")
		})
	}
}

func TestDefaultTemplateConcurrentRender(t *testing.T) {
	want, err := notify.DefaultTemplate().Render(apiKeyNotice())
	require.NoError(t, err)

	var wg sync.WaitGroup
	results := make([]notify.Rendered, 8)
	for i := range results {
		wg.Go(func() {
			results[i], _ = notify.DefaultTemplate().Render(apiKeyNotice())
		})
	}
	wg.Wait()

	for _, r := range results {
		assert.Equal(t, want, r)
	}
}

func TestNoticeDataDescribed(t *testing.T) {
	tests := []struct {
		name string
		data []incident.DataCategory
		want []string
	}{
		{"none", nil, []string{}},
		{"known", []incident.DataCategory{incident.DataAPIAccess, incident.DataCampaignReports, incident.DataFinancial}, []string{"API access", "campaign reports", "financial information"}},
		{"unknown kept as is", []incident.DataCategory{"email_addresses", incident.DataConversion}, []string{"email_addresses", "conversion data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := notify.Notice{Impact: incident.Impact{Data: tt.data}}
			assert.Equal(t, tt.want, n.DataDescribed())
		})
	}
}

func TestNoticeGreeting(t *testing.T) {
	tests := []struct {
		name, customer, want string
	}{
		{"named", "Acme Ltd", "Dear Acme Ltd,"},
		{"unnamed", "", "Dear customer,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := notify.Notice{Customer: incident.Customer{ID: "c", Name: tt.customer}}
			assert.Equal(t, tt.want, n.Greeting())
		})
	}
}

func TestGoldenFilesAreNotStale(t *testing.T) {
	// Guards against a golden file written by -update from a template that
	// prints the zero time or leaves template syntax behind.
	for _, name := range []string{"notice.txt", "notice.html"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		s := string(b)
		assert.NotContains(t, s, "{{")
		assert.NotContains(t, s, "<no value>")
		assert.NotContains(t, s, "0001")
		assert.True(t, strings.HasSuffix(s, "\n"), "%s ends with a newline", name)
	}
}

// Values from the record reach a notice as text: no terminal escape, no
// hidden or reordered text, in the default template or a custom one, in the
// subject, the text and the HTML.
func TestRenderCleansControlCharacters(t *testing.T) {
	const evil = "\x1b]0;owned\a\x00\u202e\u2066\u2028x\r\ny\rz\x7f\u0085"
	n := notify.Notice{
		IncidentID: "inc_1" + evil, Kind: "k" + evil, Severity: incident.SeverityHigh,
		Customer: incident.Customer{ID: "acct" + evil, Name: "Name" + evil},
		Summary:  "sum" + evil, Sender: "team" + evil, Contact: "sec@example.com" + evil,
		Impact: incident.Impact{Summary: "imp" + evil, Data: []incident.DataCategory{incident.DataCategory("data" + evil)},
			Customers: []incident.Customer{{ID: "c" + evil}}},
		Actions: []string{"act" + evil}, Recommendations: []string{"rec" + evil},
	}
	orig := n
	custom := notify.MustTemplate("{{.Kind}} {{.Customer.Name}}",
		"{{.IncidentID}} {{.Summary}} {{.Impact.Summary}} {{join .Actions \",\"}} {{join .Recommendations \",\"}} {{.Sender}} {{.Contact}} {{.Customer.ID}} {{range .Impact.Customers}}{{.ID}}{{end}} {{join .DataDescribed \",\"}}",
		"<p>{{.Summary}} {{.Customer.Name}}</p>")
	for name, tpl := range map[string]*notify.Template{"default": notify.DefaultTemplate(), "custom": custom} {
		t.Run(name, func(t *testing.T) {
			r, err := tpl.Render(n)
			require.NoError(t, err)
			for part, text := range map[string]string{"subject": r.Subject, "text": r.Text, "html": r.HTML} {
				for _, c := range text {
					if c != '\n' && c != '\t' && (unicode.IsControl(c) || c == '\u202e' || c == '\u2066' || c == '\u2028') {
						t.Errorf("%s: raw %U in %q", part, c, text)
					}
				}
			}
			assert.Contains(t, r.Text, "sum\ufffd]0;owned\ufffd\ufffd\ufffd\ufffd\ufffdx\ny\nz\ufffd\ufffd", "a line break stays one")
		})
	}
	assert.Equal(t, orig, n, "the caller's notice is not changed")
}
