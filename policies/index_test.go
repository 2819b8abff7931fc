package policies

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

func TestRulePreconditions(t *testing.T) {
	type pre struct {
		Path       string
		Key        string
		Member     bool
		Optional   bool
		Def, Value string
	}
	tests := []struct {
		when string
		want []pre
	}{
		{`proposal.action == "RollbackWorkload"`, []pre{{Path: "action", Value: "RollbackWorkload"}}},
		{`"shop" == proposal.namespace.name && proposal.target.replicas > 3`, []pre{{Path: "namespace.name", Value: "shop"}}},
		{`proposal.target.labels["tier"] == "db" && (proposal.risk == "High" && proposal.target.kind == "StatefulSet")`, []pre{
			{Path: "target.labels", Key: "tier", Value: "db"},
			{Path: "risk", Value: "High"},
			{Path: "target.kind", Value: "StatefulSet"},
		}},
		{`proposal.namespace.labels[?"tend.dev/protected"].orValue("") == "true"`, []pre{{Path: "namespace.labels", Key: "tend.dev/protected", Optional: true, Value: "true"}}},
		{`"x" == proposal.target.labels[?"a"].orValue("x")`, []pre{{Path: "target.labels", Key: "a", Optional: true, Def: "x", Value: "x"}}},
		{`proposal.target.replicas > 3 && "sre" in proposal.proposer.groups`, []pre{{Path: "proposer.groups", Member: true, Value: "sre"}}},
		{`"sre" in proposal.proposer.groups && "ops" in proposal.proposer.groups`, []pre{
			{Path: "proposer.groups", Member: true, Value: "sre"},
			{Path: "proposer.groups", Member: true, Value: "ops"},
		}},
		// Not preconditions: other operators, other types, dynamic paths,
		// presence tests, anything below || or !, or in a comprehension.
		{`proposal.action != "RollbackWorkload"`, nil},
		{`proposal.target.replicas == 3`, nil},
		{`proposal.target.exists == true`, nil},
		{`dyn(proposal).action == "RollbackWorkload"`, nil},
		{`proposal.action == "A" || proposal.action == "B"`, nil},
		{`!(proposal.action == "A")`, nil},
		{`proposal.?target.?name.orValue("") == "web"`, nil},
		{`proposal.target.labels[?"a"].orValue(proposal.risk) == "x"`, nil},
		{`proposal.proposer.groups.exists(g, g == "sre")`, nil},
		{`proposal.action == proposal.risk`, nil},
		{`proposal.proposer.username in proposal.proposer.groups`, nil},
		{`"sre" in ["sre"]`, nil},
		{`"tier" in proposal.target.labels`, nil},
		{`!("sre" in proposal.proposer.groups)`, nil},
		{`[proposal][0].action == "A"`, nil},
	}
	g := newGate(t, Options{})
	for _, tt := range tests {
		ast, iss := g.env.Compile(tt.when)
		if iss.Err() != nil {
			t.Fatalf("Compile(%s) error = %v", tt.when, iss.Err())
		}
		var got []pre
		for _, c := range rulePreconditions(g.inputs, ast) {
			p := pre{Member: c.member, Optional: c.optional, Def: c.def, Value: c.value, Key: c.key}
			for path, slot := range g.inputs.slots {
				if slot == c.slot {
					p.Path = path
				}
			}
			got = append(got, p)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("rulePreconditions(%s) mismatch (-want +got):\n%s", tt.when, diff)
		}
	}
}

// dropIndex makes g evaluate every rule: it forgets the preconditions of the
// loaded rules and rebuilds the scopes.
func dropIndex(g *Gate) {
	snap := g.snap.Load()
	for i := range snap.policies {
		for j := range snap.policies[i].rules {
			snap.policies[i].rules[j].preconditions = nil
		}
	}
	snap.index()
}

