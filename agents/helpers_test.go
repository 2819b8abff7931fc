package agents

import (
	"fmt"

	"github.com/tendops/tend/bus"
)

// delivery wraps an envelope as the bus delivers it, with stream sequence
// seq and a time of at(seq).
func delivery(seq uint64, kind bus.Kind, namespace, name string, set func(*bus.Envelope)) bus.Delivery {
	subject := fmt.Sprintf("tend.telemetry.test.%s.%s.%s", kind, namespace, name)
	if namespace == "" {
		subject = fmt.Sprintf("tend.telemetry.test.%s._.%s", kind, name)
	}
	env := &bus.Envelope{
		SchemaVersion: bus.SchemaVersion,
		ID:            fmt.Sprintf("%s-%s/%d", kind, name, seq),
		Cluster:       "test",
		Object:        bus.ObjectRef{Kind: kind, Namespace: namespace, Name: name, UID: name + "-uid"},
		Time:          at(seq),
	}
	set(env)
	return bus.Delivery{Subject: subject, StreamSeq: seq, Envelope: env}
}

func nodeDelivery(seq uint64, name string, st bus.NodeState) bus.Delivery {
	return delivery(seq, bus.KindNode, "", name, func(e *bus.Envelope) { e.Node = &st })
}

func podOf(seq uint64, namespace, name, kind, workload string, st bus.PodState) bus.Delivery {
	if kind != "" {
		st.Workload = &bus.WorkloadRef{Kind: kind, Name: workload}
	}
	return delivery(seq, bus.KindPod, namespace, name, func(e *bus.Envelope) { e.Pod = &st })
}

func deploymentOf(seq uint64, namespace, name string, st bus.DeploymentState) bus.Delivery {
	return delivery(seq, bus.KindDeployment, namespace, name, func(e *bus.Envelope) { e.Deployment = &st })
}

func serviceOf(seq uint64, namespace, name string, st bus.ServiceState) bus.Delivery {
	return delivery(seq, bus.KindService, namespace, name, func(e *bus.Envelope) { e.Service = &st })
}

// healthyDeployment is a Deployment at revision rev with every replica ready.
func healthyDeployment(rev int64, replicas int32, template ...bus.ContainerState) bus.DeploymentState {
	return bus.DeploymentState{Generation: rev, ObservedGeneration: rev, Revision: rev, Replicas: replicas,
		UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas, Template: template}
}

// callsOf lists intents as "tool target" lines.
func callsOf(intents []Intent) []string {
	var out []string
	for _, in := range intents {
		if in.Finding != nil {
			out = append(out, "finding "+in.Finding.Object())
			continue
		}
		tool, _, _ := in.Call()
		out = append(out, tool+" "+in.target())
	}
	return out
}
