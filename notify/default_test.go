package notify

import (
	"testing"
	"time"

	"github.com/breachkit/breach/incident"
)

// FuzzDefaultNotice keeps the reflection-free rendering of the default
// notice byte for byte equal to executing the default templates.
func FuzzDefaultNotice(f *testing.F) {
	f.Add("Northwind Ads", "A key leaked <script>alert('x')</script> & more", "Read: reports", "disabled the key", "Generate a new key + rotate", "sec@example.com", "The team", int64(1772442000), int64(1772442060), uint8(3))
	f.Add("", "", "", "", "", "", "", int64(0), int64(0), uint8(0))
	f.Add("Zoë \x00 \"Q\"", "multi\nline", "", "", "", "", "", int64(1), int64(0), uint8(1))
	f.Fuzz(func(t *testing.T, name, summary, impact, action, rec, contact, sender string, detected, contained int64, data uint8) {
		n := Notice{
			IncidentID: "inc_1", Kind: "apikey.compromised", Severity: incident.SeverityHigh,
			Customer: incident.Customer{ID: "acct_7", Name: name}, Summary: summary,
			Impact:  incident.Impact{Summary: impact},
			Contact: contact, Sender: sender,
		}
		if detected != 0 {
			n.DetectedAt = time.Unix(detected%1e11, 0)
		}
		if contained != 0 {
			n.ContainedAt = time.Unix(contained%1e11, 0)
		}
		cats := []incident.DataCategory{incident.DataConversion, incident.DataCampaignReports, incident.DataAPIAccess,
			incident.DataPartnerDetails, incident.DataFinancial, "custom <data>"}
		for i, c := range cats {
			if data&(1<<i) != 0 {
				n.Impact.Data = append(n.Impact.Data, c)
			}
		}
		if action != "" {
			n.Actions = []string{action, "blocked the addresses"}
		}
		if rec != "" {
			n.Recommendations = []string{rec, "Review your activity."}
		}
		want, err := defaultTemplate.execute(n)
		if err != nil {
			t.Fatal(err)
		}
		got := renderDefault(n)
		if got != want {
			t.Fatalf("fast rendering differs\n got: %#v\nwant: %#v", got, want)
		}
	})
}

func BenchmarkDefaultNotice(b *testing.B) {
	n := Notice{IncidentID: "inc_1", Customer: incident.Customer{ID: "acct_7", Name: "Northwind Ads"},
		Summary: "An API key of your account was published.", DetectedAt: time.Unix(1772442000, 0),
		ContainedAt: time.Unix(1772442060, 0), Impact: incident.Impact{Data: []incident.DataCategory{incident.DataAPIAccess}},
		Actions: []string{"disabled the key"}, Recommendations: []string{"Generate a new API key."}, Contact: "sec@example.com"}
	b.Run("builtin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = renderDefault(n)
		}
	})
	b.Run("text-template", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := defaultTemplate.execute(n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
