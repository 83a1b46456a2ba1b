package breach

import (
	"strings"

	"github.com/breachkit/breach/incident"
)

// redact removes the incident's credential from text bound for the record,
// the logs or a person, should a plugin have put it in an error message.
func (o *Orchestrator) redact(id, s string) string {
	if c := o.credential(id).Reveal(); c != "" && strings.Contains(s, c) {
		return strings.ReplaceAll(s, c, incident.Redacted)
	}
	return s
}

// redactFindings removes the incident's credential from what an
// investigator wrote, before it is stored, reported or sent to customers.
func (o *Orchestrator) redactFindings(id string, f incident.Findings) incident.Findings {
	if o.credential(id).IsZero() {
		return f
	}
	r := func(s string) string { return o.redact(id, s) }
	f.RootCause, f.Summary, f.Impact.Summary = r(f.RootCause), r(f.Summary), r(f.Impact.Summary)
	f.Notes = append([]string(nil), f.Notes...)
	for i := range f.Notes {
		f.Notes[i] = r(f.Notes[i])
	}
	f.Impact.Customers = append([]incident.Customer(nil), f.Impact.Customers...)
	for i := range f.Impact.Customers {
		c := &f.Impact.Customers[i]
		c.ID, c.Name, c.Email = r(c.ID), r(c.Name), r(c.Email)
	}
	return f
}

// redactedError is an error whose message had a credential removed; it
// still unwraps to the original for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Unwrap() error { return e.err }

func (o *Orchestrator) redactErr(id string, err error) error {
	if err == nil {
		return nil
	}
	if msg := o.redact(id, err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

func (o *Orchestrator) keepCredential(id string, s incident.Secret) {
	if !s.IsZero() {
		o.creds.LoadOrStore(id, s)
	}
}

func (o *Orchestrator) credential(id string) incident.Secret {
	if v, ok := o.creds.Load(id); ok {
		return v.(incident.Secret)
	}
	return incident.Secret{}
}
