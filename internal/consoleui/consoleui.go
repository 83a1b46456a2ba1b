// Package consoleui holds the console's HTML templates and its style sheet,
// embedded in the binary, and the functions the templates use: the console
// (breach.NewConsole) serves every byte it needs itself and loads nothing
// from elsewhere.
//
// The templates are html/template files. layout.html defines "layout",
// the page around a "content" template, which each page file defines:
// register.html (the register of incidents), incident.html (one incident)
// and error.html (a refusal or a failure). console.css is the only style
// sheet; the pages use no inline styles and no JavaScript, so they work
// under a Content-Security-Policy of default-src 'none'.
package consoleui

import (
	"embed"
	"html/template"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FS holds templates/*.html and console.css.
//
//go:embed templates/*.html console.css
var FS embed.FS

// Pages are the page templates in templates/, each parsed with
// templates/layout.html.
var Pages = []string{"register", "incident", "error"}

// UI is the parsed pages, by name, and the style sheet.
type UI struct {
	Pages map[string]*template.Template
	CSS   []byte
}

// Load parses the pages once, with the functions "when" (Time) and "seg"
// (PathSegment), and reads the style sheet.
var Load = sync.OnceValues(func() (*UI, error) {
	ui := &UI{Pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"when": Time, "seg": PathSegment}
	for _, name := range Pages {
		t, err := template.New(name).Funcs(funcs).ParseFS(FS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		ui.Pages[name] = t
	}
	css, err := FS.ReadFile("console.css")
	ui.CSS = css
	return ui, err
})

// Time writes t in UTC to the second, or "—" for the zero time.
func Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// PathSegment escapes s as one segment of a relative URL path, ":" too, so
// that it cannot read as a scheme.
func PathSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// Duration writes d, rounded to the second, in its two largest units:
// "2d 3h", "3h 20m", "4m 10s", "12s".
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	units := []struct {
		n    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:len(units)-1] {
		if d >= u.n {
			s := strconv.FormatInt(int64(d/u.n), 10) + u.name
			if rest := (d % u.n) / units[i+1].n; rest > 0 {
				s += " " + strconv.FormatInt(int64(rest), 10) + units[i+1].name
			}
			return s
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// Attachment is the Content-Disposition of a download named name: the name
// quoted as it is when it is plain (letters, digits, ".", "-", "_"),
// encoded per RFC 2231 when not.
func Attachment(name string) string {
	plain := name != "" && strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) < 0
	if plain {
		return `attachment; filename="` + name + `"`
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
