package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// The reference of BenchmarkGate: the same rules in Rego, evaluated by OPA's
// Go library with a query prepared once and the input passed per evaluation.

// regoPrelude decides like the gate: every matching rule is collected; Deny
// beats RequireApproval beats AutoApprove; no match requires one approval;
// several RequireApproval rules need the largest of their counts and the
// union of their groups.
const regoPrelude = `package tend.gate

import rego.v1

decision := {
	"outcome": outcome,
	"matches": matches,
	"approvals": approvals,
	"groups": groups,
}

denied := [m | some m in matches; m.outcome == "Deny"]

required := [m | some m in matches; m.outcome == "RequireApproval"]

outcome := "Deny" if {
	count(denied) > 0
} else := "RequireApproval" if {
	count(required) > 0
} else := "AutoApprove" if {
	count(matches) > 0
} else := "RequireApproval"

approvals := max(array.concat([1], [m.approvals | some m in required])) if {
	outcome == "RequireApproval"
} else := 0

groups := sort({g | outcome == "RequireApproval"; some m in required; some g in m.groups})
`

// regoModule returns ps as one Rego module: each rule adds its match to the
// set matches when its body holds.
func regoModule(ps []benchPolicy) string {
	var b strings.Builder
	b.WriteString(regoPrelude)
	for _, p := range ps {
		for _, r := range p.rules {
			groups, err := json.Marshal(append([]string{}, r.groups...))
			if err != nil {
				panic(err)
			}
			fmt.Fprintf(&b, "\nmatches contains {\"policy\": %q, \"rule\": %q, \"outcome\": %q, \"reason\": %q, \"approvals\": %d, \"groups\": %s} if {\n\t%s\n}\n",
				p.name, r.name, r.outcome, r.reason, r.approvals, groups, r.rego)
		}
	}
	return b.String()
}

// prepareOPA compiles ps once into a prepared query for the decision.
func prepareOPA(tb testing.TB, ps []benchPolicy) rego.PreparedEvalQuery {
	tb.Helper()
	pq, err := rego.New(
		rego.Query("data.tend.gate.decision"),
		rego.Module("gate.rego", regoModule(ps)),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("PrepareForEval() error = %v", err)
	}
	return pq
}

// opaInput is in as OPA's input: the fields rules see, shaped as decoded JSON.
func opaInput(in *Input) map[string]any {
	strs := func(l []string) []any {
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out
	}
	strMap := func(m map[string]string) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return map[string]any{
		"action": in.Action,
		"risk":   in.Risk,
		"parameters": map[string]any{
			"rollback": map[string]any{
				"toRevision":   in.Parameters.Rollback.ToRevision,
				"fromRevision": in.Parameters.Rollback.FromRevision,
			},
			"scale":      map[string]any{"replicas": in.Parameters.Scale.Replicas},
			"patchPaths": strs(in.Parameters.PatchPaths),
		},
		"target": map[string]any{
			"apiVersion": in.Target.APIVersion,
			"kind":       in.Target.Kind,
			"namespace":  in.Target.Namespace,
			"name":       in.Target.Name,
			"labels":     strMap(in.Target.Labels),
			"ownerKind":  in.Target.OwnerKind,
			"ownerName":  in.Target.OwnerName,
			"replicas":   in.Target.Replicas,
			"exists":     in.Target.Exists,
		},
		"namespace": map[string]any{
			"name":   in.Namespace.Name,
			"labels": strMap(in.Namespace.Labels),
			"exists": in.Namespace.Exists,
		},
		"proposer": map[string]any{
			"username": in.Proposer.Username,
			"groups":   strs(in.Proposer.Groups),
		},
	}
}

// ruleDecision is what both engines decide from the rules alone.
type ruleDecision struct {
	Outcome   string
	Matches   []string // policy/rule, sorted
	Approvals int
	Groups    []string
}

