package breach_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

const canary = "sk_live_CANARY_9f8e7d6c5b4a"

// fakes records what the host plugins were asked to do.
type fakes struct {
	mu        sync.Mutex
	contained []containment.Request
	released  []containment.Request
	sent      []notify.Message
	creds     []string
}

func (f *fakes) container(fail func(attempt int) error) containment.Container {
	return &fakeContainer{f: f, fail: fail}
}

type fakeContainer struct {
	f    *fakes
	fail func(attempt int) error
}

func (c *fakeContainer) Contain(ctx context.Context, req containment.Request) error {
	c.f.mu.Lock()
	c.f.contained = append(c.f.contained, req)
	c.f.creds = append(c.f.creds, req.Credential.Reveal())
	c.f.mu.Unlock()
	if c.fail != nil {
		return c.fail(req.Attempt)
	}
	return nil
}

func (c *fakeContainer) Release(ctx context.Context, req containment.Request) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.released = append(c.f.released, req)
	return nil
}

func (f *fakes) notifier() notify.Notifier {
	return notify.Func(func(ctx context.Context, m notify.Message) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.sent = append(f.sent, m)
		return nil
	})
}

func (f *fakes) snapshot() (contained, released []containment.Request, sent []notify.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(contained, f.contained...), append(released, f.released...), append(sent, f.sent...)
}

var customer = incident.Customer{ID: "acct_7", Name: "Northwind Ads", Email: "sec@northwind.example"}

func impactInvestigator(im incident.Impact) incident.Investigator {
	return incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		return incident.Findings{RootCause: "key in a public repository", Impact: im}, nil
	})
}

func apiKeyPlaybook(f *fakes, inv incident.Investigator) breach.Playbook {
	return breach.Playbook{
		Kind:     "apikey.compromised",
		Strategy: breach.ContainFirst,
		Containment: []containment.Action{{
			Name: "disable-key", Description: "disabled the API key", Container: f.container(nil),
			Policy: incident.Policy{Attempts: 3, Backoff: time.Second},
		}},
		Investigator:    inv,
		Notifiers:       []notify.Route{{Channel: "email", Notifier: f.notifier()}},
		Recommendations: []string{"Generate a new API key."},
		Tasks:           []breach.TaskSpec{{ID: "scan", Title: "Scan repositories", Mandatory: true}},
	}
}

func leak() incident.Signal {
	return incident.Signal{
		Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7",
		Severity: incident.SeverityCritical, Source: "scanner", Summary: "key found in a public repository",
		Credential: incident.NewSecret(canary),
	}
}

// leasedReplica is one replica on store, leasing as name with ttl, with
// playbook pb.
func leasedReplica(t *testing.T, store incident.Store, name string, ttl time.Duration, pb breach.Playbook) *breach.Orchestrator {
	t.Helper()
	o, err := breach.New(store, breach.WithLease(name, ttl), quiet, breach.WithPlaybook(pb))
	require.NoError(t, err)
	return o
}

// running starts o.Run in the background and returns a stop function that
// cancels it and checks it returned nil. The test's cleanup stops it too,
// so that a test that fails before it stops Run leaves nothing running.
func running(t *testing.T, o *breach.Orchestrator) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	t.Cleanup(stop)
	return stop
}

func await(t *testing.T, o *breach.Orchestrator, id string, states ...incident.State) *incident.Incident {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	inc, err := o.Await(ctx, id, func(inc *incident.Incident) bool {
		for _, s := range states {
			if inc.State == s {
				return true
			}
		}
		return false
	})
	require.NoError(t, err, "incident %s never reached %v", id, states)
	return inc
}

func transitions(inc *incident.Incident) []string {
	var out []string
	for _, e := range inc.Timeline {
		if e.Type == incident.EntryTransition {
			out = append(out, string(e.From)+">"+string(e.To))
		}
	}
	return out
}

func TestAPIKeyScenarioEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		var logs bytes.Buffer
		store := incident.NewMemStore()
		o, err := breach.New(store,
			breach.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
			breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(incident.Impact{
				Customers: []incident.Customer{customer},
				Data:      []incident.DataCategory{incident.DataAPIAccess, incident.DataCampaignReports},
			}))))
		require.NoError(t, err)
		stop := running(t, o)

		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		assert.True(t, rc.Opened)

		inc := await(t, o, rc.IncidentID, incident.StateResolving)
		assert.Equal(t, []string{"detected>containing", "containing>contained", "contained>investigating",
			"investigating>notifying", "notifying>resolving"}, transitions(inc))

		contained, _, sent := f.snapshot()
		require.Len(t, contained, 1)
		assert.Equal(t, "key_42", contained[0].Subject)
		assert.Equal(t, canary, contained[0].Credential.Reveal(), "the container gets the credential")
		assert.Equal(t, inc.Actions[0].IdempotencyKey, contained[0].IdempotencyKey)
		assert.Equal(t, 1, contained[0].Attempt)

		require.Len(t, sent, 1)
		m := sent[0]
		assert.Equal(t, customer, m.Recipient)
		assert.Equal(t, "email", m.Channel)
		assert.Contains(t, m.Text, "Generate a new API key.")
		assert.Contains(t, m.Text, "We disabled the API key.")
		assert.Contains(t, m.Text, "campaign reports")
		require.Len(t, inc.Deliveries, 1)
		assert.Equal(t, incident.DeliverySent, inc.Deliveries[0].Status)
		assert.Equal(t, inc.Deliveries[0].IdempotencyKey, m.IdempotencyKey)
		assert.Equal(t, incident.Outreach{Sent: 1, Cursor: customer.ID}, outreachOf(inc))
		assert.Equal(t, []string{"notices via email: 1 sent"}, deliveryEntries(inc))
		require.NotNil(t, inc.Decision)
		assert.True(t, inc.Decision.Notify)
		assert.False(t, inc.ContainedAt.IsZero())
		assert.False(t, inc.NotifiedAt.IsZero())
		assert.Equal(t, []string{"Generate a new API key."}, inc.Recommendations)

		// A person resolves (refused while the mandatory task is open) and closes.
		err = o.Resolve(context.Background(), inc.ID, "alice", "done")
		var open *breach.OpenTasksError
		require.ErrorAs(t, err, &open)
		assert.Equal(t, []string{"scan"}, open.Tasks)
		assert.ErrorIs(t, err, breach.ErrOpenTasks)
		require.NoError(t, o.CompleteTask(context.Background(), inc.ID, "scan", "alice", "scanning on"))
		require.NoError(t, o.Resolve(context.Background(), inc.ID, "alice", "done"))
		require.NoError(t, o.Close(context.Background(), inc.ID, "bob", "reviewed"))
		stop()

		inc, err = o.Get(context.Background(), inc.ID)
		require.NoError(t, err)
		assert.Equal(t, incident.StateClosed, inc.State)
		assert.NoError(t, inc.Timeline.Verify())
		last := inc.Timeline[len(inc.Timeline)-1]
		assert.Equal(t, "bob", last.Actor)
		assert.Equal(t, incident.EventClose, last.Event)
		for _, e := range inc.Timeline {
			assert.False(t, e.At.IsZero())
			assert.NotEmpty(t, e.Actor)
			assert.NotEmpty(t, e.Detail)
		}

		// The credential is nowhere but in the container's request.
		rec, err := json.Marshal(inc)
		require.NoError(t, err)
		assert.NotContains(t, string(rec), canary)
		assert.NotContains(t, logs.String(), canary)
		assert.NotContains(t, fmt.Sprintf("%+v", m), canary)
		assert.Equal(t, incident.NewSecret(canary).Fingerprint(), inc.CredentialFingerprint)
	})
}

func TestNoCustomerImpactSendsNoNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateResolving)
		_, _, sent := f.snapshot()
		assert.Empty(t, sent)
		assert.Empty(t, inc.Deliveries)
		require.NotNil(t, inc.Decision)
		assert.False(t, inc.Decision.Notify)
		assert.Equal(t, "the investigation found no customer data affected", inc.Decision.Reason)
		assert.Contains(t, transitions(inc), "investigating>resolving")
		var decided bool
		for _, e := range inc.Timeline {
			decided = decided || (e.Type == incident.EntryDecision && e.Detail == "do not notify customers: the investigation found no customer data affected")
		}
		assert.True(t, decided, "the decision and its reason are on the timeline")
	})
}

