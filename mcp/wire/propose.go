package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Propose tool names: one per action of the catalogue.
const (
	ToolProposeRollback           = "propose_rollback"
	ToolProposeRestartWorkload    = "propose_restart_workload"
	ToolProposeScaleWorkload      = "propose_scale_workload"
	ToolProposeSetResources       = "propose_set_resources"
	ToolProposePatchWorkload      = "propose_patch_workload"
	ToolProposeEvictPod           = "propose_evict_pod"
	ToolProposeForceDeletePod     = "propose_force_delete_pod"
	ToolProposeCordonNode         = "propose_cordon_node"
	ToolProposeUncordonNode       = "propose_uncordon_node"
	ToolProposeDrainNode          = "propose_drain_node"
	ToolProposeRetryJob           = "propose_retry_job"
	ToolProposeSetAutoscaler      = "propose_set_autoscaler"
	ToolProposeRestartContainer   = "propose_restart_container"
	ToolProposePruneImages        = "propose_prune_images"
	ToolProposeCollectDiagnostics = "propose_collect_diagnostics"
)

// Limits on propose arguments.
const (
	maxPatchOps        = 64
	maxPatchValueBytes = 16 << 10
)

// Common are the arguments every propose tool takes besides its action's own.
type Common struct {
	Summary     string         `json:"summary" jsonschema:"what you observed, in one or two sentences" schema:"maxLength=4096"`
	Rationale   string         `json:"rationale,omitempty" jsonschema:"why this change should fix it" schema:"maxLength=4096"`
	Risk        string         `json:"risk,omitempty" jsonschema:"your risk assessment (default Medium)" schema:"enum=Low|Medium|High"`
	Telemetry   []TelemetryRef `json:"telemetry,omitempty" jsonschema:"telemetry messages that support the proposal (at most 32)" schema:"maxItems=32"`
	Fingerprint string         `json:"fingerprint,omitempty" jsonschema:"identifies the same proposal across repeats; derived from the action, target and change when empty" schema:"maxLength=128"`
	Agent       string         `json:"agent,omitempty" jsonschema:"name of the calling agent, for the record" schema:"maxLength=253"`
	// ExpiresInSeconds shortens the proposal's life: it expires, unapplied,
	// this long after it is made if it is not applied by then (a scheduled
	// run's window). The server's own expiry still bounds it.
	ExpiresInSeconds int64 `json:"expiresInSeconds,omitempty" jsonschema:"expire the proposal, unapplied, this many seconds after it is made if it has not been applied (at most the server's default expiry)" schema:"min=1,max=604800"`
}

// WorkloadArgs name a workload: a Deployment, StatefulSet or DaemonSet.
type WorkloadArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the workload" schema:"format=dns-label"`
	Kind      string `json:"kind,omitempty" jsonschema:"kind of the workload (default Deployment)"`
	Name      string `json:"name" jsonschema:"name of the workload" schema:"format=dns-name"`
}

// PodArgs name a pod.
type PodArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the pod" schema:"format=dns-label"`
	Pod       string `json:"pod" jsonschema:"name of the pod" schema:"format=dns-name"`
}

// NodeArgs name a node.
type NodeArgs struct {
	Node string `json:"node" jsonschema:"name of the node" schema:"format=dns-name"`
}

// RestartWorkloadArgs are the arguments of propose_restart_workload.
type RestartWorkloadArgs struct {
	WorkloadArgs
	Common
}

// ScaleWorkloadArgs are the arguments of propose_scale_workload.
type ScaleWorkloadArgs struct {
	WorkloadArgs
	Replicas *int32 `json:"replicas" jsonschema:"the desired replica count" schema:"min=0,max=10000"`
	Common
}

// SetResourcesArgs are the arguments of propose_set_resources.
type SetResourcesArgs struct {
	WorkloadArgs
	Container string            `json:"container" jsonschema:"name of the container in the pod template" schema:"format=dns-label"`
	Requests  map[string]string `json:"requests,omitempty" jsonschema:"new requests by resource, e.g. {\"cpu\": \"250m\", \"memory\": \"256Mi\"}" schema:"keys=cpu|memory|ephemeral-storage"`
	Limits    map[string]string `json:"limits,omitempty" jsonschema:"new limits by resource, e.g. {\"memory\": \"512Mi\"}" schema:"keys=cpu|memory|ephemeral-storage"`
	Common
}

