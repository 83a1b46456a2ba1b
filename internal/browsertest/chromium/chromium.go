// Package chromium runs a headless Chromium for a test, as httptest runs a
// server: Start gives a tab driven with chromedp, records what the pages
// wrote to the console, and closes the browser when the test ends.
package chromium

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	// PathEnv names the variable that holds the browser to run. .ci/run
	// sets it to Debian's /usr/bin/chromium.
	PathEnv = "BREACH_CHROMIUM"
	// ArtifactsEnv names the variable that holds the directory for
	// screenshots; without it they go to a temporary directory of the test.
	ArtifactsEnv = "BREACH_ARTIFACTS"
)

// names are the browsers chromedp looks for on Linux, in its order.
var names = []string{
	"headless_shell", "headless-shell", "chromium", "chromium-browser",
	"google-chrome", "google-chrome-stable", "google-chrome-beta", "google-chrome-unstable",
	"/usr/bin/google-chrome", "/usr/local/bin/chrome", "/snap/bin/chromium", "chrome",
}

// ExecPath returns the browser to run: $BREACH_CHROMIUM, else the first of
// the names chromedp looks for that is on PATH. Without one the test skips,
// saying how to get one, except under CI (CI set), where a missing browser
// is a failure: a CI run that skipped the browser test would pass.
func ExecPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(PathEnv); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("%s=%s: %v", PathEnv, p, err)
		}
		return found
	}
	for _, name := range names {
		if found, err := exec.LookPath(name); err == nil {
			return found
		}
	}
	msg := "no Chromium found: install it (apt-get install -y --no-install-recommends chromium) or set " +
		PathEnv + " to its path; .ci/run installs it"
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set but " + msg)
	}
	t.Skip(msg)
	return ""
}

// Redirect is a redirect of a page load that the browser followed.
type Redirect struct {
	Status int64
	From   string // the URL that answered with the redirect
	To     string // the URL the browser went to
}

// Tab is a tab of a headless Chromium started for one test.
type Tab struct {
	// Ctx runs chromedp actions in the tab. It ends at the deadline given
	// to Start, and its cancellation leaves the browser open.
	Ctx context.Context
	// Dir is the browser's user data directory, a temporary directory of
	// the test.
	Dir string
	// Pid is the browser's process.
	Pid int

	t testing.TB

	mu        sync.Mutex
	problems  []string
	redirects []Redirect
}

// Start runs Chromium (ExecPath) headless, without GPU, with a new user
// data directory, and opens a tab. Actions in Tab.Ctx must finish within timeout. When the
// test ends Start's cleanup saves a screenshot if the test failed, closes
// the browser, and fails the test if a process of the browser is left.
func Start(t testing.TB, timeout time.Duration) *Tab {
	t.Helper()
	path := ExecPath(t)
	// TempDir's cleanup runs after the one below, when the browser has gone.
	tab := &Tab{t: t, Dir: t.TempDir()}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(tab.Dir),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium does not start as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(tab.record))

	// The first Do starts the browser, bound to the context it is given:
	// the deadline must not be on that one.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	var err error
	select {
	case err = <-started:
	case <-time.After(timeout):
		err = fmt.Errorf("not started within %v", timeout)
	}
	if err != nil {
		cancelBrowser()
		cancelAlloc()
		tab.reapLeftovers()
		t.Fatalf("starting %s: %v", path, err)
	}
	if p := chromedp.FromContext(browser).Browser.Process(); p != nil {
		tab.Pid = p.Pid
	}
	ctx, cancelSteps := context.WithTimeout(browser, timeout)
	tab.Ctx = ctx

	t.Cleanup(func() {
		cancelSteps()
		if t.Failed() {
			for _, p := range tab.Problems() {
				t.Log("browser console: " + p)
			}
			for _, r := range tab.Redirects() {
				t.Logf("redirect: %d %s -> %s", r.Status, r.From, r.To)
			}
			tab.screenshot(browser, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-failed")
		}
		closeCtx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("closing the browser: %v", err)
		}
		cancelBrowser()
		cancelAlloc() // waits for the process
		if left := tab.reapLeftovers(); len(left) > 0 {
			t.Errorf("Chromium processes left running after the browser closed (killed now): %v", left)
		}
	})
	return tab
}

