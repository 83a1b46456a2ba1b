package breach

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/breachkit/breach/incident"
)

// storeTimeout bounds the store work a Report does on behalf of every
// caller waiting for the same dedup key, after the first caller has left.
const storeTimeout = 30 * time.Second

// Report files a signal: it joins the open incident with the signal's dedup
// key, or opens a new incident and schedules it to be driven. Concurrent
// reports of one key open exactly one incident: in this process through
// single-flight, across processes through the store's uniqueness of open
// dedup keys.
//
// A signal for an incident this process already knows costs a map lookup
// and a counter; its count, last-seen time and sample reach the store with
// the next flush (see WithFlushInterval and Flush). Report validates the
// signal first: an invalid one returns an error matching
// incident.ErrInvalidSignal and nothing is recorded. A credential in the
// signal is kept in memory for containment and never stored.
//
// Report is safe for concurrent use and works whether Run is running or not.
// When it returns an error other than an invalid signal, the signal may or
// may not have been recorded; reporting it again is safe (at worst it is
// counted twice).
func (o *Orchestrator) Report(ctx context.Context, sig incident.Signal) (incident.Receipt, error) {
	if err := sig.Validate(); err != nil {
		return incident.Receipt{}, err
	}
	if sig.At.IsZero() {
		sig.At = o.cfg.now()
	}
	hk := hotKeyOf(&sig)
	if e := o.hot.get(hk); e != nil {
		e.observe(&sig)
		o.keepCredential(e.id, sig.Credential)
		if o.cfg.observer != nil {
			o.observe(Observation{Kind: ObserveSignal, At: sig.At, IncidentID: e.id, IncidentKind: sig.Kind,
				Severity: sig.Severity, Outcome: "joined"})
		}
		return incident.Receipt{IncidentID: e.id}, nil
	}
	rc, err := o.reportSlow(ctx, &sig, hk)
	if err == nil && o.cfg.observer != nil {
		out := "joined"
		if rc.Opened {
			out = "opened"
		}
		o.observe(Observation{Kind: ObserveSignal, At: sig.At, IncidentID: rc.IncidentID, IncidentKind: sig.Kind,
			Severity: sig.Severity, Outcome: out})
	}
	return rc, err
}

type openResult struct {
	entry   *hotEntry
	creator *byte // the token of the caller whose signal opened the incident
}

func (o *Orchestrator) reportSlow(ctx context.Context, sig *incident.Signal, hk hotKey) (incident.Receipt, error) {
	key := sig.Key()
	me := new(byte)
	ch := o.sf.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		return o.openOrJoin(sctx, sig, key, hk, me)
	})
	select {
	case <-ctx.Done():
		return incident.Receipt{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return incident.Receipt{}, r.Err
		}
		res := r.Val.(openResult)
		opened := res.creator == me
		if !opened {
			res.entry.observe(sig)
			o.keepCredential(res.entry.id, sig.Credential)
		}
		return incident.Receipt{IncidentID: res.entry.id, Opened: opened}, nil
	}
}

func (o *Orchestrator) openOrJoin(ctx context.Context, sig *incident.Signal, key string, hk hotKey, me *byte) (openResult, error) {
	for range 3 {
		inc, err := o.store.FindOpen(ctx, key)
		if err == nil {
			return openResult{entry: o.hot.put(hk, inc)}, nil
		}
		if !errors.Is(err, incident.ErrNotFound) {
			return openResult{}, err
		}
		inc = o.newIncident(sig, key)
		err = o.store.Create(ctx, inc)
		if errors.Is(err, incident.ErrDuplicate) {
			continue // another replica opened it first: join that one
		}
		if err != nil {
			return openResult{}, err
		}
		o.keepCredential(inc.ID, sig.Credential)
		e := o.hot.put(hk, inc)
		o.changed()
		o.log.Info("breach: incident opened", "incident", inc.ID, "kind", inc.Kind, "subject", inc.Subject, "severity", inc.Severity.String())
		o.sched.add(inc.ID)
		return openResult{entry: e, creator: me}, nil
	}
	return openResult{}, errors.New("breach: dedup key " + key + " keeps changing hands in the store")
}

func (o *Orchestrator) newIncident(sig *incident.Signal, key string) *incident.Incident {
	now := o.cfg.now()
	inc := &incident.Incident{
		ID:                    o.cfg.newID(),
		Kind:                  sig.Kind,
		Subject:               sig.Subject,
		Account:               sig.Account,
		DedupKey:              key,
		Severity:              sig.Severity,
		State:                 o.lc.Initial(),
		Summary:               sig.Summary,
		CredentialFingerprint: sig.Credential.Fingerprint(),
		Attributes:            maps.Clone(sig.Attributes),
		DetectedAt:            now,
		UpdatedAt:             now,
	}
	inc.Signals.Observe(sig, sig.At)
	detail := "opened from a " + sig.Severity.String() + " " + sig.Kind + " signal about " + sig.Subject
	if sig.Summary != "" {
		detail += ": " + sig.Summary
	}
	if inc.CredentialFingerprint != "" {
		detail += " (credential " + inc.CredentialFingerprint + ")"
	}
	inc.Timeline.Append(incident.Entry{At: now, Actor: detectorActor(sig.Source), Type: incident.EntrySignal,
		To: inc.State, Detail: detail})
	o.openClocks(inc)
	o.reach(inc, incident.MilestoneDetected, now, incident.ActorSystem, "")
	return inc
}

