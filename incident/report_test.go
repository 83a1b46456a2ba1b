package incident_test

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
)

// reportSecret is the leaked key of reportIncident: only its fingerprint is
// on the record, and it must never reach a report.
const reportSecret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

// reportIncident is a closed API-key incident written out by hand as the
// orchestrator and its responders would have left it: contain-first, one
// action behind an approval, a decision overridden before the investigation
// finished, a notice that failed (a panicking mailer) and was retried after
// an escalation, GDPR met, the NIS2 early warning late, the SEC clock
// paused, and the review held.
func reportIncident() *incident.Incident {
	at := func(day, h, m, s int) time.Time { return time.Date(2026, time.March, day, h, m, s, 0, time.UTC) }
	cet := time.FixedZone("CET", 3600)
	fp := incident.NewSecret(reportSecret).Fingerprint()
	inc := &incident.Incident{
		ID:                    "inc_0001",
		Kind:                  "apikey.compromised",
		Subject:               "key_42",
		Account:               "acct_7",
		DedupKey:              "apikey.compromised/key_42",
		Severity:              incident.SeverityCritical,
		State:                 incident.StateClosed,
		Version:               41,
		Summary:               "live API key found in a public repository",
		CredentialFingerprint: fp,
		Attributes: map[string]string{
			"url":  "https://code.example/acme/sdk/blob/main/config.yml",
			"repo": "acme/sdk",
		},
		DetectedAt:  at(2, 9, 0, 2),
		ContainedAt: at(2, 9, 3, 46),
		NotifiedAt:  at(2, 9, 50, 12),
		ResolvedAt:  at(4, 11, 30, 0),
		ClosedAt:    at(6, 15, 0, 0).In(cet), // written in another zone: the report shows UTC
		UpdatedAt:   at(6, 15, 0, 0),
		Signals: incident.SignalSummary{
			Count:     3,
			FirstSeen: at(2, 9, 0, 2),
			LastSeen:  at(2, 9, 41, 10),
			Samples: []incident.SignalSample{
				{At: at(2, 9, 0, 2), Source: "secret-scanner", Severity: incident.SeverityCritical,
					Summary: "live API key found in a public repository"},
				{At: at(2, 9, 12, 55), Source: "secret-scanner", Severity: incident.SeverityCritical,
					Summary: "same key found in a fork"},
				{At: at(2, 9, 41, 10), Source: "api-gateway", Severity: incident.SeverityHigh,
					Summary: "disabled key presented from 198.51.100.23"},
			},
		},
		Investigation: &incident.Investigation{
			Findings: incident.Findings{
				RootCause: "API key committed to a public repository",
				Summary: "An API key of your account was published in a public code repository and used by a " +
					"third party to read data through our API before we disabled it.",
				Notes: []string{"14 call(s) with the key since the leak", "used from: 198.51.100.23, 203.0.113.9"},
				Impact: incident.Impact{
					Customers: []incident.Customer{
						{ID: "acct_7", Name: "Northwind Ads", Email: "security@northwind.example"},
						{ID: "acct_9", Name: "Contoso Media", Email: "it@contoso.example"},
					},
					Data:    []incident.DataCategory{incident.DataCampaignReports, incident.DataConversion},
					Summary: "The third party could read campaign reports and conversion data of two accounts.",
				},
			},
			At:       at(2, 9, 5, 20),
			Attempts: 1,
		},
		Decision: &incident.Decision{
			Notify:   true,
			Reason:   "the key was used by a third party; notify without waiting for the investigation",
			By:       "dana@example.com",
			At:       at(2, 9, 4, 30).In(cet),
			Override: true,
		},
		Actions: []incident.ActionRecord{
			{Name: "disable-api-key", IdempotencyKey: "brk_a61940a57455c8a3f45ab3d808ee3e6e", Status: incident.ActionApplied,
				Attempts: 2, StartedAt: at(2, 9, 0, 3), FinishedAt: at(2, 9, 0, 13)},
			{Name: "block-abusing-addresses", IdempotencyKey: "brk_abbbd589169c4104978a83d29fdd5015", Status: incident.ActionApplied,
				Attempts: 1, StartedAt: at(2, 9, 3, 41), FinishedAt: at(2, 9, 3, 45),
				Approval: &incident.Approval{RequestedAt: at(2, 9, 0, 4), Due: at(2, 9, 15, 4), DecidedAt: at(2, 9, 3, 40),
					By: "alice@example.com", Approved: true, Note: "two addresses, both in a hosting range"}},
		},
		Deliveries: []incident.Delivery{
			{Recipient: "acct_7", Channel: "email", IdempotencyKey: "brk_f3004e64b85cad00b111751793d8b79c",
				Status: incident.DeliverySent, Attempts: 1, ClaimedAt: at(2, 9, 6, 1), SentAt: at(2, 9, 6, 2)},
			{Recipient: "acct_9", Channel: "email", IdempotencyKey: "brk_9c1e07d2a4b34f0e8d6a5b1c2f3e4d5a",
				Status: incident.DeliverySent, Attempts: 2, ClaimedAt: at(2, 9, 48, 1), SentAt: at(2, 9, 50, 11)},
		},
		Tasks: []incident.Task{
			{ID: "scan-repos", Title: "Add secret scanning to the customer-facing SDK repositories", Mandatory: true,
				Done: true, DoneBy: "alice@example.com", DoneAt: at(3, 10, 12, 0), Note: "secret scanning enabled on 4 repositories"},
			{ID: "key-expiry", Title: "Offer expiring API keys"},
		},
		Deadlines: []incident.Deadline{
			{Name: "GDPR Art. 33: notify the supervisory authority", Start: incident.MilestoneDetected,
				Stop: incident.MilestoneAuthorityNotified, Status: incident.DeadlineMet,
				StartedAt: at(2, 9, 0, 2), Due: at(5, 9, 0, 2), WarnAt: at(4, 15, 0, 2), MetAt: at(3, 14, 20, 0)},
			{Name: "NIS2 Art. 23: early warning", Start: incident.MilestoneDetected,
				Stop: incident.MilestoneEarlyWarning, Status: incident.DeadlineLate,
				StartedAt: at(2, 9, 0, 2), Due: at(3, 9, 0, 2), WarnAt: at(3, 3, 0, 2), WarnedAt: at(3, 3, 0, 2),
				EscalatedAt: at(3, 9, 0, 30), MetAt: at(3, 11, 45, 0),
				LateReason: "the CSIRT portal was down; the warning went by email after the outage"},
			{Name: "SEC Form 8-K Item 1.05: disclose", Start: incident.MilestoneMateriality,
				Stop: incident.MilestoneDisclosureFiled, Status: incident.DeadlinePaused,
				StartedAt: at(3, 16, 0, 0), Due: at(10, 4, 0, 0), WarnAt: at(9, 4, 0, 0),
				PausedAt: at(4, 10, 0, 0), Paused: 90 * time.Minute,
				PauseReason: "the Attorney General requested a national-security delay"},
		},
		Milestones: map[incident.Milestone]time.Time{
			incident.MilestoneDetected:          at(2, 9, 0, 2),
			incident.MilestoneContained:         at(2, 9, 3, 46),
			incident.MilestoneCustomersNotified: at(2, 9, 50, 12),
			incident.MilestoneEarlyWarning:      at(3, 11, 45, 0),
			incident.MilestoneAuthorityNotified: at(3, 14, 20, 0),
			incident.MilestoneMateriality:       at(3, 16, 0, 0),
			incident.MilestoneResolved:          at(4, 11, 30, 0),
			incident.MilestoneClosed:            at(6, 15, 0, 0),
		},
		Recommendations: []string{
			"Generate a new API key in your dashboard under Settings > API keys, and replace the old key wherever it is used.",
			"Review the API activity of your account for the last 7 days.",
			"Keep API keys out of source code; use your platform's secret store.",
		},
		Escalation: &incident.Escalation{From: incident.StateNotifying, At: at(2, 9, 6, 41),
			Reason: `customer notification failed: acct_9 via email: plugin panicked: template: notice|subject: unexpected "|" in operand`},
	}

	sys := incident.ActorSystem
	note := func(a time.Time, actor string, typ incident.EntryType, detail string) {
		inc.Timeline.Append(incident.Entry{At: a, Actor: actor, Type: typ, Detail: detail})
	}
	move := func(a time.Time, actor string, ev incident.Event, from, to incident.State, detail string) {
		inc.Timeline.Append(incident.Entry{At: a, Actor: actor, Type: incident.EntryTransition, Event: ev, From: from, To: to, Detail: detail})
	}
	note(at(2, 9, 0, 2), "detector:secret-scanner", incident.EntrySignal,
		"opened from a critical apikey.compromised signal about key_42: live API key found in a public repository (credential "+fp+")")
	note(at(2, 9, 0, 2), sys, incident.EntryNote, `clock "GDPR Art. 33: notify the supervisory authority" started; due 2026-03-05T09:00:02Z`)
	note(at(2, 9, 0, 2), sys, incident.EntryNote, `clock "NIS2 Art. 23: early warning" started; due 2026-03-03T09:00:02Z`)
	move(at(2, 9, 0, 3), sys, incident.EventContain, incident.StateDetected, incident.StateContaining,
		"contain-first playbook: containing before investigating")
	note(at(2, 9, 0, 4), sys, incident.EntryContainment,
		`containment action "block-abusing-addresses" awaits approval until 2026-03-02T09:15:04Z`)
	note(at(2, 9, 0, 13), sys, incident.EntryContainment,
		`containment action "disable-api-key" applied (attempt 2, key brk_a61940a57455c8a3f45ab3d808ee3e6e)`)
	note(at(2, 9, 3, 40), "alice@example.com", incident.EntryContainment,
		`containment action "block-abusing-addresses" approved: two addresses, both in a hosting range`)
	note(at(2, 9, 3, 45), sys, incident.EntryContainment,
		`containment action "block-abusing-addresses" applied (attempt 1, key brk_abbbd589169c4104978a83d29fdd5015)`)
	move(at(2, 9, 3, 46), sys, incident.EventContained, incident.StateContaining, incident.StateContained,
		"every containment action applied")
	move(at(2, 9, 3, 47), sys, incident.EventInvestigate, incident.StateContained, incident.StateInvestigating,
		"containment holds; investigating root cause and impact")
	note(at(2, 9, 4, 30), "dana@example.com", incident.EntryDecision,
		"decision overridden: notify customers = true (was none): the key was used by a third party; notify without waiting for the investigation")
	note(at(2, 9, 5, 20), sys, incident.EntryInvestigation,
		"investigation done; root cause: API key committed to a public repository; impact: 2 customer(s); data: campaign reports, conversion data")
	move(at(2, 9, 5, 21), sys, incident.EventNotify, incident.StateInvestigating, incident.StateNotifying,
		"customer data affected; notifying customers")
	note(at(2, 9, 6, 2), sys, incident.EntryDelivery,
		`notice to customer "acct_7" via email sent (key brk_f3004e64b85cad00b111751793d8b79c)`)
	note(at(2, 9, 6, 40), sys, incident.EntryDelivery,
		`notice to customer "acct_9" via email failed after 1 attempt(s): plugin panicked: template: notice|subject: unexpected "|" in operand`+
			"\nstack:\ngoroutine 57 [running]:\nexample.com/mailer.(*SMTP).Notify(0xc000120000, {0x9d2f40, 0xc0001a2000})\n"+
			"\t/src/mailer/smtp.go:88 +0x1d4 | frame\ngithub.com/breachkit/breach/incident.Call.func1()\n")
	move(at(2, 9, 6, 41), sys, incident.EventEscalate, incident.StateNotifying, incident.StateEscalated,
		`customer notification failed: acct_9 via email: plugin panicked: template: notice|subject: unexpected "|" in operand`)
	note(at(2, 9, 6, 42), sys, incident.EntryNote, "on-call notified of the escalation")
	move(at(2, 9, 48, 0), "bob@example.com", incident.EventNotify, incident.StateEscalated, incident.StateNotifying,
		"mail template fixed; retrying the notice")
	note(at(2, 9, 50, 11), sys, incident.EntryDelivery,
		`notice to customer "acct_9" via email sent (key brk_9c1e07d2a4b34f0e8d6a5b1c2f3e4d5a)`)
	move(at(2, 9, 50, 12), sys, incident.EventNotified, incident.StateNotifying, incident.StateResolving,
		"every affected customer notified")
	note(at(2, 9, 50, 12), sys, incident.EntryTask,
		`opened mandatory task "scan-repos": Add secret scanning to the customer-facing SDK repositories`)
	note(at(2, 9, 50, 12), sys, incident.EntryTask, `opened optional task "key-expiry": Offer expiring API keys`)
	note(at(3, 3, 0, 2), sys, incident.EntryNote, `clock "NIS2 Art. 23: early warning" due in 6h0m0s`)
	note(at(3, 9, 0, 30), sys, incident.EntryNote, `clock "NIS2 Art. 23: early warning" missed: due 2026-03-03T09:00:02Z; on-call told`)
	note(at(3, 10, 12, 0), "alice@example.com", incident.EntryTask, `task "scan-repos" done: secret scanning enabled on 4 repositories`)
	note(at(3, 11, 45, 0), "carol@example.com", incident.EntryNote,
		"milestone early-warning-sent: early warning sent to the national CSIRT by email")
	note(at(3, 11, 45, 0), sys, incident.EntryNote, `clock "NIS2 Art. 23: early warning" met late`)
	note(at(3, 14, 20, 0), "carol@example.com", incident.EntryNote,
		"milestone authority-notified: lead supervisory authority notified (ref. DPA-2026-0311)")
	note(at(3, 14, 20, 0), sys, incident.EntryNote, `clock "GDPR Art. 33: notify the supervisory authority" met`)
	note(at(3, 16, 0, 0), "erin@example.com", incident.EntryNote,
		"milestone materiality-determined: the disclosure committee found the incident material")
	note(at(3, 16, 0, 0), sys, incident.EntryNote, `clock "SEC Form 8-K Item 1.05: disclose" started; due 2026-03-10T04:00:00Z`)
	note(at(4, 8, 30, 0), "erin@example.com", incident.EntryNote,
		`clock "SEC Form 8-K Item 1.05: disclose" paused: outside counsel review`)
	note(at(4, 10, 0, 0), "erin@example.com", incident.EntryNote,
		`clock "SEC Form 8-K Item 1.05: disclose" resumed after 1h30m; paused again: the Attorney General requested a national-security delay`)
	move(at(4, 11, 30, 0), "alice@example.com", incident.EventResolve, incident.StateResolving, incident.StateResolved,
		"key disabled, abusing addresses blocked, customers told, scanning in place")
	move(at(6, 15, 0, 0), "bob@example.com", incident.EventClose, incident.StateResolved, incident.StateClosed,
		"post-incident review held")
	return inc
}

