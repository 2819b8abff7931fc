package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

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
	Summary     string         `json:"summary" jsonschema:"what you observed, in one or two sentences (required)"`
	Rationale   string         `json:"rationale,omitempty" jsonschema:"why this change should fix it"`
	Risk        string         `json:"risk,omitempty" jsonschema:"your risk assessment: Low, Medium or High (default Medium)"`
	Telemetry   []TelemetryRef `json:"telemetry,omitempty" jsonschema:"telemetry messages that support the proposal (at most 32)"`
	Fingerprint string         `json:"fingerprint,omitempty" jsonschema:"identifies the same proposal across repeats; derived from the action, target and change when empty"`
	Agent       string         `json:"agent,omitempty" jsonschema:"name of the calling agent, for the record"`
}

// WorkloadArgs name a workload: a Deployment, StatefulSet or DaemonSet.
type WorkloadArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the workload"`
	Kind      string `json:"kind,omitempty" jsonschema:"Deployment (the default), StatefulSet or DaemonSet"`
	Name      string `json:"name" jsonschema:"name of the workload"`
}

// PodArgs name a pod.
type PodArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the pod"`
	Pod       string `json:"pod" jsonschema:"name of the pod"`
}

// NodeArgs name a node.
type NodeArgs struct {
	Node string `json:"node" jsonschema:"name of the node"`
}

// RestartWorkloadArgs are the arguments of propose_restart_workload.
type RestartWorkloadArgs struct {
	WorkloadArgs
	Common
}

// ScaleWorkloadArgs are the arguments of propose_scale_workload.
type ScaleWorkloadArgs struct {
	WorkloadArgs
	Replicas *int32 `json:"replicas" jsonschema:"the desired replica count (required)"`
	Common
}

// SetResourcesArgs are the arguments of propose_set_resources.
type SetResourcesArgs struct {
	WorkloadArgs
	Container string            `json:"container" jsonschema:"name of the container in the pod template"`
	Requests  map[string]string `json:"requests,omitempty" jsonschema:"new requests by resource, e.g. {\"cpu\": \"250m\", \"memory\": \"256Mi\"}"`
	Limits    map[string]string `json:"limits,omitempty" jsonschema:"new limits by resource, e.g. {\"memory\": \"512Mi\"}"`
	Common
}

// PatchOp is one RFC 6902 operation.
type PatchOp struct {
	Op    string          `json:"op" jsonschema:"add, remove, replace or test"`
	Path  string          `json:"path" jsonschema:"JSON pointer under /spec, e.g. /spec/template/spec/containers/0/env/-"`
	Value json.RawMessage `json:"value,omitempty" jsonschema:"the JSON value for add, replace and test"`
}

// PatchWorkloadArgs are the arguments of propose_patch_workload.
type PatchWorkloadArgs struct {
	WorkloadArgs
	Patch []PatchOp `json:"patch" jsonschema:"the JSON patch (at most 64 operations, paths under /spec only)"`
	Common
}

// EvictPodArgs are the arguments of propose_evict_pod.
type EvictPodArgs struct {
	PodArgs
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" jsonschema:"overrides the pod's termination grace period"`
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
	Common
}

// DrainNodeArgs are the arguments of propose_drain_node.
type DrainNodeArgs struct {
	NodeArgs
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty" jsonschema:"overrides each pod's termination grace period"`
	TimeoutSeconds     *int64 `json:"timeoutSeconds,omitempty" jsonschema:"bounds the whole drain"`
	Common
}

// RetryJobArgs are the arguments of propose_retry_job.
type RetryJobArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the Job"`
	Name      string `json:"name" jsonschema:"name of the failed Job"`
	Common
}

