// Command gameday rehearses the API-key playbook on a simulated clock: no
// key is revoked and no e-mail is sent, but the timeline and the deadline
// compliance are the ones a real response with the same timing would give.
//
// The rehearsal asks a question security and legal teams ask before an
// incident: if the data protection officer is only reached after the
// weekend, do we still meet GDPR's 72 hours and NIS2's 24-hour early
// warning?
//
//	go run ./examples/gameday
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gameday:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	noop := containment.Func(func(context.Context, containment.Request) error { return nil })
	mail := notify.Func(func(context.Context, notify.Message) error { return nil })
	playbook := breach.Playbook{
		Kind:     "apikey.compromised",
		Strategy: breach.ContainFirst,
		Containment: []containment.Action{
			{Name: "disable-api-key", Description: "disabled the exposed API key", Container: noop},
			{Name: "block-abusing-addresses", Description: "blocked the addresses that used the key", Container: noop},
		},
		Notifiers:       []notify.Route{{Channel: "email", Notifier: mail}},
		Recommendations: []string{"Generate a new API key in your dashboard."},
		Clocks:          append([]breach.Clock{breach.GDPR()}, breach.NIS2()...),
		Tasks:           []breach.TaskSpec{{ID: "scan-repos", Title: "Enable secret scanning", Mandatory: true}},
	}
	friday := time.Date(2026, 3, 6, 17, 30, 0, 0, time.UTC)
	res, err := breach.RunGameDay(context.Background(), breach.GameDay{
		Playbook: playbook,
		Start:    friday, // the leak is found late on a Friday
		Signal: incident.Signal{Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7",
			Severity: incident.SeverityCritical, Source: "secret-scanner", Summary: "live API key in a public repository"},
		Findings: incident.Findings{
			RootCause: "API key committed to a public repository",
			Summary:   "An API key of your account was published and used to read campaign reports.",
			Impact: incident.Impact{
				Customers: []incident.Customer{{ID: "acct_7", Name: "Northwind Ads", Email: "security@northwind.example"}},
				Data:      []incident.DataCategory{incident.DataCampaignReports},
			},
		},
		Steps: []breach.Step{
			// Nobody sends the NIS2 early warning until Monday morning...
			breach.MilestoneStep(64*time.Hour, incident.MilestoneEarlyWarning, "dpo@example.com", "DPO reached on Monday"),
			// ...and the authority is notified on Monday afternoon.
			breach.MilestoneStep(70*time.Hour, incident.MilestoneAuthorityNotified, "dpo@example.com", "notified the supervisory authority"),
			breach.ResolveStep(21*24*time.Hour, "alice@example.com", "key rotated, scanning enabled, final report filed"),
			breach.MilestoneStep(20*24*time.Hour, incident.MilestoneFinalReport, "dpo@example.com", "final report submitted"),
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "What the plugins would have been asked to do:")
	for _, c := range res.Calls {
		fmt.Fprintln(w, "  "+c)
	}
	fmt.Fprintln(w, "\nOn-call pages:")
	for _, p := range res.Pages {
		fmt.Fprintln(w, "  "+string(p.Action)+" level "+strconv.Itoa(p.Level)+": "+p.Title)
	}
	fmt.Fprintln(w, "\nDeadline compliance:")
	fmt.Fprint(w, res.Compliance())
	fmt.Fprintf(w, "\n%s", res.Report)
	return nil
}
