package breach

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
	"github.com/breachkit/breach/notify"
)

// EscalationPolicy says whom to page, and when, while an incident needs a
// person (it escalated, or a containment action waits for approval): the
// first level at once, each next one when the one before has not
// acknowledged within its After, and the whole ladder again Repeat times.
// Pages stop when a person acknowledges (Orchestrator.Acknowledge) and are
// resolved when nobody is needed any more. The zero value pages the
// orchestrator's WithOnCall pager once.
type EscalationPolicy struct {
	Levels []EscalationLevel
	// Repeat is how many more times the ladder is climbed from its first
	// level after its last level went unacknowledged.
	Repeat int
	// Pages is the retry policy of each page; zero fields take
	// incident.Policy's defaults. A page's retries keep its idempotency
	// key.
	Pages incident.Policy
}

// EscalationLevel is one rung of an EscalationPolicy.
type EscalationLevel struct {
	// Responder names whom the level pages (a schedule, a team, a
	// person), for the page and the record.
	Responder string
	// Pager sends the level's pages; nil means WithOnCall's.
	Pager notify.Pager
	// After is how long the level has to acknowledge before the next
	// level (or the next round) is paged. 0 on the last level of the last
	// round: nothing follows.
	After time.Duration
}

func (p EscalationPolicy) validate() error {
	for i, l := range p.Levels {
		if l.After < 0 {
			return fmt.Errorf("escalation level %d: negative After", i+1)
		}
		if l.After == 0 && (i < len(p.Levels)-1 || p.Repeat > 0) {
			return fmt.Errorf("escalation level %d: After must be positive when a level or round follows", i+1)
		}
	}
	if p.Repeat < 0 {
		return fmt.Errorf("escalation: negative Repeat")
	}
	return nil
}

// escalationFor returns the escalation policy of inc: the playbook's for
// its severity, or its default, or one level of WithOnCall.
func (o *Orchestrator) escalationFor(inc *incident.Incident) EscalationPolicy {
	if pb := o.cfg.playbooks[inc.Kind]; pb != nil {
		if p, ok := pb.EscalationBySeverity[inc.Severity]; ok {
			return p
		}
		if len(pb.Escalation.Levels) > 0 {
			return pb.Escalation
		}
	}
	return EscalationPolicy{Levels: []EscalationLevel{{Responder: "on-call"}}}
}

// level returns level n (from 1) of p with its pager, or false past the
// last.
func (o *Orchestrator) level(p EscalationPolicy, n int) (EscalationLevel, bool) {
	if n < 1 || n > len(p.Levels) {
		return EscalationLevel{}, false
	}
	l := p.Levels[n-1]
	if l.Pager == nil {
		l.Pager = o.cfg.oncall
	}
	return l, l.Pager != nil
}

// needsPerson reports whether automation waits for a person on inc.
func needsPerson(inc *incident.Incident) bool {
	if !inc.State.Open() || inc.Dismissal != nil {
		return false
	}
	if inc.State == incident.StateEscalated {
		return true
	}
	for _, r := range inc.Actions {
		if r.Status == incident.ActionAwaiting {
			return true
		}
	}
	return false
}

// pageOut is a page decided in a write, sent after it lands.
type pageOut struct {
	page  notify.Page
	pager notify.Pager
	retry incident.Policy
}

// openAlert opens an alert on inc for need (its key names it), paging the
// first level, unless one is open already for the same need. It changes
// inc in memory; the page goes out after the write (see sendPages).
func (o *Orchestrator) openAlert(inc *incident.Incident, need, reason, needed string, now time.Time) []pageOut {
	key := incident.IdempotencyKey(inc.ID, "alert", need)
	if inc.Paging.Open() && inc.Paging.AlertKey == key {
		return nil
	}
	var out []pageOut
	if inc.Paging.Open() {
		out = o.resolveAlert(inc, now) // a new need replaces the old alert
	}
	inc.Paging = &incident.Paging{AlertKey: key, Reason: o.redact(inc.ID, reason), Needed: needed, Level: 1,
		OpenedAt: now, PagedAt: now}
	return append(out, o.pagesFor(inc, notify.PageTrigger, 1)...)
}

// resolveAlert resolves inc's open alert, telling every level paged.
func (o *Orchestrator) resolveAlert(inc *incident.Incident, now time.Time) []pageOut {
	if !inc.Paging.Open() {
		return nil
	}
	inc.Paging.ResolvedAt = now
	return o.pagesFor(inc, notify.PageResolve, inc.Paging.Level)
}

// pagesFor returns the pages of action for levels 1..upTo of inc's alert
// (trigger: level upTo alone).
func (o *Orchestrator) pagesFor(inc *incident.Incident, action notify.PageAction, upTo int) []pageOut {
	p := o.escalationFor(inc)
	from := 1
	if action == notify.PageTrigger {
		from = upTo
	}
	var out []pageOut
	for n := from; n <= upTo; n++ {
		l, ok := o.level(p, n)
		if !ok {
			continue
		}
		out = append(out, pageOut{page: o.page(inc, action, n, l), pager: l.Pager, retry: p.Pages})
	}
	return out
}

