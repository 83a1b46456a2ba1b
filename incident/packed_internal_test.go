package incident

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackJoinsAsAppendPacked: a change's entries are packed before the
// store's lock is taken (names.pack) and joined under it; the timeline they
// make unpacks to the entries written, in order, whether every name is
// known, some must be added, the name table runs out in the middle of a
// run, or the timeline has gone raw already.
func TestPackJoinsAsAppendPacked(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	entry := func(i int, typ string) Entry {
		return Entry{At: at.Add(time.Duration(i) * time.Second), Actor: "responder " + strconv.Itoa(i%3),
			Type: EntryType(typ), Event: "contain", From: StateDetected, To: StateContaining,
			Detail: "step " + strconv.Itoa(i), Hash: Hash{byte(i)}}
	}
	run := func(first, n int, typ func(int) string) Timeline {
		var tl Timeline
		for i := first; i < first+n; i++ {
			tl = append(tl, entry(i, typ(i)))
		}
		return tl
	}
	same := func(int) string { return string(EntryTransition) }
	fresh := func(i int) string { return "type " + strconv.Itoa(i) }
	tests := []struct {
		name string
		fill int // names in the table before the first run
		runs []Timeline
		raw  bool // whether the timeline ends raw
	}{
		{name: "names known", runs: []Timeline{run(0, 3, same), run(3, 4, same)}},
		{name: "names added", runs: []Timeline{run(0, 2, fresh), run(2, 3, fresh), run(5, 1, same)}},
		{name: "table runs out mid-run", fill: math.MaxUint16 - 8, runs: []Timeline{run(0, 4, same), run(4, 6, fresh), run(10, 2, same)}, raw: true},
		{name: "already raw", fill: math.MaxUint16, runs: []Timeline{run(0, 2, fresh), run(2, 2, same)}, raw: true},
		{name: "empty run", runs: []Timeline{nil, run(0, 1, same), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n names
			for i := range tt.fill {
				n.id("filler "+strconv.Itoa(i), math.MaxUint32)
			}
			var p packedTimeline
			var want Timeline
			for _, r := range tt.runs {
				p.join(n.pack(r, p.raw != nil))
				want = append(want, r...)
			}
			assert.Equal(t, tt.raw, p.raw != nil, "raw")
			require.Equal(t, len(want), p.len())
			assert.Equal(t, []Entry(want), []Entry(n.unpack(p, 0, len(want))))
			if len(want) > 1 {
				assert.Equal(t, []Entry(want[1:2]), []Entry(n.unpack(p, 1, 1)), "a page from the middle")
			}
		})
	}
}
