package incident

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/breachkit/breach/internal/textcheck"
)

// reportTimeLayout is how the report writes instants, always in UTC.
const reportTimeLayout = "2006-01-02 15:04:05 UTC"

// none marks a value the record does not hold (yet).
const none = "—"

// mermaidTextMax bounds, in runes, the text of one event in the timeline
// chart; the table after the chart has every entry in full.
const mermaidTextMax = 60

// Markdown renders the incident as a Markdown post-incident report: a
// summary (with the commander and the incidents merged into it or it was
// merged into, when there are), the response times, the notification
// clocks and milestones, the impact and the notify decision, the evidence
// and the severity changes (when there are), the containment actions with
// their approvals, the customer notices, the recommendations, the
// corrective and preventive tasks, the timeline (as a Mermaid timeline
// chart and as a table) and the result of verifying the timeline's hash
// chain.
//
// The output is deterministic: it depends on the record alone (never on
// the current time, the local zone or map order), every instant is written
// in UTC as "2006-01-02 15:04:05 UTC", and the same incident always renders
// the same text, so reports can be kept in version control and compared.
// Durations are measured from DetectedAt and written in their two largest
// units, rounded down ("2h 5m", "3d 4h", "45s").
//
// The report shows what the record holds and nothing else. The record never
// holds a credential (only its fingerprint), so the report is safe to
// publish internally; it does name customers, responders and the data
// categories exposed, so treat it as confidential. Every value from the
// record is escaped where it is printed, in headings, paragraphs, lists and
// table cells alike, so that it reads as the text it is and cannot add
// structure, links or HTML: the Markdown metacharacters \ ` * _ [ ] < > | #
// ~ & are backslash-escaped ("<" is written "&lt;"; "_" only where it could
// start or end emphasis), a character that would open a block at the start
// of a line (-, +, =, "1.") is escaped, line breaks and tabs become spaces,
// other control characters, line and paragraph separators and
// bidirectional formatting characters are written as their code point
// ("U+001B"), and multi-line details (panic stacks) show their first line
// only. The timeline chart gets the same treatment for Mermaid.
//
// Markdown of a nil incident is "".
func (inc *Incident) Markdown() string {
	if inc == nil {
		return ""
	}
	r := &reportWriter{inc: inc}
	r.header()
	r.summary()
	r.responseTimes()
	r.deadlines()
	r.impact()
	r.evidence()
	r.severityChanges()
	r.actions()
	r.deliveries()
	r.recommendations()
	r.tasks()
	r.timeline()
	r.integrity()
	return strings.TrimRight(r.b.String(), "\n") + "\n"
}

type reportWriter struct {
	b   strings.Builder
	inc *Incident
}

func (r *reportWriter) line(parts ...string) {
	for _, p := range parts {
		r.b.WriteString(p)
	}
	r.b.WriteByte('\n')
}

func (r *reportWriter) section(title string) {
	r.line()
	r.line("## ", title)
	r.line()
}

// table writes a Markdown table; the cells must already be escaped.
func (r *reportWriter) table(header []string, rows [][]string) {
	r.line("| ", strings.Join(header, " | "), " |")
	r.line(strings.Repeat("|---", len(header)), "|")
	for _, row := range rows {
		r.line("| ", strings.Join(row, " | "), " |")
	}
}

func (r *reportWriter) header() {
	inc := r.inc
	title := "# Incident " + orNone(mdText(inc.ID))
	if inc.Kind != "" {
		title += ": " + mdText(inc.Kind)
	}
	r.line(title)
	r.line()
	signals := "none recorded"
	if inc.Signals.Count > 0 {
		signals = strconv.FormatInt(inc.Signals.Count, 10) + " (first seen " + reportTime(inc.Signals.FirstSeen) +
			", last seen " + reportTime(inc.Signals.LastSeen) + ")"
	}
	rows := [][]string{
		{"Subject", cell(inc.Subject)},
		{"Account", cell(inc.Account)},
		{"Severity", cell(inc.Severity.String())},
		{"State", cell(string(inc.State))},
	}
	if inc.MergedInto != "" {
		rows = append(rows, []string{"Merged into", cell(inc.MergedInto)})
	}
	if len(inc.Merged) > 0 {
		rows = append(rows, []string{"Merged incidents", cell(strings.Join(inc.Merged, ", "))})
	}
	if inc.Commander != "" {
		rows = append(rows, []string{"Commander", cell(inc.Commander)})
	}
	rows = append(rows, []string{"Dedup key", cell(inc.DedupKey)})
	if inc.CredentialFingerprint != "" {
		rows = append(rows, []string{"Credential fingerprint", cell(inc.CredentialFingerprint)})
	}
	rows = append(rows, []string{"Signals", cell(signals)})
	if len(inc.Attributes) > 0 {
		var attrs []string
		for _, k := range slices.Sorted(maps.Keys(inc.Attributes)) {
			attrs = append(attrs, k+"="+inc.Attributes[k])
		}
		rows = append(rows, []string{"Attributes", cell(strings.Join(attrs, ", "))})
	}
	rows = append(rows, []string{"Summary", cell(inc.Summary)})
	r.table([]string{"Field", "Value"}, rows)
}

