package secretscan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/secretscan"
)

const leakURL = "https://github.com/octo/app/blob/1a2b3c/config.yml"

func TestHandlerValidBatch(t *testing.T) {
	f := newFixture(t, nil)
	body := batch(t,
		match{Token: tokenA, Type: "brk_api_key", URL: leakURL, Source: "commit"},
		match{Token: tokenB, Type: "brk_api_key", URL: "", Source: "content"},
	)
	rec := f.post(body)

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var fb []secretscan.Feedback
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &fb))
	assert.Equal(t, []secretscan.Feedback{
		{TokenHash: hashOf(tokenA), TokenType: "brk_api_key", Label: secretscan.TruePositive},
		{TokenHash: hashOf(tokenB), TokenType: "brk_api_key", Label: secretscan.TruePositive},
	}, fb)

	sigs := f.rep.signals()
	require.Len(t, sigs, 2)
	bySubject := map[string]incident.Signal{}
	for _, s := range sigs {
		bySubject[s.Subject] = s
	}
	a, b := bySubject["key_A"], bySubject["key_B"]
	assert.Equal(t, secretscan.DefaultKind, a.Kind)
	assert.Equal(t, "acct_1", a.Account)
	assert.Empty(t, a.DedupKey, "default dedup key: Kind/Subject")
	assert.Equal(t, incident.SeverityCritical, a.Severity)
	assert.Equal(t, "secret-scanning:commit", a.Source)
	assert.Equal(t, map[string]string{"url": leakURL, "type": "brk_api_key", "source": "commit"}, a.Attributes)
	assert.Contains(t, a.Summary, "brk_api_key")
	assert.Contains(t, a.Summary, leakURL)
	assert.Equal(t, tokenA, a.Credential.Reveal())
	assert.Equal(t, incident.NewSecret(tokenA).Fingerprint(), a.Credential.Fingerprint())
	assert.True(t, a.At.IsZero(), "At is left to the reporter")

	assert.Equal(t, "acct_2", b.Account)
	assert.Equal(t, "secret-scanning:content", b.Source)
	assert.Equal(t, map[string]string{"type": "brk_api_key", "source": "content"}, b.Attributes)
	assert.Contains(t, b.Summary, "unknown location")
	assert.Equal(t, tokenB, b.Credential.Reveal())

	for _, s := range sigs {
		require.NoError(t, s.Validate())
		assert.NotContains(t, s.Summary, s.Credential.Reveal())
	}
	f.assertNoTokenLeak(rec.Body.String())
	assert.Contains(t, f.logs.String(), "leaked credential reported")
	assert.Contains(t, f.logs.String(), incident.NewSecret(tokenA).Fingerprint())
}

func TestHandlerConfiguredKindAndSeverity(t *testing.T) {
	f := newFixture(t, func(c *secretscan.Config) {
		c.Kind = "apikey.compromised"
		c.Severity = incident.SeverityHigh
		c.Resolve = func(ctx context.Context, m secretscan.Match) (secretscan.Identity, error) {
			id, err := resolveOurs(ctx, m)
			id.DedupKey = m.Type + "/" + m.Token.Fingerprint()
			return id, err
		}
	})
	rec := f.post(batch(t, match{Token: tokenA, Type: "brk_api_key"}))
	require.Equal(t, http.StatusOK, rec.Code)
	sigs := f.rep.signals()
	require.Len(t, sigs, 1)
	assert.Equal(t, "apikey.compromised", sigs[0].Kind)
	assert.Equal(t, incident.SeverityHigh, sigs[0].Severity)
	assert.Equal(t, "brk_api_key/"+incident.NewSecret(tokenA).Fingerprint(), sigs[0].DedupKey)
	assert.Equal(t, "secret-scanning", sigs[0].Source, "no source given")
}

