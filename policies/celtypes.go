package policies

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The Input structs are declared to CEL by ext.NativeTypes, which type-checks
// every field access when a rule compiles. At run time, though, NativeTypes
// reads a field by reflection on every access and wraps every map and list
// anew each time it is read. Instead, the gate converts the Input once per
// decision into objects whose fields already are CEL values (strings, ints,
// cel-go's string maps and lists, nested objects), shared by every rule of the
// decision, and the type provider below gives the planner field accessors that
// index into them. Only fields listed in the tables below are visible to CEL,
// whatever else the structs hold.

// field is one CEL field of the Go struct T: its CEL name and how to read it.
// get returns the field as a CEL value and whether it is set, i.e. not the Go
// zero value (reflect.Value.IsZero: a nil map or slice, not an empty one).
type field[T any] struct {
	name string
	get  func(b *builder, x *T) (v ref.Val, set bool)
}

// The CEL fields of each input struct. Every field with a `cel` tag must be
// listed, under its tag's name; TestObjectTables checks it.
var (
	inputFields = []field[Input]{
		{"action", func(b *builder, x *Input) (ref.Val, bool) { return b.str(x.Action) }},
		{"risk", func(b *builder, x *Input) (ref.Val, bool) { return b.str(x.Risk) }},
		{"parameters", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.parameters, &x.Parameters) }},
		{"target", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.target, &x.Target) }},
		{"namespace", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.namespace, &x.Namespace) }},
		{"proposer", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.proposer, &x.Proposer) }},
		{"facts", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.facts, &x.Facts) }},
		{"change", func(b *builder, x *Input) (ref.Val, bool) { return build(b, b.types.change, &x.Change) }},
	}
	changeFields = []field[Change]{
		{"replicas", func(b *builder, x *Change) (ref.Val, bool) { return b.integer(x.Replicas) }},
		// Objects of a type met for the first time come before those of
		// types Facts has already laid out (resources, autoscaler): only a
		// type's first object gets slots.
		{"container", func(b *builder, x *Change) (ref.Val, bool) { return b.str(x.Container) }},
		{"prune", func(b *builder, x *Change) (ref.Val, bool) { return build(b, b.types.prune, &x.Prune) }},
		{"resources", func(b *builder, x *Change) (ref.Val, bool) { return build(b, b.types.resources, &x.Resources) }},
		{"paths", func(b *builder, x *Change) (ref.Val, bool) { return b.stringList(x.Paths) }},
		{"nodes", func(b *builder, x *Change) (ref.Val, bool) { return b.stringList(x.Nodes) }},
		{"autoscaler", func(b *builder, x *Change) (ref.Val, bool) { return build(b, b.types.autoscaler, &x.Autoscaler) }},
	}
	pruneFields = []field[Prune]{
		{"targetUsedPercent", func(b *builder, x *Prune) (ref.Val, bool) { return b.integer(x.TargetUsedPercent) }},
		{"targetUsedBytes", func(b *builder, x *Prune) (ref.Val, bool) { return b.integer(x.TargetUsedBytes) }},
		{"keep", func(b *builder, x *Prune) (ref.Val, bool) { return b.stringList(x.Keep) }},
	}
	resourcesFields = []field[Resources]{
		{"container", func(b *builder, x *Resources) (ref.Val, bool) { return b.str(x.Container) }},
		{"cpuRequestMilli", func(b *builder, x *Resources) (ref.Val, bool) { return b.integer(x.CPURequestMilli) }},
		{"cpuLimitMilli", func(b *builder, x *Resources) (ref.Val, bool) { return b.integer(x.CPULimitMilli) }},
		{"memoryRequestBytes", func(b *builder, x *Resources) (ref.Val, bool) { return b.integer(x.MemoryRequestBytes) }},
		{"memoryLimitBytes", func(b *builder, x *Resources) (ref.Val, bool) { return b.integer(x.MemoryLimitBytes) }},
	}
	autoscalerFields = []field[Autoscaler]{
		{"minReplicas", func(b *builder, x *Autoscaler) (ref.Val, bool) { return b.integer(x.MinReplicas) }},
		{"maxReplicas", func(b *builder, x *Autoscaler) (ref.Val, bool) { return b.integer(x.MaxReplicas) }},
		{"targetCPUUtilization", func(b *builder, x *Autoscaler) (ref.Val, bool) { return b.integer(x.TargetCPUUtilization) }},
		{"scaleTarget", func(b *builder, x *Autoscaler) (ref.Val, bool) { return b.str(x.ScaleTarget) }},
		{"scaleTargetExists", func(b *builder, x *Autoscaler) (ref.Val, bool) { return b.boolean(x.ScaleTargetExists) }},
	}
	nodeFields = []field[NodeFacts]{
		{"ready", func(b *builder, x *NodeFacts) (ref.Val, bool) { return b.boolean(x.Ready) }},
		{"unschedulable", func(b *builder, x *NodeFacts) (ref.Val, bool) { return b.boolean(x.Unschedulable) }},
		{"pods", func(b *builder, x *NodeFacts) (ref.Val, bool) { return b.integer(x.Pods) }},
	}
	factsFields = []field[Facts]{
		{"gathered", func(b *builder, x *Facts) (ref.Val, bool) { return b.boolean(x.Gathered) }},
		{"readyReplicas", func(b *builder, x *Facts) (ref.Val, bool) { return b.integer(x.ReadyReplicas) }},
		{"revision", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.revision, &x.Revision) }},
		{"disruption", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.disruption, &x.Disruption) }},
		{"node", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.node, &x.Node) }},
		{"resources", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.resources, &x.Resources) }},
		{"autoscaler", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.autoscaler, &x.Autoscaler) }},
		{"imageFs", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.imageFS, &x.ImageFS) }},
		{"run", func(b *builder, x *Facts) (ref.Val, bool) { return build(b, b.types.run, &x.Run) }},
	}
	runFields = []field[RunFacts]{
		{"name", func(b *builder, x *RunFacts) (ref.Val, bool) { return b.str(x.Name) }},
		{"member", func(b *builder, x *RunFacts) (ref.Val, bool) { return b.boolean(x.Member) }},
		{"undo", func(b *builder, x *RunFacts) (ref.Val, bool) { return b.boolean(x.Undo) }},
		{"windowEnd", func(b *builder, x *RunFacts) (ref.Val, bool) { return b.timestamp(x.WindowEnd) }},
	}
	imageFSFields = []field[ImageFSFacts]{
		{"usedBytes", func(b *builder, x *ImageFSFacts) (ref.Val, bool) { return b.integer(x.UsedBytes) }},
		{"capacityBytes", func(b *builder, x *ImageFSFacts) (ref.Val, bool) { return b.integer(x.CapacityBytes) }},
		{"usedPercent", func(b *builder, x *ImageFSFacts) (ref.Val, bool) { return b.integer(x.UsedPercent) }},
	}
	revisionFields = []field[RevisionFacts]{
		{"current", func(b *builder, x *RevisionFacts) (ref.Val, bool) { return b.integer(x.Current) }},
		{"to", func(b *builder, x *RevisionFacts) (ref.Val, bool) { return b.integer(x.To) }},
		{"toHealthy", func(b *builder, x *RevisionFacts) (ref.Val, bool) { return b.boolean(x.ToHealthy) }},
	}
	disruptionFields = []field[DisruptionFacts]{
		{"pods", func(b *builder, x *DisruptionFacts) (ref.Val, bool) { return b.integer(x.Pods) }},
		{"percent", func(b *builder, x *DisruptionFacts) (ref.Val, bool) { return b.integer(x.Percent) }},
		{"pdb", func(b *builder, x *DisruptionFacts) (ref.Val, bool) { return b.str(x.PDB) }},
		{"pdbAllowed", func(b *builder, x *DisruptionFacts) (ref.Val, bool) { return b.integer(x.PDBAllowed) }},
	}
	parametersFields = []field[Parameters]{
		{"rollback", func(b *builder, x *Parameters) (ref.Val, bool) { return build(b, b.types.rollback, &x.Rollback) }},
		{"scale", func(b *builder, x *Parameters) (ref.Val, bool) { return build(b, b.types.scale, &x.Scale) }},
		{"patchPaths", func(b *builder, x *Parameters) (ref.Val, bool) { return b.stringList(x.PatchPaths) }},
	}
	rollbackFields = []field[RollbackParameters]{
		{"toRevision", func(b *builder, x *RollbackParameters) (ref.Val, bool) { return b.integer(x.ToRevision) }},
		{"fromRevision", func(b *builder, x *RollbackParameters) (ref.Val, bool) { return b.integer(x.FromRevision) }},
	}
	scaleFields = []field[ScaleParameters]{
		{"replicas", func(b *builder, x *ScaleParameters) (ref.Val, bool) { return b.integer(x.Replicas) }},
	}
	targetFields = []field[Target]{
		{"apiVersion", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.APIVersion) }},
		{"kind", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.Kind) }},
		{"namespace", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.Namespace) }},
		{"name", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.Name) }},
		{"labels", func(b *builder, x *Target) (ref.Val, bool) { return b.stringMap(x.Labels) }},
		{"ownerKind", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.OwnerKind) }},
		{"ownerName", func(b *builder, x *Target) (ref.Val, bool) { return b.str(x.OwnerName) }},
		{"replicas", func(b *builder, x *Target) (ref.Val, bool) { return b.integer(x.Replicas) }},
		{"exists", func(b *builder, x *Target) (ref.Val, bool) { return b.boolean(x.Exists) }},
	}
	namespaceFields = []field[Namespace]{
		{"name", func(b *builder, x *Namespace) (ref.Val, bool) { return b.str(x.Name) }},
		{"labels", func(b *builder, x *Namespace) (ref.Val, bool) { return b.stringMap(x.Labels) }},
		{"exists", func(b *builder, x *Namespace) (ref.Val, bool) { return b.boolean(x.Exists) }},
	}
	proposerFields = []field[Proposer]{
		{"username", func(b *builder, x *Proposer) (ref.Val, bool) { return b.str(x.Username) }},
		{"groups", func(b *builder, x *Proposer) (ref.Val, bool) { return b.stringList(x.Groups) }},
	}
)

