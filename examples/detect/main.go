// Command detect shows the built-in detectors of package incident/detect
// feeding the orchestrator: an API key is reported leaked, and within a day
// it is used from an address it never used before. Neither alone opens an
// incident; the two in sequence do, and the contain-first playbook disables
// the key, investigates, tells the customer, and the incident is resolved
// and closed.
//
// Three detectors work together. The secret scanner's leak reports and the
// "new-ip" rule (a NewTerms rule over the API gateway's calls) both feed
// events to the "leak-then-use" rule (a Sequence), which the orchestrator
// runs and whose signal opens the incident. Everything runs on a fixed
// clock, so the output is the same every time.
//
//	go run ./examples/detect
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
	"github.com/breachkit/breach/notify"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "detect:", err)
		os.Exit(1)
	}
}

// start is the first day of the scenario.
var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const leaked = "sk_live_51HxQpLkJ2eZvKYlo2C0"

// apiCall is one line of the API gateway's access log.
type apiCall struct {
	At       time.Time
	KeyID    string
	IP       string
	Endpoint string
}

// feed is a Reporter that turns each signal into an event for another
// detector, and says on a channel that it did.
type feed struct {
	rule  *detect.Sequence
	event func(incident.Signal) detect.Event
	done  chan<- string
}

func (f feed) Report(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	ev := f.event(s)
	if err := f.rule.Observe(ev); err != nil {
		return incident.Receipt{}, err
	}
	f.done <- fmt.Sprintf("%s %s for %s -> %s", s.At.Format("Jan 2 15:04"), s.Source, s.Subject, ev.Name)
	return incident.Receipt{}, nil
}

