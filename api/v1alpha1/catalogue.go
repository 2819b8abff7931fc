package v1alpha1

// The action table: for every action of the catalogue, what it may act on,
// whether it can be undone and what it disrupts. The MCP tools, the gate's
// guards and the proposal controller's validation all read it; it is the
// one place this knowledge lives.

// TargetKind is one kind of object an action may act on.
type TargetKind struct {
	APIVersion string
	Kind       string
	// Namespaced is false for cluster-scoped kinds (Node): a proposal for
	// one lives in tend's system namespace.
	Namespaced bool
}

// ActionInfo describes one action of the catalogue.
type ActionInfo struct {
	Action Action
	// Targets are the kinds the action acts on.
	Targets []TargetKind
	// Undoable is true when a failed verification is followed by an undo;
	// otherwise the proposal ends Failed.
	Undoable bool
	// Disrupts is true when the action stops or replaces pods (a rollout,
	// an eviction, a drain).
	Disrupts bool
	// NodeWide is true when the action takes a whole node out of (or
	// back into) service; the blast-radius guard counts it.
	NodeWide bool
	// Shim is true when the runtime shim carries the action out on a node.
	Shim bool
	// Summary says what the action does, in one line.
	Summary string
}

// Target kinds of the table.
var (
	kindDeployment  = TargetKind{APIVersion: "apps/v1", Kind: "Deployment", Namespaced: true}
	kindStatefulSet = TargetKind{APIVersion: "apps/v1", Kind: "StatefulSet", Namespaced: true}
	kindDaemonSet   = TargetKind{APIVersion: "apps/v1", Kind: "DaemonSet", Namespaced: true}
	kindCronJob     = TargetKind{APIVersion: "batch/v1", Kind: "CronJob", Namespaced: true}
	kindJob         = TargetKind{APIVersion: "batch/v1", Kind: "Job", Namespaced: true}
	kindService     = TargetKind{APIVersion: "v1", Kind: "Service", Namespaced: true}
	kindPod         = TargetKind{APIVersion: "v1", Kind: "Pod", Namespaced: true}
	kindNode        = TargetKind{APIVersion: "v1", Kind: "Node"}
	kindHPA         = TargetKind{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Namespaced: true}
)

// Catalogue is the action table, in the order of Actions.
var Catalogue = []ActionInfo{
	{Action: ActionRollbackWorkload, Targets: []TargetKind{kindDeployment, kindStatefulSet, kindDaemonSet}, Undoable: true, Disrupts: true,
		Summary: "return a Deployment, StatefulSet or DaemonSet to the pod template of an earlier revision"},
	{Action: ActionRestartWorkload, Targets: []TargetKind{kindDeployment, kindStatefulSet, kindDaemonSet}, Disrupts: true,
		Summary: "a rolling restart of a workload's pods"},
	{Action: ActionScaleWorkload, Targets: []TargetKind{kindDeployment, kindStatefulSet}, Undoable: true,
		Summary: "set a workload's replica count"},
	{Action: ActionSetResources, Targets: []TargetKind{kindDeployment, kindStatefulSet, kindDaemonSet}, Undoable: true, Disrupts: true,
		Summary: "set one container's requests and limits in a workload's pod template"},
	{Action: ActionPatchWorkload, Targets: []TargetKind{kindDeployment, kindStatefulSet, kindDaemonSet, kindCronJob, kindService}, Undoable: true, Disrupts: true,
		Summary: "a JSON patch of a workload's pod template or a Service, on allowed paths"},
	{Action: ActionEvictPod, Targets: []TargetKind{kindPod}, Disrupts: true,
		Summary: "evict a pod through the Eviction API, which honours PodDisruptionBudgets"},
	{Action: ActionForceDeletePod, Targets: []TargetKind{kindPod}, Disrupts: true,
		Summary: "force-delete a pod stuck terminating on a node that is not ready"},
	{Action: ActionCordonNode, Targets: []TargetKind{kindNode}, Undoable: true, NodeWide: true,
		Summary: "mark a node unschedulable"},
	{Action: ActionUncordonNode, Targets: []TargetKind{kindNode}, Undoable: true,
		Summary: "mark a node schedulable again"},
	{Action: ActionDrainNode, Targets: []TargetKind{kindNode}, Undoable: true, Disrupts: true, NodeWide: true,
		Summary: "cordon a node and evict its pods, honouring PodDisruptionBudgets"},
	{Action: ActionRetryJob, Targets: []TargetKind{kindJob, kindCronJob},
		Summary: "run a failed Job again, or a CronJob's job now"},
	{Action: ActionSetAutoscaler, Targets: []TargetKind{kindHPA}, Undoable: true,
		Summary: "set a HorizontalPodAutoscaler's bounds and CPU target"},
	{Action: ActionRestartContainer, Targets: []TargetKind{kindPod}, Disrupts: true, Shim: true,
		Summary: "restart one container in place, on its node"},
	{Action: ActionPruneImages, Targets: []TargetKind{kindNode}, Shim: true,
		Summary: "remove unused images on a node down to a target usage"},
	{Action: ActionCollectDiagnostics, Targets: []TargetKind{kindPod, kindNode}, Shim: true,
		Summary: "collect logs, container state and stats from a pod or a node"},
}

