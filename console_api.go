package breach

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
)

// The console's JSON API. Its routes and shapes are stable across
// releases: a field may be added, none renamed or removed. Every name is
// snake_case; times are RFC 3339 with their fraction, in UTC.
//
// Every route needs an actor (ConsoleConfig.Actor) and Authorize's leave,
// as the pages do. A GET is authorized as ConsoleView.
//
//	GET /api/incidents?state=&kind=&account=&from=&to=&cursor=&limit=
//
// The register, newest detected first (see incident.ListFilter): state may
// be repeated (state=detected&state=escalated) or comma-separated; from
// and to bound the detection time, from inclusive, to exclusive, written
// as RFC 3339 ("2026-03-01T10:00:00Z"), "2026-03-01T10:00" or
// "2026-03-01" (UTC); cursor is the next_cursor of the page before; limit
// is the page size (default ConsoleConfig.PageSize, at most 500). Answer:
//
//	{"incidents": [<incident>, ...], "next_cursor": "..."}
//
// where each <incident> is the incident's head in its JSON form (see
// incident.Incident: "id", "kind", "state", "severity", "detected_at",
// ...; its "timeline" is null and it has no "deliveries": they are paged
// below), and next_cursor is "" on the last page. What people add
// working together is there too, each left out while empty:
//
//	"commander": "alice",
//	"evidence": [{"type": "ip", "value": "203.0.113.7", "source": "waf log",
//	  "seen_at": "2026-03-01T10:00:00Z", "added_at": "...", "added_by": "alice"}, ...],
//	"merged_into": "inc_1",      on a child merged into another ("state": "merged")
//	"merged": ["inc_2", "inc_3"] on the parent: the incidents merged into it
//
// (evidence "type" is one of ip, url, hash, user, key_id; "source" and
// "seen_at" are optional). Notes, handovers, severity changes, evidence
// and merges are timeline entries of type note, commander, severity,
// evidence and merge.
//
//	GET /api/incidents/{id}
//
// The incident's head, <incident> as above.
//
//	GET /api/incidents/{id}/timeline?from=&limit=
//
// Timeline entries from position from (default 0), at most limit (default
// ConsoleConfig.PageSize, at most 1000):
//
//	{"entries": [{"at": ..., "actor": ..., "type": ..., "event": ..., "from": ..., "to": ...,
//	  "detail": ..., "hash": "<hex>"}, ...],
//	 "next_from": 120, "chain": {"len": 240, "head": "<hex>"}}
//
// next_from is null when no entry follows; chain is where the whole
// timeline stands, to check the entries against (incident.Timeline's
// VerifyHead).
//
//	GET /api/incidents/{id}/deliveries?after=&limit=&status=
//
// Customer notices in the order first written, after the one whose
// idempotency key is after, at most limit (default ConsoleConfig.PageSize,
// at most 1000), only those with status (claimed, sent, failed, cancelled,
// unknown) when given:
//
//	{"deliveries": [{"recipient": ..., "channel": ..., "idempotency_key": ..., "status": ...,
//	  "attempts": 1, "last_error": ..., "claimed_at": ..., "sent_at": ...}, ...],
//	 "next_after": "..."}
//
// next_after is "" when the page was not full; a full last page has a
// next_after whose page is empty.
//
//	POST /api/incidents/{id}/{action}
//
// One ConsoleAction, with Content-Type: application/json and a body of
// one JSON object of string fields, those the action takes (see the
// ConsoleAction constants): {"action": "disable-key", "note": "checked with
// the customer"} for approve. A field the action does not take is refused;
// a required one may not be empty (action of approve and deny, reason of
// deny, dismiss, reopen, pause_clock and clock_not_applicable, task,
// clock, milestone; text of note, commander, severity and reason of
// severity, type and value of evidence, child and reason of merge). The
// answer is 200 with the incident's head after the action, <incident> as
// above. The bodies of the collaboration actions:
//
//	POST .../note       {"text": "the key was in a public gist"}
//	POST .../commander  {"commander": "carol", "note": "taking over for the night"}
//	POST .../severity   {"severity": "critical", "reason": "billing data was read"}
//	POST .../evidence   {"type": "ip", "value": "203.0.113.7", "source": "waf log", "seen_at": "2026-03-01T10:00:00Z"}
//	POST .../merge      {"child": "inc_2", "reason": "one leak, two detectors"}
//
// severity is low, medium, high or critical; seen_at is RFC 3339 or
// "2026-03-01T10:00" (an HTML datetime-local value, with or without
// seconds), read as UTC. A merge posts to the parent and names the child,
// which ends merged into it; the answer is the parent. Authorize is asked
// for both. Evidence that looks like a credential is refused (400
// invalid_input), and no answer or log line repeats it.
//
// Every refusal and failure, of every route, answers with its status
// and:
//
//	{"error": {"code": "conflict", "message": "...", "open_tasks": ["scan"]}}
//
// where code is one of invalid_input (400), unauthorized (401), forbidden
// (403: Authorize refused), cross_origin (403: a cross-origin post),
// not_found (404: no such incident, action or route), too_large (413),
// unsupported_media_type (415), conflict (409: the incident's state does
// not allow the action, or it changed meanwhile: the incident has ended or
// was merged, it has that severity already, the child of a merge is in the
// middle of containment or notification), limit_reached (409: the incident
// holds incident.MaxEvidence observables or incident.MaxMerged merged
// incidents), open_tasks (409: Resolve refused; open_tasks lists the
// mandatory tasks still open),
// release_failed (502: dismissed, but some containment was not undone),
// not_supported (501: the store cannot list), unavailable (503: the store
// did not answer in time), done_unread (500: the action was done but the
// incident could not be read back; do not post it again) and internal
// (500: the detail is in the log).
// open_tasks is left out when empty.

