package breach_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// pastedToken is a credential a person might paste into a note: a GitHub
// token, made up.
const pastedToken = "ghp_R2d2C3poBb8Ee4Kk9Ll0Mm1Nn2Oo3Pp4Qq5x"

// desk is an orchestrator that does not run: people act on its incidents
// and nothing else moves them. It answers leaked API keys (apiKeyPlaybook)
// and brute-forced logins (loginPlaybook).
func desk(t *testing.T, opts ...breach.Option) (*breach.Orchestrator, *incident.MemStore) {
	t.Helper()
	store := incident.NewMemStore()
	o, err := breach.New(store, append([]breach.Option{quiet,
		breach.WithPlaybook(apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))),
		breach.WithPlaybook(loginPlaybook())}, opts...)...)
	require.NoError(t, err)
	return o, store
}

// loginPlaybook investigates brute-forced logins; it contains nothing.
func loginPlaybook() breach.Playbook {
	return breach.Playbook{Kind: "login.bruteforce", Strategy: breach.InvestigateFirst,
		Investigator: impactInvestigator(incident.Impact{}), Clocks: []breach.Clock{breach.GDPR()}}
}

func bruteforce(subject string) incident.Signal {
	return incident.Signal{Kind: "login.bruteforce", Subject: subject, Account: "acct_7",
		Severity: incident.SeverityHigh, Source: "auth", Summary: "failed logins for " + subject}
}

// file reports sig and returns the incident it is on.
func file(t *testing.T, o *breach.Orchestrator, sig incident.Signal) string {
	t.Helper()
	rc, err := o.Report(context.Background(), sig)
	require.NoError(t, err)
	return rc.IncidentID
}

func version(t *testing.T, o *breach.Orchestrator, id string) int64 {
	t.Helper()
	h, err := o.Head(context.Background(), id)
	require.NoError(t, err)
	return h.Version
}

// setHead changes the stored head of id as fn says, behind the
// orchestrator's back (for states that are hard to reach by its API).
func setHead(t *testing.T, s incident.Store, id string, fn func(*incident.Incident)) {
	t.Helper()
	h, err := s.Head(context.Background(), id)
	require.NoError(t, err)
	fn(h)
	require.NoError(t, s.Apply(context.Background(), incident.Change{Head: h}))
}

func lastEntry(t *testing.T, o *breach.Orchestrator, id string) incident.Entry {
	t.Helper()
	inc := get(t, o, id)
	require.NoError(t, inc.Timeline.Verify())
	require.NotEmpty(t, inc.Timeline)
	return inc.Timeline[len(inc.Timeline)-1]
}

// checkRefused checks that err matches every error of want and that the
// incident, when there is one, is as it was: nothing recorded.
func checkRefused(t *testing.T, o *breach.Orchestrator, id string, before int64, err error, want ...error) {
	t.Helper()
	require.Error(t, err)
	for _, w := range want {
		assert.ErrorIs(t, err, w)
	}
	if before > 0 {
		assert.Equal(t, before, version(t, o, id), "nothing is recorded on error")
	}
}

func TestAddNote(t *testing.T) {
	o, _ := desk(t)
	id := file(t, o, leak()) // brings the canary credential
	ended := file(t, o, bruteforce("alice"))
	require.NoError(t, o.Dismiss(context.Background(), ended, "carol", "a penetration test"))
	long := strings.Repeat("n", breach.MaxNoteLen)
	tests := []struct {
		name, id, actor, text string
		want                  string // the entry's detail
		err                   error
	}{
		{"a note", id, "alice", "called the customer", "called the customer", nil},
		{"on an ended incident", ended, "alice", "review booked for Monday", "review booked for Monday", nil},
		{"the incident's credential", id, "alice", "the key was " + canary + ", now revoked", "the key was [REDACTED], now revoked", nil},
		{"a token pasted", id, "alice", "also found " + pastedToken + " in the gist", "also found [REDACTED] in the gist", nil},
		{"a password given", id, "alice", "db password: Tr0ub4dor&3x", "db password: [REDACTED]&3x", nil},
		{"CRLF from a browser", id, "alice", "line 1\r\nline 2\tend", "line 1\nline 2\tend", nil},
		{"at the bound", id, "alice", long, long, nil},

		{"no actor", id, "", "a note", "", breach.ErrInvalidInput},
		{"empty", id, "alice", "", "", breach.ErrInvalidInput},
		{"blank", id, "alice", " \n\t", "", breach.ErrInvalidInput},
		{"too long", id, "alice", long + "n", "", breach.ErrInvalidInput},
		{"control character", id, "alice", "ring the bell\a", "", breach.ErrInvalidInput},
		{"not UTF-8", id, "alice", "caf\xe9", "", breach.ErrInvalidInput},
		{"unknown incident", "inc_nope", "alice", "a note", "", incident.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before int64
			if tt.id != "inc_nope" {
				before = version(t, o, tt.id)
			}
			err := o.AddNote(context.Background(), tt.id, tt.actor, tt.text)
			if tt.err != nil {
				checkRefused(t, o, tt.id, before, err, tt.err)
				return
			}
			require.NoError(t, err)
			e := lastEntry(t, o, tt.id)
			assert.Equal(t, incident.EntryNote, e.Type)
			assert.Equal(t, tt.actor, e.Actor)
			assert.Equal(t, tt.want, e.Detail)
			assert.Equal(t, before+1, version(t, o, tt.id), "one write")
		})
	}
	inc := get(t, o, id)
	for _, e := range inc.Timeline {
		assert.NotContains(t, e.Detail, canary)
		assert.NotContains(t, e.Detail, pastedToken)
	}
}