func (r *reportWriter) summary() {
	inc := r.inc
	r.section("Summary")
	if inc.Summary != "" {
		r.line(mdText(inc.Summary))
	} else {
		r.line("No summary recorded.")
	}
	r.line()
	if inv := inc.Investigation; inv != nil {
		r.line("- **Root cause:** ", orText(inv.RootCause, "not recorded"))
		r.line("- **Findings:** ", orText(inv.Summary, "not recorded"))
		r.line("- **Investigated:** ", reportTime(inv.At), " (", plural(inv.Attempts, "attempt"), ")")
		for _, n := range inv.Notes {
			r.line("- **Note:** ", mdText(n))
		}
	} else {
		r.line("No investigation recorded: root cause and impact were not established.")
	}
	if e := inc.Escalation; e != nil {
		r.line()
		r.line("**Escalated** to a person from ", orNone(mdText(string(e.From))), " at ", reportTime(e.At), ": ",
			orText(e.Reason, "no reason recorded"))
	}
	if d := inc.Dismissal; d != nil {
		r.line()
		r.line("**Dismissed** as a false positive by ", orNone(mdText(d.By)), " at ", reportTime(d.At), ": ",
			orText(d.Reason, "no reason recorded"))
	}
	if len(inc.Signals.Samples) > 0 {
		r.line()
		r.line("Signals (", plural(len(inc.Signals.Samples), "sample"), " of ", strconv.FormatInt(inc.Signals.Count, 10), "):")
		r.line()
		var rows [][]string
		for _, s := range inc.Signals.Samples {
			rows = append(rows, []string{cell(reportTime(s.At)), cell(s.Source), cell(s.Severity.String()), cell(s.Summary)})
		}
		r.table([]string{"Seen at", "Source", "Severity", "Summary"}, rows)
	}
}

func (r *reportWriter) responseTimes() {
	inc := r.inc
	r.section("Response times")
	r.line("Measured from detection at ", reportTime(inc.DetectedAt), ".")
	r.line()
	var investigated time.Time
	if inc.Investigation != nil {
		investigated = inc.Investigation.At
	}
	rows := [][]string{
		{"Detected", reportTime(inc.DetectedAt), none},
		{"Contained", reportTime(inc.ContainedAt), elapsed(inc.DetectedAt, inc.ContainedAt)},
		{"Investigated", reportTime(investigated), elapsed(inc.DetectedAt, investigated)},
		{"Customers notified", reportTime(inc.NotifiedAt), elapsed(inc.DetectedAt, inc.NotifiedAt)},
		{"Resolved", reportTime(inc.ResolvedAt), elapsed(inc.DetectedAt, inc.ResolvedAt)},
		{"Closed", reportTime(inc.ClosedAt), elapsed(inc.DetectedAt, inc.ClosedAt)},
	}
	r.table([]string{"Phase", "At", "Time from detection"}, rows)
}