// objectType is the CEL view of one input struct in one environment.
type objectType struct {
	// name is the CEL type name, e.g. policies.Target.
	name string
	// typ is the type NativeTypes declared; typeVal is it as a value, the
	// result of type(x).
	typ     ref.Type
	typeVal ref.Val
	// names are the CEL field names, in the order of object.fields.
	names []string
}

// index returns the position of the named field, or -1.
func (t *objectType) index(name string) int {
	return slices.Index(t.names, name)
}

// structType is an objectType with the table that reads its Go struct.
type structType[T any] struct {
	*objectType
	fields []field[T]
}

// inputTypes are the object types of the input structs in one environment,
// and the adapter their maps and lists use.
type inputTypes struct {
	adapter    types.Adapter
	input      structType[Input]
	parameters structType[Parameters]
	rollback   structType[RollbackParameters]
	scale      structType[ScaleParameters]
	target     structType[Target]
	namespace  structType[Namespace]
	proposer   structType[Proposer]
	facts      structType[Facts]
	revision   structType[RevisionFacts]
	disruption structType[DisruptionFacts]
	change     structType[Change]
	resources  structType[Resources]
	autoscaler structType[Autoscaler]
	prune      structType[Prune]
	imageFS    structType[ImageFSFacts]
	node       structType[NodeFacts]
	run        structType[RunFacts]
	// byName holds every objectType above by CEL type name.
	byName map[string]*objectType
	// objects and values are how many objects and field values one Input
	// becomes.
	objects, values int
	// emptyMap and emptyList stand for every empty map and list.
	emptyMap, emptyList ref.Val
	// buffers holds *inputBuffers for newPooledInput.
	buffers sync.Pool
	// slots holds the slot of every field path; see fieldSlots.
	slots map[string]int
}

