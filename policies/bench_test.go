package policies

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// The benchmarks decide one proposal against n distinct policies of three
// rules each, every policy in scope of the action: policy i belongs to team
// i, in namespace team-<i>, and its rules name the team's own label key,
// group and replica threshold, so that no two rules are the same expression.
// The proposal is a rollback in the namespace of team n/2: that team's
// rollback rule auto-approves; no other rule matches, though the replica
// threshold of the teams below 40 holds, so their rules test group
// membership too.

// benchRule is one rule of the benchmark policies, in CEL and in Rego (the
// body of a Rego rule over input, as opaInput shapes it).
type benchRule struct {
	name, reason string
	outcome      v1alpha1.Outcome
	approvals    int32
	groups       []string
	cel, rego    string
}

type benchPolicy struct {
	name  string
	rules []benchRule
}

func benchTeam(i int) string { return fmt.Sprintf("team-%03d", i) }

// benchPolicies returns the n benchmark policies, in name order.
func benchPolicies(n int) []benchPolicy {
	ps := make([]benchPolicy, n)
	for i := range ps {
		team := benchTeam(i)
		ps[i] = benchPolicy{name: "p-" + team, rules: []benchRule{
			{
				name: "frozen", reason: "Frozen", outcome: v1alpha1.OutcomeDeny,
				cel:  fmt.Sprintf(`proposal.namespace.labels[?"%s.example.com/frozen"].orValue("") == "true"`, team),
				rego: fmt.Sprintf(`input.namespace.labels["%s.example.com/frozen"] == "true"`, team),
			},
			{
				name: "big", reason: "BigWorkload", outcome: v1alpha1.OutcomeRequireApproval,
				approvals: 2, groups: []string{team + "-sre"},
				cel: fmt.Sprintf(`proposal.target.replicas > %d && "%s-sre" in proposal.proposer.groups`, i, team),
				rego: fmt.Sprintf(`input.target.replicas > %d
	"%s-sre" in input.proposer.groups`, i, team),
			},
			{
				name: "rollback", reason: "SafeRollback", outcome: v1alpha1.OutcomeAutoApprove,
				cel: fmt.Sprintf(`proposal.action == "RollbackWorkload" && proposal.namespace.name == "%s" && `+
					`proposal.parameters.rollback.toRevision < proposal.parameters.rollback.fromRevision`, team),
				rego: fmt.Sprintf(`input.action == "RollbackWorkload"
	input.namespace.name == "%s"
	input.parameters.rollback.toRevision < input.parameters.rollback.fromRevision`, team),
			},
		}}
	}
	return ps
}

// gatePolicies returns ps as GatePolicies.
func gatePolicies(ps []benchPolicy) []v1alpha1.GatePolicy {
	gps := make([]v1alpha1.GatePolicy, len(ps))
	for i, p := range ps {
		rules := make([]v1alpha1.GateRule, len(p.rules))
		for j, r := range p.rules {
			if r.outcome == v1alpha1.OutcomeRequireApproval {
				rules[j] = approvalRule(r.name, r.cel, r.approvals, r.groups, r.reason)
			} else {
				rules[j] = rule(r.name, r.cel, r.outcome, r.reason)
			}
		}
		gps[i] = policy(p.name, nil, rules...)
	}
	return gps
}

// benchInput is the benchmark proposal for n policies: a rollback of a
// 40-replica deployment in the namespace of team n/2.
func benchInput(n int) Input {
	team := benchTeam(n / 2)
	in := input(v1alpha1.ActionRollbackWorkload, team, map[string]string{
		"team":                               team,
		team + ".example.com/frozen":         "false",
		"kubernetes.io/metadata.name":        team,
		"pod-security.kubernetes.io/enforce": "baseline",
	})
	in.Target.Replicas = 40
	in.Target.Labels = map[string]string{"app": "web", "team": team}
	in.Proposer.Groups = []string{"tend:agents", "system:serviceaccounts"}
	return in
}

// benchGate returns a gate with the n benchmark policies loaded, and checks
// that it auto-approves the benchmark proposal.
func benchGate(b *testing.B, n int) (*Gate, Input) {
	b.Helper()
	g, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range g.Load(gatePolicies(benchPolicies(n))) {
		if !r.Valid {
			b.Fatalf("policy %s invalid: %v", r.Name, r.Err)
		}
	}
	in := benchInput(n)
	want := Result{
		Outcome: v1alpha1.OutcomeAutoApprove, Policy: "p-" + benchTeam(n/2), Rule: "rollback",
		Reasons: []v1alpha1.Reason{{Code: "SafeRollback", Policy: "p-" + benchTeam(n/2), Rule: "rollback"}},
	}
	if got := g.Decide(in, noon); got.Outcome != want.Outcome || !slices.Equal(got.Reasons, want.Reasons) {
		b.Fatalf("Decide() = %+v, want %+v", got, want)
	}
	return g, in
}

var benchSizes = []int{1, 10, 100}

// BenchmarkDecide measures the mean time and allocations of one decision.
func BenchmarkDecide(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			g, in := benchGate(b, n)
			b.ReportAllocs()
			for b.Loop() {
				g.Decide(in, noon)
			}
		})
	}
}

// BenchmarkGate times every decision on its own and reports the median and
// the 99th percentile decision latency and the throughput of one goroutine,
// in the units hack/benchjson reads. BenchmarkGateOPA is its reference.
func BenchmarkGate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			g, in := benchGate(b, n)
			b.ReportAllocs()
			timeDecisions(b, func() { g.Decide(in, noon) })
		})
	}
}

// timeDecisions runs decide b.N times, timing each call, and reports the
// latency percentiles, the throughput and the heap allocations per decision
// (growing the slice of timings is not counted: it is made large enough
// before the first decision).
func timeDecisions(b *testing.B, decide func()) {
	b.Helper()
	decide() // warm up, and learn nothing from a first decision's allocations
	took := make([]time.Duration, 0, max(1<<16, b.N))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	decisions := 0
	for b.Loop() {
		if len(took) == cap(took) {
			b.StopTimer()
			took = slices.Grow(took, len(took))
			b.StartTimer()
		}
		start := time.Now()
		decide()
		took = append(took, time.Since(start))
		decisions++
	}
	runtime.ReadMemStats(&after)
	reportLatencies(b, took)
	if decisions > 0 {
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(decisions), "allocs_per_decision-allocs")
	}
}

// reportLatencies reports the median and 99th percentile of took in
// microseconds, and how many decisions per second they add up to.
func reportLatencies(b *testing.B, took []time.Duration) {
	b.Helper()
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	var total time.Duration
	for _, d := range took {
		total += d
	}
	percentile := func(p float64) float64 {
		i := min(len(took)-1, int(float64(len(took))*p))
		return float64(took[i]) / float64(time.Microsecond)
	}
	b.ReportMetric(percentile(0.50), "decision_p50-µs")
	b.ReportMetric(percentile(0.99), "decision_p99-µs")
	b.ReportMetric(float64(len(took))/total.Seconds(), "throughput-decisions/s")
}
