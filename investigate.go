package breach

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/internal/retry"
)

func (o *Orchestrator) investigate(st *stepRun, inc *incident.Incident, pb *Playbook) (bool, error) {
	from := inc.State
	if pb.Investigator == nil {
		return true, o.mutate(st.write, inc, func(inc *incident.Incident) error {
			if inc.State != from || inc.Dismissal != nil {
				return errStale
			}
			o.recordFindings(inc, pb, incident.Findings{Summary: "no investigator configured"}, 0,
				&incident.Decision{Notify: false, Reason: "impact not assessed: the playbook has no investigator"})
			st.chain(inc)
			return nil
		})
	}
	sctx, cancel := st.callContext(pb)
	defer cancel()
	// Each attempt is handed a copy of its own, made on the attempt's
	// goroutine (one that outlived its timeout may still be making it when
	// the step has moved on), from a version that never changes: the one
	// written, kept, when inc is it.
	src := o.savedHead(inc)
	// An attempt that outlived its timeout may still be running after the
	// policy gave up on it: only an attempt whose context is live may hand
	// over its findings, under mu.
	var (
		mu       sync.Mutex
		findings incident.Findings
	)
	started := o.cfg.now()
	out := retry.Do(sctx, pb.Investigation, st.stop.Done(), func(ctx context.Context, attempt int) error {
		snapshot := src.Clone()
		snapshot.Timeline = nil // investigators need the facts, not the history
		f, err := pb.Investigator.Investigate(ctx, snapshot)
		if err != nil {
			return err
		}
		if err := checkFindings(f); err != nil {
			return incident.Permanent(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		findings = f
		return nil
	})
	mu.Lock()
	found := findings
	mu.Unlock()
	ob := Observation{Kind: ObserveStep, IncidentID: inc.ID, IncidentKind: inc.Kind, Severity: inc.Severity,
		Step: "investigate", Attempts: out.Attempts, Duration: o.cfg.now().Sub(started), Started: started, DetectedAt: inc.DetectedAt}
	if out.Err != nil {
		if st.cut(out.Err) {
			ob.Outcome, ob.Err = outcomeInterrupted, o.redactErr(inc.ID, out.Err)
			o.observe(st.calls, ob)
			return false, nil // resumed, or made moot by a person: nothing to record
		}
		ob.Outcome, ob.Err = outcomeFailed, o.redactErr(inc.ID, out.Err)
		o.observe(st.calls, ob)
		if stack := panicStack(out.Err); stack != "" {
			if err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
				o.record(inc, incident.ActorSystem, incident.EntryInvestigation, "investigator panicked"+stack)
				return nil
			}); err != nil {
				return false, err
			}
		}
		return true, o.escalate(st.write, inc, from, fmt.Sprintf("investigation failed after %d attempt(s): %v", out.Attempts, out.Err))
	}
	err := o.mutate(st.write, inc, func(inc *incident.Incident) error {
		if inc.State != from || inc.Dismissal != nil {
			return errStale
		}
		o.recordFindings(inc, pb, found, out.Attempts, decide(found.Impact))
		st.chain(inc)
		return nil
	})
	if err == nil {
		ob.Outcome = outcomeOK
		o.observe(st.calls, ob)
	}
	return true, err
}

func checkFindings(f incident.Findings) error {
	seen := map[string]bool{}
	for i, c := range f.Impact.Customers {
		id := incident.RecipientID(c)
		if id == "" {
			return fmt.Errorf("investigator returned customer %d with neither ID nor Email", i)
		}
		if seen[id] {
			return fmt.Errorf("investigator returned customer %q twice", id)
		}
		seen[id] = true
	}
	return nil
}

func (o *Orchestrator) recordFindings(inc *incident.Incident, pb *Playbook, f incident.Findings, attempts int, d *incident.Decision) {
	now := o.cfg.now()
	f = o.redactFindings(inc.ID, f)
	f.Impact.Affected = len(f.Impact.Customers) // the customers are written as their own part
	inc.Investigation = &incident.Investigation{Findings: f, At: now, Attempts: attempts}
	detail := "investigation done"
	if f.RootCause != "" {
		detail += "; root cause: " + f.RootCause
	}
	if f.Summary != "" {
		detail += "; " + f.Summary
	}
	detail += "; impact: " + describeImpact(f.Impact)
	o.record(inc, incident.ActorSystem, incident.EntryInvestigation, detail)
	if inc.Decision != nil && inc.Decision.Override {
		o.record(inc, incident.ActorSystem, incident.EntryDecision, "automatic decision would be notify customers = "+
			strconv.FormatBool(d.Notify)+" ("+d.Reason+"); the override by "+inc.Decision.By+" stands")
		return
	}
	d.By, d.At = incident.ActorSystem, now
	inc.Decision = d
	if d.Notify {
		inc.Recommendations = append([]string(nil), pb.Recommendations...)
	}
	verdict := "do not notify customers: "
	if d.Notify {
		verdict = "notify customers: "
	}
	o.record(inc, incident.ActorSystem, incident.EntryDecision, verdict+d.Reason)
}

func describeImpact(im incident.Impact) string {
	if len(im.Customers) == 0 && len(im.Data) == 0 {
		return "no customer or customer data affected"
	}
	var data []string
	for _, d := range im.Data {
		data = append(data, d.Describe())
	}
	s := strconv.Itoa(len(im.Customers)) + " customer(s)"
	if len(data) > 0 {
		s += "; data: " + strings.Join(data, ", ")
	}
	return s
}

// decide turns an assessed impact into the notify decision and its reason.
// Customers are notified only when customer data was affected.
func decide(im incident.Impact) *incident.Decision {
	switch {
	case im.CustomerDataAffected():
		return &incident.Decision{Notify: true, Reason: "customer data affected (" + describeImpact(im) + ")"}
	case len(im.Customers) == 0 && len(im.Data) == 0:
		return &incident.Decision{Reason: "the investigation found no customer data affected"}
	case len(im.Customers) == 0:
		return &incident.Decision{Reason: "data categories affected but no customer identified; a person should review (" + describeImpact(im) + ")"}
	default:
		return &incident.Decision{Reason: "customers identified but no customer data affected"}
	}
}
