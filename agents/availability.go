package agents

import (
	"context"
	"fmt"
	"time"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Availability finds Deployments that one pod's restart takes down: a
// single replica behind a Service is scaled to two (the gate decides who
// approves), and a served container without a readiness probe is reported.
type Availability struct{}

var _ Improvement = Availability{}

// Name is "availability".
func (Availability) Name() string { return "availability" }

// Analyze returns the recommendations as intents.
func (a Availability) Analyze(ctx context.Context, scope Scope, m *Model, now time.Time) ([]Intent, error) {
	items, err := a.Recommend(ctx, scope, m, now)
	return intentsOf(a.Name(), items), err
}

// Recommend judges the Deployments in scope that a Service sends traffic to.
func (a Availability) Recommend(_ context.Context, scope Scope, m *Model, _ time.Time) ([]tendv1.RunItem, error) {
	var out []tendv1.RunItem
	for _, w := range inScope(scope, m) {
		if w.Key.Kind != KindDeployment || w.Deployment == nil {
			continue
		}
		svc := servingService(m, w)
		if svc == "" {
			continue
		}
		containers, replicas := template(w)
		if replicas == 1 {
			out = append(out, tendv1.RunItem{Workload: workloadRef(w.Key), Analyzer: a.Name(), Action: "ScaleWorkload",
				Before: tendv1.Resources{Replicas: 1}, After: tendv1.Resources{Replicas: 2}, Outcome: tendv1.ItemPlanned,
				Message: fmt.Sprintf("%s runs one replica behind Service %s: a restart or a node drain takes it down; run two", w.Key.Name, svc)})
		}
		for _, c := range containers {
			if !c.HasReadiness {
				out = append(out, tendv1.RunItem{Workload: workloadRef(w.Key), Container: c.Name, Analyzer: a.Name(), Outcome: tendv1.ItemReported,
					Message: fmt.Sprintf("%s container %s has no readiness probe: Service %s sends it traffic before it is ready", w.Key.Name, c.Name, svc)})
			}
		}
	}
	return out, nil
}

// servingService names a Service whose selector matches the workload's
// pods, "" when none does.
func servingService(m *Model, w *Workload) string {
	if len(w.PodLabels) == 0 {
		return ""
	}
	for k, s := range m.Services {
		if k.Namespace != w.Key.Namespace || s.State == nil || len(s.State.Selector) == 0 {
			continue
		}
		match := true
		for lk, lv := range s.State.Selector {
			if w.PodLabels[lk] != lv {
				match = false
				break
			}
		}
		if match {
			return k.Name
		}
	}
	return ""
}
