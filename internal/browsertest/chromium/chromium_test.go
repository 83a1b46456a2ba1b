package chromium_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/internal/browsertest/chromium"
)

// strictCSP is the policy of the console: nothing but the page and its own
// stylesheet, and no script.
const strictCSP = "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// site is a small site under /app/ with a stylesheet, a counter of the
// loads of one page, and a form that answers 303, all under strictCSP; and
// two pages that give the console something to report.
func site() http.Handler {
	var mu sync.Mutex
	loads := 0
	page := func(w http.ResponseWriter, csp, body string) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>site</title>`+
			`<link rel="stylesheet" href="style.css"></head><body>`+body+`</body></html>`)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app/{$}", func(w http.ResponseWriter, r *http.Request) {
		page(w, strictCSP, `<h1>Site</h1><a class="next" href="count">count</a>`)
	})
	mux.HandleFunc("GET /app/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, "body { font-family: sans-serif; margin: 32px; }\n")
	})
	mux.HandleFunc("GET /app/count", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		loads++
		n := loads
		mu.Unlock()
		page(w, strictCSP, `<p>Loads: <span id="n">`+strconv.Itoa(n)+`</span></p>`+
			`<form class="bump" method="post" action="count/bump"><button type="submit">Bump</button></form>`)
	})
	mux.HandleFunc("POST /app/count/bump", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		loads += 100
		mu.Unlock()
		http.Redirect(w, r, "../count", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /app/bad", func(w http.ResponseWriter, r *http.Request) {
		page(w, strictCSP, `<style>p { color: red }</style><script>document.title = "ran"</script>`+
			`<link rel="stylesheet" href="missing.css"><p>refused</p><img src="missing.png" alt="">`)
	})
	mux.HandleFunc("GET /app/throws", func(w http.ResponseWriter, r *http.Request) {
		page(w, strictCSP+"; script-src 'self'; img-src 'self'",
			`<p id="done">loaded</p><img src="missing.png" alt=""><script src="throws.js"></script>`)
	})
	mux.HandleFunc("GET /app/throws.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `console.error("boom", 7); throw new Error("kaboom");`)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

func TestTab(t *testing.T) {
	chromium.ExecPath(t) // skips, or fails under CI, without a browser
	srv := httptest.NewServer(site())
	t.Cleanup(srv.Close) // after the browser closed
	app := srv.URL + "/app/"

	var tab *chromium.Tab
	t.Run("browse", func(t *testing.T) {
		tab = chromium.Start(t, time.Minute)
		ctx := tab.Ctx
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(app), chromedp.WaitVisible(chromedp.CSS("a.next"))))
		style, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.CSS("body")))
		require.NoError(t, err)
		margin := ""
		for _, p := range style {
			if p.Name == "margin-top" {
				margin = p.Value
			}
		}
		assert.Equal(t, "32px", margin, "style.css applies under style-src 'self'")

		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("a.next")))
		require.NoError(t, err)
		assert.Equal(t, int64(http.StatusOK), resp.Status)
		assert.Equal(t, app+"count", resp.URL)
		n, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#n")))
		require.NoError(t, err)
		assert.Equal(t, "1", n)

		n, err = chromium.ReloadUntil(ctx, "#n", func(s string) bool { return s == "3" })
		require.NoError(t, err)
		assert.Equal(t, "3", n, "two reloads")

		resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`form.bump button[type="submit"]`)))
		require.NoError(t, err)
		assert.Equal(t, app+"count", resp.URL, "the 303 leads back to the page")
		assert.Equal(t, []chromium.Redirect{{Status: http.StatusSeeOther, From: app + "count/bump", To: app + "count"}}, tab.Redirects())
		n, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#n")))
		require.NoError(t, err)
		assert.Equal(t, "104", n)

		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err = chromium.ReloadUntil(short, "#n", func(s string) bool { return s == "never" })
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded, "ReloadUntil ends with its context")

		path := tab.Screenshot("selftest")
		png, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
		assert.Empty(t, tab.Problems(), "a page within its policy reports nothing")

		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(app+"bad")))
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(app+"throws"), chromedp.WaitVisible(chromedp.CSS("#done"))))
		title, err := chromedp.Run(ctx, chromedp.Title())
		require.NoError(t, err)
		assert.Equal(t, "site", title, "the inline script did not run")
		want := []string{
			"inline style violates the following Content Security Policy",
			"inline script violates the following Content Security Policy",
			"image 'http://" + srv.Listener.Addr().String() + "/app/missing.png' violates",
			"security error: Refused to apply style from '" + app + "missing.css' because its MIME type ('text/plain')",
			"network error: Failed to load resource: the server responded with a status of 404 (Not Found) (" + app + "missing.png)",
			"console.error: boom 7", "exception: Uncaught Error: kaboom at " + app + "throws.js:1",
		}
		require.Eventually(t, func() bool { return len(missing(tab.Problems(), want)) == 0 }, 5*time.Second, 20*time.Millisecond,
			"missing %q in %q", missing(tab.Problems(), want), tab.Problems())
		for _, p := range tab.Problems() {
			t.Log(p)
		}
	})
	if tab == nil || tab.Pid == 0 {
		return
	}
	// The subtest's cleanup closed the browser.
	err := syscall.Kill(tab.Pid, 0)
	assert.True(t, errors.Is(err, syscall.ESRCH), "the browser process %d has exited: %v", tab.Pid, err)
	_, err = os.Stat(tab.Dir)
	assert.True(t, os.IsNotExist(err), "the user data directory is gone: %v", err)
}

// missing returns the wanted substrings that no problem contains.
func missing(problems, want []string) []string {
	var out []string
	for _, w := range want {
		found := false
		for _, p := range problems {
			found = found || strings.Contains(p, w)
		}
		if !found {
			out = append(out, w)
		}
	}
	return out
}

// outcome is what ExecPath did to a test.
type outcome struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (o *outcome) Helper() {}
func (o *outcome) Skip(args ...any) {
	o.skipped, o.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (o *outcome) Fatal(args ...any) {
	o.failed, o.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (o *outcome) Fatalf(format string, args ...any) { o.Fatal(fmt.Sprintf(format, args...)) }

func execPath(t *testing.T) (path string, o *outcome) {
	o = &outcome{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = chromium.ExecPath(o)
	}()
	<-done
	return path, o
}

func TestExecPath(t *testing.T) {
	for _, p := range []string{"/usr/bin/google-chrome", "/usr/local/bin/chrome", "/snap/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			t.Skip(p + " exists: it is found whatever PATH says")
		}
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv(chromium.PathEnv, "")

	t.Setenv("CI", "")
	_, o := execPath(t)
	assert.True(t, o.skipped, "no browser, not under CI: skip")
	assert.Contains(t, o.msg, "no Chromium found")

	t.Setenv("CI", "true")
	_, o = execPath(t)
	assert.True(t, o.failed, "no browser under CI: fail")
	assert.Contains(t, o.msg, "CI is set but no Chromium found")

	t.Setenv(chromium.PathEnv, "/nonexistent/chromium")
	_, o = execPath(t)
	assert.True(t, o.failed, "a wrong "+chromium.PathEnv+" fails")

	self, err := os.Executable()
	require.NoError(t, err)
	t.Setenv(chromium.PathEnv, self)
	path, o := execPath(t)
	assert.False(t, o.failed || o.skipped, o.msg)
	assert.Equal(t, self, path, chromium.PathEnv+" wins")
}