func TestHandlerRejects(t *testing.T) {
	good := batch(t, match{Token: tokenA, Type: "brk_api_key", URL: leakURL, Source: "commit"})
	other := newKey(t)

	tests := []struct {
		name      string
		cfg       func(*secretscan.Config)
		req       func(t *testing.T, f *fixture) *http.Request
		want      int
		wantAllow bool
		resolves  bool // whether Resolve may have been called
	}{
		{
			name: "tampered body",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				tampered := bytes.Replace(good, []byte("commit"), []byte("COMMIT"), 1)
				req.Body = nopCloser{bytes.NewReader(tampered)}
				return req
			},
			want: http.StatusUnauthorized,
		},
		{
			name: "signed with another key under the same identifier",
			req:  func(t *testing.T, f *fixture) *http.Request { return signed(t, other, keyID, good) },
			want: http.StatusUnauthorized,
		},
		{
			name: "unknown key identifier",
			req:  func(t *testing.T, f *fixture) *http.Request { return signed(t, f.key, "k-unknown", good) },
			want: http.StatusUnauthorized,
		},
		{
			name: "signature not base64",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.Header.Set(secretscan.HeaderSignature, "not*base64!")
				return req
			},
			want: http.StatusUnauthorized,
		},
		{
			name: "signature base64 but not ASN.1",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.Header.Set(secretscan.HeaderSignature, "aGVsbG8=")
				return req
			},
			want: http.StatusUnauthorized,
		},
		{
			name: "no signature header",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.Header.Del(secretscan.HeaderSignature)
				return req
			},
			want: http.StatusUnauthorized,
		},
		{
			name: "no key identifier header",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.Header.Del(secretscan.HeaderKeyIdentifier)
				return req
			},
			want: http.StatusUnauthorized,
		},
		{
			name: "unsigned",
			req: func(t *testing.T, f *fixture) *http.Request {
				return httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(good))
			},
			want: http.StatusUnauthorized,
		},
		{
			name:      "GET",
			req:       func(t *testing.T, f *fixture) *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) },
			want:      http.StatusMethodNotAllowed,
			wantAllow: true,
		},
		{
			name: "PUT, even signed",
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.Method = http.MethodPut
				return req
			},
			want:      http.StatusMethodNotAllowed,
			wantAllow: true,
		},
		{
			name: "body over the limit, announced by Content-Length",
			cfg:  func(c *secretscan.Config) { c.MaxBodyBytes = 64 },
			req:  func(t *testing.T, f *fixture) *http.Request { return signed(t, f.key, keyID, good) },
			want: http.StatusRequestEntityTooLarge,
		},
		{
			name: "body over the limit, chunked",
			cfg:  func(c *secretscan.Config) { c.MaxBodyBytes = 64 },
			req: func(t *testing.T, f *fixture) *http.Request {
				req := signed(t, f.key, keyID, good)
				req.ContentLength = -1
				return req
			},
			want: http.StatusRequestEntityTooLarge,
		},
		{
			name: "body over the default limit of 1 MiB",
			req: func(t *testing.T, f *fixture) *http.Request {
				big := batch(t, match{Token: tokenA, Type: "brk_api_key", URL: "https://x/" + strings.Repeat("a", secretscan.DefaultMaxBodyBytes)})
				return signed(t, f.key, keyID, big)
			},
			want: http.StatusRequestEntityTooLarge,
		},
	}
	for _, bad := range []struct {
		name string
		body string
	}{
		{"malformed JSON", `[{"token":"` + tokenA + `","type":"t"`},
		{"not JSON", `token=` + tokenA},
		{"empty body", ``},
		{"object instead of array", `{"token":"` + tokenA + `","type":"t","url":"u","source":"commit"}`},
		{"string instead of array", `"` + tokenA + `"`},
		{"element not an object", `[{"token":"` + tokenA + `","type":"t"},"` + tokenB + `"]`},
		{"null element", `[{"token":"` + tokenA + `","type":"t"},null]`},
		{"missing token", `[{"token":"` + tokenA + `","type":"t"},{"type":"t","url":"u","source":"commit"}]`},
		{"empty token", `[{"token":"","type":"t"}]`},
		{"token not a string", `[{"token":1234,"type":"t"}]`},
		{"missing type", `[{"token":"` + tokenA + `"}]`},
		{"type too long", `[{"token":"` + tokenA + `","type":"` + strings.Repeat("t", secretscan.MaxTypeLen+1) + `"}]`},
		{"source too long", `[{"token":"` + tokenA + `","type":"t","source":"` + strings.Repeat("s", secretscan.MaxSourceLen+1) + `"}]`},
		{"token too long", `[{"token":"` + strings.Repeat("x", incident.MaxCredentialLen+1) + `","type":"t"}]`},
		{"data after the array", `[{"token":"` + tokenA + `","type":"t"}] [{"token":"` + tokenB + `","type":"t"}]`},
		{"unterminated array", `[{"token":"` + tokenA + `","type":"t"}`},
		{"more than MaxMatches", `[{"token":"` + tokenA + `","type":"t"},{"token":"` + tokenB + `","type":"t"},{"token":"` + tokenA + `","type":"t"}]`},
	} {
		tests = append(tests, struct {
			name      string
			cfg       func(*secretscan.Config)
			req       func(t *testing.T, f *fixture) *http.Request
			want      int
			wantAllow bool
			resolves  bool
		}{
			name: bad.name,
			cfg:  func(c *secretscan.Config) { c.MaxMatches = 2 },
			req:  func(t *testing.T, f *fixture) *http.Request { return signed(t, f.key, keyID, []byte(bad.body)) },
			want: http.StatusBadRequest,
		})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg)
			rec := f.do(tt.req(t, f))
			assert.Equal(t, tt.want, rec.Code, rec.Body.String())
			if tt.wantAllow {
				assert.Equal(t, http.MethodPost, rec.Header().Get("Allow"))
			}
			assert.Empty(t, f.rep.signals(), "nothing reported")
			if !tt.resolves {
				assert.Zero(t, f.resolves.Load(), "no token resolved")
			}
			assert.NotContains(t, rec.Body.String(), "[", "no feedback")
			f.assertNoTokenLeak(rec.Body.String())
			assert.Contains(t, f.logs.String(), "request refused")
		})
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestHandlerTokenNotOurs(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.post(batch(t,
		match{Token: tokenOther, Type: "brk_api_key", URL: leakURL, Source: "commit"},
		match{Token: tokenA, Type: "brk_api_key", URL: leakURL, Source: "commit"},
	))
	require.Equal(t, http.StatusOK, rec.Code)
	var fb []secretscan.Feedback
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &fb))
	assert.Equal(t, []secretscan.Feedback{
		{TokenHash: hashOf(tokenOther), TokenType: "brk_api_key", Label: secretscan.FalsePositive},
		{TokenHash: hashOf(tokenA), TokenType: "brk_api_key", Label: secretscan.TruePositive},
	}, fb)
	sigs := f.rep.signals()
	require.Len(t, sigs, 1)
	assert.Equal(t, "key_A", sigs[0].Subject)
	f.assertNoTokenLeak(rec.Body.String())
	assert.Contains(t, f.logs.String(), "not ours")
	assert.Contains(t, f.logs.String(), incident.NewSecret(tokenOther).Fingerprint())
}

