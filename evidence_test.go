package breach_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach"
	"github.com/breachkit/breach/incident"
)

// Tests of AttachEvidence (collab.go); the helpers are in collab_test.go.

func TestAttachEvidence(t *testing.T) {
	o, _ := desk(t)
	id := file(t, o, leak())
	ended := file(t, o, bruteforce("alice"))
	require.NoError(t, o.Dismiss(context.Background(), ended, "carol", "a penetration test"))
	seen := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	ob := func(typ incident.ObservableType, v string) incident.Observable {
		return incident.Observable{Type: typ, Value: v}
	}
	tests := []struct {
		name  string
		id    string
		ob    incident.Observable
		actor string
		want  string // the value kept; "" when nothing is recorded
		errs  []error
	}{
		{"an address", id, incident.Observable{Type: incident.ObservableIP, Value: "203.0.113.7", Source: "gateway",
			SeenAt: seen, AddedBy: "mallory"}, "alice", "203.0.113.7", nil},
		{"IPv6 in canonical form", id, ob(incident.ObservableIP, "2001:DB8:0:0::1"), "alice", "2001:db8::1", nil},
		{"the same address again changes nothing", id, ob(incident.ObservableIP, "203.0.113.7"), "bob", "", nil},
		{"a URL", id, ob(incident.ObservableURL, "https://paste.example/raw/abc"), "alice", "https://paste.example/raw/abc", nil},
		{"a hash in lower case", id, ob(incident.ObservableHash, strings.Repeat("AB", 32)), "alice", strings.Repeat("ab", 32), nil},
		{"a user", id, ob(incident.ObservableUser, "ada@example.com"), "alice", "ada@example.com", nil},
		{"a key ID", id, ob(incident.ObservableKeyID, "key_42"), "alice", "key_42", nil},

		{"no actor", id, ob(incident.ObservableIP, "198.51.100.1"), "", "", []error{breach.ErrInvalidInput}},
		{"no type", id, ob("", "198.51.100.1"), "alice", "", []error{breach.ErrInvalidInput, incident.ErrInvalidEvidence}},
		{"bad address", id, ob(incident.ObservableIP, "198.51.100"), "alice", "", []error{breach.ErrInvalidInput, incident.ErrInvalidEvidence}},
		{"too long", id, ob(incident.ObservableUser, strings.Repeat("u", incident.MaxObservableValue+1)), "alice", "",
			[]error{breach.ErrInvalidInput, incident.ErrInvalidEvidence}},
		{"seen in the future", id, incident.Observable{Type: incident.ObservableIP, Value: "198.51.100.1",
			SeenAt: time.Now().Add(time.Hour)}, "alice", "", []error{breach.ErrInvalidInput, incident.ErrInvalidEvidence}},
		{"a token as key ID", id, ob(incident.ObservableKeyID, pastedToken), "alice", "",
			[]error{breach.ErrInvalidInput, incident.ErrInvalidEvidence, incident.ErrCredentialEvidence}},
		{"the incident's credential as key ID", id, ob(incident.ObservableKeyID, canary), "alice", "",
			[]error{breach.ErrInvalidInput, incident.ErrCredentialEvidence}},
		{"the incident's credential in the source", id, incident.Observable{Type: incident.ObservableIP,
			Value: "198.51.100.1", Source: "seen with " + canary}, "alice", "", []error{breach.ErrInvalidInput, incident.ErrCredentialEvidence}},
		{"a URL with a password", id, ob(incident.ObservableURL, "https://ada:hunter2@db.example/"), "alice", "",
			[]error{breach.ErrInvalidInput, incident.ErrCredentialEvidence}},
		{"ended incident", ended, ob(incident.ObservableIP, "198.51.100.1"), "alice", "", []error{breach.ErrIncidentEnded}},
		{"unknown incident", "inc_nope", ob(incident.ObservableIP, "198.51.100.1"), "alice", "", []error{incident.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before int64
			if tt.id != "inc_nope" {
				before = version(t, o, tt.id)
			}
			err := o.AttachEvidence(context.Background(), tt.id, tt.ob, tt.actor)
			if tt.errs != nil {
				checkRefused(t, o, tt.id, before, err, tt.errs...)
				if errors.Is(err, incident.ErrInvalidEvidence) {
					var ee *incident.EvidenceError
					assert.ErrorAs(t, err, &ee)
				}
				for _, s := range []string{pastedToken, canary, "hunter2"} {
					assert.NotContains(t, err.Error(), s, "the error never quotes a credential")
				}
				return
			}
			require.NoError(t, err)
			inc := get(t, o, tt.id)
			if tt.want == "" {
				assert.Equal(t, before, inc.Version, "nothing written")
				return
			}
			got := inc.Evidence[len(inc.Evidence)-1]
			assert.Equal(t, tt.ob.Type, got.Type)
			assert.Equal(t, tt.want, got.Value)
			assert.Equal(t, tt.actor, got.AddedBy, "the actor, whatever the observable said")
			assert.False(t, got.AddedAt.IsZero())
			assert.True(t, tt.ob.SeenAt.Equal(got.SeenAt))
			e := lastEntry(t, o, tt.id)
			assert.Equal(t, incident.EntryEvidence, e.Type)
			assert.Equal(t, tt.actor, e.Actor)
			assert.True(t, strings.HasPrefix(e.Detail, "evidence attached: "+string(tt.ob.Type)+" "+tt.want), e.Detail)
		})
	}
	inc := get(t, o, id)
	assert.Len(t, inc.Evidence, 6)
	md := inc.Markdown()
	assert.Contains(t, md, "## Evidence")
	assert.NotContains(t, md, canary)
}

// TestAttachEvidenceLimit: an incident holds incident.MaxEvidence
// observables; the next is refused, with nothing recorded.
func TestAttachEvidenceLimit(t *testing.T) {
	o, _ := desk(t)
	id := file(t, o, bruteforce("alice"))
	for i := range incident.MaxEvidence {
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		require.NoError(t, o.AttachEvidence(context.Background(), id, incident.Observable{Type: incident.ObservableIP, Value: ip}, "alice"))
	}
	before := version(t, o, id)
	err := o.AttachEvidence(context.Background(), id, incident.Observable{Type: incident.ObservableIP, Value: "10.1.0.1"}, "alice")
	checkRefused(t, o, id, before, err, breach.ErrLimitReached)
	// One already held is still no error: nothing to add.
	assert.NoError(t, o.AttachEvidence(context.Background(), id, incident.Observable{Type: incident.ObservableIP, Value: "10.0.0.1"}, "alice"))
	assert.Len(t, get(t, o, id).Evidence, incident.MaxEvidence)
}
