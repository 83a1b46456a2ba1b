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

func post(t *testing.T, url, actor, note string) (int, string) {
	b, _ := json.Marshal(map[string]string{"actor": actor, "note": note})
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func get(t *testing.T, url, accept string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEndToEnd(t *testing.T) {
	p := newPlatform(t)
	var logs bytes.Buffer
	a, err := newApp(p.keys(t), slog.New(slog.NewTextHandler(&logs, nil)))
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
	status, body := get(t, srv.URL+"/incidents", "")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[]`, body)

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

	status, body = get(t, srv.URL+"/incidents", "")
	require.Equal(t, http.StatusOK, status)
	var list []incidentSummary
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list, 1, "one incident, for our key only")
	id := list[0].ID
	assert.Equal(t, key.ID, list[0].Subject)

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

	status, body = get(t, srv.URL+"/incidents/"+id, "")
	require.Equal(t, http.StatusOK, status)
	var inc incident.Incident
	require.NoError(t, json.Unmarshal([]byte(body), &inc))
	assert.Equal(t, incident.StateResolving, inc.State)
	assert.NoError(t, inc.Timeline.Verify(), "the timeline survives the JSON round trip")
	status, body = get(t, srv.URL+"/incidents/"+id, "text/markdown")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "# Incident "+id)

	// Responders work through the API.
	status, body = post(t, srv.URL+"/incidents/"+id+"/resolve", "alice", "customer rotated")
	assert.Equal(t, http.StatusConflict, status, "a mandatory task is open: %s", body)
	status, _ = post(t, srv.URL+"/incidents/"+id+"/tasks/confirm-rotation", "alice", "confirmed by phone")
	assert.Equal(t, http.StatusOK, status)
	status, _ = post(t, srv.URL+"/incidents/"+id+"/milestones/authority-notified", "dpo", "reference 2026-07")
	assert.Equal(t, http.StatusOK, status)
	status, body = post(t, srv.URL+"/incidents/"+id+"/resolve", "alice", "customer rotated")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = post(t, srv.URL+"/incidents/"+id+"/close", "bob", "reviewed")
	assert.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"state": "closed"`)

	// Bad requests get clear statuses.
	status, _ = post(t, srv.URL+"/incidents/"+id+"/close", "bob", "again")
	assert.Equal(t, http.StatusConflict, status)
	status, _ = post(t, srv.URL+"/incidents/"+id+"/explode", "bob", "")
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = post(t, srv.URL+"/incidents/inc_nope/close", "bob", "")
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = post(t, srv.URL+"/incidents/"+id+"/reopen", "", "")
	assert.Equal(t, http.StatusBadRequest, status)

	status, body = get(t, srv.URL+"/incidents/"+id, "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal([]byte(body), &inc))
	assert.Equal(t, incident.StateClosed, inc.State)
	assert.Equal(t, incident.DeadlineMet, inc.Deadlines[0].Status)

	status, body = get(t, srv.URL+"/debug/vars", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"incidents_closed"`)
	assert.Contains(t, body, `"steps_contain_ok"`)

	// The leaked token appears nowhere it should not.
	assert.NotContains(t, logs.String(), key.Secret)
	status, body = get(t, srv.URL+"/incidents/"+id, "")
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, key.Secret)
	assert.False(t, strings.Contains(fmtAll(sent), key.Secret))
}

func fmtAll(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
