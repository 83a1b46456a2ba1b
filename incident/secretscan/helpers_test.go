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
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
)

// Tokens of the host ("ours"), and one that is not.
const (
	keyID      = "k1"
	tokenA     = "brk_live_AAAAaaaa1111222233334444"
	tokenB     = "brk_live_BBBBbbbb5555666677778888"
	tokenOther = "brk_live_ZZZZzzzz9999000011112222"
)

var allTokens = []string{tokenA, tokenB, tokenOther}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func pemOf(t testing.TB, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func sign(t testing.TB, k *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	d := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sig)
}

func hashOf(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

type match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

func batch(t testing.TB, ms ...match) []byte {
	t.Helper()
	b, err := json.Marshal(ms)
	require.NoError(t, err)
	return b
}

// recorder is an incident.Reporter that keeps what it is handed.
type recorder struct {
	mu   sync.Mutex
	sigs []incident.Signal
	err  error
}

func (r *recorder) Report(_ context.Context, s incident.Signal) (incident.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return incident.Receipt{}, r.err
	}
	if err := s.Validate(); err != nil {
		return incident.Receipt{}, err
	}
	r.sigs = append(r.sigs, s)
	return incident.Receipt{IncidentID: "inc_" + s.Subject, Opened: true}, nil
}

func (r *recorder) signals() []incident.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]incident.Signal(nil), r.sigs...)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a Handler wired to a recorder, a captured log and a key set
// whose source counts its calls.
type fixture struct {
	t         *testing.T
	h         *secretscan.Handler
	keys      *secretscan.KeySet
	rep       *recorder
	logs      *syncBuffer
	key       *ecdsa.PrivateKey
	refreshes atomic.Int32
	resolves  atomic.Int32
}

// resolveOurs knows tokenA and tokenB.
func resolveOurs(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
	switch m.Token.Reveal() {
	case tokenA:
		return secretscan.Identity{Subject: "key_A", Account: "acct_1"}, nil
	case tokenB:
		return secretscan.Identity{Subject: "key_B", Account: "acct_2"}, nil
	}
	return secretscan.Identity{}, secretscan.ErrUnknownToken
}

func newFixture(t *testing.T, mod func(*secretscan.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, rep: &recorder{}, logs: &syncBuffer{}, key: newKey(t)}
	pems := map[string]string{keyID: pemOf(t, f.key)}
	f.keys = &secretscan.KeySet{Source: secretscan.KeySourceFunc(func(ctx context.Context) (map[string]string, error) {
		f.refreshes.Add(1)
		return pems, nil
	})}
	cfg := secretscan.Config{
		Keys:     f.keys,
		Reporter: f.rep,
		Resolve: func(ctx context.Context, m secretscan.Match) (secretscan.Identity, error) {
			f.resolves.Add(1)
			return resolveOurs(ctx, m)
		},
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := secretscan.New(cfg)
	require.NoError(t, err)
	f.h = h
	return f
}

// post sends body signed by f.key under keyID.
func (f *fixture) post(body []byte) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(signed(f.t, f.key, keyID, body))
}

func (f *fixture) do(req *http.Request) *httptest.ResponseRecorder {
	f.t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func signed(t testing.TB, k *ecdsa.PrivateKey, id string, body []byte) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/secret-scanning", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(secretscan.HeaderKeyIdentifier, id)
	req.Header.Set(secretscan.HeaderSignature, sign(t, k, body))
	return req
}

// assertNoTokenLeak checks that no token appears in the captured log or in
// the response body.
func (f *fixture) assertNoTokenLeak(resp string) {
	f.t.Helper()
	logs := f.logs.String()
	for _, tok := range allTokens {
		require.NotContains(f.t, logs, tok, "token in the log")
		require.NotContains(f.t, resp, tok, "token in the response")
	}
}

var errStoreDown = errors.New("store down")

// quiet discards log records.
var quiet = slog.New(slog.DiscardHandler)