// TestIndexAgreesWithEvaluation decides with the rule index and without, with
// a context that cannot end and one that can, and requires the same results,
// messages included.
func TestIndexAgreesWithEvaluation(t *testing.T) {
	whens := []string{
		`proposal.namespace.name == "a" && proposal.target.labels["missing"] == "x"`,
		`proposal.target.labels["missing"] == "x" && proposal.namespace.name == "b"`,
		`proposal.namespace.labels[?"k"].orValue("") == "v"`,
		`proposal.namespace.labels[?"k"].orValue("v") == "v"`,
		`proposal.namespace.labels["k"] == "v"`,
		`"RollbackWorkload" == proposal.action && proposal.target.replicas > 1`,
		`proposal.namespace.labels[?"k"].orValue("") == "v" && proposal.namespace.labels[?"j"].orValue("") == "w"`,
		`proposal.namespace.labels[?"j"].orValue("") == "w" && proposal.target.labels[?"app"].orValue("") == "web"`,
		`proposal.target.labels[?"app"].orValue("") == "web" && proposal.parameters.patchPaths.all(p, p.startsWith("/spec"))`,
		`proposal.parameters.patchPaths.all(a, proposal.parameters.patchPaths.all(b, a == b || a != b)) && proposal.namespace.name == "a"`,
		`proposal.namespace.name == "a" && proposal.namespace.name == "b"`,
		`proposal.target.kind == "Deployment" && 1 / (proposal.target.replicas - 3) > 0`,
		`proposal.parameters.patchPaths.exists(p, p == "none") && proposal.namespace.name == "a"`,
		`proposal.parameters.patchPaths.all(p, p.startsWith("/spec/")) && proposal.namespace.name == "a"`,
		`"sre" in proposal.proposer.groups && proposal.target.replicas > 1`,
		`"sre" in proposal.proposer.groups && "ops" in proposal.proposer.groups`,
		`"ops" in proposal.proposer.groups && 1 / (proposal.target.replicas - 3) > 0`,
		`proposal.namespace.name == "b" && "dev" in proposal.proposer.groups`,
	}
	var policies []v1alpha1.GatePolicy
	outcomes := []v1alpha1.Outcome{v1alpha1.OutcomeAutoApprove, v1alpha1.OutcomeRequireApproval, v1alpha1.OutcomeDeny}
	for i, w := range whens {
		policies = append(policies, policy(fmt.Sprintf("p%02d", i), nil, rule("r", w, outcomes[i%3], "Matched")))
	}
	g := newGate(t, Options{CostLimit: 20000, InterruptCheckFrequency: 1}, policies...)
	all := newGate(t, Options{CostLimit: 20000, InterruptCheckFrequency: 1}, policies...)
	dropIndex(all)

	var inputs []Input
	for _, ns := range []string{"a", "b", "c"} {
		for _, labels := range []map[string]string{nil, {"k": "v"}, {"k": "w", "j": "w"}, {"j": "w"}} {
			in := input(v1alpha1.ActionRollbackWorkload, ns, labels)
			in.Target.Labels = map[string]string{"app": "web"}
			inputs = append(inputs, in)
		}
	}
	big := inputs[1]
	big.Parameters.PatchPaths = slices.Repeat([]string{"/spec/x"}, 200)
	inputs = append(inputs, big)
	huge := inputs[5]
	huge.Parameters.PatchPaths = slices.Repeat([]string{"/spec/x"}, 5000)
	inputs = append(inputs, huge)
	for _, groups := range [][]string{nil, {}, {"sre"}, {"ops", "sre"}, {"dev", "x", "ops"}} {
		in := inputs[4]
		in.Proposer.Groups = groups
		inputs = append(inputs, in)
	}
	scale := inputs[2]
	scale.Action = string(v1alpha1.ActionScaleWorkload)
	inputs = append(inputs, scale)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	skippedAny := false
	for i, in := range inputs {
		for _, ctx := range []context.Context{context.Background(), t.Context(), cancelled} {
			want := all.DecideContext(ctx, in, noon)
			got := g.DecideContext(ctx, in, noon)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("input %d: DecideContext() with the index differs from evaluating every rule (-want +got):\n%s", i, diff)
			}
		}
		sc := g.snap.Load().scopeOf(in.Action)
		_, slots, size := g.inputs.newInput(&in)
		n := sc.index.skipped(slots, size.within(), &skipBuffer{}).count()
		skippedAny = skippedAny || n > 0
	}
	if !skippedAny {
		t.Error("the index skipped no rule for any input")
	}
}