// PatchOp is one RFC 6902 operation.
type PatchOp struct {
	Op    string          `json:"op" jsonschema:"the operation" schema:"enum=add|remove|replace|test"`
	Path  string          `json:"path" jsonschema:"JSON pointer under /spec, e.g. /spec/template/spec/containers/0/env/-" schema:"maxLength=512"`
	Value json.RawMessage `json:"value,omitempty" jsonschema:"the value for add, replace and test: any JSON value but null (a string, number, boolean, object or array); to unset a field, use op remove"`
}

// PatchWorkloadArgs are the arguments of propose_patch_workload.
type PatchWorkloadArgs struct {
	WorkloadArgs
	Patch []PatchOp `json:"patch" jsonschema:"the JSON patch (at most 64 operations, paths under /spec only)" schema:"maxItems=64"`
	Common
}

// EvictPodArgs are the arguments of propose_evict_pod.
type EvictPodArgs struct {
	PodArgs
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" jsonschema:"overrides the pod's termination grace period" schema:"min=0,max=3600"`
	Common
}

// ForceDeletePodArgs are the arguments of propose_force_delete_pod.
type ForceDeletePodArgs struct {
	PodArgs
	Common
}

// CordonNodeArgs are the arguments of propose_cordon_node.
type CordonNodeArgs struct {
	NodeArgs
	Common
}

// UncordonNodeArgs are the arguments of propose_uncordon_node.
type UncordonNodeArgs struct {
	NodeArgs
	Common
}

// PruneImagesArgs are the arguments of propose_prune_images.
type PruneImagesArgs struct {
	NodeArgs
	TargetUsedPercent *int32   `json:"targetUsedPercent,omitempty" jsonschema:"image filesystem usage to prune down to, in percent of its capacity (1-99); give this or targetUsedBytes"`
	TargetUsedBytes   *int64   `json:"targetUsedBytes,omitempty" jsonschema:"image filesystem usage to prune down to, in bytes; give this or targetUsedPercent"`
	Keep              []string `json:"keep,omitempty" jsonschema:"images never to remove besides the node's own allow-list: a reference, an image ID, or a prefix ending in * (at most 64)"`
	Common
}

// DrainNodeArgs are the arguments of propose_drain_node.
type DrainNodeArgs struct {
	NodeArgs
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" jsonschema:"overrides each pod's termination grace period" schema:"min=0,max=3600"`
	TimeoutSeconds     *int64 `json:"timeoutSeconds,omitempty" jsonschema:"bounds the whole drain" schema:"min=1,max=86400"`
	Common
}

// RetryJobArgs are the arguments of propose_retry_job.
type RetryJobArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the Job" schema:"format=dns-label"`
	Name      string `json:"name" jsonschema:"name of the failed Job" schema:"format=dns-name"`
	Common
}

// SetAutoscalerArgs are the arguments of propose_set_autoscaler.
type SetAutoscalerArgs struct {
	Namespace            string `json:"namespace" jsonschema:"namespace of the HorizontalPodAutoscaler" schema:"format=dns-label"`
	Name                 string `json:"name" jsonschema:"name of the HorizontalPodAutoscaler" schema:"format=dns-name"`
	MinReplicas          *int32 `json:"minReplicas,omitempty" jsonschema:"new lower bound" schema:"min=1,max=10000"`
	MaxReplicas          *int32 `json:"maxReplicas,omitempty" jsonschema:"new upper bound (at least minReplicas)" schema:"min=1,max=10000"`
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty" jsonschema:"new average CPU target in percent of requests" schema:"min=1,max=100"`
	ScaleTargetName      string `json:"scaleTargetName,omitempty" jsonschema:"name of another workload, of the kind the autoscaler targets now, for it to scale instead" schema:"format=dns-name"`
	Common
}

// RestartContainerArgs are the arguments of propose_restart_container.
type RestartContainerArgs struct {
	PodArgs
	Container string `json:"container" jsonschema:"name of the container to restart on its node" schema:"format=dns-label"`
	Common
}

// CollectDiagnosticsArgs are the arguments of propose_collect_diagnostics:
// either a pod (with an optional container) or a node.
type CollectDiagnosticsArgs struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace of the pod (with pod)" schema:"format=dns-label"`
	Pod       string `json:"pod,omitempty" jsonschema:"name of the pod; or give node instead" schema:"format=dns-name"`
	Container string `json:"container,omitempty" jsonschema:"one container of the pod; all when empty" schema:"format=dns-label"`
	Node      string `json:"node,omitempty" jsonschema:"name of the node; or give namespace and pod instead" schema:"format=dns-name"`
	Common
}

