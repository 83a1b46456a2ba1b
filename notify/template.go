package notify

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/textcheck"
)

// Notice is what a customer notice template renders: the incident as the
// customer should see it. The orchestrator fills it from the incident and
// its playbook.
type Notice struct {
	IncidentID string
	Kind       string
	Severity   incident.Severity
	Customer   incident.Customer
	// What happened, in a sentence or two.
	Summary    string
	DetectedAt time.Time
	// ContainedAt is zero when nothing needed containing.
	ContainedAt time.Time
	Impact      incident.Impact
	// Actions say what was done, in plain words ("disabled the compromised
	// API key").
	Actions []string
	// Recommendations say what the customer should do.
	Recommendations []string
	// Sender signs the notice ("The Acme security team").
	Sender string
	// Contact is where to ask questions (an address or URL).
	Contact string
}

// DataDescribed returns the impact's data categories as phrases for people.
func (n Notice) DataDescribed() []string {
	out := make([]string, len(n.Impact.Data))
	for i, d := range n.Impact.Data {
		out[i] = d.Describe()
	}
	return out
}

// Greeting returns "Dear NAME," or "Dear customer," when the name is unknown.
func (n Notice) Greeting() string {
	if n.Customer.Name == "" {
		return "Dear customer,"
	}
	return "Dear " + n.Customer.Name + ","
}

// cleaned returns n with every text cleaned for a notice (see Render).
func (n Notice) cleaned() Notice {
	n.IncidentID, n.Kind = cleanText(n.IncidentID), cleanText(n.Kind)
	n.Customer = cleanCustomer(n.Customer)
	n.Summary, n.Sender, n.Contact = cleanText(n.Summary), cleanText(n.Sender), cleanText(n.Contact)
	n.Impact.Summary = cleanText(n.Impact.Summary)
	n.Impact.Customers = cleanAll(n.Impact.Customers, cleanCustomer)
	n.Impact.Data = cleanAll(n.Impact.Data, func(d incident.DataCategory) incident.DataCategory {
		return incident.DataCategory(cleanText(string(d)))
	})
	n.Actions = cleanAll(n.Actions, cleanText)
	n.Recommendations = cleanAll(n.Recommendations, cleanText)
	return n
}

func cleanCustomer(c incident.Customer) incident.Customer {
	c.ID, c.Name, c.Email = cleanText(c.ID), cleanText(c.Name), cleanText(c.Email)
	return c
}

// cleanAll applies clean to a copy of s, or returns s when clean changes
// nothing (the caller's slice is never written).
func cleanAll[T comparable](s []T, clean func(T) T) []T {
	for i, v := range s {
		if clean(v) != v {
			out := slices.Clone(s)
			for j := i; j < len(out); j++ {
				out[j] = clean(out[j])
			}
			return out
		}
	}
	return s
}

// cleanText returns s with CR and CR LF as newlines and every other control
// character but tab and newline, line and paragraph separators and
// bidirectional formatting characters as U+FFFD. It returns s itself when
// there is nothing to clean.
func cleanText(s string) string {
	if strings.IndexFunc(s, unclean) < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case unclean(r):
			return '\ufffd'
		}
		return r
	}, s)
}

func unclean(r rune) bool { return r != '\t' && r != '\n' && textcheck.BadIdentRune(r) }

// Rendered is a rendered notice.
type Rendered struct {
	Subject string
	Text    string
	HTML    string // empty when the template has no HTML part
}

// Template renders a Notice into a message. The Subject and Text templates
// are text/template; HTML, when present, is html/template, which escapes
// the notice's fields. A Template is immutable and safe for concurrent use.
type Template struct {
	builtin bool // the default notice, rendered without reflection
	subject *template.Template
	text    *template.Template
	html    *htmltemplate.Template
}

// ErrTemplate reports a template that failed to parse or to execute.
var ErrTemplate = errors.New("notify: template")

// NewTemplate parses a notice template. subject and text are required;
// html may be empty. Templates see a Notice as dot, and the function "join"
// (strings.Join). A parse error matches ErrTemplate.
func NewTemplate(subject, text, html string) (*Template, error) {
	if strings.TrimSpace(subject) == "" || strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: subject and text are required", ErrTemplate)
	}
	funcs := template.FuncMap{"join": strings.Join}
	t := &Template{}
	var err error
	if t.subject, err = template.New("subject").Funcs(funcs).Option("missingkey=error").Parse(subject); err != nil {
		return nil, fmt.Errorf("%w: subject: %w", ErrTemplate, err)
	}
	if t.text, err = template.New("text").Funcs(funcs).Option("missingkey=error").Parse(text); err != nil {
		return nil, fmt.Errorf("%w: text: %w", ErrTemplate, err)
	}
	if html != "" {
		if t.html, err = htmltemplate.New("html").Funcs(htmltemplate.FuncMap(funcs)).Parse(html); err != nil {
			return nil, fmt.Errorf("%w: html: %w", ErrTemplate, err)
		}
	}
	return t, nil
}

// MustTemplate is NewTemplate that panics on error, for templates that are
// constants of the program.
func MustTemplate(subject, text, html string) *Template {
	t, err := NewTemplate(subject, text, html)
	if err != nil {
		panic(err)
	}
	return t
}

