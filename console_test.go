package breach_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// consoleNow is the orchestrator's clock in the console's tests: it does
// not move, so times left on clocks are exact.
var consoleNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// consoleRig is an orchestrator on a MemStore the test fills with
// incidents it builds (no Run: people's actions work without it), its
// console mounted at /console/ as a host mounts it, and the actor taken
// from the X-Actor header.
type consoleRig struct {
	store *incident.MemStore
	o     *breach.Orchestrator
	mux   *http.ServeMux
	logs  *bytes.Buffer
}

func newConsoleRig(t *testing.T, cfg breach.ConsoleConfig, store incident.Store) *consoleRig {
	t.Helper()
	r := &consoleRig{logs: &bytes.Buffer{}}
	if store == nil {
		r.store = incident.NewMemStore()
		store = r.store
	}
	pb := apiKeyPlaybook(&fakes{}, nil)
	pb.Containment[0].Approval = &containment.ApprovalRule{AutoFrom: incident.SeverityCritical}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o, err := breach.New(store, breach.WithPlaybook(pb), breach.WithLogger(log),
		breach.WithNow(func() time.Time { return consoleNow }))
	require.NoError(t, err)
	r.o = o
	if cfg.Actor == nil {
		cfg.Actor = headerActor
	}
	console, err := breach.NewConsole(o, cfg)
	require.NoError(t, err)
	r.mux = http.NewServeMux()
	r.mux.Handle("/console/", http.StripPrefix("/console", console))
	return r
}

// headerActor is the actor a test names in X-Actor.
func headerActor(r *http.Request) (string, error) {
	if a := r.Header.Get("X-Actor"); a != "" {
		return a, nil
	}
	return "", errors.New("no X-Actor header")
}

// baseIncident is an open incident of the API-key playbook, detected an
// hour before consoleNow, with two timeline entries.
func baseIncident(id string) *incident.Incident {
	detected := consoleNow.Add(-time.Hour)
	inc := &incident.Incident{
		ID: id, Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7", DedupKey: "apikey.compromised/key_42/" + id,
		Severity: incident.SeverityHigh, State: incident.StateDetected, Summary: "key found in a public repository",
		DetectedAt: detected, EnteredAt: detected, UpdatedAt: detected,
		Signals: incident.SignalSummary{Count: 1, FirstSeen: detected, LastSeen: detected},
	}
	inc.Record(incident.Entry{At: detected, Actor: incident.ActorSystem, Type: incident.EntrySignal, Detail: "opened"})
	inc.Record(incident.Entry{At: detected, Actor: incident.ActorSystem, Type: incident.EntryNote, Detail: "looked at"})
	return inc
}

// gdprClock is a running GDPR clock due 71 hours after consoleNow.
func gdprClock() incident.Deadline {
	return incident.Deadline{Name: "GDPR Art. 33", Start: incident.MilestoneDetected, Stop: incident.MilestoneAuthorityNotified,
		Status: incident.DeadlineRunning, StartedAt: consoleNow.Add(-time.Hour), Due: consoleNow.Add(71 * time.Hour),
		WarnAt: consoleNow.Add(60 * time.Hour)}
}

// withApproval is containing, its disable-key action waiting for a
// person, the on-call alert open, the GDPR clock running.
func withApproval(inc *incident.Incident) {
	inc.State = incident.StateContaining
	inc.Actions = []incident.ActionRecord{{Name: "disable-key", IdempotencyKey: inc.ID + "/contain/disable-key",
		Status: incident.ActionAwaiting, Approval: &incident.Approval{RequestedAt: consoleNow.Add(-30 * time.Minute)}}}
	inc.Paging = &incident.Paging{AlertKey: inc.ID + "/alert/1", Reason: "containment action \"disable-key\" needs approval",
		Needed: "approve or deny containment", Level: 1, OpenedAt: consoleNow.Add(-30 * time.Minute), PagedAt: consoleNow.Add(-30 * time.Minute)}
	inc.Deadlines = []incident.Deadline{gdprClock()}
}

// inResolution is in resolution with its mandatory scan task open.
func inResolution(inc *incident.Incident) {
	inc.State = incident.StateResolving
	inc.Tasks = []incident.Task{{ID: "scan", Title: "Scan repositories", Mandatory: true}, {ID: "review", Title: "Review access"}}
}

