package breach_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// consoleActionCase is one console action, done or refused; each runs as
// a form post and as a JSON post.
type consoleActionCase struct {
	name   string
	seed   []func(*incident.Incident)
	others []func() *incident.Incident // more incidents in the store
	id     string                      // "" is the seeded incident
	action string
	fields map[string]string
	// status and code are those of a refusal; 0 for success, when check
	// looks at the incident after it and entry, when set, is a detail of
	// an entry alice made.
	status  int
	code    string
	message string
	check   func(t *testing.T, inc *incident.Incident)
	entry   string
	// secret must show nowhere: not in the answer, not in the log.
	secret string
}

// consoleActionCases are every console action, done and refused.
func consoleActionCases() []consoleActionCase {
	const gdpr = "GDPR Art. 33"
	state := func(s incident.State) func(*incident.Incident) { return func(inc *incident.Incident) { inc.State = s } }
	tasksDone := func(inc *incident.Incident) {
		for i := range inc.Tasks {
			inc.Tasks[i].Done, inc.Tasks[i].DoneBy = true, "bob"
		}
	}
	pausedClock := func(inc *incident.Incident) {
		d := gdprClock()
		d.Status, d.PausedAt, d.PauseReason = incident.DeadlinePaused, consoleNow.Add(-time.Hour), "law enforcement"
		inc.Deadlines = []incident.Deadline{d}
	}
	escalated := func(inc *incident.Incident) {
		inc.State = incident.StateEscalated
		inc.Escalation = &incident.Escalation{From: incident.StateContaining, Reason: "revocation API down", At: consoleNow}
	}
	return append([]consoleActionCase{
		{name: "approve", seed: fns(withApproval), action: "approve", fields: map[string]string{"action": "disable-key", "note": "checked"},
			check: func(t *testing.T, inc *incident.Incident) {
				a := inc.Action("disable-key")
				assert.Equal(t, incident.ActionPending, a.Status)
				assert.Equal(t, "alice", a.Approval.By)
				assert.Equal(t, "checked", a.Approval.Note)
			}},
		{name: "approve nothing pending", action: "approve", fields: map[string]string{"action": "disable-key"},
			status: 409, code: "conflict", message: "no approval pending"},
		{name: "approve without action", seed: fns(withApproval), action: "approve", fields: map[string]string{"note": "x"},
			status: 400, code: "invalid_input", message: `approve needs the field "action"`},
		{name: "deny", seed: fns(withApproval), action: "deny", fields: map[string]string{"action": "disable-key", "reason": "key is a test key"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, incident.ActionDenied, inc.Action("disable-key").Status)
				assert.Equal(t, "key is a test key", inc.Action("disable-key").Approval.Note)
			}},
		{name: "deny without reason", seed: fns(withApproval), action: "deny", fields: map[string]string{"action": "disable-key"},
			status: 400, code: "invalid_input", message: `deny needs the field "reason"`},
		{name: "complete task", seed: fns(inResolution), action: "complete_task", fields: map[string]string{"task": "scan", "note": "all clean"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.True(t, inc.Tasks[0].Done)
				assert.Equal(t, "alice", inc.Tasks[0].DoneBy)
				assert.Equal(t, "all clean", inc.Tasks[0].Note)
			}},
		{name: "complete unknown task", seed: fns(inResolution), action: "complete_task", fields: map[string]string{"task": "nope"},
			status: 400, code: "invalid_input", message: "no such task"},
		{name: "acknowledge", seed: fns(withApproval), action: "acknowledge",
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, "alice", inc.Paging.AckedBy)
				assert.False(t, inc.Paging.Open())
			}},
		{name: "acknowledge without alert", action: "acknowledge", status: 409, code: "conflict", message: "no open on-call alert"},
		{name: "pause clock", seed: fns(withApproval), action: "pause_clock", fields: map[string]string{"clock": gdpr, "reason": "law-enforcement delay"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, incident.DeadlinePaused, inc.Deadline(gdpr).Status)
				assert.Equal(t, "law-enforcement delay", inc.Deadline(gdpr).PauseReason)
			}},
		{name: "pause unknown clock", seed: fns(withApproval), action: "pause_clock", fields: map[string]string{"clock": "HIPAA", "reason": "x"},
			status: 409, code: "conflict", message: "no such running clock"},
		{name: "resume clock", seed: fns(pausedClock), action: "resume_clock", fields: map[string]string{"clock": gdpr, "reason": "delay lifted"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, incident.DeadlineRunning, inc.Deadline(gdpr).Status)
				assert.Equal(t, gdprClock().Due.Add(time.Hour), inc.Deadline(gdpr).Due.UTC(), "the paused hour is added")
			}},
		{name: "resume a running clock", seed: fns(withApproval), action: "resume_clock", fields: map[string]string{"clock": gdpr},
			status: 409, code: "conflict", message: "not paused"},
		{name: "clock not applicable", seed: fns(withApproval), action: "clock_not_applicable", fields: map[string]string{"clock": gdpr, "reason": "no personal data"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, incident.DeadlineNotApplicable, inc.Deadline(gdpr).Status)
				assert.Equal(t, "no personal data", inc.Deadline(gdpr).NotApplicableReason)
			}},
		{name: "clock not applicable without reason", seed: fns(withApproval), action: "clock_not_applicable", fields: map[string]string{"clock": gdpr},
			status: 400, code: "invalid_input", message: `clock_not_applicable needs the field "reason"`},
		{name: "milestone", seed: fns(withApproval), action: "milestone", fields: map[string]string{"milestone": "authority-notified", "note": "ref 2026-0312"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Contains(t, inc.Milestones, incident.MilestoneAuthorityNotified)
				assert.Equal(t, incident.DeadlineMet, inc.Deadline(gdpr).Status)
			}},
		{name: "milestone without name", action: "milestone", fields: map[string]string{"milestone": "  "},
			status: 400, code: "invalid_input", message: `milestone needs the field "milestone"`},
		{name: "dismiss", action: "dismiss", fields: map[string]string{"reason": "test key"},
			check: func(t *testing.T, inc *incident.Incident) {
				assert.Equal(t, incident.StateDismissed, inc.State)
				assert.Equal(t, "alice", inc.Dismissal.By)
			}},
		{name: "dismiss in resolution", seed: fns(inResolution), action: "dismiss", fields: map[string]string{"reason": "x"},
			status: 409, code: "conflict", message: `event "dismiss" from state "resolving"`},
		{name: "retry", seed: fns(escalated), action: "retry", fields: map[string]string{"note": "API is back"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.StateContaining, inc.State) }},
		{name: "retry when not escalated", action: "retry", status: 409, code: "conflict", message: "not escalated"},
		{name: "resolve", seed: fns(inResolution, tasksDone), action: "resolve", fields: map[string]string{"note": "rotated"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.StateResolved, inc.State) }},
		{name: "resolve with open tasks", seed: fns(inResolution), action: "resolve", fields: map[string]string{"note": "rotated"},
			status: 409, code: "open_tasks", message: "mandatory tasks are open"},
		{name: "close", seed: fns(state(incident.StateResolved)), action: "close", fields: map[string]string{"note": "reviewed"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.StateClosed, inc.State) }},
		{name: "close an open incident", action: "close", status: 409, code: "conflict", message: `event "close" from state "detected"`},
		{name: "reopen", seed: fns(state(incident.StateClosed)), action: "reopen", fields: map[string]string{"reason": "seen again"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.StateInvestigating, inc.State) }},
		{name: "reopen without reason", seed: fns(state(incident.StateClosed)), action: "reopen",
			status: 400, code: "invalid_input", message: `reopen needs the field "reason"`},
		{name: "reopen an open incident", action: "reopen", fields: map[string]string{"reason": "x"},
			status: 409, code: "conflict", message: `event "reopen" from state "detected"`},
		{name: "unknown action", action: "explode", status: 404, code: "not_found", message: `the console has no action "explode"`},
		{name: "view is no action", action: "view", status: 404, code: "not_found", message: `no action "view"`},
		{name: "unknown incident", id: "inc_nope", action: "close", status: 404, code: "not_found", message: "not found"},
	}, collabActionCases()...)
}