func (r *reportWriter) deadlines() {
	inc := r.inc
	r.section("Notification deadlines")
	if len(inc.Deadlines) == 0 {
		r.line("No notification clocks applied.")
	} else {
		var rows [][]string
		for _, d := range inc.Deadlines {
			start := string(d.Start)
			if d.StartedAt.IsZero() {
				start += " (not reached)"
			} else {
				start += " at " + reportTime(d.StartedAt)
			}
			status := cell(string(d.Status))
			if d.Status == DeadlineLate || d.Status == DeadlineMissed {
				status = "**" + status + "**"
			}
			var paused []string
			if d.Paused > 0 {
				paused = append(paused, formatDuration(d.Paused)+" in total")
			}
			if !d.PausedAt.IsZero() {
				paused = append(paused, "paused since "+reportTime(d.PausedAt))
			}
			if d.PauseReason != "" {
				paused = append(paused, "reason: "+d.PauseReason)
			}
			var alerts []string
			if !d.WarnedAt.IsZero() {
				alerts = append(alerts, "warned "+reportTime(d.WarnedAt))
			}
			if !d.EscalatedAt.IsZero() {
				alerts = append(alerts, "escalated "+reportTime(d.EscalatedAt))
			}
			rows = append(rows, []string{
				cell(d.Name), cell(start), cell(string(d.Stop)), cell(reportTime(d.Due)), status,
				cell(reportTime(d.MetAt)), cell(strings.Join(paused, "; ")), cell(strings.Join(alerts, "; ")),
				cell(d.LateReason),
			})
		}
		r.table([]string{"Clock", "Started by", "Stopped by", "Due", "Status", "Met at", "Paused", "Alerts", "Late reason"}, rows)
	}
	if len(inc.Milestones) > 0 {
		ms := slices.SortedFunc(maps.Keys(inc.Milestones), func(a, b Milestone) int {
			return cmp.Or(inc.Milestones[a].Compare(inc.Milestones[b]), cmp.Compare(a, b))
		})
		r.line()
		r.line("Milestones reached:")
		r.line()
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{cell(string(m)), cell(reportTime(inc.Milestones[m])),
				elapsed(inc.DetectedAt, inc.Milestones[m])})
		}
		r.table([]string{"Milestone", "At", "Time from detection"}, rows)
	}
}

func (r *reportWriter) impact() {
	inc := r.inc
	r.section("Impact and notification decision")
	if inv := inc.Investigation; inv != nil {
		im := inv.Impact
		if len(im.Customers) == 0 {
			r.line("**Affected customers:** none identified.")
		} else {
			r.line("**Affected customers:** ", strconv.Itoa(len(im.Customers)))
			r.line()
			for _, c := range im.Customers {
				r.line("- ", customerName(c))
			}
		}
		r.line()
		if len(im.Data) == 0 {
			r.line("**Data categories:** none identified.")
		} else {
			r.line("**Data categories:**")
			r.line()
			for _, d := range im.Data {
				r.line("- ", orNone(mdText(d.Describe())))
			}
		}
		r.line()
		r.line("**Impact:** ", impactText(im))
	} else {
		r.line("Impact not assessed: no investigation recorded.")
	}
	r.line()
	d := inc.Decision
	if d == nil {
		r.line("**Decision:** none recorded.")
		return
	}
	verdict := "do not notify customers"
	if d.Notify {
		verdict = "notify customers"
	}
	if d.Override {
		verdict += " (overridden by " + orNone(mdText(d.By)) + ")"
	}
	r.line("**Decision:** ", verdict)
	r.line()
	r.line("- **Reason:** ", orText(d.Reason, "not recorded"))
	r.line("- **Decided by:** ", orNone(mdText(d.By)), " at ", reportTime(d.At))
}

// impactText is the whole impact on one line: the summary, completed by the
// data categories when it leads into them (ends with ":"), and what was
// affected, counted.
func impactText(im Impact) string {
	var cats []string
	for _, d := range im.Data {
		cats = append(cats, d.Describe())
	}
	s := orText(im.Summary, "No summary recorded.")
	if strings.HasSuffix(s, ":") {
		if len(cats) == 0 {
			s += " none identified."
		} else {
			s += " " + mdText(strings.Join(cats, ", ")) + "."
		}
	}
	return s + " Affected: " + plural(len(im.Customers), "customer") + ", " + plural(len(im.Data), "data category") + "."
}

// customerName is a customer's ID (or email, the orchestrator's recipient
// ID when there is no ID) and name.
func customerName(c Customer) string {
	id := cmp.Or(c.ID, c.Email)
	switch {
	case id == "" && c.Name == "":
		return none
	case c.Name == "":
		return mdText(id)
	case id == "":
		return mdText(c.Name)
	}
	return mdText(id) + " (" + mdText(c.Name) + ")"
}

// evidence lists the observables attached, when there are.
func (r *reportWriter) evidence() {
	inc := r.inc
	if len(inc.Evidence) == 0 {
		return
	}
	r.section("Evidence")
	var rows [][]string
	for _, ob := range inc.Evidence {
		rows = append(rows, []string{cell(string(ob.Type)), cell(ob.Value), cell(ob.Source), cell(reportTime(ob.SeenAt)),
			cell(ob.AddedBy), cell(reportTime(ob.AddedAt))})
	}
	r.table([]string{"Type", "Value", "Source", "Seen at", "Added by", "Added at"}, rows)
}

