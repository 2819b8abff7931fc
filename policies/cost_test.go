package policies

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// costExprs are rules of every shape the cost estimate has to bound: field
// paths, optional and presence tests, map and list lookups, comprehensions,
// string, set and time functions.
var costExprs = []string{
	`true`,
	`proposal.action == "RollbackWorkload"`,
	`proposal.action == proposal.risk`,
	`proposal.target.name + "-" + proposal.target.namespace == "a-b"`,
	`proposal.parameters.rollback.toRevision < proposal.parameters.rollback.fromRevision`,
	`proposal.target.replicas > 50 && "sre" in proposal.proposer.groups`,
	`proposal.namespace.labels[?"tend.dev/protected"].orValue("") == "true"`,
	`proposal.target.labels["app"] == "web"`,
	`"app" in proposal.target.labels && has(proposal.target.ownerKind)`,
	`proposal.?target.?name.orValue("") == "x" && proposal.?parameters.?scale.?replicas.orValue(1) == 1`,
	`has(proposal.parameters.scale) || !has(proposal.namespace.labels)`,
	`proposal.parameters.patchPaths.all(p, p.startsWith("/spec/"))`,
	`proposal.parameters.patchPaths.exists(p, p.endsWith("/image") || p.contains("env"))`,
	`proposal.parameters.patchPaths.exists_one(p, p.matches("^/spec/[a-z]+$"))`,
	`proposal.parameters.patchPaths.map(p, p.size()).all(n, n < 100)`,
	`proposal.parameters.patchPaths.filter(p, p.startsWith("/metadata")).size() == 0`,
	`proposal.parameters.patchPaths.all(a, proposal.parameters.patchPaths.all(b, a == b || a != b))`,
	`proposal.target.labels.all(k, k.startsWith("app") || proposal.target.labels[k] != "")`,
	`proposal.proposer.groups.exists(g, g.lowerAscii().split(":").size() > 1)`,
	`proposal.proposer.username.replace("system:", "").indexOf(":") >= 0`,
	`proposal.proposer.groups.join(",").contains("sre")`,
	`proposal.target.name.substring(0, 1) == "w" && proposal.target.name.trim() != ""`,
	`sets.contains(proposal.proposer.groups, ["sre"]) || sets.intersects(proposal.proposer.groups, ["admin", "oncall"])`,
	`size(proposal.target.labels) + size(proposal.proposer.groups) + proposal.target.name.size() < 100`,
	`now.getHours("Europe/Berlin") < 6 || now.getDayOfWeek() == 0`,
	`now - timestamp("2026-01-01T00:00:00Z") > duration("24h")`,
	`type(proposal.target) == policies.Target && dyn(proposal).target.name == "web"`,
	`proposal.target == proposal.target && proposal.namespace != policies.Namespace{name: "x"}`,
	`proposal.parameters.patchPaths == ["/spec/replicas"] || proposal.target.labels == {"app": "web"}`,
	`[proposal.action, proposal.risk].exists(x, x in proposal.proposer.groups)`,
	`{"a": proposal.target.name}.all(k, k == "a")`,
	`proposal.target.apiVersion.split("/").size() == 2 && int(proposal.target.replicas) >= 0`,
	`string(proposal.target.replicas) == "3" && proposal.target.kind.upperAscii() == "DEPLOYMENT"`,
}

// costInputs returns inputs small and large, some beyond the size bounds.
func costInputs() []Input {
	plain := input(v1alpha1.ActionPatchWorkload, "shop", map[string]string{"team": "shop"})
	plain.Parameters.PatchPaths = []string{"/spec/replicas", "/metadata/labels/x"}
	plain.Proposer.Groups = []string{"sre", "tend:agents"}

	// At the bounds: every string and collection as large as allowed.
	full := plain
	long := strings.Repeat("x", boundedString)
	full.Proposer.Username = long
	full.Target.Name = long
	full.Parameters.PatchPaths = make([]string, boundedEntries)
	full.Proposer.Groups = make([]string, boundedEntries)
	full.Target.Labels = make(map[string]string, boundedEntries)
	for i := range boundedEntries {
		s := "/spec/" + strings.Repeat("a", boundedString-8) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		full.Parameters.PatchPaths[i] = s
		full.Proposer.Groups[i] = s[1:]
		full.Target.Labels[s] = s
	}

	// Beyond the bounds.
	big := full
	big.Parameters.PatchPaths = slices.Concat(full.Parameters.PatchPaths, full.Parameters.PatchPaths)
	big.Target.Name = strings.Repeat("y", 10*boundedString)
	return []Input{plain, full, big}
}