// Render executes the template. The subject is one line: new lines are
// folded to spaces. An execution error matches ErrTemplate.
//
// Every text of the notice is cleaned before it is rendered, whatever the
// template: a CR or CR LF becomes a newline, and any other control
// character but tab and newline, a line or paragraph separator, or a
// bidirectional formatting character becomes U+FFFD, so that a value from
// the record (a customer's name, an investigator's summary) cannot put
// terminal escapes, hidden text or reordered text into a notice. The HTML
// part is escaped by html/template besides.
func (t *Template) Render(n Notice) (Rendered, error) {
	n = n.cleaned()
	switch {
	case !t.Ready():
		return Rendered{}, fmt.Errorf("%w: not built with NewTemplate", ErrTemplate)
	case t.builtin:
		return renderDefault(n), nil
	}
	return t.execute(n)
}

// Ready reports whether t can render: it was made by NewTemplate or
// MustTemplate, or is DefaultTemplate. A nil or zero Template is not.
func (t *Template) Ready() bool { return t != nil && (t.builtin || t.subject != nil) }

func (t *Template) execute(n Notice) (Rendered, error) {
	var out Rendered
	var b bytes.Buffer
	if err := t.subject.Execute(&b, n); err != nil {
		return out, fmt.Errorf("%w: subject: %w", ErrTemplate, err)
	}
	out.Subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := t.text.Execute(&b, n); err != nil {
		return out, fmt.Errorf("%w: text: %w", ErrTemplate, err)
	}
	out.Text = b.String()
	if t.html != nil {
		b.Reset()
		if err := t.html.Execute(&b, n); err != nil {
			return out, fmt.Errorf("%w: html: %w", ErrTemplate, err)
		}
		out.HTML = b.String()
	}
	return out, nil
}

// The default customer notice, modelled on the structure regulators and
// breach-notification laws ask for: what happened, what information was
// involved, what we are doing, what you can do, and whom to contact.
const (
	DefaultSubject = `Security notice about your account{{if .Customer.Name}}, {{.Customer.Name}}{{end}}`

	DefaultText = `{{.Greeting}}

We are writing to tell you about a security incident that affects your account.

What happened
{{if .Summary}}{{.Summary}}{{else}}We detected a security incident involving your account.{{end}}
{{- if not .DetectedAt.IsZero}}
We detected it on {{.DetectedAt.UTC.Format "2 January 2006 at 15:04 MST"}}.
{{- end}}
{{- if not .ContainedAt.IsZero}} We contained it on {{.ContainedAt.UTC.Format "2 January 2006 at 15:04 MST"}}.{{end}}

What information was involved
{{- if .Impact.Summary}}
{{.Impact.Summary}}
{{- end}}
{{- range .DataDescribed}}
- {{.}}
{{- end}}
{{- if not (or .Impact.Summary .Impact.Data)}}
We are still assessing which information was involved.
{{- end}}
{{- if .Actions}}

What we have done
{{- range .Actions}}
- We {{.}}.
{{- end}}
{{- end}}
{{- if .Recommendations}}

What you should do
{{- range .Recommendations}}
- {{.}}
{{- end}}
{{- end}}

For more information
{{if .Contact}}If you have questions, contact us at {{.Contact}} and quote reference {{.IncidentID}}.{{else}}If you have questions, reply to this message and quote reference {{.IncidentID}}.{{end}}

{{if .Sender}}{{.Sender}}{{else}}The security team{{end}}
`

	DefaultHTML = `<p>{{.Greeting}}</p>
<p>We are writing to tell you about a security incident that affects your account.</p>
<h2>What happened</h2>
<p>{{if .Summary}}{{.Summary}}{{else}}We detected a security incident involving your account.{{end}}</p>
{{- if not (and .DetectedAt.IsZero .ContainedAt.IsZero)}}
<p>
{{- if not .DetectedAt.IsZero}}We detected it on {{.DetectedAt.UTC.Format "2 January 2006 at 15:04 MST"}}.{{end}}
{{- if not (or .DetectedAt.IsZero .ContainedAt.IsZero)}} {{end}}
{{- if not .ContainedAt.IsZero}}We contained it on {{.ContainedAt.UTC.Format "2 January 2006 at 15:04 MST"}}.{{end}}</p>
{{- end}}
<h2>What information was involved</h2>
{{- if .Impact.Summary}}
<p>{{.Impact.Summary}}</p>
{{- end}}
{{- if .Impact.Data}}
<ul>{{range .DataDescribed}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
{{- if not (or .Impact.Summary .Impact.Data)}}
<p>We are still assessing which information was involved.</p>
{{- end}}
{{- if .Actions}}
<h2>What we have done</h2>
<ul>{{range .Actions}}<li>We {{.}}.</li>{{end}}</ul>
{{- end}}
{{- if .Recommendations}}
<h2>What you should do</h2>
<ul>{{range .Recommendations}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
<h2>For more information</h2>
<p>{{if .Contact}}If you have questions, contact us at {{.Contact}} and quote reference {{.IncidentID}}.{{else}}If you have questions, reply to this message and quote reference {{.IncidentID}}.{{end}}</p>
<p>{{if .Sender}}{{.Sender}}{{else}}The security team{{end}}</p>
`
)

var defaultTemplate = func() *Template {
	t := MustTemplate(DefaultSubject, DefaultText, DefaultHTML)
	t.builtin = true
	return t
}()

// DefaultTemplate returns the built-in customer notice, in plain text and
// HTML, good enough to send as it is.
func DefaultTemplate() *Template { return defaultTemplate }