// severityChanges lists the timeline's severity entries, when there are.
func (r *reportWriter) severityChanges() {
	var rows [][]string
	for _, e := range r.inc.Timeline {
		if e.Type == EntrySeverity {
			detail, _ := firstLine(e.Detail)
			rows = append(rows, []string{cell(reportTime(e.At)), cell(e.Actor), cell(detail)})
		}
	}
	if len(rows) == 0 {
		return
	}
	r.section("Severity changes")
	r.table([]string{"At", "By", "Change"}, rows)
}

func (r *reportWriter) actions() {
	inc := r.inc
	r.section("Containment actions")
	if len(inc.Actions) == 0 {
		r.line("No containment actions recorded.")
		return
	}
	var rows [][]string
	for _, a := range inc.Actions {
		errText, _ := firstLine(a.LastError)
		rows = append(rows, []string{cell(a.Name), cell(string(a.Status)), strconv.Itoa(a.Attempts),
			cell(approvalText(a.Approval)), cell(reportTime(a.FinishedAt)), cell(errText)})
	}
	r.table([]string{"Action", "Status", "Attempts", "Approval", "Finished at", "Last error"}, rows)
}

func approvalText(a *Approval) string {
	if a == nil {
		return "not required"
	}
	if !a.decided() {
		s := "requested " + reportTime(a.RequestedAt) + ", pending"
		if !a.Due.IsZero() {
			s += ", times out " + reportTime(a.Due)
		}
		return s
	}
	s := "denied"
	if a.Approved {
		s = "approved"
	}
	if a.By != "" {
		s += " by " + a.By
	}
	if a.ByTimeout {
		s += " by timeout"
	}
	s += " at " + reportTime(a.DecidedAt)
	if a.Note != "" {
		s += ": " + a.Note
	}
	return s
}

// reportMaxDeliveries bounds the notices a report lists one by one.
const reportMaxDeliveries = 200

func (r *reportWriter) deliveries() {
	inc := r.inc
	r.section("Customer notices")
	if len(inc.Deliveries) == 0 && inc.Outreach.Total() == 0 {
		r.line("No customer notices recorded.")
		return
	}
	if o := inc.Outreach; o.Total() > 0 {
		r.line(fmt.Sprintf("%s: %d sent, %d failed, %d cancelled, %d unknown, %d claimed.",
			plural(o.Total(), "notice"), o.Sent, o.Failed, o.Cancelled, o.Unknown, o.Claimed))
	}
	shown := inc.Deliveries
	if len(shown) > reportMaxDeliveries {
		// The notices that did not go out come first: they are what a
		// reader acts on.
		shown = make([]Delivery, 0, reportMaxDeliveries)
		for _, sent := range []bool{false, true} {
			for _, d := range inc.Deliveries {
				if (d.Status == DeliverySent) == sent && len(shown) < reportMaxDeliveries {
					shown = append(shown, d)
				}
			}
		}
		r.line(fmt.Sprintf("The first %d of %d notices, those not sent first; the store pages them all (Store.Deliveries).",
			len(shown), len(inc.Deliveries)))
	}
	if len(shown) == 0 {
		return
	}
	names := map[string]string{}
	if inc.Investigation != nil {
		for _, c := range inc.Investigation.Impact.Customers {
			if id := cmp.Or(c.ID, c.Email); id != "" && c.Name != "" {
				names[id] = c.Name
			}
		}
	}
	var rows [][]string
	for _, d := range shown {
		who := d.Recipient
		if n, ok := names[d.Recipient]; ok {
			who += " (" + n + ")"
		}
		errText, _ := firstLine(d.LastError)
		rows = append(rows, []string{cell(who), cell(d.Channel), cell(string(d.Status)), strconv.Itoa(d.Attempts),
			cell(reportTime(d.SentAt)), cell(d.IdempotencyKey), cell(errText)})
	}
	r.table([]string{"Recipient", "Channel", "Status", "Attempts", "Sent at", "Idempotency key", "Last error"}, rows)
}

func (r *reportWriter) recommendations() {
	if len(r.inc.Recommendations) == 0 {
		return
	}
	r.section("Recommendations")
	for _, s := range r.inc.Recommendations {
		r.line("- ", orNone(mdText(s)))
	}
}

