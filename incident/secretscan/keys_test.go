package secretscan_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident/secretscan"
)

// countingSource serves keys() and counts its calls.
type countingSource struct {
	calls atomic.Int32
	mu    sync.Mutex
	keys  map[string]string
	err   error
}

func (s *countingSource) Keys(context.Context) (map[string]string, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *countingSource) set(keys map[string]string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.err = keys, err
}

func TestKeySetVerify(t *testing.T) {
	k, other := newKey(t), newKey(t)
	body := []byte(`[{"token":"x","type":"t"}]`)
	ks := &secretscan.KeySet{Source: secretscan.StaticKeys(map[string]string{"k1": pemOf(t, k)})}
	ctx := context.Background()

	tests := []struct {
		name     string
		id, sig  string
		body     []byte
		wantErr  error
		wantNone bool
	}{
		{name: "valid", id: "k1", sig: sign(t, k, body), body: body},
		{name: "tampered", id: "k1", sig: sign(t, k, body), body: append([]byte(" "), body...), wantErr: secretscan.ErrBadSignature},
		{name: "other key", id: "k1", sig: sign(t, other, body), body: body, wantErr: secretscan.ErrBadSignature},
		{name: "not base64", id: "k1", sig: "%%%", body: body, wantErr: secretscan.ErrBadSignature},
		{name: "not ASN.1", id: "k1", sig: "AAAA", body: body, wantErr: secretscan.ErrBadSignature},
		{name: "unknown key", id: "k2", sig: sign(t, k, body), body: body, wantErr: secretscan.ErrUnknownKey},
		{name: "huge key id", id: string(make([]byte, 1000)), sig: sign(t, k, body), body: body, wantErr: secretscan.ErrUnknownKey},
		{name: "no key id", id: "", sig: sign(t, k, body), body: body, wantErr: secretscan.ErrUnsigned},
		{name: "no signature", id: "k1", sig: "", body: body, wantErr: secretscan.ErrUnsigned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ks.Verify(ctx, tt.id, tt.sig, tt.body)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
	assert.Equal(t, []string{"k1"}, ks.IDs())
}

func TestKeySetZeroValueKnowsNoKey(t *testing.T) {
	var ks secretscan.KeySet
	k := newKey(t)
	err := ks.Verify(context.Background(), "k1", sign(t, k, []byte("[]")), []byte("[]"))
	require.ErrorIs(t, err, secretscan.ErrUnknownKey)
	assert.Empty(t, ks.IDs())
}

func TestUnknownKeyRefreshesOnceThenRejects(t *testing.T) {
	f := newFixture(t, nil)
	body := batch(t, match{Token: tokenA, Type: "t"})

	rec := f.do(signed(t, f.key, "k-new", body))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, int32(1), f.refreshes.Load(), "one refresh for the unknown identifier")

	// Within MinRefreshInterval another unknown identifier does not refresh
	// again: forged identifiers cannot hammer the key endpoint.
	rec = f.do(signed(t, f.key, "k-newer", body))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, int32(1), f.refreshes.Load())

	// A known key needs no refresh.
	rec = f.post(body)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, int32(1), f.refreshes.Load())
	assert.Len(t, f.rep.signals(), 1)
}

func TestUnknownKeyThatTheRefreshProvidesIsAccepted(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	src := &countingSource{keys: map[string]string{"k1": pemOf(t, k1)}}
	rep := &recorder{}
	h, err := secretscan.New(secretscan.Config{
		Keys:     &secretscan.KeySet{Source: src, MinRefreshInterval: -1},
		Reporter: rep,
		Resolve:  resolveOurs,
		Logger:   quiet,
	})
	require.NoError(t, err)
	body := batch(t, match{Token: tokenA, Type: "t"})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed(t, k1, "k1", body))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, int32(1), src.calls.Load(), "the first request loads the keys")

	// The platform rotates to k2.
	src.set(map[string]string{"k1": pemOf(t, k1), "k2": pemOf(t, k2)}, nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signed(t, k2, "k2", body))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, int32(2), src.calls.Load())
	assert.Len(t, rep.signals(), 2)
}

func TestBurstWithUnknownKeyRefreshesOnce(t *testing.T) {
	for _, provided := range []bool{false, true} {
		name := map[bool]string{false: "still unknown", true: "provided by the refresh"}[provided]
		t.Run(name, func(t *testing.T) {
			k := newKey(t)
			keys := map[string]string{"k-old": pemOf(t, newKey(t))}
			want := http.StatusUnauthorized
			if provided {
				keys["k-burst"] = pemOf(t, k)
				want = http.StatusOK
			}
			release := make(chan struct{})
			var calls atomic.Int32
			src := secretscan.KeySourceFunc(func(ctx context.Context) (map[string]string, error) {
				calls.Add(1)
				<-release
				return keys, nil
			})
			h, err := secretscan.New(secretscan.Config{
				Keys: &secretscan.KeySet{Source: src}, Reporter: &recorder{}, Resolve: resolveOurs, Logger: quiet,
			})
			require.NoError(t, err)
			body := batch(t, match{Token: tokenA, Type: "t"})

			const n = 20
			codes := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				req := signed(t, k, "k-burst", body)
				wg.Go(func() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					codes[i] = rec.Code
				})
			}
			close(release)
			wg.Wait()
			assert.Equal(t, int32(1), calls.Load(), "exactly one refresh")
			for i, c := range codes {
				assert.Equal(t, want, c, "request %d", i)
			}
		})
	}
}