// newStructType looks up T's type, declared by NativeTypes, in provider and
// registers it in ts. The first error is kept in *err.
func newStructType[T any](ts *inputTypes, provider types.Provider, fields []field[T], err *error) structType[T] {
	fail := func(format string, args ...any) structType[T] {
		if *err == nil {
			*err = fmt.Errorf(format, args...)
		}
		return structType[T]{}
	}
	name := celTypeName(reflect.TypeFor[T]())
	v, ok := provider.FindIdent(name)
	if !ok {
		return fail("CEL type %s is not declared", name)
	}
	t, ok := v.(ref.Type)
	if !ok {
		return fail("CEL identifier %s is a %T, not a type", name, v)
	}
	if len(fields) > 64 {
		return fail("CEL type %s has more than 64 fields", name)
	}
	ot := &objectType{name: name, typ: t, typeVal: v, names: make([]string, len(fields))}
	for i, f := range fields {
		if _, ok := provider.FindStructFieldType(name, f.name); !ok {
			return fail("CEL type %s has no field %s", name, f.name)
		}
		ot.names[i] = f.name
	}
	ts.byName[name] = ot
	ts.objects++
	ts.values += len(fields)
	return structType[T]{objectType: ot, fields: fields}
}

// celTypeName is the name ext.NativeTypes gives a Go struct type: the last
// element of its package path, a dot, and its name.
func celTypeName(rt reflect.Type) string {
	return path.Base(rt.PkgPath()) + "." + rt.Name()
}