// seed writes inc, changed by each of with, to the store.
func (r *consoleRig) seed(t *testing.T, inc *incident.Incident, with ...func(*incident.Incident)) string {
	t.Helper()
	for _, f := range with {
		f(inc)
	}
	require.NoError(t, r.store.Create(context.Background(), incident.Split(inc)))
	return inc.ID
}

func (r *consoleRig) head(t *testing.T, id string) *incident.Incident {
	t.Helper()
	inc, err := r.o.Head(context.Background(), id)
	require.NoError(t, err)
	return inc
}

// do serves one request as alice, from the console's own pages.
func (r *consoleRig) do(t *testing.T, method, path string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://console.example"+path, body)
	req.Header.Set("X-Actor", "alice")
	if method == http.MethodPost {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	w := httptest.NewRecorder()
	r.mux.ServeHTTP(w, req)
	return w
}

func (r *consoleRig) get(t *testing.T, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return r.do(t, http.MethodGet, path, nil, header...)
}

// postForm posts fields as a browser posts a form.
func (r *consoleRig) postForm(t *testing.T, path string, fields url.Values, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return r.do(t, http.MethodPost, path, strings.NewReader(fields.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
}

var hrefOf = regexp.MustCompile(`<a [^>]*id="([^"]+)"[^>]*href="([^"]*)"`)

// link returns the href of the link with id on the page served for path,
// resolved against path, or "" when the page has none.
func link(t *testing.T, path, body, id string) string {
	t.Helper()
	for _, m := range hrefOf.FindAllStringSubmatch(body, -1) {
		if m[1] == id {
			base, err := url.Parse(path)
			require.NoError(t, err)
			ref, err := url.Parse(html.UnescapeString(m[2]))
			require.NoError(t, err)
			return base.ResolveReference(ref).String()
		}
	}
	return ""
}

var incidentLinks = regexp.MustCompile(`<a class="incident" href="incidents/([^"]+)">`)

func TestNewConsoleValidates(t *testing.T) {
	o, err := breach.New(incident.NewMemStore())
	require.NoError(t, err)
	tests := []struct {
		name string
		o    *breach.Orchestrator
		cfg  breach.ConsoleConfig
	}{
		{"nil orchestrator", nil, breach.ConsoleConfig{Actor: headerActor}},
		{"nil actor", o, breach.ConsoleConfig{}},
		{"negative page size", o, breach.ConsoleConfig{Actor: headerActor, PageSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := breach.NewConsole(tt.o, tt.cfg)
			assert.ErrorIs(t, err, breach.ErrInvalidConsoleConfig)
			assert.Nil(t, h)
		})
	}
}

func TestConsoleIncidentPage(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	id := r.seed(t, baseIncident("inc_page"), withApproval, func(inc *incident.Incident) {
		inc.Tasks = []incident.Task{{ID: "scan", Title: "Scan repositories", Mandatory: true}}
		inc.CredentialFingerprint = "sha256:0a1b2c3d"
		inc.Attributes = map[string]string{"repository": "acme/sdk"}
	})
	w := r.get(t, "/console/incidents/"+id)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	body := w.Body.String()
	for _, want := range []string{
		`<span id="state" class="state state-containing">containing</span>`,
		`<dd id="kind">apikey.compromised</dd>`, `<dd id="subject">key_42</dd>`, `<dd id="account">acct_7</dd>`,
		`<dd id="severity" class="severity severity-high">high</dd>`,
		`<code id="fingerprint">sha256:0a1b2c3d</code>`,
		`<dd id="detected-at">2026-03-02 09:00:00 UTC</dd>`, `<dd id="contained-at">—</dd>`,
		`<tr class="action" data-action="disable-key">`,
		`<form class="approve" method="post" action="inc_page/approve">`,
		`<input type="hidden" name="action" value="disable-key">`,
		`<button type="submit">Approve</button>`,
		`<form class="deny" method="post" action="inc_page/deny">`, `name="reason"`,
		`<form class="acknowledge" method="post" action="inc_page/acknowledge">`,
		`<tr class="clock status-running" data-clock="GDPR Art. 33">`, `<td class="time-left">2d 23h left</td>`,
		`<form class="pause_clock" method="post" action="inc_page/pause_clock">`,
		`<form class="clock_not_applicable" method="post" action="inc_page/clock_not_applicable">`,
		`<form class="complete_task" method="post" action="inc_page/complete_task">`,
		`<input type="hidden" name="task" value="scan">`,
		`<form class="milestone" method="post" action="inc_page/milestone">`, `list="milestone-suggestions"`,
		`<form class="dismiss" method="post" action="inc_page/dismiss">`,
		`<p id="chain" class="chain verified">chain verified: 2 entries`,
		`<li class="entry entry-signal" data-index="0">`,
		`<a id="report" href="inc_page/report.md" download>`,
		`<link rel="stylesheet" href="../console.css">`,
		`<span id="actor">alice</span>`,
	} {
		assert.Contains(t, body, want)
	}
	for _, absent := range []string{`class="resolve"`, `class="close"`, `class="retry"`, `class="reopen"`, `class="resume_clock"`, `id="error"`} {
		assert.NotContains(t, body, absent, "not offered for a containing incident")
	}
}

func TestConsoleIncidentPageFormsFollowTheState(t *testing.T) {
	tests := []struct {
		state   incident.State
		offered []string
	}{
		{incident.StateEscalated, []string{"retry", "resolve", "dismiss", "milestone"}},
		{incident.StateResolving, []string{"resolve", "milestone"}},
		{incident.StateResolved, []string{"close", "reopen", "milestone"}},
		{incident.StateClosed, []string{"reopen", "milestone"}},
	}
	all := []string{"retry", "resolve", "close", "reopen", "dismiss", "milestone"}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
			id := r.seed(t, baseIncident("inc_1"), func(inc *incident.Incident) { inc.State = tt.state })
			body := r.get(t, "/console/incidents/"+id).Body.String()
			for _, a := range all {
				form := `<form class="` + a + `" method="post" action="inc_1/` + a + `">`
				if assert.Equal(t, slices.Contains(tt.offered, a), strings.Contains(body, form), a) && slices.Contains(tt.offered, a) {
					assert.Contains(t, body, form)
				}
			}
		})
	}
}

