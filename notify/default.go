package notify

import (
	"strings"
)

// renderDefault renders the default notice without text/template's
// reflection: the same bytes as executing DefaultSubject, DefaultText and
// DefaultHTML (FuzzDefaultNotice holds the two in step), several times
// faster, since every incident with customer impact renders one per
// customer.
func renderDefault(n Notice) Rendered {
	const when = "2 January 2006 at 15:04 MST"
	var out Rendered
	subject := "Security notice about your account"
	if n.Customer.Name != "" {
		subject += ", " + n.Customer.Name
	}
	out.Subject = strings.Join(strings.Fields(subject), " ")

	var b strings.Builder
	b.Grow(1024)
	b.WriteString(n.Greeting())
	b.WriteString("\n\nWe are writing to tell you about a security incident that affects your account.\n\nWhat happened\n")
	if n.Summary != "" {
		b.WriteString(n.Summary)
	} else {
		b.WriteString("We detected a security incident involving your account.")
	}
	if !n.DetectedAt.IsZero() {
		b.WriteString("\nWe detected it on " + n.DetectedAt.UTC().Format(when) + ".")
	}
	if !n.ContainedAt.IsZero() {
		b.WriteString(" We contained it on " + n.ContainedAt.UTC().Format(when) + ".")
	}
	b.WriteString("\n\nWhat information was involved")
	if n.Impact.Summary != "" {
		b.WriteString("\n" + n.Impact.Summary)
	}
	for _, d := range n.Impact.Data {
		b.WriteString("\n- " + d.Describe())
	}
	if n.Impact.Summary == "" && len(n.Impact.Data) == 0 {
		b.WriteString("\nWe are still assessing which information was involved.")
	}
	if len(n.Actions) > 0 {
		b.WriteString("\n\nWhat we have done")
		for _, a := range n.Actions {
			b.WriteString("\n- We " + a + ".")
		}
	}
	if len(n.Recommendations) > 0 {
		b.WriteString("\n\nWhat you should do")
		for _, r := range n.Recommendations {
			b.WriteString("\n- " + r)
		}
	}
	b.WriteString("\n\nFor more information\n")
	writeContact(&b, n, func(s string) string { return s })
	b.WriteString("\n\n")
	if n.Sender != "" {
		b.WriteString(n.Sender)
	} else {
		b.WriteString("The security team")
	}
	b.WriteString("\n")
	out.Text = b.String()

	var h strings.Builder
	h.Grow(1536)
	esc := htmlEscape
	h.WriteString("<p>" + esc(n.Greeting()) + "</p>\n<p>We are writing to tell you about a security incident that affects your account.</p>\n<h2>What happened</h2>\n<p>")
	if n.Summary != "" {
		h.WriteString(esc(n.Summary))
	} else {
		h.WriteString("We detected a security incident involving your account.")
	}
	h.WriteString("</p>")
	if !(n.DetectedAt.IsZero() && n.ContainedAt.IsZero()) {
		h.WriteString("\n<p>")
		if !n.DetectedAt.IsZero() {
			h.WriteString("We detected it on " + esc(n.DetectedAt.UTC().Format(when)) + ".")
		}
		if !n.DetectedAt.IsZero() && !n.ContainedAt.IsZero() {
			h.WriteString(" ")
		}
		if !n.ContainedAt.IsZero() {
			h.WriteString("We contained it on " + esc(n.ContainedAt.UTC().Format(when)) + ".")
		}
		h.WriteString("</p>")
	}
	h.WriteString("\n<h2>What information was involved</h2>")
	if n.Impact.Summary != "" {
		h.WriteString("\n<p>" + esc(n.Impact.Summary) + "</p>")
	}
	if len(n.Impact.Data) > 0 {
		h.WriteString("\n<ul>")
		for _, d := range n.Impact.Data {
			h.WriteString("<li>" + esc(d.Describe()) + "</li>")
		}
		h.WriteString("</ul>")
	}
	if n.Impact.Summary == "" && len(n.Impact.Data) == 0 {
		h.WriteString("\n<p>We are still assessing which information was involved.</p>")
	}
	if len(n.Actions) > 0 {
		h.WriteString("\n<h2>What we have done</h2>\n<ul>")
		for _, a := range n.Actions {
			h.WriteString("<li>We " + esc(a) + ".</li>")
		}
		h.WriteString("</ul>")
	}
	if len(n.Recommendations) > 0 {
		h.WriteString("\n<h2>What you should do</h2>\n<ul>")
		for _, r := range n.Recommendations {
			h.WriteString("<li>" + esc(r) + "</li>")
		}
		h.WriteString("</ul>")
	}
	h.WriteString("\n<h2>For more information</h2>\n<p>")
	writeContact(&h, n, esc)
	h.WriteString("</p>\n<p>")
	if n.Sender != "" {
		h.WriteString(esc(n.Sender))
	} else {
		h.WriteString("The security team")
	}
	h.WriteString("</p>\n")
	out.HTML = h.String()
	return out
}

func writeContact(b *strings.Builder, n Notice, esc func(string) string) {
	if n.Contact != "" {
		b.WriteString("If you have questions, contact us at " + esc(n.Contact) + " and quote reference " + esc(n.IncidentID) + ".")
	} else {
		b.WriteString("If you have questions, reply to this message and quote reference " + esc(n.IncidentID) + ".")
	}
}

// htmlEscape escapes text for HTML element content exactly as html/template
// does there.
func htmlEscape(s string) string {
	if !strings.ContainsAny(s, "\x00\"&'+<>") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ { // the escaped characters are ASCII; other bytes pass as they are
		switch c := s[i]; c {
		case 0:
			b.WriteString("\uFFFD")
		case '"':
			b.WriteString("&#34;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&#39;")
		case '+':
			b.WriteString("&#43;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