// TestCostEstimateBoundsActualCost checks the premise of untracked
// evaluation: a rule's actual cost never exceeds the estimate it was
// classified by (for every input when it is costBounded, for inputs within
// the size bounds when it is costBoundedSmall). The inputs include ones at
// the size bounds.
func TestCostEstimateBoundsActualCost(t *testing.T) {
	g := newGate(t, Options{})
	inputs := costInputs()
	for _, expr := range costExprs {
		ast, iss := g.env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("Compile(%s) error = %v", expr, iss.Err())
		}
		prg, err := g.env.Program(ast, cel.CostTracking(nil), cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatalf("Program(%s) error = %v", expr, err)
		}
		anySize, err := g.env.EstimateCost(ast, unknownSizes{})
		if err != nil {
			t.Fatalf("EstimateCost(%s) error = %v", expr, err)
		}
		bounded, err := g.env.EstimateCost(ast, sizeEstimator{})
		if err != nil {
			t.Fatalf("EstimateCost(%s) with size bounds error = %v", expr, err)
		}
		class := g.costBound(ast)
		for i, in := range inputs {
			proposal, slots, size := g.inputs.newInput(&in)
			_, det, err := prg.Eval(&activation{proposal: proposal, slots: slots, now: types.Timestamp{Time: noon}})
			if err != nil && !strings.Contains(err.Error(), "no such key") {
				t.Errorf("Eval(%s) on input %d error = %v", expr, i, err)
				continue
			}
			actual := *det.ActualCost()
			if class == costBounded && actual > anySize.Max {
				t.Errorf("%s on input %d: actual cost %d > estimate %d for any input", expr, i, actual, anySize.Max)
			}
			if class >= costBoundedSmall && size.within() && actual > bounded.Max {
				t.Errorf("%s on input %d: actual cost %d > estimate %d within the size bounds", expr, i, actual, bounded.Max)
			}
		}
	}
}

// TestCostLimitBeyondSizeBounds checks that a rule whose cost is bounded only
// for inputs within the size bounds is still held to the limit for a larger
// input, and runs untracked within them.
func TestCostLimitBeyondSizeBounds(t *testing.T) {
	p := policy("p", nil, rule("paths", `proposal.parameters.patchPaths.all(p, p.startsWith("/spec/"))`, v1alpha1.OutcomeAutoApprove, "Fine"))
	g := newGate(t, Options{CostLimit: 1000}, p)
	if r := &g.snap.Load().policies[0].rules[0]; r.cost != costBoundedSmall || r.untracked == nil {
		t.Fatalf("rule cost bound = %d, want costBoundedSmall with an untracked program", r.cost)
	}

	// A rollback, so that no guard on patches chimes in.
	in := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	in.Parameters.PatchPaths = make([]string, boundedEntries)
	for i := range in.Parameters.PatchPaths {
		in.Parameters.PatchPaths[i] = "/spec/replicas"
	}
	if got := g.Decide(in, noon); got.Outcome != v1alpha1.OutcomeAutoApprove {
		t.Errorf("Decide() with %d patch paths = %+v, want AutoApprove", boundedEntries, got)
	}

	in.Parameters.PatchPaths = slices.Repeat(in.Parameters.PatchPaths, 4)
	got := g.Decide(in, noon)
	if got.Outcome != v1alpha1.OutcomeDeny || got.Reasons[0].Code != ReasonEvaluationError || !strings.Contains(got.Reasons[0].Message, "cost limit exceeded") {
		t.Errorf("Decide() with %d patch paths = %+v, want Deny for the cost limit", len(in.Parameters.PatchPaths), got)
	}
}

