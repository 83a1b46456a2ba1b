// Package consoleui holds the console's HTML templates and its style sheet,
// embedded in the binary: the console (breach.NewConsole) serves every
// byte it needs itself and loads nothing from elsewhere.
//
// The templates are html/template files. layout.html defines "layout",
// the page around a "content" template, which each page file defines:
// register.html (the register of incidents), incident.html (one incident)
// and error.html (a refusal or a failure). console.css is the only style
// sheet; the pages use no inline styles and no JavaScript, so they work
// under a Content-Security-Policy of default-src 'none'.
package consoleui

import "embed"

// FS holds templates/*.html and console.css.
//
//go:embed templates/*.html console.css
var FS embed.FS

// Pages are the page templates in templates/, each parsed with
// templates/layout.html.
var Pages = []string{"register", "incident", "error"}
