package breach

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
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
// the next flush (see WithFlushInterval and Flush). Replicas: until the next
// flush or periodic resume, such a signal may be acknowledged with the ID of
// an incident another replica has just closed; at the flush, signals whose
// At shows they came after the end are filed to a new incident, and the
// others are counted on the ended one. Report validates the
// signal first: an invalid one returns an error matching
// incident.ErrInvalidSignal and nothing is recorded. A credential in the
// signal is kept in memory for containment and never stored.
//
// Report is safe for concurrent use and works whether Run is running or not.
// When it returns an error other than an invalid signal, the signal may or
// may not have been recorded; reporting it again is safe (at worst it is
// counted twice).
func (o *Orchestrator) Report(ctx context.Context, sig incident.Signal) (incident.Receipt, error) {
	if err := sig.ValidateAt(o.cfg.now()); err != nil {
		return incident.Receipt{}, err
	}
	if e := o.hot.get(hotKeyOf(&sig)); e != nil {
		e.observe(&sig, o.cfg.now)
		if !sig.Credential.IsZero() {
			o.keepCredential(e.id, sig.Credential)
		}
		if o.cfg.observer != nil {
			o.observe(Observation{Kind: ObserveSignal, At: sig.At, IncidentID: e.id, IncidentKind: sig.Kind,
				Severity: sig.Severity, Outcome: "joined"})
		}
		return incident.Receipt{IncidentID: e.id}, nil
	}
	rc, err := o.reportSlow(ctx, sig)
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

// reportSlow opens or finds the incident for a signal the hot index does
// not know. It takes the signal by value so that the fast path's copy stays
// on the stack.
func (o *Orchestrator) reportSlow(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	sig := &s
	if sig.At.IsZero() {
		sig.At = o.cfg.now()
	}
	hk := hotKeyOf(sig)
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
			res.entry.observe(sig, o.cfg.now)
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
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, flushConcurrency)
	for _, e := range o.hot.pending() {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := o.flushEntry(ctx, e); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// flushConcurrency bounds the incidents Flush writes at once.
const flushConcurrency = 8

func (o *Orchestrator) flushEntry(ctx context.Context, e *hotEntry) error {
	d := e.take()
	if d.count == 0 && d.severity == 0 && d.last.IsZero() && !d.untimed && len(d.samples) == 0 {
		return nil
	}
	if d.untimed {
		// Signals without a time were counted without reading the clock;
		// the flush is when they are known to have been seen by.
		if now := o.cfg.now(); now.After(d.last) {
			d.last = now
		}
	}
	inc, err := o.store.Get(ctx, e.id)
	if err == nil {
		err = o.mutate(ctx, inc, func(inc *incident.Incident) error {
			if !inc.State.Open() && !d.untimed && !d.first.IsZero() && d.first.After(endedAt(inc)) {
				return errEnded
			}
			o.applyDelta(inc, d)
			return nil
		})
	}
	if errors.Is(err, errEnded) {
		// Every one of these signals was seen after the incident ended (on
		// another replica, say): they belong to a new incident.
		o.hot.remove(e.id)
		return o.refile(ctx, e, d)
	}
	if err != nil {
		e.giveBack(d)
		return err
	}
	if !inc.State.Open() {
		// Signals seen while it was open, or without a time to tell, stay
		// on it; the next signal for the key opens a new incident.
		o.hot.remove(e.id)
	}
	return nil
}

// endedAt is when an incident that is no longer open closed or was
// dismissed: the time of its last transition.
func endedAt(inc *incident.Incident) time.Time {
	for i := len(inc.Timeline) - 1; i >= 0; i-- {
		if inc.Timeline[i].Type == incident.EntryTransition {
			return inc.Timeline[i].At
		}
	}
	return inc.UpdatedAt
}

// errEnded stops a flush into an incident that is no longer open.
var errEnded = errors.New("breach: incident ended")

// refile reports signals counted on an incident that ended as one signal
// for the same key, which opens a new incident (or joins the one open
// now), and adds the rest of the count to it.
func (o *Orchestrator) refile(ctx context.Context, e *hotEntry, d delta) error {
	if d.count == 0 {
		return nil
	}
	sig := incident.Signal{Kind: e.kind, Subject: e.key.subject, DedupKey: e.key.dedup, Severity: d.severity,
		Source: "coalesced", Summary: strconv.FormatInt(d.count, 10) + " signal(s) that arrived as the previous incident ended",
		At: d.last}
	if e.key.dedup != "" {
		if inc, err := o.store.Get(ctx, e.id); err == nil {
			sig.Subject = inc.Subject
		}
	}
	if !sig.Severity.Valid() {
		sig.Severity = incident.SeverityLow
	}
	if len(d.samples) > 0 {
		sig.Source, sig.Summary = d.samples[0].Source, d.samples[0].Summary
	}
	if sig.At.IsZero() {
		sig.At = o.cfg.now()
	}
	if err := sig.Validate(); err != nil {
		return err
	}
	if _, err := o.reportSlow(ctx, sig); err != nil {
		e.giveBack(d)
		return err
	}
	if d.count > 1 {
		if n := o.hot.get(hotKeyOf(&sig)); n != nil {
			n.giveBack(delta{count: d.count - 1, last: d.last, untimed: d.untimed, severity: d.severity})
		}
	}
	return nil
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

// hotKey identifies a signal's dedup key without building the string: an
// explicit DedupKey, or the Kind and Subject it defaults from. The index
// hashes one string of it: the dedup key, or else the subject.
type hotKey struct{ dedup, kind, subject string }

func hotKeyOf(s *incident.Signal) hotKey {
	if s.DedupKey != "" {
		return hotKey{dedup: s.DedupKey}
	}
	return hotKey{kind: s.Kind, subject: s.Subject}
}

// hotMap is a map from hotKey hashing a single string per lookup.
type hotMap struct {
	byDedup   map[string]*hotEntry
	bySubject map[string][]kindEntry // usually one kind per subject
}

type kindEntry struct {
	kind string
	e    *hotEntry
}

func (m *hotMap) get(k hotKey) *hotEntry {
	if k.dedup != "" {
		return m.byDedup[k.dedup]
	}
	for _, ke := range m.bySubject[k.subject] {
		if ke.kind == k.kind {
			return ke.e
		}
	}
	return nil
}

func (m *hotMap) set(k hotKey, e *hotEntry) {
	if k.dedup != "" {
		if m.byDedup == nil {
			m.byDedup = map[string]*hotEntry{}
		}
		m.byDedup[k.dedup] = e
		return
	}
	if m.bySubject == nil {
		m.bySubject = map[string][]kindEntry{}
	}
	list := m.bySubject[k.subject]
	for i := range list {
		if list[i].kind == k.kind {
			list[i].e = e
			return
		}
	}
	m.bySubject[k.subject] = append(list, kindEntry{k.kind, e})
}

func (m *hotMap) each(fn func(hotKey, *hotEntry) bool) bool {
	for d, e := range m.byDedup {
		if !fn(hotKey{dedup: d}, e) {
			return false
		}
	}
	for s, list := range m.bySubject {
		for _, ke := range list {
			if !fn(hotKey{kind: ke.kind, subject: s}, ke.e) {
				return false
			}
		}
	}
	return true
}

func (m *hotMap) len() int {
	n := len(m.byDedup)
	for _, list := range m.bySubject {
		n += len(list)
	}
	return n
}

// hotIndex maps the dedup keys of open incidents this process has seen to
// in-memory counters, so that a signal storm costs no store write per
// signal. Reads take no lock: they look in an immutable snapshot behind an
// atomic pointer. New keys go to a mutex-guarded map that is folded into a
// new snapshot once lookups have missed the snapshot as often as it has
// entries (the scheme of sync.Map, without boxing the key). Entries of
// incidents that ended are marked dead and dropped at the next fold.
type hotIndex struct {
	read     atomic.Pointer[hotMap]
	mu       sync.Mutex
	seq      uint64                 // entries created so far
	live     map[string]*hotEntry   // by incident ID, the entries not dead
	retiring map[*hotEntry]struct{} // dead entries that may still hold counts
	dirty    hotMap                 // keys not yet in read
	misses   int
}

func (h *hotIndex) get(k hotKey) *hotEntry {
	if m := h.read.Load(); m != nil {
		if e := m.get(k); e != nil && !e.dead.Load() {
			return e
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.dirty.get(k)
	if n := h.dirty.len(); n > 0 {
		h.misses++
		if h.misses >= n {
			h.fold()
		}
	}
	if e != nil && e.dead.Load() {
		return nil
	}
	return e
}

// fold makes a new snapshot of the live entries; h.mu is held.
func (h *hotIndex) fold() {
	m := &hotMap{}
	keep := func(k hotKey, e *hotEntry) bool {
		if !e.dead.Load() {
			m.set(k, e)
		}
		return true
	}
	if old := h.read.Load(); old != nil {
		old.each(keep)
	}
	h.dirty.each(keep)
	h.read.Store(m)
	h.dirty, h.misses = hotMap{}, 0
}

// put returns the live entry for inc, creating it under k.
func (h *hotIndex) put(k hotKey, inc *incident.Incident) *hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.live[inc.ID]
	if e == nil {
		h.seq++
		e = &hotEntry{id: inc.ID, key: k, kind: inc.Kind, born: h.seq}
		e.room.Store(int32(incident.MaxSignalSamples - len(inc.Signals.Samples)))
		if h.live == nil {
			h.live = map[string]*hotEntry{}
		}
		h.live[inc.ID] = e
	}
	if m := h.read.Load(); m != nil && m.get(k) == e {
		return e
	}
	h.dirty.set(k, e)
	return e
}

// mark returns a position to pass to retain.
func (h *hotIndex) mark() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// retain forgets every incident not in open that the index knew at mark:
// entries made since may be for incidents opened after open was read.
func (h *hotIndex) retain(open map[string]bool, mark uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.live {
		if e.born <= mark && !open[id] {
			h.retire(e)
		}
	}
}

// remove forgets the incident once it is no longer open: its entry is
// marked dead, so the next signal with its key takes the slow path.
func (h *hotIndex) remove(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.live[id]; e != nil {
		h.retire(e)
	}
}

// retire marks e dead and keeps it until what it counted is flushed; h.mu
// is held.
func (h *hotIndex) retire(e *hotEntry) {
	e.dead.Store(true)
	delete(h.live, e.id)
	if h.retiring == nil {
		h.retiring = map[*hotEntry]struct{}{}
	}
	h.retiring[e] = struct{}{}
}

// pending returns the entries with signals not yet flushed: live ones with
// a count, and retired ones until they are found empty.
func (h *hotIndex) pending() []*hotEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*hotEntry
	for _, e := range h.live {
		if e.count.Load() > 0 {
			out = append(out, e)
		}
	}
	for e := range h.retiring {
		if e.count.Load() > 0 {
			out = append(out, e)
		} else {
			delete(h.retiring, e)
		}
	}
	return out
}

type delta struct {
	count       int64
	first, last time.Time
	untimed     bool
	severity    incident.Severity
	samples     []incident.SignalSample
}

// hotEntry gathers the signals of one open incident between flushes. The
// counters are atomics, so concurrent reports of one key contend on one
// cache line, as a mutex would, and never block; the first few signals are
// also kept as samples, under mu.
type hotEntry struct {
	id       string
	key      hotKey // the key it was filed under, to re-file signals
	kind     string
	born     uint64 // hotIndex.seq when created
	dead     atomic.Bool
	count    atomic.Int64
	first    atomic.Int64 // Unix nanoseconds; 0: none since the last take
	last     atomic.Int64
	untimed  atomic.Bool // a signal came without At
	severity atomic.Int32
	room     atomic.Int32 // samples the incident can still take, less those gathered

	mu      sync.Mutex
	samples []incident.SignalSample
}

func (e *hotEntry) observe(s *incident.Signal, now func() time.Time) {
	e.count.Add(1)
	if sev := int32(s.Severity); sev > e.severity.Load() {
		casMax32(&e.severity, sev)
	}
	at := s.At
	if e.room.Load() > 0 {
		if at.IsZero() {
			at = now()
		}
		e.mu.Lock()
		if e.room.Load() > 0 {
			e.room.Add(-1)
			e.samples = append(e.samples, incident.SignalSample{At: at, Source: s.Source, Severity: s.Severity, Summary: s.Summary})
		}
		e.mu.Unlock()
	}
	if at.IsZero() {
		if !e.untimed.Load() {
			e.untimed.Store(true)
		}
		return
	}
	ns := at.UnixNano()
	if ns > e.last.Load() {
		casMax(&e.last, ns)
	}
	if f := e.first.Load(); f == 0 || ns < f {
		casMin(&e.first, ns)
	}
}

func casMax(v *atomic.Int64, x int64) {
	for old := v.Load(); x > old && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func casMin(v *atomic.Int64, x int64) {
	for old := v.Load(); (old == 0 || x < old) && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func casMax32(v *atomic.Int32, x int32) {
	for old := v.Load(); x > old && !v.CompareAndSwap(old, x); old = v.Load() {
	}
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// take removes and returns what was gathered since the last take.
func (e *hotEntry) take() delta {
	d := delta{
		count:    e.count.Swap(0),
		first:    fromNanos(e.first.Swap(0)),
		last:     fromNanos(e.last.Swap(0)),
		untimed:  e.untimed.Swap(false),
		severity: incident.Severity(e.severity.Swap(0)),
	}
	e.mu.Lock()
	d.samples, e.samples = e.samples, nil
	e.mu.Unlock()
	return d
}

// giveBack merges a delta that could not be flushed into what came since.
func (e *hotEntry) giveBack(d delta) {
	e.count.Add(d.count)
	if !d.first.IsZero() {
		casMin(&e.first, d.first.UnixNano())
	}
	if !d.last.IsZero() {
		casMax(&e.last, d.last.UnixNano())
	}
	if d.untimed {
		e.untimed.Store(true)
	}
	casMax32(&e.severity, int32(d.severity))
	e.mu.Lock()
	e.samples = append(d.samples, e.samples...)
	e.mu.Unlock()
}
