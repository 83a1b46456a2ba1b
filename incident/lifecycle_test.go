package incident_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// standardTable is the Standard lifecycle written out by hand, in declaration
// order. Any change to the table in lifecycle.go must be mirrored here.
var standardTable = []incident.Transition{
	{From: incident.StateDetected, Event: incident.EventInvestigate, To: incident.StateInvestigating},
	{From: incident.StateDetected, Event: incident.EventContain, To: incident.StateContaining},
	{From: incident.StateDetected, Event: incident.EventDismiss, To: incident.StateDismissed},
	{From: incident.StateDetected, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateInvestigating, Event: incident.EventContain, To: incident.StateContaining},
	{From: incident.StateInvestigating, Event: incident.EventNotify, To: incident.StateNotifying},
	{From: incident.StateInvestigating, Event: incident.EventRemediate, To: incident.StateResolving},
	{From: incident.StateInvestigating, Event: incident.EventDismiss, To: incident.StateDismissed},
	{From: incident.StateInvestigating, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateContaining, Event: incident.EventContained, To: incident.StateContained},
	{From: incident.StateContaining, Event: incident.EventDismiss, To: incident.StateDismissed},
	{From: incident.StateContaining, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateContained, Event: incident.EventInvestigate, To: incident.StateInvestigating},
	{From: incident.StateContained, Event: incident.EventNotify, To: incident.StateNotifying},
	{From: incident.StateContained, Event: incident.EventRemediate, To: incident.StateResolving},
	{From: incident.StateContained, Event: incident.EventDismiss, To: incident.StateDismissed},
	{From: incident.StateContained, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateNotifying, Event: incident.EventNotified, To: incident.StateResolving},
	{From: incident.StateNotifying, Event: incident.EventDismiss, To: incident.StateDismissed},
	{From: incident.StateNotifying, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateResolving, Event: incident.EventResolve, To: incident.StateResolved},
	{From: incident.StateResolving, Event: incident.EventNotify, To: incident.StateNotifying},
	{From: incident.StateResolving, Event: incident.EventEscalate, To: incident.StateEscalated},

	{From: incident.StateResolved, Event: incident.EventClose, To: incident.StateClosed},
	{From: incident.StateResolved, Event: incident.EventReopen, To: incident.StateInvestigating},

	{From: incident.StateClosed, Event: incident.EventReopen, To: incident.StateInvestigating},

	{From: incident.StateDismissed, Event: incident.EventReopen, To: incident.StateInvestigating},

	{From: incident.StateEscalated, Event: incident.EventInvestigate, To: incident.StateInvestigating},
	{From: incident.StateEscalated, Event: incident.EventContain, To: incident.StateContaining},
	{From: incident.StateEscalated, Event: incident.EventNotify, To: incident.StateNotifying},
	{From: incident.StateEscalated, Event: incident.EventRemediate, To: incident.StateResolving},
	{From: incident.StateEscalated, Event: incident.EventDismiss, To: incident.StateDismissed},

	// merge: from every open state; merged has no way out.
	{From: incident.StateDetected, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateInvestigating, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateContaining, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateContained, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateNotifying, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateResolving, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateResolved, Event: incident.EventMerge, To: incident.StateMerged},
	{From: incident.StateEscalated, Event: incident.EventMerge, To: incident.StateMerged},
}

var standardStates = []incident.State{
	incident.StateDetected, incident.StateInvestigating, incident.StateContaining, incident.StateContained,
	incident.StateNotifying, incident.StateResolving, incident.StateResolved, incident.StateClosed,
	incident.StateDismissed, incident.StateEscalated, incident.StateMerged,
}

var allEvents = []incident.Event{
	incident.EventInvestigate, incident.EventContain, incident.EventContained, incident.EventNotify,
	incident.EventNotified, incident.EventRemediate, incident.EventResolve, incident.EventClose,
	incident.EventReopen, incident.EventDismiss, incident.EventEscalate, incident.EventMerge,
}

func TestStandardIsSingleton(t *testing.T) {
	assert.Same(t, incident.Standard(), incident.Standard())
}

