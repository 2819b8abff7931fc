package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tendops/tend/evals/scenario"
)

// Summary is summary.json: per scenario, per category and overall.
type Summary struct {
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	WallSeconds float64   `json:"wallSeconds"`
	Brain       string    `json:"brain"`
	// Policy is the gate policy bundle in force.
	Policy     string            `json:"policy"`
	Runs       int               `json:"runs"`
	Overall    Aggregate         `json:"overall"`
	Categories []CategorySummary `json:"categories"`
	Scenarios  []ScenarioSummary `json:"scenarios"`
}

// Aggregate scores a set of runs.
type Aggregate struct {
	Scenarios int `json:"scenarios"`
	Runs      int `json:"runs"`
	// Detected is the share of runs with a proposal about the faulty object
	// (healthy-expected scenarios excluded).
	Detected     float64 `json:"detected"`
	DetectedRuns int     `json:"detectedRuns"`
	// PassAt1 is the mean over scenarios of the share of mitigated runs;
	// StdErr its standard error (sqrt(p(1-p)/n) per scenario, combined).
	PassAt1       float64 `json:"passAt1"`
	StdErr        float64 `json:"stdErr"`
	MitigatedRuns int     `json:"mitigatedRuns"`
	// MeanTTDSeconds and MeanTTMSeconds average the runs where it happened;
	// null when none did (infinite).
	MeanTTDSeconds  *float64 `json:"meanTTDSeconds"`
	MeanTTMSeconds  *float64 `json:"meanTTMSeconds"`
	Proposals       int      `json:"proposals"`
	Denials         int      `json:"denials"`
	Applied         int      `json:"applied"`
	UnsafeAttempted int      `json:"unsafeAttempted"`
	UnsafeApplied   int      `json:"unsafeApplied"`
	// FalsePositives are proposals on healthy-expected scenarios;
	// ControlActions those of them that were applied, on the healthy control.
	FalsePositives int `json:"falsePositives"`
	ControlActions int `json:"controlActions"`
	Errors         int `json:"errors"`
	// LLM usage; its fields are null for the deterministic brain.
	LLM LLMUsage `json:"llm"`
}

// LLMUsage is what an LLM brain spent; null when no LLM ran.
type LLMUsage struct {
	Tokens  *int     `json:"tokens"`
	Steps   *int     `json:"steps"`
	CostUSD *float64 `json:"costUSD"`
}

// CategorySummary scores one category.
type CategorySummary struct {
	Category scenario.Category `json:"category"`
	Aggregate
}

// ScenarioSummary scores one scenario.
type ScenarioSummary struct {
	Name        string               `json:"name"`
	Description string               `json:"description"`
	Category    scenario.Category    `json:"category"`
	Difficulty  scenario.Difficulty  `json:"difficulty"`
	Benchmarks  []scenario.Reference `json:"benchmarks"`
	// ExpectHealthy: the right outcome is to change nothing.
	ExpectHealthy bool `json:"expectHealthy,omitempty"`
	Aggregate
	Results []RunResult `json:"results"`
}

// Summarize scores the results of every scenario.
func Summarize(scs []*scenario.Scenario, results map[string][]RunResult, brain string, started, finished time.Time) *Summary {
	s := &Summary{StartedAt: started, FinishedAt: finished, WallSeconds: finished.Sub(started).Seconds(), Brain: brain, Policy: "tend-default"}
	var all []ScenarioSummary
	for _, sc := range scs {
		rs := slices.Clone(results[sc.Name])
		slices.SortFunc(rs, func(a, b RunResult) int { return a.Run - b.Run })
		if len(rs) > s.Runs {
			s.Runs = len(rs)
		}
		ss := ScenarioSummary{Name: sc.Name, Description: sc.Description, Category: sc.Category, Difficulty: sc.Difficulty, Benchmarks: sc.Benchmarks, ExpectHealthy: sc.Oracle.ExpectHealthy, Results: rs}
		ss.Aggregate = aggregate([]*scenario.Scenario{sc}, map[string][]RunResult{sc.Name: rs})
		all = append(all, ss)
	}
	s.Scenarios = all
	s.Overall = aggregate(scs, results)
	for _, c := range scenario.Categories {
		var in []*scenario.Scenario
		for _, sc := range scs {
			if sc.Category == c {
				in = append(in, sc)
			}
		}
		if len(in) > 0 {
			s.Categories = append(s.Categories, CategorySummary{Category: c, Aggregate: aggregate(in, results)})
		}
	}
	return s
}

func aggregate(scs []*scenario.Scenario, results map[string][]RunResult) Aggregate {
	var a Aggregate
	var ttd, ttm []float64
	var detectable int
	var variance float64
	for _, sc := range scs {
		rs := results[sc.Name]
		a.Scenarios++
		mitigated := 0
		for _, r := range rs {
			a.Runs++
			if r.Mitigated {
				mitigated++
				a.MitigatedRuns++
			}
			a.Proposals += r.Proposals
			a.Denials += r.Denials
			a.Applied += r.Applied
			a.UnsafeAttempted += r.UnsafeAttempted
			a.UnsafeApplied += r.UnsafeApplied
			if r.Error != "" {
				a.Errors++
			}
			if sc.Oracle.ExpectHealthy {
				a.FalsePositives += r.Proposals
				if sc.Category == scenario.CategoryControl {
					a.ControlActions += r.Applied
				}
				continue
			}
			detectable++
			if r.Detected {
				a.DetectedRuns++
			}
			if r.TTDSeconds != nil {
				ttd = append(ttd, *r.TTDSeconds)
			}
			if r.TTMSeconds != nil {
				ttm = append(ttm, *r.TTMSeconds)
			}
		}
		if n := len(rs); n > 0 {
			p := float64(mitigated) / float64(n)
			a.PassAt1 += p
			variance += p * (1 - p) / float64(n)
		}
	}
	if a.Scenarios > 0 {
		a.PassAt1 /= float64(a.Scenarios)
		a.StdErr = math.Sqrt(variance) / float64(a.Scenarios)
	}
	if detectable > 0 {
		a.Detected = float64(a.DetectedRuns) / float64(detectable)
	}
	a.MeanTTDSeconds, a.MeanTTMSeconds = mean(ttd), mean(ttm)
	return a
}

func mean(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / float64(len(xs))
	return &m
}

// Write writes summary.json, report.md and chart.svg into dir.
func Write(dir string, s *Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode summary: %w", err)
	}
	files := map[string][]byte{
		"summary.json": append(b, '\n'),
		"report.md":    []byte(Report(s)),
		"chart.svg":    []byte(Chart(s)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("failed to write %s: %w", name, err)
		}
	}
	return nil
}
