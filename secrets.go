package breach

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach/incident"
)

// redact removes the incident's credential, and those of the incidents
// merged into it, from text bound for the record, the logs or a person,
// should a plugin have put one in an error message. The longest goes
// first: one credential may hold another.
func (o *Orchestrator) redact(id, s string) string {
	if _, ok := o.merged.Load(id); !ok { // the incident's own alone: no list to build
		if c := o.credential(id).Reveal(); c != "" && strings.Contains(s, c) {
			s = strings.ReplaceAll(s, c, incident.Redacted)
		}
		return s
	}
	cs := o.credentials(id)
	slices.SortFunc(cs, func(a, b incident.Secret) int { return len(b.Reveal()) - len(a.Reveal()) })
	for _, c := range cs {
		if c := c.Reveal(); c != "" && strings.Contains(s, c) {
			s = strings.ReplaceAll(s, c, incident.Redacted)
		}
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
	if len(o.credentials(id)) == 0 {
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

// forgetCredential forgets the incident's credential and those of the
// incidents merged into it.
func (o *Orchestrator) forgetCredential(id string) {
	o.creds.Delete(id)
	o.merged.Delete(id)
}

// keepSignalCredential keeps the credential sig brought for the incident
// of e: as its own when sig carries the incident's key, and for redaction
// alone when sig joined it through a merge (the key of an incident merged
// into it). A merged key's credential is not the incident's: containers
// are never handed it, and it never replaces the incident's own.
func (o *Orchestrator) keepSignalCredential(e *hotEntry, sig *incident.Signal) {
	if sig.Key() == e.dedup {
		o.keepCredential(e.id, sig.Credential)
		return
	}
	o.keepMergedCredential(e.id, sig.Credential)
}

// maxMergedCredentials bounds the credentials of merged incidents kept for
// one incident; the oldest goes first.
const maxMergedCredentials = 2 * incident.MaxMerged

// mergedCredentials are the credentials of the incidents merged into one
// incident that this process was handed (the merged incident's own, and
// those later signals for its key brought), kept in memory to redact them
// from the incident's record for the credential TTL after the last
// handover. It is safe for concurrent use.
type mergedCredentials struct {
	mu    sync.Mutex
	creds []keptCredential
}

// keep adds s, or makes it as new as at when it is there already.
func (m *mergedCredentials) keep(s incident.Secret, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.creds {
		if m.creds[i].s.Reveal() == s.Reveal() {
			m.creds[i].at = at
			return
		}
	}
	if len(m.creds) >= maxMergedCredentials {
		m.creds = slices.Delete(m.creds, 0, 1)
	}
	m.creds = append(m.creds, keptCredential{s: s, at: at})
}

// sweep drops what expired by now, and what was kept before before, and
// returns how many are left.
func (m *mergedCredentials) sweep(now time.Time, ttl time.Duration, before time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creds = slices.DeleteFunc(m.creds, func(k keptCredential) bool { return now.Sub(k.at) >= ttl || k.at.Before(before) })
	return len(m.creds)
}

// live drops what expired by now and returns the rest.
func (m *mergedCredentials) live(now time.Time, ttl time.Duration) []incident.Secret {
	m.sweep(now, ttl, time.Time{})
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]incident.Secret, len(m.creds))
	for i, k := range m.creds {
		out[i] = k.s
	}
	return out
}

// keepMergedCredential keeps s, the credential of an incident merged into
// id, for redaction alone.
func (o *Orchestrator) keepMergedCredential(id string, s incident.Secret) {
	if s.IsZero() {
		return
	}
	v, _ := o.merged.LoadOrStore(id, &mergedCredentials{})
	v.(*mergedCredentials).keep(s, o.cfg.now())
}

// credentials returns every credential held for id: its own and those of
// the incidents merged into it.
func (o *Orchestrator) credentials(id string) []incident.Secret {
	var out []incident.Secret
	if c := o.credential(id); !c.IsZero() {
		out = append(out, c)
	}
	if v, ok := o.merged.Load(id); ok {
		out = append(out, v.(*mergedCredentials).live(o.cfg.now(), o.cfg.credentialTTL)...)
	}
	return out
}

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
	o.merged.Range(func(id, v any) bool {
		var before time.Time // the incident ended: what was kept before mark goes
		if open != nil && !open[id.(string)] {
			before = mark
		}
		if v.(*mergedCredentials).sweep(now, o.cfg.credentialTTL, before) == 0 {
			o.merged.CompareAndDelete(id, v)
		}
		return true
	})
}
