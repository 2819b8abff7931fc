package agents

import (
	"fmt"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// AutoscalerBounds is the runbook for an autoscaler whose bounds were
// tightened below what its workload ran healthy with: its workload now runs
// fewer replicas than it did, and the maxReplicas (or minReplicas) in force
// is below the count it ran healthy with. It proposes SetAutoscaler back to
// the bounds last seen while the workload ran healthy, in one step: a
// step between would still cap the workload below what it needs (the gate
// asks a human for a large raise). An autoscaler that
// only scales down within its bounds is doing its job and is left alone.
type AutoscalerBounds struct {
	// For is how long the bounds must hold the workload down. Default 5s.
	For time.Duration
}

var _ Runbook = (*AutoscalerBounds)(nil)

// Name implements Runbook.
func (r *AutoscalerBounds) Name() string { return "autoscaler-bounds" }

// Evaluate implements Runbook.
func (r *AutoscalerBounds) Evaluate(m *Model, now time.Time) []Intent {
	wait := r.For
	if wait <= 0 {
		wait = 5 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Autoscalers) {
		h := m.Autoscalers[key]
		st := h.State
		w := m.Workloads[ObjectKey{st.Target.Kind, key.Namespace, st.Target.Name}]
		if w == nil || h.HealthyMax == 0 || !m.lasted(h.At, wait, now) {
			continue
		}
		// The bounds cap the workload below the count it ran healthy with.
		if st.MaxReplicas >= h.HealthyTarget || w.Replicas() >= h.HealthyTarget {
			continue
		}
		minR, maxR := h.HealthyMin, h.HealthyMax
		if minR < 1 || minR > maxR {
			continue
		}
		out = append(out, Intent{SetAutoscaler: &wire.SetAutoscalerArgs{
			Namespace:   key.Namespace,
			Name:        key.Name,
			MinReplicas: &minR,
			MaxReplicas: &maxR,
			Common: wire.Common{
				Summary: fmt.Sprintf("Autoscaler %s/%s allows %d to %d replicas of %s %s, which runs %d; it ran healthy with %d under bounds %d to %d.",
					key.Namespace, key.Name, st.MinReplicas, st.MaxReplicas, w.Key.Kind, w.Key.Name, w.Replicas(), h.HealthyTarget, h.HealthyMin, h.HealthyMax),
				Rationale:   fmt.Sprintf("The bounds hold the workload below the replicas it needed; returning them to %d to %d, the bounds it ran healthy under, lets it scale back, and the change is undone if its pods do not become ready.", minR, maxR),
				Risk:        "Low",
				Telemetry:   []wire.TelemetryRef{h.Ref, h.HealthyRef, w.Ref},
				Fingerprint: fmt.Sprintf("autoscaler-bounds/%s/%s/%d-%d", key.Namespace, key.Name, minR, maxR),
			},
		}})
	}
	return out
}