// apiList is the answer of GET /api/incidents.
type apiList struct {
	Incidents  []*incident.Incident `json:"incidents"`
	NextCursor string               `json:"next_cursor"`
}

// apiTimeline is the answer of GET /api/incidents/{id}/timeline.
type apiTimeline struct {
	Entries  incident.Timeline `json:"entries"`
	NextFrom *int              `json:"next_from"`
	Chain    incident.Chain    `json:"chain"`
}

// apiDeliveries is the answer of GET /api/incidents/{id}/deliveries.
type apiDeliveries struct {
	Deliveries []incident.Delivery `json:"deliveries"`
	NextAfter  string              `json:"next_after"`
}

// apiProblem is the error object of every refusal and failure.
type apiProblem struct {
	Error apiProblemBody `json:"error"`
}

type apiProblemBody struct {
	Code      string   `json:"code"`
	Message   string   `json:"message"`
	OpenTasks []string `json:"open_tasks,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error: the answer could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (c *console) apiError(w http.ResponseWriter, p consoleProblem) {
	writeJSON(w, p.status, apiProblem{Error: apiProblemBody{Code: p.code, Message: p.message, OpenTasks: p.openTasks}})
}

func (c *console) apiList(w http.ResponseWriter, r *http.Request) {
	if err := c.authorize(r, ConsoleView, ""); err != nil {
		c.fail(w, r, err)
		return
	}
	f, err := parseListFilter(r.URL.Query(), c.o.lc)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if f.Limit == 0 {
		f.Limit = c.pageSize
	}
	page, err := c.o.List(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiList{Incidents: append([]*incident.Incident{}, page.Incidents...), NextCursor: page.Next})
}

func (c *console) apiIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := c.viewing(w, r)
	if !ok {
		return
	}
	inc, err := c.o.Head(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func (c *console) apiTimeline(w http.ResponseWriter, r *http.Request) {
	id, ok := c.viewing(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, err := queryInt(q, "from", 0)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	limit, err := queryInt(q, "limit", c.pageSize)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	entries, err := c.o.Timeline(r.Context(), id, from, limit)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// The head read after the entries counts at least those: next_from
	// is null only when none follows.
	head, err := c.o.Head(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	out := apiTimeline{Entries: append(incident.Timeline{}, entries...), Chain: head.Chain}
	if next := from + len(entries); len(entries) > 0 && next < head.Chain.Len {
		out.NextFrom = &next
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) apiDeliveries(w http.ResponseWriter, r *http.Request) {
	id, ok := c.viewing(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	dq := incident.DeliveryQuery{After: q.Get("after"), Status: incident.DeliveryStatus(q.Get("status"))}
	switch dq.Status {
	case "", incident.DeliveryClaimed, incident.DeliverySent, incident.DeliveryFailed, incident.DeliveryCancelled, incident.DeliveryUnknown:
	default:
		c.fail(w, r, refuse(http.StatusBadRequest, "invalid_input", "status must be claimed, sent, failed, cancelled or unknown"))
		return
	}
	var err error
	if dq.Limit, err = queryInt(q, "limit", c.pageSize); err != nil {
		c.fail(w, r, err)
		return
	}
	dels, err := c.o.Deliveries(r.Context(), id, dq)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	out := apiDeliveries{Deliveries: append([]incident.Delivery{}, dels...)}
	if len(dels) > 0 && len(dels) == dq.PageSize() {
		out.NextAfter = dels[len(dels)-1].IdempotencyKey
	}
	writeJSON(w, http.StatusOK, out)
}

// apiPost runs one ConsoleAction from a JSON body and answers with the
// incident's head.
func (c *console) apiPost(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), ConsoleAction(r.PathValue("action"))
	err := c.act(r, action, id, func(op consoleOp) (map[string]string, error) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return nil, refuse(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		}
		fields, err := readJSONFields(http.MaxBytesReader(w, r.Body, consoleMaxBody))
		if err != nil {
			return nil, err
		}
		for name := range fields {
			if !slices.ContainsFunc(op.fields, func(f consoleField) bool { return f.Name == name }) {
				return nil, refuse(http.StatusBadRequest, "invalid_input", string(action)+" takes no field "+strconv.Quote(name)+"; it takes "+fieldNames(op))
			}
		}
		return op.input(action, func(name string) string { return fields[name] })
	})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// The action is done: the incident is read back even if the caller
	// has gone, and a failed read says so, lest the caller do it again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), consoleActionTimeout)
	defer cancel()
	inc, err := c.o.Head(ctx, id)
	if err != nil {
		c.log.Error("breach: console: the action was done; reading the incident back failed", "incident", id, "err", err)
		c.apiError(w, consoleProblem{status: http.StatusInternalServerError, code: "done_unread",
			message: "the action was done, but the incident could not be read back: GET it rather than post again"})
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func fieldNames(op consoleOp) string {
	if len(op.fields) == 0 {
		return "none"
	}
	names := make([]string, len(op.fields))
	for i, f := range op.fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// readJSONFields decodes a body of one JSON object of string fields. An
// empty body (or null) has no field.
func readJSONFields(body io.Reader) (map[string]string, error) {
	bad := func(why string) error {
		return refuse(http.StatusBadRequest, "invalid_input", "the body must be one JSON object of string fields: "+why)
	}
	dec := json.NewDecoder(body)
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, err
		case errors.Is(err, io.EOF):
			return map[string]string{}, nil
		}
		return nil, bad(err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("more after the object")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, bad("field " + strconv.Quote(k) + " is not a string")
		}
		out[k] = s
	}
	return out, nil
}

// parseListFilter reads the register's filter from a query: state
// (repeated or comma-separated), kind, account, from, to, cursor, limit.
// Empty values select everything.
func parseListFilter(q url.Values, lc *incident.Lifecycle) (incident.ListFilter, error) {
	bad := func(msg string) (incident.ListFilter, error) {
		return incident.ListFilter{}, refuse(http.StatusBadRequest, "invalid_input", msg)
	}
	f := incident.ListFilter{Kind: q.Get("kind"), Account: q.Get("account"), Cursor: q.Get("cursor")}
	for _, v := range q["state"] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !slices.Contains(lc.States(), incident.State(s)) {
				return bad("no state " + strconv.Quote(s))
			}
			f.States = append(f.States, incident.State(s))
		}
	}
	var err error
	if f.DetectedFrom, err = queryTime(q, "from"); err != nil {
		return bad(err.Error())
	}
	if f.DetectedTo, err = queryTime(q, "to"); err != nil {
		return bad(err.Error())
	}
	if f.Limit, err = queryInt(q, "limit", 0); err != nil {
		return incident.ListFilter{}, err
	}
	return f, f.Validate()
}

// queryTime reads a time from q[key]: RFC 3339, or a date with or without
// a time of day, in UTC. Absent or empty is the zero time.
func queryTime(q url.Values, key string) (time.Time, error) {
	s := strings.TrimSpace(q.Get(key))
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New(key + " must be a time such as 2026-03-01T10:00:00Z, 2026-03-01T10:00 or 2026-03-01 (UTC)")
}

// queryInt reads a count from q[key], def when absent or empty.
func queryInt(q url.Values, key string, def int) (int, error) {
	s := strings.TrimSpace(q.Get(key))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, refuse(http.StatusBadRequest, "invalid_input", key+" must be a whole number, 0 or more")
	}
	if n == 0 {
		return def, nil // 0 is the default, as an absent value
	}
	return n, nil
}