// TestMissWhoseAskerGaveUpStartsTheInterval: a refresh made for an unknown
// identifier that leaves it unknown starts the refresh interval as the
// load ends, even when the request that asked for it gave up waiting (and
// so never came back to say it missed): the next request naming that
// identifier does not refresh again. (Before, a request made between the
// load's end and the asker's report refreshed again; a burst of one
// forged identifier could cost two calls to the source.)
func TestMissWhoseAskerGaveUpStartsTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newKey(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		src := secretscan.KeySourceFunc(func(context.Context) (map[string]string, error) {
			if calls.Add(1) == 1 {
				close(entered)
				<-release
			}
			return map[string]string{"k-old": pemOf(t, newKey(t))}, nil
		})
		ks := &secretscan.KeySet{Source: src}
		body := []byte("[]")

		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error, 1)
		go func() { gaveUp <- ks.Verify(ctx, "k-forged", sign(t, k, body), body) }()
		<-entered
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)
		close(release)
		synctest.Wait() // the refresh it asked for ends
		require.Equal(t, []string{"k-old"}, ks.IDs())

		err := ks.Verify(t.Context(), "k-forged", sign(t, k, body), body)
		require.ErrorIs(t, err, secretscan.ErrUnknownKey)
		assert.Equal(t, int32(1), calls.Load(), "the identifier is still unknown within the interval: no second refresh")
	})
}

func TestKeySourceFailure(t *testing.T) {
	k := newKey(t)
	src := &countingSource{err: errors.New("api.github.com: 502")}
	ks := &secretscan.KeySet{Source: src, MinRefreshInterval: -1}
	ctx := context.Background()
	body := []byte("[]")

	err := ks.Verify(ctx, "k1", sign(t, k, body), body)
	require.ErrorIs(t, err, secretscan.ErrKeySource, "unknown key and the source is down: try later")
	assert.Equal(t, 503, secretscan.Status(err))

	src.set(map[string]string{"k1": pemOf(t, k)}, nil)
	require.NoError(t, ks.Verify(ctx, "k1", sign(t, k, body), body))

	// A failing refresh keeps the keys held.
	src.set(nil, errors.New("down again"))
	require.ErrorIs(t, ks.Refresh(ctx), secretscan.ErrKeySource)
	require.NoError(t, ks.Verify(ctx, "k1", sign(t, k, body), body))
	assert.Equal(t, []string{"k1"}, ks.IDs())
}

func TestKeySourceFailureIsRememberedWithinInterval(t *testing.T) {
	k := newKey(t)
	src := &countingSource{err: errors.New("down")}
	ks := &secretscan.KeySet{Source: src}
	body := []byte("[]")
	for range 3 {
		err := ks.Verify(context.Background(), "k1", sign(t, k, body), body)
		require.ErrorIs(t, err, secretscan.ErrKeySource)
	}
	assert.Equal(t, int32(1), src.calls.Load())
}

func TestKeySourcePanicIsAnError(t *testing.T) {
	ks := &secretscan.KeySet{Source: secretscan.KeySourceFunc(func(context.Context) (map[string]string, error) {
		panic("boom")
	})}
	err := ks.Refresh(context.Background())
	require.ErrorIs(t, err, secretscan.ErrKeySource)
}

func TestRefreshWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	ks := &secretscan.KeySet{Source: secretscan.KeySourceFunc(func(context.Context) (map[string]string, error) {
		close(started)
		<-release
		return nil, nil
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ks.Refresh(ctx) }()
	<-started
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestKeySetSkipsUnusableKeys(t *testing.T) {
	good := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	ks := &secretscan.KeySet{Source: secretscan.StaticKeys(map[string]string{
		"good":    pemOf(t, good),
		"p384":    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"garbage": "not a pem",
		"cert":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	})}
	ctx := context.Background()
	err = ks.Refresh(ctx)
	require.ErrorIs(t, err, secretscan.ErrBadKey)
	assert.Equal(t, []string{"good"}, ks.IDs())

	body := []byte("[]")
	require.NoError(t, ks.Verify(ctx, "good", sign(t, good, body), body))
	err = ks.Verify(ctx, "p384", sign(t, good, body), body)
	require.ErrorIs(t, err, secretscan.ErrUnknownKey)
	require.ErrorIs(t, err, secretscan.ErrBadKey)
	assert.Equal(t, `secretscan: unknown public key identifier "p384": the source lists it, but it is unusable: curve P-384, not P-256`,
		err.Error(), "the package and the key are named once")
	assert.Equal(t, 1, strings.Count(ks.Refresh(ctx).Error(), `secretscan: unusable public key "garbage"`))
}

// The source's error is named once, under ErrKeySource: no second
// "secretscan:" inside.
func TestKeySourceErrorSaysItOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ks := &secretscan.KeySet{Source: secretscan.URLKeys(srv.Client(), srv.URL+"/keys", nil)}
	err := ks.Refresh(context.Background())
	require.ErrorIs(t, err, secretscan.ErrKeySource)
	assert.Equal(t, "secretscan: public keys unavailable: GET "+srv.URL+"/keys: 503 Service Unavailable", err.Error())
}

func TestParseKeys(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	p1, p2 := pemOf(t, k1), pemOf(t, k2)
	doc := `{"public_keys":[` +
		`{"key_identifier":"old","key":` + quote(p1) + `,"is_current":false},` +
		`{"key_identifier":"new","key":` + quote(p2) + `,"is_current":true}]}`
	keys, err := secretscan.ParseKeys([]byte(doc))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"old": p1, "new": p2}, keys, "non-current keys are kept")

	for name, bad := range map[string]string{
		"not JSON":         `public_keys`,
		"array":            `[]`,
		"no public_keys":   `{"keys":[]}`,
		"no identifier":    `{"public_keys":[{"key":` + quote(p1) + `}]}`,
		"no key":           `{"public_keys":[{"key_identifier":"a"}]}`,
		"conflicting keys": `{"public_keys":[{"key_identifier":"a","key":` + quote(p1) + `},{"key_identifier":"a","key":` + quote(p2) + `}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := secretscan.ParseKeys([]byte(bad))
			assert.ErrorIs(t, err, secretscan.ErrBadKey)
		})
	}
	empty, err := secretscan.ParseKeys([]byte(`{"public_keys":[]}`))
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestURLKeys(t *testing.T) {
	k := newKey(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gh_test" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if c := int(status.Load()); c != http.StatusOK {
			http.Error(w, "nope", c)
			return
		}
		_, _ = w.Write([]byte(`{"public_keys":[{"key_identifier":"k1","key":` + quote(pemOf(t, k)) + `,"is_current":true}]}`))
	}))
	defer srv.Close()

	src := secretscan.URLKeys(srv.Client(), srv.URL, http.Header{"Authorization": {"Bearer gh_test"}})
	ks := &secretscan.KeySet{Source: src}
	body := []byte("[]")
	require.NoError(t, ks.Verify(context.Background(), "k1", sign(t, k, body), body))

	status.Store(http.StatusForbidden)
	_, err := src.Keys(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")

	_, err = secretscan.URLKeys(nil, srv.URL, nil).Keys(context.Background())
	assert.Contains(t, err.Error(), "401")
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Regression: the set's first load started MinRefreshInterval, so a key the
// platform added within the first minute was refused without a refresh. A
// load that finds the key asked for no longer starts the interval; one that
// leaves an identifier unknown does, as before. (synctest's clock is the
// injected one: time moves only when the test says so.)
func TestFirstLoadDoesNotStartRefreshInterval(t *testing.T) {
	for _, first := range []string{"lazy", "Refresh"} {
		t.Run(first, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k1, k2 := newKey(t), newKey(t)
				src := &countingSource{keys: map[string]string{"k1": pemOf(t, k1)}}
				ks := &secretscan.KeySet{Source: src, MinRefreshInterval: time.Minute}
				ctx := context.Background()
				body := []byte("[]")

				if first == "Refresh" {
					require.NoError(t, ks.Refresh(ctx))
				}
				require.NoError(t, ks.Verify(ctx, "k1", sign(t, k1, body), body))
				require.Equal(t, int32(1), src.calls.Load())

				time.Sleep(30 * time.Second) // the platform rotates within the first minute
				src.set(map[string]string{"k1": pemOf(t, k1), "k2": pemOf(t, k2)}, nil)
				require.NoError(t, ks.Verify(ctx, "k2", sign(t, k2, body), body), "the new key is fetched")
				assert.Equal(t, int32(2), src.calls.Load())

				// A forged identifier refreshes once and starts the interval.
				require.ErrorIs(t, ks.Verify(ctx, "k-forged", sign(t, k2, body), body), secretscan.ErrUnknownKey)
				require.ErrorIs(t, ks.Verify(ctx, "k-forged-2", sign(t, k2, body), body), secretscan.ErrUnknownKey)
				assert.Equal(t, int32(3), src.calls.Load(), "one refresh per interval for unknown identifiers")
				time.Sleep(time.Minute)
				require.ErrorIs(t, ks.Verify(ctx, "k-forged-3", sign(t, k2, body), body), secretscan.ErrUnknownKey)
				assert.Equal(t, int32(4), src.calls.Load(), "the interval has passed")
			})
		})
	}
}
