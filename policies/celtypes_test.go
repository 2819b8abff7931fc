package policies

import (
	"reflect"
	"slices"
	"testing"
)

// TestInputStructsComplete checks that the fast adapter knows every struct
// reachable from Input, so no field path falls back to the slow reflective
// conversion, and that every field of them is visible to CEL.
func TestInputStructsComplete(t *testing.T) {
	var walk func(rt reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(rt reflect.Type) {
		switch rt.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			walk(rt.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[rt] {
			return
		}
		seen[rt] = true
		if !slices.Contains(inputStructs, rt) {
			t.Errorf("inputStructs lacks %s", rt)
		}
		for i := range rt.NumField() {
			f := rt.Field(i)
			if _, ok := f.Tag.Lookup("cel"); !ok || !f.IsExported() {
				t.Errorf("%s.%s has no cel tag", rt.Name(), f.Name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Input]())
}
