package breach_test

import (
	"context"
	"errors"
	"fmt"
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

// collabActionCases are the collaboration actions of the console, done and
// refused (see consoleActionCases).
func collabActionCases() []consoleActionCase {
	state := func(s incident.State) func(*incident.Incident) { return func(inc *incident.Incident) { inc.State = s } }
	merged := func(inc *incident.Incident) { inc.State, inc.MergedInto = incident.StateMerged, "inc_parent" }
	commander := func(name string) func(*incident.Incident) {
		return func(inc *incident.Incident) { inc.Commander = name }
	}
	other := func(id string, with ...func(*incident.Incident)) func() *incident.Incident {
		return func() *incident.Incident {
			inc := baseIncident(id)
			for _, f := range with {
				f(inc)
			}
			return inc
		}
	}
	fullEvidence := func(inc *incident.Incident) {
		for i := range incident.MaxEvidence {
			inc.Evidence = append(inc.Evidence, incident.Observable{Type: incident.ObservableIP,
				Value: fmt.Sprintf("10.0.%d.%d", i/256, i%256), AddedBy: "bob", AddedAt: consoleNow})
		}
	}
	fullMerged := func(inc *incident.Incident) {
		for i := range incident.MaxMerged {
			inc.Merged = append(inc.Merged, fmt.Sprintf("inc_m%03d", i))
		}
	}
	ip := func(value string) map[string]string { return map[string]string{"type": "ip", "value": value} }
	const token = "Zq9XvT4kLmP2sR8wYb6N"
	secret := "ghp_" + strings.Repeat("aB3d", 9) // a GitHub token, as LooksLikeCredential knows them
	return []consoleActionCase{
		{name: "note", action: "note", fields: map[string]string{"text": "the key was in a public gist\nsince Monday"},
			entry: "the key was in a public gist\nsince Monday"},
		{name: "note on a closed incident", seed: fns(state(incident.StateClosed)), action: "note",
			fields: map[string]string{"text": "review held"}, entry: "review held"},
		{name: "note on a merged incident", seed: fns(merged), action: "note", fields: map[string]string{"text": "see the parent"},
			entry: "see the parent"},
		{name: "note without text", action: "note", fields: map[string]string{"text": " \n "},
			status: 400, code: "invalid_input", message: `note needs the field "text"`},
		{name: "note with a credential", action: "note", fields: map[string]string{"text": "found " + secret + " in a gist"},
			entry: "found ", secret: secret},

		{name: "commander", action: "commander", fields: map[string]string{"commander": "carol", "note": "on call this week"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, "carol", inc.Commander) },
			entry: "commander assigned: carol: on call this week"},
		{name: "commander handed over", seed: fns(commander("bob")), action: "commander", fields: map[string]string{"commander": "carol"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, "carol", inc.Commander) },
			entry: "commander handed over from bob to carol"},
		{name: "commander without name", action: "commander", fields: map[string]string{"note": "x"},
			status: 400, code: "invalid_input", message: `commander needs the field "commander"`},
		{name: "commander of a closed incident", seed: fns(state(incident.StateClosed)), action: "commander",
			fields: map[string]string{"commander": "carol"}, status: 409, code: "conflict", message: "incident has ended"},
		{name: "commander of a merged incident", seed: fns(merged), action: "commander",
			fields: map[string]string{"commander": "carol"}, status: 409, code: "conflict", message: "merged into inc_parent"},

		{name: "severity", action: "severity", fields: map[string]string{"severity": "critical", "reason": "billing data was read"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.SeverityCritical, inc.Severity) },
			entry: "severity raised from high to critical: billing data was read"},
		{name: "severity lowered", action: "severity", fields: map[string]string{"severity": "low", "reason": "a test key"},
			check: func(t *testing.T, inc *incident.Incident) { assert.Equal(t, incident.SeverityLow, inc.Severity) },
			entry: "severity lowered from high to low"},
		{name: "severity unknown name", action: "severity", fields: map[string]string{"severity": "urgent", "reason": "x"},
			status: 400, code: "invalid_input", message: "severity must be low, medium, high or critical"},
		{name: "severity unknown", action: "severity", fields: map[string]string{"severity": "unknown", "reason": "x"},
			status: 400, code: "invalid_input", message: "severity must be low, medium, high or critical"},
		{name: "severity without reason", action: "severity", fields: map[string]string{"severity": "critical"},
			status: 400, code: "invalid_input", message: `severity needs the field "reason"`},
		{name: "severity unchanged", action: "severity", fields: map[string]string{"severity": "high", "reason": "x"},
			status: 409, code: "conflict", message: "already has that severity"},
		{name: "severity of a closed incident", seed: fns(state(incident.StateClosed)), action: "severity",
			fields: map[string]string{"severity": "low", "reason": "x"}, status: 409, code: "conflict", message: "incident has ended"},

		{name: "evidence", action: "evidence",
			fields: map[string]string{"type": "ip", "value": "203.0.113.7", "source": "waf log", "seen_at": "2026-03-02T09:30"},
			check: func(t *testing.T, inc *incident.Incident) {
				require.Len(t, inc.Evidence, 1)
				ev := inc.Evidence[0]
				assert.Equal(t, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "waf log",
					SeenAt: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), AddedBy: "alice", AddedAt: consoleNow},
					incident.Observable{Type: ev.Type, Value: ev.Value, Source: ev.Source, SeenAt: ev.SeenAt.UTC(), AddedBy: ev.AddedBy, AddedAt: ev.AddedAt.UTC()})
			}, entry: "evidence attached: ip 203.0.113.7 (source: waf log, seen 2026-03-02T09:30:00Z)"},
		{name: "evidence seen at in RFC 3339", action: "evidence",
			fields: map[string]string{"type": "hash", "value": strings.Repeat("AB", 32), "seen_at": "2026-03-02T10:30:05+01:00"},
			check: func(t *testing.T, inc *incident.Incident) {
				require.Len(t, inc.Evidence, 1)
				assert.Equal(t, strings.Repeat("ab", 32), inc.Evidence[0].Value, "a hash in lower case")
				assert.True(t, inc.Evidence[0].SeenAt.Equal(time.Date(2026, 3, 2, 9, 30, 5, 0, time.UTC)))
			}},
		{name: "evidence without value", action: "evidence", fields: map[string]string{"type": "ip"},
			status: 400, code: "invalid_input", message: `evidence needs the field "value"`},
		{name: "evidence not an address", action: "evidence", fields: ip("203.0.113"),
			status: 400, code: "invalid_input", message: "not an IP address"},
		{name: "evidence of no type", action: "evidence", fields: map[string]string{"type": "email", "value": "a@example.com"},
			status: 400, code: "invalid_input", message: "not one of ip, url, hash, user, key_id"},
		{name: "evidence seen at no time", action: "evidence", fields: map[string]string{"type": "ip", "value": "203.0.113.7", "seen_at": "yesterday " + secret},
			status: 400, code: "invalid_input", message: "seen_at must be a time", secret: secret},
		{name: "evidence seen in the future", action: "evidence", fields: map[string]string{"type": "ip", "value": "203.0.113.7", "seen_at": "2026-03-02T11:00"},
			status: 400, code: "invalid_input", message: "SeenAt"},
		{name: "evidence that is a credential", action: "evidence", fields: map[string]string{"type": "key_id", "value": secret},
			status: 400, code: "invalid_input", message: "looks like a credential", secret: secret},
		{name: "evidence URL with a token", action: "evidence", fields: map[string]string{"type": "url", "value": "https://files.example/dl?token=" + token},
			status: 400, code: "invalid_input", message: "looks like a credential", secret: token},
		{name: "evidence source with a credential", action: "evidence",
			fields: map[string]string{"type": "ip", "value": "203.0.113.7", "source": "log line " + secret},
			status: 400, code: "invalid_input", message: "Source: looks like a credential", secret: secret},
		{name: "evidence on a closed incident", seed: fns(state(incident.StateClosed)), action: "evidence", fields: ip("203.0.113.7"),
			status: 409, code: "conflict", message: "incident has ended"},
		{name: "evidence beyond the limit", seed: fns(fullEvidence), action: "evidence", fields: ip("203.0.113.7"),
			status: 409, code: "limit_reached", message: "limit reached"},

		{name: "merge", others: []func() *incident.Incident{other("inc_child")}, action: "merge",
			fields: map[string]string{"child": "inc_child", "reason": "one leak, two detectors"},
			check:  func(t *testing.T, inc *incident.Incident) { assert.Equal(t, []string{"inc_child"}, inc.Merged) },
			entry:  "merged incident inc_child"},
		{name: "merge an unknown child", action: "merge", fields: map[string]string{"child": "inc_nope", "reason": "x"},
			status: 404, code: "not_found", message: "not found: incident inc_nope"},
		{name: "merge without reason", others: []func() *incident.Incident{other("inc_child")}, action: "merge",
			fields: map[string]string{"child": "inc_child"}, status: 400, code: "invalid_input", message: `merge needs the field "reason"`},
		{name: "merge into itself", action: "merge", fields: map[string]string{"child": "inc_act", "reason": "x"},
			status: 400, code: "invalid_input", message: "cannot be merged into itself"},
		{name: "merge a child in containment", others: []func() *incident.Incident{other("inc_child", withApproval)}, action: "merge",
			fields: map[string]string{"child": "inc_child", "reason": "x"}, status: 409, code: "conflict", message: "under way"},
		{name: "merge a child merged elsewhere", others: []func() *incident.Incident{other("inc_child", merged)}, action: "merge",
			fields: map[string]string{"child": "inc_child", "reason": "x"}, status: 409, code: "conflict", message: "merged into inc_parent"},
		{name: "merge into a closed incident", seed: fns(state(incident.StateClosed)), others: []func() *incident.Incident{other("inc_child")},
			action: "merge", fields: map[string]string{"child": "inc_child", "reason": "x"}, status: 409, code: "conflict", message: "incident has ended"},
		{name: "merge beyond the limit", seed: fns(fullMerged), others: []func() *incident.Incident{other("inc_child")}, action: "merge",
			fields: map[string]string{"child": "inc_child", "reason": "x"}, status: 409, code: "limit_reached", message: "limit reached"},
	}
}