func TestConsoleRegister(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{PageSize: 3}, nil)
	var ids []string // newest first
	for i := range 7 {
		inc := baseIncident(fmt.Sprintf("inc_%02d", i))
		inc.DetectedAt = consoleNow.Add(-time.Duration(10-i) * time.Hour)
		if i%2 == 1 {
			inc.State = incident.StateClosed
		}
		ids = append([]string{r.seed(t, inc)}, ids...)
	}

	t.Run("pages follow the next links", func(t *testing.T) {
		var got []string
		path, pages := "/console/", 0
		for path != "" {
			w := r.get(t, path)
			require.Equal(t, http.StatusOK, w.Code, path)
			body := w.Body.String()
			for _, m := range incidentLinks.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if pages > 0 {
				assert.Equal(t, "http://console.example/console/", link(t, "http://console.example"+path, body, "first"))
			}
			next := link(t, "http://console.example"+path, body, "next")
			path = strings.TrimPrefix(next, "http://console.example")
			pages++
			require.Less(t, pages, 5)
		}
		assert.Equal(t, ids, got, "every incident once, newest first")
		assert.Equal(t, 3, pages)
	})
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"state=closed", []string{"inc_05", "inc_03", "inc_01"}},
			{"state=closed&state=detected&limit=100", ids},
			{"from=" + url.QueryEscape(consoleNow.Add(-6*time.Hour).Format(time.RFC3339)), []string{"inc_06", "inc_05", "inc_04"}},
			{"to=2026-03-02T01:00", []string{"inc_00"}},
			{"kind=other", nil},
			{"account=acct_7&state=detected&limit=2", []string{"inc_06", "inc_04"}},
		}
		for _, tt := range tests {
			w := r.get(t, "/console/?"+tt.query)
			require.Equal(t, http.StatusOK, w.Code, tt.query)
			var got []string
			for _, m := range incidentLinks.FindAllStringSubmatch(w.Body.String(), -1) {
				got = append(got, m[1])
			}
			assert.Equal(t, tt.want, got, tt.query)
		}
		body := r.get(t, "/console/?state=closed&limit=2").Body.String()
		assert.Contains(t, body, `<input type="checkbox" name="state" value="closed" checked>`)
		assert.Contains(t, body, `<input type="checkbox" name="state" value="detected">`)
		next := link(t, "http://console.example/console/?state=closed&limit=2", body, "next")
		assert.Contains(t, next, "state=closed", "the next page keeps the filter")
		assert.Contains(t, r.get(t, "/console/?kind=other").Body.String(), `id="no-incidents"`)
	})
	t.Run("bad filters", func(t *testing.T) {
		for _, q := range []string{"state=nonsense", "from=yesterday", "limit=-1", "cursor=bogus", "from=2026-03-02&to=2026-03-01"} {
			w := r.get(t, "/console/?"+q)
			assert.Equal(t, http.StatusBadRequest, w.Code, q)
			assert.Contains(t, w.Body.String(), `id="error"`, q)
		}
	})
}

