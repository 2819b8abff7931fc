package policies

import (
	"fmt"
	"path"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The Input structs are declared to CEL by ext.NativeTypes, which type-checks
// every field access when a rule compiles. At run time, though, NativeTypes
// rebuilds its reflective type description each time it wraps a struct value,
// and the cost tracker wraps every intermediate value of a field path. The
// adapter below wraps the Input structs in a light object instead, and the
// string maps and lists in cel-go's specialised containers; field access by
// checked rules still goes through NativeTypes' own field accessors.

// inputStructs are the Go types of the gate input reachable from Input.
var inputStructs = []reflect.Type{
	reflect.TypeFor[Input](),
	reflect.TypeFor[Parameters](),
	reflect.TypeFor[RollbackParameters](),
	reflect.TypeFor[ScaleParameters](),
	reflect.TypeFor[Target](),
	reflect.TypeFor[Namespace](),
	reflect.TypeFor[Proposer](),
}

// inputAdapter adapts the gate input's Go values to CEL values.
type inputAdapter struct {
	base types.Adapter
	// objects by Go struct type (not pointer).
	objects map[reflect.Type]*objectType
}

var _ types.Adapter = (*inputAdapter)(nil)

// objectType is the CEL view of one input struct.
type objectType struct {
	celType ref.Type
	// typeVal is celType as a CEL value, the result of type(x).
	typeVal ref.Val
	// fields maps a CEL field name to the struct field's index.
	fields map[string]int
}

// fastInputAdapter installs inputAdapter over the adapter configured so far;
// it must come after ext.NativeTypes.
func fastInputAdapter() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		a := &inputAdapter{base: e.CELTypeAdapter(), objects: make(map[reflect.Type]*objectType, len(inputStructs))}
		for _, rt := range inputStructs {
			name := celTypeName(rt)
			v, ok := e.CELTypeProvider().FindIdent(name)
			if !ok {
				return nil, fmt.Errorf("CEL type %s is not declared", name)
			}
			t, ok := v.(ref.Type)
			if !ok {
				return nil, fmt.Errorf("CEL identifier %s is a %T, not a type", name, v)
			}
			ot := &objectType{celType: t, typeVal: v, fields: make(map[string]int, rt.NumField())}
			for i := range rt.NumField() {
				f := rt.Field(i)
				if tag, ok := f.Tag.Lookup("cel"); ok && f.IsExported() {
					ot.fields[tag] = i
				}
			}
			a.objects[rt] = ot
		}
		return cel.CustomTypeAdapter(a)(e)
	}
}

// celTypeName is the name ext.NativeTypes gives a Go struct type: the last
// element of its package path, a dot, and its name.
func celTypeName(rt reflect.Type) string {
	return path.Base(rt.PkgPath()) + "." + rt.Name()
}

// NativeToValue implements types.Adapter.
func (a *inputAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case map[string]string:
		return types.NewStringStringMap(a, v)
	case []string:
		return types.NewStringList(a, v)
	case nil:
		return a.base.NativeToValue(v)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if ot, ok := a.objects[rv.Type()]; ok {
		return &object{adapter: a, typ: ot, val: v, rv: rv}
	}
	return a.base.NativeToValue(v)
}

// object is one input struct as a CEL value.
type object struct {
	adapter *inputAdapter
	typ     *objectType
	val     any           // as given: a struct or a pointer to one
	rv      reflect.Value // the struct itself
}

var (
	_ ref.Val            = (*object)(nil)
	_ traits.Indexer     = (*object)(nil)
	_ traits.FieldTester = (*object)(nil)
	_ traits.Zeroer      = (*object)(nil)
)

// ConvertToNative implements ref.Val.
func (o *object) ConvertToNative(typeDesc reflect.Type) (any, error) {
	switch {
	case reflect.TypeOf(o.val) == typeDesc:
		return o.val, nil
	case o.rv.Type() == typeDesc:
		return o.rv.Interface(), nil
	case typeDesc.Kind() == reflect.Pointer && typeDesc.Elem() == o.rv.Type():
		ptr := reflect.New(o.rv.Type())
		ptr.Elem().Set(o.rv)
		return ptr.Interface(), nil
	}
	return nil, fmt.Errorf("type conversion error from '%s' to '%v'", o.typ.celType.TypeName(), typeDesc)
}

// ConvertToType implements ref.Val.
func (o *object) ConvertToType(typeVal ref.Type) ref.Val {
	switch {
	case typeVal == types.TypeType:
		return o.typ.typeVal
	case typeVal.TypeName() == o.typ.celType.TypeName():
		return o
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.typ.celType.TypeName(), typeVal.TypeName())
}

// Equal implements ref.Val: objects of the same type are equal when their
// structs are deeply equal.
func (o *object) Equal(other ref.Val) ref.Val {
	if other.Type().TypeName() != o.typ.celType.TypeName() {
		return types.False
	}
	ov := reflect.Indirect(reflect.ValueOf(other.Value()))
	if !ov.IsValid() || ov.Type() != o.rv.Type() {
		return types.False
	}
	return types.Bool(reflect.DeepEqual(o.rv.Interface(), ov.Interface()))
}

// Type implements ref.Val.
func (o *object) Type() ref.Type { return o.typ.celType }

// Value implements ref.Val.
func (o *object) Value() any { return o.val }

// IsZeroValue implements traits.Zeroer.
func (o *object) IsZeroValue() bool { return o.rv.IsZero() }

// Get implements traits.Indexer, for field access the checker could not
// resolve statically (e.g. through dyn).
func (o *object) Get(field ref.Val) ref.Val {
	f, errVal := o.field(field)
	if errVal != nil {
		return errVal
	}
	return o.adapter.NativeToValue(f.Interface())
}

// IsSet implements traits.FieldTester.
func (o *object) IsSet(field ref.Val) ref.Val {
	f, errVal := o.field(field)
	if errVal != nil {
		return errVal
	}
	return types.Bool(!f.IsZero())
}

func (o *object) field(field ref.Val) (reflect.Value, ref.Val) {
	name, ok := field.(types.String)
	if !ok {
		return reflect.Value{}, types.MaybeNoSuchOverloadErr(field)
	}
	i, ok := o.typ.fields[string(name)]
	if !ok {
		return reflect.Value{}, types.NewErr("no such field: %s", name)
	}
	return o.rv.Field(i), nil
}
