package browsertest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/browsertest/chromium"
)

// TestApproveInConsole drives the console in a headless Chromium: a leaked
// API key of high severity waits for approval of disable-key; a person
// opens the incident from the register and approves; the orchestrator
// applies the action and the page shows the incident moving on; a note
// added through the page shows on its timeline. The pages must work under
// the console's Content-Security-Policy without an error in the browser's
// console, and a full-page screenshot of the incident at the end is kept
// ($BREACH_ARTIFACTS/console.png).
func TestApproveInConsole(t *testing.T) {
	chromium.ExecPath(t) // skips, or fails under CI, without a browser

	var contained atomic.Int32
	pb := breach.Playbook{
		Kind:     "apikey.compromised",
		Strategy: breach.ContainFirst,
		Containment: []containment.Action{{
			Name: "disable-key", Description: "disabled the API key",
			Container: containment.Func(func(ctx context.Context, req containment.Request) error {
				contained.Add(1)
				return nil
			}),
			// Below critical a person approves.
			Approval: &containment.ApprovalRule{AutoFrom: incident.SeverityCritical},
		}},
		Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			return incident.Findings{RootCause: "key in a public repository"}, nil
		}),
	}
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb),
		breach.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	runCtx, stopRun := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- o.Run(runCtx) }()
	t.Cleanup(func() { // the last cleanup: after the browser and the server
		stopRun()
		assert.NoError(t, <-runErr)
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := o.Report(ctx, incident.Signal{
		Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7",
		Severity: incident.SeverityHigh, Source: "scanner", Summary: "key found in a public repository",
		Credential: incident.NewSecret("sk_live_BROWSER_0a1b2c3d4e5f"),
	})
	require.NoError(t, err)
	id := rc.IncidentID
	inc, err := o.Await(ctx, id, func(inc *incident.Incident) bool {
		a := inc.Action("disable-key")
		return a != nil && a.Status == incident.ActionAwaiting
	})
	require.NoError(t, err, "disable-key never waited for approval")
	require.Equal(t, incident.StateContaining, inc.State)

	console, err := breach.NewConsole(o, breach.ConsoleConfig{
		Actor: func(*http.Request) (string, error) { return "alice", nil },
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", console))
	// The host's icon, which the browser asks for: not the console's.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base := srv.URL + "/console/"
	page := base + "incidents/" + id

	tab := chromium.Start(t, time.Minute)
	bctx := tab.Ctx

	// The register lists the incident.
	resp, err := chromedp.RunResponse(bctx, chromedp.Navigate(base))
	require.NoError(t, err)
	require.Equal(t, int64(http.StatusOK), resp.Status, "GET %s", base)
	assert.Contains(t, header(resp.Headers, "Content-Security-Policy"), "default-src 'none'", "the console's policy")
	link := `a.incident[href="incidents/` + cssString(id) + `"]`
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(link))), "the register has the incident's row")
	usesConsoleCSS(t, bctx, base)

	// Its link opens the incident, which waits for the approval.
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS(link)))
	require.NoError(t, err)
	require.Equal(t, int64(http.StatusOK), resp.Status)
	require.Equal(t, page, resp.URL)
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#state"))))
	state, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#state")))
	require.NoError(t, err)
	assert.Equal(t, string(incident.StateContaining), state)
	usesConsoleCSS(t, bctx, base)

	form := `form.approve:has(input[type="hidden"][name="action"][value="disable-key"])`
	attrs, err := chromedp.Run(bctx, chromedp.Attributes(chromedp.CSS(form)))
	require.NoError(t, err, "the approval form of disable-key")
	assert.Equal(t, "post", strings.ToLower(attrs["method"]))
	assert.Equal(t, id+"/approve", attrs["action"])
	button := form + ` button[type="submit"]`
	label, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(button)))
	require.NoError(t, err)
	assert.Equal(t, "Approve", strings.TrimSpace(label))
	assert.Zero(t, contained.Load(), "nothing contained before the approval")

	// Approve: the post answers 303 to the incident's page.
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS(button)))
	require.NoError(t, err)
	require.Contains(t, tab.Redirects(), chromium.Redirect{Status: http.StatusSeeOther, From: page + "/approve", To: page},
		"the approval answers 303 to the incident's page")
	require.Equal(t, int64(http.StatusOK), resp.Status, "GET %s after the approval", resp.URL)

	// The orchestrator applies the action in the background; the page
	// shows the incident past containment once it has.
	shown, err := chromium.ReloadUntil(bctx, "#state", func(s string) bool { return s != string(incident.StateContaining) })
	require.NoError(t, err, "the page never showed the incident past containment")
	t.Logf("after the approval the page shows %q", shown)
	assert.Contains(t, []string{"contained", "investigating", "notifying", "resolving"}, shown)

	inc, err = o.Await(ctx, id, func(inc *incident.Incident) bool { return inc.State == incident.StateResolving })
	require.NoError(t, err)
	a := inc.Action("disable-key")
	require.NotNil(t, a)
	assert.Equal(t, incident.ActionApplied, a.Status)
	if assert.NotNil(t, a.Approval) {
		assert.True(t, a.Approval.Approved)
		assert.Equal(t, "alice", a.Approval.By, "the console's actor")
	}
	assert.Equal(t, int32(1), contained.Load())

	_, err = chromium.ReloadUntil(bctx, "#state", func(s string) bool { return s == string(incident.StateResolving) })
	require.NoError(t, err, "the page shows what the orchestrator recorded")
	forms, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll(`form.approve`), chromedp.AtLeast(0)))
	require.NoError(t, err)
	assert.Empty(t, forms, "nothing left to approve")
	usesConsoleCSS(t, bctx, base)

	// A note through the page: the post answers 303 to the incident's
	// page, whose timeline shows the note, as text.
	const note = "the key was in a public gist <b>since Monday</b>"
	require.NoError(t, chromedp.Do(bctx, chromedp.SetValue(chromedp.CSS(`#note-form textarea[name="text"]`), note)))
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS(`#note-form button[type="submit"]`)))
	require.NoError(t, err)
	require.Contains(t, tab.Redirects(), chromium.Redirect{Status: http.StatusSeeOther, From: page + "/note", To: page},
		"the note answers 303 to the incident's page")
	require.Equal(t, int64(http.StatusOK), resp.Status, "GET %s after the note", resp.URL)
	if latest, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll(`#notes-latest`), chromedp.AtLeast(0))); err == nil && len(latest) > 0 {
		_, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS(`#notes-latest`))) // a timeline longer than a page
		require.NoError(t, err)
	}
	notes, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#timeline li.entry-note .detail")].map(e => e.textContent)`))
	require.NoError(t, err)
	assert.Contains(t, notes, note, "the note is on the timeline, escaped")
	actor, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll("#timeline li.entry-note")].filter(e => e.querySelector(".detail")?.textContent === `+
			jsString(t, note)+`).map(e => e.querySelector(".actor").textContent).join()`))
	require.NoError(t, err)
	assert.Equal(t, "alice", actor, "under the console's actor")

	tab.Screenshot("console")
	assert.Empty(t, tab.Problems(), "errors in the browser's console (a refusal under the Content-Security-Policy is one)")
}

// usesConsoleCSS checks that the page applies the console's stylesheet:
// loaded, allowed by the policy, and parsed.
func usesConsoleCSS(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`[...document.styleSheets].some(s => s.href === `+jsString(t, base+"console.css")+` && s.cssRules.length > 0)`))
	require.NoError(t, err)
	assert.True(t, ok, "the page applies %sconsole.css", base)
}

// header returns the value of the response header name, whatever its case.
func header(h network.Headers, name string) string {
	for k, v := range h {
		if s, ok := v.(string); ok && strings.EqualFold(k, name) {
			return s
		}
	}
	return ""
}

// cssString escapes s for a double-quoted CSS string.
func cssString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// jsString quotes s as a JavaScript string.
func jsString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}