// inputObjects installs the input's object types, a type provider whose
// field accessors read them and an adapter that builds them, over the
// provider and adapter configured so far; it must come after ext.NativeTypes.
// It fills ts.
func inputObjects(ts *inputTypes) cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		base := e.CELTypeProvider()
		ts.byName = make(map[string]*objectType)
		var err error
		ts.input = newStructType(ts, base, inputFields, &err)
		ts.parameters = newStructType(ts, base, parametersFields, &err)
		ts.rollback = newStructType(ts, base, rollbackFields, &err)
		ts.scale = newStructType(ts, base, scaleFields, &err)
		ts.target = newStructType(ts, base, targetFields, &err)
		ts.namespace = newStructType(ts, base, namespaceFields, &err)
		ts.proposer = newStructType(ts, base, proposerFields, &err)
		ts.facts = newStructType(ts, base, factsFields, &err)
		ts.revision = newStructType(ts, base, revisionFields, &err)
		ts.disruption = newStructType(ts, base, disruptionFields, &err)
		ts.change = newStructType(ts, base, changeFields, &err)
		ts.resources = newStructType(ts, base, resourcesFields, &err)
		ts.autoscaler = newStructType(ts, base, autoscalerFields, &err)
		ts.prune = newStructType(ts, base, pruneFields, &err)
		ts.imageFS = newStructType(ts, base, imageFSFields, &err)
		ts.node = newStructType(ts, base, nodeFields, &err)
		ts.run = newStructType(ts, base, runFields, &err)
		if err != nil {
			return nil, err
		}
		a := &inputAdapter{base: e.CELTypeAdapter(), types: ts}
		ts.adapter = a
		ts.emptyMap = types.NewStringStringMap(a, map[string]string{})
		ts.emptyList = types.NewRefValList(a, []ref.Val{})
		ts.slots = fieldSlots(ts)
		e, err = cel.CustomTypeProvider(&inputProvider{Provider: base, types: ts})(e)
		if err != nil {
			return nil, err
		}
		return cel.CustomTypeAdapter(a)(e)
	}
}

// inputProvider is NativeTypes' provider with field accessors that read the
// prebuilt fields of an object, and that builds objects.
type inputProvider struct {
	types.Provider
	types *inputTypes
}

var _ types.Provider = (*inputProvider)(nil)

// FindStructFieldNames implements types.Provider: only the fields in the
// tables are visible.
func (p *inputProvider) FindStructFieldNames(typeName string) ([]string, bool) {
	if t, ok := p.types.byName[typeName]; ok {
		return slices.Clone(t.names), true
	}
	return p.Provider.FindStructFieldNames(typeName)
}

