package incident_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
)

func sampleTimeline(t *testing.T, n int) incident.Timeline {
	t.Helper()
	var tl incident.Timeline
	for i := range n {
		e := tl.Append(incident.Entry{
			At:     t0.Add(time.Duration(i) * time.Minute),
			Actor:  incident.ActorSystem,
			Type:   incident.EntryTransition,
			Event:  incident.EventInvestigate,
			From:   incident.StateDetected,
			To:     incident.StateInvestigating,
			Detail: "step " + string(rune('a'+i)),
		})
		require.Equal(t, tl[i], e, "Append returns the entry as stored")
	}
	return tl
}

func TestTimelineAppendChains(t *testing.T) {
	var tl incident.Timeline
	assert.Equal(t, incident.Hash{}, tl.Head())
	assert.NoError(t, tl.Verify())

	e1 := tl.Append(incident.Entry{At: t0, Actor: "system", Type: incident.EntrySignal, Detail: "x"})
	assert.NotEqual(t, incident.Hash{}, e1.Hash)
	assert.Equal(t, e1.Hash, tl.Head())

	// The same content at the next position, after e1, hashes differently.
	e2 := tl.Append(incident.Entry{At: t0, Actor: "system", Type: incident.EntrySignal, Detail: "x"})
	assert.NotEqual(t, e1.Hash, e2.Hash)
	assert.Equal(t, e2.Hash, tl.Head())
	require.Len(t, tl, 2)
	assert.NoError(t, tl.Verify())

	// Append ignores a Hash the caller set.
	var other incident.Timeline
	forged := other.Append(incident.Entry{At: t0, Actor: "system", Type: incident.EntrySignal, Detail: "x", Hash: incident.Hash{1}})
	assert.Equal(t, e1.Hash, forged.Hash, "deterministic, independent of the incoming Hash")
}

func TestTimelineVerifyOK(t *testing.T) {
	tl := sampleTimeline(t, 6)
	assert.NoError(t, tl.Verify())
	assert.NoError(t, tl.VerifyHead(tl.Head()))
}

func TestTimelineTamper(t *testing.T) {
	const n = 6
	tests := []struct {
		name   string
		tamper func(incident.Timeline) incident.Timeline
		index  int
	}{
		{"edit Detail of first", func(tl incident.Timeline) incident.Timeline { tl[0].Detail = "forged"; return tl }, 0},
		{"edit Detail of middle", func(tl incident.Timeline) incident.Timeline { tl[3].Detail = "forged"; return tl }, 3},
		{"edit Detail of last", func(tl incident.Timeline) incident.Timeline { tl[n-1].Detail += "!"; return tl }, n - 1},
		{"edit Actor", func(tl incident.Timeline) incident.Timeline { tl[2].Actor = "mallory"; return tl }, 2},
		{"edit Type", func(tl incident.Timeline) incident.Timeline { tl[2].Type = incident.EntryNote; return tl }, 2},
		{"edit Event", func(tl incident.Timeline) incident.Timeline { tl[2].Event = incident.EventDismiss; return tl }, 2},
		{"edit From", func(tl incident.Timeline) incident.Timeline { tl[2].From = incident.StateClosed; return tl }, 2},
		{"edit To", func(tl incident.Timeline) incident.Timeline { tl[2].To = incident.StateClosed; return tl }, 2},
		{"edit At", func(tl incident.Timeline) incident.Timeline { tl[4].At = tl[4].At.Add(time.Microsecond); return tl }, 4},
		{"edit Hash", func(tl incident.Timeline) incident.Timeline { tl[1].Hash[0] ^= 1; return tl }, 1},
		{"remove first", func(tl incident.Timeline) incident.Timeline { return slices.Delete(tl, 0, 1) }, 0},
		{"remove middle", func(tl incident.Timeline) incident.Timeline { return slices.Delete(tl, 2, 3) }, 2},
		{"swap adjacent", func(tl incident.Timeline) incident.Timeline { tl[1], tl[2] = tl[2], tl[1]; return tl }, 1},
		{"swap apart", func(tl incident.Timeline) incident.Timeline { tl[2], tl[5] = tl[5], tl[2]; return tl }, 2},
		{"insert", func(tl incident.Timeline) incident.Timeline {
			return slices.Insert(tl, 3, incident.Entry{At: t0, Actor: "mallory", Type: incident.EntryNote})
		}, 3},
		{"duplicate entry", func(tl incident.Timeline) incident.Timeline {
			return slices.Insert(tl, 3, tl[2])
		}, 3},
		{"edit and rehash one entry", func(tl incident.Timeline) incident.Timeline {
			// Rewriting entry 2 with a valid-looking chain from its
			// predecessor still breaks entry 3.
			var prefix incident.Timeline = slices.Clone(tl[:2])
			e := tl[2]
			e.Detail = "forged"
			prefix.Append(e)
			return append(prefix, tl[3:]...)
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := sampleTimeline(t, n)
			require.NoError(t, tl.Verify())
			anchor := tl.Head()
			bad := tt.tamper(tl)
			err := bad.Verify()
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrTampered)
			var te *incident.TamperError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tt.index, te.Index)
			assert.NotEmpty(t, te.Reason)

			herr := bad.VerifyHead(anchor)
			var hte *incident.TamperError
			require.ErrorAs(t, herr, &hte)
			assert.Equal(t, tt.index, hte.Index, "VerifyHead reports the first broken entry")
		})
	}
}