func fns(f ...func(*incident.Incident)) []func(*incident.Incident) { return f }

func TestConsoleActions(t *testing.T) {
	for _, tt := range consoleActionCases() {
		for _, via := range []string{"form", "json"} {
			t.Run(tt.name+" "+via, func(t *testing.T) {
				r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
				seeded := r.seed(t, baseIncident("inc_act"), tt.seed...)
				for _, other := range tt.others {
					r.seed(t, other())
				}
				id := tt.id
				if id == "" {
					id = seeded
				}
				before := r.head(t, seeded)
				fields := url.Values{}
				for k, v := range tt.fields {
					fields.Set(k, v)
				}
				path := "/console/incidents/" + id + "/" + tt.action
				var w *httptest.ResponseRecorder
				if via == "form" {
					w = r.postForm(t, path, fields)
				} else {
					b, err := json.Marshal(tt.fields)
					require.NoError(t, err)
					w = r.do(t, "POST", "/console/api/incidents/"+id+"/"+tt.action, strings.NewReader(string(b)), "Content-Type", "application/json")
				}
				after := r.head(t, seeded)
				if tt.secret != "" {
					assert.NotContains(t, w.Body.String(), tt.secret, "the refused value is not repeated")
					assert.NotContains(t, r.logs.String(), tt.secret, "nor logged")
				}

				if tt.status == 0 {
					if via == "form" {
						require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
						assert.Equal(t, "../"+id, w.Header().Get("Location"), "back to the incident's page")
					} else {
						require.Equal(t, http.StatusOK, w.Code, w.Body.String())
						var got incident.Incident
						require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
						assert.Equal(t, after.State, got.State)
						assert.Equal(t, after.Version, got.Version, "the answer is the incident after the action")
					}
					assert.Greater(t, after.Version, before.Version)
					if tt.check != nil {
						tt.check(t, after)
					}
					if tt.entry != "" {
						inc, err := r.o.Get(context.Background(), seeded)
						require.NoError(t, err)
						assert.True(t, hasEntry(inc, "alice", tt.entry), "no entry by alice with %q", tt.entry)
						if tt.secret != "" {
							assert.False(t, hasEntry(inc, "", tt.secret), "the credential is not recorded")
						}
					}
					return
				}
				assert.Equal(t, tt.status, w.Code, w.Body.String())
				if tt.code != "open_tasks" { // Resolve refused in resolution still rewrites the head (its UpdatedAt)
					assert.Equal(t, before.Version, after.Version, "nothing recorded")
				}
				assert.Equal(t, before.State, after.State)
				if via == "json" {
					var p struct {
						Error struct {
							Code, Message string
							OpenTasks     []string `json:"open_tasks"`
						} `json:"error"`
					}
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p), w.Body.String())
					assert.Equal(t, tt.code, p.Error.Code)
					assert.Contains(t, p.Error.Message, tt.message)
					if tt.code == "open_tasks" {
						assert.Equal(t, []string{"scan"}, p.Error.OpenTasks)
					}
					return
				}
				body := w.Body.String()
				assert.Contains(t, html.UnescapeString(body), tt.message)
				assert.Contains(t, body, `<div id="error" class="error" role="alert" data-status="`+fmt.Sprint(tt.status)+`" data-code="`+tt.code+`">`)
				if tt.status == 400 || tt.status == 409 || (tt.status == 404 && tt.id == "") {
					assert.Contains(t, body, `<span id="state"`, "the incident's page again")
				}
				if tt.code == "open_tasks" {
					assert.Contains(t, body, "<ul id=\"open-tasks\">\n<li data-task=\"scan\">scan: Scan repositories</li>\n</ul>")
				}
			})
		}
	}
}

