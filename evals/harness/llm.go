package harness

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/evals/scenario"
)

// RunLLM is what the planner did and spent on one run's objects (llm and
// hybrid brains): its runs, their model calls (steps), tokens and cost,
// how each ended, and the incidents whose transcripts explain them.
type RunLLM struct {
	PlannerRuns  int      `json:"plannerRuns"`
	Steps        int      `json:"steps"`
	InputTokens  int      `json:"inputTokens"`
	OutputTokens int      `json:"outputTokens"`
	CostUSD      float64  `json:"costUSD"`
	Outcomes     []string `json:"outcomes,omitempty"`
	Incidents    []string `json:"incidents,omitempty"`
}

// Tokens is input and output tokens.
func (u *RunLLM) Tokens() int { return u.InputTokens + u.OutputTokens }

// planLedger adds up the planner's runs by the namespace of their object;
// node problems (no namespace) are added under "".
type planLedger struct {
	mu    sync.Mutex
	by    map[string]*RunLLM
	cease func()
}

// watchPlans starts a ledger of st's planner runs; stop ends it.
func watchPlans(st *Stack) *planLedger {
	l := &planLedger{by: map[string]*RunLLM{}}
	l.cease = st.WatchPlans(l.add)
	return l
}

func (l *planLedger) add(p agents.Problem, r planner.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.by[p.Object.Namespace]
	if u == nil {
		u = &RunLLM{}
		l.by[p.Object.Namespace] = u
	}
	u.PlannerRuns++
	u.Steps += r.Steps
	u.InputTokens += r.Usage.InputTokens
	u.OutputTokens += r.Usage.OutputTokens
	u.CostUSD += r.Usage.CostUSD
	u.Outcomes = append(u.Outcomes, string(r.Outcome))
	if !slices.Contains(u.Incidents, r.Incident) {
		u.Incidents = append(u.Incidents, r.Incident)
	}
}

// take returns (and forgets) what was spent on namespace's objects.
func (l *planLedger) take(namespace string) *RunLLM {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.by[namespace]
	delete(l.by, namespace)
	if u == nil {
		u = &RunLLM{}
	}
	return u
}

func (l *planLedger) stop() { l.cease() }

// llmUsage totals the runs' LLM usage; null fields when no run had an LLM
// brain.
func llmUsage(scs []*scenario.Scenario, results map[string][]RunResult) LLMUsage {
	var u LLMUsage
	for _, sc := range scs {
		for _, r := range results[sc.Name] {
			if r.LLM == nil {
				continue
			}
			if u.Tokens == nil {
				u.Tokens, u.Steps, u.CostUSD = new(int), new(int), new(float64)
			}
			*u.Tokens += r.LLM.Tokens()
			*u.Steps += r.LLM.Steps
			*u.CostUSD += r.LLM.CostUSD
		}
	}
	return u
}

// writeLLM writes the report's LLM section: tokens, steps and cost per
// scenario.
func writeLLM(b *strings.Builder, s *Summary) {
	o := s.Overall.LLM
	if o.Tokens == nil {
		return
	}
	fmt.Fprintf(b, "\n## LLM usage\n\nBrain `%s`: %d tokens, %d steps (model calls), $%.4f over every run.\n\n| scenario | planner runs | steps | tokens (in/out) | cost (USD) | outcomes |\n|---|---|---|---|---|---|\n",
		s.Brain, *o.Tokens, *o.Steps, *o.CostUSD)
	for _, sc := range s.Scenarios {
		var runs, steps, in, out int
		var cost float64
		var outcomes []string
		for _, r := range sc.Results {
			if r.LLM == nil {
				continue
			}
			runs += r.LLM.PlannerRuns
			steps += r.LLM.Steps
			in += r.LLM.InputTokens
			out += r.LLM.OutputTokens
			cost += r.LLM.CostUSD
			outcomes = append(outcomes, r.LLM.Outcomes...)
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d/%d | %.4f | %s |\n", sc.Name, runs, steps, in, out, cost, cmp.Or(strings.Join(outcomes, ", "), "—"))
	}
}