func TestTimelineVerifyHead(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(incident.Timeline) incident.Timeline
		index  int
	}{
		{"removed last entry", func(tl incident.Timeline) incident.Timeline { return tl[:len(tl)-1] }, 4},
		{"removed last three", func(tl incident.Timeline) incident.Timeline { return tl[:2] }, 2},
		{"removed everything", func(tl incident.Timeline) incident.Timeline { return nil }, 0},
		{"appended an entry", func(tl incident.Timeline) incident.Timeline {
			tl.Append(incident.Entry{Actor: "mallory", Type: incident.EntryNote})
			return tl
		}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := sampleTimeline(t, 5)
			anchor := tl.Head()
			bad := tt.tamper(slices.Clone(tl))
			require.NoError(t, bad.Verify(), "the chain itself is intact; only the anchor finds it")
			err := bad.VerifyHead(anchor)
			require.ErrorIs(t, err, incident.ErrTampered)
			var te *incident.TamperError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tt.index, te.Index)
			assert.Contains(t, te.Reason, "head")
		})
	}
	t.Run("empty with zero anchor", func(t *testing.T) {
		var tl incident.Timeline
		assert.NoError(t, tl.VerifyHead(incident.Hash{}))
	})
}

func TestHashText(t *testing.T) {
	tl := sampleTimeline(t, 1)
	h := tl.Head()

	txt, err := h.MarshalText()
	require.NoError(t, err)
	assert.Len(t, txt, 64)
	assert.Equal(t, h.String(), string(txt))
	assert.Equal(t, strings.ToLower(string(txt)), string(txt))

	var back incident.Hash
	require.NoError(t, back.UnmarshalText(txt))
	assert.Equal(t, h, back)

	var upper incident.Hash
	require.NoError(t, upper.UnmarshalText([]byte(strings.ToUpper(string(txt)))))
	assert.Equal(t, h, upper)

	assert.Equal(t, strings.Repeat("0", 64), incident.Hash{}.String())
}

func TestHashUnmarshalTextErrors(t *testing.T) {
	good := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"too short", good[:62]},
		{"odd length", good[:63]},
		{"too long", good + "00"},
		{"not hex", "zz" + good[2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h incident.Hash
			assert.Error(t, h.UnmarshalText([]byte(tt.in)))
		})
	}
	var h incident.Hash
	err := h.UnmarshalText([]byte("abcd"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "64 hex digits")
}

func TestTimelineJSONRoundTrip(t *testing.T) {
	tl := sampleTimeline(t, 4)
	b, err := json.Marshal(tl)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"hash":"`+tl[0].Hash.String()+`"`)

	var back incident.Timeline
	require.NoError(t, json.Unmarshal(b, &back))
	require.Len(t, back, 4)
	for i := range tl {
		assert.Equal(t, tl[i].Hash, back[i].Hash)
		assert.True(t, tl[i].At.Equal(back[i].At))
	}
	assert.NoError(t, back.Verify(), "a decoded timeline still verifies")
	assert.NoError(t, back.VerifyHead(tl.Head()))

	// A timeline with a local time zone verifies after a UTC round trip.
	var local incident.Timeline
	local.Append(incident.Entry{At: t0.In(time.FixedZone("X", 3600)), Actor: "a", Type: incident.EntryNote})
	b, err = json.Marshal(local)
	require.NoError(t, err)
	var lback incident.Timeline
	require.NoError(t, json.Unmarshal(b, &lback))
	assert.NoError(t, lback.Verify())

	var bad incident.Timeline
	err = json.Unmarshal([]byte(`[{"Hash":"abcd"}]`), &bad)
	assert.Error(t, err)
}

func TestTamperErrorMessage(t *testing.T) {
	err := &incident.TamperError{Index: 3, Reason: "broken"}
	assert.Equal(t, "incident: timeline tampered at entry 3: broken", err.Error())
	assert.ErrorIs(t, err, incident.ErrTampered)
}

// entryRef restates the entry digest independently: SHA-256 over the
// previous hash, the position and At in nanoseconds as big-endian uint64,
// then each text field prefixed with its length. Stored timelines must keep
// verifying after an upgrade, so the format is pinned.
func entryRef(prev incident.Hash, index int, e incident.Entry) incident.Hash {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(index)))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(e.At.UnixMicro())))
	for _, f := range []string{e.Actor, string(e.Type), string(e.Event), string(e.From), string(e.To), e.Detail} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	var out incident.Hash
	h.Sum(out[:0])
	return out
}

func TestTimelineHashFormatPinned(t *testing.T) {
	tl := sampleTimeline(t, 4)
	var prev incident.Hash
	for i, e := range tl {
		assert.Equal(t, entryRef(prev, i, e), e.Hash, "entry %d", i)
		prev = e.Hash
	}
	// Field boundaries matter: moving bytes between fields changes the hash.
	var a, b incident.Timeline
	a.Append(incident.Entry{At: t0, Actor: "ab", Type: "c"})
	b.Append(incident.Entry{At: t0, Actor: "a", Type: "bc"})
	assert.NotEqual(t, a.Head(), b.Head())
}

func TestTimelineVerifiesAfterMicrosecondTruncation(t *testing.T) {
	var tl incident.Timeline
	tl.Append(incident.Entry{At: t0.Add(1234567 * time.Nanosecond), Actor: "system", Type: incident.EntryNote, Detail: "x"})
	stored := slices.Clone(tl)
	stored[0].At = stored[0].At.Truncate(time.Microsecond) // what a database keeps
	assert.NoError(t, stored.Verify())
	stored[0].At = stored[0].At.Add(time.Microsecond)
	assert.ErrorIs(t, stored.Verify(), incident.ErrTampered)
}
