package secretscan_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
)

// docsSample is testdata/github_docs_sample.json: the signed sample request
// of GitHub's "Secret scanning partner program" page; the file's comment
// names its sources.
type docsSample struct {
	KeyIdentifier string          `json:"key_identifier"`
	Signature     string          `json:"signature"`
	Body          string          `json:"body"`
	PublicKeys    json.RawMessage `json:"public_keys"`
}

func loadDocsSample(t *testing.T) docsSample {
	t.Helper()
	data, err := os.ReadFile("testdata/github_docs_sample.json")
	require.NoError(t, err)
	var s docsSample
	require.NoError(t, json.Unmarshal(data, &s))
	require.Len(t, s.Body, 104, "the page's Content-Length")
	return s
}

func TestGitHubDocsSampleVerifies(t *testing.T) {
	s := loadDocsSample(t)
	keys, err := secretscan.ParseKeys(s.PublicKeys)
	require.NoError(t, err)
	ks := &secretscan.KeySet{Source: secretscan.StaticKeys(keys)}
	ctx := context.Background()

	require.NoError(t, ks.Verify(ctx, s.KeyIdentifier, s.Signature, []byte(s.Body)))

	// The signature covers the raw bytes: a trailing newline, re-encoded
	// JSON or the other published key do not verify.
	require.ErrorIs(t, ks.Verify(ctx, s.KeyIdentifier, s.Signature, []byte(s.Body+"\n")), secretscan.ErrBadSignature)
	var v any
	require.NoError(t, json.Unmarshal([]byte(s.Body), &v))
	reencoded, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	require.ErrorIs(t, ks.Verify(ctx, s.KeyIdentifier, s.Signature, reencoded), secretscan.ErrBadSignature)
	for id := range keys {
		if id != s.KeyIdentifier {
			require.ErrorIs(t, ks.Verify(ctx, id, s.Signature, []byte(s.Body)), secretscan.ErrBadSignature)
		}
	}
}

func TestGitHubDocsSampleThroughHandler(t *testing.T) {
	s := loadDocsSample(t)
	keys, err := secretscan.ParseKeys(s.PublicKeys)
	require.NoError(t, err)
	rep := &recorder{}
	h, err := secretscan.New(secretscan.Config{
		Keys:     &secretscan.KeySet{Source: secretscan.StaticKeys(keys)},
		Reporter: rep,
		Resolve: func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
			if m.Token.Reveal() == "some_token" {
				return secretscan.Identity{Subject: "key_some"}, nil
			}
			return secretscan.Identity{}, secretscan.ErrUnknownToken
		},
		Logger: quiet,
	})
	require.NoError(t, err)

	// As the page shows it: POST / with both headers and the raw body.
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(s.Body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Github-Public-Key-Identifier", s.KeyIdentifier)
	req.Header.Set("Github-Public-Key-Signature", s.Signature)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `[{"token_hash":"`+hashOf("some_token")+`","token_type":"some_type","label":"true_positive"}]`, rec.Body.String())
	sigs := rep.signals()
	require.Len(t, sigs, 1)
	assert.Equal(t, "key_some", sigs[0].Subject)
	assert.Equal(t, "secret-scanning:commit", sigs[0].Source)
	assert.Equal(t, map[string]string{"url": "https://example.com/base-repo-url/", "type": "some_type", "source": "commit"}, sigs[0].Attributes)
	assert.Equal(t, "some_token", sigs[0].Credential.Reveal())
	assert.Equal(t, incident.SeverityCritical, sigs[0].Severity)
}
