package main

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// scope names the tracer and the meter.
const scope = "github.com/breachkit/breach/examples/otel"

// Span and metric names.
const (
	// A step span is named spanStepPrefix + the step: breach.contain,
	// breach.release, breach.investigate, breach.notify.
	spanStepPrefix = "breach."
	// spanTransition is the name of a transition's span: an instant,
	// sibling of the steps.
	spanTransition = "breach.transition"
	// eventSignal is the event a signal adds to the span of the Report
	// caller.
	eventSignal = "breach.signal"

	metricSignals      = "breach.signals"
	metricTransitions  = "breach.incident.transitions"
	metricOpen         = "breach.incident.open"
	metricTimeContain  = "breach.incident.time_to_contain"
	metricTimeNotify   = "breach.incident.time_to_notify"
	metricTimeResolve  = "breach.incident.time_to_resolve"
	metricDeliveries   = "breach.notify.deliveries"
	attrIncidentID     = attribute.Key("breach.incident.id")
	attrIncidentKind   = attribute.Key("breach.incident.kind")
	attrSeverity       = attribute.Key("breach.severity")
	attrStep           = attribute.Key("breach.step")
	attrTarget         = attribute.Key("breach.target")
	attrAttempts       = attribute.Key("breach.attempts")
	attrOutcome        = attribute.Key("breach.outcome")
	attrState          = attribute.Key("breach.state")
	attrEvent          = attribute.Key("breach.transition.event")
	attrFrom           = attribute.Key("breach.transition.from")
	attrTo             = attribute.Key("breach.transition.to")
	attrSecondsInState = attribute.Key("breach.transition.seconds_in_from")
)

// responseBuckets are the bucket boundaries of the time-to histograms, in
// seconds: a minute to a week, with GDPR's 72 hours among them.
var responseBuckets = []float64{
	1, 10, 60, 5 * 60, 15 * 60, 30 * 60, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600, 7 * 24 * 3600,
}

// Observer turns breach observations into OpenTelemetry spans and metrics.
// It is a breach.Observer: safe for concurrent use, and it never blocks on
// anything but its own short critical section.
//
// Spans: a step observation becomes a span named "breach.<step>" from
// At-Duration to At, a child of the span in the observation's context (the
// host's span around Run), linked to the span of the Report call that
// opened the incident when this process saw it. A failed or interrupted
// step has status Error with its error, which the orchestrator redacted.
// A transition becomes an instant span "breach.transition" beside them,
// a child of the span of whoever made it: Report, Run, or the caller of
// Retry, Resolve or Close. It is a span of its own, not an event, because
// a transition is observed after the write that made it and before the
// step that caused it is observed, so there is no step span yet to carry
// it, and the span in the context is the host's (the span around Run
// lives as long as the process), no place to pile incident history on.
// A signal adds a "breach.signal" event to the Report caller's span.
//
// Metrics: signals by outcome, transitions by the state entered, open
// incidents by state, the time from detection to containment, to every
// customer notified and to resolution, and deliveries by outcome.
type Observer struct {
	tracer trace.Tracer

	signals     metric.Int64Counter
	transitions metric.Int64Counter
	open        metric.Int64UpDownCounter
	toContain   metric.Float64Histogram
	toNotify    metric.Float64Histogram
	toResolve   metric.Float64Histogram
	deliveries  metric.Int64Counter

	mu sync.Mutex
	// progress holds what this process saw of each incident: the span that
	// reported it, and when it was detected. It holds at most maxTracked;
	// incidents beyond are neither linked nor measured.
	progress map[string]*progress
	// ended lists the incidents of progress that ended, oldest first. They
	// are forgotten maxEnded ends later, not at once: observations are made
	// on several goroutines, so a step or transition can be observed after
	// the close that followed it.
	ended []string
}