// FindStructFieldType implements types.Provider. It is called while rules
// compile, not while they run.
func (p *inputProvider) FindStructFieldType(typeName, fieldName string) (*types.FieldType, bool) {
	t, ok := p.types.byName[typeName]
	if !ok {
		return p.Provider.FindStructFieldType(typeName, fieldName)
	}
	i := t.index(fieldName)
	if i < 0 {
		return nil, false
	}
	ft, ok := p.Provider.FindStructFieldType(typeName, fieldName)
	if !ok {
		return nil, false
	}
	bit := uint64(1) << i
	return &types.FieldType{
		Type: ft.Type,
		IsSet: func(obj any) bool {
			if o, ok := obj.(*object); ok && o.typ == t {
				return o.set&bit != 0
			}
			return ft.IsSet(obj)
		},
		GetFrom: func(obj any) (any, error) {
			if o, ok := obj.(*object); ok && o.typ == t {
				return o.fields[i], nil
			}
			return ft.GetFrom(obj)
		},
	}, true
}

// NewValue implements types.Provider: a struct created in a rule, e.g.
// policies.Target{name: "web"}, becomes an object like the input's.
func (p *inputProvider) NewValue(typeName string, fields map[string]ref.Val) ref.Val {
	v := p.Provider.NewValue(typeName, fields)
	if _, ok := p.types.byName[typeName]; !ok || types.IsError(v) {
		return v
	}
	if o, ok := p.types.fromGo(v.Value()); ok {
		return o
	}
	return types.NewErr("no such type: %s", typeName)
}

// inputAdapter adapts Go values to CEL values, the input structs to objects.
type inputAdapter struct {
	base  types.Adapter
	types *inputTypes
}

var _ types.Adapter = (*inputAdapter)(nil)

// NativeToValue implements types.Adapter.
func (a *inputAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case ref.Val:
		return v
	case map[string]string:
		return types.NewStringStringMap(a, v)
	case []string:
		return types.NewStringList(a, v)
	}
	if o, ok := a.types.fromGo(v); ok {
		return o
	}
	return a.base.NativeToValue(v)
}

// builder builds objects, carving them and their fields out of slices it
// allocated up front, and measures the strings, lists and maps it converts.
type builder struct {
	types   *inputTypes
	objects []object
	values  []ref.Val
	size    inputSize
}

// inputSize is the size of the largest string and of the largest list or
// map in an input.
type inputSize struct {
	maxString, maxEntries int
}

// newInput converts in, once per decision, into the value of the variable
// proposal, and measures it. It also returns the field values of every
// object, laid out alike for every input (see fieldSlots). The objects keep
// pointers into in.
func (ts *inputTypes) newInput(in *Input) (ref.Val, []ref.Val, inputSize) {
	values := make([]ref.Val, ts.values)
	b := builder{
		types:   ts,
		objects: make([]object, ts.objects),
		values:  values,
	}
	o, _ := build(&b, ts.input, in)
	return o, values, b.size
}

// inputBuffers are the objects and field values of one decision's input,
// reused by the next decision once the first is done.
type inputBuffers struct {
	objects []object
	values  []ref.Val
}

// newPooledInput is newInput into buffers from a pool: a decision allocates
// no object or value array of its own. release must be called once the
// values are no longer read; it clears them, so no input outlives its
// decision and none is seen by the next.
func (ts *inputTypes) newPooledInput(in *Input) (proposal ref.Val, slots []ref.Val, size inputSize, release func()) {
	buf, _ := ts.buffers.Get().(*inputBuffers)
	if buf == nil || len(buf.objects) != ts.objects || len(buf.values) != ts.values {
		buf = &inputBuffers{objects: make([]object, ts.objects), values: make([]ref.Val, ts.values)}
	}
	b := builder{types: ts, objects: buf.objects, values: buf.values}
	proposal, _ = build(&b, ts.input, in)
	return proposal, buf.values, b.size, func() {
		clear(buf.objects)
		clear(buf.values)
		ts.buffers.Put(buf)
	}
}

