package agents

import (
	"context"
	"fmt"
	"time"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Thresholds of the autoscaler-bounds analyzer.
const (
	// atMaxShare of the time at its max makes an HPA's max too low.
	atMaxShare = 0.9
	// maxGrowth is how much a max that is always hit is raised.
	maxGrowth = 1.5
	// minAutoscalerCoverage is the least history that can say a bound is
	// always hit or never needed.
	minAutoscalerCoverage = 24 * time.Hour
)

// AutoscalerSample is an HPA's state from one time on, until the next sample.
type AutoscalerSample struct {
	Time                                      time.Time
	CurrentReplicas, MinReplicas, MaxReplicas int32
	// HeldAtMin: the HPA reported it wanted fewer replicas than its min
	// (condition ScalingLimited, reason TooFewReplicas).
	HeldAtMin bool
}

// AutoscalerHistory gives an HPA's states in time order, the last one
// before the window first.
type AutoscalerHistory interface {
	States(ctx context.Context, hpa ObjectKey) ([]AutoscalerSample, error)
}

// HPABounds (the autoscaler-bounds analyzer; the runbook of agents/autoscaler.go
// repairs bounds that break a workload) judges the bounds of the HPAs of workloads in scope
// from their history: a max the HPA sat at for 90% of the time is raised by
// half, and a min that held it above what it wanted for 90% of the time
// (the load never needed that many) is lowered by one. The gate decides
// either change.
type HPABounds struct{}

var _ Improvement = HPABounds{}

// Name is "autoscaler-bounds".
func (HPABounds) Name() string { return "autoscaler-bounds" }

// Analyze returns the recommendations as intents.
func (a HPABounds) Analyze(ctx context.Context, scope Scope, m *Model, now time.Time) ([]Intent, error) {
	items, err := a.Recommend(ctx, scope, m, now)
	return intentsOf(a.Name(), items), err
}

// Recommend judges every HPA whose target is in scope.
func (a HPABounds) Recommend(ctx context.Context, scope Scope, m *Model, now time.Time) ([]tendv1.RunItem, error) {
	inScopeKeys := map[ObjectKey]bool{}
	for _, w := range inScope(scope, m) {
		inScopeKeys[w.Key] = true
	}
	p := RightsizingDefaults(scope.Rightsizing)
	window := p.History.Duration
	var out []tendv1.RunItem
	for k, h := range m.Autoscalers {
		if h.State == nil || !inScopeKeys[ObjectKey{h.State.Target.Kind, k.Namespace, h.State.Target.Name}] {
			continue
		}
		it := tendv1.RunItem{Workload: tendv1.WorkloadRef{Kind: "HorizontalPodAutoscaler", Namespace: k.Namespace, Name: k.Name}, Analyzer: a.Name(),
			Before: tendv1.Resources{MinReplicas: h.State.MinReplicas, MaxReplicas: h.State.MaxReplicas}}
		if scope.Autoscaling == nil {
			it.Outcome, it.Message = tendv1.ItemNotEnoughData, "no autoscaler history source"
			out = append(out, it)
			continue
		}
		states, err := scope.Autoscaling.States(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("failed to read the history of %s: %w", k, err)
		}
		if rec, ok := judgeBounds(it, states, now.Add(-window), now); ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

// judgeBounds is the pure judgement of one HPA's history over [from, now].
func judgeBounds(it tendv1.RunItem, states []AutoscalerSample, from, now time.Time) (tendv1.RunItem, bool) {
	var atMax, heldAtMin, total time.Duration
	var last AutoscalerSample
	for i, s := range states {
		start, end := s.Time, now
		if i+1 < len(states) {
			end = states[i+1].Time
		}
		start = maxTime(start, from)
		if !end.After(start) {
			continue
		}
		d := end.Sub(start)
		total += d
		if s.MaxReplicas > 0 && s.CurrentReplicas >= s.MaxReplicas {
			atMax += d
		}
		if s.HeldAtMin && s.CurrentReplicas <= s.MinReplicas {
			heldAtMin += d
		}
		last = s
	}
	if total < min(minAutoscalerCoverage, now.Sub(from)) {
		it.Outcome, it.Message = tendv1.ItemNotEnoughData, fmt.Sprintf("not enough data: %s of history, %s needed", total.Round(time.Minute), min(minAutoscalerCoverage, now.Sub(from)))
		return it, true
	}
	it.Evidence = &tendv1.UsageEvidence{Source: "telemetry"}
	it.Evidence.Window.Duration = total
	after := it.Before
	var why string
	switch share := float64(atMax) / float64(total); {
	case share >= atMaxShare:
		after.MaxReplicas = max(last.MaxReplicas+1, int32(float64(last.MaxReplicas)*maxGrowth+0.5))
		why = fmt.Sprintf("ran at its max of %d replicas %.0f%% of the last %s: raise the max to %d", last.MaxReplicas, share*100, total.Round(time.Minute), after.MaxReplicas)
	case last.MinReplicas > 1 && float64(heldAtMin)/float64(total) >= atMaxShare:
		after.MinReplicas = last.MinReplicas - 1
		why = fmt.Sprintf("wanted fewer than its min of %d replicas %.0f%% of the last %s: lower the min to %d", last.MinReplicas, float64(heldAtMin)/float64(total)*100, total.Round(time.Minute), after.MinReplicas)
	default:
		return it, false
	}
	it.After, it.Action, it.Outcome, it.Message = after, "SetAutoscaler", tendv1.ItemPlanned, it.Workload.Name+" "+why
	return it, true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