func TestStandardTransitionsMatchTable(t *testing.T) {
	l := incident.Standard()
	assert.Equal(t, standardTable, l.Transitions())
	assert.Equal(t, standardStates, l.States())
	assert.Equal(t, incident.StateDetected, l.Initial())
}

func TestStandardNextFollowsEveryTransition(t *testing.T) {
	l := incident.Standard()
	ts := l.Transitions()
	require.NotEmpty(t, ts)
	for _, tr := range ts {
		t.Run(string(tr.From)+"/"+string(tr.Event), func(t *testing.T) {
			to, err := l.Next(tr.From, tr.Event)
			require.NoError(t, err)
			assert.Equal(t, tr.To, to)
			assert.True(t, l.Can(tr.From, tr.Event))
		})
	}
}

// TestStandardRefusesEverythingElse checks the full cross product of states
// and events: exactly the rows of the hand-written table are allowed.
func TestStandardRefusesEverythingElse(t *testing.T) {
	l := incident.Standard()
	allowed := make(map[[2]string]incident.State)
	for _, tr := range standardTable {
		allowed[[2]string{string(tr.From), string(tr.Event)}] = tr.To
	}
	for _, s := range standardStates {
		for _, ev := range allEvents {
			want, ok := allowed[[2]string{string(s), string(ev)}]
			to, err := l.Next(s, ev)
			if ok {
				assert.NoError(t, err, "%s --%s-->", s, ev)
				assert.Equal(t, want, to, "%s --%s-->", s, ev)
				continue
			}
			assert.ErrorIs(t, err, incident.ErrInvalidTransition, "%s --%s--> should be refused", s, ev)
			assert.False(t, l.Can(s, ev), "%s --%s-->", s, ev)
			assert.Empty(t, to)
		}
	}
}

func TestNextRefusals(t *testing.T) {
	l := incident.Standard()
	tests := []struct {
		name    string
		from    incident.State
		event   incident.Event
		want    error
		notWant []error
	}{
		{"closed cannot contain", incident.StateClosed, incident.EventContain, incident.ErrInvalidTransition,
			[]error{incident.ErrUnknownState, incident.ErrUnknownEvent}},
		{"detected cannot close", incident.StateDetected, incident.EventClose, incident.ErrInvalidTransition,
			[]error{incident.ErrUnknownState, incident.ErrUnknownEvent}},
		{"containing cannot notify", incident.StateContaining, incident.EventNotify, incident.ErrInvalidTransition,
			[]error{incident.ErrUnknownState, incident.ErrUnknownEvent}},
		{"escalated cannot escalate", incident.StateEscalated, incident.EventEscalate, incident.ErrInvalidTransition,
			[]error{incident.ErrUnknownState, incident.ErrUnknownEvent}},
		{"unknown state", "limbo", incident.EventInvestigate, incident.ErrUnknownState,
			[]error{incident.ErrInvalidTransition, incident.ErrUnknownEvent}},
		{"empty state", "", incident.EventInvestigate, incident.ErrUnknownState,
			[]error{incident.ErrInvalidTransition, incident.ErrUnknownEvent}},
		{"unknown event", incident.StateDetected, "explode", incident.ErrUnknownEvent,
			[]error{incident.ErrInvalidTransition, incident.ErrUnknownState}},
		{"empty event", incident.StateDetected, "", incident.ErrUnknownEvent,
			[]error{incident.ErrInvalidTransition, incident.ErrUnknownState}},
		{"unknown state wins over unknown event", "limbo", "explode", incident.ErrUnknownState,
			[]error{incident.ErrInvalidTransition, incident.ErrUnknownEvent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, err := l.Next(tt.from, tt.event)
			require.Error(t, err)
			assert.Empty(t, to)
			assert.ErrorIs(t, err, tt.want)
			for _, nw := range tt.notWant {
				assert.NotErrorIs(t, err, nw)
			}
			var te *incident.TransitionError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tt.from, te.From)
			assert.Equal(t, tt.event, te.Event)
			assert.Equal(t, tt.want, te.Err)
			assert.Contains(t, err.Error(), string(tt.event))
			assert.False(t, l.Can(tt.from, tt.event))
		})
	}
}

