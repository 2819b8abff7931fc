package harness

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/evals/scenario"
)

func TestSummarize(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	scs := []*scenario.Scenario{
		{Name: "a", Category: scenario.CategoryWorkload},
		{Name: "b", Category: scenario.CategoryWorkload},
		{Name: "control", Category: scenario.CategoryControl, Oracle: scenario.Oracle{ExpectHealthy: true}},
		{Name: "probe", Category: scenario.CategoryWorkload, ExpectedFailure: &scenario.ExpectedFailure{Reason: "nothing recreates it", Rules: []string{"G1"}}},
	}
	results := map[string][]RunResult{
		"a": {{Run: 1, Mitigated: true, Detected: true, TTDSeconds: f(2), TTMSeconds: f(10), Proposals: 1, Applied: 1},
			{Run: 2, Mitigated: true, Detected: true, TTDSeconds: f(4), TTMSeconds: f(20), Proposals: 1, Applied: 1},
			{Run: 3, Detected: true, TTDSeconds: f(3), Proposals: 2, Denials: 1, UnsafeAttempted: 1}},
		"b": {{Run: 1}, {Run: 2}, {Run: 3, Namespace: "ev-b3", Seed: 7, Error: "baseline not healthy", ErrorKind: ErrorBaseline}},
		"probe": {{Run: 1, Namespace: "ev-p1", Failure: "G1: DaemonSet/agent of the baseline is gone", Expected: ExpectedRightReason,
			ProposalLog: []ProposalRecord{{Name: "rollback-x", Action: "RollbackWorkload", Target: "Deployment/web", Phase: "Denied", Outcome: "Deny", Reasons: []string{"RevisionNotKnownHealthy: no healthy revision"}}}},
			{Run: 2, Expected: ExpectedRightReason}, {Run: 3, Mitigated: true, Expected: ExpectedUnexpected}},
		"control": {{Run: 1, Mitigated: true}, {Run: 2, Mitigated: true}, {Run: 3, Proposals: 1, Applied: 1}},
	}
	s := Summarize(scs, results, BrainDeterministic, time.Unix(0, 0), time.Unix(90, 0))
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	a := s.Scenarios[0]
	near("a pass@1", a.PassAt1, 2.0/3)
	near("a stderr", a.StdErr, math.Sqrt(2.0/3*(1.0/3)/3))
	near("a mean TTM", *a.MeanTTMSeconds, 15)
	near("a mean TTD", *a.MeanTTDSeconds, 3)
	near("a median TTM", *a.MedianTTMSeconds, 15)
	near("a median TTD", *a.MedianTTDSeconds, 3)
	if b := s.Scenarios[1]; b.PassAt1 != 0 || b.MeanTTMSeconds != nil || b.Errors != 1 {
		t.Errorf("b: %+v", b.Aggregate)
	}
	o := s.Overall
	near("overall pass@1", o.PassAt1, (2.0/3+0+2.0/3+1.0/3)/4)
	near("overall detected", o.Detected, 3.0/9)
	// Over scenarios: rates 2/3, 0, 2/3, 1/3; mean 5/12, sd 0.3191, t(3) 3.182.
	near("overall CI low", o.CI95.Low, max(0, 5.0/12-3.182*math.Sqrt((1.0/16+25.0/144+1.0/16+1.0/144)/3)/2))
	near("overall CI high", o.CI95.High, 5.0/12+3.182*math.Sqrt((1.0/16+25.0/144+1.0/16+1.0/144)/3)/2)
	if o.ExpectedFailures != 3 || o.ExpectedRightReason != 2 || o.UnexpectedPasses != 1 || o.ErrorKinds[ErrorBaseline] != 1 {
		t.Errorf("expected failures and errors: %+v", o)
	}
	if o.Runs != 12 || o.Proposals != 5 || o.Denials != 1 || o.UnsafeAttempted != 1 || o.ControlActions != 1 || o.FalsePositives != 1 {
		t.Errorf("overall counts: %+v", o)
	}
	if o.LLM.Tokens != nil || o.LLM.Steps != nil || o.LLM.CostUSD != nil {
		t.Errorf("the deterministic brain has no LLM usage, got %+v", o.LLM)
	}
	if b := s.Scenarios[1]; b.Errors != 1 || b.MitigatedRuns != 0 {
		t.Errorf("a harness error is never a pass: %+v", b.Aggregate)
	}
	if len(s.Categories) != 2 || s.Categories[0].Category != scenario.CategoryWorkload {
		t.Errorf("categories: %+v", s.Categories)
	}
	rep := Report(s)
	for _, want := range []string{"pass@1): 0.42**", "| a | workload", "**b** run 3 (ev-b3, seed 7): baseline: baseline not healthy",
		"- **probe**: nothing recreates it", "run 3: unexpected pass", "proposal `rollback-x`: RollbackWorkload on Deployment/web, Denied, decided Deny (RevisionNotKnownHealthy: no healthy revision)"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	svg := Chart(s)
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "workload") || !strings.Contains(svg, "∞") {
		t.Errorf("chart:\n%s", svg)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{40, 2, 4, 1}, 3},
		{[]float64{3, 3, 100}, 3},
	} {
		if got := median(tc.xs); got == nil || *got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	if got := median(nil); got != nil {
		t.Errorf("median of nothing = %v, want nil", *got)
	}
}

// An expectation limited to some brains holds for those brains only, in
// the scenarios and in every drawn instance (drawn from the source again).
func TestExpectationsForBrain(t *testing.T) {
	all, err := scenario.Load(filepath.Join("..", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	var sc *scenario.Scenario
	for _, s := range all {
		if s.Name == "probe-image-swapped" {
			sc = s
		}
	}
	if sc == nil || sc.ExpectedFailure == nil || !slices.Equal(sc.ExpectedFailure.Brains, []string{BrainNone}) {
		t.Fatalf("probe-image-swapped should be expected to fail with brain none only: %+v", sc)
	}
	for brain, want := range map[string]bool{BrainNone: true, BrainDeterministic: false, BrainHybrid: false} {
		got := forBrain([]*scenario.Scenario{sc}, brain)[0]
		if (got.ExpectedFailure != nil) != want {
			t.Errorf("brain %s: expectation kept = %v, want %v", brain, got.ExpectedFailure != nil, want)
		}
		ins, err := instancesFor([]*scenario.Scenario{got}, 1, 2, brain)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins[0] {
			if (in.ExpectedFailure != nil) != want {
				t.Errorf("brain %s: a run's instance keeps the expectation = %v, want %v", brain, in.ExpectedFailure != nil, want)
			}
		}
	}
	if sc.ExpectedFailure == nil {
		t.Error("forBrain changed the scenario it was given")
	}
}
