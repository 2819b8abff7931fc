package policies

import (
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
)

// Every field of the input, at any depth, has a slot: its position among the
// field values newInput builds, which are laid out alike for every input.
// The programs that run without cost tracking read a field path such as
// proposal.target.replicas from its slot, in one step, rather than field by
// field from the variable proposal; see flattenFieldPaths. (The programs
// that track cost read field by field, as the cost of a field path counts
// its steps.)

// slotMark starts the name of a slot, which no CEL identifier can start with;
// the second and last byte of the name is the slot.
const slotMark = 0

// maxSlots is how many slots a name can address.
const maxSlots = 256

// slotName returns the name the planner resolves slot i by.
func slotName(i int) string { return string([]byte{slotMark, byte(i)}) }

// slotOf returns the slot a name resolves to.
func slotOf(name string) (int, bool) {
	if len(name) != 2 || name[0] != slotMark {
		return 0, false
	}
	return int(name[1]), true
}

// fieldSlots returns the slot of every field path of the input, e.g.
// "target.replicas", by building a zero input and finding where each
// object's fields lie among the values.
func fieldSlots(ts *inputTypes) map[string]int {
	var in Input
	root, slots, _ := ts.newInput(&in)
	out := map[string]int{}
	var walk func(prefix string, o *object)
	walk = func(prefix string, o *object) {
		base := -1
		for i := range slots {
			if len(o.fields) > 0 && &slots[i] == &o.fields[0] {
				base = i
				break
			}
		}
		if base < 0 {
			return
		}
		for i, name := range o.typ.names {
			if base+i < maxSlots {
				out[prefix+name] = base + i
			}
			if sub, ok := o.fields[i].(*object); ok {
				walk(prefix+name+".", sub)
			}
		}
	}
	if o, ok := root.(*object); ok {
		walk("", o)
	}
	return out
}

// flattenFieldPaths makes the planner read every field path from the
// variable proposal in ast (outside comprehensions that shadow the variable)
// from its slot: a select the checker's reference map names is planned as
// a variable of that name.
func flattenFieldPaths(ast *cel.Ast, slots map[string]int) {
	native := ast.NativeRep()
	var walk func(e celast.Expr, shadowed bool)
	walk = func(e celast.Expr, shadowed bool) {
		switch e.Kind() {
		case celast.SelectKind:
			sel := e.AsSelect()
			if !shadowed && !sel.IsTestOnly() {
				if path, ok := selectPath(e); ok {
					if slot, ok := slots[path]; ok {
						native.SetReference(e.ID(), celast.NewIdentReference(slotName(slot), nil))
						return
					}
				}
			}
			walk(sel.Operand(), shadowed)
		case celast.CallKind:
			call := e.AsCall()
			if call.IsMemberFunction() {
				walk(call.Target(), shadowed)
			}
			for _, a := range call.Args() {
				walk(a, shadowed)
			}
		case celast.ListKind:
			for _, el := range e.AsList().Elements() {
				walk(el, shadowed)
			}
		case celast.MapKind:
			for _, entry := range e.AsMap().Entries() {
				me := entry.AsMapEntry()
				walk(me.Key(), shadowed)
				walk(me.Value(), shadowed)
			}
		case celast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				walk(f.AsStructField().Value(), shadowed)
			}
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange(), shadowed)
			walk(c.AccuInit(), shadowed)
			inner := shadowed || c.IterVar() == "proposal" || c.IterVar2() == "proposal" || c.AccuVar() == "proposal"
			walk(c.LoopCondition(), inner)
			walk(c.LoopStep(), inner)
			walk(c.Result(), inner)
		}
	}
	walk(native.Expr(), false)
}

// selectPath returns "f1.f2" for proposal.f1.f2.
func selectPath(e celast.Expr) (string, bool) {
	var names []string
	for e.Kind() == celast.SelectKind {
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return "", false
		}
		names = append(names, sel.FieldName())
		e = sel.Operand()
	}
	if e.Kind() != celast.IdentKind || e.AsIdent() != "proposal" || len(names) == 0 {
		return "", false
	}
	var b strings.Builder
	for i := len(names) - 1; i >= 0; i-- {
		b.WriteString(names[i])
		if i > 0 {
			b.WriteByte('.')
		}
	}
	return b.String(), true
}
