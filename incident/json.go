package incident

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"time"
)

// UnmarshalJSON decodes an incident in its JSON form (see Incident), or in
// the form releases before the register wrote, with Go's field names
// ("DedupKey", "DetectedAt"), so that records a JSON store kept then read
// back whole. Map keys (Attributes, Milestones) are data and are never
// renamed. Writing the incident again gives the current form.
func (inc *Incident) UnmarshalJSON(b []byte) error {
	type plain Incident // the fields and tags, without this method
	if bytes.Contains(b, []byte(`"DedupKey":`)) {
		// Perhaps the old form: rename its fields. On the current form
		// (an attribute named "DedupKey") renaming changes nothing.
		up, err := upgradeJSON(b, reflect.TypeFor[Incident]())
		if err != nil {
			return err
		}
		b = up
	}
	return json.Unmarshal(b, (*plain)(inc))
}

// upgradeJSON rewrites the keys of b, JSON for a value of type t, from Go
// field names to the names of the json tags.
func upgradeJSON(b []byte, t reflect.Type) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // keep int64 values exact
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(renameFields(v, t))
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// renameFields walks v, decoded JSON, alongside t: object keys that name a
// field of a struct as encoding/json matches them (exactly, or else without
// regard to case) become that field's JSON name.
func renameFields(v any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		fields := jsonFields(t)
		out := make(map[string]any, len(obj))
		for k, val := range obj {
			f := fields.lookup(k)
			if f == nil {
				out[k] = val
				continue
			}
			out[f.json] = renameFields(val, f.typ)
		}
		return out
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return v
		}
		for i := range arr {
			arr[i] = renameFields(arr[i], t.Elem())
		}
		return arr
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for k, val := range obj {
			obj[k] = renameFields(val, t.Elem())
		}
		return obj
	}
	return v
}

type jsonField struct {
	goName, json string
	typ          reflect.Type
}

type fieldSet []jsonField

func (fs fieldSet) lookup(key string) *jsonField {
	for i := range fs {
		if fs[i].json == key || fs[i].goName == key {
			return &fs[i]
		}
	}
	for i := range fs {
		if strings.EqualFold(fs[i].goName, key) {
			return &fs[i]
		}
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → fieldSet

// jsonFields lists the fields of struct type t as encoding/json sees them,
// with the fields of an embedded struct without a name of its own
// promoted.
func jsonFields(t reflect.Type) fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet)
	}
	var fs fieldSet
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			fs = append(fs, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, jsonField{goName: f.Name, json: name, typ: f.Type})
	}
	fieldCache.Store(t, fs)
	return fs
}
