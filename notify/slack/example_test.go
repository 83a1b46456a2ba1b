package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/slack"
)

// A host pages its security channel through an incoming webhook. Here a
// local receiver stands in for Slack and prints what each message would
// notify with; in production give New the webhook URL Slack issued, and
// keep it as secret as a password.
func Example() {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type string `json:"type"`
			} `json:"blocks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		fmt.Print(m.Text, " [")
		for i, b := range m.Blocks {
			if i > 0 {
				fmt.Print(" ")
			}
			fmt.Print(b.Type)
		}
		fmt.Println("]")
		_, _ = io.WriteString(w, "ok")
	}))
	defer hook.Close()

	pager, err := slack.New(hook.URL + "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX")
	if err != nil {
		fmt.Println(err)
		return
	}
	page := notify.Page{
		IdempotencyKey: "pg_inc-1_1_0",
		AlertKey:       "inc-1/approval",
		Action:         notify.PageTrigger,
		IncidentID:     "inc-1",
		Kind:           "api_key_leak",
		Severity:       incident.SeverityCritical,
		Title:          "Incident inc-1 (api_key_leak, critical) needs a person",
		Reason:         "containment action disable-key needs approval",
		Needed:         "approve or deny disable-key <now>",
		Link:           "https://console.acme.example/incidents/inc-1",
		Level:          1,
		Responder:      "secops-primary",
	}
	if err := pager.Page(context.Background(), page); err != nil {
		fmt.Println(err)
	}
	page.IdempotencyKey, page.Action = "pg_inc-1_ack", notify.PageAcknowledge
	if err := pager.Page(context.Background(), page); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Incident inc-1 (api_key_leak, critical) needs a person: approve or deny disable-key &lt;now&gt; [header section section context actions]
	// Acknowledged: incident inc-1: Incident inc-1 (api_key_leak, critical) needs a person [section context actions]
}
