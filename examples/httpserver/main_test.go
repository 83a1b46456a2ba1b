package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
)

type platform struct {
	key *ecdsa.PrivateKey
	id  string
}

func newPlatform(t *testing.T) platform {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return platform{key: k, id: "test-key-1"}
}

func (p platform) keys(t *testing.T) secretscan.KeySource {
	der, err := x509.MarshalPKIXPublicKey(&p.key.PublicKey)
	require.NoError(t, err)
	return secretscan.StaticKeys(map[string]string{p.id: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
}

// alert posts a signed leaked-token report, as the platform does.
func (p platform) alert(t *testing.T, url string, body []byte, sign bool) *http.Response {
	req, err := http.NewRequest(http.MethodPost, url+"/secret-scanning", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(secretscan.HeaderKeyIdentifier, p.id)
	if sign {
		sum := sha256.Sum256(body)
		sig, err := ecdsa.SignASN1(rand.Reader, p.key, sum[:])
		require.NoError(t, err)
		req.Header.Set(secretscan.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	} else {
		req.Header.Set(secretscan.HeaderSignature, base64.StdEncoding.EncodeToString([]byte("forged")))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

var team = responders{"alice": "alice-pw", "bob": "bob-pw", "dpo": "dpo-pw"}

// act posts a console action as user, through the console's JSON API.
func act(t *testing.T, url, user string, fields map[string]string) (int, string) {
	b, _ := json.Marshal(fields)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, team[user])
	return send(t, req)
}

func get(t *testing.T, url, user string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, team[user])
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string) {
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEndToEnd(t *testing.T) {
	p := newPlatform(t)
	var logs bytes.Buffer
	a, err := newApp(p.keys(t), slog.New(slog.NewTextHandler(&logs, nil)), team)
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.orchestrator.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	key := a.keys.Create("acct_7")
	require.True(t, a.keys.Authenticate(key.Secret))

	// A forged alert is refused and opens nothing.
	forged := p.alert(t, srv.URL, []byte(`[{"token":"`+key.Secret+`","type":"example_api_key","url":"https://code.example/x","source":"content"}]`), false)
	assert.Equal(t, http.StatusUnauthorized, forged.StatusCode)
	forged.Body.Close()
	api := srv.URL + "/console/api/incidents"
	status, body := get(t, api, "alice")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"incidents":[],"next_cursor":""}`, body)

	// The platform finds the key in a public repository.
	resp := p.alert(t, srv.URL, []byte(`[{"token":"`+key.Secret+`","type":"example_api_key","url":"https://code.example/acme/sdk/blob/main/.env","source":"content"},`+
		`{"token":"sk_live_not_ours","type":"example_api_key","url":"https://code.example/y","source":"content"}]`), true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var feedback []map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&feedback))
	resp.Body.Close()
	require.Len(t, feedback, 2)
	assert.Equal(t, "true_positive", feedback[0]["label"])
	assert.Equal(t, "false_positive", feedback[1]["label"])

	status, body = get(t, api, "alice")
	require.Equal(t, http.StatusOK, status)
	var list struct{ Incidents []incident.Incident }
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Incidents, 1, "one incident, for our key only")
	id := list.Incidents[0].ID
	assert.Equal(t, key.ID, list.Incidents[0].Subject)

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	_, err = a.orchestrator.Await(wctx, id, func(inc *incident.Incident) bool { return inc.State == incident.StateResolving })
	require.NoError(t, err)

	// The key is revoked and the customer told to make a new one.
	assert.False(t, a.keys.Authenticate(key.Secret))
	sent := a.mail.Sent()
	require.Len(t, sent, 1)
	assert.Equal(t, "security@northwind.example", sent[0].Recipient.Email)
	assert.Contains(t, sent[0].Text, "Generate a new API key")
	assert.Contains(t, sent[0].Text, "revoked the exposed API key")

	status, body = get(t, api+"/"+id, "alice")
	require.Equal(t, http.StatusOK, status)
	var inc incident.Incident
	require.NoError(t, json.Unmarshal([]byte(body), &inc))
	assert.Equal(t, incident.StateResolving, inc.State)
	status, body = get(t, srv.URL+"/console/incidents/"+id+"/report.md", "alice")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "# Incident "+id)
	assert.Contains(t, body, "Timeline verified")
	status, body = get(t, srv.URL+"/console/incidents/"+id, "alice")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `<span id="state" class="state state-resolving">resolving</span>`)
	assert.Contains(t, body, `<p id="chain" class="chain verified">`)

	// Responders work through the console, signed in.
	status, body = act(t, api+"/"+id+"/resolve", "alice", map[string]string{"note": "customer rotated"})
	assert.Equal(t, http.StatusConflict, status, "a mandatory task is open: %s", body)
	assert.Contains(t, body, `"open_tasks":["confirm-rotation"]`)
	status, _ = act(t, api+"/"+id+"/complete_task", "alice", map[string]string{"task": "confirm-rotation", "note": "confirmed by phone"})
	assert.Equal(t, http.StatusOK, status)
	status, _ = act(t, api+"/"+id+"/milestone", "dpo", map[string]string{"milestone": "authority-notified", "note": "reference 2026-07"})
	assert.Equal(t, http.StatusOK, status)
	status, body = act(t, api+"/"+id+"/resolve", "alice", map[string]string{"note": "customer rotated"})
	assert.Equal(t, http.StatusOK, status, body)
	status, body = act(t, api+"/"+id+"/close", "bob", map[string]string{"note": "reviewed"})
	assert.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"state":"closed"`)

	// Bad requests get clear statuses.
	status, _ = act(t, api+"/"+id+"/close", "bob", map[string]string{"note": "again"})
	assert.Equal(t, http.StatusConflict, status)
	status, _ = act(t, api+"/"+id+"/explode", "bob", nil)
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = act(t, api+"/inc_nope/close", "bob", nil)
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = act(t, api+"/"+id+"/reopen", "bob", map[string]string{"reason": ""})
	assert.Equal(t, http.StatusBadRequest, status)

	// Nobody acts without signing in.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/console/", nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
	req.SetBasicAuth("alice", "wrong")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	status, body = get(t, api+"/"+id, "alice")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal([]byte(body), &inc))
	assert.Equal(t, incident.StateClosed, inc.State)
	assert.Equal(t, incident.DeadlineMet, inc.Deadlines[0].Status)
	status, body = get(t, api+"/"+id+"/timeline?limit=1000", "alice")
	require.Equal(t, http.StatusOK, status)
	var tl struct {
		Entries incident.Timeline
		Chain   incident.Chain
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tl))
	assert.NoError(t, tl.Entries.VerifyHead(tl.Chain.Head), "the timeline survives the JSON round trip")
	assert.True(t, hasEntry(tl.Entries, "dpo", "milestone authority-notified"), "the console records who acted")

	status, body = get(t, srv.URL+"/debug/vars", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"incidents_closed"`)
	assert.Contains(t, body, `"steps_contain_ok"`)

	// The leaked token appears nowhere it should not.
	assert.NotContains(t, logs.String(), key.Secret)
	for _, page := range []string{api + "/" + id, srv.URL + "/console/incidents/" + id, srv.URL + "/console/incidents/" + id + "/report.md"} {
		status, body = get(t, page, "alice")
		require.Equal(t, http.StatusOK, status)
		assert.NotContains(t, body, key.Secret)
	}
	assert.False(t, strings.Contains(fmtAll(sent), key.Secret))
}

func hasEntry(tl incident.Timeline, actor, detail string) bool {
	for _, e := range tl {
		if e.Actor == actor && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

func fmtAll(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseResponders(t *testing.T) {
	tests := []struct {
		in      string
		want    responders
		wantErr bool
	}{
		{"", responders{}, false},
		{"alice:a1, bob:b:2", responders{"alice": "a1", "bob": "b:2"}, false},
		{"alice", nil, true},
		{"alice:", nil, true},
		{":pw", nil, true},
	}
	for _, tt := range tests {
		got, err := parseResponders(tt.in)
		if tt.wantErr {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}