func TestConsoleCollabRefusedByAuthorize(t *testing.T) {
	posts := []struct {
		action breach.ConsoleAction
		fields url.Values
	}{
		{breach.ConsoleNote, url.Values{"text": {"x"}}},
		{breach.ConsoleCommander, url.Values{"commander": {"carol"}}},
		{breach.ConsoleSeverity, url.Values{"severity": {"critical"}, "reason": {"x"}}},
		{breach.ConsoleEvidence, url.Values{"type": {"ip"}, "value": {"203.0.113.7"}}},
		{breach.ConsoleMerge, url.Values{"child": {"inc_child"}, "reason": {"x"}}},
	}
	// refuse refuses action on the incident "" (any) or id.
	refuse := func(action breach.ConsoleAction, id string) func(*http.Request, string, breach.ConsoleAction, string) error {
		return func(_ *http.Request, _ string, a breach.ConsoleAction, incID string) error {
			if a == action && (id == "" || id == incID) {
				return errors.New(string(a) + " needs the responder role")
			}
			return nil
		}
	}
	for _, p := range posts {
		for _, via := range []string{"form", "json"} {
			t.Run(string(p.action)+" "+via, func(t *testing.T) {
				r := newConsoleRig(t, breach.ConsoleConfig{Authorize: refuse(p.action, "")}, nil)
				id, child := r.seed(t, baseIncident("inc_p")), r.seed(t, baseIncident("inc_child"))
				before, beforeChild := r.head(t, id).Version, r.head(t, child).Version
				w := r.postCollab(t, via, id, p.action, p.fields)
				assert.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
				assert.Contains(t, w.Body.String(), "needs the responder role")
				assert.Equal(t, before, r.head(t, id).Version, "nothing recorded")
				assert.Equal(t, beforeChild, r.head(t, child).Version, "nothing recorded")
			})
		}
	}
	t.Run("merge asks for the parent, then the child", func(t *testing.T) {
		var asked []string
		deny := refuse(breach.ConsoleMerge, "inc_child")
		r := newConsoleRig(t, breach.ConsoleConfig{Authorize: func(req *http.Request, actor string, a breach.ConsoleAction, id string) error {
			asked = append(asked, actor+" "+string(a)+" "+id)
			return deny(req, actor, a, id)
		}}, nil)
		id, child := r.seed(t, baseIncident("inc_p")), r.seed(t, baseIncident("inc_child"))
		before, beforeChild := r.head(t, id).Version, r.head(t, child).Version
		w := r.postCollab(t, "form", id, breach.ConsoleMerge, url.Values{"child": {child}, "reason": {"one leak"}})
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Equal(t, []string{"alice merge inc_p", "alice merge inc_child"}, asked)
		assert.Equal(t, before, r.head(t, id).Version, "nothing recorded")
		assert.Equal(t, beforeChild, r.head(t, child).Version, "nothing recorded")
	})
}

