package secretscan_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
)

// printReporter stands in for the orchestrator.
type printReporter struct{}

func (printReporter) Report(_ context.Context, s incident.Signal) (incident.Receipt, error) {
	fmt.Printf("signal: kind=%s subject=%s account=%s severity=%s source=%s credential=%v\n",
		s.Kind, s.Subject, s.Account, s.Severity, s.Source, s.Credential)
	fmt.Printf("summary: %s\n", s.Summary)
	return incident.Receipt{IncidentID: "inc_1", Opened: true}, nil
}

func Example() {
	// The platform's signing key. In production the KeySet fetches the
	// public half: Source: secretscan.URLKeys(nil, secretscan.GitHubKeysURL, nil).
	platform, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&platform.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	// The host's API keys, by secret (a real host looks up a hash).
	apiKeys := map[string]secretscan.Identity{
		"brk_live_5f2c9d0e7a": {Subject: "key_123", Account: "acct_42"},
	}

	h, err := secretscan.New(secretscan.Config{
		Keys:     &secretscan.KeySet{Source: secretscan.StaticKeys(map[string]string{"key-1": pub})},
		Reporter: printReporter{}, // usually the *breach.Orchestrator
		Resolve: func(ctx context.Context, m secretscan.Match) (secretscan.Identity, error) {
			id, ok := apiKeys[m.Token.Reveal()]
			if !ok {
				return secretscan.Identity{}, secretscan.ErrUnknownToken
			}
			return id, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// What the platform sends: a signed JSON array of matches.
	body := []byte(`[{"token":"brk_live_5f2c9d0e7a","type":"breach_api_key","url":"https://github.com/octo/app/blob/1a2b/.env","source":"content"},` +
		`{"token":"brk_live_0000000000","type":"breach_api_key","url":"","source":"commit"}]`)
	digest := sha256.Sum256(body)
	sig, _ := ecdsa.SignASN1(rand.Reader, platform, digest[:])
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(secretscan.HeaderKeyIdentifier, "key-1")
	req.Header.Set(secretscan.HeaderSignature, base64.StdEncoding.EncodeToString(sig))

	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	feedback, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status)
	fmt.Printf("%s", feedback)
	// Output:
	// signal: kind=credential.compromised subject=key_123 account=acct_42 severity=critical source=secret-scanning:content credential=[REDACTED]
	// summary: Secret scanning found a leaked breach_api_key token at https://github.com/octo/app/blob/1a2b/.env (found in content)
	// 200 OK
	// [{"token_hash":"c562f5a881d5c614be890b76871ddb0c6e3fe8ebda7f75f39b719d833f387057","token_type":"breach_api_key","label":"true_positive"},{"token_hash":"b00bcf6bb026383cf54bdad6e324c771ab52f0f09bf8f250e4e50216e3f66537","token_type":"breach_api_key","label":"false_positive"}]
}