func TestAssignCommander(t *testing.T) {
	o, _ := desk(t)
	id := file(t, o, leak())
	ended := file(t, o, bruteforce("alice"))
	require.NoError(t, o.Dismiss(context.Background(), ended, "carol", "a penetration test"))
	// The steps run in order, on one incident.
	tests := []struct {
		name, id, commander, actor, note string
		want                             string // the entry's detail; "" when nothing is recorded
		err                              error
	}{
		{"first commander", id, "alice", "bob", "", "commander assigned: alice", nil},
		{"same again changes nothing", id, "alice", "bob", "retried", "", nil},
		{"hand-over names both", id, "carol", "alice", "end of my shift", "commander handed over from alice to carol: end of my shift", nil},
		{"a note with a secret", id, "dave", "carol", "token " + pastedToken, "commander handed over from carol to dave: token [REDACTED]", nil},

		{"no actor", id, "erin", "", "", "", breach.ErrInvalidInput},
		{"no commander", id, "", "bob", "", "", breach.ErrInvalidInput},
		{"blank commander", id, "  ", "bob", "", "", breach.ErrInvalidInput},
		{"commander too long", id, strings.Repeat("e", breach.MaxCommanderLen+1), "bob", "", "", breach.ErrInvalidInput},
		{"commander with a control character", id, "erin\n", "bob", "", "", breach.ErrInvalidInput},
		{"commander with a right-to-left override", id, "erin\u202enimda", "bob", "", "", breach.ErrInvalidInput},
		{"commander with a line separator", id, "erin\u2028bob", "bob", "", "", breach.ErrInvalidInput},
		{"bad note", id, "erin", "bob", "\x00", "", breach.ErrInvalidInput},
		{"ended incident", ended, "erin", "bob", "", "", breach.ErrIncidentEnded},
		{"unknown incident", "inc_nope", "erin", "bob", "", "", incident.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before int64
			if tt.id != "inc_nope" {
				before = version(t, o, tt.id)
			}
			err := o.AssignCommander(context.Background(), tt.id, tt.commander, tt.actor, tt.note)
			if tt.err != nil {
				checkRefused(t, o, tt.id, before, err, tt.err)
				return
			}
			require.NoError(t, err)
			inc := get(t, o, tt.id)
			assert.Equal(t, tt.commander, inc.Commander)
			if tt.want == "" {
				assert.Equal(t, before, inc.Version, "nothing written")
				return
			}
			e := lastEntry(t, o, tt.id)
			assert.Equal(t, incident.EntryCommander, e.Type)
			assert.Equal(t, tt.actor, e.Actor)
			assert.Equal(t, tt.want, e.Detail)
		})
	}
}

