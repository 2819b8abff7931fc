package agents

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// An autoscaler re-pointed at a workload that does not exist, as the sensor
// reports it: the HPA controller says it cannot scale, and no such workload
// is in the telemetry. It is pointed back at the workload it last kept
// healthy, unless that one is gone or another autoscaler scales it.
func TestAutoscalerTarget(t *testing.T) {
	hpa := func(seq uint64, name, target string, ableToScale string) bus.Delivery {
		return delivery(seq, bus.KindHPA, "shop", name, func(e *bus.Envelope) {
			e.HPA = &bus.AutoscalerState{Target: bus.WorkloadRef{Kind: "StatefulSet", Name: target}, MinReplicas: 2, MaxReplicas: 6, CurrentReplicas: 3}
			if ableToScale != "" {
				e.HPA.Conditions = []bus.Condition{{Type: "AbleToScale", Status: ableToScale, Reason: "FailedGetScale"}}
			}
		})
	}
	queue := statefulSetOf(1, "shop", "queue", bus.WorkloadState{Generation: 1, ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 3,
		ReadyReplicas: 3, AvailableReplicas: 3, CurrentRevision: "q-1", UpdateRevision: "q-1"})
	healthy := hpa(2, "queue", "queue", "True")
	broken := hpa(3, "queue", "queue-old", "False")
	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"target gone, the healthy one exists", []bus.Delivery{queue, healthy, broken}, []string{"propose_set_autoscaler HorizontalPodAutoscaler/shop/queue"}},
		{"able to scale", []bus.Delivery{queue, healthy, hpa(3, "queue", "queue-old", "True")}, nil},
		{"never seen healthy", []bus.Delivery{queue, broken}, nil},
		{"the healthy target is gone too", []bus.Delivery{queue, healthy, broken,
			delivery(4, bus.KindStatefulSet, "shop", "queue", func(e *bus.Envelope) { e.StatefulSet = &bus.WorkloadState{Deleted: true} })}, nil},
		{"another autoscaler scales it now", []bus.Delivery{queue, healthy, broken, hpa(4, "queue-2", "queue", "True")}, nil},
		{"the target it names exists", []bus.Delivery{queue, healthy, broken,
			statefulSetOf(4, "shop", "queue-old", bus.WorkloadState{Generation: 1, ObservedGeneration: 1, Replicas: 1})}, nil},
	}
	// Judged over a window: not a second after it became unable to scale;
	// and the escalation waits longer than the fix, so the fix comes first.
	m, now := replay([]bus.Delivery{queue, healthy, broken})
	if got := callsOf((&AutoscalerTarget{}).Evaluate(m, at(3).Add(time.Second))); len(got) != 0 {
		t.Errorf("intents a second after the fault = %v, want none", got)
	}
	if got := callsOf((&Escalate{}).Evaluate(m, now)); len(got) != 0 {
		t.Errorf("escalate within its window = %v, want none (the fix comes first)", got)
	}
	if got := callsOf((&Escalate{}).Evaluate(m, at(3).Add(31*time.Second))); len(got) != 1 {
		t.Errorf("escalate after its window = %v, want a finding", got)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := observeAll(&AutoscalerTarget{}, tc.ds)
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
			for _, in := range got {
				a := in.SetAutoscaler
				if _, err := wire.Validate(a); err != nil {
					t.Fatalf("invalid arguments: %v", err)
				}
				if a.ScaleTargetName != "queue" || a.MinReplicas != nil || a.MaxReplicas != nil || a.TargetCPUUtilization != nil {
					t.Errorf("args = %+v, want only scaleTargetName queue", a)
				}
			}
		})
	}
}
