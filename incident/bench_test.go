package incident_test

import (
	"context"
	"testing"

	"github.com/looplab/fsm"

	"github.com/breachkit/breach/incident"
)

// The benchmarks compare a Lifecycle with the two things it replaces: a
// hand-written transition map, and a bare looplab/fsm machine with the same
// table. Run: go test -run '^$' -bench . -benchmem ./incident/

var happyPath = []incident.Event{incident.EventContain, incident.EventContained, incident.EventInvestigate,
	incident.EventNotify, incident.EventNotified, incident.EventResolve, incident.EventClose}

func fsmTable() fsm.Events {
	var evs fsm.Events
	for _, t := range incident.Standard().Transitions() {
		evs = append(evs, fsm.EventDesc{Name: string(t.Event), Src: []string{string(t.From)}, Dst: string(t.To)})
	}
	return evs
}

var sinkState incident.State

// BenchmarkTransition: one transition, contained --notify--> notifying.
func BenchmarkTransition(b *testing.B) {
	l := incident.Standard()
	b.Run("lifecycle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := l.Next(incident.StateContained, incident.EventNotify)
			if err != nil {
				b.Fatal(err)
			}
			sinkState = s
		}
	})
	b.Run("map-baseline", func(b *testing.B) {
		type key struct {
			from  incident.State
			event incident.Event
		}
		m := map[key]incident.State{}
		for _, t := range l.Transitions() {
			m[key{t.From, t.Event}] = t.To
		}
		b.ReportAllocs()
		for b.Loop() {
			s, ok := m[key{incident.StateContained, incident.EventNotify}]
			if !ok {
				b.Fatal("missing")
			}
			sinkState = s
		}
	})
	b.Run("looplab-fsm-baseline", func(b *testing.B) {
		f := fsm.NewFSM(string(incident.StateContained), fsmTable(), nil)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			f.SetState(string(incident.StateContained))
			if err := f.Event(ctx, string(incident.EventNotify)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHappyPath: detected to closed, seven transitions.
func BenchmarkHappyPath(b *testing.B) {
	l := incident.Standard()
	b.Run("lifecycle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := l.Initial()
			for _, ev := range happyPath {
				var err error
				if s, err = l.Next(s, ev); err != nil {
					b.Fatal(err)
				}
			}
			sinkState = s
		}
	})
	b.Run("looplab-fsm-baseline", func(b *testing.B) {
		table := fsmTable()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			f := fsm.NewFSM(string(incident.StateDetected), table, nil)
			for _, ev := range happyPath {
				if err := f.Event(ctx, string(ev)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
