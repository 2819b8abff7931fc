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
	Policy string `json:"policy"`
	Runs   int    `json:"runs"`
	// Seed drew every run's parameters: the same seed runs the same
	// instances again.
	Seed uint64 `json:"seed"`
	// Notes are events of the whole run that bear on its results.
	Notes      []string          `json:"notes,omitempty"`
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
	// StdErr its standard error over runs (sqrt(p(1-p)/n) per scenario,
	// combined), and CI95 a 95% confidence interval over scenarios (the
	// Student t interval of the per-scenario pass rates): how much the score
	// would move with another draw of scenarios, not only of runs.
	PassAt1       float64  `json:"passAt1"`
	StdErr        float64  `json:"stdErr"`
	CI95          Interval `json:"ci95"`
	MitigatedRuns int      `json:"mitigatedRuns"`
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
	// AutoApplied are proposals applied without a human's approval.
	AutoApplied int `json:"autoApplied"`

	// MedianTTDSeconds and MedianTTMSeconds are the medians over the runs
	// the means average; null when none.
	MedianTTDSeconds *float64 `json:"medianTTDSeconds"`
	MedianTTMSeconds *float64 `json:"medianTTMSeconds"`
	// Errors are runs the harness could not score (counted as not
	// mitigated), by kind in ErrorKinds.
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"errorKinds,omitempty"`
	// ExpectedFailures are runs of scenarios marked expected to fail;
	// ExpectedRightReason those that failed for the reason the scenario
	// gives, UnexpectedPasses those that passed.
	ExpectedFailures    int `json:"expectedFailures"`
	ExpectedRightReason int `json:"expectedRightReason"`
	UnexpectedPasses    int `json:"unexpectedPasses"`
	// LLM usage; its fields are null for the deterministic brain.
	LLM LLMUsage `json:"llm"`
}

// Interval is a confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
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
	// ExpectedFailure says why nothing fixes the scenario today.
	ExpectedFailure string `json:"expectedFailure,omitempty"`
	// Exclusive: it ran alone.
	Exclusive bool `json:"exclusive,omitempty"`
	// Parameters the scenario varies per run.
	Parameters []string `json:"parameters,omitempty"`
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
		ss := ScenarioSummary{Name: sc.Name, Description: sc.Description, Category: sc.Category, Difficulty: sc.Difficulty, Benchmarks: sc.Benchmarks,
			ExpectHealthy: sc.Oracle.ExpectHealthy, Exclusive: sc.Exclusive, Results: rs}
		if ef := sc.ExpectedFailure; ef != nil {
			ss.ExpectedFailure = ef.Reason
		}
		for _, p := range sc.Parameters {
			ss.Parameters = append(ss.Parameters, p.Name)
		}
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
	a := Aggregate{LLM: llmUsage(scs, results)}
	var ttd, ttm []float64
	var detectable int
	var variance float64
	var rates []float64
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
			a.AutoApplied += r.AutoApplied
			if r.Error != "" {
				a.Errors++
				if a.ErrorKinds == nil {
					a.ErrorKinds = map[string]int{}
				}
				a.ErrorKinds[r.ErrorKind]++
			}
			if sc.ExpectedFailure != nil {
				a.ExpectedFailures++
				switch r.Expected {
				case ExpectedRightReason:
					a.ExpectedRightReason++
				case ExpectedUnexpected:
					a.UnexpectedPasses++
				}
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
			rates = append(rates, p)
			a.PassAt1 += p
			variance += p * (1 - p) / float64(n)
		}
	}
	if a.Scenarios > 0 {
		a.PassAt1 /= float64(a.Scenarios)
		a.StdErr = math.Sqrt(variance) / float64(a.Scenarios)
	}
	a.CI95 = overScenarios(rates)
	if detectable > 0 {
		a.Detected = float64(a.DetectedRuns) / float64(detectable)
	}
	a.MeanTTDSeconds, a.MeanTTMSeconds = mean(ttd), mean(ttm)
	a.MedianTTDSeconds, a.MedianTTMSeconds = median(ttd), median(ttm)
	return a
}

// overScenarios is the 95% Student t interval of the mean of per-scenario
// pass rates, clamped to [0, 1]; with one scenario, [0, 1].
func overScenarios(rates []float64) Interval {
	k := len(rates)
	if k < 2 {
		return Interval{Low: 0, High: 1}
	}
	var m float64
	for _, r := range rates {
		m += r
	}
	m /= float64(k)
	var ss float64
	for _, r := range rates {
		ss += (r - m) * (r - m)
	}
	half := tQuantile975(k-1) * math.Sqrt(ss/float64(k-1)) / math.Sqrt(float64(k))
	return Interval{Low: max(0, m-half), High: min(1, m+half)}
}

// tQuantile975 is the 0.975 quantile of Student's t with df degrees of
// freedom.
func tQuantile975(df int) float64 {
	table := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < 1:
		return math.Inf(1)
	case df <= len(table):
		return table[df-1]
	case df <= 40:
		return 2.021
	case df <= 60:
		return 2.000
	case df <= 120:
		return 1.980
	}
	return 1.960
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

// median is the median of xs (the mean of the middle two of an even
// count), or nil when xs is empty.
func median(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
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
