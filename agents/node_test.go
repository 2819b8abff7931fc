package agents

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
)

func TestNodeHealth(t *testing.T) {
	ready := bus.NodeState{Ready: true, Conditions: []bus.Condition{{Type: "Ready", Status: "True"}}}
	notReady := bus.NodeState{Conditions: []bus.Condition{{Type: "Ready", Status: "Unknown", Reason: "NodeStatusUnknown"}}}
	cordoned := ready
	cordoned.Unschedulable = true
	cordoned.Labels = map[string]string{"pool": "web"}
	diskPressure := bus.NodeState{Ready: true, Conditions: []bus.Condition{{Type: "Ready", Status: "True"}, {Type: "DiskPressure", Status: "True"}}}
	webPod := func(seq uint64, name, node string) bus.Delivery {
		return podOf(seq, "shop", name, "Deployment", "web", bus.PodState{Phase: "Running", NodeName: node})
	}
	readyPod := func(seq uint64, name, node string) bus.Delivery {
		return podOf(seq, "shop", name, "Deployment", "web", bus.PodState{Phase: "Running", Ready: true, NodeName: node})
	}
	diskPressureCordoned := diskPressure
	diskPressureCordoned.Unschedulable = true
	tests := []struct {
		name       string
		grace      time.Duration
		settle     time.Duration
		deliveries []bus.Delivery
		want       []string
	}{{
		name: "not ready node with a cordoned spare: uncordon the spare first",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", cordoned),
			webPod(2, "web-1", "a"), webPod(2, "web-2", "a"),
		},
		want: []string{"propose_uncordon_node Node//b"},
	}, {
		name: "once the spare is schedulable: drain",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", cordoned),
			webPod(2, "web-1", "a"), nodeDelivery(5, "b", ready),
		},
		want: []string{"propose_drain_node Node//a"},
	}, {
		name: "disk pressure with room elsewhere: cordon first",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressure), nodeDelivery(1, "b", ready), webPod(2, "web-1", "a"),
		},
		want: []string{"propose_cordon_node Node//a"},
	}, {
		name: "disk pressure, cordoned: evict one ready pod at a time",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
			readyPod(2, "web-1", "a"), readyPod(2, "web-2", "a"),
		},
		want: []string{"propose_evict_pod Pod/shop/web-1"},
	}, {
		name: "disk pressure, cordoned: a pod was evicted and its replacement is not in the model yet",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
			readyPod(2, "web-2", "a"),
		},
	}, {
		name: "disk pressure, cordoned: the Deployment's status says a replica is not ready yet",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", bus.DeploymentState{Revision: 1, Generation: 1, ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}),
			readyPod(2, "web-2", "a"),
		},
	}, {
		name:   "disk pressure, cordoned: the last replacement has not been ready for the settle window",
		settle: time.Minute,
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
			readyPod(2, "web-2", "a"), readyPod(3, "web-3", "b"),
		},
	}, {
		name:   "disk pressure, cordoned: a pod that turned not ready and ready again restarts the settle window",
		settle: 20 * time.Second,
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
			readyPod(2, "web-2", "a"), readyPod(2, "web-3", "b"), webPod(20, "web-3", "b"), readyPod(21, "web-3", "b"),
		},
	}, {
		name:   "disk pressure, cordoned: every pod ready for the settle window: the next eviction",
		settle: 20 * time.Second,
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
			readyPod(2, "web-2", "a"), readyPod(3, "web-3", "b"), nodeDelivery(20, "b", ready),
		},
		want: []string{"propose_evict_pod Pod/shop/web-2"},
	}, {
		name: "disk pressure, cordoned: the last replacement is not ready yet",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressureCordoned), nodeDelivery(1, "b", ready),
			readyPod(2, "web-2", "a"), webPod(3, "web-3", "b"),
		},
	}, {
		name:  "not ready within its grace period",
		grace: 30 * time.Second,
		deliveries: []bus.Delivery{
			nodeDelivery(1, "b", ready), webPod(2, "web-1", "a"), nodeDelivery(19, "a", notReady),
		},
	}, {
		name: "a node that recovered",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", ready), webPod(2, "web-1", "a"), nodeDelivery(3, "a", ready),
		},
	}, {
		name: "the ready node is not one the pods may run on",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", cordoned),
			nodeDelivery(1, "other", bus.NodeState{Ready: true, Labels: map[string]string{"pool": "batch"}}),
			podOf(2, "shop", "web-1", "Deployment", "web", bus.PodState{NodeName: "a", NodeSelector: map[string]string{"pool": "web"}}),
		},
		want: []string{"propose_uncordon_node Node//b"},
	}, {
		name: "no workload pods on it",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", ready),
			podOf(2, "infra", "agent-a", "DaemonSet", "agent", bus.PodState{NodeName: "a"}),
		},
	}, {
		name: "the only node: nowhere to move to",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", diskPressure), webPod(2, "web-1", "a"),
		},
	}, {
		name: "the other node is under pressure too",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "a", notReady), nodeDelivery(1, "b", diskPressure), webPod(2, "web-1", "a"),
		},
	}, {
		name: "out-of-order telemetry: an older ready message does not hide the fault",
		deliveries: []bus.Delivery{
			nodeDelivery(1, "b", ready), webPod(2, "web-1", "a"), nodeDelivery(3, "a", notReady), nodeDelivery(2, "a", ready),
		},
		want: []string{"propose_drain_node Node//a"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, now := replay(tc.deliveries)
			got := callsOf((&NodeHealth{NotReadyGrace: tc.grace, EvictSettle: tc.settle}).Evaluate(m, now.Add(5*time.Second)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("intents (-want +got):\n%s", diff)
			}
		})
	}
}