// SetAutoscalerArgs are the arguments of propose_set_autoscaler.
type SetAutoscalerArgs struct {
	Namespace            string `json:"namespace" jsonschema:"namespace of the HorizontalPodAutoscaler"`
	Name                 string `json:"name" jsonschema:"name of the HorizontalPodAutoscaler"`
	MinReplicas          *int32 `json:"minReplicas,omitempty" jsonschema:"new lower bound (at least 1)"`
	MaxReplicas          *int32 `json:"maxReplicas,omitempty" jsonschema:"new upper bound (at least 1, at least minReplicas)"`
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty" jsonschema:"new average CPU target in percent of requests (1-100)"`
	Common
}

// RestartContainerArgs are the arguments of propose_restart_container.
type RestartContainerArgs struct {
	PodArgs
	Container string `json:"container" jsonschema:"name of the container to restart on its node"`
	Common
}

// CollectDiagnosticsArgs are the arguments of propose_collect_diagnostics:
// either a pod (with an optional container) or a node.
type CollectDiagnosticsArgs struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace of the pod (with pod)"`
	Pod       string `json:"pod,omitempty" jsonschema:"name of the pod; or give node instead"`
	Container string `json:"container,omitempty" jsonschema:"one container of the pod; all when empty"`
	Node      string `json:"node,omitempty" jsonschema:"name of the node; or give namespace and pod instead"`
	Common
}

// draft is a proposal as a propose tool describes it, before the server
// adds the target's identity and the caller's.
type draft struct {
	action tendv1.Action
	target tendv1.TargetRef
	params tendv1.Parameters
	// change identifies the change within the target, for the default
	// fingerprint.
	change string
}

// proposeArgs is what every propose tool's arguments provide.
type proposeArgs interface {
	common() *Common
	// draft validates the action's own arguments and describes the proposal.
	draft() (draft, []string)
}

func (c *Common) common() *Common { return c }

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
		errs = append(errs, fmt.Sprintf("risk %q: must be Low, Medium or High", clip(c.Risk)))
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
	if len(c.Fingerprint) > 128 || len(c.Agent) > maxShort {
		errs = append(errs, "fingerprint is at most 128 bytes and agent at most 253")
	}
	return errs
}

// nameErrs checks a DNS label such as a namespace or container name (when
// label), or an object name.
func nameErrs(field, v string, label bool) []string {
	var msgs []string
	if label {
		msgs = validation.IsDNS1123Label(v)
	} else {
		msgs = validation.IsDNS1123Subdomain(v)
	}
	if len(msgs) > 0 {
		return []string{fmt.Sprintf("%s %q: %s", field, clip(v), strings.Join(msgs, "; "))}
	}
	return nil
}

var workloadKinds = []string{"Deployment", "StatefulSet", "DaemonSet"}

func (w *WorkloadArgs) target(allowed ...string) (tendv1.TargetRef, []string) {
	errs := append(nameErrs("namespace", w.Namespace, true), nameErrs("name", w.Name, false)...)
	kind := w.Kind
	if kind == "" {
		kind = "Deployment"
	}
	if !slices.Contains(allowed, kind) {
		errs = append(errs, fmt.Sprintf("kind %q: must be one of %s", clip(w.Kind), strings.Join(allowed, ", ")))
	}
	return tendv1.TargetRef{APIVersion: "apps/v1", Kind: kind, Namespace: w.Namespace, Name: w.Name}, errs
}

func (p *PodArgs) target() (tendv1.TargetRef, []string) {
	errs := append(nameErrs("namespace", p.Namespace, true), nameErrs("pod", p.Pod, false)...)
	return tendv1.TargetRef{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Pod}, errs
}

func (n *NodeArgs) target() (tendv1.TargetRef, []string) {
	return tendv1.TargetRef{APIVersion: "v1", Kind: "Node", Name: n.Node}, nameErrs("node", n.Node, false)
}

