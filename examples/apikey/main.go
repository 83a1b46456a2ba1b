// Command apikey runs the reference scenario of breach: an API key is found
// compromised; the key is disabled at once, the account's activity is
// investigated, the system is secured, the customer is notified and told to
// generate a new API key, and the incident is resolved and closed.
//
// It runs the scenario twice, with in-memory host parts: once where the
// leaked key was used to read customer data, and once where it was not
// used, so that no customer notice goes out and the timeline says why.
//
//	go run ./examples/apikey
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apikey:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	fmt.Fprintln(w, "=== Scenario 1: a leaked API key was used to read customer data")
	if err := scenario(w, true); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "=== Scenario 2: a leaked API key that was never used")
	return scenario(w, false)
}

// ---- the host's own systems, in memory ----

// apiKeys is the host's API key service.
type apiKeys struct {
	mu   sync.Mutex
	keys map[string]*apiKey
}

type apiKey struct {
	Account string
	Secret  string
	Active  bool
}

func (k *apiKeys) authenticate(secret string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range k.keys {
		if key.Secret == secret {
			return key.Active
		}
	}
	return false
}

func (k *apiKeys) setActive(id string, active bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[id]
	if !ok {
		return incident.Permanent(fmt.Errorf("no API key %q", id))
	}
	key.Active = active
	return nil
}

// firewall blocks source addresses at the edge.
type firewall struct {
	mu      sync.Mutex
	blocked map[string]bool
}

func (f *firewall) set(ip string, block bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[ip] = block
}

// apiCall is one line of the API's access log.
type apiCall struct {
	At       time.Time
	KeyID    string
	Endpoint string
	IP       string
}

// endpointData says which customer data each API endpoint returns.
var endpointData = map[string]incident.DataCategory{
	"GET /v1/conversions":      incident.DataConversion,
	"GET /v1/campaigns/report": incident.DataCampaignReports,
	"GET /v1/partners":         incident.DataPartnerDetails,
	"GET /v1/billing/invoices": incident.DataFinancial,
}

// accounts is the host's customer directory.
var accounts = map[string]incident.Customer{
	"acct_7": {ID: "acct_7", Name: "Northwind Ads", Email: "security@northwind.example"},
}

// ---- containment: disable the key, block the addresses that used it ----

type disableKey struct{ keys *apiKeys }

func (d disableKey) Contain(ctx context.Context, req containment.Request) error {
	return d.keys.setActive(req.Subject, false)
}

// Verify checks that the leaked credential is rejected now.
func (d disableKey) Verify(ctx context.Context, req containment.Request) error {
	if !req.Credential.IsZero() && d.keys.authenticate(req.Credential.Reveal()) {
		return errors.New("the leaked key still authenticates")
	}
	return nil
}

// Release re-enables the key when the incident is dismissed.
func (d disableKey) Release(ctx context.Context, req containment.Request) error {
	return d.keys.setActive(req.Subject, true)
}

// blockAbusers secures the system: it blocks at the edge every address that
// used the key after it leaked.
type blockAbusers struct {
	fw       *firewall
	log      func() []apiCall
	leakedAt time.Time
}

func (b blockAbusers) Contain(ctx context.Context, req containment.Request) error {
	for _, c := range b.log() {
		if c.KeyID == req.Subject && !c.At.Before(b.leakedAt) {
			b.fw.set(c.IP, true)
		}
	}
	return nil
}

func (b blockAbusers) Release(ctx context.Context, req containment.Request) error {
	for _, c := range b.log() {
		if c.KeyID == req.Subject && !c.At.Before(b.leakedAt) {
			b.fw.set(c.IP, false)
		}
	}
	return nil
}

// ---- the scenario ----

