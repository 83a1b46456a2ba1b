package breach

import (
	"fmt"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// Strategy says which comes first for a new incident: containment or
// investigation.
type Strategy int

const (
	// StrategyBySeverity, the zero value, contains first when the
	// incident's severity is SeverityHigh or above and investigates first
	// otherwise.
	StrategyBySeverity Strategy = iota
	// ContainFirst applies the containment actions before investigating:
	// for a leaked credential, disable it now and ask questions after.
	ContainFirst
	// InvestigateFirst investigates before containing, for signals that
	// are often false positives and where containment disrupts customers.
	InvestigateFirst
)

// String returns the strategy's name.
func (s Strategy) String() string {
	switch s {
	case StrategyBySeverity:
		return "by-severity"
	case ContainFirst:
		return "contain-first"
	case InvestigateFirst:
		return "investigate-first"
	}
	return fmt.Sprintf("strategy(%d)", int(s))
}

// TaskSpec is a corrective or preventive task a playbook opens when an
// incident enters resolution.
type TaskSpec struct {
	ID        string // unique within the playbook; required
	Title     string // required
	Mandatory bool   // must be done before the incident can be resolved
}

// Playbook is the response to one kind of incident: what to contain, how to
// investigate, whom to tell through which channels and with what advice,
// and what to fix afterwards. Register playbooks with WithPlaybook.
//
// A Playbook is read-only once the Orchestrator has it; the plugins it
// names must be safe for concurrent use.
type Playbook struct {
	// Kind is the Signal.Kind this playbook answers. Required, unique.
	Kind string
	// Strategy chooses contain-first or investigate-first.
	Strategy Strategy
	// Containment lists the actions that stop the damage, applied
	// concurrently (at most ContainConcurrency at a time), each under its
	// own Policy.
	Containment        []containment.Action
	ContainConcurrency int
	// Investigator establishes root cause and impact. Without one the
	// impact is not assessed, no customer is notified, and the decision
	// records why.
	Investigator  incident.Investigator
	Investigation incident.Policy
	// Notifiers are the channels customer notices go out on: one delivery
	// per affected customer and channel, each under the Delivery policy.
	Notifiers []notify.Route
	Delivery  incident.Policy
	// Template renders the customer notice; nil means
	// notify.DefaultTemplate().
	Template *notify.Template
	// Recommendations tell the customer what to do ("Generate a new API
	// key"); they are rendered in the notice and kept on the incident.
	Recommendations []string
	// Sender signs customer notices; Contact is where customers ask
	// questions.
	Sender, Contact string
	// Tasks are opened when the incident enters resolution.
	Tasks []TaskSpec
	// AutoResolve resolves the incident once it is in resolution and no
	// mandatory task is open; otherwise a person calls Resolve.
	AutoResolve bool
	// AutoClose closes a resolved incident at once; otherwise a person
	// calls Close after the review.
	AutoClose bool
	// Clocks are the notification deadlines that apply (GDPR, NIS2,
	// SEC8K, HIPAA or custom). Each starts and stops at a milestone; the
	// orchestrator warns the on-call notifier before each is due and
	// escalates after, and the incident records whether each was met.
	Clocks []Clock
	// StepTimeout bounds a whole step (containment, investigation,
	// notification) over all its attempts. 0 means no bound beyond each
	// policy's attempts and timeouts.
	StepTimeout time.Duration
	// Escalation is whom to page, and when, while an incident of this kind
	// needs a person; EscalationBySeverity overrides it for a severity.
	// With neither, WithOnCall's pager is paged once.
	Escalation           EscalationPolicy
	EscalationBySeverity map[incident.Severity]EscalationPolicy
}

func (p *Playbook) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPlaybook, p.Kind, fmt.Sprintf(format, a...))
	}
	if p.Kind == "" {
		return fmt.Errorf("%w: empty Kind", ErrInvalidPlaybook)
	}
	if p.Strategy < StrategyBySeverity || p.Strategy > InvestigateFirst {
		return bad("unknown strategy %d", int(p.Strategy))
	}
	if err := containment.Validate(p.Containment); err != nil {
		return bad("%v", err)
	}
	if err := p.Escalation.validate(); err != nil {
		return bad("%v", err)
	}
	for sev, ep := range p.EscalationBySeverity {
		if err := ep.validate(); err != nil {
			return bad("severity %s: %v", sev, err)
		}
	}
	if err := notify.ValidateRoutes(p.Notifiers); err != nil {
		return bad("%v", err)
	}
	seen := map[string]bool{}
	for _, t := range p.Tasks {
		if t.ID == "" || t.Title == "" {
			return bad("task needs an ID and a Title")
		}
		if seen[t.ID] {
			return bad("two tasks with ID %q", t.ID)
		}
		seen[t.ID] = true
	}
	for _, pol := range []incident.Policy{p.Investigation, p.Delivery} {
		if pol.Attempts < 0 || pol.Timeout < 0 || pol.Backoff < 0 || pol.MaxBackoff < 0 {
			return bad("negative policy field")
		}
	}
	for _, a := range p.Containment {
		if a.Policy.Attempts < 0 || a.Policy.Timeout < 0 || a.Policy.Backoff < 0 || a.Policy.MaxBackoff < 0 {
			return bad("action %q: negative policy field", a.Name)
		}
	}
	clocks := map[string]bool{}
	for _, c := range p.Clocks {
		if err := c.validate(); err != nil {
			return bad("%v", err)
		}
		if clocks[c.Name] {
			return bad("two clocks named %q", c.Name)
		}
		clocks[c.Name] = true
	}
	for _, a := range p.Containment {
		if ap := a.Approval; ap != nil && (ap.Timeout < 0 || ap.OnTimeout < containment.EscalateOnTimeout || ap.OnTimeout > containment.ProceedOnTimeout) {
			return bad("action %q: bad approval rule", a.Name)
		}
	}
	if p.Template != nil && !p.Template.Ready() {
		return bad("Template was not built with notify.NewTemplate")
	}
	if p.StepTimeout < 0 || p.ContainConcurrency < 0 {
		return bad("negative StepTimeout or ContainConcurrency")
	}
	return nil
}

func (p *Playbook) containFirst(sev incident.Severity) bool {
	switch p.Strategy {
	case ContainFirst:
		return true
	case InvestigateFirst:
		return false
	}
	return sev >= incident.SeverityHigh
}

func (p *Playbook) action(name string) (containment.Action, bool) {
	if p != nil {
		for _, a := range p.Containment {
			if a.Name == name {
				return a, true
			}
		}
	}
	return containment.Action{}, false
}

func (p *Playbook) template() *notify.Template {
	if p.Template != nil {
		return p.Template
	}
	return notify.DefaultTemplate()
}
