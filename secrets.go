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
	return redactSecrets(o.credentials(id), s)
}

// redactSecrets removes each of secrets from s, the longest first (one
// credential may hold another); it sorts secrets.
func redactSecrets(secrets []incident.Secret, s string) string {
	slices.SortFunc(secrets, func(a, b incident.Secret) int { return len(b.Reveal()) - len(a.Reveal()) })
	for _, c := range secrets {
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
	return redactedBy(err, func(s string) string { return o.redact(id, s) })
}

// redactWith is err with the secrets in its message redacted, for an
// error made while they were known and returned once they may be forgotten.
func redactWith(secrets []incident.Secret, err error) error {
	if len(secrets) == 0 {
		return err
	}
	return redactedBy(err, func(s string) string { return redactSecrets(secrets, s) })
}

// redactedBy is err, or a *redactedError with its message as redact leaves
// it when redact changes it.
func redactedBy(err error, redact func(string) string) error {
	if err == nil {
		return nil
	}
	if msg := redact(err.Error()); msg != err.Error() {
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
	if s.IsZero() {
		return
	}
	now := o.cfg.now()
	if v, ok := o.creds.Load(id); ok {
		// A storm of signals brings the same credential again and again:
		// kept moments ago, it is not stored again (which would allocate
		// for every signal). Its expiry moves at most credentialRefresh
		// earlier than from the last signal.
		if k := v.(keptCredential); k.s == s && now.Sub(k.at) < o.credentialRefresh() {
			return
		}
	}
	o.creds.Store(id, keptCredential{s: s, at: now})
}

// credentialRefresh is how long a kept credential that comes again is
// not stored again: an eighth of the credential TTL, a second at most.
func (o *Orchestrator) credentialRefresh() time.Duration {
	return min(time.Second, o.cfg.credentialTTL/8)
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
	if v, ok := o.merged.LoadAndDelete(id); ok {
		v.(*mergedCredentials).end(time.Time{}, 0) // a keep racing this one retries on a new set
	}
}

// endCredentials is told that inc ended: the credentials held for it are
// forgotten, or, when it was merged, kept for its parent's redaction (the
// parent's record must keep them out: a note quoting the merged key, a
// plugin's error).
func (o *Orchestrator) endCredentials(inc *incident.Incident) {
	if inc.State == incident.StateMerged && inc.MergedInto != "" {
		o.moveCredentials(inc.ID, inc.MergedInto)
		return
	}
	o.forgetCredential(inc.ID)
}

// adoptMerged moves the credentials this process holds for the incidents
// merged into inc to inc's redaction set: a merge done on another replica
// is learnt from the first head of the parent read here that lists the
// child. (A merge done here moved them as the child's end was written.)
func (o *Orchestrator) adoptMerged(inc *incident.Incident) {
	for _, id := range inc.Merged {
		o.moveCredentials(id, inc.ID)
	}
}

// moveCredentials keeps the live credentials held for from (its own and
// those merged into it) for the redaction of to, as old as they were, and
// forgets them for from. Each is kept for to before it is forgotten for
// from.
func (o *Orchestrator) moveCredentials(from, to string) {
	now, ttl := o.cfg.now(), o.cfg.credentialTTL
	if v, ok := o.creds.Load(from); ok {
		if k := v.(keptCredential); now.Sub(k.at) < ttl {
			o.keepMergedAt(to, k.s, k.at)
		}
		o.creds.CompareAndDelete(from, v)
	}
	if v, ok := o.merged.Load(from); ok {
		for _, k := range v.(*mergedCredentials).end(now, ttl) {
			o.keepMergedAt(to, k.s, k.at)
		}
		o.merged.CompareAndDelete(from, v)
	}
}

// keepSignalCredential keeps the credential sig brought for the incident
// of e: as its own when sig carries the incident's key, and for redaction
// alone when sig joined it through a merge (the key of an incident merged
// into it). A merged key's credential is not the incident's: containers
// are never handed it, and it never replaces the incident's own.
func (o *Orchestrator) keepSignalCredential(e *hotEntry, sig *incident.Signal) {
	if hotKeyOf(sig).is(e.dedup) {
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
	// dead: the set left the map (swept empty, forgotten, moved); a keep
	// refused by it stores a new set rather than be lost with this one.
	dead bool
}

// keep adds s, or makes it as new as at when it is there already. It
// returns false, keeping nothing, once the set is dead.
func (m *mergedCredentials) keep(s incident.Secret, at time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return false
	}
	for i := range m.creds {
		if m.creds[i].s.Reveal() == s.Reveal() {
			m.creds[i].at = later(m.creds[i].at, at)
			return true
		}
	}
	if len(m.creds) >= maxMergedCredentials {
		m.creds = slices.Delete(m.creds, 0, 1)
	}
	m.creds = append(m.creds, keptCredential{s: s, at: at})
	return true
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sweep drops what expired by now and what was kept before before. A set
// left empty dies (the caller takes it out of the map) and sweep reports
// true; a keep racing the removal is then refused, not lost.
func (m *mergedCredentials) sweep(now time.Time, ttl time.Duration, before time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creds = slices.DeleteFunc(m.creds, func(k keptCredential) bool { return now.Sub(k.at) >= ttl || k.at.Before(before) })
	m.dead = m.dead || len(m.creds) == 0
	return m.dead
}

// end kills the set and returns what had not expired by now (nothing when
// ttl is 0).
func (m *mergedCredentials) end(now time.Time, ttl time.Duration) []keptCredential {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead = true
	out := slices.DeleteFunc(m.creds, func(k keptCredential) bool { return now.Sub(k.at) >= ttl })
	m.creds = nil
	return out
}

// live returns what has not expired by now.
func (m *mergedCredentials) live(now time.Time, ttl time.Duration) []incident.Secret {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]incident.Secret, 0, len(m.creds))
	for _, k := range m.creds {
		if now.Sub(k.at) < ttl {
			out = append(out, k.s)
		}
	}
	return out
}

// keepMergedCredential keeps s, the credential of an incident merged into
// id, for redaction alone.
func (o *Orchestrator) keepMergedCredential(id string, s incident.Secret) {
	o.keepMergedAt(id, s, o.cfg.now())
}

// keepMergedAt keeps s for the redaction of id as handed over at at.
func (o *Orchestrator) keepMergedAt(id string, s incident.Secret, at time.Time) {
	if s.IsZero() {
		return
	}
	for {
		v, ok := o.merged.Load(id)
		if !ok {
			v, _ = o.merged.LoadOrStore(id, &mergedCredentials{})
		}
		if v.(*mergedCredentials).keep(s, at) {
			return
		}
		o.merged.CompareAndDelete(id, v) // swept or forgotten as this came: a new set
	}
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
		if v.(*mergedCredentials).sweep(now, o.cfg.credentialTTL, before) {
			o.merged.CompareAndDelete(id, v)
		}
		return true
	})
}
