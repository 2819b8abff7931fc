package harness

import (
	"math"
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
	}
	results := map[string][]RunResult{
		"a": {{Run: 1, Mitigated: true, Detected: true, TTDSeconds: f(2), TTMSeconds: f(10), Proposals: 1, Applied: 1},
			{Run: 2, Mitigated: true, Detected: true, TTDSeconds: f(4), TTMSeconds: f(20), Proposals: 1, Applied: 1},
			{Run: 3, Detected: true, TTDSeconds: f(3), Proposals: 2, Denials: 1, UnsafeAttempted: 1}},
		"b":       {{Run: 1}, {Run: 2}, {Run: 3, Error: "baseline not healthy"}},
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
	if b := s.Scenarios[1]; b.PassAt1 != 0 || b.MeanTTMSeconds != nil || b.Errors != 1 {
		t.Errorf("b: %+v", b.Aggregate)
	}
	o := s.Overall
	near("overall pass@1", o.PassAt1, (2.0/3+0+2.0/3)/3)
	near("overall detected", o.Detected, 3.0/6)
	if o.Runs != 9 || o.Proposals != 5 || o.Denials != 1 || o.UnsafeAttempted != 1 || o.ControlActions != 1 || o.FalsePositives != 1 {
		t.Errorf("overall counts: %+v", o)
	}
	if o.LLM.Tokens != nil || o.LLM.Steps != nil || o.LLM.CostUSD != nil {
		t.Errorf("the deterministic brain has no LLM usage, got %+v", o.LLM)
	}
	if len(s.Categories) != 2 || s.Categories[0].Category != scenario.CategoryWorkload {
		t.Errorf("categories: %+v", s.Categories)
	}
	rep := Report(s)
	for _, want := range []string{"pass@1): 0.44", "| a | workload", "**b** run 3: harness error: baseline not healthy"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	svg := Chart(s)
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "workload") || !strings.Contains(svg, "∞") {
		t.Errorf("chart:\n%s", svg)
	}
}