func TestConsoleIncidentPagination(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{PageSize: 3}, nil)
	inc := baseIncident("inc_paged")
	for i := range 6 { // 8 entries in all
		inc.Record(incident.Entry{At: consoleNow, Actor: "bob", Type: incident.EntryNote, Detail: "note " + strconv.Itoa(i)})
	}
	for i := range 7 {
		inc.Deliveries = append(inc.Deliveries, incident.Delivery{Recipient: fmt.Sprintf("acct_%d", i), Channel: "email",
			IdempotencyKey: fmt.Sprintf("inc_paged/notify/%d", i), Status: incident.DeliverySent, Attempts: 1})
	}
	inc.Outreach.Sent = 7
	id := r.seed(t, inc)

	follow := func(t *testing.T, linkID, rowPattern string) (rows []string, pages int) {
		t.Helper()
		re := regexp.MustCompile(rowPattern)
		path := "http://console.example/console/incidents/" + id
		for path != "" {
			w := r.get(t, strings.TrimPrefix(path, "http://console.example"))
			require.Equal(t, http.StatusOK, w.Code, path)
			for _, m := range re.FindAllStringSubmatch(w.Body.String(), -1) {
				rows = append(rows, m[1])
			}
			path = link(t, path, w.Body.String(), linkID)
			pages++
			require.Less(t, pages, 6)
		}
		return rows, pages
	}
	t.Run("deliveries", func(t *testing.T) {
		rows, pages := follow(t, "deliveries-next", `<td class="recipient">([^<]+)</td>`)
		assert.Equal(t, []string{"acct_0", "acct_1", "acct_2", "acct_3", "acct_4", "acct_5", "acct_6"}, rows)
		assert.Equal(t, 3, pages)
	})
	t.Run("timeline", func(t *testing.T) {
		rows, pages := follow(t, "timeline-next", `data-index="(\d+)"`)
		assert.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7"}, rows)
		assert.Equal(t, 3, pages)
		body := r.get(t, "/console/incidents/"+id).Body.String()
		assert.Equal(t, "http://console.example/console/incidents/inc_paged?timeline_from=5",
			link(t, "http://console.example/console/incidents/"+id, body, "timeline-latest"))
		assert.Contains(t, body, `chain verified: 8 entries`)
		later := r.get(t, "/console/incidents/"+id+"?timeline_from=5&deliveries_after=inc_paged%2Fnotify%2F2").Body.String()
		assert.Contains(t, later, `<ol class="timeline" start="6">`)
		assert.Contains(t, later, `<td class="recipient">acct_3</td>`)
		assert.NotContains(t, later, `<td class="recipient">acct_2</td>`)
		assert.Equal(t, "http://console.example/console/incidents/inc_paged?deliveries_after=inc_paged%2Fnotify%2F2&timeline_from=2",
			link(t, "http://console.example/console/incidents/"+id, later, "timeline-prev"), "paging one part keeps the other's place")
	})
	t.Run("bad position", func(t *testing.T) {
		assert.Equal(t, http.StatusBadRequest, r.get(t, "/console/incidents/"+id+"?timeline_from=-2").Code)
	})
}

func TestConsoleShowsABrokenChain(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	inc := baseIncident("inc_tampered")
	inc.Record(incident.Entry{At: consoleNow, Actor: "bob", Type: incident.EntryNote, Detail: "last"})
	inc.Timeline[1].Detail = "rewritten afterwards"
	id := r.seed(t, inc)
	body := r.get(t, "/console/incidents/"+id).Body.String()
	assert.Contains(t, body, `<p id="chain" class="chain broken">chain broken: `)
}