// Draft is a proposal as a propose tool describes it, before the server
// adds the target's identity and the caller's.
type Draft struct {
	Action tendv1.Action
	Target tendv1.TargetRef
	Params tendv1.Parameters
	// Change identifies the change within the target, for the default
	// fingerprint.
	Change string
}

// ProposeArgs is what every propose tool's arguments provide.
type ProposeArgs interface {
	// CommonArgs returns the arguments every propose tool shares.
	CommonArgs() *Common
	// Draft checks the action's own arguments and describes the proposal.
	Draft() (Draft, []string)
}

// CommonArgs returns c.
func (c *Common) CommonArgs() *Common { return c }

// validate checks the common arguments.
func (c *Common) validate() []string {
	var errs []string
	if strings.TrimSpace(c.Summary) == "" {
		errs = append(errs, "summary is required")
	}
	if len(c.Summary) > maxSummary {
		errs = append(errs, fmt.Sprintf("summary is %d bytes; at most %d", len(c.Summary), maxSummary))
	}
	if len(c.Rationale) > maxRationale {
		errs = append(errs, fmt.Sprintf("rationale is %d bytes; at most %d", len(c.Rationale), maxRationale))
	}
	switch tendv1.Risk(c.Risk) {
	case "", tendv1.RiskLow, tendv1.RiskMedium, tendv1.RiskHigh:
	default:
		errs = append(errs, fmt.Sprintf("risk %q: must be Low, Medium or High", Clip(c.Risk)))
	}
	if len(c.Telemetry) > maxTelemetry {
		// Only the count: one message per ref would let a small request
		// produce an error many times its size.
		errs = append(errs, fmt.Sprintf("%d telemetry refs; at most %d", len(c.Telemetry), maxTelemetry))
	} else {
		for i, t := range c.Telemetry {
			if t.Subject == "" || len(t.Subject) > 1024 || len(t.ID) > maxShort {
				errs = append(errs, fmt.Sprintf("telemetry[%d]: subject required (at most 1024 bytes), id at most %d bytes", i, maxShort))
			}
		}
	}
	if c.ExpiresInSeconds < 0 || c.ExpiresInSeconds > 7*24*3600 {
		errs = append(errs, fmt.Sprintf("expiresInSeconds %d: must be between 1 and 604800", c.ExpiresInSeconds))
	}
	if len(c.Fingerprint) > 128 || len(c.Agent) > maxShort {
		errs = append(errs, "fingerprint is at most 128 bytes and agent at most 253")
	}
	return errs
}

// NameErrs checks a DNS label such as a namespace or container name (when
// label), or an object name.
func NameErrs(field, v string, label bool) []string {
	var msgs []string
	if label {
		msgs = validation.IsDNS1123Label(v)
	} else {
		msgs = validation.IsDNS1123Subdomain(v)
	}
	if len(msgs) > 0 {
		return []string{fmt.Sprintf("%s %q: %s", field, Clip(v), strings.Join(msgs, "; "))}
	}
	return nil
}

// target is the workload the arguments name, of a kind the action acts on
// according to the catalogue's table.
func (w *WorkloadArgs) target(action tendv1.Action) (tendv1.TargetRef, []string) {
	errs := append(NameErrs("namespace", w.Namespace, true), NameErrs("name", w.Name, false)...)
	kind := w.Kind
	if kind == "" {
		kind = "Deployment"
	}
	info, _ := tendv1.LookupAction(action)
	// Kinds are matched as the API server matches them: in any case.
	i := slices.IndexFunc(info.Targets, func(k tendv1.TargetKind) bool { return strings.EqualFold(k.Kind, kind) })
	if i < 0 {
		errs = append(errs, fmt.Sprintf("kind %q: must be one of %s", Clip(w.Kind), strings.Join(info.Kinds(), ", ")))
		return tendv1.TargetRef{APIVersion: "apps/v1", Kind: kind, Namespace: w.Namespace, Name: w.Name}, errs
	}
	k := info.Targets[i]
	return tendv1.TargetRef{APIVersion: k.APIVersion, Kind: k.Kind, Namespace: w.Namespace, Name: w.Name}, errs
}

func (p *PodArgs) target() (tendv1.TargetRef, []string) {
	errs := append(NameErrs("namespace", p.Namespace, true), NameErrs("pod", p.Pod, false)...)
	return tendv1.TargetRef{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Pod}, errs
}

func (n *NodeArgs) target() (tendv1.TargetRef, []string) {
	return tendv1.TargetRef{APIVersion: "v1", Kind: "Node", Name: n.Node}, NameErrs("node", n.Node, false)
}

