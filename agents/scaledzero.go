package agents

import (
	"fmt"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// ScaledToZero is the runbook for a Deployment or StatefulSet scaled to
// zero replicas after running healthy, while a Service still selects its
// pods or an autoscaler still targets it: whatever sends it traffic or
// load expects it to run. It proposes scaling back to the replica count it
// last ran healthy with. A workload scaled to zero that nothing points at
// is left alone: that is how workloads are parked.
type ScaledToZero struct {
	// For is how long it must stay at zero. Default 5s.
	For time.Duration
}

var _ Runbook = (*ScaledToZero)(nil)

// Name implements Runbook.
func (r *ScaledToZero) Name() string { return "scaled-to-zero" }

// Evaluate implements Runbook.
func (r *ScaledToZero) Evaluate(m *Model, now time.Time) []Intent {
	wait := r.For
	if wait <= 0 {
		wait = 5 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if key.Kind == KindDaemonSet || w.Replicas() >= w.HealthyReplicas || w.ScaledToZeroAt.IsZero() || !m.lasted(w.ScaledToZeroAt, wait, now) || !scaledDown(w) {
			continue
		}
		var why string
		refs := []wire.TelemetryRef{w.Ref, w.HealthyRef}
		for _, sk := range sortedKeys(m.Services) {
			s := m.Services[sk]
			if sk.Namespace == key.Namespace && selects(s.State.Selector, w.PodLabels) {
				why = fmt.Sprintf("Service %s still selects its pods and now has no endpoints", sk.Name)
				refs = append(refs, s.Ref)
				break
			}
		}
		if why == "" {
			for _, hk := range sortedKeys(m.Autoscalers) {
				h := m.Autoscalers[hk]
				if hk.Namespace == key.Namespace && h.State.Target.Kind == key.Kind && h.State.Target.Name == key.Name {
					why = fmt.Sprintf("autoscaler %s still targets it", hk.Name)
					refs = append(refs, h.Ref)
					break
				}
			}
		}
		if why == "" {
			continue
		}
		cur := w.Replicas()
		n := w.HealthyReplicas
		out = append(out, Intent{ScaleWorkload: &wire.ScaleWorkloadArgs{
			WorkloadArgs: wire.WorkloadArgs{Namespace: key.Namespace, Kind: key.Kind, Name: key.Name},
			Replicas:     &n,
			Common: wire.Common{
				Summary:     fmt.Sprintf("%s %s/%s was scaled to zero replicas while %s; it last ran healthy with %d and now has %d.", key.Kind, key.Namespace, key.Name, why, w.HealthyReplicas, cur),
				Rationale:   fmt.Sprintf("Scaling back to %d replicas, the count it last ran healthy with, restores the endpoints that still expect it; the scale is undone if the pods do not become ready.", n),
				Risk:        "Low",
				Telemetry:   refs,
				Fingerprint: fmt.Sprintf("scaled-to-zero/%s/%s/%s/%d", key.Kind, key.Namespace, key.Name, n),
			},
		}})
	}
	return out
}

// scaledDown reports whether the workload's status shows the scale-down
// done: its spec observed and no pod left ready or current. The runbook
// judges the settled state, not a scale-down in progress.
func scaledDown(w *Workload) bool {
	if d := w.Deployment; d != nil {
		return d.ObservedGeneration >= d.Generation && d.ReadyReplicas == 0 && d.AvailableReplicas == 0 && d.UpdatedReplicas == 0
	}
	s := w.State
	return s.ObservedGeneration >= s.Generation && s.ReadyReplicas == 0 && s.CurrentReplicas == 0 && s.AvailableReplicas == 0
}

// selects reports whether a non-empty selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 || len(labels) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