// fromGo converts an input struct, or a pointer to one, into an object.
func (ts *inputTypes) fromGo(v any) (ref.Val, bool) {
	b := &builder{types: ts}
	var o ref.Val
	switch v := v.(type) {
	case *Input:
		o, _ = build(b, ts.input, v)
	case Input:
		o, _ = build(b, ts.input, &v)
	case *Parameters:
		o, _ = build(b, ts.parameters, v)
	case Parameters:
		o, _ = build(b, ts.parameters, &v)
	case *RollbackParameters:
		o, _ = build(b, ts.rollback, v)
	case RollbackParameters:
		o, _ = build(b, ts.rollback, &v)
	case *ScaleParameters:
		o, _ = build(b, ts.scale, v)
	case ScaleParameters:
		o, _ = build(b, ts.scale, &v)
	case *Target:
		o, _ = build(b, ts.target, v)
	case Target:
		o, _ = build(b, ts.target, &v)
	case *Namespace:
		o, _ = build(b, ts.namespace, v)
	case Namespace:
		o, _ = build(b, ts.namespace, &v)
	case *Proposer:
		o, _ = build(b, ts.proposer, v)
	case Proposer:
		o, _ = build(b, ts.proposer, &v)
	case *Facts:
		o, _ = build(b, ts.facts, v)
	case Facts:
		o, _ = build(b, ts.facts, &v)
	case *RevisionFacts:
		o, _ = build(b, ts.revision, v)
	case RevisionFacts:
		o, _ = build(b, ts.revision, &v)
	case *DisruptionFacts:
		o, _ = build(b, ts.disruption, v)
	case DisruptionFacts:
		o, _ = build(b, ts.disruption, &v)
	case *Change:
		o, _ = build(b, ts.change, v)
	case Change:
		o, _ = build(b, ts.change, &v)
	case *Resources:
		o, _ = build(b, ts.resources, v)
	case Resources:
		o, _ = build(b, ts.resources, &v)
	case *Autoscaler:
		o, _ = build(b, ts.autoscaler, v)
	case Autoscaler:
		o, _ = build(b, ts.autoscaler, &v)
	case *ImageFSFacts:
		o, _ = build(b, ts.imageFS, v)
	case ImageFSFacts:
		o, _ = build(b, ts.imageFS, &v)
	case *Prune:
		o, _ = build(b, ts.prune, v)
	case Prune:
		o, _ = build(b, ts.prune, &v)
	case *NodeFacts:
		o, _ = build(b, ts.node, v)
	case NodeFacts:
		o, _ = build(b, ts.node, &v)
	case *RunFacts:
		o, _ = build(b, ts.run, v)
	case RunFacts:
		o, _ = build(b, ts.run, &v)
	default:
		return nil, false
	}
	return o, true
}

// build converts x into an object of type t and reports whether it is set.
// A nil x is the zero value.
func build[T any](b *builder, t structType[T], x *T) (ref.Val, bool) {
	if x == nil {
		x = new(T)
	}
	if len(b.objects) == 0 {
		b.objects = make([]object, 1)
	}
	o := &b.objects[0]
	b.objects = b.objects[1:]
	n := len(t.fields)
	if len(b.values) < n {
		b.values = make([]ref.Val, n)
	}
	o.typ = t.objectType
	o.fields = b.values[:n:n]
	o.native = x
	b.values = b.values[n:]
	for i := range t.fields {
		v, set := t.fields[i].get(b, x)
		o.fields[i] = v
		if set {
			o.set |= 1 << i
		}
	}
	return o, o.set != 0
}

func (b *builder) str(s string) (ref.Val, bool) {
	b.size.maxString = max(b.size.maxString, len(s))
	return types.String(s), s != ""
}

func (b *builder) integer(i int64) (ref.Val, bool) { return types.Int(i), i != 0 }

func (b *builder) boolean(v bool) (ref.Val, bool) { return types.Bool(v), v }

// zeroTimestamp stands for every unset time: boxing one would cost each
// decision an allocation.
var zeroTimestamp ref.Val = types.Timestamp{Time: time.Time{}.UTC()}

func (b *builder) timestamp(t time.Time) (ref.Val, bool) {
	if t.IsZero() {
		return zeroTimestamp, false
	}
	return types.Timestamp{Time: t.UTC()}, true
}