func (a *ProposeRollbackArgs) Draft() (Draft, []string) {
	w := WorkloadArgs{Namespace: a.Namespace, Kind: a.Kind, Name: a.Name}
	t, errs := w.target(tendv1.ActionRollbackWorkload)
	if a.ToRevision < 0 || a.FromRevision < 0 {
		errs = append(errs, "revisions must not be negative")
	}
	return Draft{
		Action: tendv1.ActionRollbackWorkload,
		Target: t,
		Params: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{ToRevision: a.ToRevision, FromRevision: a.FromRevision}},
		Change: fmt.Sprintf("from-%d/to-%d", a.FromRevision, a.ToRevision),
	}, errs
}

func (a *RestartWorkloadArgs) Draft() (Draft, []string) {
	t, errs := a.target(tendv1.ActionRestartWorkload)
	return Draft{Action: tendv1.ActionRestartWorkload, Target: t}, errs
}

func (a *ScaleWorkloadArgs) Draft() (Draft, []string) {
	t, errs := a.target(tendv1.ActionScaleWorkload)
	d := Draft{Action: tendv1.ActionScaleWorkload, Target: t}
	switch {
	case a.Replicas == nil:
		errs = append(errs, "replicas is required")
	case *a.Replicas < 0 || *a.Replicas > 10000:
		errs = append(errs, fmt.Sprintf("replicas %d: must be between 0 and 10000", *a.Replicas))
	default:
		d.Params.Scale = &tendv1.ScaleParameters{Replicas: *a.Replicas}
		d.Change = fmt.Sprintf("replicas-%d", *a.Replicas)
	}
	return d, errs
}

// resourceNames are the resources SetResources may change.
var resourceNames = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

func resourceList(field string, in map[string]string) (corev1.ResourceList, []string) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > len(resourceNames) {
		return nil, []string{fmt.Sprintf("%s: at most %d resources", field, len(resourceNames))}
	}
	var errs []string
	out := corev1.ResourceList{}
	for k, v := range in {
		if !slices.Contains(resourceNames, corev1.ResourceName(k)) {
			errs = append(errs, fmt.Sprintf("%s: resource %q: must be cpu, memory or ephemeral-storage", field, Clip(k)))
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, fmt.Sprintf("%s.%s %q: must be a positive quantity such as 250m or 256Mi", field, k, Clip(v)))
			continue
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, errs
}

func (a *SetResourcesArgs) Draft() (Draft, []string) {
	t, errs := a.target(tendv1.ActionSetResources)
	errs = append(errs, NameErrs("container", a.Container, true)...)
	req, e1 := resourceList("requests", a.Requests)
	lim, e2 := resourceList("limits", a.Limits)
	errs = append(append(errs, e1...), e2...)
	if len(a.Requests) == 0 && len(a.Limits) == 0 {
		errs = append(errs, "give requests, limits or both")
	}
	for k, l := range lim {
		if r, ok := req[k]; ok && r.Cmp(l) > 0 {
			errs = append(errs, fmt.Sprintf("requests.%s is above limits.%s", k, k))
		}
	}
	return Draft{
		Action: tendv1.ActionSetResources, Target: t,
		Params: tendv1.Parameters{Resources: &tendv1.ResourcesParameters{Container: a.Container, Requests: req, Limits: lim}},
		Change: a.Container + "/" + quantities(req) + "/" + quantities(lim),
	}, errs
}

func quantities(l corev1.ResourceList) string {
	var parts []string
	for _, k := range resourceNames {
		if q, ok := l[k]; ok {
			parts = append(parts, string(k)+"="+q.String())
		}
	}
	return strings.Join(parts, ",")
}

