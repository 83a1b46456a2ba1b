package breach_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// A host wires its store, containment and channels into an Orchestrator,
// runs it, and reports what its detectors find.
func Example() {
	revoke := containment.Func(func(ctx context.Context, req containment.Request) error {
		fmt.Println("revoking", req.Subject)
		return nil // the host's key service disables the key here
	})
	investigate := incident.InvestigatorFunc(func(ctx context.Context, inc *incident.Incident) (incident.Findings, error) {
		return incident.Findings{Impact: incident.Impact{
			Customers: []incident.Customer{{ID: "acct_7", Email: "sec@northwind.example"}},
			Data:      []incident.DataCategory{incident.DataCampaignReports},
		}}, nil
	})
	email := notify.Func(func(ctx context.Context, m notify.Message) error {
		fmt.Println("mailing", m.Recipient.Email+":", m.Subject)
		return nil
	})

	o, err := breach.New(incident.NewMemStore(),
		breach.WithLogger(slog.New(slog.DiscardHandler)),
		breach.WithPlaybook(breach.Playbook{
			Kind:            "apikey.compromised",
			Strategy:        breach.ContainFirst,
			Containment:     []containment.Action{{Name: "disable-key", Container: revoke}},
			Investigator:    investigate,
			Notifiers:       []notify.Route{{Channel: "email", Notifier: email}},
			Recommendations: []string{"Generate a new API key."},
		}))
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- o.Run(ctx) }()

	rc, err := o.Report(ctx, incident.Signal{
		Kind: "apikey.compromised", Subject: "key_42", Account: "acct_7",
		Severity: incident.SeverityCritical, Credential: incident.NewSecret("sk_live_..."),
	})
	if err != nil {
		panic(err)
	}
	// Automation stops in resolving, or when it needs a person.
	inc, err := o.Await(ctx, rc.IncidentID, func(inc *incident.Incident) bool {
		return inc.State == incident.StateResolving || inc.State == incident.StateEscalated
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("state:", inc.State, "| notify:", inc.Decision.Notify)

	_ = o.Resolve(ctx, inc.ID, "alice", "key rotated with the customer")
	_ = o.Close(ctx, inc.ID, "alice", "reviewed")
	stop()
	<-done
	inc, _ = o.Get(context.Background(), inc.ID)
	fmt.Println("state:", inc.State)
	// Output:
	// revoking key_42
	// mailing sec@northwind.example: Security notice about your account
	// state: resolving | notify: true
	// state: closed
}