func TestDecisionTable(t *testing.T) {
	tests := []struct {
		name   string
		impact incident.Impact
		notify bool
		reason string
	}{
		{"customer data", incident.Impact{Customers: []incident.Customer{customer}, Data: []incident.DataCategory{incident.DataFinancial}}, true, "customer data affected"},
		{"nothing", incident.Impact{}, false, "found no customer data affected"},
		{"data but nobody", incident.Impact{Data: []incident.DataCategory{incident.DataPartnerDetails}}, false, "no customer identified"},
		{"customers but no data", incident.Impact{Customers: []incident.Customer{customer}}, false, "no customer data affected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakes{}
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(tt.impact))))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				inc := await(t, o, rc.IncidentID, incident.StateResolving)
				assert.Equal(t, tt.notify, inc.Decision.Notify)
				assert.Contains(t, inc.Decision.Reason, tt.reason)
				_, _, sent := f.snapshot()
				assert.Equal(t, tt.notify, len(sent) > 0)
			})
		})
	}
}

func TestInvestigateFirstAndAutoClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Strategy = breach.StrategyBySeverity
		pb.Tasks = nil
		pb.AutoResolve, pb.AutoClose = true, true
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		sig := leak()
		sig.Severity = incident.SeverityLow // by severity: investigate first
		rc, err := o.Report(context.Background(), sig)
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateClosed)
		assert.Equal(t, []string{"detected>investigating", "investigating>containing", "containing>contained",
			"contained>resolving", "resolving>resolved", "resolved>closed"}, transitions(inc))
	})
}

func TestDismissReleasesContainment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		inv := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
			return incident.Findings{}, incident.Permanent(errors.New("activity logs unavailable"))
		})
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(f, inv)))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		inc := await(t, o, rc.IncidentID, incident.StateEscalated)
		require.NotNil(t, inc.Escalation)
		assert.Equal(t, incident.StateInvestigating, inc.Escalation.From)
		assert.Contains(t, inc.Escalation.Reason, "activity logs unavailable")

		require.NoError(t, o.Dismiss(context.Background(), inc.ID, "carol", "test key, not a real leak"))
		inc, err = o.Get(context.Background(), inc.ID)
		require.NoError(t, err)
		assert.Equal(t, incident.StateDismissed, inc.State)
		contained, released, _ := f.snapshot()
		require.Len(t, released, 1)
		assert.Equal(t, contained[0].IdempotencyKey, released[0].IdempotencyKey, "release uses the action's key")
		assert.Equal(t, incident.ActionReleased, inc.Actions[0].Status)
		require.NotNil(t, inc.Dismissal)
		assert.Equal(t, "carol", inc.Dismissal.By)
		var releaseEntry bool
		for _, e := range inc.Timeline {
			releaseEntry = releaseEntry || e.Type == incident.EntryRelease
		}
		assert.True(t, releaseEntry)

		// Dismissed closes the dedup key: the same leak again opens a new incident.
		rc2, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		assert.True(t, rc2.Opened)
		assert.NotEqual(t, rc.IncidentID, rc2.IncidentID)
	})
}

func TestConcurrentReportsOpenOneIncident(t *testing.T) {
	store := incident.NewMemStore()
	o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)))
	require.NoError(t, err)
	const n = 100
	var wg sync.WaitGroup
	var opened atomic.Int32
	ids := make([]string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rc, err := o.Report(context.Background(), leak())
			assert.NoError(t, err)
			ids[i] = rc.IncidentID
			if rc.Opened {
				opened.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.EqualValues(t, 1, opened.Load())
	open, err := store.ListOpen(context.Background())
	require.NoError(t, err)
	require.Len(t, open, 1)
	for _, id := range ids {
		assert.Equal(t, open[0].ID, id)
	}
	require.NoError(t, o.Flush(context.Background()))
	inc, err := store.Head(context.Background(), open[0].ID)
	require.NoError(t, err)
	assert.EqualValues(t, n, inc.Signals.Count, "every signal is counted")
	assert.Len(t, inc.Signals.Samples, incident.MaxSignalSamples)
}

func TestContainerFailuresEscalate(t *testing.T) {
	tests := []struct {
		name     string
		fail     func(attempt int) error
		attempts int
		reason   string
		state    incident.State
	}{
		{"retried then applied", func(a int) error {
			if a < 3 {
				return errors.New("revocation API unavailable")
			}
			return nil
		}, 3, "", incident.StateResolving},
		{"spent", func(int) error { return errors.New("revocation API unavailable") }, 3, "revocation API unavailable", incident.StateEscalated},
		{"permanent", func(int) error { return incident.Permanent(errors.New("no such key")) }, 1, "no such key", incident.StateEscalated},
		{"panic", func(int) error { panic("container bug") }, 3, "plugin panicked: container bug", incident.StateEscalated},
		{"credential redacted", func(int) error { return incident.Permanent(errors.New("bad key " + canary)) }, 1, "bad key [REDACTED]", incident.StateEscalated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakes{}
				pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
				pb.Containment[0].Container = f.container(tt.fail)
				o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithLogger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				stop := running(t, o)
				defer stop()
				rc, err := o.Report(context.Background(), leak())
				require.NoError(t, err)
				inc := await(t, o, rc.IncidentID, incident.StateResolving, incident.StateEscalated)
				assert.Equal(t, tt.state, inc.State)
				assert.Equal(t, tt.attempts, inc.Actions[0].Attempts)
				contained, _, _ := f.snapshot()
				assert.Len(t, contained, tt.attempts)
				for _, r := range contained {
					assert.Equal(t, inc.Actions[0].IdempotencyKey, r.IdempotencyKey, "one key across retries")
				}
				if tt.name == "panic" {
					var stack bool
					for _, e := range inc.Timeline {
						stack = stack || (e.Type == incident.EntryContainment && strings.Contains(e.Detail, "stack:\n") &&
							strings.Contains(e.Detail, "goroutine"))
					}
					assert.True(t, stack, "the panic's stack is on the timeline")
				}
				if tt.reason != "" {
					require.NotNil(t, inc.Escalation)
					assert.Contains(t, inc.Escalation.Reason, tt.reason)
					assert.Equal(t, incident.StateContaining, inc.Escalation.From)
				}
				rec, _ := json.Marshal(inc)
				assert.NotContains(t, string(rec), canary)
			})
		})
	}
}