func (a *PatchWorkloadArgs) Draft() (Draft, []string) {
	t, errs := a.target(tendv1.ActionPatchWorkload)
	switch {
	case len(a.Patch) == 0:
		errs = append(errs, "patch needs at least one operation")
	case len(a.Patch) > maxPatchOps:
		errs = append(errs, fmt.Sprintf("patch has %d operations; at most %d", len(a.Patch), maxPatchOps))
		return Draft{}, errs
	}
	ops := make([]tendv1.JSONPatchOperation, 0, len(a.Patch))
	for i, op := range a.Patch {
		switch op.Op {
		case "add", "replace", "test":
			if len(op.Value) == 0 {
				errs = append(errs, fmt.Sprintf("patch[%d]: %s needs a value", i, op.Op))
			} else if string(bytes.TrimSpace(op.Value)) == "null" {
				errs = append(errs, fmt.Sprintf("patch[%d]: a null value; to unset a field, use op remove", i))
			}
		case "remove":
		default:
			errs = append(errs, fmt.Sprintf("patch[%d]: op %q: must be add, remove, replace or test", i, Clip(op.Op)))
		}
		if !strings.HasPrefix(op.Path, "/spec/") || len(op.Path) > 512 || strings.ContainsAny(op.Path, "\x00\n") {
			errs = append(errs, fmt.Sprintf("patch[%d]: path %q: must be a JSON pointer under /spec/ of at most 512 bytes", i, Clip(op.Path)))
		}
		if len(op.Value) > maxPatchValueBytes {
			errs = append(errs, fmt.Sprintf("patch[%d]: value is %d bytes; at most %d", i, len(op.Value), maxPatchValueBytes))
		}
		o := tendv1.JSONPatchOperation{Op: op.Op, Path: op.Path}
		if len(op.Value) > 0 {
			if !json.Valid(op.Value) {
				errs = append(errs, fmt.Sprintf("patch[%d]: value is not valid JSON", i))
			}
			o.Value = &apiextensionsv1.JSON{Raw: op.Value}
		}
		ops = append(ops, o)
	}
	raw, _ := json.Marshal(a.Patch)
	return Draft{Action: tendv1.ActionPatchWorkload, Target: t, Params: tendv1.Parameters{Patch: ops}, Change: Digest(string(raw))}, errs
}

func (a *EvictPodArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	if g := a.GracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		errs = append(errs, "gracePeriodSeconds: must be between 0 and 3600")
	}
	return Draft{Action: tendv1.ActionEvictPod, Target: t, Params: tendv1.Parameters{Eviction: &tendv1.EvictionParameters{GracePeriodSeconds: a.GracePeriodSeconds}}}, errs
}

func (a *ForceDeletePodArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	return Draft{Action: tendv1.ActionForceDeletePod, Target: t}, errs
}

func (a *CordonNodeArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	return Draft{Action: tendv1.ActionCordonNode, Target: t}, errs
}

func (a *UncordonNodeArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	return Draft{Action: tendv1.ActionUncordonNode, Target: t}, errs
}

// maxKeep bounds a PruneImages allow-list, as the shim does.
const maxKeep = 64

func (a *PruneImagesArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	p := &tendv1.PruneParameters{TargetUsedPercent: a.TargetUsedPercent, TargetUsedBytes: a.TargetUsedBytes}
	change := ""
	switch {
	case (a.TargetUsedPercent == nil) == (a.TargetUsedBytes == nil):
		errs = append(errs, "give exactly one of targetUsedPercent and targetUsedBytes")
	case a.TargetUsedPercent != nil && (*a.TargetUsedPercent < 1 || *a.TargetUsedPercent > 99):
		errs = append(errs, fmt.Sprintf("targetUsedPercent %d: must be between 1 and 99", *a.TargetUsedPercent))
	case a.TargetUsedBytes != nil && *a.TargetUsedBytes < 1:
		errs = append(errs, fmt.Sprintf("targetUsedBytes %d: must be positive", *a.TargetUsedBytes))
	case a.TargetUsedPercent != nil:
		change = fmt.Sprintf("percent-%d", *a.TargetUsedPercent)
	default:
		change = fmt.Sprintf("bytes-%d", *a.TargetUsedBytes)
	}
	if len(a.Keep) > maxKeep {
		errs = append(errs, fmt.Sprintf("keep has %d images; at most %d", len(a.Keep), maxKeep))
	} else {
		// The first bad entry and how many: one message per entry would let a
		// small request produce an error many times its size.
		bad, first := 0, -1
		for i, k := range a.Keep {
			if k == "" || len(k) > 512 || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				if bad++; first < 0 {
					first = i
				}
			}
		}
		if bad > 0 {
			errs = append(errs, fmt.Sprintf("keep[%d] %q (and %d more): each must be an image reference, ID or prefix ending in *, of at most 512 bytes without spaces", first, Clip(a.Keep[first]), bad-1))
		}
		if len(a.Keep) > 0 {
			p.Keep = a.Keep
			change += "/keep-" + Digest(strings.Join(a.Keep, "\n"))[:12]
		}
	}
	return Draft{Action: tendv1.ActionPruneImages, Target: t, Params: tendv1.Parameters{Prune: p}, Change: change}, errs
}