func TestHandlerWrappedUnknownTokenIsNotOurs(t *testing.T) {
	f := newFixture(t, func(c *secretscan.Config) {
		c.Resolve = func(context.Context, secretscan.Match) (secretscan.Identity, error) {
			return secretscan.Identity{}, fmt.Errorf("lookup: %w", secretscan.ErrUnknownToken)
		}
	})
	rec := f.post(batch(t, match{Token: tokenA, Type: "t"}))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `[{"token_hash":"`+hashOf(tokenA)+`","token_type":"t","label":"false_positive"}]`, rec.Body.String())
	assert.Empty(t, f.rep.signals())
}

func TestHandlerEmptyBatch(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.post([]byte(`[]`))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `[]`, rec.Body.String())
	assert.Empty(t, f.rep.signals())
}

func TestHandlerFailures(t *testing.T) {
	body := func(t *testing.T) []byte {
		return batch(t,
			match{Token: tokenA, Type: "brk_api_key", URL: leakURL, Source: "commit"},
			match{Token: tokenB, Type: "brk_api_key", URL: leakURL, Source: "commit"},
		)
	}
	tests := []struct {
		name       string
		cfg        func(*secretscan.Config)
		rep        error
		want       int
		noneReport bool
	}{
		{
			name: "reporter fails: store down",
			rep:  errStoreDown,
			want: http.StatusServiceUnavailable,
		},
		{
			name: "reporter rejects the signal as invalid",
			rep:  &incident.FieldError{Field: "Subject", Reason: "nope"},
			want: http.StatusInternalServerError,
		},
		{
			name: "resolve fails, quoting the token in its error",
			cfg: func(c *secretscan.Config) {
				c.Resolve = func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
					return secretscan.Identity{}, fmt.Errorf("db down while looking up %s", m.Token.Reveal())
				}
			},
			want:       http.StatusServiceUnavailable,
			noneReport: true,
		},
		{
			name: "resolve panics",
			cfg: func(c *secretscan.Config) {
				c.Resolve = func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
					panic("bad token " + m.Token.Reveal())
				}
			},
			want:       http.StatusInternalServerError,
			noneReport: true,
		},
		{
			name: "resolve gives no subject",
			cfg: func(c *secretscan.Config) {
				c.Resolve = func(context.Context, secretscan.Match) (secretscan.Identity, error) {
					return secretscan.Identity{Account: "acct_1"}, nil
				}
			},
			want:       http.StatusInternalServerError,
			noneReport: true,
		},
		{
			name: "resolve gives the token as subject",
			cfg: func(c *secretscan.Config) {
				c.Resolve = func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
					if m.Token.Reveal() == tokenB {
						return secretscan.Identity{Subject: "key " + tokenB}, nil
					}
					return resolveOurs(context.Background(), m)
				}
			},
			want:       http.StatusInternalServerError,
			noneReport: true, // the whole batch is validated before any report
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg)
			f.rep.err = tt.rep
			rec := f.post(body(t))
			assert.Equal(t, tt.want, rec.Code, rec.Body.String())
			if tt.noneReport {
				assert.Empty(t, f.rep.signals())
			}
			f.assertNoTokenLeak(rec.Body.String())
			assert.Contains(t, f.logs.String(), "request refused")
		})
	}
}

