package harness

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/evals/scenario"
)

// TestSummarizeLLM: an LLM brain's runs report their planner's steps,
// tokens and cost, per scenario and overall, in summary.json and
// report.md; a run whose objects got no planner run counts zero.
func TestSummarizeLLM(t *testing.T) {
	l := &planLedger{by: map[string]*RunLLM{}}
	add := func(ns, incident string, steps, in, out int, cost float64, o planner.Outcome) {
		l.add(agents.Problem{Object: agents.ObjectKey{Kind: "Deployment", Namespace: ns, Name: "web"}},
			planner.Result{Incident: incident, Outcome: o, Steps: steps, Usage: planner.Usage{InputTokens: in, OutputTokens: out, CostUSD: cost}})
	}
	add("ev-a1", "inc-1", 3, 1000, 100, 0.01, planner.OutcomeFinished)
	add("ev-a1", "inc-2", 12, 5000, 400, 0.05, planner.OutcomeStepCap)
	add("ev-b1", "inc-3", 1, 200, 20, 0.001, planner.OutcomeBudget)
	scs := []*scenario.Scenario{{Name: "a", Category: scenario.CategoryWorkload}, {Name: "b", Category: scenario.CategoryAdversarial},
		{Name: "c", Category: scenario.CategoryWorkload}}
	results := map[string][]RunResult{
		"a": {{Run: 1, Namespace: "ev-a1", LLM: l.take("ev-a1")}},
		"b": {{Run: 1, Namespace: "ev-b1", LLM: l.take("ev-b1")}},
		"c": {{Run: 1, Namespace: "ev-c1", LLM: l.take("ev-c1")}},
	}
	if a := results["a"][0].LLM; a.PlannerRuns != 2 || a.Steps != 15 || a.Tokens() != 6500 || len(a.Incidents) != 2 ||
		strings.Join(a.Outcomes, ",") != "Finished,StepCap" {
		t.Errorf("run a's usage %+v", a)
	}
	if c := results["c"][0].LLM; c == nil || c.PlannerRuns != 0 {
		t.Errorf("a run with no planner run: %+v", c)
	}
	s := Summarize(scs, results, BrainHybrid, time.Unix(0, 0), time.Unix(90, 0))
	o := s.Overall.LLM
	if o.Tokens == nil || *o.Tokens != 6720 || *o.Steps != 16 || math.Abs(*o.CostUSD-0.061) > 1e-9 {
		t.Fatalf("overall LLM usage %+v", o)
	}
	if b := s.Scenarios[1].LLM; b.Tokens == nil || *b.Tokens != 220 || *b.Steps != 1 {
		t.Errorf("scenario b's usage %+v", b)
	}
	r := Report(s)
	for _, want := range []string{"LLM 6720 tokens, 16 steps, $0.0610", "## LLM usage", "| a | 2 | 15 | 6000/500 | 0.0600 | Finished, StepCap |",
		"| c | 0 | 0 | 0/0 | 0.0000 | — |"} {
		if !strings.Contains(r, want) {
			t.Errorf("report.md lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(Report(Summarize(scs, map[string][]RunResult{"a": {{Run: 1}}}, BrainDeterministic, time.Unix(0, 0), time.Unix(1, 0))), "## LLM usage") {
		t.Error("a deterministic run's report has an LLM section")
	}
}