func (a *DrainNodeArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	if g := a.GracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		errs = append(errs, "gracePeriodSeconds: must be between 0 and 3600")
	}
	if s := a.TimeoutSeconds; s != nil && (*s < 1 || *s > 86400) {
		errs = append(errs, "timeoutSeconds: must be between 1 and 86400")
	}
	return Draft{Action: tendv1.ActionDrainNode, Target: t, Params: tendv1.Parameters{Drain: &tendv1.DrainParameters{GracePeriodSeconds: a.GracePeriodSeconds, TimeoutSeconds: a.TimeoutSeconds}}}, errs
}

func (a *RetryJobArgs) Draft() (Draft, []string) {
	errs := append(NameErrs("namespace", a.Namespace, true), NameErrs("name", a.Name, false)...)
	return Draft{Action: tendv1.ActionRetryJob, Target: tendv1.TargetRef{APIVersion: "batch/v1", Kind: "Job", Namespace: a.Namespace, Name: a.Name}}, errs
}

func (a *SetAutoscalerArgs) Draft() (Draft, []string) {
	errs := append(NameErrs("namespace", a.Namespace, true), NameErrs("name", a.Name, false)...)
	if a.MinReplicas == nil && a.MaxReplicas == nil && a.TargetCPUUtilization == nil && a.ScaleTargetName == "" {
		errs = append(errs, "give minReplicas, maxReplicas, targetCPUUtilization, scaleTargetName or several")
	}
	if a.ScaleTargetName != "" {
		errs = append(errs, NameErrs("scaleTargetName", a.ScaleTargetName, false)...)
	}
	if v := a.MinReplicas; v != nil && (*v < 1 || *v > 10000) {
		errs = append(errs, "minReplicas: must be between 1 and 10000")
	}
	if v := a.MaxReplicas; v != nil && (*v < 1 || *v > 10000) {
		errs = append(errs, "maxReplicas: must be between 1 and 10000")
	}
	if a.MinReplicas != nil && a.MaxReplicas != nil && *a.MinReplicas > *a.MaxReplicas {
		errs = append(errs, "minReplicas is above maxReplicas")
	}
	if v := a.TargetCPUUtilization; v != nil && (*v < 1 || *v > 100) {
		errs = append(errs, "targetCPUUtilization: must be between 1 and 100")
	}
	p := &tendv1.AutoscalerParameters{MinReplicas: a.MinReplicas, MaxReplicas: a.MaxReplicas, TargetCPUUtilization: a.TargetCPUUtilization, ScaleTargetName: a.ScaleTargetName}
	raw, _ := json.Marshal(p)
	return Draft{
		Action: tendv1.ActionSetAutoscaler,
		Target: tendv1.TargetRef{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Namespace: a.Namespace, Name: a.Name},
		Params: tendv1.Parameters{Autoscaler: p}, Change: string(raw),
	}, errs
}

func (a *RestartContainerArgs) Draft() (Draft, []string) {
	t, errs := a.target()
	errs = append(errs, NameErrs("container", a.Container, true)...)
	return Draft{Action: tendv1.ActionRestartContainer, Target: t, Params: tendv1.Parameters{Container: &tendv1.ContainerParameters{Container: a.Container}}, Change: a.Container}, errs
}

func (a *CollectDiagnosticsArgs) Draft() (Draft, []string) {
	d := Draft{Action: tendv1.ActionCollectDiagnostics}
	var errs []string
	switch {
	case a.Node != "" && (a.Pod != "" || a.Namespace != "" || a.Container != ""):
		errs = append(errs, "give either node, or namespace and pod (and optionally container), not both")
	case a.Node != "":
		d.Target, errs = (&NodeArgs{Node: a.Node}).target()
	default:
		d.Target, errs = (&PodArgs{Namespace: a.Namespace, Pod: a.Pod}).target()
		if a.Container != "" {
			errs = append(errs, NameErrs("container", a.Container, true)...)
		}
		d.Params.Container = &tendv1.ContainerParameters{Container: a.Container}
		d.Change = a.Container
	}
	return d, errs
}

// Validate checks a propose tool's arguments and returns its draft. The
// error names every problem, with untrusted text clipped.
func Validate(a ProposeArgs) (Draft, error) {
	d, errs := a.Draft()
	errs = append(errs, a.CommonArgs().validate()...)
	if len(errs) > 0 {
		return Draft{}, fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(errs, "; "))
	}
	return d, nil
}

// Digest is a short, stable digest of s: 40 hex digits of its SHA-256.
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:40]
}
