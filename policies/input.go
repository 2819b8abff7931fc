package policies

import (
	"time"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// Input is the typed gate input, exposed to CEL rules as the variable
// `proposal`. Field names in CEL are the lowerCamel names of the `cel` struct
// tags, and every field access is type-checked when a policy is loaded.
//
// Build it with [NewInput]; a zero Input is always denied (no action, no
// target).
type Input struct {
	// Action is the catalogue action, e.g. "RollbackWorkload".
	Action string `cel:"action"`
	// Risk is the proposer's risk class: "Low", "Medium" or "High".
	Risk string `cel:"risk"`
	// Parameters of the change.
	Parameters Parameters `cel:"parameters"`
	// Target is the object the action applies to, with what the gatherer found.
	Target Target `cel:"target"`
	// Namespace of the target, with what the gatherer found. Empty for
	// cluster-scoped targets.
	Namespace Namespace `cel:"namespace"`
	// Proposer is the authenticated identity that made the proposal.
	Proposer Proposer `cel:"proposer"`
	// Facts are what the controller read from the cluster for this
	// decision: the gate decides on them, never on the proposal's claims.
	Facts Facts `cel:"facts"`
	// Change is the change the proposal asks for, in the gate's units:
	// what a rule compares with the facts.
	Change Change `cel:"change"`
}

// Change is the change a proposal asks for: its action's typed parameters in
// the gate's units. Members that do not belong to the action are zero.
type Change struct {
	// Replicas a ScaleWorkload asks for.
	Replicas int64 `cel:"replicas"`
	// Container a RestartContainer restarts, or a CollectDiagnostics of a
	// pod limits itself to.
	Container string `cel:"container"`
	// Prune is what a PruneImages asks for.
	Prune Prune `cel:"prune"`
	// Resources a SetResources asks for; a value it leaves unset is 0.
	Resources Resources `cel:"resources"`
	// Paths a PatchWorkload touches, in patch order.
	Paths []string `cel:"paths"`
	// Nodes a node action acts on.
	Nodes []string `cel:"nodes"`
	// Autoscaler bounds a SetAutoscaler asks for; a bound it leaves
	// unchanged is 0.
	Autoscaler Autoscaler `cel:"autoscaler"`
}

// Prune is the target and allow-list of a PruneImages: exactly one target
// is set (the other is 0).
type Prune struct {
	// TargetUsedPercent is the image filesystem usage to prune down to, in
	// percent of its capacity.
	TargetUsedPercent int64 `cel:"targetUsedPercent"`
	// TargetUsedBytes is the usage to prune down to, in bytes.
	TargetUsedBytes int64 `cel:"targetUsedBytes"`
	// Keep are the images the proposal asks never to remove, on top of the
	// node's own allow-list.
	Keep []string `cel:"keep"`
}

// Resources are one container's requests and limits, in millicores and
// bytes; 0 when not set.
type Resources struct {
	Container          string `cel:"container"`
	CPURequestMilli    int64  `cel:"cpuRequestMilli"`
	CPULimitMilli      int64  `cel:"cpuLimitMilli"`
	MemoryRequestBytes int64  `cel:"memoryRequestBytes"`
	MemoryLimitBytes   int64  `cel:"memoryLimitBytes"`
}

// Autoscaler are a HorizontalPodAutoscaler's bounds and CPU target, and
// the name of the workload it scales: in a change, the new one ("" when
// unchanged); in the facts, the current one, and whether it exists.
type Autoscaler struct {
	MinReplicas          int64  `cel:"minReplicas"`
	MaxReplicas          int64  `cel:"maxReplicas"`
	TargetCPUUtilization int64  `cel:"targetCPUUtilization"`
	ScaleTarget          string `cel:"scaleTarget"`
	ScaleTargetExists    bool   `cel:"scaleTargetExists"`
}

// Facts are what the controller read from the cluster (v1alpha1.Facts).
type Facts struct {
	// Gathered is false when the controller read no facts for this
	// decision; nothing is then approved automatically.
	Gathered bool `cel:"gathered"`
	// ReadyReplicas is how many of the target's replicas are ready.
	ReadyReplicas int64 `cel:"readyReplicas"`
	// Revision holds the rollout facts of a rollback.
	Revision RevisionFacts `cel:"revision"`
	// Disruption is what the action takes down at once.
	Disruption DisruptionFacts `cel:"disruption"`
	// Node is a node action's node.
	Node NodeFacts `cel:"node"`
	// Resources are the current requests and limits of the container a
	// SetResources changes.
	Resources Resources `cel:"resources"`
	// Autoscaler holds the current bounds of a SetAutoscaler target.
	Autoscaler Autoscaler `cel:"autoscaler"`
	// ImageFS is a PruneImages node's image filesystem, as its runtime
	// shim reported it.
	ImageFS ImageFSFacts `cel:"imageFs"`
	// Run is the improvement run the proposal says it belongs to, as the
	// controller found it; zero when it names none.
	Run RunFacts `cel:"run"`
}

// RunFacts are the improvement run a proposal names (v1alpha1.RunFacts).
// The gate refuses a proposal that names a run which does not list it, and
// a change of a run whose window has closed; an undo is never held to the
// window.
type RunFacts struct {
	// Name is the run's namespace/name; empty when the proposal names no run.
	Name string `cel:"name"`
	// Member is whether the run exists and lists the proposal.
	Member bool `cel:"member"`
	// Undo is whether the run lists it as the undo of one of its changes.
	Undo bool `cel:"undo"`
	// WindowEnd is when the run's window closes, as the run object says;
	// zero unless Member.
	WindowEnd time.Time `cel:"windowEnd"`
}

// ImageFSFacts are a node's image filesystem usage; capacity and percent
// are 0 when the shim cannot see the filesystem.
type ImageFSFacts struct {
	UsedBytes     int64 `cel:"usedBytes"`
	CapacityBytes int64 `cel:"capacityBytes"`
	UsedPercent   int64 `cel:"usedPercent"`
}

// NodeFacts are a node action's node.
type NodeFacts struct {
	Ready         bool  `cel:"ready"`
	Unschedulable bool  `cel:"unschedulable"`
	Pods          int64 `cel:"pods"`
}

// RevisionFacts are the rollout facts of a rollback.
type RevisionFacts struct {
	// Current is the workload's current revision.
	Current int64 `cel:"current"`
	// To is the revision the rollback returns to, as the controller
	// resolved it.
	To int64 `cel:"to"`
	// ToHealthy is whether the controller found that revision ran healthy.
	ToHealthy bool `cel:"toHealthy"`
}

// DisruptionFacts are how much of the target an action takes down at once.
type DisruptionFacts struct {
	// Pods is how many pods the action stops or replaces at once.
	Pods int64 `cel:"pods"`
	// Percent is Pods as a share of the desired replicas.
	Percent int64 `cel:"percent"`
	// PDB names a PodDisruptionBudget the action's evictions would exceed
	// now, empty when none would.
	PDB string `cel:"pdb"`
	// PDBAllowed is how many disruptions that budget allows now.
	PDBAllowed int64 `cel:"pdbAllowed"`
}

// Parameters are the typed parameters of the change. Members that do not
// belong to the action are zero.
type Parameters struct {
	// Rollback parameters of RollbackWorkload.
	Rollback RollbackParameters `cel:"rollback"`
	// Scale parameters of ScaleWorkload.
	Scale ScaleParameters `cel:"scale"`
	// PatchPaths are the JSON pointer paths of a PatchWorkload JSON patch, in
	// patch order.
	PatchPaths []string `cel:"patchPaths"`
}

// RollbackParameters are the parameters of RollbackWorkload.
type RollbackParameters struct {
	// ToRevision is the revision to return to; 0 means the previous one.
	ToRevision int64 `cel:"toRevision"`
	// FromRevision is the revision the proposer saw as current and failing.
	FromRevision int64 `cel:"fromRevision"`
}

// ScaleParameters are the parameters of ScaleWorkload.
type ScaleParameters struct {
	// Replicas is the desired replica count.
	Replicas int64 `cel:"replicas"`
}

// Target describes the proposal's target object.
type Target struct {
	APIVersion string `cel:"apiVersion"`
	Kind       string `cel:"kind"`
	Namespace  string `cel:"namespace"`
	Name       string `cel:"name"`
	// Labels of the live object.
	Labels map[string]string `cel:"labels"`
	// OwnerKind and OwnerName name the controlling owner, if any.
	OwnerKind string `cel:"ownerKind"`
	OwnerName string `cel:"ownerName"`
	// Replicas is the live replica count of a scalable target, else 0.
	Replicas int64 `cel:"replicas"`
	// Exists reports whether the gatherer found the target. The gate denies a
	// proposal whose target does not exist before any rule runs.
	Exists bool `cel:"exists"`
}

// Namespace describes the target's namespace.
type Namespace struct {
	Name   string            `cel:"name"`
	Labels map[string]string `cel:"labels"`
	// Exists reports whether the gatherer found the namespace.
	Exists bool `cel:"exists"`
}

// Proposer is the authenticated identity that made the proposal.
type Proposer struct {
	Username string   `cel:"username"`
	Groups   []string `cel:"groups"`
}

// TargetFacts is what the caller's gatherer found about the target.
type TargetFacts struct {
	// Labels of the live target.
	Labels map[string]string
	// OwnerKind and OwnerName of the controlling owner reference, if any.
	OwnerKind, OwnerName string
	// Replicas of a scalable target.
	Replicas int64
	// Exists is false when the target was not found; the gate then denies.
	Exists bool
	// Facts are what the controller read for the decision; nil when it read
	// none, and then nothing is approved automatically.
	Facts *v1alpha1.Facts
}

// NamespaceFacts is what the caller's gatherer found about the target's
// namespace. It is ignored for cluster-scoped targets.
type NamespaceFacts struct {
	// Labels of the namespace.
	Labels map[string]string
	// Exists is false when the namespace was not found; the gate then denies a
	// namespaced target.
	Exists bool
}

// NewInput builds the gate input for p from the facts the caller gathered. A
// nil p yields a zero Input, which the gate denies. The Input shares the maps
// and slices of its arguments; the gate never modifies them.
func NewInput(p *v1alpha1.Proposal, target TargetFacts, ns NamespaceFacts) Input {
	if p == nil {
		return Input{}
	}
	spec := &p.Spec
	risk := string(spec.Risk)
	if risk == "" {
		// The API server defaults risk to Medium; mirror it so that a policy
		// sees the same value for an object that skipped defaulting.
		risk = string(v1alpha1.RiskMedium)
	}
	in := Input{
		Action: string(spec.Action),
		Risk:   risk,
		Target: Target{
			APIVersion: spec.Target.APIVersion,
			Kind:       spec.Target.Kind,
			Namespace:  spec.Target.Namespace,
			Name:       spec.Target.Name,
			Labels:     target.Labels,
			OwnerKind:  target.OwnerKind,
			OwnerName:  target.OwnerName,
			Replicas:   target.Replicas,
			Exists:     target.Exists,
		},
		Proposer: Proposer{
			Username: spec.Proposer.Username,
			Groups:   spec.Proposer.Groups,
		},
	}
	if f := target.Facts; f != nil {
		in.Facts.Gathered = true
		in.Facts.ReadyReplicas = int64(f.ReadyReplicas)
		if r := f.Revision; r != nil {
			in.Facts.Revision = RevisionFacts{Current: r.Current, To: r.To, ToHealthy: r.ToHealthy}
		}
		if d := f.Disruption; d != nil {
			in.Facts.Disruption = DisruptionFacts{Pods: int64(d.PodsAffected), Percent: int64(d.Percent), PDB: d.PDB, PDBAllowed: int64(d.PDBAllowed)}
		}
		if n := f.Node; n != nil {
			in.Facts.Node = NodeFacts{Ready: n.Ready, Unschedulable: n.Unschedulable, Pods: int64(n.Pods)}
		}
		if r := f.Resources; r != nil {
			in.Facts.Resources = Resources{Container: r.Container, CPURequestMilli: r.CPURequestMilli, CPULimitMilli: r.CPULimitMilli,
				MemoryRequestBytes: r.MemoryRequestBytes, MemoryLimitBytes: r.MemoryLimitBytes}
		}
		if fs := f.ImageFS; fs != nil {
			in.Facts.ImageFS = ImageFSFacts{UsedBytes: fs.UsedBytes, CapacityBytes: fs.CapacityBytes, UsedPercent: int64(fs.UsedPercent)}
		}
		if r := f.Run; r != nil {
			in.Facts.Run = RunFacts{Name: r.Namespace + "/" + r.Name, Member: r.Member, Undo: r.Undo}
			if r.Member && r.WindowEnd != nil {
				in.Facts.Run.WindowEnd = r.WindowEnd.Time
			}
		}
		if a := f.Autoscaler; a != nil {
			in.Facts.Autoscaler = Autoscaler{MinReplicas: int64(a.MinReplicas), MaxReplicas: int64(a.MaxReplicas), TargetCPUUtilization: int64(a.TargetCPUUtilization),
				ScaleTarget: a.ScaleTarget, ScaleTargetExists: a.ScaleTargetExists}
		}
	}
	if spec.Target.Namespace != "" {
		in.Namespace = Namespace{
			Name:   spec.Target.Namespace,
			Labels: ns.Labels,
			Exists: ns.Exists,
		}
	}
	if r := spec.Parameters.Rollback; r != nil {
		in.Parameters.Rollback = RollbackParameters{ToRevision: r.ToRevision, FromRevision: r.FromRevision}
	}
	if s := spec.Parameters.Scale; s != nil {
		in.Parameters.Scale = ScaleParameters{Replicas: int64(s.Replicas)}
	}
	if len(spec.Parameters.Patch) > 0 {
		paths := make([]string, len(spec.Parameters.Patch))
		for i, op := range spec.Parameters.Patch {
			paths[i] = op.Path
		}
		in.Parameters.PatchPaths = paths
	}
	in.Change.Replicas = in.Parameters.Scale.Replicas
	in.Change.Paths = in.Parameters.PatchPaths
	if spec.Target.Kind == "Node" && spec.Target.Name != "" {
		in.Change.Nodes = []string{spec.Target.Name}
	}
	if r := spec.Parameters.Resources; r != nil {
		in.Change.Resources = Resources{
			Container:          r.Container,
			CPURequestMilli:    r.Requests.Cpu().MilliValue(),
			CPULimitMilli:      r.Limits.Cpu().MilliValue(),
			MemoryRequestBytes: r.Requests.Memory().Value(),
			MemoryLimitBytes:   r.Limits.Memory().Value(),
		}
	}
	if c := spec.Parameters.Container; c != nil {
		in.Change.Container = c.Container
	}
	if pr := spec.Parameters.Prune; pr != nil {
		if pr.TargetUsedPercent != nil {
			in.Change.Prune.TargetUsedPercent = int64(*pr.TargetUsedPercent)
		}
		if pr.TargetUsedBytes != nil {
			in.Change.Prune.TargetUsedBytes = *pr.TargetUsedBytes
		}
		in.Change.Prune.Keep = pr.Keep
	}
	if a := spec.Parameters.Autoscaler; a != nil {
		if a.MinReplicas != nil {
			in.Change.Autoscaler.MinReplicas = int64(*a.MinReplicas)
		}
		if a.MaxReplicas != nil {
			in.Change.Autoscaler.MaxReplicas = int64(*a.MaxReplicas)
		}
		if a.TargetCPUUtilization != nil {
			in.Change.Autoscaler.TargetCPUUtilization = int64(*a.TargetCPUUtilization)
		}
		in.Change.Autoscaler.ScaleTarget = a.ScaleTargetName
	}
	return in
}
