package containment_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/incident"
)

// verifyFails is a Container whose Verify returns err.
type verifyFails struct{ err error }

func (verifyFails) Contain(context.Context, containment.Request) error  { return nil }
func (v verifyFails) Verify(context.Context, containment.Request) error { return v.err }

// Regression: a Verifier that returned a *VerifyError (as the type's doc
// invites) was wrapped in a second one, and the orchestrator recorded
// "containment not verified: containment not verified: …". The prefix is
// said once, whether the Verifier returns a plain error or a VerifyError,
// bare, wrapped or permanent; checked on the full messages the
// orchestrator records (the action's last error and the escalation).
func TestVerifyErrorSaysItOnce(t *testing.T) {
	still := errors.New("key still accepted")
	const lastError = "containment not verified: key still accepted"
	tests := []struct {
		name    string
		err     error
		wantMsg string
	}{
		{"plain error", incident.Permanent(still), lastError},
		{"a VerifyError", incident.Permanent(&containment.VerifyError{Err: still}), lastError},
		{"a wrapped VerifyError", fmt.Errorf("revoke-key: %w", incident.Permanent(&containment.VerifyError{Err: still})),
			"revoke-key: " + lastError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := containment.Runner{}.Apply(t.Context(), []containment.Action{{Name: "revoke", Container: verifyFails{tt.err}}},
				containment.Request{IncidentID: "inc-1"}, nil)
			require.Len(t, rs, 1)
			var ve *containment.VerifyError
			require.ErrorAs(t, rs[0].Err, &ve)
			assert.ErrorIs(t, rs[0].Err, still)
			assert.Equal(t, tt.wantMsg, rs[0].Err.Error())
			assert.Equal(t, `containment action "revoke" failed after 1 attempt(s): `+tt.wantMsg, rs.Err().Error())

			synctest.Test(t, func(t *testing.T) {
				o, err := breach.New(incident.NewMemStore(), breach.WithLogger(slog.New(slog.DiscardHandler)),
					breach.WithPlaybook(breach.Playbook{Kind: "apikey.compromised", Strategy: breach.ContainFirst,
						Containment: []containment.Action{{Name: "revoke", Container: verifyFails{tt.err}}}}))
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- o.Run(ctx) }()
				defer func() { cancel(); assert.NoError(t, <-done) }()

				rc, err := o.Report(ctx, incident.Signal{Kind: "apikey.compromised", Subject: "key_1", Severity: incident.SeverityCritical})
				require.NoError(t, err)
				actx, acancel := context.WithTimeout(ctx, time.Hour)
				defer acancel()
				inc, err := o.Await(actx, rc.IncidentID, func(inc *incident.Incident) bool { return inc.State == incident.StateEscalated })
				require.NoError(t, err)

				require.Len(t, inc.Actions, 1)
				assert.Equal(t, tt.wantMsg, inc.Actions[0].LastError)
				require.NotNil(t, inc.Escalation)
				assert.Equal(t, `containment failed: containment action "revoke" failed after 1 attempt(s): `+tt.wantMsg,
					inc.Escalation.Reason)
			})
		})
	}
}
