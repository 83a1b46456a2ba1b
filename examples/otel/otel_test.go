package main

import (
	"bytes"
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/breachkit/breach/incident"
)

// TestOneIncidentEndToEnd runs one API-key incident under a span of the
// test: contained, investigated, the notice's first delivery fails and
// escalates, a person retries, the notice goes out, the incident is
// resolved and closed. Then it reads what the Observer recorded.
func TestOneIncidentEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tel := newTelemetry()
	s, err := newScenario(tel, 1, 1) // one attempt per delivery step, and the first fails
	require.NoError(t, err)

	ctx, parent := s.tracer.Start(ctx, "test")
	reportCtx, report := s.tracer.Start(ctx, "report")
	rc, err := s.orch.Report(reportCtx, leak())
	report.End()
	require.NoError(t, err)
	require.True(t, rc.Opened)
	id := rc.IncidentID

	runCtx, stopRun := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- s.orch.Run(runCtx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopRun()
			require.NoError(t, <-runErr)
		}
	}
	defer stop()

	inc, err := s.until(ctx, id, incident.StateEscalated, incident.StateResolving)
	require.NoError(t, err)
	require.Equal(t, incident.StateEscalated, inc.State, "the failed delivery escalates")
	require.NoError(t, s.orch.Retry(ctx, id, "alice@example.com", "mail server is back"))
	inc, err = s.until(ctx, id, incident.StateResolving, incident.StateEscalated)
	require.NoError(t, err)
	require.Equal(t, incident.StateResolving, inc.State)
	require.NoError(t, s.orch.Resolve(ctx, id, "alice@example.com", "key disabled, customer told"))
	require.NoError(t, s.orch.Close(ctx, id, "bob@example.com", "review held"))
	// Run has stopped its goroutines when it returns: every step has been
	// observed.
	stop()
	parent.End()
	require.Len(t, s.outbox, 1)
	assert.False(t, s.keys.active["key_42"], "the key is disabled")

	// Spans.
	spans := tel.spans.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byName[sp.Name()] = append(byName[sp.Name()], sp)
	}
	require.Len(t, byName["breach.contain"], 1)
	require.Len(t, byName["breach.investigate"], 1)
	require.Len(t, byName["breach.notify"], 2)
	want := map[string]map[attribute.Key]attribute.Value{
		"breach.contain": {attrStep: attribute.StringValue("contain"), attrTarget: attribute.StringValue("disable-api-key"),
			attrAttempts: attribute.IntValue(1), attrOutcome: attribute.StringValue("ok")},
		"breach.investigate": {attrStep: attribute.StringValue("investigate"),
			attrAttempts: attribute.IntValue(1), attrOutcome: attribute.StringValue("ok")},
	}
	for name, attrs := range want {
		sp := byName[name][0]
		got := attrMap(sp.Attributes())
		assert.Equal(t, id, got[attrIncidentID].AsString(), name)
		assert.Equal(t, kind, got[attrIncidentKind].AsString(), name)
		assert.Equal(t, "critical", got[attrSeverity].AsString(), name)
		for k, v := range attrs {
			assert.Equal(t, v, got[k], "%s %s", name, k)
		}
		assert.Equal(t, codes.Unset, sp.Status().Code, name)
	}
	assert.NotContains(t, attrMap(byName["breach.investigate"][0].Attributes()), attrTarget, "investigate has no target")
	failed, delivered := byName["breach.notify"][0], byName["breach.notify"][1]
	if attrMap(failed.Attributes())[attrOutcome].AsString() == "ok" {
		failed, delivered = delivered, failed
	}
	for _, sp := range []sdktrace.ReadOnlySpan{failed, delivered} {
		got := attrMap(sp.Attributes())
		assert.Equal(t, id, got[attrIncidentID].AsString())
		assert.Equal(t, "notify", got[attrStep].AsString())
		assert.Equal(t, "email", got[attrTarget].AsString())
		assert.Equal(t, int64(1), got[attrAttempts].AsInt64())
	}
	assert.Equal(t, "failed", attrMap(failed.Attributes())[attrOutcome].AsString())
	assert.Equal(t, codes.Error, failed.Status().Code)
	assert.Contains(t, failed.Status().Description, "451 4.3.0 mail server temporarily unavailable")
	assert.Equal(t, "ok", attrMap(delivered.Attributes())[attrOutcome].AsString())
	assert.Equal(t, codes.Unset, delivered.Status().Code)

	var steps []sdktrace.ReadOnlySpan
	for _, name := range []string{"breach.contain", "breach.investigate", "breach.notify"} {
		steps = append(steps, byName[name]...)
	}
	for _, sp := range steps {
		assert.Equal(t, parent.SpanContext().SpanID(), sp.Parent().SpanID(), "%s is a child of the test's span", sp.Name())
		assert.Equal(t, parent.SpanContext().TraceID(), sp.SpanContext().TraceID())
		assert.False(t, sp.EndTime().Before(sp.StartTime()), sp.Name())
		if assert.Len(t, sp.Links(), 1, sp.Name()) {
			assert.Equal(t, report.SpanContext().SpanID(), sp.Links()[0].SpanContext.SpanID(), "%s links to the report", sp.Name())
		}
	}

	// The transitions, in order, each an instant span: the first is made
	// by Report's write, under the report's span; the others under the
	// test's, through Run's context or the calls of Retry, Resolve and
	// Close.
	// (Await can return before a transition it saw is observed: order them
	// by time, not by when their spans ended.)
	transitions := byName["breach.transition"]
	sort.SliceStable(transitions, func(i, j int) bool { return transitions[i].StartTime().Before(transitions[j].StartTime()) })
	var path []string
	for _, sp := range transitions {
		got := attrMap(sp.Attributes())
		path = append(path, got[attrFrom].AsString()+">"+got[attrTo].AsString())
		want := parent.SpanContext().SpanID()
		if got[attrFrom].AsString() == "detected" {
			want = report.SpanContext().SpanID()
		}
		assert.Equal(t, want, sp.Parent().SpanID(), path[len(path)-1])
		assert.Equal(t, sp.StartTime(), sp.EndTime())
	}
	assert.Equal(t, []string{
		"detected>containing", "containing>contained", "contained>investigating", "investigating>notifying",
		"notifying>escalated", "escalated>notifying", "notifying>resolving", "resolving>resolved", "resolved>closed",
	}, path)

	// The signal is an event on the span that reported it.
	reported := byName["report"]
	require.Len(t, reported, 1)
	if ev := reported[0].Events(); assert.Len(t, ev, 1) {
		assert.Equal(t, "breach.signal", ev[0].Name)
		assert.Equal(t, "opened", attrMap(ev[0].Attributes)[attrOutcome].AsString())
	}

	// Metrics.
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]int64{
		"containing": 1, "contained": 1, "investigating": 1, "notifying": 2, "escalated": 1,
		"resolving": 1, "resolved": 1, "closed": 1,
	}, sums(t, rm, metricTransitions, attrState))
	open := sums(t, rm, metricOpen, attrState)
	assert.NotEmpty(t, open)
	for state, n := range open {
		assert.Zero(t, n, "open incidents in %s after the close", state)
	}
	assert.Equal(t, map[string]int64{"ok": 1, "failed": 1}, sums(t, rm, metricDeliveries, attrOutcome))
	assert.Equal(t, map[string]int64{"opened": 1}, sums(t, rm, metricSignals, attrOutcome))
	inc, err = s.orch.Get(ctx, id)
	require.NoError(t, err)
	for name, at := range map[string]time.Time{
		metricTimeContain: inc.ContainedAt, metricTimeNotify: inc.NotifiedAt, metricTimeResolve: inc.ResolvedAt,
	} {
		h := histogram(t, rm, name)
		require.Len(t, h.DataPoints, 1, name)
		dp := h.DataPoints[0]
		assert.Equal(t, uint64(1), dp.Count, name)
		sev, _ := dp.Attributes.Value(attrSeverity)
		assert.Equal(t, "critical", sev.AsString(), name)
		require.False(t, at.IsZero(), name)
		assert.InDelta(t, at.Sub(inc.DetectedAt).Seconds(), dp.Sum, 1e-6, "%s measures from DetectedAt", name)
	}

	require.NoError(t, tel.tp.Shutdown(ctx))
	require.NoError(t, tel.mp.Shutdown(ctx))
}

// TestMainPrintsASummary: the program runs the scenario and prints the
// spans and the metrics.
func TestMainPrintsASummary(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	for _, s := range []string{
		"breach.contain", "breach.investigate", "breach.notify", "breach.transition",
		"breach.attempts=2", "event breach.signal breach.outcome=opened", "link to the report",
		metricTransitions, metricOpen, metricTimeContain, metricTimeNotify, metricTimeResolve, metricDeliveries,
	} {
		assert.Contains(t, out.String(), s)
	}
}

func find(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

// sums returns the int64 sum named name by the value of key.
func sums(t *testing.T, rm metricdata.ResourceMetrics, name string, key attribute.Key) map[string]int64 {
	t.Helper()
	sum, ok := find(t, rm, name).Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int64 sum", name)
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		v, _ := dp.Attributes.Value(key)
		out[v.AsString()] += dp.Value
	}
	return out
}

func histogram(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Histogram[float64] {
	t.Helper()
	h, ok := find(t, rm, name).Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a float64 histogram", name)
	return h
}
