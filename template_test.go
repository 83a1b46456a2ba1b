package breach_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/notify"
)

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// TestSlowTemplateDoesNotHoldShutdown: a host notice template that takes
// seconds to render (a range over a large count), which nothing can
// interrupt: rendered as an isolated call, it does not hold Run, cancelled
// while it renders, past its shutdown grace.
func TestSlowTemplateDoesNotHoldShutdown(t *testing.T) {
	tpl, err := notify.NewTemplate("Security notice {{.IncidentID}}",
		"{{range 10000000}}{{end}}{{.Greeting}} {{.Summary}}", "")
	require.NoError(t, err)
	f := &fakes{}
	pb := apiKeyPlaybook(f, impactInvestigator(incident.Impact{Customers: []incident.Customer{customer},
		Data: []incident.DataCategory{incident.DataAPIAccess}}))
	pb.Template = tpl
	const grace = 100 * time.Millisecond
	o, err := breach.New(incident.NewMemStore(), breach.WithPlaybook(pb), breach.WithShutdownGrace(grace), quiet)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	_, err = o.Report(context.Background(), leak())
	require.NoError(t, err)
	for !strings.Contains(allStacks(), "notify.(*Template).Render") {
		runtime.Gosched() // until the worker is rendering the notice
	}
	start := time.Now()
	cancel()
	require.NoError(t, <-done)
	took := time.Since(start)
	t.Logf("Run returned %v after its ctx ended (grace %v)", took, grace)
	assert.Less(t, took, grace+time.Second, "Run returns within the shutdown grace")
}
