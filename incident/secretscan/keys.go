package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/breachkit/breach/internal/retry"
	"golang.org/x/sync/singleflight"
)

// GitHubKeysURL is where GitHub publishes the public keys that sign its
// secret scanning partner requests, as a public_keys document (see
// [ParseKeys]).
const GitHubKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// Defaults of a KeySet's zero fields.
const (
	defaultMinRefreshInterval = time.Minute
	defaultRefreshTimeout     = 10 * time.Second
)

// maxKeyIDLen bounds the key identifiers a KeySet looks up. GitHub's are 64
// hex digits; a longer one is treated as unknown without a refresh.
const maxKeyIDLen = 256

// maxKeyDocBytes bounds the key document URLKeys reads.
const maxKeyDocBytes = 1 << 20

// KeySource supplies the platform's signature verification keys.
//
// Keys returns every key the platform currently signs with, PEM-encoded
// ("-----BEGIN PUBLIC KEY-----", an ECDSA P-256 key in PKIX form), by key
// identifier. The KeySet calls it when a request names a key it does not
// hold, at most one call at a time and not more often than its
// MinRefreshInterval, with a context that ends after its RefreshTimeout.
// Keys must honour ctx; it need not be safe for concurrent use by one
// KeySet, and the returned map is not kept.
type KeySource interface {
	Keys(ctx context.Context) (map[string]string, error)
}

// KeySourceFunc adapts a function to a KeySource.
type KeySourceFunc func(ctx context.Context) (map[string]string, error)

// Keys calls f(ctx).
func (f KeySourceFunc) Keys(ctx context.Context) (map[string]string, error) { return f(ctx) }

// StaticKeys returns a KeySource that always supplies the given keys (PEM by
// key identifier). It copies the map.
func StaticKeys(pems map[string]string) KeySource {
	c := maps.Clone(pems)
	return KeySourceFunc(func(context.Context) (map[string]string, error) { return maps.Clone(c), nil })
}