// postCollab posts action on incident id, as a form or as JSON.
func (r *consoleRig) postCollab(t *testing.T, via, id string, action breach.ConsoleAction, fields url.Values, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	if via == "form" {
		return r.postForm(t, "/console/incidents/"+id+"/"+string(action), fields, header...)
	}
	var b strings.Builder
	b.WriteString("{")
	i := 0
	for k := range fields {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%q", k, fields.Get(k))
		i++
	}
	b.WriteString("}")
	return r.do(t, "POST", "/console/api/incidents/"+id+"/"+string(action), strings.NewReader(b.String()),
		append([]string{"Content-Type", "application/json"}, header...)...)
}

func TestConsoleCollabRefusesCrossOriginPosts(t *testing.T) {
	for _, via := range []string{"form", "json"} {
		t.Run(via, func(t *testing.T) {
			r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
			id := r.seed(t, baseIncident("inc_x"))
			before := r.head(t, id).Version
			w := r.postCollab(t, via, id, breach.ConsoleNote, url.Values{"text": {"forged"}}, "Sec-Fetch-Site", "cross-site")
			assert.Equal(t, http.StatusForbidden, w.Code)
			assert.Contains(t, w.Body.String(), "cross-origin request refused")
			assert.Equal(t, before, r.head(t, id).Version, "nothing recorded")
		})
	}
}