func (r *reportWriter) tasks() {
	inc := r.inc
	r.section("Corrective and preventive tasks")
	if len(inc.Tasks) == 0 {
		r.line("No corrective or preventive tasks recorded.")
		return
	}
	var rows [][]string
	for _, t := range inc.Tasks {
		title := cmp.Or(t.Title, t.ID)
		if t.Title != "" && t.ID != "" {
			title += " (" + t.ID + ")"
		}
		rows = append(rows, []string{cell(title), yesNo(t.Mandatory), yesNo(t.Done), cell(t.DoneBy),
			cell(reportTime(t.DoneAt)), cell(t.Note)})
	}
	r.table([]string{"Task", "Mandatory", "Done", "By", "At", "Note"}, rows)
	if open := inc.OpenTasks(); len(open) > 0 {
		r.line()
		r.line("Open mandatory tasks: ", mdText(strings.Join(open, ", ")), ".")
	}
}

func (r *reportWriter) timeline() {
	inc := r.inc
	r.section("Timeline")
	if len(inc.Timeline) == 0 {
		r.line("No timeline entries recorded.")
		return
	}
	r.mermaid()
	r.line()
	var rows [][]string
	for i, e := range inc.Timeline {
		detail, more := firstLine(e.Detail)
		if e.Type == EntryTransition {
			tr := transitionText(e)
			if e.Event != "" {
				tr += " (" + string(e.Event) + ")"
			}
			if detail != "" {
				tr += " — " + detail
			}
			detail = tr
		}
		if more {
			detail += " …"
		}
		rows = append(rows, []string{strconv.Itoa(i), cell(reportTime(e.At)), cell(e.Actor), cell(string(e.Type)), cell(detail)})
	}
	r.table([]string{"#", "At", "Actor", "Type", "Detail"}, rows)
}

// mermaid writes the timeline as a Mermaid timeline chart: a section per
// UTC day, a period per second, an event per entry.
//
// Mermaid's timeline grammar does not allow ":" in a period ("09:00:02"
// would not parse), so periods are written "09h00m02s"; in event text a
// colon followed by a space (or the end) would start a new event, and "%%"
// a comment, so both are rewritten (see mermaidText).
func (r *reportWriter) mermaid() {
	inc := r.inc
	r.line("```mermaid")
	r.line("timeline")
	r.line("    title Incident ", mermaidText(inc.ID))
	day, period := "", ""
	for _, e := range inc.Timeline {
		at := e.At.UTC()
		if d := at.Format(time.DateOnly); d != day {
			day, period = d, ""
			r.line("    section ", d)
		}
		text := mermaidText(eventText(e))
		if p := at.Format("15h04m05s"); p != period {
			period = p
			r.line("        ", p, " : ", text)
		} else {
			r.line("                  : ", text)
		}
	}
	r.line("```")
}

// eventText is an entry's short text for the chart.
func eventText(e Entry) string {
	if e.Type == EntryTransition {
		return transitionText(e)
	}
	s, more := firstLine(e.Detail)
	if s == "" {
		return string(e.Type)
	}
	if more || utf8.RuneCountInString(s) > mermaidTextMax {
		s = truncateRunes(s, mermaidTextMax) + "…"
	}
	return s
}

func transitionText(e Entry) string {
	return orNone(string(e.From)) + " → " + orNone(string(e.To))
}

func (r *reportWriter) integrity() {
	t := r.inc.Timeline
	r.section("Integrity")
	if err := t.Verify(); err != nil {
		r.line("**Timeline verification failed:** ", mdText(err.Error()))
		return
	}
	if len(t) == 0 {
		r.line("Timeline empty: nothing to verify.")
		return
	}
	r.line("Timeline verified: ", plural(len(t), "entry"), ", head ", t.Head().String(), ".")
	r.line()
	r.line("Keep the head hash outside the incident store (an audit log, this report): ",
		"Timeline.VerifyHead with it also finds entries removed from the end.")
}

// ---- formatting ----

// reportTime writes t in UTC, or "—" when zero.
func reportTime(t time.Time) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(reportTimeLayout)
}

// elapsed is formatDuration(to - from), or "—" when either is zero.
func elapsed(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return none
	}
	return formatDuration(to.Sub(from))
}

