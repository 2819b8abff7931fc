package policies

import (
	"fmt"
	"testing"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// BenchmarkDecide measures one decision against n policies of three rules
// each, every policy in scope of the action.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			policies := make([]v1alpha1.GatePolicy, n)
			for i := range policies {
				policies[i] = policy(fmt.Sprintf("p%03d", i), nil,
					rule("protected", `proposal.namespace.labels[?"tend.dev/protected"].orValue("") == "true"`, v1alpha1.OutcomeDeny, "Protected"),
					approvalRule("big", `proposal.target.replicas > 50 && "sre" in proposal.proposer.groups`, 2, []string{"sre"}, "Big"),
					rule("rollback", `proposal.action == "RollbackWorkload" && proposal.parameters.rollback.toRevision < proposal.parameters.rollback.fromRevision`, v1alpha1.OutcomeAutoApprove, "SafeRollback"),
				)
			}
			g, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range g.Load(policies) {
				if !r.Valid {
					b.Fatalf("policy %s invalid: %v", r.Name, r.Err)
				}
			}
			in := input(v1alpha1.ActionRollbackWorkload, "shop", map[string]string{"team": "shop"})
			if got := g.Decide(in, noon); got.Outcome != v1alpha1.OutcomeAutoApprove {
				b.Fatalf("Decide() = %+v, want AutoApprove", got)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.Decide(in, noon)
			}
		})
	}
}
