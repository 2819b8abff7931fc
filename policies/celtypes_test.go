package policies

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
)

// TestObjectTables checks the field tables of celtypes.go against the Input
// structs: every field with a `cel` tag is visible to CEL under the tag's name,
// no other is, and each reads its own Go field.
func TestObjectTables(t *testing.T) {
	g := newGate(t, Options{})
	for _, tt := range []struct {
		name string
		fill bool
	}{{"every field set", true}, {"zero input", false}} {
		t.Run(tt.name, func(t *testing.T) {
			var in Input
			if tt.fill {
				n := 0
				fillValue(reflect.ValueOf(&in).Elem(), &n)
			}
			v, _, _ := g.inputs.newInput(&in)
			o, ok := v.(*object)
			if !ok {
				t.Fatalf("newInput() = %T, want *object", v)
			}
			checkObject(t, "proposal", o, reflect.ValueOf(in))
		})
	}
}

// checkObject compares o with the Go struct v it was built from.
func checkObject(t *testing.T, path string, o *object, v reflect.Value) {
	t.Helper()
	rt := v.Type()
	if want := celTypeName(rt); o.typ.name != want {
		t.Errorf("%s: object type %s, want %s", path, o.typ.name, want)
	}
	var names []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag, ok := f.Tag.Lookup("cel")
		if !ok || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		names = append(names, name)
		j := o.typ.index(name)
		if j < 0 {
			t.Errorf("%s: field %s (%s.%s) is not visible to CEL", path, name, rt.Name(), f.Name)
			continue
		}
		fv := v.Field(i)
		if set := o.set&(1<<j) != 0; set == fv.IsZero() {
			t.Errorf("%s.%s: set = %t, want %t", path, name, set, !fv.IsZero())
		}
		got := o.fields[j]
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			sub, ok := got.(*object)
			if !ok {
				t.Errorf("%s.%s = %T, want *object", path, name, got)
				continue
			}
			checkObject(t, path+"."+name, sub, fv)
			continue
		}
		if want := types.DefaultTypeAdapter.NativeToValue(fv.Interface()); got.Equal(want) != types.True {
			t.Errorf("%s.%s = %v, want %v", path, name, got.Value(), want.Value())
		}
	}
	if fmt.Sprint(names) != fmt.Sprint(o.typ.names) {
		t.Errorf("%s: CEL fields %v, want %v (the cel tags of %s, in order)", path, o.typ.names, names, rt.Name())
	}
}

// fillValue sets every field reachable from v to a distinct non-zero value.
func fillValue(v reflect.Value, n *int) {
	*n++
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Unix(int64(*n)*1000, 0).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillValue(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n) * 1000)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fillValue(s.Index(0), n)
		fillValue(s.Index(1), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillValue(k, n)
		fillValue(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(p.Elem(), n)
		v.Set(p)
	}
}