func TestHandlerRedactsTokenInFields(t *testing.T) {
	f := newFixture(t, nil)
	long := "https://github.com/o/r/blob/x/" + strings.Repeat("é", incident.MaxAttrValueLen)
	rec := f.post(batch(t,
		match{Token: tokenA, Type: "brk_api_key", URL: "https://gist.github.com/o/1?k=" + tokenA, Source: "gist_content"},
		match{Token: tokenB, Type: "brk_api_key", URL: long, Source: "commit"},
		match{Token: tokenOther, Type: "odd_" + tokenOther, URL: tokenOther, Source: tokenOther},
	))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	sigs := f.rep.signals()
	require.Len(t, sigs, 2)
	for _, s := range sigs {
		require.NoError(t, s.Validate())
		u := s.Attributes["url"]
		switch s.Subject {
		case "key_A":
			assert.Equal(t, "https://gist.github.com/o/1?k="+incident.Redacted, u)
		case "key_B":
			assert.LessOrEqual(t, len(u), incident.MaxAttrValueLen)
			assert.True(t, strings.HasSuffix(u, "…"), "cut URL is marked")
			assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(u, "…")))
		}
	}
	f.assertNoTokenLeak(rec.Body.String())
}

func TestHandlerLargeBatchConcurrently(t *testing.T) {
	var ms []match
	for i := range 50 {
		ms = append(ms, match{Token: fmt.Sprintf("brk_live_%04d_xxxxxxxxxxxxxxxx", i), Type: "brk_api_key", Source: "commit"})
	}
	f := newFixture(t, func(c *secretscan.Config) {
		c.Concurrency = 4
		c.Resolve = func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
			return secretscan.Identity{Subject: "key_" + m.Token.Reveal()[9:13]}, nil
		}
	})
	rec := f.post(batch(t, ms...))
	require.Equal(t, http.StatusOK, rec.Code)
	var fb []secretscan.Feedback
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &fb))
	require.Len(t, fb, 50)
	for i, e := range fb {
		assert.Equal(t, hashOf(ms[i].Token), e.TokenHash, "feedback keeps the batch order")
	}
	assert.Len(t, f.rep.signals(), 50)
}

func TestHandlerRepeatedDeliveryReportsAgain(t *testing.T) {
	// The same batch delivered twice reports the same signals twice: same
	// subject, so the orchestrator joins the second to the open incident.
	f := newFixture(t, nil)
	body := batch(t, match{Token: tokenA, Type: "brk_api_key", Source: "commit"})
	require.Equal(t, http.StatusOK, f.post(body).Code)
	require.Equal(t, http.StatusOK, f.post(body).Code)
	sigs := f.rep.signals()
	require.Len(t, sigs, 2)
	assert.Equal(t, sigs[0].Key(), sigs[1].Key())
	assert.Equal(t, sigs[0].Credential.Fingerprint(), sigs[1].Credential.Fingerprint())
}

func TestProcessErrors(t *testing.T) {
	f := newFixture(t, func(c *secretscan.Config) { c.MaxMatches = 1 })
	ctx := context.Background()
	body := batch(t, match{Token: tokenA, Type: "t"})
	sig := sign(t, f.key, body)

	_, err := f.h.Process(ctx, keyID, sig, append(body, ' '))
	assert.ErrorIs(t, err, secretscan.ErrBadSignature)

	_, err = f.h.Process(ctx, "", sig, body)
	assert.ErrorIs(t, err, secretscan.ErrUnsigned)

	two := batch(t, match{Token: tokenA, Type: "t"}, match{Token: tokenB, Type: "t"})
	_, err = f.h.Process(ctx, keyID, sign(t, f.key, two), two)
	assert.ErrorIs(t, err, secretscan.ErrBadPayload)
	assert.ErrorIs(t, err, secretscan.ErrTooManyMatches)
	var pe *secretscan.PayloadError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, -1, pe.Index)

	missing := []byte(`[{"type":"t"}]`)
	_, err = f.h.Process(ctx, keyID, sign(t, f.key, missing), missing)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 0, pe.Index)
	assert.Equal(t, "secretscan: malformed payload: match 0: no token", err.Error())

	f.rep.err = errStoreDown
	_, err = f.h.Process(ctx, keyID, sig, body)
	assert.ErrorIs(t, err, secretscan.ErrReport)
	assert.ErrorIs(t, err, errStoreDown)
	var me *secretscan.MatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, secretscan.OpReport, me.Op)
	assert.Equal(t, 0, me.Index)
	assert.Equal(t, incident.NewSecret(tokenA).Fingerprint(), me.Fingerprint)
	assert.NotContains(t, err.Error(), tokenA)
	assert.Equal(t, http.StatusServiceUnavailable, secretscan.Status(err))
}