// maxEnded is how many ended incidents an Observer remembers, and
// maxTracked how many incidents in all (one this process reported that
// another replica drove to its end is never seen to end here).
const (
	maxEnded   = 1024
	maxTracked = 100_000
)

// progress is what the links and the time-to histograms need of one
// incident.
type progress struct {
	// reported is the span of the Report call that opened the incident:
	// its steps run under Run's context, in another trace, and link to it.
	reported trace.SpanContext
	// detectedAt is set when the incident leaves StateDetected.
	detectedAt                    time.Time
	contained, notified, resolved bool
}

var _ breach.Observer = (*Observer)(nil)

// NewObserver returns an Observer recording with tp and mp.
func NewObserver(tp trace.TracerProvider, mp metric.MeterProvider) (*Observer, error) {
	m := mp.Meter(scope)
	o := &Observer{tracer: tp.Tracer(scope), progress: map[string]*progress{}}
	var err error
	if o.signals, err = m.Int64Counter(metricSignals, metric.WithUnit("{signal}"),
		metric.WithDescription("Signals reported, by outcome (opened an incident or joined one).")); err != nil {
		return nil, err
	}
	if o.transitions, err = m.Int64Counter(metricTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Incidents entering a state, by the state entered.")); err != nil {
		return nil, err
	}
	if o.open, err = m.Int64UpDownCounter(metricOpen, metric.WithUnit("{incident}"),
		metric.WithDescription("Open incidents by state, as this process saw them open and move.")); err != nil {
		return nil, err
	}
	hist := func(name, desc string) (metric.Float64Histogram, error) {
		return m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(responseBuckets...))
	}
	if o.toContain, err = hist(metricTimeContain, "Time from detection until every containment action was applied."); err != nil {
		return nil, err
	}
	if o.toNotify, err = hist(metricTimeNotify, "Time from detection until every affected customer was notified."); err != nil {
		return nil, err
	}
	if o.toResolve, err = hist(metricTimeResolve, "Time from detection until the incident was resolved."); err != nil {
		return nil, err
	}
	if o.deliveries, err = m.Int64Counter(metricDeliveries, metric.WithUnit("{delivery}"),
		metric.WithDescription("Customer notice deliveries (one per customer and channel), by outcome.")); err != nil {
		return nil, err
	}
	return o, nil
}

// Observe records ob. ctx is only read, never kept.
func (o *Observer) Observe(ctx context.Context, ob breach.Observation) {
	kind := attrIncidentKind.String(ob.IncidentKind)
	switch ob.Kind {
	case breach.ObserveSignal:
		o.signals.Add(ctx, 1, metric.WithAttributes(kind, attrOutcome.String(ob.Outcome)))
		if ob.Outcome == "opened" {
			o.open.Add(ctx, 1, metric.WithAttributes(kind, attrState.String(string(incident.StateDetected))))
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				o.mu.Lock()
				if p := o.progressOf(ob.IncidentID); p != nil {
					p.reported = sc
				}
				o.mu.Unlock()
			}
		}
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent(eventSignal, trace.WithTimestamp(ob.At), trace.WithAttributes(
				attrIncidentID.String(ob.IncidentID), kind, attrSeverity.String(ob.Severity.String()),
				attrOutcome.String(ob.Outcome)))
		}
	case breach.ObserveStep:
		o.step(ctx, ob, kind)
	case breach.ObserveTransition:
		o.transition(ctx, ob, kind)
	}
}

