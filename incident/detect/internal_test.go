package detect

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vectors of the SipHash paper (appendix A): key 00..0f, messages
// 00, 00 01, ... of each length from 0.
func TestSipHashVectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])
	want := map[int]uint64{0: 0x726fdb47dd0e0e31, 1: 0x74f839c593dc67fd, 7: 0xab0200f58b01d137,
		8: 0x93f5f5799a932462, 15: 0xa129ca6149be45e5, 63: 0x958a324ceb064572}
	for n, w := range want {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		for split := 0; split <= n; split++ { // written in two pieces, anywhere
			s := newSip(k0, k1)
			s.write(string(msg[:split]))
			s.write(string(msg[split:]))
			assert.Equal(t, w, s.sum(), "length %d split at %d", n, split)
		}
	}
	assert.NotEqual(t, pairHash(1, 2, "ab", "c"), pairHash(1, 2, "a", "bc"), "the key's length separates it from the value")
	assert.NotEqual(t, pairHash(1, 2, "a", "b"), pairHash(1, 3, "a", "b"))
}

// The table finds every key it holds after any mix of insertions and
// evictions, and evicts by CLOCK.
func TestTable(t *testing.T) {
	tab := newTable[int](200)
	model := map[string]int{}
	for i := range 3000 {
		k := fmt.Sprint("key-", i%350)
		if s, ok := tab.get(k); ok {
			require.Equal(t, model[k], *s, k)
			*s = i
			model[k] = i
			continue
		}
		require.NotContains(t, model, k)
		s, evicted := tab.put(k)
		assert.Equal(t, len(model) == 200, evicted)
		*s = i
		model[k] = i
		if evicted {
			// find which key left
			seen := map[string]bool{}
			tab.each(func(key string, _ *int) { seen[key] = true })
			for mk := range model {
				if !seen[mk] {
					delete(model, mk)
				}
			}
		}
		require.Equal(t, len(model), tab.len())
	}
	for k, v := range model {
		s, ok := tab.get(k)
		require.True(t, ok, k)
		assert.Equal(t, v, *s)
	}
	_, ok := tab.get("absent")
	assert.False(t, ok)
}

func TestTableClock(t *testing.T) {
	tab := newTable[int](3)
	for _, k := range []string{"a", "b", "c"} {
		tab.put(k)
	}
	tab.get("a") // marked
	tab.get("c") // marked
	tab.put("d") // the hand spares a, evicts b
	_, okB := tab.get("b")
	assert.False(t, okB)
	tab.put("e") // the hand spares c, wraps to a (not seen since it was spared) and evicts it
	_, okA := tab.get("a")
	assert.False(t, okA)
	for _, k := range []string{"c", "d", "e"} {
		_, ok := tab.get(k)
		assert.True(t, ok, k)
	}
}
