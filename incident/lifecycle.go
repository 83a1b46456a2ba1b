package incident

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode"

	"github.com/looplab/fsm"
)

// Transition is one row of a lifecycle table: Event moves an incident from
// From to To.
type Transition struct {
	From  State
	Event Event
	To    State
}

type transitionKey struct {
	from  State
	event Event
}

// Lifecycle is a validated transition table. It answers whether an event is
// allowed in a state and which state follows; it holds no incident and runs
// no side effect, so one Lifecycle serves every incident.
//
// The table is compiled with github.com/looplab/fsm when the Lifecycle is
// built: every destination is what an fsm.FSM with the same table reaches.
// Afterwards Next is a lookup in that compiled table, with no allocation and
// no lock. A Lifecycle is immutable and safe for concurrent use. The zero
// value has no states; build one with NewLifecycle or use Standard.
type Lifecycle struct {
	initial     State
	states      []State
	transitions []Transition
	next        map[transitionKey]State
	out         map[State][]Event
	knownEvent  map[Event]bool
}

// validName reports whether s is a state or event name: letters, digits,
// "_", "-" and "." only.
func validName(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

// NewLifecycle validates and compiles a transition table. states lists every
// state, in the order diagrams show them; initial must be one of them.
//
// It returns a *LifecycleError (matching ErrInvalidLifecycle and the more
// specific ErrUnknownState where that is the cause) when a state is empty or
// listed twice, a transition names an undeclared state or an empty event, two
// transitions leave the same state on the same event, or a state cannot be
// reached from initial. State and event names are identifiers: letters,
// digits, "_", "-" and "." only, so that they print as themselves in the
// Mermaid and Graphviz renderings, on the timeline and in reports.
func NewLifecycle(initial State, states []State, transitions []Transition) (*Lifecycle, error) {
	l := &Lifecycle{
		initial:     initial,
		states:      append([]State(nil), states...),
		transitions: append([]Transition(nil), transitions...),
		next:        make(map[transitionKey]State, len(transitions)),
		out:         make(map[State][]Event, len(states)),
		knownEvent:  make(map[Event]bool),
	}
	if len(states) == 0 {
		return nil, &LifecycleError{Reason: "no states"}
	}
	declared := make(map[State]bool, len(states))
	for _, s := range states {
		if s == "" {
			return nil, &LifecycleError{Reason: "empty state name"}
		}
		if !validName(string(s)) {
			return nil, &LifecycleError{Reason: "state name " + strconv.Quote(string(s)) + " holds a character other than letters, digits, _, - and ."}
		}
		if declared[s] {
			return nil, &LifecycleError{Reason: "state " + string(s) + " declared twice"}
		}
		declared[s] = true
	}
	if !declared[initial] {
		return nil, &LifecycleError{Reason: "initial state " + string(initial) + " not declared", Err: ErrUnknownState}
	}
	events := make(fsm.Events, 0, len(transitions))
	for _, t := range transitions {
		switch {
		case !declared[t.From]:
			return nil, &LifecycleError{Transition: t, Reason: "source state not declared", Err: ErrUnknownState}
		case !declared[t.To]:
			return nil, &LifecycleError{Transition: t, Reason: "destination state not declared", Err: ErrUnknownState}
		case t.Event == "":
			return nil, &LifecycleError{Transition: t, Reason: "empty event name", Err: ErrUnknownEvent}
		case !validName(string(t.Event)):
			return nil, &LifecycleError{Transition: t, Reason: "event name holds a character other than letters, digits, _, - and ."}
		}
		k := transitionKey{t.From, t.Event}
		if _, dup := l.next[k]; dup {
			return nil, &LifecycleError{Transition: t, Reason: "duplicate transition: event already leaves this state"}
		}
		l.next[k] = t.To
		l.out[t.From] = append(l.out[t.From], t.Event)
		l.knownEvent[t.Event] = true
		events = append(events, fsm.EventDesc{Name: string(t.Event), Src: []string{string(t.From)}, Dst: string(t.To)})
	}
	if err := l.compile(events); err != nil {
		return nil, err
	}
	if s, ok := l.unreachable(); ok {
		return nil, &LifecycleError{Reason: "state " + string(s) + " cannot be reached from " + string(initial)}
	}
	return l, nil
}

// compile replays every transition on a callback-free looplab/fsm machine
// and keeps the destination it reaches, so the table means exactly what the
// FSM means. The machine is discarded afterwards; it is never shared, never
// sees a cancellable context, and runs no callback.
func (l *Lifecycle) compile(events fsm.Events) error {
	m := fsm.NewFSM(string(l.initial), events, nil)
	for _, t := range l.transitions {
		m.SetState(string(t.From))
		if !m.Can(string(t.Event)) {
			return &LifecycleError{Transition: t, Reason: "rejected by the state machine"}
		}
		err := m.Event(context.Background(), string(t.Event))
		var same fsm.NoTransitionError
		if err != nil && !errors.As(err, &same) {
			return &LifecycleError{Transition: t, Reason: "state machine: " + err.Error()}
		}
		l.next[transitionKey{t.From, t.Event}] = State(m.Current())
	}
	return nil
}

func (l *Lifecycle) unreachable() (State, bool) {
	seen := map[State]bool{l.initial: true}
	queue := []State{l.initial}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, ev := range l.out[s] {
			to := l.next[transitionKey{s, ev}]
			if !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	for _, s := range l.states {
		if !seen[s] {
			return s, true
		}
	}
	return "", false
}

// Next returns the state that event leads to from from. It returns a
// *TransitionError that matches ErrUnknownState when from is not in the
// table, ErrUnknownEvent when no transition uses event, and
// ErrInvalidTransition when event is known but not allowed from from.
// Next does not allocate on success.
func (l *Lifecycle) Next(from State, event Event) (State, error) {
	if to, ok := l.next[transitionKey{from, event}]; ok {
		return to, nil
	}
	return "", l.refuse(from, event)
}

func (l *Lifecycle) refuse(from State, event Event) error {
	err := ErrInvalidTransition
	switch {
	case !l.has(from):
		err = ErrUnknownState
	case !l.knownEvent[event]:
		err = ErrUnknownEvent
	}
	return &TransitionError{From: from, Event: event, Err: err}
}

// Can reports whether event is allowed from from.
func (l *Lifecycle) Can(from State, event Event) bool {
	_, ok := l.next[transitionKey{from, event}]
	return ok
}

// has reports whether s is a state of the lifecycle.
func (l *Lifecycle) has(s State) bool {
	for _, d := range l.states {
		if d == s {
			return true
		}
	}
	return false
}

// Events returns the events allowed from a state, in table order. The slice
// is the caller's to keep. An unknown state has none.
func (l *Lifecycle) Events(from State) []Event {
	return append([]Event(nil), l.out[from]...)
}

// Initial returns the state new incidents start in.
func (l *Lifecycle) Initial() State { return l.initial }

// States returns the declared states in order. The slice is the caller's.
func (l *Lifecycle) States() []State { return append([]State(nil), l.states...) }

// Transitions returns the table in declaration order. The slice is the
// caller's.
func (l *Lifecycle) Transitions() []Transition {
	return append([]Transition(nil), l.transitions...)
}

// Mermaid renders the lifecycle as a Mermaid state diagram; states that end
// an incident (no way out, or not State.Open) lead to [*]. The output
// depends only on the table, in declaration order, so it is stable across
// runs and fit for golden tests and documentation.
func (l *Lifecycle) Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	b.WriteString("    [*] --> " + string(l.initial) + "\n")
	for _, t := range l.transitions {
		b.WriteString("    " + string(t.From) + " --> " + string(t.To) + ": " + string(t.Event) + "\n")
	}
	for _, s := range l.states {
		if len(l.out[s]) == 0 || !s.Open() {
			b.WriteString("    " + string(s) + " --> [*]\n")
		}
	}
	return b.String()
}

// Graphviz renders the lifecycle in the DOT language, deterministically, in
// declaration order. The initial state is drawn bold and states with no
// way out, or that close an incident, with a double border.
func (l *Lifecycle) Graphviz() string {
	var b strings.Builder
	b.WriteString("digraph lifecycle {\n")
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded];\n")
	for _, s := range l.states {
		attrs := ""
		switch {
		case s == l.initial:
			attrs = " [style=\"rounded,bold\"]"
		case len(l.out[s]) == 0 || !s.Open():
			attrs = " [peripheries=2]"
		}
		b.WriteString("    \"" + string(s) + "\"" + attrs + ";\n")
	}
	for _, t := range l.transitions {
		b.WriteString("    \"" + string(t.From) + "\" -> \"" + string(t.To) + "\" [label=\"" + string(t.Event) + "\"];\n")
	}
	b.WriteString("}\n")
	return b.String()
}