func (a *ProposeRollbackArgs) draft() (draft, []string) {
	errs := append(nameErrs("namespace", a.Namespace, true), nameErrs("name", a.Name, false)...)
	if a.ToRevision < 0 || a.FromRevision < 0 {
		errs = append(errs, "revisions must not be negative")
	}
	return draft{
		action: tendv1.ActionRollbackWorkload,
		target: tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: a.Namespace, Name: a.Name},
		params: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{ToRevision: a.ToRevision, FromRevision: a.FromRevision}},
		change: fmt.Sprintf("from-%d/to-%d", a.FromRevision, a.ToRevision),
	}, errs
}

func (a *RestartWorkloadArgs) draft() (draft, []string) {
	t, errs := a.target(workloadKinds...)
	return draft{action: tendv1.ActionRestartWorkload, target: t}, errs
}

func (a *ScaleWorkloadArgs) draft() (draft, []string) {
	t, errs := a.target("Deployment", "StatefulSet")
	d := draft{action: tendv1.ActionScaleWorkload, target: t}
	switch {
	case a.Replicas == nil:
		errs = append(errs, "replicas is required")
	case *a.Replicas < 0 || *a.Replicas > 10000:
		errs = append(errs, fmt.Sprintf("replicas %d: must be between 0 and 10000", *a.Replicas))
	default:
		d.params.Scale = &tendv1.ScaleParameters{Replicas: *a.Replicas}
		d.change = fmt.Sprintf("replicas-%d", *a.Replicas)
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
			errs = append(errs, fmt.Sprintf("%s: resource %q: must be cpu, memory or ephemeral-storage", field, clip(k)))
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, fmt.Sprintf("%s.%s %q: must be a positive quantity such as 250m or 256Mi", field, k, clip(v)))
			continue
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, errs
}