func TestReportGolden(t *testing.T) {
	inc := reportIncident()
	require.NoError(t, inc.Timeline.Verify())
	orig := inc.Clone()

	got := inc.Markdown()
	assert.Equal(t, orig, inc, "Report must not change the incident")
	for range 20 { // maps (attributes, milestones) iterate in random order
		require.Equal(t, got, inc.Markdown(), "Markdown must be deterministic")
	}
	golden(t, "report.md", got)

	assert.NotContains(t, got, reportSecret, "the credential is never on the record, nor in the report")
	assert.Contains(t, got, inc.CredentialFingerprint)
	assert.Contains(t, got, "| Closed | 2026-03-06 15:00:00 UTC | 4d 5h |", "times in other zones are written in UTC")
	assert.Contains(t, got, "**Decision:** notify customers (overridden by dana@example.com)")
	assert.Contains(t, got, "- **Decided by:** dana@example.com at 2026-03-02 09:04:30 UTC")
	assert.Contains(t, got, "Timeline verified: 35 entries, head "+inc.Timeline.Head().String()+".")
	assert.NotContains(t, got, "goroutine 57", "multi-line details show their first line only")
	checkMarkdownTables(t, got)
	checkMermaid(t, got)
}

func TestReportSignalOnly(t *testing.T) {
	at := time.Date(2026, time.March, 2, 9, 0, 2, 0, time.UTC)
	inc := &incident.Incident{
		ID: "inc_0002", Kind: "apikey.compromised", Subject: "key_43", DedupKey: "apikey.compromised/key_43",
		Severity: incident.SeverityHigh, State: incident.StateDetected, DetectedAt: at, UpdatedAt: at,
		Signals: incident.SignalSummary{Count: 1, FirstSeen: at, LastSeen: at},
	}
	inc.Timeline.Append(incident.Entry{At: at, Actor: incident.ActorSystem, Type: incident.EntrySignal})
	var got string
	require.NotPanics(t, func() { got = inc.Markdown() })

	for _, want := range []string{
		"# Incident inc_0002: apikey.compromised\n",
		"| Account | — |",
		"| Signals | 1 (first seen 2026-03-02 09:00:02 UTC, last seen 2026-03-02 09:00:02 UTC) |",
		"No summary recorded.",
		"No investigation recorded: root cause and impact were not established.",
		"| Contained | — | — |",
		"| Closed | — | — |",
		"No notification clocks applied.",
		"Impact not assessed: no investigation recorded.",
		"**Decision:** none recorded.",
		"No containment actions recorded.",
		"No customer notices recorded.",
		"No corrective or preventive tasks recorded.",
		"        09h00m02s : signal\n",
		"| 0 | 2026-03-02 09:00:02 UTC | system | signal | — |",
		"Timeline verified: 1 entry, head ",
	} {
		assert.Contains(t, got, want)
	}
	for _, not := range []string{"## Recommendations", "Credential fingerprint", "Milestones reached", "Escalated", "Dismissed"} {
		assert.NotContains(t, got, not)
	}
	checkMarkdownTables(t, got)
	checkMermaid(t, got)

	// Nothing at all: still a report, not a panic.
	require.NotPanics(t, func() { got = (&incident.Incident{}).Markdown() })
	assert.Contains(t, got, "# Incident —\n")
	assert.Contains(t, got, "No timeline entries recorded.")
	assert.Contains(t, got, "Timeline empty: nothing to verify.")
	assert.Contains(t, got, "| Signals | none recorded |")
	assert.NotContains(t, got, "```mermaid")
	checkMarkdownTables(t, got)

	var nilInc *incident.Incident
	assert.Empty(t, nilInc.Markdown())
}

