// Command otel runs the API-key scenario of breach with an Observer that
// records OpenTelemetry spans and metrics, and prints what it recorded: the
// spans as trees, one per trace, and the metrics.
//
// The host here has a span around Run (the steps are its children), a
// request span around each call of its own API (Report, Resolve, Close),
// and the SDK's in-memory span recorder and manual metric reader where a
// real host would have its exporters.
//
//	go run ./examples/otel
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

// telemetry is the SDK side: a tracer provider recording every span and a
// meter provider read on demand.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
}

func newTelemetry() *telemetry {
	t := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(t.spans))
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(t.reader))
	return t
}

// keys is the host's API key service.
type keys struct {
	mu     sync.Mutex
	active map[string]bool
}

func (k *keys) disable(ctx context.Context, req containment.Request) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.active[req.Subject]; !ok {
		return incident.Permanent(fmt.Errorf("no API key %q", req.Subject))
	}
	k.active[req.Subject] = false
	return nil
}

// scenario is the host: its systems, its playbook, and the orchestrator.
type scenario struct {
	tel    *telemetry
	orch   *breach.Orchestrator
	keys   *keys
	tracer trace.Tracer

	mu     sync.Mutex
	outbox []notify.Message
	fails  int // deliveries still to fail
}

const (
	kind     = "apikey.compromised"
	customer = "acct_7"
)

// newScenario wires an orchestrator for the API-key playbook: disable the
// key, find which customer data it read, notify the customer by e-mail (the
// first failDeliveries attempts fail), resolve and close by hand. The
// Delivery policy makes delivery attempts at most deliveryAttempts times per
// step.
func newScenario(tel *telemetry, failDeliveries, deliveryAttempts int) (*scenario, error) {
	s := &scenario{tel: tel, keys: &keys{active: map[string]bool{"key_42": true}}, fails: failDeliveries,
		tracer: tel.tp.Tracer("host")}
	obs, err := NewObserver(tel.tp, tel.mp)
	if err != nil {
		return nil, err
	}
	email := notify.Func(func(ctx context.Context, m notify.Message) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fails > 0 {
			s.fails--
			return errors.New("smtp: 451 4.3.0 mail server temporarily unavailable")
		}
		if !slices.ContainsFunc(s.outbox, func(sent notify.Message) bool { return sent.IdempotencyKey == m.IdempotencyKey }) {
			s.outbox = append(s.outbox, m)
		}
		return nil
	})
	investigate := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		return incident.Findings{
			Summary:   "An API key of your account was published in a public code repository and used to read campaign reports.",
			RootCause: "API key committed to a public repository",
			Impact: incident.Impact{
				Customers: []incident.Customer{{ID: customer, Name: "Northwind Ads", Email: "security@northwind.example"}},
				Data:      []incident.DataCategory{incident.DataCampaignReports},
			},
		}, nil
	})
	s.orch, err = breach.New(incident.NewMemStore(),
		breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithObserver(obs),
		breach.WithPlaybook(breach.Playbook{
			Kind:     kind,
			Strategy: breach.ContainFirst,
			Containment: []containment.Action{{
				Name:        "disable-api-key",
				Description: "disabled the exposed API key",
				Container:   containment.Func(s.keys.disable),
				Policy:      incident.Policy{Attempts: 3, Timeout: 5 * time.Second, Backoff: 10 * time.Millisecond},
			}},
			Investigator:    investigate,
			Notifiers:       []notify.Route{{Channel: "email", Notifier: email}},
			Delivery:        incident.Policy{Attempts: deliveryAttempts, Timeout: 5 * time.Second, Backoff: 10 * time.Millisecond},
			Recommendations: []string{"Generate a new API key in your dashboard under Settings > API keys."},
			Sender:          "The Example Ads security team",
			Contact:         "security@example.com",
		}),
	)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// request runs fn under a server span of the host's API named name.
