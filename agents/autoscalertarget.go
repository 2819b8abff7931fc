package agents

import (
	"fmt"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// AutoscalerTarget is the runbook for an autoscaler pointed at a workload
// that does not exist: the autoscaler reports it cannot scale
// (AbleToScale=False), the telemetry shows no workload of that kind and
// name, and the autoscaler was last seen keeping a workload of that kind
// healthy, which still exists and which no other autoscaler scales. It
// proposes SetAutoscaler pointing it back at that workload, with its bounds
// unchanged; the controller refuses a workload whose replicas the bounds
// would change at once.
type AutoscalerTarget struct {
	// For is how long the autoscaler must have been unable to scale.
	// Default 5s.
	For time.Duration
}

var _ Runbook = (*AutoscalerTarget)(nil)

// Name implements Runbook.
func (r *AutoscalerTarget) Name() string { return "autoscaler-target" }

// Evaluate implements Runbook.
func (r *AutoscalerTarget) Evaluate(m *Model, now time.Time) []Intent {
	wait := r.For
	if wait <= 0 {
		wait = 5 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Autoscalers) {
		h := m.Autoscalers[key]
		st := h.State
		if h.UnableSince.IsZero() || !m.lasted(h.UnableSince, wait, now) {
			continue
		}
		if _, ok := m.Workloads[ObjectKey{st.Target.Kind, key.Namespace, st.Target.Name}]; ok {
			continue
		}
		name := h.HealthyScaleTarget
		if name == "" || name == st.Target.Name || !validObject(key.Namespace, name) {
			continue
		}
		w := m.Workloads[ObjectKey{st.Target.Kind, key.Namespace, name}]
		if w == nil || scaledByAnother(m, key, w.Key) {
			continue
		}
		out = append(out, Intent{SetAutoscaler: &wire.SetAutoscalerArgs{
			Namespace:       key.Namespace,
			Name:            key.Name,
			ScaleTargetName: name,
			Common: wire.Common{
				Summary: fmt.Sprintf("Autoscaler %s/%s cannot scale (AbleToScale=False): it targets a %s the telemetry does not show; it last kept %s %s healthy, which no other autoscaler scales.",
					key.Namespace, key.Name, w.Key.Kind, w.Key.Kind, name),
				Rationale:   fmt.Sprintf("The autoscaler scales nothing now; pointing it back at %s %s, with its bounds unchanged, restores the autoscaling it ran healthy with, and the change is undone if it cannot scale it.", w.Key.Kind, name),
				Risk:        "Low",
				Telemetry:   []wire.TelemetryRef{h.Ref, h.HealthyRef, w.Ref},
				Fingerprint: fmt.Sprintf("autoscaler-target/%s/%s/%s", key.Namespace, key.Name, name),
			},
		}})
	}
	return out
}

// scaledByAnother reports whether an autoscaler other than self targets w.
func scaledByAnother(m *Model, self ObjectKey, w ObjectKey) bool {
	for key, h := range m.Autoscalers {
		if key != self && key.Namespace == w.Namespace && h.State.Target.Kind == w.Kind && h.State.Target.Name == w.Name {
			return true
		}
	}
	return false
}