func TestRetryResumesEscalatedContainment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		var broken atomic.Bool
		broken.Store(true)
		pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))
		pb.Containment[0].Container = f.container(func(int) error {
			if broken.Load() {
				return incident.Permanent(errors.New("revocation API down"))
			}
			return nil
		})
		o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb))
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		rc, err := o.Report(context.Background(), leak())
		require.NoError(t, err)
		await(t, o, rc.IncidentID, incident.StateEscalated)
		assert.ErrorIs(t, o.Close(context.Background(), rc.IncidentID, "dave", "x"), incident.ErrInvalidTransition)
		broken.Store(false)
		require.NoError(t, o.Retry(context.Background(), rc.IncidentID, "dave", "API is back"))
		inc := await(t, o, rc.IncidentID, incident.StateResolving)
		assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status)
		contained, _, _ := f.snapshot()
		require.Len(t, contained, 2)
		assert.Equal(t, contained[0].IdempotencyKey, contained[1].IdempotencyKey)
		assert.ErrorIs(t, o.Retry(context.Background(), rc.IncidentID, "dave", "again"), breach.ErrNotEscalated)
	})
}

func TestUnknownKindIsRejectedAtReport(t *testing.T) {
	store := incident.NewMemStore()
	o, err := breach.New(store)
	require.NoError(t, err)
	_, err = o.Report(context.Background(), incident.Signal{Kind: "db.exfiltration", Subject: "db-1", Severity: incident.SeverityHigh})
	assert.ErrorIs(t, err, breach.ErrUnknownKind)
	assert.Contains(t, err.Error(), `"db.exfiltration"`)
	assert.ErrorIs(t, err, incident.ErrInvalidSignal)
	open, err := store.ListOpen(context.Background())
	require.NoError(t, err)
	assert.Empty(t, open, "nothing recorded")
}

func TestStoredIncidentOfUnknownKindIsEscalatedNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// An incident whose playbook went away (a deploy removed it) is
		// handed to a person on resume.
		store := incident.NewMemStore()
		now := time.Now()
		require.NoError(t, store.Create(context.Background(), incident.Split(&incident.Incident{ID: "inc_old", Kind: "db.exfiltration",
			Subject: "db-1", DedupKey: "db.exfiltration/db-1", Severity: incident.SeverityHigh, State: incident.StateDetected,
			DetectedAt: now, UpdatedAt: now})))
		o, err := breach.New(store)
		require.NoError(t, err)
		stop := running(t, o)
		defer stop()
		inc := await(t, o, "inc_old", incident.StateEscalated)
		assert.Contains(t, inc.Escalation.Reason, `no playbook is registered for incidents of kind "db.exfiltration"`)
	})
}