func TestConsoleEscapesRecordText(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	const hostile = `<script>alert("x")</script>`
	inc := baseIncident(`inc_<b>"x"`)
	inc.Summary, inc.Subject, inc.Account = hostile, `"><script>s()</script>`, `<img src=x onerror=alert(1)>`
	inc.Attributes = map[string]string{"<k>": hostile}
	inc.Record(incident.Entry{At: consoleNow, Actor: "<i>mallory</i>", Type: incident.EntryNote, Detail: hostile})
	inResolution(inc)
	inc.Tasks[0].Title = hostile
	id := r.seed(t, inc)
	pages := map[string]string{
		"register":    r.get(t, "/console/").Body.String(),
		"incident":    r.get(t, "/console/incidents/"+url.PathEscape(id)).Body.String(),
		"failed post": r.postForm(t, "/console/incidents/"+url.PathEscape(id)+"/resolve", url.Values{"note": {hostile}}).Body.String(),
	}
	for name, body := range pages {
		assert.NotContains(t, body, "<script", name)
		assert.NotContains(t, body, "<img", name)
		assert.NotContains(t, body, "<i>mallory", name)
		assert.NotContains(t, body, `<b>"x"`, name)
	}
	assert.Contains(t, pages["incident"], `<p class="summary" id="summary">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>`)
	assert.Contains(t, pages["register"], `href="incidents/inc_%3Cb%3E%22x%22"`)
	assert.Contains(t, pages["failed post"], `<li data-task="scan">scan: &lt;script&gt;`, "the open task's title, escaped")
	w := r.get(t, "/console/incidents/inc_%3cb%3e%22x%22")
	assert.Equal(t, http.StatusOK, w.Code, "the escaped link leads to the incident")
}

func TestConsoleNeverShowsTheCredential(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	rc, err := r.o.Report(context.Background(), leak())
	require.NoError(t, err)
	fingerprint := incident.NewSecret(canary).Fingerprint()
	for _, path := range []string{"/console/", "/console/incidents/" + rc.IncidentID, "/console/incidents/" + rc.IncidentID + "/report.md",
		"/console/api/incidents", "/console/api/incidents/" + rc.IncidentID, "/console/api/incidents/" + rc.IncidentID + "/timeline"} {
		w := r.get(t, path)
		require.Equal(t, http.StatusOK, w.Code, path)
		assert.NotContains(t, w.Body.String(), canary, path)
		assert.NotContains(t, w.Body.String(), canary[8:], path)
	}
	assert.Contains(t, r.get(t, "/console/incidents/"+rc.IncidentID).Body.String(), `<code id="fingerprint">`+fingerprint+`</code>`)
}

func TestConsoleReportDownload(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	id := r.seed(t, baseIncident("inc_report"))
	w := r.get(t, "/console/incidents/"+id+"/report.md")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "text/markdown; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Equal(t, `attachment; filename="inc_report.md"`, w.Header().Get("Content-Disposition"))
	inc, err := r.o.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, inc.Markdown(), w.Body.String())

	odd := r.seed(t, baseIncident("inc é;\"x"))
	w = r.get(t, "/console/incidents/"+url.PathEscape(odd)+"/report.md")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `attachment; filename*=utf-8''inc%20%C3%A9%3B%22x.md`, w.Header().Get("Content-Disposition"))

	assert.Equal(t, http.StatusNotFound, r.get(t, "/console/incidents/inc_nope/report.md").Code)
}

