// Package sample holds the notice the tests of notify and its transports
// send, so that each checks the same message.
package sample

import (
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

// Message is a notice to one customer with non-ASCII text, an HTML part
// and another affected customer in its impact (which a transport must not
// disclose).
func Message() notify.Message {
	return notify.Message{
		IdempotencyKey: "brk_5f1e0c2d9a7b4e3f8c6d1a2b3c4d5e6f",
		Attempt:        1,
		Channel:        "webhook",
		Recipient:      incident.Customer{ID: "cust-42", Name: "Zoë Müller", Email: "zoe@example.com"},
		Subject:        "Sicherheitshinweis für Ihr Konto",
		Text:           "Dear Zoë Müller,\n\nWe detected a security incident.\n",
		HTML:           "<p>Dear Zoë Müller,</p>",
		IncidentID:     "inc-7",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityHigh,
		Impact: incident.Impact{
			Customers: []incident.Customer{{ID: "cust-42"}, {ID: "cust-43", Email: "someone.else@example.com"}},
			Data:      []incident.DataCategory{incident.DataAPIAccess},
			Summary:   "An API key was published.",
		},
		Recommendations: []string{"Rotate your API key"},
	}
}