// page builds the page of action for level n of inc's alert.
func (o *Orchestrator) page(inc *incident.Incident, action notify.PageAction, n int, l EscalationLevel) notify.Page {
	a := inc.Paging
	pg := notify.Page{
		IdempotencyKey: incident.IdempotencyKey(inc.ID, "page/"+a.AlertKey,
			string(action)+"/"+strconv.Itoa(a.Round)+"/"+strconv.Itoa(n)),
		AlertKey: a.AlertKey, Action: action, IncidentID: inc.ID, Kind: inc.Kind, Severity: inc.Severity,
		Subject: inc.Subject,
		Title:   "Incident " + inc.ID + " (" + inc.Kind + ", " + inc.Severity.String() + ") needs a person",
		Reason:  a.Reason, Needed: a.Needed, Deadline: nextDue(inc), Level: n, Repeat: a.Round,
		Responder: l.Responder,
	}
	if o.cfg.consoleURL != "" {
		pg.Link = o.cfg.consoleURL + "/incidents/" + inc.ID
	}
	switch action {
	case notify.PageAcknowledge:
		pg.Title = "Incident " + inc.ID + ": acknowledged by " + a.AckedBy
	case notify.PageResolve:
		pg.Title = "Incident " + inc.ID + ": nobody is needed any more"
	}
	return pg
}

// nextDue is the earliest running clock's due time of inc, or zero.
func nextDue(inc *incident.Incident) time.Time {
	var due time.Time
	for _, d := range inc.Deadlines {
		if d.Status == incident.DeadlineRunning && (due.IsZero() || d.Due.Before(due)) {
			due = d.Due
		}
	}
	return due
}

// climb moves inc's open alert up its ladder if its level's time ran out:
// the next level, or the first of the next round, or nothing more (the
// alert is then exhausted, on the record). It returns the pages to send
// and whether inc changed.
func (o *Orchestrator) climb(inc *incident.Incident, now time.Time) ([]pageOut, bool) {
	a := inc.Paging
	if !a.Open() || a.Exhausted {
		return nil, false
	}
	p := o.escalationFor(inc)
	if a.Level > len(p.Levels) || len(p.Levels) == 0 {
		return nil, false
	}
	after := p.Levels[a.Level-1].After
	if after <= 0 || now.Before(a.PagedAt.Add(after)) {
		return nil, false
	}
	switch {
	case a.Level < len(p.Levels):
		a.Level++
	case a.Round < p.Repeat:
		a.Round, a.Level = a.Round+1, 1
	default:
		a.Exhausted = true
		o.record(inc, incident.ActorSystem, incident.EntryNote, "on-call alert unacknowledged: every level of the escalation policy was paged")
		return nil, true
	}
	a.PagedAt = now
	l, _ := o.level(p, a.Level)
	o.record(inc, incident.ActorSystem, incident.EntryNote, fmt.Sprintf(
		"on-call alert not acknowledged in %v: paging level %d (%s)", roundDur(after), a.Level, l.Responder))
	return o.pagesFor(inc, notify.PageTrigger, a.Level), true
}

// climbDue returns when inc's alert climbs next, or zero.
func (o *Orchestrator) climbDue(inc *incident.Incident) time.Time {
	a := inc.Paging
	if !a.Open() || a.Exhausted {
		return time.Time{}
	}
	p := o.escalationFor(inc)
	if a.Level < 1 || a.Level > len(p.Levels) || p.Levels[a.Level-1].After <= 0 {
		return time.Time{}
	}
	return a.PagedAt.Add(p.Levels[a.Level-1].After)
}

// sendPages sends pages decided in a write that landed, each with its
// policy's retries, and records what failed. A page that fails is not
// retried later: the ladder's next level is the fallback.
func (o *Orchestrator) sendPages(ctx context.Context, inc *incident.Incident, pages []pageOut) {
	for _, po := range pages {
		out := retry.Do(ctx, po.retry, nil, func(ctx context.Context, attempt int) error {
			pg := po.page
			pg.Attempt = attempt
			return po.pager.Page(ctx, pg)
		})
		if out.Err != nil {
			err := o.redactErr(inc.ID, out.Err)
			o.log.Error("breach: paging on-call failed", "incident", inc.ID, "level", po.page.Level,
				"action", string(po.page.Action), "err", err)
			_ = o.mutate(ctx, inc, func(inc *incident.Incident) error {
				o.record(inc, incident.ActorSystem, incident.EntryNote, fmt.Sprintf("paging level %d (%s, %s) failed after %d attempt(s): %v",
					po.page.Level, po.page.Responder, po.page.Action, out.Attempts, err))
				return nil
			})
		}
	}
}

// Acknowledge records that actor took the incident's open on-call alert:
// the escalation policy pages nobody further, and the levels paged are
// told. It returns an error matching ErrNoAlert when no alert is open (none
// was, or it was acknowledged or resolved), incident.ErrNotFound for an
// unknown ID, and ErrInvalidInput for an empty actor or one no action
// accepts (see ErrInvalidInput).
func (o *Orchestrator) Acknowledge(ctx context.Context, id, actor string) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	inc, err := o.store.Head(ctx, id)
	if err != nil {
		return err
	}
	var pages []pageOut
	err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if !inc.Paging.Open() {
			return fmt.Errorf("breach: incident %s: %w", inc.ID, ErrNoAlert)
		}
		now := o.cfg.now()
		inc.Paging.AckedBy, inc.Paging.AckedAt = actor, now
		o.record(inc, actor, incident.EntryNote, "acknowledged the on-call alert (level "+strconv.Itoa(inc.Paging.Level)+")")
		pages = o.pagesFor(inc, notify.PageAcknowledge, inc.Paging.Level)
		return nil
	})
	if err != nil {
		return err
	}
	o.sendPages(ctx, inc, pages)
	return nil
}