// TestCollaborationWhileContaining: a person acts while a containment call
// is in flight (the container ignores its context). Each action returns at
// once, and what it recorded survives the step's own write when the call
// returns.
func TestCollaborationWhileContaining(t *testing.T) {
	ip := incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "gateway"}
	tests := []struct {
		name  string
		act   func(o *breach.Orchestrator, id string) error
		check func(t *testing.T, inc *incident.Incident)
	}{
		{"note", func(o *breach.Orchestrator, id string) error {
			return o.AddNote(context.Background(), id, "alice", "watching the revocation")
		}, func(t *testing.T, inc *incident.Incident) {
			assert.True(t, hasEntry(inc, "alice", "watching the revocation"))
		}},
		{"commander", func(o *breach.Orchestrator, id string) error {
			return o.AssignCommander(context.Background(), id, "alice", "bob", "")
		}, func(t *testing.T, inc *incident.Incident) {
			assert.Equal(t, "alice", inc.Commander)
		}},
		{"evidence", func(o *breach.Orchestrator, id string) error {
			return o.AttachEvidence(context.Background(), id, ip, "alice")
		}, func(t *testing.T, inc *incident.Incident) {
			if assert.Len(t, inc.Evidence, 1) {
				assert.Equal(t, "203.0.113.7", inc.Evidence[0].Value)
			}
		}},
		{"severity", func(o *breach.Orchestrator, id string) error {
			return o.ChangeSeverity(context.Background(), id, incident.SeverityHigh, "alice", "a test key after all?")
		}, func(t *testing.T, inc *incident.Incident) {
			assert.Equal(t, incident.SeverityHigh, inc.Severity)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate(0)
				pb := apiKeyPlaybook(&fakes{}, impactInvestigator(incident.Impact{}))
				pb.Containment[0].Container = &gatedContainer{g: g}
				pb.Containment[0].Policy = incident.Policy{Attempts: 1, Timeout: 24 * time.Hour}
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), quiet)
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				id := file(t, o, leak())
				synctest.Wait()
				require.Equal(t, incident.StateContaining, get(t, o, id).State)

				returned, wait, err := returnsWithin(t, promptly, func() error { return tt.act(o, id) })
				if !assert.True(t, returned, "the action waits for the container") {
					g.release()
					require.NoError(t, wait())
				}
				require.NoError(t, err)
				g.release()
				await(t, o, id, incident.StateResolving)
				synctest.Wait()
				inc := get(t, o, id)
				assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
				tt.check(t, inc)
				assert.NoError(t, inc.Timeline.Verify())
			})
		})
	}
}

// People work an incident together: a commander leads it and hands it
// over, notes and evidence go on its timeline, its severity is raised.
func ExampleOrchestrator_AssignCommander() {
	ctx := context.Background()
	o, err := breach.New(incident.NewMemStore(), breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithPlaybook(breach.Playbook{Kind: "login.bruteforce", Strategy: breach.InvestigateFirst}))
	if err != nil {
		panic(err)
	}
	rc, err := o.Report(ctx, incident.Signal{Kind: "login.bruteforce", Subject: "user_7", Severity: incident.SeverityMedium})
	if err != nil {
		panic(err)
	}
	id := rc.IncidentID
	for _, err := range []error{
		o.AssignCommander(ctx, id, "alice", "bob", "on call this week"),
		o.AddNote(ctx, id, "alice", "the customer says the logins were not theirs"),
		o.AttachEvidence(ctx, id, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "auth logs"}, "alice"),
		o.ChangeSeverity(ctx, id, incident.SeverityHigh, "alice", "one login succeeded"),
		o.AssignCommander(ctx, id, "carol", "alice", "end of my shift"),
	} {
		if err != nil {
			panic(err)
		}
	}
	inc, err := o.Get(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println("commander:", inc.Commander, "| severity:", inc.Severity)
	for _, e := range inc.Timeline {
		switch e.Type {
		case incident.EntryCommander, incident.EntryNote, incident.EntryEvidence, incident.EntrySeverity:
			fmt.Println(e.Actor+":", e.Detail)
		}
	}
	// Output:
	// commander: carol | severity: high
	// bob: commander assigned: alice: on call this week
	// alice: the customer says the logins were not theirs
	// alice: evidence attached: ip 203.0.113.7 (source: auth logs)
	// alice: severity raised from medium to high: one login succeeded
	// alice: commander handed over from alice to carol: end of my shift
}

