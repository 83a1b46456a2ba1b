package incident_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/looplab/fsm"

	"github.com/breachkit/breach/incident"
)

// FuzzSignalValidate checks that validation never panics, that it accepts a
// signal exactly when every field is within its limits, and that its error
// is typed and never quotes the credential.
func FuzzSignalValidate(f *testing.F) {
	f.Add("apikey.compromised", "key_42", "", 4, "scanner", "found in a repo", "url", "https://x", "sk_live_1")
	f.Add("", "", "", 0, "", "", "", "", "")
	f.Add("kind with space", "s", strings.Repeat("k", 300), 9, "", "", "", "", "")
	f.Add("k", "contains sk_live_1 secret", "", 2, "", "", "a", "b", "sk_live_1")
	f.Add("k", "s\xff", "", 1, "", "", "", "v", "")
	f.Add("github/secret", "key_1", "", 3, "", "", "", "", "")
	f.Add("k\x1b", "s\r\n# x", "d\u2028", 2, "src\u202e", "a\tb\nc\x00", "k\a", "v\x1b", "")
	f.Add("k", "s", "", 2, "", "ok\tfine\n", "key", "line\nline", "")
	f.Fuzz(func(t *testing.T, kind, subject, dedup string, sev int, source, summary, attrKey, attrVal, cred string) {
		s := incident.Signal{Kind: kind, Subject: subject, DedupKey: dedup, Severity: incident.Severity(sev),
			Source: source, Summary: summary, Credential: incident.NewSecret(cred)}
		if attrKey != "" || attrVal != "" {
			s.Attributes = map[string]string{attrKey: attrVal}
		}
		err := s.Validate()
		if incident.SignalFastPath(&s) && incident.SignalProblems(&s) != nil {
			t.Fatalf("the fast path accepts a signal the full check rejects: %+v", s)
		}
		if err == nil {
			if kind == "" || subject == "" || !s.Severity.Valid() || len(s.Key()) > incident.MaxDedupKeyLen ||
				strings.Contains(kind, "/") {
				t.Fatalf("invalid signal accepted: %+v", s)
			}
			for _, v := range []string{kind, subject, dedup, source, attrKey} {
				if strings.IndexFunc(v, forbiddenInIdent) >= 0 {
					t.Fatalf("identifier with a control or formatting character accepted: %q", v)
				}
			}
			for _, v := range []string{summary, attrVal} {
				if strings.IndexFunc(v, func(r rune) bool { return unicode.Is(unicode.Cc, r) && r != '\t' && r != '\n' }) >= 0 {
					t.Fatalf("free text with a control character accepted: %q", v)
				}
			}
			if cred != "" && (strings.Contains(subject, cred) || strings.Contains(summary, cred) || strings.Contains(kind, cred)) {
				t.Fatalf("signal carrying its credential in a field accepted")
			}
			return
		}
		if !errors.Is(err, incident.ErrInvalidSignal) {
			t.Fatalf("error does not match ErrInvalidSignal: %v", err)
		}
		var fe *incident.FieldError
		if !errors.As(err, &fe) || fe.Field == "" {
			t.Fatalf("error names no field: %v", err)
		}
		if len(cred) >= 4 && strings.Contains(err.Error(), cred) && !strings.Contains(kind+subject+dedup+source+summary+attrKey, cred) {
			t.Fatalf("error quotes the credential: %v", err)
		}
	})
}

// forbiddenInIdent is the fuzz target's own statement of what an identifier
// may not hold (see Signal.Validate).
func forbiddenInIdent(r rune) bool {
	return unicode.Is(unicode.Cc, r) || r == 0x2028 || r == 0x2029 || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// FuzzLifecycle replays random event sequences on the Standard lifecycle
// and on a bare looplab/fsm machine built from the same table: they must
// agree on every step, and refusals must be typed errors.
func FuzzLifecycle(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 2, 0, 3, 4, 5, 6, 8, 7})
	f.Add([]byte{10, 10, 10, 9, 0})
	f.Add([]byte{255, 128, 64, 32, 16})
	l := incident.Standard()
	var events []incident.Event
	seen := map[incident.Event]bool{}
	var table fsm.Events
	for _, tr := range l.Transitions() {
		if !seen[tr.Event] {
			seen[tr.Event] = true
			events = append(events, tr.Event)
		}
		table = append(table, fsm.EventDesc{Name: string(tr.Event), Src: []string{string(tr.From)}, Dst: string(tr.To)})
	}
	events = append(events, "no-such-event")
	f.Fuzz(func(t *testing.T, seq []byte) {
		m := fsm.NewFSM(string(l.Initial()), table, nil)
		state := l.Initial()
		for _, b := range seq {
			ev := events[int(b)%len(events)]
			next, err := l.Next(state, ev)
			ferr := m.Event(context.Background(), string(ev))
			if (err == nil) != (ferr == nil) {
				t.Fatalf("from %s on %s: lifecycle err %v, fsm err %v", state, ev, err, ferr)
			}
			if err != nil {
				var te *incident.TransitionError
				if !errors.As(err, &te) || te.From != state || te.Event != ev {
					t.Fatalf("untyped refusal: %v", err)
				}
				if !errors.Is(err, incident.ErrInvalidTransition) && !errors.Is(err, incident.ErrUnknownEvent) {
					t.Fatalf("refusal matches no sentinel: %v", err)
				}
				if l.Can(state, ev) {
					t.Fatalf("Can says yes where Next refused")
				}
				continue
			}
			if string(next) != m.Current() {
				t.Fatalf("from %s on %s: lifecycle says %s, fsm says %s", state, ev, next, m.Current())
			}
			state = next
		}
	})
}