// formatDuration writes d for people in its two largest units, rounded
// down: "45s", "2m 5s", "2h 5m", "3d 4h". A zero second unit is left out
// ("2h", not "2h 0m"). Less than a second is "<1s"; negative durations get
// a "-".
func formatDuration(d time.Duration) string {
	if d < 0 {
		if d == -d { // math.MinInt64
			d++
		}
		return "-" + formatDuration(-d)
	}
	if d == 0 {
		return "0s"
	}
	if d < time.Second {
		return "<1s"
	}
	units := []struct {
		n      time.Duration
		suffix string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units {
		if d < u.n {
			continue
		}
		s := strconv.FormatInt(int64(d/u.n), 10) + u.suffix
		if i+1 < len(units) {
			next := units[i+1]
			if n := (d % u.n) / next.n; n > 0 {
				s += " " + strconv.FormatInt(int64(n), 10) + next.suffix
			}
		}
		return s
	}
	return "<1s" // not reached
}

// firstLine returns s up to its first line break, trimmed, and whether
// anything followed.
func firstLine(s string) (string, bool) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:]) != ""
	}
	return strings.TrimSpace(s), false
}

// escapeInline makes record text inert inline Markdown on one line (see
// Markdown): metacharacters are backslash-escaped, line breaks and tabs
// become spaces, and characters that are invisible or would reorder the
// line are written as their code point. Invalid UTF-8 becomes U+FFFD.
func escapeInline(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	prev := rune(-1)
	for i, r := range s {
		switch {
		case r == '\n' && prev == '\r':
			// "\r\n" is one line break, already written
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r == '<':
			b.WriteString("&lt;")
		case r == '_':
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			if !isWordRune(prev) || !isWordRune(next) {
				b.WriteByte('\\')
			}
			b.WriteByte('_')
		case r < utf8.RuneSelf && strings.IndexByte("\\`*[]>|#~&", byte(r)) >= 0:
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case textcheck.BadIdentRune(r):
			fmt.Fprintf(&b, "U+%04X", r)
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String()
}

// isWordRune reports whether r is a letter or digit: an "_" between two of
// them cannot start or end emphasis.
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// mdText escapes record text for Markdown (see escapeInline). A leading
// character that would start a block (list, setext heading, ordered list)
// is escaped too, so the text may begin a line.
func mdText(s string) string {
	s = strings.TrimSpace(escapeInline(s))
	if s != "" && strings.ContainsRune("-+=", rune(s[0])) {
		return `\` + s
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); i > 0 && (s[i] == '.' || s[i] == ')') {
		return s[:i] + `\` + s[i:]
	}
	return s
}

// cell escapes record text for a Markdown table cell like mdText; an empty
// cell reads "—".
func cell(s string) string {
	if s == none {
		return s
	}
	return orNone(mdText(s))
}

// mermaidText makes s safe as one Mermaid timeline event (or title): one
// line, no control or bidirectional formatting character (each becomes
// U+FFFD), no "<" or ">" (Mermaid renders labels as HTML; they become
// "‹" and "›"), no "%%" (a comment), and no ":" followed by a space or the end of
// the text (which would start another event); such colons (a run of them)
// become " -". Other colons, as in "sha256:ab" or a URL, are kept.
func mermaidText(s string) string {
	s, _ = firstLine(s)
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '<':
			return '‹' // Mermaid renders labels as HTML
		case r == '>':
			return '›'
		case r != '\t' && textcheck.BadIdentRune(r):
			return '\ufffd'
		}
		return r
	}, s)
	for strings.Contains(s, "%%") {
		s = strings.ReplaceAll(s, "%%", "%")
	}
	var b strings.Builder
	for s != "" {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		run := s[i:]
		rest := strings.TrimLeft(run, ":")
		next, _ := utf8.DecodeRuneInString(rest)
		if rest == "" || unicode.IsSpace(next) {
			b.WriteString(" -")
		} else {
			b.WriteString(run[:len(run)-len(rest)])
		}
		s = rest
	}
	return cmp.Or(strings.TrimSpace(b.String()), none)
}

// truncateRunes cuts s to at most n runes, at the last space when there is
// one in the second half, so that words stay whole.
func truncateRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			cut := s[:j]
			if k := strings.LastIndexByte(cut, ' '); k > len(cut)/2 {
				cut = cut[:k]
			}
			return strings.TrimRight(cut, " ,;:")
		}
		i++
	}
	return s
}

func orNone(s string) string { return cmp.Or(s, none) }

// orText is mdText(s), or alt when s is empty.
func orText(s, alt string) string { return cmp.Or(mdText(s), alt) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
