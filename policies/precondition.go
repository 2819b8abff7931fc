package policies

import (
	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// A precondition is a top-level conjunct of a rule that compares a part of
// the input with a literal, in one of the forms
//
//	proposal.<path> == "<value>"                               (a string field)
//	proposal.<path>["<key>"] == "<value>"                      (a string map)
//	proposal.<path>[?"<key>"].orValue("<default>") == "<value>"
//	"<value>" in proposal.<path>                               (a list of strings)
//
// (the comparisons also with the sides swapped). When it is false for the input, the rule is
// false whatever its other conjuncts would yield (in CEL, false && error is
// false, and an interrupted comprehension is an error too), so the rule
// need not be evaluated; a ruleIndex finds such rules for a decision without
// looking at each. The comparison itself cannot fail, except on a missing key
// without [?...], which fails the rule: that rule is then evaluated. Only the
// evaluation of a rule that cannot exceed the cost limit may be skipped: the
// limit aborts an evaluation, whatever the other conjuncts.
type precondition struct {
	// slot is the field's; see fieldSlots.
	slot int
	// keyed is true for a map field, whose entry key is compared.
	keyed bool
	// member is true for a list of strings that must hold value; membership
	// in a list of strings cannot fail.
	member bool
	key    string
	// optional is true for m[?key].orValue(def), which reads def for a
	// missing key.
	optional bool
	def      string
	value    string
}

// rulePreconditions returns the preconditions among the top-level conjuncts
// of a checked rule.
func rulePreconditions(ts *inputTypes, ast *cel.Ast) []precondition {
	var out []precondition
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || len(args) != 2 {
			return
		}
		switch call.FunctionName() {
		case operators.LogicalAnd:
			walk(args[0])
			walk(args[1])
		case operators.In:
			if c, ok := membership(ts, ast, args[0], args[1]); ok {
				out = append(out, c)
			}
		case operators.Equals:
			if c, ok := equality(ts, ast, args[0], args[1]); ok {
				out = append(out, c)
			} else if c, ok := equality(ts, ast, args[1], args[0]); ok {
				out = append(out, c)
			}
		}
	}
	walk(ast.NativeRep().Expr())
	return out
}

// equality returns the precondition lhs == literal, if it is one.
func equality(ts *inputTypes, ast *cel.Ast, lhs, literal celast.Expr) (precondition, bool) {
	value, ok := stringLiteral(literal)
	if !ok {
		return precondition{}, false
	}
	c := precondition{value: value}
	// m[?key].orValue(def)
	if lhs.Kind() == celast.CallKind {
		call := lhs.AsCall()
		if call.FunctionName() == "orValue" && call.IsMemberFunction() && len(call.Args()) == 1 {
			if c.def, ok = stringLiteral(call.Args()[0]); !ok {
				return precondition{}, false
			}
			c.optional = true
			lhs = call.Target()
		}
	}
	// m[key] or m[?key]
	if lhs.Kind() == celast.CallKind {
		call := lhs.AsCall()
		index := operators.Index
		if c.optional {
			index = operators.OptIndex
		}
		if call.FunctionName() != index || call.IsMemberFunction() || len(call.Args()) != 2 {
			return precondition{}, false
		}
		if c.key, ok = stringLiteral(call.Args()[1]); !ok {
			return precondition{}, false
		}
		c.keyed = true
		lhs = call.Args()[0]
	} else if c.optional {
		return precondition{}, false
	}
	// Conjuncts at the top of a rule are outside any comprehension, so
	// proposal is the variable.
	path, ok := selectPath(lhs)
	if !ok {
		return precondition{}, false
	}
	if c.slot, ok = ts.slots[path]; !ok {
		return precondition{}, false
	}
	t := ast.NativeRep().GetType(lhs.ID())
	if c.keyed {
		return c, t.Kind() == types.MapKind && len(t.Parameters()) == 2 &&
			t.Parameters()[0].IsExactType(types.StringType) && t.Parameters()[1].IsExactType(types.StringType)
	}
	return c, t.IsExactType(types.StringType)
}

// membership returns the precondition literal in list, if it is one.
func membership(ts *inputTypes, ast *cel.Ast, literal, list celast.Expr) (precondition, bool) {
	value, ok := stringLiteral(literal)
	if !ok {
		return precondition{}, false
	}
	path, ok := selectPath(list)
	if !ok {
		return precondition{}, false
	}
	slot, ok := ts.slots[path]
	if !ok {
		return precondition{}, false
	}
	t := ast.NativeRep().GetType(list.ID())
	if t.Kind() != types.ListKind || len(t.Parameters()) != 1 || !t.Parameters()[0].IsExactType(types.StringType) {
		return precondition{}, false
	}
	return precondition{slot: slot, member: true, value: value}, true
}

func stringLiteral(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}
