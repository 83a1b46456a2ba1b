package notifytest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/notifytest"
)

// A host tests its routing: e-mail is recorded, the pager is down, and
// FanOut reports the pager's failure without losing the e-mail.
func ExampleRecorder() {
	var email notifytest.Recorder
	pager := notifytest.FailAlways(errors.New("pager service unavailable"))
	n := notify.FanOut(
		notify.Route{Channel: "email", Notifier: &email},
		notify.Route{Channel: "pager", Notifier: pager},
	)

	err := n.Notify(context.Background(), notify.Message{
		IdempotencyKey: "brk_5d1c",
		Attempt:        1,
		Recipient:      incident.Customer{ID: "cust_1", Email: "ada@example.com"},
		Subject:        "Security notice: API key exposed",
	})

	fmt.Println("error:", err)
	fmt.Println("permanent:", incident.IsPermanent(err))
	for _, m := range email.Messages() {
		fmt.Printf("%s to %s: %s\n", m.Channel, m.Recipient.Email, m.Subject)
	}
	fmt.Println("pager attempts:", pager.Count("brk_5d1c"))
	// Output:
	// error: notify: channel "pager": pager service unavailable
	// permanent: false
	// email to ada@example.com: Security notice: API key exposed
	// pager attempts: 1
}

// A provider that refuses twice succeeds on the third attempt, with the
// same idempotency key each time, as the orchestrator's delivery policy
// retries it.
func ExampleFailN() {
	provider := notifytest.FailN(2, errors.New("421 try again later"))
	msg := notify.Message{IdempotencyKey: "brk_5d1c", Recipient: incident.Customer{ID: "cust_1"}}

	var out struct {
		Attempts int
		Err      error
	}
	for attempt := 1; attempt <= 5; attempt++ {
		m := msg
		m.Attempt = attempt
		out.Attempts, out.Err = attempt, provider.Notify(context.Background(), m)
		if out.Err == nil {
			break
		}
	}

	for _, m := range provider.ByKey()["brk_5d1c"] {
		fmt.Println("attempt", m.Attempt, "to", m.Recipient.ID)
	}
	fmt.Println("delivered after", out.Attempts, "attempts, err:", out.Err)
	// Output:
	// attempt 1 to cust_1
	// attempt 2 to cust_1
	// attempt 3 to cust_1
	// delivered after 3 attempts, err: <nil>
}