func run(w io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The host's systems, in memory.
	var mu sync.Mutex
	active := map[string]bool{"key_42": true, "key_77": true}
	var accessLog []apiCall
	var outbox []notify.Message

	// The rule that opens incidents: a leak report, then use from a new
	// address within a day.
	clock := func() time.Time { return start.Add(30 * 24 * time.Hour) }
	quiet := slog.New(slog.DiscardHandler)
	leakThenUse, err := detect.NewSequence(detect.SequenceConfig{
		Name: "leak-then-use", Kind: "apikey.compromised", Severity: incident.SeverityCritical,
		First: "apikey.leaked", Then: "apikey.used.new-ip", Within: 24 * time.Hour,
		Options: detect.Options{Now: clock, Logger: quiet},
	})
	if err != nil {
		return err
	}
	// The rule that says which addresses are new for a key: a week of
	// learning from each key's first call.
	newIP, err := detect.NewNewTerms(detect.NewTermsConfig{
		Name: "new-ip", Kind: "apikey.new-ip", Severity: incident.SeverityLow,
		Learn: 7 * 24 * time.Hour, Store: &detect.MemTermStore{},
		Options: detect.Options{Now: clock, Logger: quiet},
	})
	if err != nil {
		return err
	}

	// The playbook for what the sequence rule finds.
	orchClock := newClock(start.Add(8*24*time.Hour + 90*time.Minute))
	o, err := breach.New(incident.NewMemStore(),
		breach.WithNow(orchClock.now),
		breach.WithIDs(func() string { return "inc_0001" }),
		breach.WithLogger(quiet),
		breach.WithPlaybook(breach.Playbook{
			Kind:     "apikey.compromised",
			Strategy: breach.ContainFirst,
			Containment: []containment.Action{{
				Name:        "disable-api-key",
				Description: "disabled the exposed API key",
				Container: containment.Func(func(ctx context.Context, req containment.Request) error {
					mu.Lock()
					defer mu.Unlock()
					active[req.Subject] = false
					return nil
				}),
			}},
			Investigator: incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
				mu.Lock()
				defer mu.Unlock()
				var ips []string
				for _, c := range accessLog {
					if c.KeyID == inc.Subject && c.IP != "198.51.100.4" && !slices.Contains(ips, c.IP) {
						ips = append(ips, c.IP)
					}
				}
				return incident.Findings{
					RootCause: "API key committed to a public repository, then used by a third party",
					Summary:   "An API key of your account was published and then used from an address you never used.",
					Impact: incident.Impact{
						Customers: []incident.Customer{{ID: "acct_7", Name: "Northwind Ads", Email: "security@northwind.example"}},
						Data:      []incident.DataCategory{incident.DataConversion},
						Summary:   "The third party could read your conversion data.",
					},
					Notes: []string{"used from: " + strings.Join(ips, ", ")},
				}, nil
			}),
			Notifiers: []notify.Route{{Channel: "email", Notifier: notify.Func(func(ctx context.Context, m notify.Message) error {
				mu.Lock()
				defer mu.Unlock()
				if !slices.ContainsFunc(outbox, func(sent notify.Message) bool { return sent.IdempotencyKey == m.IdempotencyKey }) {
					outbox = append(outbox, m)
				}
				return nil
			})}},
			Recommendations: []string{"Generate a new API key in your dashboard and replace the old one."},
			Sender:          "The Example Ads security team",
			Contact:         "security@example.com",
		}),
	)
	if err != nil {
		return err
	}

	// The orchestrator runs the sequence rule; the two feeding detectors
	// run here and report to the sequence rule instead.
	// filed is closed once the sequence rule's first Report to the
	// orchestrator has returned: the incident is in the store a moment
	// before, and stopping the rule in between would drop its count.
	filed := make(chan struct{})
	var fileOnce sync.Once
	sequence := incident.DetectorFunc(func(ctx context.Context, r incident.Reporter) error {
		return leakThenUse.Detect(ctx, incident.ReporterFunc(func(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
			rc, err := r.Report(ctx, s)
			if err == nil {
				fileOnce.Do(func() { close(filed) })
			}
			return rc, err
		}))
	})
	runErr := make(chan error, 1)
	go func() { runErr <- o.Run(ctx, sequence) }()
	fed := make(chan string)
	var wg sync.WaitGroup
	found := make(chan incident.Signal)
	scanner := incident.ChanDetector(found, nil)
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = scanner.Detect(ctx, feed{rule: leakThenUse, done: fed, event: func(s incident.Signal) detect.Event {
			return detect.Event{Key: s.Subject, Name: "apikey.leaked", Time: s.At, Account: s.Account,
				Attributes: map[string]string{"url": s.Attributes["url"]}}
		}})
	}()
	go func() {
		defer wg.Done()
		_ = newIP.Detect(ctx, feed{rule: leakThenUse, done: fed, event: func(s incident.Signal) detect.Event {
			return detect.Event{Key: s.Subject, Name: "apikey.used.new-ip", Value: s.Attributes["value"], Time: s.At,
				Account: s.Account, Attributes: map[string]string{"endpoint": s.Attributes["attr.endpoint"]}}
		}})
	}()

	call := func(at time.Time, key, ip, endpoint string) error {
		mu.Lock()
		accessLog = append(accessLog, apiCall{at, key, ip, endpoint})
		mu.Unlock()
		return newIP.Observe(detect.Event{Key: key, Name: "api.call", Value: ip, Time: at, Account: "acct_7",
			Attributes: map[string]string{"endpoint": endpoint}})
	}

	fmt.Fprintln(w, "=== A leaked API key, then used from a new address")
	// A week of ordinary use: the new-ip rule learns the office's address.
	for day := range 8 {
		at := start.Add(time.Duration(day) * 24 * time.Hour)
		if err := call(at, "key_42", "198.51.100.4", "GET /v1/conversions"); err != nil {
			return err
		}
		if err := call(at.Add(time.Hour), "key_77", "198.51.100.4", "GET /v1/campaigns/report"); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "Mar 2-9: key_42 and key_77 used from 198.51.100.4 every day (learned, no signal)")

	// Day 8: the secret scanner finds key_42 in a public repository. A
	// leak alone opens no incident here; it starts the sequence.
	day8 := start.Add(8 * 24 * time.Hour)
	found <- incident.Signal{Kind: "apikey.leaked", Subject: "key_42", Account: "acct_7", Severity: incident.SeverityMedium,
		Source: "secret-scanner", At: day8, Credential: incident.NewSecret(leaked),
		Attributes: map[string]string{"url": "https://code.example/acme/sdk/blob/main/config.yml"}}
	fmt.Fprintln(w, <-fed)

	// key_77 shows up from a new address: new, but never leaked.
	if err := call(day8.Add(30*time.Minute), "key_77", "192.0.2.55", "GET /v1/campaigns/report"); err != nil {
		return err
	}
	fmt.Fprintln(w, <-fed)

	// An hour after the leak, key_42 is used from an address it never used.
	if err := call(day8.Add(72*time.Minute), "key_42", "203.0.113.9", "GET /v1/conversions"); err != nil {
		return err
	}
	fmt.Fprintln(w, <-fed)

	inc, err := o.Await(ctx, "inc_0001", func(inc *incident.Incident) bool {
		return inc.State == incident.StateResolving || inc.State == incident.StateEscalated
	})
	if err != nil {
		return err
	}
	if inc.State == incident.StateEscalated {
		return fmt.Errorf("incident escalated: %s", inc.Escalation.Reason)
	}
	if err := o.Resolve(ctx, inc.ID, "alice@example.com", "key disabled, customer told"); err != nil {
		return err
	}
	if err := o.Close(ctx, inc.ID, "bob@example.com", "post-incident review held"); err != nil {
		return err
	}
	<-filed
	// The rules count a signal once its Report has returned, a moment
	// after the feed printed it: let them finish counting before stopping.
	for newIP.Stats().Signals < 2 || leakThenUse.Stats().Signals < 1 {
		runtime.Gosched()
	}
	cancel()
	wg.Wait()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if inc, err = o.Get(context.Background(), inc.ID); err != nil {
		return err
	}

	sig := inc.Signals.Samples[0]
	fmt.Fprintf(w, "\nSignal from %s: %s, %s\n", sig.Source, inc.Kind, inc.Severity)
	fmt.Fprintf(w, "Incident %s about %s (dedup key %s): %s\n", inc.ID, inc.Subject, inc.DedupKey, inc.Summary)
	fmt.Fprintln(w, "\nTimeline:")
	for _, e := range inc.Timeline {
		what := string(e.Type)
		if e.Type == incident.EntryTransition {
			what = string(e.From) + " -> " + string(e.To)
		}
		fmt.Fprintf(w, "  %s  %-18s %-28s %s\n", e.At.Format("15:04:05"), e.Actor, what, e.Detail)
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(w, "\nkey_42 active: %t; key_77 active: %t\n", active["key_42"], active["key_77"])
	for _, m := range outbox {
		fmt.Fprintf(w, "Customer notice via %s to %s: %s\n", m.Channel, m.Recipient.Email, m.Subject)
	}
	st := leakThenUse.Stats()
	fmt.Fprintf(w, "leak-then-use: %d events, %d keys, %d signal(s); new-ip: %d events, %d signal(s)\n",
		st.Evaluated, st.Keys, st.Signals, newIP.Stats().Evaluated, newIP.Stats().Signals)
	return nil
}

// clock is a deterministic clock for the printed timeline: every reading
// is one second after the last.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(start time.Time) *clock { return &clock{t: start} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}