var standard = mustStandard()

// Standard returns the lifecycle the orchestrator drives: the four phases of
// breach response (investigate, contain, notify, resolve) and the exits
// (dismiss, escalate, close, reopen, merge).
//
//	detected      investigate→investigating  contain→containing  dismiss→dismissed  escalate→escalated
//	investigating contain→containing  notify→notifying  remediate→resolving  dismiss→dismissed  escalate→escalated
//	containing    contained→contained  dismiss→dismissed  escalate→escalated
//	contained     investigate→investigating  notify→notifying  remediate→resolving  dismiss→dismissed  escalate→escalated
//	notifying     notified→resolving  dismiss→dismissed  escalate→escalated
//	resolving     resolve→resolved  notify→notifying  escalate→escalated
//	resolved      close→closed  reopen→investigating
//	closed        reopen→investigating
//	dismissed     reopen→investigating
//	escalated     investigate, contain, notify, remediate, dismiss
//
// and, from every open state, merge→merged: the incident is part of
// another. merged has no way out.
//
// The same *Lifecycle is returned every time; it is immutable.
func Standard() *Lifecycle { return standard }

func mustStandard() *Lifecycle {
	states := []State{StateDetected, StateInvestigating, StateContaining, StateContained, StateNotifying,
		StateResolving, StateResolved, StateClosed, StateDismissed, StateEscalated, StateMerged}
	var ts []Transition
	add := func(from State, pairs ...any) {
		for i := 0; i < len(pairs); i += 2 {
			ts = append(ts, Transition{From: from, Event: pairs[i].(Event), To: pairs[i+1].(State)})
		}
	}
	add(StateDetected, EventInvestigate, StateInvestigating, EventContain, StateContaining,
		EventDismiss, StateDismissed, EventEscalate, StateEscalated)
	add(StateInvestigating, EventContain, StateContaining, EventNotify, StateNotifying,
		EventRemediate, StateResolving, EventDismiss, StateDismissed, EventEscalate, StateEscalated)
	add(StateContaining, EventContained, StateContained, EventDismiss, StateDismissed, EventEscalate, StateEscalated)
	add(StateContained, EventInvestigate, StateInvestigating, EventNotify, StateNotifying,
		EventRemediate, StateResolving, EventDismiss, StateDismissed, EventEscalate, StateEscalated)
	add(StateNotifying, EventNotified, StateResolving, EventDismiss, StateDismissed, EventEscalate, StateEscalated)
	add(StateResolving, EventResolve, StateResolved, EventNotify, StateNotifying, EventEscalate, StateEscalated)
	add(StateResolved, EventClose, StateClosed, EventReopen, StateInvestigating)
	add(StateClosed, EventReopen, StateInvestigating)
	add(StateDismissed, EventReopen, StateInvestigating)
	add(StateEscalated, EventInvestigate, StateInvestigating, EventContain, StateContaining,
		EventNotify, StateNotifying, EventRemediate, StateResolving, EventDismiss, StateDismissed)
	for _, s := range states {
		if s.Open() {
			add(s, EventMerge, StateMerged)
		}
	}
	l, err := NewLifecycle(StateDetected, states, ts)
	if err != nil {
		panic(err)
	}
	return l
}