func TestReportTamperedTimeline(t *testing.T) {
	inc := reportIncident()
	inc.Timeline[14].Detail = "notice to customer \"acct_9\" via email sent"
	got := inc.Markdown()
	assert.Contains(t, got, "## Integrity\n\n**Timeline verification failed:** incident: timeline tampered at entry 14: "+
		"hash does not match the entry, its position or the one before\n")
	assert.NotContains(t, got, "Timeline verified")

	inc = reportIncident()
	inc.Timeline = append(inc.Timeline[:3:3], inc.Timeline[4:]...) // an entry removed
	assert.Contains(t, inc.Markdown(), "**Timeline verification failed:** incident: timeline tampered at entry 3:")
}

func TestReportEscaping(t *testing.T) {
	inc := &incident.Incident{
		ID: "inc|3", Kind: "test", State: incident.StateEscalated,
		Summary:    "line one | with a pipe\nline two\r\nline three",
		Attributes: map[string]string{"b": "x|y", "a": "<script>alert(1)</script>"},
		Actions: []incident.ActionRecord{{Name: "revoke|all", Status: incident.ActionFailed, Attempts: 3,
			LastError: "boom | bang\nstack:\ngoroutine 1 [running]:"}},
		Escalation: &incident.Escalation{From: incident.StateContaining, Reason: "# not a heading"},
		Tasks:      []incident.Task{{ID: "t1", Title: `back\slash | pipe`, Note: "a\nb"}},
	}
	inc.Timeline.Append(incident.Entry{Actor: "sys|tem", Type: incident.EntryNote, Detail: "a | b: c\nd | e"})
	got := inc.Markdown()
	for _, want := range []string{
		`# Incident inc\|3: test`,
		`| Attributes | a=&lt;script\>alert(1)&lt;/script\>, b=x\|y |`,
		`| Summary | line one \| with a pipe line two line three |`,
		"line one \\| with a pipe line two line three\n",
		`| revoke\|all | failed | 3 | not required | — | boom \| bang |`,
		`**Escalated** to a person from containing at —: \# not a heading`,
		`| back\\slash \| pipe (t1) | no | no | — | — | a b |`,
		`| 0 | — | sys\|tem | note | a \| b: c … |`,
		"        00h00m00s : a | b - c…\n",
	} {
		assert.Contains(t, got, want)
	}
	checkMarkdownTables(t, got)
	checkMermaid(t, got)
}

func TestReportCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "—"},
		{"   ", "—"},
		{"plain", "plain"},
		{"a|b", `a\|b`},
		{"||", `\|\|`},
		{"a\nb", "a b"},
		{"a\r\nb\rc", "a b c"},
		{"  padded\n", "padded"},
		{`a\|b`, `a\\\|b`},
		{`C:\temp`, `C:\\temp`},
		{"<b>bold</b>", "&lt;b\\>bold&lt;/b\\>"},
		{"Zürich ✓", "Zürich ✓"},
		{"# heading", `\# heading`},
		{"[link](https://evil.example)", `\[link\](https://evil.example)`},
		{"![img](x)", `!\[img\](x)`},
		{"*bold* `code` ~~gone~~", "\\*bold\\* \\`code\\` \\~\\~gone\\~\\~"},
		{"_em_ key_42 a_ _b", `\_em\_ key_42 a\_ \_b`},
		{"&amp; &lt;", `\&amp; \&lt;`},
		{"- item", `\- item`},
		{"+ item", `\+ item`},
		{"=== ", `\===`},
		{"1. first", `1\. first`},
		{"12) twelfth", `12\) twelfth`},
		{"v1.2 is fine", "v1.2 is fine"},
		{"esc\x1b[31mred", "escU+001B\\[31mred"},
		{"bell\a nul\x00 del\x7f", "bellU+0007 nulU+0000 delU+007F"},
		{"c1\u009b", "c1U+009B"},
		{"ls\u2028ps\u2029", "lsU+2028psU+2029"},
		{"key_\u202egnp.exe", `key\_U+202Egnp.exe`},
		{"iso\u2066late\u2069", "isoU+2066lateU+2069"},
		{"tab\there", "tab here"},
		{"bad \xff byte", "bad \ufffd byte"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, incident.ReportCell(tt.in))
		})
	}
}