func TestHas(t *testing.T) {
	l := incident.Standard()
	for _, s := range standardStates {
		assert.Contains(t, l.States(), s)
	}
	assert.NotContains(t, l.States(), incident.State(""))
	assert.NotContains(t, l.States(), incident.State("limbo"))
}

func TestEvents(t *testing.T) {
	l := incident.Standard()
	t.Run("table order for every state", func(t *testing.T) {
		for _, s := range standardStates {
			var want []incident.Event
			for _, tr := range standardTable {
				if tr.From == s {
					want = append(want, tr.Event)
				}
			}
			for range 3 { // stable across calls
				assert.Equal(t, want, l.Events(s), s)
			}
		}
	})
	t.Run("explicit", func(t *testing.T) {
		assert.Equal(t, []incident.Event{incident.EventInvestigate, incident.EventContain,
			incident.EventDismiss, incident.EventEscalate, incident.EventMerge}, l.Events(incident.StateDetected))
		assert.Equal(t, []incident.Event{incident.EventReopen}, l.Events(incident.StateClosed))
		assert.Empty(t, l.Events(incident.StateMerged), "a merge is not undone")
	})
	t.Run("unknown state has none", func(t *testing.T) {
		assert.Empty(t, l.Events("limbo"))
	})
	t.Run("result is a copy", func(t *testing.T) {
		evs := l.Events(incident.StateDetected)
		require.NotEmpty(t, evs)
		evs[0] = "mutated"
		_ = append(evs[:1], "appended") // must not write into the lifecycle's array
		assert.Equal(t, incident.EventInvestigate, l.Events(incident.StateDetected)[0])
		assert.Equal(t, incident.EventContain, l.Events(incident.StateDetected)[1])
		to, err := l.Next(incident.StateDetected, incident.EventInvestigate)
		require.NoError(t, err)
		assert.Equal(t, incident.StateInvestigating, to)
	})
}

func TestAccessorsReturnCopies(t *testing.T) {
	l := incident.Standard()
	ts := l.Transitions()
	ts[0].To = incident.StateClosed
	states := l.States()
	states[0] = "mutated"
	assert.Equal(t, incident.StateInvestigating, l.Transitions()[0].To)
	assert.Equal(t, incident.StateDetected, l.States()[0])
}

