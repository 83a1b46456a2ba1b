package pagerduty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
	"github.com/breachkit/breach/notify/pagerduty"
)

// A host pages its security on-call through PagerDuty: a trigger opens the
// alert, and a resolve with the same AlertKey closes it. Here a local
// receiver stands in for the Events API; in production leave WithURL out
// (or pass pagerduty.EUURL) and give New the integration key.
func Example() {
	events := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Action  string `json:"event_action"`
			Key     string `json:"dedup_key"`
			Payload *struct {
				Summary  string `json:"summary"`
				Severity string `json:"severity"`
			} `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, `{"status":"invalid event"}`, http.StatusBadRequest)
			return
		}
		fmt.Print(ev.Action, " ", ev.Key)
		if ev.Payload != nil {
			fmt.Printf(": %s (%s)", ev.Payload.Summary, ev.Payload.Severity)
		}
		fmt.Println()
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprint(w, `{"status":"success","message":"Event processed"}`)
	}))
	defer events.Close()

	pager, err := pagerduty.New("R0ut1ngK3yS3cr3tR0ut1ngK3yS3cr3t",
		pagerduty.WithURL(events.URL+"/v2/enqueue"),
		pagerduty.WithSource("payments-api"))
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
		Needed:         "approve or deny containment action disable-key",
		Deadline:       time.Now().Add(30 * time.Minute),
		Level:          1,
		Responder:      "secops-primary",
	}
	if err := pager.Page(context.Background(), page); err != nil {
		fmt.Println(err)
	}
	page.IdempotencyKey, page.Action = "pg_inc-1_resolve", notify.PageResolve
	if err := pager.Page(context.Background(), page); err != nil {
		fmt.Println(err)
	}
	// Output:
	// trigger inc-1/approval: Incident inc-1 (api_key_leak, critical) needs a person (critical)
	// resolve inc-1/approval
}
