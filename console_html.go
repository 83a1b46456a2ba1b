package breach

import (
	"bytes"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/consoleui"
)

// The console's pages: the register, an incident, an error. Links are
// relative, so the console works under whatever prefix the host strips.

// pageView is what every page shows around its content.
type pageView struct {
	Title string
	// Base is the console's root relative to the page's URL ("./",
	// "../"), ending in a slash.
	Base  string
	Actor string
	Error *problemView
}

// problemView is a refusal or failure shown at the top of a page.
type problemView struct {
	Status    int
	Code      string
	Message   string
	OpenTasks []incident.Task
}

func (c *console) page(r *http.Request, title string) pageView {
	n := strings.Count(r.URL.EscapedPath(), "/") - 1
	base := "./"
	if n > 0 {
		base = strings.Repeat("../", n)
	}
	return pageView{Title: title, Base: base, Actor: actorOf(r)}
}

// render writes the page name with status; a template that fails writes
// nothing of itself.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var b bytes.Buffer
	if err := c.ui.Pages[name].ExecuteTemplate(&b, "layout", data); err != nil {
		c.log.Error("breach: console page failed", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error: the details are in the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (c *console) errorPage(w http.ResponseWriter, r *http.Request, p consoleProblem) {
	v := c.page(r, http.StatusText(p.status))
	v.Error = &problemView{Status: p.status, Code: p.code, Message: p.message}
	for _, t := range p.openTasks {
		v.Error.OpenTasks = append(v.Error.OpenTasks, incident.Task{ID: t})
	}
	c.render(w, r, p.status, "error", v)
}

func (c *console) css(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write(c.ui.CSS)
}

// registerView is the register page.
type registerView struct {
	pageView
	States    []stateOption
	Kind      string
	Account   string
	From, To  string
	Incidents []*incident.Incident
	// Next and First link to the following and the first page; empty
	// when there is none.
	Next, First string
}

type stateOption struct {
	Name    incident.State
	Checked bool
}

func (c *console) register(w http.ResponseWriter, r *http.Request) {
	if err := c.authorize(r, ConsoleView, ""); err != nil {
		c.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	v := registerView{pageView: c.page(r, "Incidents"), Kind: q.Get("kind"), Account: q.Get("account"), From: q.Get("from"), To: q.Get("to")}
	for _, s := range c.o.lc.States() {
		v.States = append(v.States, stateOption{Name: s, Checked: slices.Contains(q["state"], string(s))})
	}
	f, err := parseListFilter(q, c.o.lc)
	if err == nil {
		if f.Limit == 0 {
			f.Limit = c.pageSize
		}
		var page incident.Page
		if page, err = c.o.List(r.Context(), f); err == nil {
			v.Incidents = page.Incidents
			if page.Next != "" {
				v.Next = withQuery(q, "cursor", page.Next)
			}
			if f.Cursor != "" {
				v.First = withQuery(q, "cursor", "")
			}
			c.render(w, r, http.StatusOK, "register", v)
			return
		}
	}
	p := classify(err)
	if p.status >= 500 {
		c.fail(w, r, err)
		return
	}
	v.Error = &problemView{Status: p.status, Code: p.code, Message: p.message}
	c.render(w, r, p.status, "register", v)
}

// withQuery links to the register with the query q, key set to value, or
// without key when value is "".
func withQuery(q url.Values, key, value string) string {
	q = maps.Clone(q)
	if value == "" {
		delete(q, key)
	} else {
		q.Set(key, value)
	}
	if e := q.Encode(); e != "" {
		return "?" + e
	}
	return "./"
}

// incidentView is the incident page.
type incidentView struct {
	pageView
	Inc *incident.Incident
	// Self is the incident's page relative to this page's URL; forms post
	// to Self + "/" + action.
	Self       string
	Times      []phaseTime
	Clocks     []clockView
	Suggested  []incident.Milestone
	Actions    []actionView
	AlertOpen  bool
	Forms      []formView
	Collab     collabView
	Deliveries []incident.Delivery
	Entries    []entryView
	// EntriesStart numbers the first entry shown, from 1.
	EntriesStart int
	Chain        chainView
	// Links to the pages of deliveries and of the timeline; empty when
	// there is none.
	DeliveriesNext, DeliveriesFirst                           string
	TimelineFirst, TimelinePrev, TimelineNext, TimelineLatest string
}

type phaseTime struct {
	ID, Label string
	At        time.Time
}

type clockView struct {
	incident.Deadline
	// Left says how the clock stands in time: "3h 20m left", "overdue by
	// 2h", "paused with 5h left".
	Left                           string
	Overdue                        bool
	CanPause, CanResume, CanMarkNA bool
}

type actionView struct {
	incident.ActionRecord
	Awaiting bool
}

type formView struct {
	Action ConsoleAction
	Label  string
	Fields []consoleField
}

type entryView struct {
	Index int
	incident.Entry
}

type chainView struct{ Class, Text string }

func (c *console) incident(w http.ResponseWriter, r *http.Request) {
	id, ok := c.viewing(w, r)
	if !ok {
		return
	}
	from, err := queryInt(r.URL.Query(), "timeline_from", 0)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v, err := c.incidentView(r, id, from, r.URL.Query().Get("deliveries_after"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "incident", v)
}

// incidentView reads what the incident page shows: the head, a page of
// deliveries after the delivery with key after, and a page of the
// timeline from position from, with the check of the hash chain.
func (c *console) incidentView(r *http.Request, id string, from int, after string) (*incidentView, error) {
	ctx, ps := r.Context(), c.pageSize
	inc, err := c.o.Head(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &incidentView{pageView: c.page(r, "Incident "+inc.ID), Inc: inc}
	v.Self = consoleui.PathSegment(inc.ID)
	if r.Method != http.MethodGet || r.URL.EscapedPath() != "/incidents/"+consoleui.PathSegment(id) {
		v.Self = v.Base + "incidents/" + consoleui.PathSegment(inc.ID)
	}
	if v.Deliveries, err = c.o.Deliveries(ctx, id, incident.DeliveryQuery{After: after, Limit: ps}); err != nil {
		return nil, err
	}
	if err := c.timelinePage(r, v, from); err != nil {
		return nil, err
	}
	link := func(from int, after string) string {
		q := url.Values{}
		if from > 0 {
			q.Set("timeline_from", strconv.Itoa(from))
		}
		if after != "" {
			q.Set("deliveries_after", after)
		}
		if len(q) == 0 {
			return v.Self
		}
		return v.Self + "?" + q.Encode()
	}
	if len(v.Deliveries) == ps {
		v.DeliveriesNext = link(from, v.Deliveries[len(v.Deliveries)-1].IdempotencyKey)
	}
	if after != "" {
		v.DeliveriesFirst = link(from, "")
	}
	v.EntriesStart = from + 1
	if from > 0 {
		v.TimelineFirst, v.TimelinePrev = link(0, after), link(max(0, from-ps), after)
	}
	if next := from + len(v.Entries); len(v.Entries) > 0 && next < inc.Chain.Len {
		v.TimelineNext = link(next, after)
	}
	if last := max(0, inc.Chain.Len-ps); last > from {
		v.TimelineLatest = link(last, after)
	}
	c.describe(v)
	return v, nil
}

// timelinePage reads the entries from position from and checks the
// chain: the whole timeline, when it is no longer than consoleVerifyMax.
func (c *console) timelinePage(r *http.Request, v *incidentView, from int) error {
	ctx, id, ps, n := r.Context(), v.Inc.ID, c.pageSize, v.Inc.Chain.Len
	var shown incident.Timeline
	if n > consoleVerifyMax {
		page, err := c.o.Timeline(ctx, id, from, ps)
		if err != nil {
			return err
		}
		shown = page
		v.Chain = chainView{"unchecked", "chain not checked here: " + strconv.Itoa(n) + " entries, more than the console reads at once; check it with Timeline.Verify"}
	} else {
		var all incident.Timeline
		for len(all) < n {
			page, err := c.o.Timeline(ctx, id, len(all), incident.MaxPageSize)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
		}
		// Entries written since the head was read follow its chain's
		// end: the head vouches for the first n.
		all = all[:min(len(all), n)]
		if err := all.VerifyHead(v.Inc.Chain.Head); err != nil {
			v.Chain = chainView{"broken", "chain broken: " + err.Error()}
		} else {
			v.Chain = chainView{"verified", "chain verified: " + strconv.Itoa(len(all)) + " entries, head " + v.Inc.Chain.Head.String()}
		}
		if from < len(all) {
			shown = all[from:min(len(all), from+ps)]
		}
	}
	for i, e := range shown {
		v.Entries = append(v.Entries, entryView{Index: from + i, Entry: e})
	}
	return nil
}

// describe fills in what the page shows of the head.
func (c *console) describe(v *incidentView) {
	inc, now := v.Inc, c.o.cfg.now()
	v.Times = []phaseTime{
		{"detected-at", "Detected", inc.DetectedAt}, {"contained-at", "Contained", inc.ContainedAt},
		{"notified-at", "Notified", inc.NotifiedAt}, {"resolved-at", "Resolved", inc.ResolvedAt},
		{"closed-at", "Closed", inc.ClosedAt}, {"reopened-at", "Reopened", inc.ReopenedAt},
		{"entered-at", "In this state since", inc.EnteredAt}, {"updated-at", "Updated", inc.UpdatedAt},
	}
	for _, d := range inc.Deadlines {
		v.Clocks = append(v.Clocks, clockFor(d, now))
	}
	v.Suggested = []incident.Milestone{incident.MilestoneMateriality, incident.MilestoneEarlyWarning,
		incident.MilestoneAuthorityNotified, incident.MilestoneFinalReport, incident.MilestoneDisclosureFiled}
	automatic := []incident.Milestone{incident.MilestoneDetected, incident.MilestoneContained,
		incident.MilestoneCustomersNotified, incident.MilestoneResolved, incident.MilestoneClosed}
	for _, d := range inc.Deadlines {
		for _, m := range []incident.Milestone{d.Start, d.Stop} {
			if !slices.Contains(v.Suggested, m) && !slices.Contains(automatic, m) {
				v.Suggested = append(v.Suggested, m)
			}
		}
	}
	for _, a := range inc.Actions {
		v.Actions = append(v.Actions, actionView{ActionRecord: a,
			Awaiting: a.Status == incident.ActionAwaiting && a.Approval != nil && inc.State.Open()})
	}
	v.AlertOpen = inc.Paging.Open()
	for _, name := range consoleFormOrder {
		op := consoleOps[name]
		if op.shown == nil || !op.shown(c.o, inc) {
			continue
		}
		v.Forms = append(v.Forms, formView{Action: name, Label: op.label, Fields: op.fields})
	}
	v.Collab = c.collab(inc)
}

// clockFor is how clock d stands at now.
func clockFor(d incident.Deadline, now time.Time) clockView {
	cv := clockView{Deadline: d}
	switch d.Status {
	case incident.DeadlineRunning, incident.DeadlineMissed:
		if left := d.Due.Sub(now); left > 0 {
			cv.Left = consoleui.Duration(left) + " left"
		} else {
			cv.Left, cv.Overdue = "overdue by "+consoleui.Duration(-left), true
		}
		cv.CanPause = true
	case incident.DeadlinePaused:
		cv.Left, cv.CanResume = "paused with "+consoleui.Duration(max(0, d.Due.Sub(d.PausedAt)))+" left", true
	case incident.DeadlineWaiting:
		cv.Left = "starts at " + string(d.Start)
	}
	cv.CanMarkNA = !d.Status.Done()
	return cv
}

// post runs a form post of one ConsoleAction and sends the browser back to
// the incident's page; a refusal or failure shows that page again with
// the message, or an error page.
func (c *console) post(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), ConsoleAction(r.PathValue("action"))
	err := c.act(r, action, id, func(op consoleOp) (map[string]string, error) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
			return nil, refuse(http.StatusUnsupportedMediaType, "unsupported_media_type", "a form post must be application/x-www-form-urlencoded")
		}
		r.Body = http.MaxBytesReader(w, r.Body, consoleMaxBody)
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		return op.input(action, r.PostForm.Get)
	})
	if err == nil {
		w.Header().Set("Location", "../"+consoleui.PathSegment(id))
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	p := classify(err)
	switch p.status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusBadGateway:
		if c.authorize(r, ConsoleView, id) != nil {
			break
		}
		v, verr := c.incidentView(r, id, 0, "")
		if verr != nil {
			break
		}
		if p.status >= 500 {
			c.log.Error("breach: console action failed", "action", string(action), "incident", id, "actor", actorOf(r), "err", err)
		}
		v.Error = &problemView{Status: p.status, Code: p.code, Message: p.message}
		for _, t := range p.openTasks {
			task := incident.Task{ID: t}
			if i := slices.IndexFunc(v.Inc.Tasks, func(x incident.Task) bool { return x.ID == t }); i >= 0 {
				task = v.Inc.Tasks[i]
			}
			v.Error.OpenTasks = append(v.Error.OpenTasks, task)
		}
		c.render(w, r, p.status, "incident", v)
		return
	}
	c.fail(w, r, err)
}

// report sends the incident's Markdown report as a download.
func (c *console) report(w http.ResponseWriter, r *http.Request) {
	id, ok := c.viewing(w, r)
	if !ok {
		return
	}
	inc, err := c.o.Get(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("Content-Disposition", consoleui.Attachment(inc.ID+".md"))
	_, _ = w.Write([]byte(inc.Markdown()))
}
