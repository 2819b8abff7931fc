package agents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// NodeHealth is the runbook for a node that stopped (NotReady past a grace
// period: its kubelet no longer reports) or reports pressure (memory, disk,
// PIDs): the pods on it must move. Capacity comes first: when no other
// ready, schedulable node without pressure exists, it proposes uncordoning
// a ready spare that is cordoned. Once capacity is there (seen in the
// telemetry, not assumed), it proposes draining the node, which cordons it
// and evicts its pods through the Eviction API, honouring
// PodDisruptionBudgets. A node under pressure still runs its pods: it is
// cordoned and its pods are evicted one at a time instead, each once the
// last one's replacement is ready.
//
// A node with no pods of a workload on it is left alone, and so is a node
// that is the only one: draining it would leave the pods nowhere to go.
type NodeHealth struct {
	// NotReadyGrace is how long a node must be NotReady. Default 10s (the
	// node controller has already waited its own grace period before it
	// marks a node NotReady).
	NotReadyGrace time.Duration
	// PressureGrace is how long a node must report pressure. Default 5s.
	PressureGrace time.Duration
	// EvictSettle is how long every pod of a workload must have been ready
	// before the next of its pods on a node under pressure is evicted: the
	// last replacement has served through a window, not one sample. It is
	// longer than the proposal controller's stable window (10s by default)
	// with room for its polling: that window restarts whenever the
	// workload's set of pods changes, so the last eviction must be verified
	// before the next one changes the set again; evictions then follow one
	// another instead of piling up in flight against the gate's limit of
	// applies per namespace. Default 15s.
	EvictSettle time.Duration
}

var _ Runbook = (*NodeHealth)(nil)

// Name implements Runbook.
func (r *NodeHealth) Name() string { return "node-health" }

// Evaluate implements Runbook.
func (r *NodeHealth) Evaluate(m *Model, now time.Time) []Intent {
	notReadyGrace, pressureGrace := r.NotReadyGrace, r.PressureGrace
	if notReadyGrace <= 0 {
		notReadyGrace = 10 * time.Second
	}
	if pressureGrace <= 0 {
		pressureGrace = 5 * time.Second
	}
	names := make([]string, 0, len(m.Nodes))
	for name := range m.Nodes {
		names = append(names, name)
	}
	slices.Sort(names)

	var out []Intent
	uncordoning := false
	for _, name := range names {
		n := m.Nodes[name]
		var fault string
		switch {
		case !n.State.Ready && !n.NotReadySince.IsZero() && m.lasted(n.NotReadySince, notReadyGrace, now):
			fault = fmt.Sprintf("is NotReady (for %ds)", int(now.Sub(n.NotReadySince).Seconds()))
		case n.State.Ready && nodePressure(n.State) != "" && !n.PressureSince.IsZero() && m.lasted(n.PressureSince, pressureGrace, now):
			fault = fmt.Sprintf("reports %s (for %ds)", nodePressure(n.State), int(now.Sub(n.PressureSince).Seconds()))
		default:
			continue
		}
		// The pods that must move: those a workload owns (a DaemonSet's
		// pod belongs to its node and is not drained).
		var moving []*Pod
		for _, p := range m.PodsOn(name) {
			if p.Workload.Kind != "" && p.Workload.Kind != KindDaemonSet {
				moving = append(moving, p)
			}
		}
		if len(moving) == 0 {
			continue
		}
		refs := []wire.TelemetryRef{n.Ref}
		var podNames []string
		for i, p := range moving {
			if i < 5 {
				refs = append(refs, p.Ref)
				podNames = append(podNames, p.Key.Namespace+"/"+p.Key.Name)
			}
		}
		// Capacity: another node that is ready, schedulable and under no
		// pressure; else a cordoned one that is ready and under no pressure.
		var ready, spare []*Node
		for _, other := range names {
			o := m.Nodes[other]
			if other == name || !o.State.Ready || nodePressure(o.State) != "" || !fitsAll(moving, o) {
				continue
			}
			if o.State.Unschedulable {
				spare = append(spare, o)
			} else {
				ready = append(ready, o)
			}
		}
		summary := fmt.Sprintf("Node %s %s with %d workload pods on it (%s).", name, fault, len(moving), strings.Join(podNames, ", "))
		// Whatever node the intent targets (a spare to uncordon, a pod to
		// evict), it speaks for this node and its pods' workloads.
		covers := []ObjectKey{{Kind: "Node", Name: name}}
		for _, p := range moving {
			if !slices.Contains(covers, p.Workload) {
				covers = append(covers, p.Workload)
			}
		}
		switch {
		case len(ready) > 0 && n.State.Ready:
			// Pressure: the node still runs its pods. Cordon it, then move
			// them one at a time, each once the last one's replacement is
			// ready, so the workload keeps serving throughout.
			if in := r.relieve(m, n, moving, ready[0], summary, refs, now); in != nil {
				in.Covers = covers
				out = append(out, *in)
			}
		case len(ready) > 0:
			out = append(out, Intent{DrainNode: &wire.DrainNodeArgs{
				NodeArgs: wire.NodeArgs{Node: name},
				Common: wire.Common{
					Summary:     summary,
					Rationale:   fmt.Sprintf("Its pods cannot run well there; node %s is ready, schedulable and under no pressure, so draining moves them there while PodDisruptionBudgets are honoured.", ready[0].Name),
					Risk:        "Medium",
					Telemetry:   append(refs, ready[0].Ref),
					Fingerprint: "node-health/drain/" + name + faultKey(fault),
				},
			}, Covers: covers})
		case len(spare) > 0 && !uncordoning:
			// One spare at a time, whichever node needs it.
			uncordoning = true
			s := spare[0]
			out = append(out, Intent{UncordonNode: &wire.UncordonNodeArgs{
				NodeArgs: wire.NodeArgs{Node: s.Name},
				Common: wire.Common{
					Summary:     fmt.Sprintf("%s No other node can take its pods; node %s is ready and under no pressure but cordoned.", summary, s.Name),
					Rationale:   fmt.Sprintf("Uncordoning %s adds the capacity the pods of %s need before that node is drained.", s.Name, name),
					Risk:        "Low",
					Telemetry:   append(refs, s.Ref),
					Fingerprint: fmt.Sprintf("node-health/uncordon/%s/for-%s", s.Name, name),
				},
			}, Covers: covers})
		}
	}
	return out
}