func gateDecision(tb testing.TB, res Result) ruleDecision {
	tb.Helper()
	d := ruleDecision{Outcome: string(res.Outcome), Groups: res.ApproverGroups}
	for _, r := range res.Reasons {
		if r.Guard != "" {
			tb.Fatalf("Decide() reasons %+v include a guard's: the comparison with OPA covers rules only", res.Reasons)
		}
		if r.Rule != "" {
			d.Matches = append(d.Matches, r.Policy+"/"+r.Rule)
		}
	}
	slices.Sort(d.Matches)
	if res.Outcome == v1alpha1.OutcomeRequireApproval {
		d.Approvals = int(res.RequiredApprovals)
	}
	return d
}

func opaDecision(tb testing.TB, pq rego.PreparedEvalQuery, input map[string]any) ruleDecision {
	tb.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input))
	if err != nil || len(rs) != 1 || len(rs[0].Expressions) != 1 {
		tb.Fatalf("Eval() = %v, %v, want one result", rs, err)
	}
	// Round-trip through JSON into the typed shape.
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		tb.Fatal(err)
	}
	var out struct {
		Outcome string `json:"outcome"`
		Matches []struct {
			Policy string `json:"policy"`
			Rule   string `json:"rule"`
		} `json:"matches"`
		Approvals int      `json:"approvals"`
		Groups    []string `json:"groups"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("decoding OPA's decision %s: %v", raw, err)
	}
	d := ruleDecision{Outcome: out.Outcome, Approvals: out.Approvals}
	for _, m := range out.Matches {
		d.Matches = append(d.Matches, m.Policy+"/"+m.Rule)
	}
	slices.Sort(d.Matches)
	if len(out.Groups) > 0 {
		d.Groups = out.Groups
	}
	return d
}

// checkOPAAgrees checks that the gate and OPA decide alike on the benchmark
// proposal for n policies and on variants of it that make each kind of rule
// match, or none.
func checkOPAAgrees(tb testing.TB, g *Gate, pq rego.PreparedEvalQuery, n int) {
	tb.Helper()
	team := benchTeam(n / 2)
	frozen := benchInput(n)
	frozen.Namespace.Labels = map[string]string{team + ".example.com/frozen": "true"}
	big := benchInput(n)
	big.Proposer.Groups = []string{"tend:agents", benchTeam(0) + "-sre", team + "-sre"}
	none := benchInput(n)
	none.Target.Namespace, none.Namespace.Name = "elsewhere", "elsewhere"

	for _, tt := range []struct {
		name    string
		in      Input
		outcome v1alpha1.Outcome
	}{
		{"benchmark proposal", benchInput(n), v1alpha1.OutcomeAutoApprove},
		{"frozen namespace", frozen, v1alpha1.OutcomeDeny},
		{"big workload", big, v1alpha1.OutcomeRequireApproval},
		{"no rule matches", none, v1alpha1.OutcomeRequireApproval},
	} {
		want := gateDecision(tb, g.Decide(tt.in, noon))
		if want.Outcome != string(tt.outcome) {
			tb.Fatalf("%s: gate decided %+v, want %s", tt.name, want, tt.outcome)
		}
		if diff := cmp.Diff(want, opaDecision(tb, pq, opaInput(&tt.in))); diff != "" {
			tb.Fatalf("%s: OPA decides unlike the gate (-gate +OPA):\n%s", tt.name, diff)
		}
	}
}

// TestGateOPAAgree checks the Rego translation of the benchmark policies.
func TestGateOPAAgree(t *testing.T) {
	for _, n := range []int{1, 10} {
		ps := benchPolicies(n)
		g := newGate(t, Options{}, gatePolicies(ps)...)
		checkOPAAgrees(t, g, prepareOPA(t, ps), n)
	}
}

// BenchmarkGateOPA is BenchmarkGate with OPA deciding the same rules.
func BenchmarkGateOPA(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			g, in := benchGate(b, n)
			pq := prepareOPA(b, benchPolicies(n))
			checkOPAAgrees(b, g, pq, n)
			input := opaInput(&in)
			ctx := context.Background()
			b.ReportAllocs()
			timeDecisions(b, func() {
				if _, err := pq.Eval(ctx, rego.EvalInput(input)); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
