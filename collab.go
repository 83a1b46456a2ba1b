package breach

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/textcheck"
)

// People working an incident together: notes, a commander, the severity,
// evidence (and merging incidents, in merge.go). Each is one write under
// compare-and-swap, made between automation's steps, like the other
// actions of people (actions.go).

// Bounds of what people write.
const (
	// MaxNoteLen bounds, in bytes, a note (AddNote) and the note or reason
	// given to AssignCommander, ChangeSeverity and Merge.
	MaxNoteLen = 8 << 10
	// MaxCommanderLen bounds, in bytes, the name AssignCommander records.
	MaxCommanderLen = 256
)

// AddNote records a person's note on the incident's timeline
// (incident.EntryNote, with actor as its actor). Notes may be added to an
// incident in any state, ended ones included: notes after the incident are
// part of its record. The note is recorded with credentials removed: the
// incident's own, and anything that looks like one
// (incident.RedactCredentials). It changes nothing automation does.
//
// It returns an error matching ErrInvalidInput, with nothing recorded, for
// an empty actor, an empty or blank text, a text longer than MaxNoteLen
// bytes, or one that is not UTF-8 or holds a control character other than
// tab and newline ("\r\n" counts as a newline); and one matching
// incident.ErrNotFound for an unknown incident. AddNote is safe for
// concurrent use, and works whether or not Run is running.
func (o *Orchestrator) AddNote(ctx context.Context, id, actor, text string) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	text, err := personText("note", text, true)
	if err != nil {
		return err
	}
	_, err = o.amend(ctx, id, actor, func(inc *incident.Incident) error {
		o.record(inc, actor, incident.EntryNote, o.scrub(inc.ID, text))
		return nil
	})
	return err
}