// fitsAll reports whether every pod's node selector matches the node's
// labels. (Affinity and taints are not in the telemetry; the scheduler
// has the last word.)
func fitsAll(pods []*Pod, n *Node) bool {
	for _, p := range pods {
		for k, v := range p.State.NodeSelector {
			if n.State.Labels[k] != v {
				return false
			}
		}
	}
	return true
}

// relieve is the next step for a node under pressure: cordon it, then
// evict its workload pods one at a time.
func (r *NodeHealth) relieve(m *Model, n *Node, moving []*Pod, target *Node, summary string, refs []wire.TelemetryRef, now time.Time) *Intent {
	settle := r.EvictSettle
	if settle <= 0 {
		settle = 15 * time.Second
	}
	pressure := nodePressure(n.State)
	if !n.State.Unschedulable {
		return &Intent{CordonNode: &wire.CordonNodeArgs{
			NodeArgs: wire.NodeArgs{Node: n.Name},
			Common: wire.Common{
				Summary:     summary,
				Rationale:   fmt.Sprintf("Cordoning keeps new pods off the node while its pods move to node %s, which is ready, schedulable and under no pressure.", target.Name),
				Risk:        "Low",
				Telemetry:   append(refs, target.Ref),
				Fingerprint: "node-health/cordon/" + n.Name + faultKey("reports "+pressure),
			},
		}}
	}
	for _, p := range moving {
		if !p.State.Ready {
			continue
		}
		// One at a time: its workload runs every replica ready (as its own
		// status says; a replacement may not be in the model yet) and every
		// pod of it the model holds is ready.
		w := m.Workloads[p.Workload]
		settled := w != nil && w.Healthy
		var ready int32
		for _, other := range m.PodsOf(p.Workload) {
			if !other.State.Ready || other.ReadySince.IsZero() || !m.lasted(other.ReadySince, settle, now) {
				settled = false
			}
			ready++
		}
		// The last evicted pod's replacement is in the model and ready
		// (the workload's status may not show the eviction yet).
		if w != nil && ready < w.Replicas() {
			settled = false
		}
		if !settled {
			return nil
		}
		return &Intent{EvictPod: &wire.EvictPodArgs{
			PodArgs: wire.PodArgs{Namespace: p.Key.Namespace, Pod: p.Key.Name},
			Common: wire.Common{
				Summary:     fmt.Sprintf("%s Pod %s/%s of %s %s runs there.", summary, p.Key.Namespace, p.Key.Name, p.Workload.Kind, p.Workload.Name),
				Rationale:   fmt.Sprintf("Node %s is cordoned; evicting the pod (honouring its PodDisruptionBudget) lets its workload start a replacement on node %s, which is ready and under no pressure.", n.Name, target.Name),
				Risk:        "Low",
				Telemetry:   append([]wire.TelemetryRef{n.Ref, p.Ref}, target.Ref),
				Fingerprint: fmt.Sprintf("node-health/evict/%s/%s/%s", n.Name, p.Key.Namespace, p.Key.Name),
			},
		}}
	}
	return nil
}

// faultKey is a short, stable key of a fault sentence for a fingerprint:
// the same fault on the same node is one proposal however long it lasts.
func faultKey(fault string) string {
	switch {
	case strings.HasPrefix(fault, "is NotReady"):
		return "/not-ready"
	case strings.Contains(fault, "MemoryPressure"):
		return "/memory-pressure"
	case strings.Contains(fault, "DiskPressure"):
		return "/disk-pressure"
	default:
		return "/pid-pressure"
	}
}