// TestCostBoundClasses pins how typical rules are classified.
func TestCostBoundClasses(t *testing.T) {
	tests := []struct {
		when string
		want costBound
	}{
		{`proposal.action == "RollbackWorkload" && proposal.target.replicas > 3`, costBounded},
		{`proposal.namespace.labels[?"tend.dev/protected"].orValue("") == "true"`, costBounded},
		{`proposal.action == proposal.risk`, costBoundedSmall},
		{`"sre" in proposal.proposer.groups`, costBoundedSmall},
		{`proposal.parameters.patchPaths.all(p, p.startsWith("/spec/"))`, costBoundedSmall},
		{`proposal.parameters.patchPaths.all(a, proposal.parameters.patchPaths.all(b, a == b || a != b))`, costUnbounded},
		{`["a", "b"].all(x, x.size() < 2 && x in proposal.target.labels)`, costBounded},
		{`proposal.action.startsWith("Roll") && proposal.target.name.matches("^web-[0-9]+$")`, costBoundedSmall},
		// Extension functions are always tracked: the estimate of join
		// assumes one-character elements.
		{`proposal.proposer.groups.join(",").contains("sre")`, costUnbounded},
		{`proposal.action.lowerAscii() == "rollbackworkload"`, costUnbounded},
		{`sets.contains(proposal.proposer.groups, ["sre"])`, costUnbounded},
	}
	g := newGate(t, Options{})
	for _, tt := range tests {
		ast, iss := g.env.Compile(tt.when)
		if iss.Err() != nil {
			t.Fatalf("Compile(%s) error = %v", tt.when, iss.Err())
		}
		if got := g.costBound(ast); got != tt.want {
			t.Errorf("costBound(%s) = %d, want %d", tt.when, got, tt.want)
		}
	}
}

// TestUntrackedAgreesWithTracked checks that a rule's untracked program, which
// reads field paths from their slots, yields what its tracked program yields.
func TestUntrackedAgreesWithTracked(t *testing.T) {
	exprs := append(slices.Clone(costExprs),
		// Comprehension variables that shadow proposal.
		`[policies.Input{action: "x"}].all(proposal, proposal.action == "x")`,
		`proposal.proposer.groups.exists(proposal, proposal == "sre") || proposal.proposer.username == "alice"`,
		`[proposal.target].exists(t, t.name == proposal.target.name && t == proposal.target)`,
		`has(proposal.target.name) && has(proposal.parameters.scale) == (proposal.parameters.scale.replicas != 0)`,
		`proposal.target.labels.exists(k, proposal.target.labels[k] == proposal.namespace.name)`,
		`proposal.namespace == proposal.namespace && type(proposal.parameters.rollback) == policies.RollbackParameters`,
		`proposal.namespace.labels[?"team"].orValue("") + proposal.target.name == "shopweb"`,
	)
	g := newGate(t, Options{})
	inputs := costInputs()
	untracked := 0
	for _, expr := range exprs {
		var r compiledRule
		if err := g.compileWhen(&r, expr); err != nil {
			t.Fatalf("compileWhen(%s) error = %v", expr, err)
		}
		if r.untracked == nil {
			continue
		}
		untracked++
		for i, in := range inputs {
			proposal, slots, _ := g.inputs.newInput(&in)
			act := &activation{proposal: proposal, slots: slots, now: types.Timestamp{Time: noon}}
			want, _, wantErr := r.program.Eval(act)
			got, _, gotErr := r.untracked.Eval(act)
			if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || (wantErr == nil && want.Equal(got) != types.True) {
				t.Errorf("%s on input %d: untracked = %v, %v; tracked = %v, %v", expr, i, got, gotErr, want, wantErr)
			}
		}
	}
	if untracked < len(exprs)/2 {
		t.Errorf("only %d of %d rules have an untracked program", untracked, len(exprs))
	}
}

// TestFieldSlots checks that each field path's slot holds the field.
func TestFieldSlots(t *testing.T) {
	g := newGate(t, Options{})
	in := costInputs()[0]
	proposal, slots, _ := g.inputs.newInput(&in)
	if len(g.inputs.slots) != g.inputs.values {
		t.Errorf("%d field paths have a slot, want %d", len(g.inputs.slots), g.inputs.values)
	}
	for path, slot := range g.inputs.slots {
		v := proposal
		for _, name := range strings.Split(path, ".") {
			o := v.(*object)
			v = o.fields[o.typ.index(name)]
		}
		if slots[slot] != v {
			t.Errorf("slot %d of %s = %v, want %v", slot, path, slots[slot], v)
		}
	}
}