func (s *scenario) request(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	err := fn(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// leak is the secret scanner's report.
func leak() incident.Signal {
	return incident.Signal{
		Kind: kind, Subject: "key_42", Account: customer, Severity: incident.SeverityCritical,
		Source: "secret-scanner", Summary: "live API key found in a public repository",
		Credential: incident.NewSecret("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
	}
}

// until waits for incident id to reach one of states.
func (s *scenario) until(ctx context.Context, id string, states ...incident.State) (*incident.Incident, error) {
	return s.orch.Await(ctx, id, func(inc *incident.Incident) bool { return slices.Contains(states, inc.State) })
}

func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tel := newTelemetry()
	s, err := newScenario(tel, 1, 3) // the first delivery attempt fails; the second goes through
	if err != nil {
		return err
	}

	// The secret scanner calls the host's API, which reports the signal.
	var id string
	if err := s.request(ctx, "POST /secret-scanning/alerts", func(ctx context.Context) error {
		rc, err := s.orch.Report(ctx, leak())
		id = rc.IncidentID
		return err
	}); err != nil {
		return err
	}

	// The host runs the orchestrator under a span of its own.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runCtx, runSpan := s.tracer.Start(runCtx, "breach run loop")
	runErr := make(chan error, 1)
	go func() { runErr <- s.orch.Run(runCtx) }()

	inc, err := s.until(ctx, id, incident.StateResolving, incident.StateEscalated)
	if err != nil {
		return err
	}
	if inc.State != incident.StateResolving {
		return fmt.Errorf("incident %s is %s: %v", id, inc.State, inc.Escalation)
	}
	for _, step := range []struct{ name, actor, note string }{
		{"POST /incidents/{id}/resolve", "alice@example.com", "key disabled, customer told"},
		{"POST /incidents/{id}/close", "bob@example.com", "post-incident review held"},
	} {
		if err := s.request(ctx, step.name, func(ctx context.Context) error {
			if strings.HasSuffix(step.name, "/resolve") {
				return s.orch.Resolve(ctx, id, step.actor, step.note)
			}
			return s.orch.Close(ctx, id, step.actor, step.note)
		}); err != nil {
			return err
		}
	}
	// Run returns once its goroutines have stopped: every observation has
	// been made by then.
	stopRun()
	if err := <-runErr; err != nil {
		return err
	}
	runSpan.End()

	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Fprintf(w, "Incident %s: %d customer notice(s) sent\n\n", id, len(s.outbox))
	printSpans(w, tel.spans.Ended())
	fmt.Fprintln(w)
	printMetrics(w, rm)
	return errors.Join(tel.tp.Shutdown(ctx), tel.mp.Shutdown(ctx))
}

// printSpans prints spans as one tree per trace, children in start order.
func printSpans(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	known := map[trace.SpanID]bool{}
	for _, s := range spans {
		known[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && known[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(w, "%s%-*s %9s  %s\n", strings.Repeat("  ", depth), 34-2*depth, s.Name(),
			s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), describe(s))
		for _, c := range children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		fmt.Fprintf(w, "Trace %s\n", r.SpanContext().TraceID())
		walk(r, 1)
	}
}

// describe sums up a span's attributes, status, events and links.
func describe(s sdktrace.ReadOnlySpan) string {
	var parts []string
	if s.Name() == spanTransition {
		a := attrMap(s.Attributes())
		parts = append(parts, a[attrFrom].AsString()+" -> "+a[attrTo].AsString()+" ("+a[attrEvent].AsString()+")")
	} else {
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case attrIncidentID, attrIncidentKind, attrSeverity, attrStep:
				continue // the same on every span, or in the name
			}
			parts = append(parts, string(kv.Key)+"="+kv.Value.String())
		}
	}
	if st := s.Status(); st.Code == codes.Error {
		parts = append(parts, "status=Error("+st.Description+")")
	}
	for _, e := range s.Events() {
		parts = append(parts, "event "+e.Name+attrString(e.Attributes, attrOutcome))
	}
	for range s.Links() {
		parts = append(parts, "link to the report")
	}
	return strings.Join(parts, " ")
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func attrString(kvs []attribute.KeyValue, keys ...attribute.Key) string {
	var b strings.Builder
	for _, kv := range kvs {
		if slices.Contains(keys, kv.Key) {
			b.WriteString(" " + string(kv.Key) + "=" + kv.Value.String())
		}
	}
	return b.String()
}

// printMetrics prints each metric with its data points.
func printMetrics(w io.Writer, rm metricdata.ResourceMetrics) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintf(w, "%s (%s)\n", m.Name, m.Unit)
			var lines []string
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("  %-50s %d", pointAttrs(dp.Attributes), dp.Value))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("  %-50s count=%d sum=%.6fs", pointAttrs(dp.Attributes), dp.Count, dp.Sum))
				}
			}
			sort.Strings(lines)
			fmt.Fprintln(w, strings.Join(lines, "\n"))
		}
	}
}

func pointAttrs(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		if kv.Key == attrIncidentKind {
			continue // one kind in this scenario
		}
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, " ")
}