func TestConsoleActionTableCoversEveryAction(t *testing.T) {
	done := map[string]bool{}
	for _, tt := range consoleActionCases() {
		if tt.status == 0 {
			done[tt.action] = true
		}
	}
	for _, a := range []breach.ConsoleAction{breach.ConsoleApprove, breach.ConsoleDeny, breach.ConsoleCompleteTask,
		breach.ConsoleAcknowledge, breach.ConsolePauseClock, breach.ConsoleResumeClock, breach.ConsoleClockNotApplicable,
		breach.ConsoleMilestone, breach.ConsoleDismiss, breach.ConsoleRetry, breach.ConsoleResolve, breach.ConsoleClose,
		breach.ConsoleReopen, breach.ConsoleNote, breach.ConsoleCommander, breach.ConsoleSeverity, breach.ConsoleEvidence,
		breach.ConsoleMerge} {
		assert.True(t, done[string(a)], "no successful case of %s", a)
	}
}

func TestConsolePostBodies(t *testing.T) {
	big := strings.Repeat("x", 70<<10)
	tests := []struct {
		name, path, body string
		header           []string
		status           int
		want             string
	}{
		{"form of another type", "/console/incidents/inc_b/acknowledge", "{}", []string{"Content-Type", "application/json"}, 415, "application/x-www-form-urlencoded"},
		{"form too large", "/console/incidents/inc_b/dismiss", "reason=" + big, []string{"Content-Type", "application/x-www-form-urlencoded"}, 413, "larger than 65536 bytes"},
		{"json of another type", "/console/api/incidents/inc_b/acknowledge", "{}", []string{"Content-Type", "text/plain"}, 415, `"code":"unsupported_media_type"`},
		{"json without type", "/console/api/incidents/inc_b/acknowledge", "{}", []string{"Content-Type", ""}, 415, `"code":"unsupported_media_type"`},
		{"json too large", "/console/api/incidents/inc_b/dismiss", `{"reason":"` + big + `"}`, []string{"Content-Type", "application/json"}, 413, `"code":"too_large"`},
		{"json unknown field", "/console/api/incidents/inc_b/dismiss", `{"reason":"x","actor":"bob"}`, []string{"Content-Type", "application/json"}, 400, `dismiss takes no field \"actor\"; it takes reason`},
		{"json field not a string", "/console/api/incidents/inc_b/dismiss", `{"reason":3}`, []string{"Content-Type", "application/json"}, 400, `field \"reason\" is not a string`},
		{"json malformed", "/console/api/incidents/inc_b/dismiss", `{"reason":`, []string{"Content-Type", "application/json"}, 400, `"code":"invalid_input"`},
		{"json not an object", "/console/api/incidents/inc_b/dismiss", `["x"]`, []string{"Content-Type", "application/json"}, 400, `"code":"invalid_input"`},
		{"json with more after", "/console/api/incidents/inc_b/dismiss", `{"reason":"x"} {}`, []string{"Content-Type", "application/json"}, 400, "more after the object"},
		{"json charset is fine", "/console/api/incidents/inc_b/milestone", `{"milestone":"authority-notified"}`, []string{"Content-Type", "application/json; charset=utf-8"}, 200, `"state":"containing"`},
		{"json empty body", "/console/api/incidents/inc_b/acknowledge", ``, []string{"Content-Type", "application/json"}, 200, `"acked_by":"alice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
			id := r.seed(t, baseIncident("inc_b"), withApproval)
			before := r.head(t, id).Version
			w := r.do(t, "POST", tt.path, strings.NewReader(tt.body), tt.header...)
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), tt.want)
			if tt.status != 200 {
				assert.Equal(t, before, r.head(t, id).Version, "nothing recorded")
			}
		})
	}
}

// apiPage is the answer of GET /api/incidents.
type apiPage struct {
	Incidents  []incident.Incident `json:"incidents"`
	NextCursor string              `json:"next_cursor"`
}

func TestConsoleAPIList(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{PageSize: 2}, nil)
	var ids []string
	for i := range 5 {
		inc := baseIncident(fmt.Sprintf("inc_%d", i))
		inc.DetectedAt = consoleNow.Add(-time.Duration(10-i) * time.Hour)
		if i == 2 {
			inc.Kind, inc.State = "phishing", incident.StateEscalated
		}
		ids = append([]string{r.seed(t, inc)}, ids...)
	}
	list := func(t *testing.T, query string) (apiPage, int, string) {
		t.Helper()
		w := r.get(t, "/console/api/incidents?"+query)
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		var p apiPage
		if w.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
		}
		return p, w.Code, w.Body.String()
	}

	t.Run("pages", func(t *testing.T) {
		var got []string
		cursor, pages := "", 0
		for {
			p, status, body := list(t, "cursor="+url.QueryEscape(cursor))
			require.Equal(t, http.StatusOK, status, body)
			assert.Contains(t, body, `"next_cursor":`)
			for _, inc := range p.Incidents {
				got = append(got, inc.ID)
			}
			pages++
			if cursor = p.NextCursor; cursor == "" {
				break
			}
			require.Less(t, pages, 5)
		}
		assert.Equal(t, ids, got)
		assert.Equal(t, 3, pages)
	})
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"state=escalated", []string{"inc_2"}},
			{"state=detected,escalated&limit=10", ids},
			{"state=detected&state=escalated&limit=10", ids},
			{"kind=phishing", []string{"inc_2"}},
			{"account=acct_7&limit=1", []string{"inc_4"}},
			{"from=2026-03-02T02:00:00Z&to=2026-03-02T04:00", []string{"inc_3", "inc_2"}},
			{"account=nobody", nil},
		}
		for _, tt := range tests {
			p, status, body := list(t, tt.query)
			require.Equal(t, http.StatusOK, status, body)
			var got []string
			for _, inc := range p.Incidents {
				got = append(got, inc.ID)
			}
			assert.Equal(t, tt.want, got, tt.query)
		}
		_, _, body := list(t, "account=nobody")
		assert.JSONEq(t, `{"incidents":[],"next_cursor":""}`, body)
	})
	t.Run("the incident's own JSON", func(t *testing.T) {
		p, _, _ := list(t, "kind=phishing")
		require.Len(t, p.Incidents, 1)
		head := r.head(t, "inc_2")
		assert.Equal(t, head.Version, p.Incidents[0].Version)
		w := r.get(t, "/console/api/incidents/inc_2")
		require.Equal(t, http.StatusOK, w.Code)
		want, err := json.Marshal(head)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), w.Body.String())
		assert.Contains(t, w.Body.String(), `"detected_at":"2026-03-02T02:00:00Z"`)
	})
	t.Run("bad queries", func(t *testing.T) {
		for _, q := range []string{"state=nonsense", "limit=x", "limit=-3", "from=tuesday", "cursor=nope", "from=2026-03-02&to=2026-03-01"} {
			_, status, body := list(t, q)
			assert.Equal(t, http.StatusBadRequest, status, q)
			assert.Contains(t, body, `{"error":{"code":"invalid_input","message":`, q)
		}
	})
	t.Run("unknown incident", func(t *testing.T) {
		w := r.get(t, "/console/api/incidents/inc_nope")
		assert.Equal(t, http.StatusNotFound, w.Code)
		assert.Contains(t, w.Body.String(), `"code":"not_found"`)
	})
	t.Run("unknown route", func(t *testing.T) {
		w := r.get(t, "/console/api/nowhere")
		assert.Equal(t, http.StatusNotFound, w.Code)
		assert.JSONEq(t, `{"error":{"code":"not_found","message":"no such page in the console"}}`, w.Body.String())
	})
}

func TestConsoleAPITimeline(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{PageSize: 3}, nil)
	inc := baseIncident("inc_tl")
	for i := range 5 { // 7 entries
		inc.Record(incident.Entry{At: consoleNow, Actor: "bob", Type: incident.EntryNote, Detail: fmt.Sprint("note ", i)})
	}
	id := r.seed(t, inc)
	type page struct {
		Entries  incident.Timeline `json:"entries"`
		NextFrom *int              `json:"next_from"`
		Chain    incident.Chain    `json:"chain"`
	}
	var all incident.Timeline
	from, pages := 0, 0
	for {
		w := r.get(t, fmt.Sprintf("/console/api/incidents/%s/timeline?from=%d", id, from))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var p page
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
		assert.Equal(t, 7, p.Chain.Len)
		all = append(all, p.Entries...)
		pages++
		if p.NextFrom == nil {
			assert.Contains(t, w.Body.String(), `"next_from":null`)
			break
		}
		from = *p.NextFrom
		require.Less(t, pages, 5)
	}
	assert.Equal(t, 3, pages)
	require.Len(t, all, 7)
	// limit=0 is the default, the console's page size.
	for _, q := range []string{"", "?limit=0", "?limit=3"} {
		w := r.get(t, "/console/api/incidents/"+id+"/timeline"+q)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var p page
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
		assert.Len(t, p.Entries, 3, "timeline%s", q)
	}
	assert.NoError(t, all.VerifyHead(r.head(t, id).Chain.Head), "the pages make the whole chain")

	w := r.get(t, "/console/api/incidents/"+id+"/timeline?from=5&limit=1000")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `"detail":"note 3"`)
	w = r.get(t, "/console/api/incidents/"+id+"/timeline?from=40")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `"entries":[]`)

	for _, q := range []string{"from=-1", "from=x", "limit=1001"} {
		w := r.get(t, "/console/api/incidents/"+id+"/timeline?"+q)
		assert.Equal(t, http.StatusBadRequest, w.Code, q)
		assert.Contains(t, w.Body.String(), `"code":"invalid_input"`, q)
	}
	assert.Equal(t, http.StatusNotFound, r.get(t, "/console/api/incidents/inc_nope/timeline").Code)
}

func TestConsoleAPIDeliveries(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{PageSize: 2}, nil)
	inc := baseIncident("inc_dl")
	for i := range 5 {
		status := incident.DeliverySent
		if i%2 == 1 {
			status = incident.DeliveryFailed
		}
		inc.Deliveries = append(inc.Deliveries, incident.Delivery{Recipient: fmt.Sprintf("acct_%d", i), Channel: "email",
			IdempotencyKey: fmt.Sprintf("inc_dl/notify/%d", i), Status: status, Attempts: 1, LastError: "relay said no"})
	}
	id := r.seed(t, inc)
	type page struct {
		Deliveries []incident.Delivery `json:"deliveries"`
		NextAfter  string              `json:"next_after"`
	}
	read := func(t *testing.T, query string) []string {
		t.Helper()
		var got []string
		after, pages := "", 0
		for {
			w := r.get(t, "/console/api/incidents/"+id+"/deliveries?"+query+"&after="+url.QueryEscape(after))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			var p page
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
			for _, d := range p.Deliveries {
				got = append(got, d.Recipient)
			}
			pages++
			if after = p.NextAfter; after == "" {
				return got
			}
			require.Less(t, pages, 6)
		}
	}
	assert.Equal(t, []string{"acct_0", "acct_1", "acct_2", "acct_3", "acct_4"}, read(t, ""))
	assert.Equal(t, []string{"acct_1", "acct_3"}, read(t, "status=failed"))
	assert.Equal(t, []string{"acct_0", "acct_1", "acct_2", "acct_3", "acct_4"}, read(t, "limit=10"))
	w := r.get(t, "/console/api/incidents/"+id+"/deliveries?limit=1")
	assert.Contains(t, w.Body.String(), `"idempotency_key":"inc_dl/notify/0"`)
	assert.Contains(t, w.Body.String(), `"next_after":"inc_dl/notify/0"`)

	for _, q := range []string{"status=lost", "limit=x", "limit=5000"} {
		w := r.get(t, "/console/api/incidents/"+id+"/deliveries?"+q)
		assert.Equal(t, http.StatusBadRequest, w.Code, q)
		assert.Contains(t, w.Body.String(), `"code":"invalid_input"`, q)
	}
	assert.Equal(t, http.StatusNotFound, r.get(t, "/console/api/incidents/inc_nope/deliveries").Code)
}

// brokenLister lists nothing: its List fails with a detail only the log
// may hold.
type brokenLister struct{ *incident.MemStore }

func (brokenLister) List(context.Context, incident.ListFilter) (incident.Page, error) {
	return incident.Page{}, errors.New("pq: password authentication failed for user breach_internal")
}

// notLister is a store without the register.
type notLister struct{ incident.Store }

func TestConsoleStoreFailures(t *testing.T) {
	t.Run("internal error", func(t *testing.T) {
		r := newConsoleRig(t, breach.ConsoleConfig{}, brokenLister{incident.NewMemStore()})
		for _, path := range []string{"/console/", "/console/api/incidents"} {
			w := r.get(t, path)
			assert.Equal(t, http.StatusInternalServerError, w.Code, path)
			assert.Contains(t, w.Body.String(), "internal error: the details are in the server", path)
			assert.NotContains(t, w.Body.String(), "breach_internal", path)
		}
		assert.Contains(t, r.logs.String(), "breach_internal", "the detail is logged")
	})
	t.Run("store without a register", func(t *testing.T) {
		r := newConsoleRig(t, breach.ConsoleConfig{}, notLister{incident.NewMemStore()})
		w := r.get(t, "/console/api/incidents")
		assert.Equal(t, http.StatusNotImplemented, w.Code)
		assert.Contains(t, w.Body.String(), `"code":"not_supported"`)
		assert.Equal(t, http.StatusNotImplemented, r.get(t, "/console/").Code)
	})
}

// TestConsoleRefusesEveryActionUnauthorisedOrForged: every action the
// console has, replayed from its successful case as a form and as JSON,
// is refused without an actor (401), without Authorize's leave (403) and
// when posted from another origin (403), and records nothing.
func TestConsoleRefusesEveryActionUnauthorisedOrForged(t *testing.T) {
	type refusal struct {
		name   string
		cfg    breach.ConsoleConfig
		header []string
		status int
		code   string
	}
	refusals := []refusal{{name: "forged cross-site post", header: []string{"Sec-Fetch-Site", "cross-site"},
		status: http.StatusForbidden, code: "cross_origin"}}
	for _, rf := range consoleRefusals() {
		code := map[int]string{401: "unauthorized", 403: "forbidden"}[rf.status]
		refusals = append(refusals, refusal{name: rf.name, cfg: rf.cfg, header: rf.header, status: rf.status, code: code})
	}
	seen := map[string]bool{}
	for _, tt := range consoleActionCases() {
		if tt.status != 0 || seen[tt.action] {
			continue // one successful case per action
		}
		seen[tt.action] = true
		for _, rf := range refusals {
			for _, via := range []string{"form", "json"} {
				t.Run(tt.action+" "+rf.name+" "+via, func(t *testing.T) {
					r := newConsoleRig(t, rf.cfg, nil)
					seeded := r.seed(t, baseIncident("inc_act"), tt.seed...)
					var others []*incident.Incident
					for _, other := range tt.others {
						inc := other()
						r.seed(t, inc)
						others = append(others, inc)
					}
					id := tt.id
					if id == "" {
						id = seeded
					}
					versions := map[string]int64{seeded: r.head(t, seeded).Version}
					for _, inc := range others {
						versions[inc.ID] = r.head(t, inc.ID).Version
					}
					var w *httptest.ResponseRecorder
					if via == "form" {
						fields := url.Values{}
						for k, v := range tt.fields {
							fields.Set(k, v)
						}
						w = r.postForm(t, "/console/incidents/"+id+"/"+tt.action, fields, rf.header...)
					} else {
						b, err := json.Marshal(tt.fields)
						require.NoError(t, err)
						w = r.do(t, "POST", "/console/api/incidents/"+id+"/"+tt.action, strings.NewReader(string(b)),
							append([]string{"Content-Type", "application/json"}, rf.header...)...)
					}
					assert.Equal(t, rf.status, w.Code, w.Body.String())
					if via == "json" {
						assert.Contains(t, w.Body.String(), `"code":"`+rf.code+`"`)
					}
					for inc, v := range versions {
						assert.Equal(t, v, r.head(t, inc).Version, "nothing recorded on %s", inc)
					}
				})
			}
		}
	}
	assert.Len(t, seen, 18, "every console action")
}