func TestInvalidSignalRecordsNothing(t *testing.T) {
	store := incident.NewMemStore()
	o, err := breach.New(store)
	require.NoError(t, err)
	_, err = o.Report(context.Background(), incident.Signal{Kind: "apikey.compromised", Severity: incident.SeverityHigh})
	require.ErrorIs(t, err, incident.ErrInvalidSignal)
	var fe *incident.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Subject", fe.Field)
	open, err := store.ListOpen(context.Background())
	require.NoError(t, err)
	assert.Empty(t, open)
}

func TestNewValidates(t *testing.T) {
	ok := breach.Playbook{Kind: "k"}
	noop := containment.Func(func(context.Context, containment.Request) error { return nil })
	tests := []struct {
		name  string
		store incident.Store
		opts  []breach.Option
		want  error
	}{
		{"nil store", nil, nil, breach.ErrInvalidOption},
		{"nil option", incident.NewMemStore(), []breach.Option{nil}, breach.ErrInvalidOption},
		{"zero concurrency", incident.NewMemStore(), []breach.Option{breach.WithConcurrency(0)}, breach.ErrInvalidOption},
		{"nil clock", incident.NewMemStore(), []breach.Option{breach.WithNow(nil)}, breach.ErrInvalidOption},
		{"empty kind", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{})}, breach.ErrInvalidPlaybook},
		{"duplicate kind", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(ok), breach.WithPlaybook(ok)}, breach.ErrInvalidPlaybook},
		{"action without container", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{Kind: "k",
			Containment: []containment.Action{{Name: "a"}}})}, breach.ErrInvalidPlaybook},
		{"duplicate action", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{Kind: "k",
			Containment: []containment.Action{{Name: "a", Container: noop}, {Name: "a", Container: noop}}})}, breach.ErrInvalidPlaybook},
		{"route without notifier", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{Kind: "k",
			Notifiers: []notify.Route{{Channel: "email"}}})}, breach.ErrInvalidPlaybook},
		{"bad strategy", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{Kind: "k", Strategy: 9})}, breach.ErrInvalidPlaybook},
		{"task without title", incident.NewMemStore(), []breach.Option{breach.WithPlaybook(breach.Playbook{Kind: "k",
			Tasks: []breach.TaskSpec{{ID: "t"}}})}, breach.ErrInvalidPlaybook},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := breach.New(tt.store, tt.opts...)
			assert.Nil(t, o)
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestHumanActionsCheckInput(t *testing.T) {
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(apiKeyPlaybook(&fakes{}, nil)))
	require.NoError(t, err)
	ctx := context.Background()
	assert.ErrorIs(t, o.Close(ctx, "inc_nope", "", "x"), breach.ErrInvalidInput)
	assert.ErrorIs(t, o.Close(ctx, "inc_nope", "alice", "x"), incident.ErrNotFound)
	assert.ErrorIs(t, o.Dismiss(ctx, "inc_nope", "alice", "x"), incident.ErrNotFound)
	rc, err := o.Report(ctx, leak())
	require.NoError(t, err)
	var te *incident.TransitionError
	require.ErrorAs(t, o.Close(ctx, rc.IncidentID, "alice", "x"), &te)
	assert.Equal(t, incident.StateContaining, te.From, "created containing: its first containment is claimed")
	assert.ErrorIs(t, o.CompleteTask(ctx, rc.IncidentID, "nope", "alice", ""), breach.ErrNoSuchTask)
}

func TestRunTwiceAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := breach.New(incident.NewMemStore())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		synctest.Wait()
		assert.ErrorIs(t, o.Run(ctx), breach.ErrRunning)
		cancel()
		assert.NoError(t, <-done)
		// synctest.Test fails if any goroutine Run started is still alive here.
	})
}

func TestDetectorsFeedRunAndPanickingDetectorIsContained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{}
		store := incident.NewMemStore()
		o, err := breach.New(store, breach.WithPlaybook(apiKeyPlaybook(f, impactInvestigator(incident.Impact{}))),
			breach.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ch := make(chan incident.Signal, 3)
		ch <- leak()
		ch <- leak()
		close(ch)
		bad := incident.DetectorFunc(func(ctx context.Context, r incident.Reporter) error { panic("detector bug") })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx, bad, incident.ChanDetector(ch, nil)) }()
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		// Both signals were counted on one incident (flushed when Run stopped),
		// and the panicking detector did not stop the other one or Run.
		open, err := store.ListOpen(context.Background())
		require.NoError(t, err)
		require.Len(t, open, 1)
		assert.EqualValues(t, 2, open[0].Signals.Count)
		assert.Equal(t, incident.StateResolving, open[0].State)
	})
}
