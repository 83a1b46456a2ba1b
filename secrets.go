package breach

import (
	"strings"
	"time"

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

// scrub removes credentials from text a person wrote (a note, a reason),
// before it is recorded: the incident's own credential, and anything else
// that looks like one (incident.RedactCredentials).
func (o *Orchestrator) scrub(id, s string) string {
	return incident.RedactCredentials(o.redact(id, s))
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

// keptCredential is a credential held in memory for containers, with
// when this process was handed it.
type keptCredential struct {
	s  incident.Secret
	at time.Time
}

// keepCredential holds the credential a signal brought for its incident:
// in memory only, for at most the credential TTL after the last signal that
// brought it. The latest one kept replaces any earlier: one kept before the
// incident was reopened (on another replica, say) belongs to its earlier
// life and is not handed out (see credentialFor), so a signal that brings
// the credential again after the reopen must not be dropped in its favour.
func (o *Orchestrator) keepCredential(id string, s incident.Secret) {
	if !s.IsZero() {
		o.creds.Store(id, keptCredential{s: s, at: o.cfg.now()})
	}
}

// credential returns the credential held for the incident, or the zero
// Secret when there is none or it has expired.
func (o *Orchestrator) credential(id string) incident.Secret {
	v, ok := o.creds.Load(id)
	if !ok {
		return incident.Secret{}
	}
	k := v.(keptCredential)
	if o.cfg.now().Sub(k.at) >= o.cfg.credentialTTL {
		o.creds.CompareAndDelete(id, v)
		return incident.Secret{}
	}
	return k.s
}

// credentialFor returns the credential held for inc in its current open
// period: one kept before the incident was last reopened belongs to its
// earlier life and is forgotten.
func (o *Orchestrator) credentialFor(inc *incident.Incident) incident.Secret {
	if v, ok := o.creds.Load(inc.ID); ok && !inc.ReopenedAt.IsZero() && v.(keptCredential).at.Before(inc.ReopenedAt) {
		o.creds.CompareAndDelete(inc.ID, v)
		return incident.Secret{}
	}
	return o.credential(inc.ID)
}

func (o *Orchestrator) forgetCredential(id string) { o.creds.Delete(id) }

// sweepCredentials forgets the credentials that expired and, when open is
// not nil, those of incidents not in it that were kept before mark (the
// incidents ended, here or on another replica).
func (o *Orchestrator) sweepCredentials(open map[string]bool, mark time.Time) {
	now := o.cfg.now()
	o.creds.Range(func(id, v any) bool {
		k := v.(keptCredential)
		if now.Sub(k.at) >= o.cfg.credentialTTL || (open != nil && !open[id.(string)] && k.at.Before(mark)) {
			o.creds.CompareAndDelete(id, v)
		}
		return true
	})
}