func TestNewLifecycleErrors(t *testing.T) {
	const (
		a incident.State = "a"
		b incident.State = "b"
		c incident.State = "c"
	)
	go1 := incident.Event("go")
	tests := []struct {
		name      string
		initial   incident.State
		states    []incident.State
		ts        []incident.Transition
		wantCause error // a more specific sentinel, or nil
		wantRow   incident.Transition
		reason    string // substring of the reason
	}{
		{name: "no states", initial: a, reason: "no states"},
		{name: "empty state", initial: a, states: []incident.State{a, ""}, reason: "empty"},
		{name: "state declared twice", initial: a, states: []incident.State{a, b, a},
			ts: []incident.Transition{{a, go1, b}}, reason: "twice"},
		{name: "initial undeclared", initial: c, states: []incident.State{a, b},
			ts: []incident.Transition{{a, go1, b}}, wantCause: incident.ErrUnknownState, reason: "initial"},
		{name: "initial empty", initial: "", states: []incident.State{a},
			wantCause: incident.ErrUnknownState, reason: "initial"},
		{name: "transition from unknown state", initial: a, states: []incident.State{a, b},
			ts:        []incident.Transition{{a, go1, b}, {c, go1, a}},
			wantCause: incident.ErrUnknownState, wantRow: incident.Transition{c, go1, a}, reason: "source"},
		{name: "transition to unknown state", initial: a, states: []incident.State{a, b},
			ts:        []incident.Transition{{a, go1, b}, {b, go1, c}},
			wantCause: incident.ErrUnknownState, wantRow: incident.Transition{b, go1, c}, reason: "destination"},
		{name: "empty event", initial: a, states: []incident.State{a, b},
			ts:        []incident.Transition{{a, "", b}},
			wantCause: incident.ErrUnknownEvent, wantRow: incident.Transition{a, "", b}, reason: "event"},
		{name: "duplicate from and event", initial: a, states: []incident.State{a, b, c},
			ts:      []incident.Transition{{a, go1, b}, {a, "other", c}, {a, go1, c}},
			wantRow: incident.Transition{a, go1, c}, reason: "duplicate"},
		// Names print raw in the diagrams: a quote or a line break would
		// break them, or forge an edge.
		{name: "state name with a quote", initial: a, states: []incident.State{a, `b" -> "a`},
			ts: []incident.Transition{{a, go1, `b" -> "a`}}, reason: "state name"},
		{name: "state name with a space", initial: a, states: []incident.State{a, "b c"},
			ts: []incident.Transition{{a, go1, "b c"}}, reason: "state name"},
		{name: "event name with a line break", initial: a, states: []incident.State{a, b},
			ts: []incident.Transition{{a, "go\n    b --> a: x", b}}, wantRow: incident.Transition{a, "go\n    b --> a: x", b},
			reason: "event name"},
		{name: "event name with a control character", initial: a, states: []incident.State{a, b},
			ts: []incident.Transition{{a, "go\x1b", b}}, wantRow: incident.Transition{a, "go\x1b", b}, reason: "event name"},
		{name: "duplicate identical row", initial: a, states: []incident.State{a, b},
			ts:      []incident.Transition{{a, go1, b}, {a, go1, b}},
			wantRow: incident.Transition{a, go1, b}, reason: "duplicate"},
		{name: "unreachable state", initial: a, states: []incident.State{a, b, c},
			ts: []incident.Transition{{a, go1, b}, {c, go1, a}}, reason: "c cannot be reached"},
		{name: "unreachable state with no transitions at all", initial: a, states: []incident.State{a, b},
			reason: "b cannot be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := incident.NewLifecycle(tt.initial, tt.states, tt.ts)
			require.Error(t, err)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, incident.ErrInvalidLifecycle)
			var le *incident.LifecycleError
			require.ErrorAs(t, err, &le)
			assert.Contains(t, le.Reason, tt.reason)
			assert.Equal(t, tt.wantRow, le.Transition)
			if tt.wantCause != nil {
				assert.ErrorIs(t, err, tt.wantCause)
			} else {
				assert.NotErrorIs(t, err, incident.ErrUnknownState)
				assert.NotErrorIs(t, err, incident.ErrUnknownEvent)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "incident: invalid lifecycle: "), err.Error())
		})
	}
}

func TestNewLifecycleSelfLoop(t *testing.T) {
	const (
		open   incident.State = "open"
		closed incident.State = "closed"
	)
	l, err := incident.NewLifecycle(open, []incident.State{open, closed}, []incident.Transition{
		{From: open, Event: "ping", To: open},
		{From: open, Event: "close", To: closed},
		{From: closed, Event: "ping", To: closed},
	})
	require.NoError(t, err)
	to, err := l.Next(open, "ping")
	require.NoError(t, err)
	assert.Equal(t, open, to)
	to, err = l.Next(closed, "ping")
	require.NoError(t, err)
	assert.Equal(t, closed, to)
	to, err = l.Next(open, "close")
	require.NoError(t, err)
	assert.Equal(t, closed, to)
	_, err = l.Next(closed, "close")
	assert.ErrorIs(t, err, incident.ErrInvalidTransition)
}

func TestNewLifecycleSingleState(t *testing.T) {
	l, err := incident.NewLifecycle("only", []incident.State{"only"}, nil)
	require.NoError(t, err)
	assert.Equal(t, incident.State("only"), l.Initial())
	assert.Empty(t, l.Events("only"))
	_, err = l.Next("only", "any")
	assert.ErrorIs(t, err, incident.ErrUnknownEvent)
}

func TestNewLifecycleCopiesInputs(t *testing.T) {
	states := []incident.State{"a", "b"}
	ts := []incident.Transition{{From: "a", Event: "go", To: "b"}}
	l, err := incident.NewLifecycle("a", states, ts)
	require.NoError(t, err)
	states[1] = "z"
	ts[0].To = "z"
	assert.Equal(t, []incident.State{"a", "b"}, l.States())
	assert.Equal(t, incident.State("b"), l.Transitions()[0].To)
	to, err := l.Next("a", "go")
	require.NoError(t, err)
	assert.Equal(t, incident.State("b"), to)
}