func TestConsoleCollabEscapesWhatPeopleWrite(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	id := r.seed(t, baseIncident("inc_e"))
	const hostile = `<script>alert(1)</script>`
	for _, p := range []struct {
		action breach.ConsoleAction
		fields url.Values
	}{
		{breach.ConsoleNote, url.Values{"text": {hostile}}},
		{breach.ConsoleCommander, url.Values{"commander": {hostile}, "note": {`"><script>n()</script>`}}},
		{breach.ConsoleEvidence, url.Values{"type": {"user"}, "value": {hostile}, "source": {`<img src=x onerror=alert(1)>`}}},
	} {
		w := r.postCollab(t, "form", id, p.action, p.fields)
		require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	}
	page := r.get(t, "/console/incidents/"+id).Body.String()
	register := r.get(t, "/console/").Body.String()
	for name, body := range map[string]string{"incident": page, "register": register} {
		assert.NotContains(t, body, "<script", name)
		assert.NotContains(t, body, "<img", name)
	}
	escaped := `&lt;script&gt;alert(1)&lt;/script&gt;`
	assert.Contains(t, page, `<dd id="commander">`+escaped+`</dd>`)
	assert.Contains(t, page, `<td class="value"><code>`+escaped+`</code></td>`)
	assert.Contains(t, page, `<li class="entry entry-note" data-index="2">`)
	assert.Contains(t, page, `<span class="detail">`+escaped+`</span>`, "the note on the timeline")
	assert.Contains(t, register, `<td class="commander">`+escaped+`</td>`)
}