func TestConsoleSecurityHeadersOnEveryResponse(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	id := r.seed(t, baseIncident("inc_h"), inResolution)
	json := []string{"Content-Type", "application/json"}
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
	}{
		{"register", "GET", "/console/", "", nil, 200},
		{"incident", "GET", "/console/incidents/" + id, "", nil, 200},
		{"report", "GET", "/console/incidents/" + id + "/report.md", "", nil, 200},
		{"style sheet", "GET", "/console/console.css", "", nil, 200},
		{"unknown page", "GET", "/console/nowhere", "", nil, 404},
		{"unknown incident", "GET", "/console/incidents/inc_nope", "", nil, 404},
		{"no actor", "GET", "/console/", "", []string{"X-Actor", ""}, 401},
		{"form post", "POST", "/console/incidents/" + id + "/complete_task", "task=review", []string{"Content-Type", "application/x-www-form-urlencoded"}, 303},
		{"failed form post", "POST", "/console/incidents/" + id + "/resolve", "", []string{"Content-Type", "application/x-www-form-urlencoded"}, 409},
		{"forged post", "POST", "/console/incidents/" + id + "/resolve", "", []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site"}, 403},
		{"api list", "GET", "/console/api/incidents", "", nil, 200},
		{"api incident", "GET", "/console/api/incidents/" + id, "", nil, 200},
		{"api timeline", "GET", "/console/api/incidents/" + id + "/timeline", "", nil, 200},
		{"api deliveries", "GET", "/console/api/incidents/" + id + "/deliveries", "", nil, 200},
		{"api post", "POST", "/console/api/incidents/" + id + "/complete_task", `{"task":"review"}`, json, 200},
		{"api failure", "POST", "/console/api/incidents/" + id + "/resolve", `{}`, json, 409},
		{"api no actor", "GET", "/console/api/incidents", "", []string{"X-Actor", ""}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := r.do(t, tt.method, tt.path, strings.NewReader(tt.body), tt.header...)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			h := w.Header()
			assert.Equal(t, "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", h.Get("Content-Security-Policy"))
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			assert.Equal(t, "same-origin", h.Get("Referrer-Policy"))
			if tt.name != "style sheet" {
				assert.Equal(t, "no-store", h.Get("Cache-Control"))
			}
		})
	}
	css := r.get(t, "/console/console.css")
	assert.Equal(t, "text/css; charset=utf-8", css.Header().Get("Content-Type"))
	assert.Contains(t, css.Body.String(), "body {")
}

// refusals are the ways a request is refused before it reaches the
// orchestrator.
func consoleRefusals() []struct {
	name   string
	cfg    breach.ConsoleConfig
	header []string
	status int
} {
	refuseApprovals := func(r *http.Request, actor string, action breach.ConsoleAction, id string) error {
		if actor == "mallory" {
			return errors.New("mallory may do nothing")
		}
		return nil
	}
	failing := func(r *http.Request) (string, error) { return "alice", errors.New("session expired") }
	return []struct {
		name   string
		cfg    breach.ConsoleConfig
		header []string
		status int
	}{
		{"actor error", breach.ConsoleConfig{Actor: failing}, nil, http.StatusUnauthorized},
		{"empty actor", breach.ConsoleConfig{}, []string{"X-Actor", ""}, http.StatusUnauthorized},
		{"actor with a bidirectional control", breach.ConsoleConfig{}, []string{"X-Actor", "eve\u202eecila"}, http.StatusUnauthorized},
		{"actor not UTF-8", breach.ConsoleConfig{}, []string{"X-Actor", "Jos\xe9"}, http.StatusUnauthorized},
		{"authorize refuses", breach.ConsoleConfig{Authorize: refuseApprovals}, []string{"X-Actor", "mallory"}, http.StatusForbidden},
	}
}