func TestReportMermaidText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "—"},
		{"plain", "plain"},
		{"notify customers: data affected", "notify customers - data affected"},
		{"key: value: more", "key - value - more"},
		{"ends with:", "ends with -"},
		{"tab:\tafter", "tab -\tafter"},
		{"sha256:abc https://x.example/a?b=c:d", "sha256:abc https://x.example/a?b=c:d"},
		{"a::b", "a::b"},
		{"a:: b", "a - b"},
		{"a ::", "a  -"},
		{"50%% done %%%", "50% done %"},
		{"first line\nsecond: line", "first line"},
		{"# hash", "# hash"},
		{"esc\x1b[2J bell\a", "esc\ufffd[2J bell\ufffd"},
		{"bidi\u202eover", "bidi\ufffdover"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := incident.MermaidText(tt.in)
			assert.Equal(t, tt.want, got)
			assertMermaidEvent(t, got)
		})
	}
}

func TestReportApprovalsAndDecisions(t *testing.T) {
	at := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		a    *incident.Approval
		want string
	}{
		{"none", nil, "| not required |"},
		{"pending", &incident.Approval{RequestedAt: at, Due: at.Add(15 * time.Minute)},
			"| requested 2026-03-02 09:00:00 UTC, pending, times out 2026-03-02 09:15:00 UTC |"},
		{"pending forever", &incident.Approval{RequestedAt: at}, "| requested 2026-03-02 09:00:00 UTC, pending |"},
		{"approved", &incident.Approval{RequestedAt: at, DecidedAt: at.Add(time.Minute), By: "alice", Approved: true},
			"| approved by alice at 2026-03-02 09:01:00 UTC |"},
		{"denied", &incident.Approval{RequestedAt: at, DecidedAt: at.Add(time.Minute), By: "bob", Note: "customer traffic"},
			"| denied by bob at 2026-03-02 09:01:00 UTC: customer traffic |"},
		{"by timeout", &incident.Approval{RequestedAt: at, Due: at.Add(time.Minute), DecidedAt: at.Add(time.Minute),
			Approved: true, ByTimeout: true}, "| approved by timeout at 2026-03-02 09:01:00 UTC |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := &incident.Incident{ID: "i", Actions: []incident.ActionRecord{{Name: "block", Status: incident.ActionAwaiting, Approval: tt.a}}}
			assert.Contains(t, inc.Markdown(), tt.want)
		})
	}

	inc := &incident.Incident{ID: "i", Decision: &incident.Decision{Reason: "the investigation found no customer data affected",
		By: incident.ActorSystem, At: at}}
	got := inc.Markdown()
	assert.Contains(t, got, "**Decision:** do not notify customers\n")
	assert.Contains(t, got, "- **Reason:** the investigation found no customer data affected\n")
	assert.Contains(t, got, "- **Decided by:** system at 2026-03-02 09:00:00 UTC\n")
	assert.NotContains(t, got, "overridden")
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{time.Nanosecond, "<1s"},
		{999 * time.Millisecond, "<1s"},
		{time.Second, "1s"},
		{1500 * time.Millisecond, "1s"},
		{45 * time.Second, "45s"},
		{time.Minute, "1m"},
		{time.Minute + 5*time.Second, "1m 5s"},
		{59*time.Minute + 59*time.Second, "59m 59s"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Second, "1h"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h 5m"},
		{23*time.Hour + 59*time.Minute, "23h 59m"},
		{24 * time.Hour, "1d"},
		{24*time.Hour + 59*time.Minute, "1d"},
		{3*24*time.Hour + 4*time.Hour + 30*time.Minute, "3d 4h"},
		{400 * 24 * time.Hour, "400d"},
		{-90 * time.Second, "-1m 30s"},
		{-time.Millisecond, "-<1s"},
		{time.Duration(1<<63 - 1), "106751d 23h"},
		{time.Duration(-1 << 63), "-106751d 23h"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, incident.FormatDuration(tt.d))
		})
	}
}

