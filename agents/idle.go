package agents

import (
	"context"
	"fmt"
	"sort"
	"time"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/usage"
)

// idleCPUMillicores is the CPU use at or below which a workload is idle.
const idleCPUMillicores = 2

// Idle reports workloads whose every container used no more than 2m of CPU
// at the rightsizing percentile over the whole history. It only reports:
// whether an idle workload may go is a human's call.
type Idle struct{}

var _ Improvement = Idle{}

// Name is "idle".
func (Idle) Name() string { return "idle" }

// Analyze returns the recommendations as findings.
func (i Idle) Analyze(ctx context.Context, scope Scope, m *Model, now time.Time) ([]Intent, error) {
	items, err := i.Recommend(ctx, scope, m, now)
	return intentsOf(i.Name(), items), err
}

// Recommend reports the idle workloads in scope with enough history.
func (i Idle) Recommend(ctx context.Context, scope Scope, m *Model, now time.Time) ([]tendv1.RunItem, error) {
	if scope.History == nil {
		return nil, nil
	}
	p := RightsizingDefaults(scope.Rightsizing)
	var out []tendv1.RunItem
	for _, w := range inScope(scope, m) {
		containers, replicas := template(w)
		if replicas == 0 || len(containers) == 0 {
			continue
		}
		idle, samples := true, 0
		var peak int64
		for _, c := range containers {
			s, err := scope.History.Samples(ctx, w.Key, c.Name)
			if err != nil {
				return nil, fmt.Errorf("failed to read the usage of %s container %s: %w", w.Key, c.Name, err)
			}
			s = within(s, now.Add(-p.History.Duration), now)
			if sparse(p, s, now) != "" {
				idle = false
				break
			}
			cpus := make([]int64, len(s))
			for j, x := range s {
				cpus[j] = x.CPUMillicores
			}
			pc := Percentile(cpus, int(p.CPUPercentile))
			if pc > idleCPUMillicores {
				idle = false
				break
			}
			samples += len(s)
			peak = max(peak, pc)
		}
		if idle {
			out = append(out, tendv1.RunItem{Workload: workloadRef(w.Key), Analyzer: i.Name(), Outcome: tendv1.ItemReported,
				Before:  tendv1.Resources{Replicas: replicas},
				Message: fmt.Sprintf("%s used at most %dm CPU (p%d) over %s: it looks idle", w.Key.Name, peak, p.CPUPercentile, p.History.Duration)})
		}
	}
	return out, nil
}

// within returns the samples (in time order) taken in [from, to], without
// copying them.
func within(s []usage.Sample, from, to time.Time) []usage.Sample {
	i := sort.Search(len(s), func(i int) bool { return !s[i].Time.Before(from) })
	j := sort.Search(len(s), func(i int) bool { return s[i].Time.After(to) })
	return s[i:max(i, j)]
}