func detectorActor(source string) string {
	if source == "" {
		return "detector"
	}
	return "detector:" + source
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

// Flush writes the signals gathered in memory since the last flush (count,
// first and last seen, samples, a raised severity) to their incidents. Run
// calls it every flush interval and once when it stops; hosts that report
// without Run may call it themselves. Failures are returned joined; what
// failed to flush is kept for the next try.
func (o *Orchestrator) Flush(ctx context.Context) error {
	var errs []error
	for _, e := range o.hot.dirty() {
		d := e.take()
		if d.count == 0 {
			continue
		}
		inc, err := o.store.Get(ctx, e.id)
		if err == nil {
			err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
				o.applyDelta(inc, d)
				return nil
			})
		}
		if err != nil {
			e.giveBack(d)
			errs = append(errs, err)
			continue
		}
		e.flushed(len(d.samples))
		if !inc.State.Open() {
			o.hot.remove(e.id)
		}
	}
	return errors.Join(errs...)
}

func (o *Orchestrator) applyDelta(inc *incident.Incident, d delta) {
	s := &inc.Signals
	s.Count += d.count
	if s.FirstSeen.IsZero() || d.first.Before(s.FirstSeen) {
		s.FirstSeen = d.first
	}
	if d.last.After(s.LastSeen) {
		s.LastSeen = d.last
	}
	for _, smp := range d.samples {
		if len(s.Samples) < incident.MaxSignalSamples {
			s.Samples = append(s.Samples, smp)
		}
	}
	if d.severity > inc.Severity {
		o.record(inc, incident.ActorSystem, incident.EntrySignal,
			"severity raised from "+inc.Severity.String()+" to "+d.severity.String()+" by a later signal")
		inc.Severity = d.severity
	}
}

func (o *Orchestrator) flushLoop(ctx context.Context) {
	t := time.NewTicker(o.cfg.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.Flush(ctx); err != nil && ctx.Err() == nil {
				o.log.Warn("breach: flushing signal counts failed; will retry", "err", err)
			}
		}
	}
}

// hotKey identifies a signal's dedup key without building the string: an
// explicit DedupKey, or the Kind and Subject it defaults from.
type hotKey struct{ dedup, kind, subject string }

func hotKeyOf(s *incident.Signal) hotKey {
	if s.DedupKey != "" {
		return hotKey{dedup: s.DedupKey}
	}
	return hotKey{kind: s.Kind, subject: s.Subject}
}

// hotIndex maps the dedup keys of open incidents this process has seen to
// in-memory counters, so that a signal storm costs no store write per
// signal.
type hotIndex struct {
	mu sync.RWMutex
	m  map[hotKey]*hotEntry
}

func (h *hotIndex) get(k hotKey) *hotEntry {
	h.mu.RLock()
	e := h.m[k]
	h.mu.RUnlock()
	return e
}

// put returns the entry for inc, creating it under k.
func (h *hotIndex) put(k hotKey, inc *incident.Incident) *hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[hotKey]*hotEntry{}
	}
	if e, ok := h.m[k]; ok && e.id == inc.ID {
		return e
	}
	for _, e := range h.m {
		if e.id == inc.ID {
			h.m[k] = e
			return e
		}
	}
	e := &hotEntry{id: inc.ID, room: incident.MaxSignalSamples - len(inc.Signals.Samples)}
	h.m[k] = e
	return e
}

// remove forgets every key of the incident, once it is no longer open.
func (h *hotIndex) remove(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, e := range h.m {
		if e.id == id {
			delete(h.m, k)
		}
	}
}

func (h *hotIndex) dirty() []*hotEntry {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*hotEntry
	seen := map[*hotEntry]bool{}
	for _, e := range h.m {
		if !seen[e] && e.isDirty() {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

type delta struct {
	count       int64
	first, last time.Time
	severity    incident.Severity
	samples     []incident.SignalSample
}

type hotEntry struct {
	id   string
	mu   sync.Mutex
	d    delta
	room int // samples the incident can still take
}

func (e *hotEntry) observe(s *incident.Signal) {
	e.mu.Lock()
	d := &e.d
	d.count++
	if d.first.IsZero() || s.At.Before(d.first) {
		d.first = s.At
	}
	if s.At.After(d.last) {
		d.last = s.At
	}
	if s.Severity > d.severity {
		d.severity = s.Severity
	}
	if len(d.samples) < e.room {
		d.samples = append(d.samples, incident.SignalSample{At: s.At, Source: s.Source, Severity: s.Severity, Summary: s.Summary})
	}
	e.mu.Unlock()
}

func (e *hotEntry) isDirty() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.d.count > 0
}

func (e *hotEntry) take() delta {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.d
	e.d = delta{}
	return d
}

// giveBack merges a delta that could not be flushed into what came since.
func (e *hotEntry) giveBack(d delta) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := &e.d
	cur.count += d.count
	if !d.first.IsZero() && (cur.first.IsZero() || d.first.Before(cur.first)) {
		cur.first = d.first
	}
	if d.last.After(cur.last) {
		cur.last = d.last
	}
	cur.severity = max(cur.severity, d.severity)
	cur.samples = append(d.samples, cur.samples...)
	if len(cur.samples) > e.room {
		cur.samples = cur.samples[:e.room]
	}
}

func (e *hotEntry) flushed(samples int) {
	e.mu.Lock()
	e.room = max(0, e.room-samples)
	e.mu.Unlock()
}
