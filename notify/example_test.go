package notify_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

func ExampleFanOut() {
	var mu sync.Mutex
	var sent []string
	deliver := notify.Func(func(_ context.Context, msg notify.Message) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, msg.Channel+": "+msg.Subject)
		return nil
	})
	pager := notify.Func(func(context.Context, notify.Message) error {
		return errors.New("pager service unavailable")
	})

	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: deliver},
		notify.Route{Channel: "webhook", Notifier: deliver},
		notify.Route{Channel: "pager", Notifier: pager},
	)
	err := n.Notify(context.Background(), notify.Message{Subject: "API key leaked"})

	slices.Sort(sent) // the routes run concurrently
	for _, s := range sent {
		fmt.Println("sent", s)
	}
	var re *notify.RouteError
	if errors.As(err, &re) {
		fmt.Println("failed", re.Channel+":", re.Err)
	}
	// Output:
	// sent email: API key leaked
	// sent webhook: API key leaked
	// failed pager: pager service unavailable
}

func ExampleTemplate_Render() {
	r, err := notify.DefaultTemplate().Render(notify.Notice{
		IncidentID:      "inc_7f3a9c",
		Customer:        incident.Customer{Name: "Acme Ltd"},
		Summary:         "An API key for your account was published in a public code repository.",
		DetectedAt:      time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC),
		ContainedAt:     time.Date(2025, 3, 4, 9, 42, 0, 0, time.UTC),
		Impact:          incident.Impact{Data: []incident.DataCategory{incident.DataAPIAccess}},
		Actions:         []string{"disabled the compromised API key"},
		Recommendations: []string{"Generate a new API key in your dashboard"},
		Contact:         "security@example.test",
		Sender:          "The Example Ads security team",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Subject:", r.Subject)
	fmt.Println()
	fmt.Print(r.Text)
	// Output:
	// Subject: Security notice about your account, Acme Ltd
	//
	// Dear Acme Ltd,
	//
	// We are writing to tell you about a security incident that affects your account.
	//
	// What happened
	// An API key for your account was published in a public code repository.
	// We detected it on 4 March 2025 at 09:30 UTC. We contained it on 4 March 2025 at 09:42 UTC.
	//
	// What information was involved
	// - API access
	//
	// What we have done
	// - We disabled the compromised API key.
	//
	// What you should do
	// - Generate a new API key in your dashboard
	//
	// For more information
	// If you have questions, contact us at security@example.test and quote reference inc_7f3a9c.
	//
	// The Example Ads security team
}