// ParseKeys reads a public_keys document, the format of [GitHubKeysURL]:
//
//	{"public_keys":[{"key_identifier":"…","key":"-----BEGIN PUBLIC KEY-----…","is_current":true}]}
//
// and returns the PEM keys by identifier. Keys that are not current
// (is_current false) are kept: the platform's own verification samples
// accept any listed key, and a request signed just before a rotation names
// the old one. The keys themselves are checked when a KeySet loads them. An
// error matches ErrBadKey.
func ParseKeys(data []byte) (map[string]string, error) {
	var doc struct {
		PublicKeys *[]struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		} `json:"public_keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: not a public_keys document: %v", ErrBadKey, err)
	}
	if doc.PublicKeys == nil {
		return nil, fmt.Errorf("%w: not a public_keys document: no public_keys array", ErrBadKey)
	}
	keys := make(map[string]string, len(*doc.PublicKeys))
	for i, k := range *doc.PublicKeys {
		switch {
		case k.KeyIdentifier == "":
			return nil, fmt.Errorf("%w: public_keys[%d]: no key_identifier", ErrBadKey, i)
		case k.Key == "":
			return nil, fmt.Errorf("%w: public_keys[%d]: no key", ErrBadKey, i)
		}
		if prev, dup := keys[k.KeyIdentifier]; dup && prev != k.Key {
			return nil, fmt.Errorf("%w: public_keys[%d]: key_identifier %s listed twice with different keys", ErrBadKey, i, showID(k.KeyIdentifier))
		}
		keys[k.KeyIdentifier] = k.Key
	}
	return keys, nil
}

// URLKeys returns a KeySource that GETs a public_keys document from url
// (usually GitHubKeysURL) with client (http.DefaultClient when nil) and
// parses it with ParseKeys. header is added to each request; GitHub
// suggests an "Authorization: Bearer <token>" with a token that has no
// scopes, to avoid its rate limit on unauthenticated calls. Any answer but
// 200 is an error.
func URLKeys(client *http.Client, url string, header http.Header) KeySource {
	if client == nil {
		client = http.DefaultClient
	}
	header = header.Clone()
	return KeySourceFunc(func(ctx context.Context) (map[string]string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxKeyDocBytes))
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyDocBytes+1))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if len(data) > maxKeyDocBytes {
			return nil, fmt.Errorf("%w: GET %s: document longer than %d bytes", ErrBadKey, url, maxKeyDocBytes)
		}
		return ParseKeys(data)
	})
}

// KeySet holds the platform's public keys by identifier and verifies
// request signatures with them. It loads its keys from Source lazily: the
// first request, and any request naming a key the set does not hold,
// triggers a refresh. Concurrent requests share one refresh
// (singleflight), and refreshes triggered by unknown identifiers are spaced
// by MinRefreshInterval, so a burst of forged identifiers costs at most one
// call to Source per interval.
//
// The interval starts with a refresh that left the identifier it was made
// for unknown (a forged identifier, or one the platform does not list yet),
// or with a refresh that failed (so a source that is down is not hammered).
// A load that finds the key asked for, such as the set's first, lazy load,
// does not start it: a key the platform adds a moment after that load is
// fetched when a request first names it.
//
// The zero value has no source and therefore no keys: every signature is
// rejected with ErrUnknownKey. Set the fields before first use and do not
// change them afterwards; the methods are safe for concurrent use.
type KeySet struct {
	// Source supplies the keys. A nil Source supplies none.
	Source KeySource
	// MinRefreshInterval is the least time between two refreshes triggered
	// by an unknown key identifier (see KeySet for when it starts). Zero
	// means one minute; a negative value refreshes on every
	// unknown identifier (concurrent ones still share one refresh). Refresh
	// is not limited by it and starts it only when it fails, or when it
	// leaves unknown an identifier a request asked for since the last load.
	MinRefreshInterval time.Duration
	// RefreshTimeout bounds one call to Source. Zero means
	// 10 s. The call runs on a context detached from the
	// request that triggered it (it keeps its values), so a caller that
	// gives up does not abort a refresh others are waiting for.
	RefreshTimeout time.Duration

	group singleflight.Group

	mu      sync.RWMutex
	keys    map[string]*ecdsa.PublicKey
	bad     map[string]error // why each key of the last load could not be used
	loadAt  time.Time        // when the last load finished
	loads   uint64           // loads that finished: a miss made before one needs no refresh of its own
	spaced  bool             // the refresh interval runs, from last
	last    time.Time        // when the refresh that started the interval finished
	lastErr error            // the source's error at that refresh, matching ErrKeySource
	asked   map[string]bool  // identifiers that missed and asked for the next load (see refresh)
}

// Verify checks that signature (the base64 of an ASN.1 DER ECDSA signature,
// as in the Github-Public-Key-Signature header) signs the SHA-256 of body
// with the key named keyID (the Github-Public-Key-Identifier header). body
// must be the raw request body, byte for byte.
//
// It returns nil when the signature verifies, or an error matching
// ErrUnsigned (a header is empty), ErrBadSignature, ErrUnknownKey,
// ErrKeySource (the key is unknown and the refresh failed), or ctx's error
// when ctx ends while waiting for a refresh.
func (ks *KeySet) Verify(ctx context.Context, keyID, signature string, body []byte) error {
	if keyID == "" || signature == "" {
		return ErrUnsigned
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return fmt.Errorf("%w: not base64", ErrBadSignature)
	}
	key, err := ks.key(ctx, keyID)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, digest[:], sig) {
		return fmt.Errorf("%w with key %s", ErrBadSignature, showID(keyID))
	}
	return nil
}

// Refresh loads the keys from Source now, whatever MinRefreshInterval says
// (a refresh already running is shared). A host may call it at start-up to
// fail early, or on a timer. When Source fails the set keeps its keys and
// the error matches ErrKeySource. Otherwise the set is replaced by every
// key that parses; keys that do not are left out and reported in an error
// matching ErrBadKey.
func (ks *KeySet) Refresh(ctx context.Context) error { return ks.refresh(ctx, true, 0, "") }

// IDs returns the identifiers of the keys the set holds, sorted.
func (ks *KeySet) IDs() []string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	ids := make([]string, 0, len(ks.keys))
	for id := range ks.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (ks *KeySet) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	if len(id) > maxKeyIDLen {
		return nil, fmt.Errorf("%w: identifier longer than %d bytes", ErrUnknownKey, maxKeyIDLen)
	}
	k, seen := ks.lookup(id)
	if k != nil {
		return k, nil
	}
	err := ks.refresh(ctx, false, seen, id)
	if k, _ := ks.lookup(id); k != nil {
		return k, nil
	}
	if err != nil && !errors.Is(err, ErrBadKey) {
		return nil, err // the source failed, or ctx ended
	}
	ks.missed()
	ks.mu.RLock()
	bad := ks.bad[id]
	ks.mu.RUnlock()
	if bad != nil {
		return nil, &unusableKeyError{id: id, err: bad}
	}
	return nil, fmt.Errorf("%w %s", ErrUnknownKey, showID(id))
}

// lookup returns the key id, or nil, and the count of loads it was looked
// up after.
func (ks *KeySet) lookup(id string) (*ecdsa.PublicKey, uint64) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[id], ks.loads
}

// fresh reports whether an unknown identifier should not trigger a refresh
// yet, and if so the source error of the last refresh.
func (ks *KeySet) fresh() (bool, error) {
	interval := ks.interval()
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if !ks.spaced || interval < 0 || time.Since(ks.last) >= interval {
		return false, nil
	}
	return true, ks.lastErr
}

// missed starts the refresh interval, from the last load, after a lookup
// that the load did not answer, unless the interval runs already.
func (ks *KeySet) missed() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.missedLocked()
}

func (ks *KeySet) missedLocked() {
	if interval := ks.interval(); ks.spaced && interval >= 0 && time.Since(ks.last) < interval {
		return
	}
	ks.spaced, ks.last = true, ks.loadAt
}

func (ks *KeySet) interval() time.Duration {
	if ks.MinRefreshInterval == 0 {
		return defaultMinRefreshInterval
	}
	return ks.MinRefreshInterval
}

// refresh loads the keys (force), or refreshes for a lookup of id that
// missed after seen loads, unless the refresh interval runs or a load has
// finished since. Such a lookup asks for the next load: a load that leaves
// an identifier asked for unknown starts the interval as it ends (in
// load), so that no lookup made in between refreshes again, even when the
// one that asked gave up waiting.
func (ks *KeySet) refresh(ctx context.Context, force bool, seen uint64, id string) error {
	if !force {
		if ok, err := ks.fresh(); ok {
			return err
		}
		ks.mu.Lock()
		if ks.asked == nil {
			ks.asked = map[string]bool{}
		}
		ks.asked[id] = true
		ks.mu.Unlock()
	}
	detached := context.WithoutCancel(ctx)
	ch := ks.group.DoChan("refresh", func() (any, error) {
		if !force {
			// Another caller may have refreshed between our check and now:
			// a load that finished after the miss answers it.
			if ok, err := ks.fresh(); ok {
				return nil, err
			}
			ks.mu.RLock()
			since := ks.loads != seen
			ks.mu.RUnlock()
			if since {
				return nil, nil
			}
		}
		return nil, ks.load(detached)
	})
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case r := <-ch:
		return r.Err
	}
}

// load loads the keys from Source. A failed load starts the refresh
// interval; a successful one leaves that to key (see missed).
func (ks *KeySet) load(ctx context.Context) error {
	timeout := ks.RefreshTimeout
	if timeout == 0 {
		timeout = defaultRefreshTimeout
	}
	var pems map[string]string
	err := retry.Call(ctx, timeout, func(ctx context.Context) error {
		if ks.Source == nil {
			return nil
		}
		var err error
		pems, err = ks.Source.Keys(ctx)
		return err
	})
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrKeySource, err)
		ks.mu.Lock()
		ks.spaced, ks.last, ks.lastErr, ks.asked = true, time.Now(), err, nil
		ks.mu.Unlock()
		return err
	}
	keys := make(map[string]*ecdsa.PublicKey, len(pems))
	bad := make(map[string]error)
	var errs []error
	ids := make([]string, 0, len(pems))
	for id := range pems {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		k, err := parseKey(pems[id])
		if err != nil {
			bad[id] = err
			errs = append(errs, &badKeyError{id: id, err: err})
			continue
		}
		keys[id] = k
	}
	ks.mu.Lock()
	ks.keys, ks.bad, ks.loadAt, ks.lastErr = keys, bad, time.Now(), nil
	ks.loads++
	// An identifier asked for that this load leaves unknown starts the
	// interval now, as the load becomes visible, not when its lookup
	// comes back to say so (if it does: it may have given up): a lookup
	// made in between would see a load newer than its miss and no
	// interval, and refresh again.
	for id := range ks.asked {
		if keys[id] == nil {
			ks.missedLocked()
			break
		}
	}
	ks.asked = nil
	ks.mu.Unlock()
	return errors.Join(errs...)
}

// badKeyError is a key of the source that could not be used, as Refresh
// reports it. It matches ErrBadKey.
type badKeyError struct {
	id  string
	err error
}

func (e *badKeyError) Error() string        { return fmt.Sprintf("%v %s: %v", ErrBadKey, showID(e.id), e.err) }
func (e *badKeyError) Is(target error) bool { return target == ErrBadKey }
func (e *badKeyError) Unwrap() error        { return e.err }

// unusableKeyError is a request naming a key that the source lists but
// that could not be used. It matches ErrUnknownKey and ErrBadKey.
type unusableKeyError struct {
	id  string
	err error // why the key is unusable
}

func (e *unusableKeyError) Error() string {
	return fmt.Sprintf("%v %s: the source lists it, but it is unusable: %v", ErrUnknownKey, showID(e.id), e.err)
}
func (e *unusableKeyError) Is(target error) bool {
	return target == ErrUnknownKey || target == ErrBadKey
}
func (e *unusableKeyError) Unwrap() error { return e.err }

// parseKey decodes a PEM "PUBLIC KEY" block holding an ECDSA P-256 key.
func parseKey(s string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, not PUBLIC KEY", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%T, not an ECDSA key", pub)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("curve %s, not P-256", k.Curve.Params().Name)
	}
	return k, nil
}

// showID quotes a key identifier for a message, cut to a readable length.
// Identifiers come from the request and are not secret.
func showID(id string) string {
	const max = 80
	if len(id) > max {
		return strconv.Quote(id[:max]) + "…"
	}
	return strconv.Quote(id)
}