// checkMarkdownTables checks that every row of every table in md has as many
// cells as the table's header: an unescaped "|" or a line break in a cell
// would change the count.
func checkMarkdownTables(t *testing.T, md string) {
	t.Helper()
	want := -1
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			want = -1
			continue
		}
		n := cells(line)
		if want < 0 {
			want = n
			continue
		}
		assert.Equal(t, want, n, "line %d has %d cells, its table %d: %s", i+1, n, want, line)
	}
}

// cells counts the cells of a table row as GitHub splits it: at each "|"
// not escaped by a backslash.
func cells(row string) int {
	n := -1
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

// checkMermaid checks the timeline chart against Mermaid's timeline grammar
// (packages/mermaid/src/diagrams/timeline/parser/timeline.jison): a period
// may not contain ":" or "#", a section may not contain ":", and event
// text may not hold a ":" followed by a space or at its end, which would
// start the next event.
func checkMermaid(t *testing.T, md string) {
	t.Helper()
	_, chart, ok := strings.Cut(md, "```mermaid\n")
	if !ok {
		return
	}
	chart, _, ok = strings.Cut(chart, "```\n")
	require.True(t, ok, "the mermaid block is closed")
	lines := strings.Split(strings.TrimSuffix(chart, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 4)
	assert.Equal(t, "timeline", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "    title Incident "), lines[1])
	assert.True(t, strings.HasPrefix(lines[2], "    section "), "the first entry opens a section: %s", lines[2])
	for _, l := range lines[2:] {
		switch s := strings.TrimLeft(l, " "); {
		case strings.HasPrefix(s, "section "):
			assert.NotContains(t, s, ":", "section: %s", l)
		case strings.HasPrefix(s, ": "):
			assertMermaidEvent(t, s[2:])
		default:
			period, event, ok := strings.Cut(s, " : ")
			if assert.True(t, ok, "an event line: %q", l) {
				assert.NotContains(t, period, ":", "period: %s", l)
				assert.NotContains(t, period, "#", "period: %s", l)
				assertMermaidEvent(t, event)
			}
		}
		assert.NotContains(t, l, "%%", "a comment: %s", l)
	}
}

func assertMermaidEvent(t *testing.T, text string) {
	t.Helper()
	assert.NotEmpty(t, text)
	assert.NotContains(t, text, "\n")
	for i := 0; i < len(text); i++ {
		if text[i] == ':' {
			ok := i+1 < len(text) && !unicode.IsSpace(rune(text[i+1]))
			assert.True(t, ok, "a colon followed by a space or at the end starts a new event: %q", text)
		}
	}
}

// Hostile text anywhere in the record (identifiers the orchestrator did not
// validate, an investigator's findings, a person's note) reaches the report
// as text: no raw control character, and no "|", "#", "[", "]", "*", "`" or
// "<" that is not escaped, in any heading, paragraph, list item or table
// cell.
func TestReportEscapesEveryValue(t *testing.T) {
	const evil = "x\x1b[31m|#[link](http://e.example)*`<b>\a\x00\u202e\r\n## forged"
	at := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	inc := &incident.Incident{
		ID: "inc" + evil, Kind: "k" + evil, Subject: "s" + evil, Account: "a" + evil, DedupKey: "d" + evil,
		Severity: incident.SeverityHigh, State: incident.StateEscalated, Summary: "sum" + evil,
		Attributes: map[string]string{"k" + evil: "v" + evil},
		DetectedAt: at,
		Signals: incident.SignalSummary{Count: 1, FirstSeen: at, LastSeen: at, Samples: []incident.SignalSample{
			{At: at, Source: "src" + evil, Severity: incident.SeverityHigh, Summary: "sample" + evil}}},
		Investigation: &incident.Investigation{At: at, Attempts: 1, Findings: incident.Findings{
			RootCause: "root" + evil, Summary: "findings" + evil, Notes: []string{"note" + evil},
			Impact: incident.Impact{
				Customers: []incident.Customer{{ID: "c" + evil, Name: "name" + evil}},
				Data:      []incident.DataCategory{incident.DataCategory("data" + evil)},
				Summary:   "impact" + evil,
			}}},
		Decision: &incident.Decision{Notify: true, Reason: "reason" + evil, By: "by" + evil, At: at, Override: true},
		Actions: []incident.ActionRecord{{Name: "act" + evil, Status: incident.ActionFailed, LastError: "err" + evil,
			Approval: &incident.Approval{RequestedAt: at, DecidedAt: at, By: "appr" + evil, Note: "why" + evil}}},
		Deliveries: []incident.Delivery{{Recipient: "c" + evil, Channel: "ch" + evil, Status: incident.DeliveryFailed,
			IdempotencyKey: "key" + evil, LastError: "derr" + evil}},
		Tasks: []incident.Task{{ID: "t" + evil, Title: "title" + evil, Mandatory: true, DoneBy: "by" + evil, Note: "n" + evil}},
		Deadlines: []incident.Deadline{{Name: "clock" + evil, Start: incident.Milestone("m" + evil),
			Stop: incident.Milestone("stop" + evil), PauseReason: "pause" + evil, LateReason: "late" + evil, Status: incident.DeadlineLate}},
		Milestones:      map[incident.Milestone]time.Time{incident.Milestone("ms" + evil): at},
		Recommendations: []string{"rec" + evil},
		Escalation:      &incident.Escalation{From: incident.State("st" + evil), Reason: "esc" + evil, At: at},
		Dismissal:       &incident.Dismissal{By: "dis" + evil, Reason: "dreason" + evil, At: at},
		Commander:       "cmd" + evil,
		Evidence: []incident.Observable{{Type: incident.ObservableType("type" + evil), Value: "value" + evil,
			Source: "source" + evil, SeenAt: at, AddedAt: at, AddedBy: "adder" + evil}},
		MergedInto: "parent" + evil,
		Merged:     []string{"child" + evil},
	}
	inc.Timeline.Append(incident.Entry{At: at, Actor: "actor" + evil, Type: incident.EntryNote, Detail: "detail" + evil})
	inc.Timeline.Append(incident.Entry{At: at, Actor: "actor" + evil, Type: incident.EntrySeverity, Detail: "sev" + evil})
	inc.Timeline.Append(incident.Entry{At: at, Actor: "actor" + evil, Type: incident.EntryTransition,
		From: incident.State("f" + evil), To: incident.State("t" + evil), Event: incident.Event("e" + evil), Detail: "why" + evil})

	got := inc.Markdown()

	for i, r := range got {
		if r != '\n' && (unicode.IsControl(r) || r == '\u202e') {
			t.Fatalf("raw control character %U at byte %d", r, i)
		}
	}
	chart, rest := splitMermaid(got)
	assert.NotContains(t, rest, "## forged", "a value cannot open a heading")
	assert.NotContains(t, rest, "[link](", "a value cannot make a link")
	assert.NotContains(t, chart, "<", "nor HTML in the chart's labels")
	assert.Contains(t, got, `xU+001B\[31m\|\#\[link\](http://e.example)\*\`+"`"+`&lt;b\>U+0007U+0000U+202E \#\# forged`,
		"the text is all there, escaped")
	lines := strings.Split(rest, "\n")
	for n, line := range lines {
		if n+1 < len(lines) && strings.HasPrefix(lines[n+1], "|---") {
			continue // a table's header: the report's own words
		}
		body := line
		switch {
		case strings.HasPrefix(line, "| "), strings.HasPrefix(line, "|---"):
			body = strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |")
			body = strings.ReplaceAll(body, " | ", "") // the table's own separators
		case strings.HasPrefix(line, "## "), strings.HasPrefix(line, "# "):
			body = line[strings.IndexByte(line, ' ')+1:]
		}
		if strings.HasPrefix(line, "|---") {
			continue
		}
		body = strings.ReplaceAll(body, "**", "") // the report's own emphasis; an escaped "*" is "\\*"
		for i := 0; i < len(body); i++ {
			switch body[i] {
			case '\\':
				i++ // an escape and what it escapes
			case '|', '#', '[', ']', '*', '`', '<', '~':
				t.Errorf("line %d: unescaped %q at %d: %s", n+1, body[i], i, line)
			}
		}
	}
	checkMarkdownTables(t, got)
	checkMermaid(t, got)
}

// splitMermaid returns the mermaid block of a report and the rest.
func splitMermaid(md string) (chart, rest string) {
	before, after, ok := strings.Cut(md, "```mermaid\n")
	if !ok {
		return "", md
	}
	chart, after, _ = strings.Cut(after, "```\n")
	return chart, before + after
}

// Regression: the Impact line printed only the summary's lead-in ("...the
// following data of your account:") and nothing after it. It now shows the
// whole impact: the categories the lead-in announces and what was affected.
func TestReportImpactLine(t *testing.T) {
	impact := func(summary string, customers int, data ...incident.DataCategory) *incident.Incident {
		im := incident.Impact{Summary: summary, Data: data}
		for i := range customers {
			im.Customers = append(im.Customers, incident.Customer{ID: "acct_" + string(rune('1'+i))})
		}
		return &incident.Incident{ID: "i", Investigation: &incident.Investigation{Findings: incident.Findings{Impact: im}}}
	}
	tests := []struct {
		name string
		inc  *incident.Incident
		want string
	}{
		{"a lead-in gets its list", impact("The third party could read the following data of your account:", 1,
			incident.DataConversion, incident.DataCampaignReports),
			"**Impact:** The third party could read the following data of your account: conversion data, campaign reports. " +
				"Affected: 1 customer, 2 data categories.\n"},
		{"a lead-in without data", impact("The following data was exposed:", 0),
			"**Impact:** The following data was exposed: none identified. Affected: 0 customers, 0 data categories.\n"},
		{"a sentence", impact("Campaign reports of two accounts were read.", 2, incident.DataCampaignReports),
			"**Impact:** Campaign reports of two accounts were read. Affected: 2 customers, 1 data category.\n"},
		{"no summary", impact("", 1, incident.DataAPIAccess),
			"**Impact:** No summary recorded. Affected: 1 customer, 1 data category.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Contains(t, tt.inc.Markdown(), tt.want)
		})
	}
}

