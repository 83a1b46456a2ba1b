package incident_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

func TestSecretFmtNeverShowsValue(t *testing.T) {
	s := incident.NewSecret(canary)
	sig := validSignal()
	sigPtr := &sig
	verbs := []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%-20v", "%T"}
	values := map[string]any{
		"secret":         s,
		"secret pointer": &s,
		"signal":         sig,
		"signal pointer": sigPtr,
		"slice":          []incident.Secret{s},
		"map":            map[string]incident.Secret{"k": s},
	}
	for name, v := range values {
		for _, verb := range verbs {
			t.Run(name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, v)
				assert.NotContains(t, out, canary)
				assert.NotContains(t, out, "CANARY")
			})
		}
	}
	t.Run("exact renderings", func(t *testing.T) {
		assert.Equal(t, incident.Redacted, fmt.Sprintf("%v", s))
		assert.Equal(t, incident.Redacted, fmt.Sprintf("%s", s))
		assert.Equal(t, incident.Redacted, fmt.Sprintf("%+v", s))
		assert.Equal(t, incident.Redacted, s.String())
		assert.Equal(t, "incident.Secret([REDACTED])", fmt.Sprintf("%#v", s))
		assert.Equal(t, "incident.Secret([REDACTED])", s.GoString())
		assert.Contains(t, fmt.Sprintf("%+v", sig), "Credential:[REDACTED]")
		assert.Contains(t, fmt.Sprintf("%#v", sig), "Credential:incident.Secret([REDACTED])")
	})
	t.Run("fmt.Print and Sprint", func(t *testing.T) {
		assert.NotContains(t, fmt.Sprint(s, sig), canary)
		assert.NotContains(t, fmt.Sprintln(s, sig), canary)
	})
	t.Run("zero secret is empty", func(t *testing.T) {
		var z incident.Secret
		assert.Equal(t, "", z.String())
		assert.Equal(t, "", fmt.Sprintf("%v", z))
		assert.True(t, z.IsZero())
		assert.False(t, s.IsZero())
	})
}

func TestSecretJSON(t *testing.T) {
	sig := validSignal()
	b, err := json.Marshal(sig)
	require.NoError(t, err)
	assert.NotContains(t, string(b), canary)
	assert.Contains(t, string(b), `"Credential":"[REDACTED]"`)

	b, err = json.Marshal(&sig)
	require.NoError(t, err)
	assert.NotContains(t, string(b), canary)

	b, err = json.Marshal(map[string]any{"s": incident.NewSecret(canary), "p": ptr(incident.NewSecret(canary))})
	require.NoError(t, err)
	assert.JSONEq(t, `{"s":"[REDACTED]","p":"[REDACTED]"}`, string(b))

	b, err = json.Marshal(incident.Secret{})
	require.NoError(t, err)
	assert.Equal(t, `""`, string(b))

	txt, err := incident.NewSecret(canary).MarshalText()
	require.NoError(t, err)
	assert.Equal(t, incident.Redacted, string(txt))

	// As a map key (encoding.TextMarshaler) too.
	b, err = json.Marshal(map[incident.Secret]int{incident.NewSecret(canary): 1})
	require.NoError(t, err)
	assert.NotContains(t, string(b), canary)
}

func ptr[T any](v T) *T { return &v }

func TestSecretSlog(t *testing.T) {
	tests := []struct {
		name string
		attr slog.Attr
	}{
		{"signal", slog.Any("signal", validSignal())},
		{"signal pointer", slog.Any("signal", ptr(validSignal()))},
		{"secret", slog.Any("secret", incident.NewSecret(canary))},
		{"secret pointer", slog.Any("secret", ptr(incident.NewSecret(canary)))},
		{"group", slog.Group("g", slog.Any("secret", incident.NewSecret(canary)))},
	}
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	}
	for hname, newHandler := range handlers {
		for _, tt := range tests {
			t.Run(hname+" "+tt.name, func(t *testing.T) {
				var buf bytes.Buffer
				logger := slog.New(newHandler(&buf))
				logger.Info("reported", tt.attr)
				out := buf.String()
				require.NotEmpty(t, out)
				assert.Contains(t, out, "reported")
				assert.NotContains(t, out, canary)
				assert.Contains(t, out, incident.Redacted)
			})
		}
	}
	t.Run("json secret is a redacted string", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", slog.Any("secret", incident.NewSecret(canary)))
		var rec map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
		assert.Equal(t, incident.Redacted, rec["secret"])
	})
	t.Run("LogValue", func(t *testing.T) {
		v := incident.NewSecret(canary).LogValue()
		assert.Equal(t, slog.KindString, v.Kind())
		assert.Equal(t, incident.Redacted, v.String())
	})
}

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{32}$`)

func TestSecretFingerprint(t *testing.T) {
	a := incident.NewSecret(canary)
	fp := a.Fingerprint()
	assert.Regexp(t, fingerprintRE, fp)
	assert.Equal(t, fp, incident.NewSecret(canary).Fingerprint(), "stable")
	assert.NotContains(t, fp, canary)
	// sha256("sk_live_CANARY_5f3c9a1e7d2b")[:16], computed independently:
	// a change to the algorithm would orphan every stored fingerprint.
	assert.Equal(t, "sha256:"+sha256Hex(canary)[:32], fp)

	others := []string{canary + "x", "sk_live_other", strings.ToLower(canary), " " + canary, "a"}
	seen := map[string]string{fp: canary}
	for _, o := range others {
		f := incident.NewSecret(o).Fingerprint()
		assert.Regexp(t, fingerprintRE, f)
		prev, dup := seen[f]
		assert.False(t, dup, "%q and %q share a fingerprint", o, prev)
		seen[f] = o
	}
	assert.Equal(t, "", incident.Secret{}.Fingerprint())
	assert.Equal(t, "", incident.NewSecret("").Fingerprint())
}

func TestSecretReveal(t *testing.T) {
	assert.Equal(t, canary, incident.NewSecret(canary).Reveal())
	assert.Equal(t, "", incident.Secret{}.Reveal())
	sig := validSignal()
	cp := sig // a Signal is a value; the copy carries the secret
	assert.Equal(t, canary, cp.Credential.Reveal())
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
