package detect_test

import (
	"context"
	"fmt"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/detect"
)

// chanReporter hands every signal to a channel; the orchestrator is the
// reporter in a real host.
type chanReporter chan incident.Signal

func (c chanReporter) Report(ctx context.Context, s incident.Signal) (incident.Receipt, error) {
	c <- s
	return incident.Receipt{}, nil
}

// start runs d.Detect until the returned stop is called.
func start(d incident.Detector, r incident.Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Detect(ctx, r)
	}()
	return func() { cancel(); <-done }
}

var exampleStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func exampleClock() time.Time { return exampleStart.Add(time.Hour) }

// Twenty failed authentications for one API key within a minute are
// normal; the twenty-first is a signal.
func ExampleThreshold() {
	rule, err := detect.NewThreshold(detect.ThresholdConfig{
		Name: "auth-failures", Kind: "apikey.bruteforce", Severity: incident.SeverityHigh,
		Window: time.Minute, Count: 20,
		Options: detect.Options{Now: exampleClock},
	})
	if err != nil {
		panic(err)
	}
	signals := make(chanReporter, 1)
	stop := start(rule, signals)
	defer stop()

	for i := range 21 {
		_ = rule.Observe(detect.Event{Key: "key_42", Name: "auth.failed", Value: "203.0.113.9",
			Time: exampleStart.Add(time.Duration(i) * time.Second)})
	}
	s := <-signals
	fmt.Println(s.Kind, s.Severity, s.Subject, s.DedupKey)
	fmt.Println(s.Summary)
	fmt.Println("count", s.Attributes["count"], "from", s.Attributes["first"], "to", s.Attributes["last"])
	// Output:
	// apikey.bruteforce high key_42 detect/auth-failures/key_42
	// 21 events for key_42 within 1m0s, more than 20
	// count 21 from 2026-03-02T09:00:00Z to 2026-03-02T09:00:20Z
}

// An API key used for a week from the customer's office is then used from
// an address it never used.
func ExampleNewTerms() {
	store := &detect.MemTermStore{} // or the host's own TermStore: what was seen survives restarts
	rule, err := detect.NewNewTerms(detect.NewTermsConfig{
		Name: "new-ip", Kind: "apikey.suspicious", Severity: incident.SeverityMedium,
		Learn: 7 * 24 * time.Hour, Allow: []string{"192.0.2.10"}, Store: store,
		Options: detect.Options{Now: func() time.Time { return exampleStart.Add(30 * 24 * time.Hour) }},
	})
	if err != nil {
		panic(err)
	}
	signals := make(chanReporter, 1)
	stop := start(rule, signals)
	defer stop()

	call := func(day int, ip string) {
		_ = rule.Observe(detect.Event{Key: "key_42", Name: "api.call", Value: ip, Account: "acct_7",
			Time: exampleStart.Add(time.Duration(day) * 24 * time.Hour)})
	}
	call(0, "198.51.100.4") // learning
	call(8, "198.51.100.4") // known
	call(9, "192.0.2.10")   // allowed
	call(9, "203.0.113.9")  // new
	s := <-signals
	fmt.Println(s.Subject, s.Account, s.Attributes["value"], s.At.Format(time.DateOnly))
	// Output:
	// key_42 acct_7 203.0.113.9 2026-03-11
}

// A password reset followed by a change of payout details within ten
// minutes.
func ExampleSequence() {
	rule, err := detect.NewSequence(detect.SequenceConfig{
		Name: "reset-then-payout", Kind: "account.takeover", Severity: incident.SeverityCritical,
		First: "password.reset", Then: "payout.changed", Within: 10 * time.Minute,
		Options: detect.Options{Now: exampleClock},
	})
	if err != nil {
		panic(err)
	}
	signals := make(chanReporter, 1)
	stop := start(rule, signals)
	defer stop()

	_ = rule.Observe(detect.Event{Key: "acct_7", Name: "password.reset", Time: exampleStart})
	_ = rule.Observe(detect.Event{Key: "acct_7", Name: "payout.changed", Value: "IBAN ending 4432",
		Time: exampleStart.Add(4 * time.Minute)})
	s := <-signals
	fmt.Println(s.Summary)
	fmt.Println(s.Attributes["first.name"], s.Attributes["first.at"], "->", s.Attributes["then.name"], s.Attributes["then.at"], s.Attributes["then.value"])
	// Output:
	// payout.changed 4m0s after password.reset for acct_7 (within 10m0s)
	// password.reset 2026-03-02T09:00:00Z -> payout.changed 2026-03-02T09:04:00Z IBAN ending 4432
}