func TestConsoleRefusesWithoutActorOrLeave(t *testing.T) {
	for _, rf := range consoleRefusals() {
		t.Run(rf.name, func(t *testing.T) {
			r := newConsoleRig(t, rf.cfg, nil)
			id := r.seed(t, baseIncident("inc_r"), withApproval)
			before := r.head(t, id).Version
			form := append([]string{"Content-Type", "application/x-www-form-urlencoded"}, rf.header...)
			json := append([]string{"Content-Type", "application/json"}, rf.header...)
			for _, req := range []struct {
				method, path, body string
				header             []string
			}{
				{"GET", "/console/", "", rf.header},
				{"GET", "/console/incidents/" + id, "", rf.header},
				{"GET", "/console/incidents/" + id + "/report.md", "", rf.header},
				{"GET", "/console/api/incidents", "", rf.header},
				{"GET", "/console/api/incidents/" + id, "", rf.header},
				{"GET", "/console/api/incidents/" + id + "/timeline", "", rf.header},
				{"GET", "/console/api/incidents/" + id + "/deliveries", "", rf.header},
				{"POST", "/console/incidents/" + id + "/approve", "action=disable-key", form},
				{"POST", "/console/incidents/" + id + "/acknowledge", "", form},
				{"POST", "/console/api/incidents/" + id + "/approve", `{"action":"disable-key"}`, json},
				{"POST", "/console/api/incidents/" + id + "/dismiss", `{"reason":"test"}`, json},
			} {
				w := r.do(t, req.method, req.path, strings.NewReader(req.body), req.header...)
				assert.Equal(t, rf.status, w.Code, "%s %s", req.method, req.path)
				body := w.Body.String()
				assert.NotContains(t, body, "key_42", "%s %s: nothing of the incident shows", req.method, req.path)
				if strings.Contains(req.path, "/api/") {
					code := map[int]string{401: `"code":"unauthorized"`, 403: `"code":"forbidden"`}[rf.status]
					assert.Contains(t, body, code, req.path)
				} else {
					assert.Contains(t, body, `id="error"`, req.path)
				}
			}
			assert.Equal(t, before, r.head(t, id).Version, "nothing recorded")
			assert.NotContains(t, r.logs.String(), "key_42")
			if strings.HasPrefix(rf.name, "actor with") || strings.HasPrefix(rf.name, "actor not") {
				assert.Contains(t, r.logs.String(), "no action accepts", "a name only the host can mend is logged")
			}
		})
	}
	t.Run("authorize sees the action and the incident", func(t *testing.T) {
		var asked []string
		r := newConsoleRig(t, breach.ConsoleConfig{Authorize: func(r *http.Request, actor string, action breach.ConsoleAction, id string) error {
			asked = append(asked, actor+" "+string(action)+" "+id)
			if action == breach.ConsoleApprove {
				return errors.New("approvals need the incident-commander role")
			}
			return nil
		}}, nil)
		id := r.seed(t, baseIncident("inc_a"), withApproval)
		assert.Equal(t, http.StatusOK, r.get(t, "/console/").Code)
		assert.Equal(t, http.StatusOK, r.get(t, "/console/incidents/"+id).Code)
		w := r.postForm(t, "/console/incidents/"+id+"/approve", url.Values{"action": {"disable-key"}})
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Contains(t, w.Body.String(), "approvals need the incident-commander role")
		assert.Equal(t, http.StatusSeeOther, r.postForm(t, "/console/incidents/"+id+"/acknowledge", nil).Code)
		assert.Equal(t, []string{"alice view ", "alice view inc_a", "alice approve inc_a", "alice acknowledge inc_a"}, asked)
	})
}

func TestConsoleRefusesCrossOriginPosts(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		forged bool
	}{
		{"cross-site fetch metadata", []string{"Sec-Fetch-Site", "cross-site"}, true},
		{"same-site but another origin", []string{"Sec-Fetch-Site", "same-site"}, true},
		{"mismatched origin, no fetch metadata", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, true},
		{"same-origin fetch metadata", []string{"Sec-Fetch-Site", "same-origin"}, false},
		{"matching origin, no fetch metadata", []string{"Sec-Fetch-Site", "", "Origin", "http://console.example"}, false},
		{"no browser headers", []string{"Sec-Fetch-Site", ""}, false},
	}
	for _, tt := range tests {
		for _, via := range []string{"form", "json"} {
			t.Run(tt.name+" "+via, func(t *testing.T) {
				r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
				id := r.seed(t, baseIncident("inc_x"), withApproval)
				before := r.head(t, id)
				var w *httptest.ResponseRecorder
				if via == "form" {
					w = r.postForm(t, "/console/incidents/"+id+"/approve", url.Values{"action": {"disable-key"}}, tt.header...)
				} else {
					w = r.do(t, "POST", "/console/api/incidents/"+id+"/approve", strings.NewReader(`{"action":"disable-key"}`),
						append([]string{"Content-Type", "application/json"}, tt.header...)...)
				}
				after := r.head(t, id)
				if tt.forged {
					assert.Equal(t, http.StatusForbidden, w.Code)
					assert.Contains(t, w.Body.String(), "cross-origin request refused")
					assert.Equal(t, before.Version, after.Version, "nothing recorded")
					return
				}
				assert.Contains(t, []int{http.StatusSeeOther, http.StatusOK}, w.Code, w.Body.String())
				assert.Equal(t, incident.ActionPending, after.Action("disable-key").Status)
			})
		}
	}
}