func TestMatchErrorRedactsCause(t *testing.T) {
	f := newFixture(t, func(c *secretscan.Config) {
		c.Resolve = func(_ context.Context, m secretscan.Match) (secretscan.Identity, error) {
			return secretscan.Identity{}, errors.New("no row for " + m.Token.Reveal())
		}
	})
	body := batch(t, match{Token: tokenA, Type: "t"})
	_, err := f.h.Process(context.Background(), keyID, sign(t, f.key, body), body)
	require.ErrorIs(t, err, secretscan.ErrResolve)
	assert.NotContains(t, err.Error(), tokenA)
	assert.Contains(t, err.Error(), "no row for "+incident.Redacted)
	assert.Contains(t, err.Error(), incident.NewSecret(tokenA).Fingerprint())
}

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{secretscan.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{&secretscan.PayloadError{Index: -1, Reason: "x"}, http.StatusBadRequest},
		{&secretscan.PayloadError{Index: -1, Reason: "x", Err: secretscan.ErrTooManyMatches}, http.StatusBadRequest},
		{secretscan.ErrUnsigned, http.StatusUnauthorized},
		{fmt.Errorf("x: %w", secretscan.ErrUnknownKey), http.StatusUnauthorized},
		{secretscan.ErrBadSignature, http.StatusUnauthorized},
		{secretscan.ErrKeySource, http.StatusServiceUnavailable},
		{&secretscan.MatchError{Op: secretscan.OpResolve, Err: errStoreDown}, http.StatusServiceUnavailable},
		{&secretscan.MatchError{Op: secretscan.OpReport, Err: errStoreDown}, http.StatusServiceUnavailable},
		{&secretscan.MatchError{Op: secretscan.OpReport, Err: incident.ErrInvalidSignal}, http.StatusInternalServerError},
		{&secretscan.MatchError{Op: secretscan.OpValidate, Err: &incident.FieldError{Field: "Subject"}}, http.StatusInternalServerError},
		{&secretscan.MatchError{Op: secretscan.OpResolve, Err: &incident.PanicError{Value: "x"}}, http.StatusInternalServerError},
		{context.DeadlineExceeded, http.StatusServiceUnavailable},
		{context.Canceled, http.StatusServiceUnavailable},
		{errors.New("other"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			assert.Equal(t, tt.want, secretscan.Status(tt.err))
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ks := &secretscan.KeySet{}
	rep := &recorder{}
	tests := []struct {
		name string
		cfg  secretscan.Config
		is   error
	}{
		{"empty", secretscan.Config{}, secretscan.ErrInvalidConfig},
		{"no keys", secretscan.Config{Reporter: rep, Resolve: resolveOurs}, secretscan.ErrInvalidConfig},
		{"no reporter", secretscan.Config{Keys: ks, Resolve: resolveOurs}, secretscan.ErrInvalidConfig},
		{"no resolve", secretscan.Config{Keys: ks, Reporter: rep}, secretscan.ErrInvalidConfig},
		{"kind with space", secretscan.Config{Keys: ks, Reporter: rep, Resolve: resolveOurs, Kind: "leaked key"}, incident.ErrInvalidSignal},
		{"bad severity", secretscan.Config{Keys: ks, Reporter: rep, Resolve: resolveOurs, Severity: 42}, incident.ErrUnknownSeverity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := secretscan.New(tt.cfg)
			assert.Nil(t, h)
			assert.ErrorIs(t, err, secretscan.ErrInvalidConfig)
			assert.ErrorIs(t, err, tt.is)
		})
	}
	h, err := secretscan.New(secretscan.Config{Keys: ks, Reporter: rep, Resolve: resolveOurs})
	require.NoError(t, err)
	assert.NotNil(t, h)
}