func TestConsoleCollabOnThePage(t *testing.T) {
	r := newConsoleRig(t, breach.ConsoleConfig{}, nil)
	seen := consoleNow.Add(-90 * time.Minute)
	parent := r.seed(t, baseIncident("inc_parent"), func(inc *incident.Incident) {
		inc.Commander = "bob"
		inc.Merged = []string{"inc_child", "inc_c:2"}
		inc.Evidence = []incident.Observable{{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "waf log", SeenAt: seen,
			AddedAt: consoleNow, AddedBy: "carol"}}
	})
	child := r.seed(t, baseIncident("inc_child"), func(inc *incident.Incident) {
		inc.State, inc.MergedInto = incident.StateMerged, "inc_parent"
		inc.DetectedAt = inc.DetectedAt.Add(-time.Hour) // listed after the parent
	})
	closed := r.seed(t, baseIncident("inc_closed"), func(inc *incident.Incident) {
		inc.State = incident.StateClosed
		inc.DetectedAt = inc.DetectedAt.Add(-2 * time.Hour)
	})
	forms := []string{"commander", "severity", "note", "evidence", "merge"}

	t.Run("open", func(t *testing.T) {
		path := "http://console.example/console/incidents/" + parent
		body := r.get(t, "/console/incidents/"+parent).Body.String()
		for _, want := range []string{
			`<dd id="commander">bob</dd>`,
			`<dd id="merged"><a class="child" href="../incidents/inc_child">inc_child</a>, <a class="child" href="../incidents/inc_c%3A2">inc_c:2</a></dd>`,
			`<label>Hand over to <input type="text" name="commander" maxlength="256" required></label>`,
			`<button type="submit">Hand over</button>`,
			`<option value="high" selected>high</option>`, `<option value="critical">critical</option>`,
			`<textarea name="text" rows="3" maxlength="8192" required></textarea>`,
			`<input type="text" name="child" placeholder="incident ID" required>`,
			`<tr class="observable" data-type="ip">`, `<td class="value"><code>203.0.113.7</code></td>`,
			`<td class="source">waf log</td>`, `<td class="seen">2026-03-02 08:30:00 UTC</td>`,
			`<td class="added">by <span class="by">carol</span> at 2026-03-02 10:00:00 UTC</td>`,
			`<option value="key_id">key ID</option>`, `<input type="datetime-local" name="seen_at" step="1">`,
		} {
			assert.Contains(t, body, want)
		}
		for _, f := range forms {
			assert.Contains(t, body, `<form id="`+f+`-form" class="`+f+`" method="post" action="inc_parent/`+f+`">`)
		}
		assert.NotContains(t, body, `id="merged-into"`)
		assert.Empty(t, link(t, path, body, "parent"), "no parent link")
	})
	t.Run("merged", func(t *testing.T) {
		path := "http://console.example/console/incidents/" + child
		body := r.get(t, "/console/incidents/"+child).Body.String()
		assert.Contains(t, body, `<p id="merged-into" class="notice merged">This incident was merged into <a id="parent" class="parent" href="../incidents/inc_parent">inc_parent</a>`)
		assert.Equal(t, "http://console.example/console/incidents/inc_parent", link(t, path, body, "parent"))
		assert.Contains(t, body, `<dd id="commander"><span class="empty">none assigned</span></dd>`)
		assert.Contains(t, body, `<p class="empty">No evidence attached.</p>`)
		for _, f := range forms {
			assert.Equal(t, f == "note", strings.Contains(body, `id="`+f+`-form"`), "a merged incident takes notes only: %s", f)
		}
	})
	t.Run("closed", func(t *testing.T) {
		body := r.get(t, "/console/incidents/"+closed).Body.String()
		for _, f := range forms {
			assert.Equal(t, f == "note", strings.Contains(body, `id="`+f+`-form"`), "a closed incident takes notes only: %s", f)
		}
	})
	t.Run("new commander", func(t *testing.T) {
		id := r.seed(t, baseIncident("inc_new"))
		body := r.get(t, "/console/incidents/"+id).Body.String()
		assert.Contains(t, body, `<label>Commander <input type="text" name="commander"`)
		assert.Contains(t, body, `<button type="submit">Assign commander</button>`)
	})
	t.Run("register", func(t *testing.T) {
		body := r.get(t, "/console/").Body.String()
		assert.Contains(t, body, `<th>Commander</th>`)
		assert.Contains(t, body, `<td class="commander">bob</td>`)
		assert.Contains(t, body, `<td class="state state-merged">merged into <a class="parent" href="incidents/inc_parent">inc_parent</a></td>`)
	})
	t.Run("a merge through the page", func(t *testing.T) {
		a, b := r.seed(t, baseIncident("inc_a")), r.seed(t, baseIncident("inc_b"))
		w := r.postForm(t, "/console/incidents/"+a+"/merge", url.Values{"child": {b}, "reason": {"one leak, two detectors"}})
		require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
		body := r.get(t, "/console/incidents/"+b).Body.String()
		assert.Contains(t, body, `href="../incidents/inc_a">inc_a</a>`)
		assert.Contains(t, body, `<span id="state" class="state state-merged">merged</span>`)
		assert.Contains(t, r.get(t, "/console/incidents/"+a).Body.String(), `<a class="child" href="../incidents/inc_b">inc_b</a>`)
		inc, err := r.o.Get(context.Background(), b)
		require.NoError(t, err)
		assert.True(t, hasEntry(inc, "alice", "merged into incident inc_a"))
	})
}