func TestConsoleAcceptsTrustedOrigins(t *testing.T) {
	cop := http.NewCrossOriginProtection()
	require.NoError(t, cop.AddTrustedOrigin("https://admin.example"))
	r := newConsoleRig(t, breach.ConsoleConfig{CrossOrigin: cop}, nil)
	id := r.seed(t, baseIncident("inc_t"), withApproval)
	w := r.postForm(t, "/console/incidents/"+id+"/acknowledge", nil, "Sec-Fetch-Site", "cross-site", "Origin", "https://admin.example")
	assert.Equal(t, http.StatusSeeOther, w.Code)
}

func TestConsoleApprovalWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rg, stop := startRig(t, critical, incident.SeverityHigh, nil)
		defer stop()
		rg.awaitAction(t, incident.ActionAwaiting)
		console, err := breach.NewConsole(rg.o, breach.ConsoleConfig{Actor: headerActor})
		require.NoError(t, err)
		mux := http.NewServeMux()
		mux.Handle("/console/", http.StripPrefix("/console", console))

		page := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/console/incidents/"+rg.id, nil)
		req.Header.Set("X-Actor", "alice")
		mux.ServeHTTP(page, req)
		require.Contains(t, page.Body.String(), `<form class="approve" method="post" action="`+rg.id+`/approve">`)

		w := httptest.NewRecorder()
		req = httptest.NewRequest("POST", "/console/incidents/"+rg.id+"/approve", strings.NewReader("action=disable-key&note=confirmed"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Actor", "alice")
		mux.ServeHTTP(w, req)
		require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
		assert.Equal(t, "../"+rg.id, w.Header().Get("Location"))

		inc := await(t, rg.o, rg.id, incident.StateResolving)
		assert.Equal(t, incident.ActionApplied, inc.Action("disable-key").Status)
		assert.Equal(t, "alice", inc.Action("disable-key").Approval.By)
		assert.True(t, hasEntry(inc, "alice", `"disable-key" approved: confirmed`))
	})
}

// A host mounts the console under a prefix, naming the actor from its own
// authentication.
func ExampleNewConsole() {
	o, err := breach.New(incident.NewMemStore(), breach.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	console, err := breach.NewConsole(o, breach.ConsoleConfig{
		// The host's own authentication says who is asking: here a header
		// its auth proxy sets; a session cookie or a client certificate
		// would do as well.
		Actor: func(r *http.Request) (string, error) {
			if u := r.Header.Get("X-Auth-User"); u != "" {
				return u, nil
			}
			return "", errors.New("not signed in")
		},
		// Only the security team may act; everyone signed in may look.
		Authorize: func(r *http.Request, actor string, action breach.ConsoleAction, id string) error {
			if action != breach.ConsoleView && r.Header.Get("X-Auth-Group") != "security" {
				return errors.New("only the security team may act on incidents")
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", console))

	for _, user := range []string{"alice", ""} {
		req := httptest.NewRequest("GET", "/console/", nil)
		if user != "" {
			req.Header.Set("X-Auth-User", user)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		fmt.Println(w.Code, w.Header().Get("Content-Type"))
	}
	// Output:
	// 200 text/html; charset=utf-8
	// 401 text/html; charset=utf-8
}

// writeDuringEntries is a MemStore that runs a function once, the first
// time the timeline is read: a write landing while a page is built.
type writeDuringEntries struct {
	*incident.MemStore
	once atomic.Pointer[func()]
}

func (s *writeDuringEntries) Entries(ctx context.Context, id string, from, limit int) (incident.Timeline, error) {
	if f := s.once.Swap(nil); f != nil {
		(*f)()
	}
	return s.MemStore.Entries(ctx, id, from, limit)
}

// TestConsoleChainVerifiedWhileWritten: an entry written between the read
// of the head and the read of the timeline leaves the chain verified: the
// head vouches for the entries it counts.
func TestConsoleChainVerifiedWhileWritten(t *testing.T) {
	ss := &writeDuringEntries{MemStore: incident.NewMemStore()}
	r := newConsoleRig(t, breach.ConsoleConfig{}, ss)
	r.store = ss.MemStore
	id := r.seed(t, baseIncident("inc_chain"))
	note := func() {
		assert.NoError(t, r.o.AddNote(context.Background(), id, "bob", "written while the page loads"))
	}
	ss.once.Store(&note)
	w := r.get(t, "/console/incidents/"+id)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Nil(t, ss.once.Load(), "the note was written while the page was read")
	assert.Contains(t, w.Body.String(), `class="chain verified"`)
	assert.NotContains(t, w.Body.String(), "chain broken")
}