// AssignCommander makes commander the person who leads the response
// (Incident.Commander), or hands the incident over to them from the
// commander it had: the timeline records "commander assigned: Y" or
// "commander handed over from X to Y" (incident.EntryCommander), with
// actor, who made the change, and the note, when there is one (credentials
// removed, as for AddNote). Assigning the commander the incident has
// already changes nothing and returns nil, so that a retried request is
// harmless. It changes nothing automation does.
//
// It returns an error matching ErrInvalidInput for an empty actor or
// commander, a commander longer than MaxCommanderLen bytes, not UTF-8 or
// holding a character a signal's identifiers may not hold (a control
// character, a line separator, a bidirectional control that would let it
// display as another name), or a note AddNote would refuse; one matching
// ErrIncidentEnded for an incident that has ended (closed, dismissed or
// merged); and one matching incident.ErrNotFound for an unknown incident.
// Nothing is recorded on error. It is safe for concurrent use.
func (o *Orchestrator) AssignCommander(ctx context.Context, id, commander, actor, note string) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(commander) == "":
		return fmt.Errorf("%w: commander required", ErrInvalidInput)
	case len(commander) > MaxCommanderLen:
		return fmt.Errorf("%w: commander longer than %d bytes", ErrInvalidInput, MaxCommanderLen)
	}
	if err := checkName("commander", commander); err != nil {
		return err
	}
	note, err := personText("note", note, false)
	if err != nil {
		return err
	}
	_, err = o.amend(ctx, id, actor, func(inc *incident.Incident) error {
		if err := ended(inc); err != nil {
			return err
		}
		if inc.Commander == commander {
			return errUnchanged
		}
		detail := "commander assigned: " + commander
		if inc.Commander != "" {
			detail = "commander handed over from " + inc.Commander + " to " + commander
		}
		inc.Commander = commander
		o.record(inc, actor, incident.EntryCommander, withNote(detail, o.scrub(inc.ID, note)))
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// ChangeSeverity sets the severity of an open incident, recording the old
// and the new severity and the reason on the timeline
// (incident.EntrySeverity; the reason with credentials removed, as for
// AddNote), and re-evaluates what the playbook decides by severity, in the
// same write:
//
//   - A containment action that waits for approval and needs none at the
//     new severity (its containment.ApprovalRule) is approved by that rule
//     (by "system", noted) and runs at the next step. An action claimed to
//     run, or applied, stays so when the new severity would ask for
//     approval: lowering the severity never takes back containment
//     automation decided on. Actions not claimed yet are claimed under the
//     new severity. An escalated incident stays escalated: Retry resumes
//     it.
//   - An open on-call alert whose escalation policy differs at the new
//     severity (Playbook.EscalationBySeverity) is resolved for the levels
//     paged and raised again from the first level of the new policy;
//     otherwise it goes on climbing its ladder. An alert nobody needs any
//     more (every approval it waited for was granted by the change) is
//     resolved. Alerts opened later follow the new severity.
//   - The playbook's strategy (StrategyBySeverity) and the queue's
//     priority take the new severity at the next step: an incident still
//     detected contains first once raised to high.
//   - Notification clocks do not depend on severity and are left as they
//     are.
//
// It returns an error matching ErrInvalidInput for an empty actor or
// reason, a reason AddNote would refuse, or a severity that is not
// incident.SeverityLow to incident.SeverityCritical (the error also
// matches incident.ErrUnknownSeverity); one matching ErrSameSeverity when
// the incident has that severity; ErrIncidentEnded for an incident that
// has ended; ErrDismissalPending while a dismissal is under way; and
// incident.ErrNotFound for an unknown incident. Nothing is recorded on
// error. ChangeSeverity never waits for automation: a step in flight finds
// the change when it next writes, and decides again. It is safe for
// concurrent use.
func (o *Orchestrator) ChangeSeverity(ctx context.Context, id string, sev incident.Severity, actor, reason string) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	if !sev.Valid() {
		return fmt.Errorf("%w: %w: %s", ErrInvalidInput, incident.ErrUnknownSeverity, sev)
	}
	reason, err := personText("reason", reason, true)
	if err != nil {
		return err
	}
	inc, err := o.store.Head(ctx, id)
	if err != nil {
		return err
	}
	var pages []pageOut
	err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
		pages = nil
		if err := ended(inc); err != nil {
			return err
		}
		if err := dismissing(inc); err != nil {
			return err
		}
		if inc.Severity == sev {
			return fmt.Errorf("%w: incident %s is %s", ErrSameSeverity, inc.ID, sev)
		}
		verb := "raised"
		if sev < inc.Severity {
			verb = "lowered"
		}
		pages = o.setSeverity(inc, sev, actor, "severity "+verb+" from "+inc.Severity.String()+" to "+sev.String()+": "+
			o.scrub(inc.ID, reason))
		return nil
	})
	if err != nil {
		return err
	}
	o.sendPages(ctx, inc, pages)
	o.sched.addAt(id, o.priorityOf(inc))
	return nil
}

// setSeverity sets inc's severity to sev in memory, recording detail as
// actor, and re-evaluates what depends on it (see ChangeSeverity). It
// returns the pages to send once the write lands.
func (o *Orchestrator) setSeverity(inc *incident.Incident, sev incident.Severity, actor, detail string) []pageOut {
	now := o.cfg.now()
	var pages []pageOut
	var prev *incident.Paging
	if inc.Paging.Open() && o.ladder(inc, inc.Severity) != o.ladder(inc, sev) {
		p := *inc.Paging
		prev = &p
		pages = o.resolveAlert(inc, now) // the levels of the old policy are told
	}
	inc.Severity = sev
	o.record(inc, actor, incident.EntrySeverity, detail)
	o.reapprove(inc, now)
	if prev != nil && needsPerson(inc) {
		pages = append(pages, o.openAlert(inc, "severity/"+prev.AlertKey+"/"+sev.String(), prev.Reason, prev.Needed, now)...)
		o.record(inc, incident.ActorSystem, incident.EntryNote,
			"on-call alert raised again under the escalation policy for severity "+sev.String())
	}
	return pages
}

// ladder names the escalation policy inc's playbook has for sev: one of
// EscalationBySeverity, or the default.
func (o *Orchestrator) ladder(inc *incident.Incident, sev incident.Severity) string {
	if pb := o.cfg.playbooks[inc.Kind]; pb != nil {
		if _, ok := pb.EscalationBySeverity[sev]; ok {
			return "severity/" + sev.String()
		}
	}
	return "default"
}