func scenario(w io.Writer, used bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	clock := newClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	keys := &apiKeys{keys: map[string]*apiKey{
		"key_42": {Account: "acct_7", Secret: "sk_live_4eC39HqLyjWDarjtT1zdp7dc", Active: true},
	}}
	fw := &firewall{blocked: map[string]bool{}}
	leakedAt := clock.start.Add(-6 * time.Hour)
	var accessLog []apiCall
	if used {
		accessLog = []apiCall{
			{leakedAt.Add(-2 * time.Hour), "key_42", "GET /v1/campaigns/report", "10.1.2.3"}, // before the leak: the customer
			{leakedAt.Add(1 * time.Hour), "key_42", "GET /v1/campaigns/report", "203.0.113.9"},
			{leakedAt.Add(2 * time.Hour), "key_42", "GET /v1/conversions", "203.0.113.9"},
		}
	}

	var outbox []notify.Message
	var outboxMu sync.Mutex
	email := notify.Func(func(ctx context.Context, m notify.Message) error {
		outboxMu.Lock()
		defer outboxMu.Unlock()
		if slices.ContainsFunc(outbox, func(sent notify.Message) bool { return sent.IdempotencyKey == m.IdempotencyKey }) {
			return nil // the provider drops a repeat with the same key
		}
		outbox = append(outbox, m)
		return nil
	})

	investigate := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		customer := accounts[inc.Account]
		var data []incident.DataCategory
		var ips []string
		for _, c := range accessLog {
			if c.KeyID != inc.Subject || c.At.Before(leakedAt) {
				continue
			}
			if d, ok := endpointData[c.Endpoint]; ok && !slices.Contains(data, d) {
				data = append(data, d)
			}
			if !slices.Contains(ips, c.IP) {
				ips = append(ips, c.IP)
			}
		}
		f := incident.Findings{
			RootCause: "API key committed to a public repository",
			Notes:     []string{fmt.Sprintf("%d call(s) with the key since the leak", len(ips))},
		}
		if len(data) == 0 {
			f.Summary = "the key was not used after it leaked"
			return f, nil
		}
		f.Summary = "An API key of your account was published in a public code repository and used by a third party " +
			"to read data through our API before we disabled it."
		f.Impact = incident.Impact{
			Customers: []incident.Customer{customer},
			Data:      data,
			Summary:   "The third party could read the following data of your account:",
		}
		f.Notes = append(f.Notes, "used from: "+strings.Join(ips, ", "))
		return f, nil
	})

	logs := &strings.Builder{}
	o, err := breach.New(incident.NewMemStore(),
		breach.WithNow(clock.now),
		breach.WithIDs(func() string { return "inc_0001" }),
		breach.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		breach.WithPlaybook(breach.Playbook{
			Kind:     "apikey.compromised",
			Strategy: breach.ContainFirst,
			Containment: []containment.Action{{
				Name:        "disable-api-key",
				Description: "disabled the exposed API key",
				Container:   disableKey{keys},
				Policy:      incident.Policy{Attempts: 5, Timeout: 5 * time.Second, Backoff: 100 * time.Millisecond},
			}, {
				Name:        "block-abusing-addresses",
				Description: "blocked the network addresses that used the key",
				Container:   blockAbusers{fw: fw, log: func() []apiCall { return accessLog }, leakedAt: leakedAt},
			}},
			Investigator: investigate,
			Notifiers:    []notify.Route{{Channel: "email", Notifier: email}},
			Recommendations: []string{
				"Generate a new API key in your dashboard under Settings > API keys, and replace the old key wherever it is used.",
				"Review the API activity of your account for the last 7 days.",
				"Keep API keys out of source code; use your platform's secret store.",
			},
			Clocks:  []breach.Clock{breach.GDPR()},
			Sender:  "The Example Ads security team",
			Contact: "security@example.com",
			Tasks: []breach.TaskSpec{
				{ID: "scan-repos", Title: "Add secret scanning to the customer-facing SDK repositories", Mandatory: true},
				{ID: "key-expiry", Title: "Offer expiring API keys"},
			},
		}),
	)
	if err != nil {
		return err
	}

	// The detector: a secret-scanning feed on a Go channel.
	found := make(chan incident.Signal, 1)
	runErr := make(chan error, 1)
	go func() { runErr <- o.Run(ctx, incident.ChanDetector(found, nil)) }()
	found <- incident.Signal{
		Kind:       "apikey.compromised",
		Subject:    "key_42",
		Account:    "acct_7",
		Severity:   incident.SeverityCritical,
		Source:     "secret-scanner",
		Summary:    "live API key found in a public repository",
		Attributes: map[string]string{"url": "https://code.example/acme/sdk/blob/main/config.yml"},
		Credential: incident.NewSecret("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
	}

	inc, err := o.Await(ctx, "inc_0001", func(inc *incident.Incident) bool {
		return inc.State == incident.StateResolving || inc.State == incident.StateEscalated
	})
	if err != nil {
		return err
	}
	if inc.State == incident.StateEscalated {
		return fmt.Errorf("incident escalated: %s", inc.Escalation.Reason)
	}
	if keys.authenticate("sk_live_4eC39HqLyjWDarjtT1zdp7dc") {
		return errors.New("the leaked key still works")
	}

	// The data protection officer notifies the supervisory authority (GDPR Art. 33)
	// when personal data was exposed, and records it; the 72-hour clock stops.
	if used {
		if err := o.RecordMilestone(ctx, inc.ID, incident.MilestoneAuthorityNotified, "dpo@example.com",
			"breach notified to the supervisory authority, reference 2026-0312"); err != nil {
			return err
		}
	}

	// A responder finishes the corrective work, resolves, and closes after the review.
	if err := o.CompleteTask(ctx, inc.ID, "scan-repos", "alice@example.com", "secret scanning enabled on 4 repositories"); err != nil {
		return err
	}
	note := "key disabled, no customer data exposed, scanning in place"
	if used {
		note = "key disabled, abusing addresses blocked, customer told, scanning in place"
	}
	if err := o.Resolve(ctx, inc.ID, "alice@example.com", note); err != nil {
		return err
	}
	if err := o.Close(ctx, inc.ID, "bob@example.com", "post-incident review held"); err != nil {
		return err
	}
	cancel()
	if err := <-runErr; err != nil {
		return err
	}
	if inc, err = o.Get(context.Background(), inc.ID); err != nil {
		return err
	}
	if err := inc.Timeline.Verify(); err != nil {
		return err
	}
	if strings.Contains(logs.String(), "sk_live_") {
		return errors.New("the credential leaked into the logs")
	}

	fmt.Fprintf(w, "Incident %s: %s, state %s, signals %d\n", inc.ID, inc.Kind, inc.State, inc.Signals.Count)
	fmt.Fprintln(w, "\nTimeline:")
	for _, e := range inc.Timeline {
		what := string(e.Type)
		if e.Type == incident.EntryTransition {
			what = string(e.From) + " -> " + string(e.To)
		}
		fmt.Fprintf(w, "  %s  %-18s %-28s %s\n", e.At.Format("15:04:05"), e.Actor, what, e.Detail)
	}
	fmt.Fprintf(w, "Timeline verified: %d entries, head %s\n", len(inc.Timeline), inc.Timeline.Head().String()[:16])
	fmt.Fprintf(w, "\nNotify decision: notify=%t (%s)\n", inc.Decision.Notify, inc.Decision.Reason)
	for _, d := range inc.Deadlines {
		fmt.Fprintf(w, "Clock %q: %s, due %s", d.Name, d.Status, d.Due.Format(time.RFC3339))
		if !d.MetAt.IsZero() {
			fmt.Fprintf(w, ", met %s", d.MetAt.Format(time.RFC3339))
		}
		if d.NotApplicableReason != "" {
			fmt.Fprintf(w, " (%s)", d.NotApplicableReason)
		}
		fmt.Fprintln(w)
	}
	if len(outbox) == 0 {
		fmt.Fprintln(w, "No customer notice was sent: "+inc.Decision.Reason+".")
	}
	for _, m := range outbox {
		fmt.Fprintf(w, "\nCustomer notice via %s to %s <%s> (key %s):\n", m.Channel, m.Recipient.Name, m.Recipient.Email, m.IdempotencyKey)
		fmt.Fprintf(w, "Subject: %s\n\n%s", m.Subject, m.Text)
	}
	if used {
		fmt.Fprintf(w, "\n--- Post-incident report ---\n\n%s", inc.Markdown())
	}
	return nil
}

// clock is a deterministic clock for the printed timeline: every reading
// is one second after the last.
type clock struct {
	mu    sync.Mutex
	start time.Time
	t     time.Time
}

func newClock(start time.Time) *clock { return &clock{start: start, t: start} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}