func (o *Observer) step(ctx context.Context, ob breach.Observation, kind attribute.KeyValue) {
	attrs := []attribute.KeyValue{
		attrIncidentID.String(ob.IncidentID), kind, attrSeverity.String(ob.Severity.String()),
		attrStep.String(ob.Step), attrAttempts.Int(ob.Attempts), attrOutcome.String(ob.Outcome),
	}
	if ob.Target != "" {
		attrs = append(attrs, attrTarget.String(ob.Target))
	}
	opts := []trace.SpanStartOption{trace.WithTimestamp(ob.At.Add(-ob.Duration)),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...)}
	if link := o.reportedSpan(ob.IncidentID); link.IsValid() && !link.Equal(trace.SpanContextFromContext(ctx)) {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	_, span := o.tracer.Start(ctx, spanStepPrefix+ob.Step, opts...)
	if ob.Err != nil {
		// The orchestrator redacted the error before handing it over.
		span.RecordError(ob.Err, trace.WithTimestamp(ob.At))
		span.SetStatus(codes.Error, ob.Err.Error())
	}
	span.End(trace.WithTimestamp(ob.At))

	if ob.Step == "notify" {
		o.deliveries.Add(ctx, 1, metric.WithAttributes(kind, attrTarget.String(ob.Target), attrOutcome.String(ob.Outcome)))
	}
}

func (o *Observer) transition(ctx context.Context, ob breach.Observation, kind attribute.KeyValue) {
	_, span := o.tracer.Start(ctx, spanTransition, trace.WithTimestamp(ob.At), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrIncidentID.String(ob.IncidentID), kind, attrSeverity.String(ob.Severity.String()),
			attrEvent.String(string(ob.Event)), attrFrom.String(string(ob.From)), attrTo.String(string(ob.To)),
			attrSecondsInState.Float64(ob.Duration.Seconds())))
	span.End(trace.WithTimestamp(ob.At))

	o.transitions.Add(ctx, 1, metric.WithAttributes(kind, attrState.String(string(ob.To))))
	if ob.From.Open() {
		o.open.Add(ctx, -1, metric.WithAttributes(kind, attrState.String(string(ob.From))))
	}
	if ob.To.Open() {
		o.open.Add(ctx, 1, metric.WithAttributes(kind, attrState.String(string(ob.To))))
	}

	// The time-to histograms measure from detection. An Observation does
	// not carry DetectedAt, but the transition out of StateDetected does
	// carry the time spent there: the incident was detected at At-Duration.
	// An incident this process did not see leave StateDetected (it was
	// detected before a restart, or by another replica) is not measured.
	var (
		hist  metric.Float64Histogram // the one this transition measures, if any
		since time.Duration
	)
	o.mu.Lock()
	p := o.progress[ob.IncidentID]
	if ob.From == incident.StateDetected && (p == nil || p.detectedAt.IsZero()) {
		if p = o.progressOf(ob.IncidentID); p != nil {
			p.detectedAt = ob.At.Add(-ob.Duration)
		}
	}
	if p != nil {
		since = ob.At.Sub(p.detectedAt)
		switch {
		case p.detectedAt.IsZero():
		case ob.To == incident.StateContained && !p.contained:
			p.contained, hist = true, o.toContain
		case ob.Event == incident.EventNotified && !p.notified:
			p.notified, hist = true, o.toNotify
		case ob.To == incident.StateResolved && !p.resolved:
			p.resolved, hist = true, o.toResolve
		}
		if !ob.To.Open() {
			o.ended = append(o.ended, ob.IncidentID)
			if len(o.ended) > maxEnded {
				delete(o.progress, o.ended[0])
				o.ended = o.ended[1:]
			}
		}
	}
	o.mu.Unlock()
	if hist != nil {
		hist.Record(ctx, since.Seconds(), metric.WithAttributes(kind, attrSeverity.String(ob.Severity.String())))
	}
}

// progressOf returns the progress of incident id, adding it, or nil when
// it is not there and maxTracked are. o.mu is held.
func (o *Observer) progressOf(id string) *progress {
	p := o.progress[id]
	if p == nil && len(o.progress) < maxTracked {
		p = &progress{}
		o.progress[id] = p
	}
	return p
}

// reportedSpan returns the span that reported incident id, if this process
// saw it.
func (o *Observer) reportedSpan(id string) trace.SpanContext {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p := o.progress[id]; p != nil {
		return p.reported
	}
	return trace.SpanContext{}
}