// BenchmarkIndex measures finding the rules to skip for the benchmark
// proposal.
func BenchmarkIndex(b *testing.B) {
	g, in := benchGate(b, 100)
	sc := g.snap.Load().scopeOf(in.Action)
	_, slots, _ := g.inputs.newInput(&in)
	var buf skipBuffer
	n := 0
	for b.Loop() {
		n = sc.index.skipped(slots, true, &buf).count()
	}
	b.ReportMetric(float64(n), "skipped")
}

// trackAll makes g evaluate every rule with its tracked program, as if no
// rule's cost were bounded, and so without the index.
func trackAll(g *Gate) {
	snap := g.snap.Load()
	for i := range snap.policies {
		for j := range snap.policies[i].rules {
			snap.policies[i].rules[j].cost = costUnbounded
		}
	}
	snap.index()
}

// FuzzFastPathAgrees checks that a gate decides alike with its fast path
// (untracked programs reading slots, the rule index) and without.
func FuzzFastPathAgrees(f *testing.F) {
	for _, e := range costExprs {
		f.Add(e, "shop", "v", int64(3), 2)
	}
	f.Add(`proposal.namespace.name == "shop" && proposal.namespace.labels[?"k"].orValue("") == "v"`, "shop", "v", int64(3), 0)
	f.Add(`proposal.parameters.patchPaths.all(p, p.startsWith("/spec/")) && proposal.namespace.name == "a"`, "b", "", int64(1), 5000)
	f.Add(`"tend:agents" in proposal.proposer.groups && proposal.target.replicas > 2`, "shop", "v", int64(3), 0)
	f.Add(`"sre" in proposal.proposer.groups || proposal.target.replicas > 2`, "shop", "v", int64(3), 0)
	opts := Options{CostLimit: 20000, InterruptCheckFrequency: 1}
	f.Fuzz(func(t *testing.T, when, ns, label string, replicas int64, paths int) {
		if paths < 0 || paths > 5000 {
			return
		}
		ps := []v1alpha1.GatePolicy{
			policy("a", nil, rule("r", when, v1alpha1.OutcomeAutoApprove, "Fuzz")),
			policy("b", nil, rule("r", `proposal.namespace.name == "`+ns+`" && `+when, v1alpha1.OutcomeDeny, "Fuzz")),
		}
		fast, all, tracked := newGate(t, opts), newGate(t, opts), newGate(t, opts)
		for _, g := range []*Gate{fast, all, tracked} {
			g.Load(ps)
		}
		dropIndex(all)
		trackAll(tracked)

		in := input(v1alpha1.ActionPatchWorkload, ns, map[string]string{"k": label})
		in.Target.Replicas = replicas
		in.Target.Labels = map[string]string{"app": label}
		in.Parameters.PatchPaths = slices.Repeat([]string{"/spec/" + label}, paths)
		for _, ctx := range []context.Context{context.Background(), t.Context()} {
			want := tracked.DecideContext(ctx, in, noon)
			if diff := cmp.Diff(want, all.DecideContext(ctx, in, noon)); diff != "" {
				t.Fatalf("untracked programs decide unlike tracked ones (-tracked +untracked):\n%s", diff)
			}
			if diff := cmp.Diff(want, fast.DecideContext(ctx, in, noon)); diff != "" {
				t.Fatalf("the index decides unlike evaluation (-tracked +indexed):\n%s", diff)
			}
		}
	})
}
