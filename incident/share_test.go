package incident

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fill gives every field reachable from v a value that is not its zero
// value: pointers point, slices and maps hold one element.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 2, 9, 0, *n, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), n)
		}
	default:
		change(v, *n)
	}
}

// change sets the leaf v to another value.
func change(v reflect.Value, n int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + fmt.Sprint("x", n))
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + int64(n) + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + uint64(n) + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + float64(n) + 1)
	default:
		panic("no way to change a " + v.Type().String())
	}
}

// changeLeaf changes the target-th leaf reachable from v (counting from
// *seen) and reports whether it did, with the leaf's path.
func changeLeaf(v reflect.Value, path string, target int, seen *int) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "", false
		}
		return changeLeaf(v.Elem(), path, target, seen)
	case reflect.Struct:
		if v.Type() == timeType {
			if *seen++; *seen == target {
				v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
				return path, true
			}
			return "", false
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				if p, ok := changeLeaf(v.Field(i), path+"."+f.Name, target, seen); ok {
					return p, true
				}
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p, ok := changeLeaf(v.Index(i), fmt.Sprintf("%s[%d]", path, i), target, seen); ok {
				return p, true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			if p, ok := changeLeaf(e, fmt.Sprintf("%s[%v]", path, k), target, seen); ok {
				v.SetMapIndex(k, e)
				return p, true
			}
		}
	default:
		if *seen++; *seen == target {
			change(v, target)
			return path, true
		}
	}
	return "", false
}

// TestCloneSharingMissesNoChange changes each field of a head in turn, every
// one reachable (reflection finds them, so a field added later is checked
// too): the copy CloneSharing makes against the head before the change
// holds the change, and shares with it nothing that changed.
func TestCloneSharingMissesNoChange(t *testing.T) {
	var prev Incident
	n := 0
	fill(reflect.ValueOf(&prev).Elem(), &n)
	prev.Timeline, prev.Deliveries = nil, nil // a head's parts, never kept: copied whole, checked by Clone's tests

	same := prev.Clone().CloneSharing(&prev)
	assert.Equal(t, &prev, same)
	assert.Same(t, prev.Investigation, same.Investigation, "unchanged: shared")
	assert.Same(t, &prev.Actions[0], &same.Actions[0], "unchanged: shared")

	checked := 0
	for target := 1; ; target++ {
		next := prev.Clone()
		seen := 0
		path, ok := changeLeaf(reflect.ValueOf(next).Elem(), "Incident", target, &seen)
		if !ok {
			break
		}
		checked++
		got := next.CloneSharing(&prev)
		require.Equal(t, next, got, "%s changed: the copy must hold the change", path)
		require.NotEqual(t, &prev, got, "%s changed", path)
		// Changing the copy's parts where they differ from prev's leaves
		// prev alone: what changed was not shared.
		before := prev.Clone()
		seen = 0
		changeLeaf(reflect.ValueOf(got).Elem(), "Incident", target, &seen)
		require.Equal(t, before, &prev, "%s: changing the copy changed prev", path)
	}
	assert.Greater(t, checked, 100, "every leaf of a head was changed in turn")
}
