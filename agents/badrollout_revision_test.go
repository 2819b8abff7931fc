package agents

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

func statefulSetOf(seq uint64, namespace, name string, st bus.WorkloadState) bus.Delivery {
	return delivery(seq, bus.KindStatefulSet, namespace, name, func(e *bus.Envelope) { e.StatefulSet = &st })
}

func daemonSetOf(seq uint64, namespace, name string, st bus.WorkloadState) bus.Delivery {
	return delivery(seq, bus.KindDaemonSet, namespace, name, func(e *bus.Envelope) { e.DaemonSet = &st })
}

// A StatefulSet or DaemonSet broken by a rollout, as the sensor reports it:
// the StatefulSet's update revision moved on from the one it ran healthy at
// and its pod of the new revision crash-loops; the DaemonSet's image changed
// and its pod with the new image cannot pull it. Each gets a rollback of its
// own kind to the revision before (resolved and judged by the controller).
func TestBadRolloutStatefulSetAndDaemonSet(t *testing.T) {
	tmpl := []bus.ContainerState{{Name: "pg"}}
	stsHealthy := bus.WorkloadState{Generation: 1, ObservedGeneration: 1, Replicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2,
		ReadyReplicas: 2, AvailableReplicas: 2, CurrentRevision: "db-aaa", UpdateRevision: "db-aaa", Images: []string{"pg:15.1"}, Template: tmpl}
	stsBroken := stsHealthy
	stsBroken.Generation, stsBroken.ObservedGeneration = 2, 2
	stsBroken.UpdateRevision, stsBroken.UpdatedReplicas, stsBroken.ReadyReplicas, stsBroken.AvailableReplicas = "db-bbb", 1, 1, 1
	stsSameImages := stsBroken // a revision that changed only the environment
	stsBroken.Images = []string{"pg:15.2"}
	crash := bus.ContainerState{Name: "pg", State: bus.ContainerWaiting, Reason: "CrashLoopBackOff", RestartCount: 3, LastExitCode: 1, LastTerminationReason: "Error"}
	newPod := func(seq uint64, hash string) bus.Delivery {
		return podOf(seq, "shop", "db-1", "StatefulSet", "db", bus.PodState{Phase: "Running", TemplateHash: hash, Containers: []bus.ContainerState{crash}})
	}

	agentTmpl := []bus.ContainerState{{Name: "agent"}}
	dsHealthy := bus.WorkloadState{Generation: 1, ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2,
		AvailableReplicas: 2, Images: []string{"agent:1.8"}, Template: agentTmpl}
	dsBroken := dsHealthy
	dsBroken.Generation, dsBroken.ObservedGeneration, dsBroken.Images = 2, 2, []string{"agent:1.9"}
	dsBroken.UpdatedReplicas, dsBroken.ReadyReplicas, dsBroken.AvailableReplicas = 1, 1, 1
	pull := bus.ContainerState{Name: "agent", Image: "agent:1.9", State: bus.ContainerWaiting, Reason: "ImagePullBackOff"}
	dsPod := podOf(3, "infra", "agent-x", "DaemonSet", "agent", bus.PodState{Phase: "Pending", Containers: []bus.ContainerState{pull}})

	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"statefulset: new revision crash-loops", []bus.Delivery{statefulSetOf(1, "shop", "db", stsHealthy), statefulSetOf(2, "shop", "db", stsBroken), newPod(3, "db-bbb")},
			[]string{"propose_rollback StatefulSet/shop/db"}},
		{"statefulset: a revision that changed no image", []bus.Delivery{statefulSetOf(1, "shop", "db", stsHealthy), statefulSetOf(2, "shop", "db", stsSameImages), newPod(3, "db-bbb")},
			[]string{"propose_rollback StatefulSet/shop/db"}},
		{"statefulset: the failing pod runs the healthy revision", []bus.Delivery{statefulSetOf(1, "shop", "db", stsHealthy), statefulSetOf(2, "shop", "db", stsBroken), newPod(3, "db-aaa")},
			nil},
		{"statefulset: never seen healthy", []bus.Delivery{statefulSetOf(2, "shop", "db", stsBroken), newPod(3, "db-bbb")},
			nil},
		{"daemonset: new image cannot be pulled", []bus.Delivery{daemonSetOf(1, "infra", "agent", dsHealthy), daemonSetOf(2, "infra", "agent", dsBroken), dsPod},
			[]string{"propose_rollback DaemonSet/infra/agent"}},
		{"daemonset: images unchanged", []bus.Delivery{daemonSetOf(1, "infra", "agent", dsHealthy), daemonSetOf(2, "infra", "agent", dsHealthy), dsPod},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := observeAll(&BadRollout{}, tc.ds)
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
			for _, in := range got {
				if _, err := wire.Validate(in.Rollback); err != nil {
					t.Fatalf("invalid arguments: %v", err)
				}
				if in.Rollback.ToRevision != 0 {
					t.Errorf("toRevision = %d; the controller resolves the revision before", in.Rollback.ToRevision)
				}
			}
		})
	}
}
