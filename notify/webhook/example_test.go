package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/webhook"
)

// A host delivers notices to a customer's webhook; the customer's receiver
// verifies each delivery (here with Verify; any Standard Webhooks
// library does the same) and drops the webhook-ids it has seen.
func Example() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // shared with the receiver

	seen := map[string]bool{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header, body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get("webhook-id"); !seen[id] {
			seen[id] = true
			var p webhook.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				http.Error(w, "bad payload", http.StatusBadRequest)
				return
			}
			fmt.Printf("received %s for %s: %s (%s)\n", p.Type, p.Data.Recipient.ID, p.Data.Subject, p.Data.Severity)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	wh, err := webhook.New(receiver.URL+"/breach", secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := notify.Message{
		IdempotencyKey: "brk_0123",
		Channel:        "webhook",
		Recipient:      incident.Customer{ID: "cust-1"},
		Subject:        "Security notice about your account",
		Text:           "We are writing to tell you about a security incident.",
		IncidentID:     "inc-1",
		Severity:       incident.SeverityHigh,
	}
	// The second call repeats the first, as a retry after a lost answer
	// would: the receiver recognises the webhook-id.
	for range 2 {
		if err := wh.Notify(context.Background(), msg); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("deliveries seen:", len(seen))
	// Output:
	// received incident.customer_notice for cust-1: Security notice about your account (high)
	// deliveries seen: 1
}

// A receiver rejects a delivery whose body was changed after signing, and
// one signed too long ago.
func ExampleVerify() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	sent := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	req := httptest.NewRequest(http.MethodPost, "/breach", bytes.NewReader(body))
	req.Header.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	req.Header.Set("webhook-timestamp", "1614265330")
	req.Header.Set("webhook-signature", webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", sent, body))
	fmt.Println(req.Header.Get("webhook-signature"))

	fmt.Println(webhook.Verify(secret, req.Header, body, time.Minute, sent.Add(30*time.Second)))
	err = webhook.Verify(secret, req.Header, []byte(`{"test": 1}`), time.Minute, sent)
	fmt.Println(errors.Is(err, webhook.ErrSignature))
	err = webhook.Verify(secret, req.Header, body, time.Minute, sent.Add(time.Hour))
	fmt.Println(errors.Is(err, webhook.ErrTimestamp))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// <nil>
	// true
	// true
}

// A host pages its own on-call tooling through the same signed webhook: a
// page arrives as an "incident.page" payload, whose webhook-id is the
// page's idempotency key.
func ExampleNotifier_Page() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || webhook.Verify(secret, r.Header, body, 0, time.Time{}) != nil {
			http.Error(w, "bad delivery", http.StatusUnauthorized)
			return
		}
		var p webhook.PagePayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		fmt.Printf("%s %s %s: %s (level %d, %s)\n", p.Type, p.Data.Action, p.Data.AlertKey, p.Data.Needed, p.Data.Level, p.Data.Responder)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	wh, err := webhook.New(receiver.URL+"/oncall", secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = wh.Page(context.Background(), notify.Page{
		IdempotencyKey: "pg_inc-1_1_0",
		AlertKey:       "inc-1/approval",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-1",
		Severity:       incident.SeverityCritical,
		Needed:         "approve or deny disable-key",
		Level:          1,
		Responder:      "secops-primary",
	})
	fmt.Println(err)
	// Output:
	// incident.page trigger inc-1/approval: approve or deny disable-key (level 1, secops-primary)
	// <nil>
}