func (b *builder) stringMap(m map[string]string) (ref.Val, bool) {
	if len(m) == 0 {
		return b.types.emptyMap, m != nil
	}
	b.size.maxEntries = max(b.size.maxEntries, len(m))
	for k, v := range m {
		b.size.maxString = max(b.size.maxString, len(k), len(v))
	}
	return types.NewStringStringMap(b.types.adapter, m), m != nil
}

// stringList converts l into a list of prebuilt strings: cel-go's own list
// of Go strings converts an element each time it is read.
func (b *builder) stringList(l []string) (ref.Val, bool) {
	if len(l) == 0 {
		return b.types.emptyList, l != nil
	}
	b.size.maxEntries = max(b.size.maxEntries, len(l))
	elems := make([]ref.Val, len(l))
	for i, s := range l {
		b.size.maxString = max(b.size.maxString, len(s))
		elems[i] = types.String(s)
	}
	return types.NewRefValList(b.types.adapter, elems), l != nil
}

// object is one input struct as a CEL value.
type object struct {
	typ *objectType
	// fields are the struct's CEL fields as CEL values, in typ.names order.
	fields []ref.Val
	// set has bit i set when fields[i] is not the Go zero value.
	set uint64
	// native is the pointer to the Go struct the object was built from.
	native any
}

var (
	_ ref.Val            = (*object)(nil)
	_ traits.Indexer     = (*object)(nil)
	_ traits.FieldTester = (*object)(nil)
	_ traits.Zeroer      = (*object)(nil)
)

// ConvertToNative implements ref.Val: an object converts to its Go struct or
// a pointer to it.
func (o *object) ConvertToNative(typeDesc reflect.Type) (any, error) {
	ptr := reflect.ValueOf(o.native)
	switch typeDesc {
	case ptr.Type():
		return o.native, nil
	case ptr.Type().Elem():
		return ptr.Elem().Interface(), nil
	}
	return nil, fmt.Errorf("type conversion error from '%s' to '%v'", o.typ.name, typeDesc)
}

// ConvertToType implements ref.Val.
func (o *object) ConvertToType(typeVal ref.Type) ref.Val {
	switch {
	case typeVal == types.TypeType:
		return o.typ.typeVal
	case typeVal.TypeName() == o.typ.name:
		return o
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.typ.name, typeVal.TypeName())
}

// Equal implements ref.Val: objects of the same type are equal when their
// fields are, and, as with reflect.DeepEqual on the Go structs, the same
// fields are set (a nil map is not an empty one).
func (o *object) Equal(other ref.Val) ref.Val {
	p, ok := other.(*object)
	if !ok || p.typ.name != o.typ.name || p.set != o.set {
		return types.False
	}
	for i := range o.fields {
		if o.fields[i].Equal(p.fields[i]) != types.True {
			return types.False
		}
	}
	return types.True
}

// Type implements ref.Val.
func (o *object) Type() ref.Type { return o.typ.typ }

// Value implements ref.Val. It is the object itself, which the provider's
// field accessors read; ConvertToNative yields the Go struct.
func (o *object) Value() any { return o }

// IsZeroValue implements traits.Zeroer.
func (o *object) IsZeroValue() bool { return o.set == 0 }

// Get implements traits.Indexer, for field access the checker could not
// resolve statically (e.g. through dyn).
func (o *object) Get(field ref.Val) ref.Val {
	i, errVal := o.field(field)
	if errVal != nil {
		return errVal
	}
	return o.fields[i]
}

// IsSet implements traits.FieldTester.
func (o *object) IsSet(field ref.Val) ref.Val {
	i, errVal := o.field(field)
	if errVal != nil {
		return errVal
	}
	return types.Bool(o.set&(1<<i) != 0)
}

func (o *object) field(field ref.Val) (int, ref.Val) {
	name, ok := field.(types.String)
	if !ok {
		return 0, types.MaybeNoSuchOverloadErr(field)
	}
	i := o.typ.index(string(name))
	if i < 0 {
		return 0, types.NewErr("no such field: %s", name)
	}
	return i, nil
}