// TestReportCollaboration: the report shows the commander, the merge links
// both ways, the evidence and the severity changes; without them it has no
// such rows or sections.
func TestReportCollaboration(t *testing.T) {
	at := time.Date(2026, time.March, 7, 9, 0, 0, 0, time.UTC)
	inc := reportIncident()
	inc.Commander = "alice@example.com"
	inc.Merged = []string{"inc_0002", "inc_0003"}
	inc.Evidence = []incident.Observable{
		{Type: incident.ObservableIP, Value: "198.51.100.23", Source: "api-gateway", SeenAt: at, AddedAt: at.Add(time.Hour), AddedBy: "bob@example.com"},
		{Type: incident.ObservableKeyID, Value: "key_42", AddedAt: at.Add(2 * time.Hour), AddedBy: "bob@example.com"},
	}
	inc.Timeline.Append(incident.Entry{At: at.Add(3 * time.Hour), Actor: "carol@example.com", Type: incident.EntrySeverity,
		Detail: "severity raised from high to critical: the key reads billing data"})
	child := incidenttest.NewIncident("inc_0002", "apikey.compromised/key_43")
	child.State, child.MergedInto = incident.StateMerged, "inc_0001"

	got := inc.Markdown()
	for _, want := range []string{
		"| Merged incidents | inc_0002, inc_0003 |",
		"| Commander | alice@example.com |",
		"## Evidence\n\n| Type | Value | Source | Seen at | Added by | Added at |",
		`| ip | 198\.51.100.23 | api-gateway | 2026-03-07 09:00:00 UTC | bob@example.com | 2026-03-07 10:00:00 UTC |`,
		"| key_id | key_42 | — | — | bob@example.com | 2026-03-07 11:00:00 UTC |",
		"## Severity changes\n\n| At | By | Change |",
		"| 2026-03-07 12:00:00 UTC | carol@example.com | severity raised from high to critical: the key reads billing data |",
	} {
		assert.Contains(t, got, want)
	}
	checkMarkdownTables(t, got)
	assert.Contains(t, child.Markdown(), "| State | merged |\n| Merged into | inc_0001 |")

	plain := reportIncident().Markdown()
	for _, absent := range []string{"Commander", "Merged", "## Evidence", "## Severity changes"} {
		assert.NotContains(t, plain, absent)
	}

	var b strings.Builder
	require.NoError(t, incident.WriteMarkdownRegister(&b, child))
	assert.Contains(t, b.String(), "| merged into inc_0001 |")
}