// LookupAction returns the table's entry for a.
func LookupAction(a Action) (ActionInfo, bool) {
	for _, info := range Catalogue {
		if info.Action == a {
			return info, true
		}
	}
	return ActionInfo{}, false
}

// Target returns the target kind of the action for apiVersion and kind.
func (i ActionInfo) Target(apiVersion, kind string) (TargetKind, bool) {
	for _, t := range i.Targets {
		if t.APIVersion == apiVersion && t.Kind == kind {
			return t, true
		}
	}
	return TargetKind{}, false
}

// Kinds are the names of the action's target kinds.
func (i ActionInfo) Kinds() []string {
	out := make([]string, len(i.Targets))
	for j, t := range i.Targets {
		out[j] = t.Kind
	}
	return out
}

// PatchPaths are the JSON pointers PatchWorkload may touch, by target
// kind, and everything below them; "*" stands for one array index (or
// "-"). They cover what fixes a misconfigured workload (its containers'
// image, command, args, env, ports and probes, and where its pods may run)
// and a Service's selector and ports; nothing that widens privileges
// (securityContext, service accounts, volumes, host access) is here.
var PatchPaths = map[string][]string{
	"Deployment":  podTemplatePaths("/spec/template/spec"),
	"StatefulSet": podTemplatePaths("/spec/template/spec"),
	"DaemonSet":   podTemplatePaths("/spec/template/spec"),
	"CronJob":     podTemplatePaths("/spec/jobTemplate/spec/template/spec"),
	"Service":     {"/spec/selector", "/spec/ports"},
}

func podTemplatePaths(spec string) []string {
	var out []string
	for _, list := range []string{"containers", "initContainers"} {
		for _, field := range []string{"image", "command", "args", "env", "envFrom", "ports", "readinessProbe", "livenessProbe", "startupProbe"} {
			out = append(out, spec+"/"+list+"/*/"+field)
		}
	}
	return append(out, spec+"/nodeSelector", spec+"/affinity", spec+"/tolerations")
}

// PatchPathAllowed reports whether PatchWorkload may touch path on a
// target of kind: whether it is one of PatchPaths[kind] or below one.
func PatchPathAllowed(kind, path string) bool {
	segs := pointerSegments(path)
	for _, allowed := range PatchPaths[kind] {
		want := pointerSegments(allowed)
		if len(segs) < len(want) {
			continue
		}
		ok := true
		for i, w := range want {
			if w != "*" && w != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// pointerSegments splits a JSON pointer into its unescaped tokens.
func pointerSegments(p string) []string {
	if p == "" || p[0] != '/' {
		return nil
	}
	var out []string
	for _, s := range splitPointer(p[1:]) {
		out = append(out, unescapePointer(s))
	}
	return out
}

func splitPointer(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescapePointer(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '~' && i+1 < len(s) {
			switch s[i+1] {
			case '0':
				out = append(out, '~')
				i++
				continue
			case '1':
				out = append(out, '/')
				i++
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