func TestNextDoesNotAllocate(t *testing.T) {
	l := incident.Standard()
	var sink incident.State
	allocs := testing.AllocsPerRun(1000, func() {
		for _, tr := range standardTable {
			to, err := l.Next(tr.From, tr.Event)
			if err != nil {
				panic(err)
			}
			sink = to
		}
	})
	assert.Zero(t, allocs)
	assert.NotEmpty(t, sink)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	assert.Equal(t, string(want), got, "%s differs; run go test -update if the change is intended", path)
}

func TestMermaidGolden(t *testing.T) {
	l := incident.Standard()
	got := l.Mermaid()
	assert.Equal(t, got, l.Mermaid(), "Mermaid must be deterministic")
	golden(t, "lifecycle.mmd", got)

	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	require.NotEmpty(t, lines)
	assert.Equal(t, "stateDiagram-v2", lines[0])
	assert.Equal(t, "    [*] --> detected", lines[1])
	for _, tr := range standardTable {
		assert.Contains(t, lines, "    "+string(tr.From)+" --> "+string(tr.To)+": "+string(tr.Event))
	}
	var terminals []string
	for _, ln := range lines {
		if s, ok := strings.CutSuffix(ln, " --> [*]"); ok {
			terminals = append(terminals, strings.TrimSpace(s))
		}
	}
	assert.Equal(t, []string{"closed", "dismissed", "merged"}, terminals)
	assert.Len(t, lines, 2+len(standardTable)+3)
}

func TestGraphvizGolden(t *testing.T) {
	l := incident.Standard()
	got := l.Graphviz()
	assert.Equal(t, got, l.Graphviz(), "Graphviz must be deterministic")
	golden(t, "lifecycle.dot", got)

	assert.True(t, strings.HasPrefix(got, "digraph lifecycle {\n"))
	assert.True(t, strings.HasSuffix(got, "}\n"))
	assert.Contains(t, got, `    "detected" [style="rounded,bold"];`)
	assert.Contains(t, got, `    "closed" [peripheries=2];`)
	assert.Contains(t, got, `    "dismissed" [peripheries=2];`)
	assert.Contains(t, got, `    "merged" [peripheries=2];`)
	assert.Contains(t, got, `    "escalated";`)
	for _, tr := range standardTable {
		assert.Contains(t, got, `    "`+string(tr.From)+`" -> "`+string(tr.To)+`" [label="`+string(tr.Event)+`"];`)
	}
	assert.Equal(t, len(standardTable), strings.Count(got, " -> "))
}

func TestDiagramsOfCustomLifecycle(t *testing.T) {
	// A state with no way out ends the diagram even though State.Open says
	// it is open; the initial state is bold even when it is also terminal.
	l, err := incident.NewLifecycle("start", []incident.State{"start", "sink"}, []incident.Transition{
		{From: "start", Event: "go", To: "sink"},
	})
	require.NoError(t, err)
	assert.Equal(t, "stateDiagram-v2\n    [*] --> start\n    start --> sink: go\n    sink --> [*]\n", l.Mermaid())
	assert.Equal(t, "digraph lifecycle {\n"+
		"    rankdir=LR;\n"+
		"    node [shape=box, style=rounded];\n"+
		"    \"start\" [style=\"rounded,bold\"];\n"+
		"    \"sink\" [peripheries=2];\n"+
		"    \"start\" -> \"sink\" [label=\"go\"];\n"+
		"}\n", l.Graphviz())
}

func TestStateOpen(t *testing.T) {
	for _, s := range standardStates {
		want := s != incident.StateClosed && s != incident.StateDismissed && s != incident.StateMerged
		assert.Equal(t, want, s.Open(), s)
	}
	assert.False(t, incident.State("").Open())
	assert.True(t, incident.State("custom").Open())
}

func TestTransitionErrorMessage(t *testing.T) {
	err := &incident.TransitionError{From: "closed", Event: "contain", Err: incident.ErrInvalidTransition}
	assert.Equal(t, `incident: event "contain" from state "closed": transition not allowed`, err.Error())
	assert.Equal(t, incident.ErrInvalidTransition, errors.Unwrap(err))
}
