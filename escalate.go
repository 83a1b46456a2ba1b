package breach

import (
	"context"
	"strconv"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// alert is a one-shot page decided during a check (a clock about to run
// out): it goes to the first level of the incident's escalation policy and
// does not climb.
type alert struct {
	title, reason, needed string
	key                   string
}

// oneShot returns the page of a to the first level of inc's policy, if it
// has a pager.
func (o *Orchestrator) oneShot(inc *incident.Incident, a alert) []pageOut {
	p := o.escalationFor(inc)
	l, ok := o.level(p, 1)
	if !ok {
		return nil
	}
	pg := notify.Page{IdempotencyKey: incident.IdempotencyKey(inc.ID, "page", a.key), AlertKey: a.key,
		Action: notify.PageTrigger, IncidentID: inc.ID, Kind: inc.Kind, Severity: inc.Severity, Subject: inc.Subject,
		Title:  a.title + " (incident " + inc.ID + ", " + inc.Severity.String() + ")",
		Reason: a.reason, Needed: a.needed, Deadline: nextDue(inc), Level: 1, Responder: l.Responder}
	if o.cfg.consoleURL != "" {
		pg.Link = o.cfg.consoleURL + "/incidents/" + inc.ID
	}
	return []pageOut{{page: pg, pager: l.Pager, retry: p.Pages}}
}

// escalate hands the incident to a person, recording why, and pages the
// first level of its escalation policy in the same write. It returns
// errStale, recording nothing, when the incident left state from or is
// being dismissed (the person dismissing it has it).
func (o *Orchestrator) escalate(ctx context.Context, inc *incident.Incident, from incident.State, reason string) error {
	var pages []pageOut
	err := o.mutate(ctx, inc, func(inc *incident.Incident) error {
		if inc.State != from || inc.Dismissal != nil {
			return errStale
		}
		now := o.cfg.now()
		inc.Escalation = &incident.Escalation{From: from, Reason: o.redact(inc.ID, reason), At: now}
		if err := o.fire(inc, incident.EventEscalate, incident.ActorSystem, reason); err != nil {
			return err
		}
		pages = o.openAlert(inc, "escalation/"+strconv.Itoa(inc.Chain.Len), reason,
			"take over incident "+inc.ID+": decide, then retry, resolve or dismiss it", now)
		for _, p := range pages {
			if p.page.Action == notify.PageTrigger {
				o.record(inc, incident.ActorSystem, incident.EntryNote, "paging level 1 ("+p.page.Responder+") of the escalation policy")
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.log.Warn("breach: incident escalated", "incident", inc.ID, "from", string(from), "reason", o.redact(inc.ID, reason))
	o.sendPages(ctx, inc, pages)
	return nil
}