// reapprove approves, by their rule, the containment actions of inc that
// wait for an approval its severity no longer asks for.
func (o *Orchestrator) reapprove(inc *incident.Incident, now time.Time) {
	pb := o.cfg.playbooks[inc.Kind]
	for i := range inc.Actions {
		r := &inc.Actions[i]
		if r.Status != incident.ActionAwaiting {
			continue
		}
		if a, ok := pb.action(r.Name); !ok || a.Approval.Required(inc.Severity) {
			continue
		}
		if r.Approval == nil {
			r.Approval = &incident.Approval{RequestedAt: now}
		}
		r.Approval.DecidedAt, r.Approval.By, r.Approval.Approved = now, incident.ActorSystem, true
		r.Approval.Note = "no approval needed at severity " + inc.Severity.String()
		r.Status = incident.ActionPending
		o.record(inc, incident.ActorSystem, incident.EntryContainment, "containment action "+strconv.Quote(r.Name)+
			" needs no approval at severity "+inc.Severity.String()+": it runs")
	}
}

// AttachEvidence adds an observable to the incident's evidence
// (Incident.Evidence), recorded on the timeline (incident.EntryEvidence)
// with actor, who also becomes its AddedBy; AddedAt is the orchestrator's
// clock (whatever ev held). An IP address is kept in its canonical form
// and a hash in lower case. Attaching an observable the incident holds
// already (same type and value) changes nothing and returns nil. It
// changes nothing automation does.
//
// It returns an error matching ErrInvalidInput, with nothing recorded, for
// an empty actor or an observable that fails ev.Validate or whose SeenAt
// is more than incident.MaxClockSkew ahead of the orchestrator's clock;
// the error also matches incident.ErrInvalidEvidence and holds an
// *incident.EvidenceError. A value or source that looks like a credential,
// or holds the incident's own (or that of an incident merged into it,
// as this process was handed it), is refused the same way and also matches
// incident.ErrCredentialEvidence; no error quotes the value. It returns
// one matching ErrLimitReached when the incident holds
// incident.MaxEvidence observables, ErrIncidentEnded for an incident that
// has ended, and incident.ErrNotFound for an unknown incident. It is safe
// for concurrent use.
func (o *Orchestrator) AttachEvidence(ctx context.Context, id string, ev incident.Observable, actor string) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	now := o.cfg.now()
	ev.AddedAt, ev.AddedBy = now, actor
	if err := o.checkEvidence(id, ev, now); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	switch ev.Type {
	case incident.ObservableIP:
		ev.Value = netip.MustParseAddr(ev.Value).String() // Validate parsed it
	case incident.ObservableHash:
		ev.Value = strings.ToLower(ev.Value)
	}
	_, err := o.amend(ctx, id, actor, func(inc *incident.Incident) error {
		if err := ended(inc); err != nil {
			return err
		}
		if hasObservable(inc.Evidence, ev) {
			return errUnchanged
		}
		if len(inc.Evidence) >= incident.MaxEvidence {
			return fmt.Errorf("%w: incident %s holds %d observables", ErrLimitReached, inc.ID, incident.MaxEvidence)
		}
		inc.Evidence = append(inc.Evidence, ev)
		o.record(inc, actor, incident.EntryEvidence, "evidence attached: "+observableText(ev))
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// hasObservable reports whether evidence holds ev: the same type and value.
func hasObservable(evidence []incident.Observable, ev incident.Observable) bool {
	return slices.ContainsFunc(evidence, func(h incident.Observable) bool { return h.Type == ev.Type && h.Value == ev.Value })
}

// checkEvidence validates ev for incident id at now.
func (o *Orchestrator) checkEvidence(id string, ev incident.Observable, now time.Time) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	if !ev.SeenAt.IsZero() && ev.SeenAt.After(now.Add(incident.MaxClockSkew)) {
		return &incident.EvidenceError{Field: "SeenAt", Reason: "more than " + incident.MaxClockSkew.String() + " after now"}
	}
	for _, c := range o.credentials(id) {
		for _, f := range [...]struct{ name, s string }{{"Value", ev.Value}, {"Source", ev.Source}} {
			if strings.Contains(f.s, c.Reveal()) {
				return &incident.EvidenceError{Field: f.name, Reason: "holds the incident's credential, or that of one merged into it",
					Err: incident.ErrCredentialEvidence}
			}
		}
	}
	return nil
}

// observableText describes ev on the timeline.
func observableText(ev incident.Observable) string {
	s := string(ev.Type) + " " + ev.Value
	var more []string
	if ev.Source != "" {
		more = append(more, "source: "+ev.Source)
	}
	if !ev.SeenAt.IsZero() {
		more = append(more, "seen "+ev.SeenAt.UTC().Format(time.RFC3339))
	}
	if len(more) > 0 {
		s += " (" + strings.Join(more, ", ") + ")"
	}
	return s
}

// amend applies a person's change that does not alter what automation does
// next (a note, the commander, evidence): act, without scheduling the
// incident.
func (o *Orchestrator) amend(ctx context.Context, id, actor string, change func(*incident.Incident) error) (*incident.Incident, error) {
	if err := checkActor(actor); err != nil {
		return nil, err
	}
	inc, err := o.store.Head(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := o.mutate(ctx, inc, func(inc *incident.Incident) error { return refusedIfMerged(inc, change(inc)) }); err != nil {
		return nil, err
	}
	return inc, nil
}

// refusedIfMerged is err, the refusal of a person's action on inc, also
// matching ErrIncidentEnded and ErrMerged and naming the parent when inc
// was merged (see ErrMerged).
func refusedIfMerged(inc *incident.Incident, err error) error {
	if err == nil || inc.State != incident.StateMerged || errors.Is(err, ErrMerged) {
		return err
	}
	return fmt.Errorf("%w: %w", ended(inc), err)
}

// checkActor refuses an actor a person's action may not name: none, or
// one that is not UTF-8 or holds a character an identifier may not (it is
// shown on the timeline, the console and the report as who acted).
func checkActor(actor string) error {
	if actor == "" {
		return errNoActor
	}
	return checkName("actor", actor)
}

// checkName refuses a person's name (field says which) that is not UTF-8
// or holds a character an identifier may not.
func checkName(field, s string) error {
	if !textcheck.Ident(s) {
		return fmt.Errorf("%w: %s is not UTF-8 or holds a control character, a line separator or a bidirectional control", ErrInvalidInput, field)
	}
	return nil
}

// ended refuses a change to an incident that has ended.
func ended(inc *incident.Incident) error {
	switch {
	case inc.State == incident.StateMerged:
		return fmt.Errorf("%w: %w: incident %s was merged into %s", ErrIncidentEnded, ErrMerged, inc.ID, inc.MergedInto)
	case !inc.State.Open():
		return fmt.Errorf("%w: incident %s is %s", ErrIncidentEnded, inc.ID, inc.State)
	}
	return nil
}

// personsText checks a note or reason a person gave on incident id (named
// field; required or not) as personText does, and returns it with the
// credentials scrub removes removed.
func (o *Orchestrator) personsText(id, field, s string, required bool) (string, error) {
	s, err := personText(field, s, required)
	if err != nil {
		return "", err
	}
	return o.scrub(id, s), nil
}

// personText checks a note or reason a person gave (named field) and
// returns it with "\r\n" as "\n".
func personText(field, s string, required bool) (string, error) {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	switch {
	case required && strings.TrimSpace(s) == "":
		return "", fmt.Errorf("%w: %s required", ErrInvalidInput, field)
	case len(s) > MaxNoteLen:
		return "", fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidInput, field, MaxNoteLen)
	}
	if !textcheck.Text(s) {
		return "", fmt.Errorf("%w: %s is not UTF-8 or holds a control character other than tab and newline", ErrInvalidInput, field)
	}
	return s, nil
}