// record runs in the tab's event loop: it must return fast and run no command.
func (b *Tab) record(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, remoteText(a))
			}
			problem = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem = "exception: " + d.Text
		if d.Exception != nil {
			// The description of an error ends with its stack.
			desc, _, _ := strings.Cut(remoteText(d.Exception), "\n    at ")
			problem += " " + desc
		}
		if d.URL != "" {
			problem += " at " + d.URL + ":" + strconv.FormatInt(d.LineNumber+1, 10)
		}
	case *log.EventEntryAdded:
		// The browser's own messages: failed loads (network) and refusals
		// under the Content-Security-Policy (security) among them.
		if e := ev.Entry; e.Level == log.EntryLevelError {
			problem = string(e.Source) + " error: " + e.Text
			if e.URL != "" && !strings.Contains(e.Text, e.URL) {
				problem += " (" + e.URL + ")"
			}
		}
	case *network.EventRequestWillBeSent:
		if r := ev.RedirectResponse; r != nil && ev.Type == network.ResourceTypeDocument {
			b.mu.Lock()
			b.redirects = append(b.redirects, Redirect{Status: r.Status, From: r.URL, To: ev.Request.URL})
			b.mu.Unlock()
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

func remoteText(o *runtime.RemoteObject) string {
	if o.Type == runtime.RemoteObjectTypeString {
		var s string
		if err := json.Unmarshal(o.Value, &s); err == nil {
			return s
		}
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Value)
}

// Problems returns what the pages reported as errors so far: console.error
// and failed console.assert calls, uncaught exceptions, and the browser's
// error messages, such as a resource that failed to load or that the
// Content-Security-Policy refused.
func (b *Tab) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Redirects returns the redirects of page loads the browser followed so far.
func (b *Tab) Redirects() []Redirect {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Redirect(nil), b.redirects...)
}

// ReloadUntil reads the text of the first element that the CSS selector sel
// matches in the tab of ctx, and reloads the page until ok accepts the
// text. It returns the last text read, and an error if ctx ended first.
func ReloadUntil(ctx context.Context, sel string, ok func(text string) bool) (string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil {
			if last = text; ok(text) {
				return text, nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return last, fmt.Errorf("%s: last text %q: %w", sel, last, err)
		case <-tick.C:
		}
		if err := reload(ctx); err != nil {
			return last, fmt.Errorf("reloading: %w", err)
		}
	}
}

// reload reloads the page of ctx and waits for the load, for up to ten
// seconds even when ctx ends first. After a reload cut short, Chromium 156
// left the next Page.captureScreenshot unanswered for a minute.
func reload(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return chromedp.Do(rctx, chromedp.Reload())
}

// Screenshot saves a full-page PNG of the tab as name.png in the artifacts
// directory ($BREACH_ARTIFACTS, else a temporary directory of the test),
// logs its path, and returns it.
func (b *Tab) Screenshot(name string) string {
	b.t.Helper()
	path, err := b.screenshot(b.Ctx, name)
	if err != nil {
		b.t.Fatal(err)
	}
	return path
}

func (b *Tab) screenshot(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		dir = b.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path, nil
}

// reapLeftovers waits up to two seconds for the processes that run with the
// tab's user data directory to end, kills those that did not, and returns
// their ids. Chromium passes --user-data-dir to every process it starts, so
// the command line finds them; chromedp does this only for the directories
// it made itself.
func (b *Tab) reapLeftovers() []int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := processesUsing(b.Dir)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesUsing returns the processes with --user-data-dir=dir in their
// command line; none where there is no /proc.
func processesUsing(dir string) []int {
	want := []byte("--user-data-dir=" + dir)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