// TestPeoplesTextNeverHoldsACredential: whatever a person writes in a
// reason or a note (pausing or ending a clock, recording a milestone,
// dismissing, reopening, ...), the incident's own credential and tokens
// of known formats are removed before it is stored: in the head's fields
// as on the timeline and in the report.
func TestPeoplesTextNeverHoldsACredential(t *testing.T) {
	const own = "Tr0ub4dor&3-own-pass"
	text := "see " + own + " and " + pastedToken
	tests := []struct {
		name string
		act  func(o *breach.Orchestrator, id, clock string) error
	}{
		{"pause a clock", func(o *breach.Orchestrator, id, clock string) error {
			return o.PauseClock(context.Background(), id, clock, "carol", text)
		}},
		{"mark a clock not applicable", func(o *breach.Orchestrator, id, clock string) error {
			return o.MarkClockNotApplicable(context.Background(), id, clock, "carol", text)
		}},
		{"record a milestone", func(o *breach.Orchestrator, id, clock string) error {
			return o.RecordMilestone(context.Background(), id, "authority-notified", "carol", text)
		}},
		{"dismiss", func(o *breach.Orchestrator, id, clock string) error {
			return o.Dismiss(context.Background(), id, "carol", text)
		}},
		{"dismiss and reopen", func(o *breach.Orchestrator, id, clock string) error {
			if err := o.Dismiss(context.Background(), id, "carol", "a test"); err != nil {
				return err
			}
			return o.Reopen(context.Background(), id, "carol", text)
		}},
		{"override the decision", func(o *breach.Orchestrator, id, clock string) error {
			return o.OverrideDecision(context.Background(), id, false, "carol", text)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := desk(t)
			sig := bruteforce("p")
			sig.Credential = incident.NewSecret(own)
			id := file(t, o, sig)
			h, err := o.Head(context.Background(), id)
			require.NoError(t, err)
			require.NotEmpty(t, h.Deadlines, "the playbook's clock")
			require.NoError(t, tt.act(o, id, h.Deadlines[0].Name))
			inc := get(t, o, id)
			b, err := json.Marshal(inc)
			require.NoError(t, err)
			for _, where := range []struct{ name, s string }{{"head and timeline (JSON)", string(b)}, {"report", inc.Markdown()}} {
				assert.NotContains(t, where.s, own, where.name)
				assert.NotContains(t, where.s, pastedToken, where.name)
			}
			assert.Contains(t, string(b), "[REDACTED]", "the text is kept, the credentials removed")
		})
	}
}

// TestEveryPersonActionChecksItsActor: every action a person takes refuses
// an actor that is missing or holds a character a signal's identifiers may
// not (the actor is shown as who acted), with ErrInvalidInput and nothing
// recorded.
func TestEveryPersonActionChecksItsActor(t *testing.T) {
	o, _ := desk(t)
	id := file(t, o, leak())
	other := file(t, o, bruteforce("alice"))
	ctx := context.Background()
	actions := map[string]func(actor string) error{
		"Reopen":                 func(a string) error { return o.Reopen(ctx, id, a, "again") },
		"Retry":                  func(a string) error { return o.Retry(ctx, id, a, "") },
		"OverrideDecision":       func(a string) error { return o.OverrideDecision(ctx, id, true, a, "legal says so") },
		"Approve":                func(a string) error { return o.Approve(ctx, id, "revoke", a, "") },
		"Deny":                   func(a string) error { return o.Deny(ctx, id, "revoke", a, "") },
		"MarkClockNotApplicable": func(a string) error { return o.MarkClockNotApplicable(ctx, id, "gdpr", a, "no personal data") },
		"RecordMilestone":        func(a string) error { return o.RecordMilestone(ctx, id, incident.MilestoneContained, a, "") },
		"PauseClock":             func(a string) error { return o.PauseClock(ctx, id, "gdpr", a, "waiting for counsel") },
		"ResumeClock":            func(a string) error { return o.ResumeClock(ctx, id, "gdpr", a, "") },
		"AddNote":                func(a string) error { return o.AddNote(ctx, id, a, "a note") },
		"AssignCommander":        func(a string) error { return o.AssignCommander(ctx, id, "carol", a, "") },
		"ChangeSeverity":         func(a string) error { return o.ChangeSeverity(ctx, id, incident.SeverityLow, a, "overstated") },
		"AttachEvidence": func(a string) error {
			return o.AttachEvidence(ctx, id, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7"}, a)
		},
		"Dismiss":      func(a string) error { return o.Dismiss(ctx, id, a, "a test") },
		"Merge":        func(a string) error { return o.Merge(ctx, id, other, a, "the same attack") },
		"Acknowledge":  func(a string) error { return o.Acknowledge(ctx, id, a) },
		"Resolve":      func(a string) error { return o.Resolve(ctx, id, a, "") },
		"Close":        func(a string) error { return o.Close(ctx, id, a, "") },
		"CompleteTask": func(a string) error { return o.CompleteTask(ctx, id, "rotate", a, "") },
	}
	for name, act := range actions {
		for _, actor := range []string{"", "eve\u202elive", "eve\nmallory", "eve\u2028mallory", "caf\xe9"} {
			t.Run(name+"/"+strconv.Quote(actor), func(t *testing.T) {
				before, otherBefore := version(t, o, id), version(t, o, other)
				checkRefused(t, o, id, before, act(actor), breach.ErrInvalidInput)
				assert.Equal(t, otherBefore, version(t, o, other), "nothing is recorded on the other incident")
			})
		}
	}
}