func (a *SetResourcesArgs) draft() (draft, []string) {
	t, errs := a.target(workloadKinds...)
	errs = append(errs, nameErrs("container", a.Container, true)...)
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
	return draft{
		action: tendv1.ActionSetResources, target: t,
		params: tendv1.Parameters{Resources: &tendv1.ResourcesParameters{Container: a.Container, Requests: req, Limits: lim}},
		change: a.Container + "/" + quantities(req) + "/" + quantities(lim),
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

func (a *PatchWorkloadArgs) draft() (draft, []string) {
	t, errs := a.target(workloadKinds...)
	switch {
	case len(a.Patch) == 0:
		errs = append(errs, "patch needs at least one operation")
	case len(a.Patch) > maxPatchOps:
		errs = append(errs, fmt.Sprintf("patch has %d operations; at most %d", len(a.Patch), maxPatchOps))
		return draft{}, errs
	}
	ops := make([]tendv1.JSONPatchOperation, 0, len(a.Patch))
	for i, op := range a.Patch {
		switch op.Op {
		case "add", "replace", "test":
			if len(op.Value) == 0 {
				errs = append(errs, fmt.Sprintf("patch[%d]: %s needs a value", i, op.Op))
			}
		case "remove":
		default:
			errs = append(errs, fmt.Sprintf("patch[%d]: op %q: must be add, remove, replace or test", i, clip(op.Op)))
		}
		if !strings.HasPrefix(op.Path, "/spec/") || len(op.Path) > 512 || strings.ContainsAny(op.Path, "\x00\n") {
			errs = append(errs, fmt.Sprintf("patch[%d]: path %q: must be a JSON pointer under /spec/ of at most 512 bytes", i, clip(op.Path)))
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
	return draft{action: tendv1.ActionPatchWorkload, target: t, params: tendv1.Parameters{Patch: ops}, change: fingerprintLabel(string(raw))}, errs
}

func (a *EvictPodArgs) draft() (draft, []string) {
	t, errs := a.target()
	if g := a.GracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		errs = append(errs, "gracePeriodSeconds: must be between 0 and 3600")
	}
	return draft{action: tendv1.ActionEvictPod, target: t, params: tendv1.Parameters{Eviction: &tendv1.EvictionParameters{GracePeriodSeconds: a.GracePeriodSeconds}}}, errs
}

func (a *ForceDeletePodArgs) draft() (draft, []string) {
	t, errs := a.target()
	return draft{action: tendv1.ActionForceDeletePod, target: t}, errs
}

func (a *CordonNodeArgs) draft() (draft, []string) {
	t, errs := a.target()
	return draft{action: tendv1.ActionCordonNode, target: t}, errs
}

func (a *UncordonNodeArgs) draft() (draft, []string) {
	t, errs := a.target()
	return draft{action: tendv1.ActionUncordonNode, target: t}, errs
}

func (a *PruneImagesArgs) draft() (draft, []string) {
	t, errs := a.target()
	return draft{action: tendv1.ActionPruneImages, target: t}, errs
}

func (a *DrainNodeArgs) draft() (draft, []string) {
	t, errs := a.target()
	if g := a.GracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		errs = append(errs, "gracePeriodSeconds: must be between 0 and 3600")
	}
	if s := a.TimeoutSeconds; s != nil && (*s < 1 || *s > 86400) {
		errs = append(errs, "timeoutSeconds: must be between 1 and 86400")
	}
	return draft{action: tendv1.ActionDrainNode, target: t, params: tendv1.Parameters{Drain: &tendv1.DrainParameters{GracePeriodSeconds: a.GracePeriodSeconds, TimeoutSeconds: a.TimeoutSeconds}}}, errs
}

func (a *RetryJobArgs) draft() (draft, []string) {
	errs := append(nameErrs("namespace", a.Namespace, true), nameErrs("name", a.Name, false)...)
	return draft{action: tendv1.ActionRetryJob, target: tendv1.TargetRef{APIVersion: "batch/v1", Kind: "Job", Namespace: a.Namespace, Name: a.Name}}, errs
}

func (a *SetAutoscalerArgs) draft() (draft, []string) {
	errs := append(nameErrs("namespace", a.Namespace, true), nameErrs("name", a.Name, false)...)
	if a.MinReplicas == nil && a.MaxReplicas == nil && a.TargetCPUUtilization == nil {
		errs = append(errs, "give minReplicas, maxReplicas, targetCPUUtilization or several")
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
	p := &tendv1.AutoscalerParameters{MinReplicas: a.MinReplicas, MaxReplicas: a.MaxReplicas, TargetCPUUtilization: a.TargetCPUUtilization}
	raw, _ := json.Marshal(p)
	return draft{
		action: tendv1.ActionSetAutoscaler,
		target: tendv1.TargetRef{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Namespace: a.Namespace, Name: a.Name},
		params: tendv1.Parameters{Autoscaler: p}, change: string(raw),
	}, errs
}

func (a *RestartContainerArgs) draft() (draft, []string) {
	t, errs := a.target()
	errs = append(errs, nameErrs("container", a.Container, true)...)
	return draft{action: tendv1.ActionRestartContainer, target: t, params: tendv1.Parameters{Container: &tendv1.ContainerParameters{Container: a.Container}}, change: a.Container}, errs
}

func (a *CollectDiagnosticsArgs) draft() (draft, []string) {
	d := draft{action: tendv1.ActionCollectDiagnostics}
	var errs []string
	switch {
	case a.Node != "" && (a.Pod != "" || a.Namespace != "" || a.Container != ""):
		errs = append(errs, "give either node, or namespace and pod (and optionally container), not both")
	case a.Node != "":
		d.target, errs = (&NodeArgs{Node: a.Node}).target()
	default:
		d.target, errs = (&PodArgs{Namespace: a.Namespace, Pod: a.Pod}).target()
		if a.Container != "" {
			errs = append(errs, nameErrs("container", a.Container, true)...)
		}
		d.params.Container = &tendv1.ContainerParameters{Container: a.Container}
		d.change = a.Container
	}
	return d, errs
}

// tool is one tool with its handler.
type tool struct {
	tool    mcpgo.Tool
	handler mcpserver.ToolHandlerFunc
}

// newPropose builds a propose tool whose arguments are A.
func newPropose[A any, PA interface {
	*A
	proposeArgs
}](s *Server, name, desc string, destructive bool) tool {
	t := mcpgo.NewTool(name,
		mcpgo.WithDescription(desc+" Creates a Proposal and returns the gate's decision (auto-approved, awaiting approval, or denied with reasons you can act on); it changes nothing by itself."),
		mcpgo.WithInputSchema[A](),
		mcpgo.WithOutputSchema[ProposeResult](),
		mcpgo.WithReadOnlyHintAnnotation(false),
		mcpgo.WithDestructiveHintAnnotation(destructive),
		mcpgo.WithIdempotentHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(false),
	)
	h := mcpgo.NewStructuredToolHandler(func(ctx context.Context, _ mcpgo.CallToolRequest, args A) (ProposeResult, error) {
		return s.propose(ctx, PA(&args))
	})
	return tool{tool: t, handler: h}
}

// proposeTools is the catalogue as tools.
func (s *Server) proposeTools() []tool {
	return []tool{
		newPropose[ProposeRollbackArgs](s, ToolProposeRollback,
			"Propose rolling a Deployment back to an earlier revision (RollbackWorkload).", false),
		newPropose[RestartWorkloadArgs](s, ToolProposeRestartWorkload,
			"Propose a rolling restart of a Deployment, StatefulSet or DaemonSet (RestartWorkload).", false),
		newPropose[ScaleWorkloadArgs](s, ToolProposeScaleWorkload,
			"Propose a new replica count for a Deployment or StatefulSet (ScaleWorkload).", true),
		newPropose[SetResourcesArgs](s, ToolProposeSetResources,
			"Propose new requests and limits for one container of a workload's pod template (SetResources).", false),
		newPropose[PatchWorkloadArgs](s, ToolProposePatchWorkload,
			"Propose a JSON patch of a workload's spec (PatchWorkload). Only allowed paths can be approved automatically; securityContext, RBAC, owner references and finalizers never are.", true),
		newPropose[EvictPodArgs](s, ToolProposeEvictPod,
			"Propose evicting a pod through the Eviction API, which honours PodDisruptionBudgets (EvictPod).", true),
		newPropose[ForceDeletePodArgs](s, ToolProposeForceDeletePod,
			"Propose force-deleting a pod stuck terminating on an unreachable node (ForceDeletePod).", true),
		newPropose[CordonNodeArgs](s, ToolProposeCordonNode,
			"Propose cordoning a node so no new pods are scheduled on it (CordonNode).", false),
		newPropose[UncordonNodeArgs](s, ToolProposeUncordonNode,
			"Propose uncordoning a node (UncordonNode).", false),
		newPropose[DrainNodeArgs](s, ToolProposeDrainNode,
			"Propose draining a node: cordon it and evict its pods (DrainNode).", true),
		newPropose[RetryJobArgs](s, ToolProposeRetryJob,
			"Propose running a failed Job again (RetryJob).", false),
		newPropose[SetAutoscalerArgs](s, ToolProposeSetAutoscaler,
			"Propose new bounds or a new CPU target for a HorizontalPodAutoscaler (SetAutoscaler).", false),
		newPropose[RestartContainerArgs](s, ToolProposeRestartContainer,
			"Propose restarting one container in place, on its node through tend's runtime shim (RestartContainer).", true),
		newPropose[PruneImagesArgs](s, ToolProposePruneImages,
			"Propose pruning unused images on a node to free disk space (PruneImages).", false),
		newPropose[CollectDiagnosticsArgs](s, ToolProposeCollectDiagnostics,
			"Propose collecting diagnostics (container state, recent logs, node state) from a pod or a node (CollectDiagnostics).", false),
	}
}

// propose checks the arguments and the caller, pins the target and creates
// the proposal, unless an open one with the same fingerprint exists.
func (s *Server) propose(ctx context.Context, a proposeArgs) (ProposeResult, error) {
	c := a.common()
	d, err := validateArgs(a)
	if err != nil {
		return ProposeResult{}, err
	}
	ns := d.target.Namespace
	if ns == "" {
		// Proposals are namespaced; those for cluster-scoped targets live
		// in tend's own namespace.
		ns = s.opts.ClusterProposalNamespace
	}
	id, err := s.caller(ctx, authzv1.ResourceAttributes{
		Namespace: ns, Verb: "create", Group: tendv1.GroupVersion.Group, Resource: "proposals",
	})
	if err != nil {
		return ProposeResult{}, err
	}
	if err := s.pin(ctx, &d.target); err != nil {
		return ProposeResult{}, err
	}
	fp := c.Fingerprint
	if fp == "" {
		fp = fmt.Sprintf("%s/%s/%s/%s", d.action, d.target.Kind, d.target.Namespace, d.target.Name)
		if d.change != "" {
			fp += "/" + d.change
		}
		if len(fp) > 128 {
			fp = fp[:87] + "/" + fingerprintLabel(fp)
		}
	}
	risk := tendv1.Risk(c.Risk)
	if risk == "" {
		risk = tendv1.RiskMedium
	}
	refs := make([]tendv1.TelemetryRef, 0, len(c.Telemetry))
	for _, t := range c.Telemetry {
		refs = append(refs, tendv1.TelemetryRef{Subject: t.Subject, Sequence: t.Sequence, ID: t.ID})
	}
	expires := metav1.NewTime(time.Now().Add(s.opts.Expiry))
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    ns,
			GenerateName: generateName(d.action, d.target.Name),
			Labels:       map[string]string{LabelFingerprint: fingerprintLabel(fp)},
		},
		Spec: tendv1.ProposalSpec{
			Action:     d.action,
			Target:     d.target,
			Parameters: d.params,
			Evidence:   tendv1.Evidence{Summary: c.Summary, Telemetry: refs},
			Rationale:  c.Rationale,
			Risk:       risk,
			// The proposer is the authenticated caller, never an argument.
			Proposer:    tendv1.Proposer{Username: id.Username, Groups: id.Groups, Agent: c.Agent},
			Fingerprint: fp,
			ExpiresAt:   &expires,
		},
	}
	return s.create(ctx, p)
}

// validateArgs checks a propose tool's arguments and returns its draft. The
// error names every problem, with untrusted text clipped.
func validateArgs(a proposeArgs) (draft, error) {
	d, errs := a.draft()
	errs = append(errs, a.common().validate()...)
	if len(errs) > 0 {
		return draft{}, fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(errs, "; "))
	}
	return d, nil
}

// pin records the target's UID, resourceVersion and generation as the
// server reads them now. A missing target is proposed anyway: the controller
// denies it with TargetNotFound, so the record shows what was asked.
func (s *Server) pin(ctx context.Context, t *tendv1.TargetRef) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.FromAPIVersionAndKind(t.APIVersion, t.Kind))
	switch err := s.opts.Client.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Name}, u); {
	case err == nil:
		t.UID, t.ResourceVersion, t.Generation = u.GetUID(), u.GetResourceVersion(), u.GetGeneration()
		return nil
	case apierrors.IsNotFound(err):
		return nil
	default:
		return fmt.Errorf("failed to read the target: %w", err)
	}
}

// generateName is a proposal's name prefix: the action's verb and the target.
func generateName(a tendv1.Action, target string) string {
	verb := strings.ToLower(string(a))
	for _, suffix := range []string{"workload", "pod", "node", "job", "container"} {
		if v, ok := strings.CutSuffix(verb, suffix); ok && v != "" {
			verb = v
			break
		}
	}
	return verb + "-" + shorten(target, 40) + "-"
}