// TestConsoleSeverityChangeNeedsApproveWhileAnApprovalWaits: an actor
// Authorize refuses approvals cannot get a waiting action run by raising
// the severity past its approval rule (or merging a more severe incident
// in): while an action awaits approval, those posts need ConsoleApprove
// too; with none waiting, they do not.
func TestConsoleSeverityChangeNeedsApproveWhileAnApprovalWaits(t *testing.T) {
	cfg := breach.ConsoleConfig{Authorize: func(r *http.Request, actor string, a breach.ConsoleAction, id string) error {
		if actor == "bob" && a == breach.ConsoleApprove {
			return errors.New("approvals need the incident-commander role")
		}
		return nil
	}}
	tests := []struct {
		name    string
		waiting bool
		status  int
	}{
		{"an approval waits", true, http.StatusForbidden},
		{"none waits", false, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newConsoleRig(t, cfg, nil)
			var seed []func(*incident.Incident)
			if tt.waiting {
				seed = append(seed, withApproval)
			}
			id := r.seed(t, baseIncident("inc_sev"), seed...)
			before := r.head(t, id).Version
			w := r.postForm(t, "/console/incidents/"+id+"/severity", url.Values{"severity": {"critical"}, "reason": {"worse than thought"}}, "X-Actor", "bob")
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			after := r.head(t, id)
			if tt.waiting {
				assert.Equal(t, before, after.Version, "nothing recorded")
				assert.Equal(t, incident.ActionAwaiting, after.Actions[0].Status)
				return
			}
			assert.Equal(t, incident.SeverityCritical, after.Severity)
		})
	}
}
