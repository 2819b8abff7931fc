package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/google/jsonschema-go/jsonschema"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/mcp/wire"
)

// tool is one tool with its handler.
type tool struct {
	tool    mcpgo.Tool
	handler mcpserver.ToolHandlerFunc
	// action is a propose tool's action; empty for a read tool.
	action tendv1.Action
}

// newPropose builds the propose tool of action, whose arguments are A. Its
// description ends with what the action table says: the kinds it acts on,
// whether a failed verification is undone, and whether it takes pods down.
// Its schema lists, as an enum, the kinds the action acts on where the
// arguments name a kind.
func newPropose[A any, PA interface {
	*A
	wire.ProposeArgs
}](s *Server, action tendv1.Action, name, title, desc string, destructive bool) tool {
	info, _ := tendv1.LookupAction(action)
	t := mcpgo.NewTool(name,
		mcpgo.WithToolTitle(title),
		mcpgo.WithTitleAnnotation(title),
		mcpgo.WithDescription(desc+" "+actionNotes(action)+" Creates a Proposal and returns the gate's decision (auto-approved, awaiting approval, or denied with reasons you can act on); it changes nothing by itself."),
		mcpgo.WithReadOnlyHintAnnotation(false),
		mcpgo.WithDestructiveHintAnnotation(destructive),
		mcpgo.WithIdempotentHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(false),
	)
	t.InputSchema.Type = ""
	t.RawInputSchema = inputSchema[A](func(sc *jsonschema.Schema) {
		if k := sc.Properties["kind"]; k != nil {
			k.Enum = nil
			for _, kind := range info.Kinds() {
				k.Enum = append(k.Enum, kind)
			}
		}
	})
	t.RawOutputSchema = outputSchema[wire.ProposeResult]()
	h := typed(func(ctx context.Context, args A) (wire.ProposeResult, error) {
		return s.propose(ctx, PA(&args))
	})
	return tool{tool: t, handler: h, action: action}
}

// typed is a tool handler over typed arguments and results. The arguments
// are decoded strictly (wire.Decode): an argument the tool does not take is
// an error that names it, never silently dropped.
func typed[A, R any](h func(context.Context, A) (R, error)) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		raw := req.Params.RawArguments
		if len(raw) == 0 && req.Params.Arguments != nil {
			b, err := json.Marshal(req.Params.Arguments)
			if err != nil {
				return mcpgo.NewToolResultError("invalid arguments: they do not encode as JSON"), nil
			}
			raw = b
		}
		var args A
		if err := wire.Decode(raw, &args); err != nil {
			return mcpgo.NewToolResultError(err.Error()), nil
		}
		res, err := h(ctx, args)
		if err != nil {
			return mcpgo.NewToolResultError(err.Error()), nil
		}
		// Encoded once: the structured result, and the same JSON as text
		// for clients that read only text.
		b, err := json.Marshal(res)
		if err != nil {
			return mcpgo.NewToolResultError("failed to encode the result: " + err.Error()), nil
		}
		return &mcpgo.CallToolResult{
			Content:           []mcpgo.Content{mcpgo.TextContent{Type: "text", Text: string(b)}},
			StructuredContent: json.RawMessage(b),
		}, nil
	}
}

// actionNotes describes an action from the catalogue's table, for a tool's
// description and a propose result.
func actionNotes(a tendv1.Action) string {
	info, ok := tendv1.LookupAction(a)
	if !ok {
		return ""
	}
	return "Acts on " + strings.Join(info.Kinds(), ", ") + ". " + undoNote(info) + " " + disruptionNote(info)
}

func undoNote(info tendv1.ActionInfo) string {
	if info.Undoable {
		return "Undo: if its verification fails, the controller undoes it and the proposal ends RolledBack."
	}
	return "Undo: none; if its verification fails, the proposal ends Failed and a human repairs."
}

func disruptionNote(info tendv1.ActionInfo) string {
	switch {
	case info.NodeWide && info.Disrupts:
		return "Disruption: takes a node out of service and moves its pods."
	case info.NodeWide:
		return "Disruption: no pod is moved; the node takes no new pods."
	case info.Disrupts:
		return "Disruption: replaces or stops pods; the gate sees how many ready pods go down at once."
	}
	return "Disruption: none by itself."
}

// proposeTools is the catalogue as tools.
func (s *Server) proposeTools() []tool {
	return []tool{
		newPropose[wire.ProposeRollbackArgs](s, tendv1.ActionRollbackWorkload, wire.ToolProposeRollback, "Propose a rollback",
			"Propose rolling a Deployment, StatefulSet or DaemonSet back to the pod template of an earlier revision (RollbackWorkload).", false),
		newPropose[wire.RestartWorkloadArgs](s, tendv1.ActionRestartWorkload, wire.ToolProposeRestartWorkload, "Propose a rolling restart",
			"Propose a rolling restart of a Deployment, StatefulSet or DaemonSet (RestartWorkload).", false),
		newPropose[wire.ScaleWorkloadArgs](s, tendv1.ActionScaleWorkload, wire.ToolProposeScaleWorkload, "Propose scaling a workload",
			"Propose a new replica count for a Deployment or StatefulSet (ScaleWorkload).", true),
		newPropose[wire.SetResourcesArgs](s, tendv1.ActionSetResources, wire.ToolProposeSetResources, "Propose container resources",
			"Propose new requests and limits for one container of a workload's pod template (SetResources).", false),
		newPropose[wire.PatchWorkloadArgs](s, tendv1.ActionPatchWorkload, wire.ToolProposePatchWorkload, "Propose a workload patch",
			"Propose a JSON patch of a workload's pod template or a Service (PatchWorkload). Only the catalogue's paths may be patched: containers' image, command, args, env, envFrom, ports and probes, nodeSelector, affinity and tolerations (of a CronJob, under its job template); a Service's selector and ports. Anything else is denied.", true),
		newPropose[wire.EvictPodArgs](s, tendv1.ActionEvictPod, wire.ToolProposeEvictPod, "Propose evicting a pod",
			"Propose evicting a pod through the Eviction API, which honours PodDisruptionBudgets (EvictPod).", true),
		newPropose[wire.ForceDeletePodArgs](s, tendv1.ActionForceDeletePod, wire.ToolProposeForceDeletePod, "Propose force-deleting a pod",
			"Propose force-deleting a pod stuck terminating on an unreachable node (ForceDeletePod).", true),
		newPropose[wire.CordonNodeArgs](s, tendv1.ActionCordonNode, wire.ToolProposeCordonNode, "Propose cordoning a node",
			"Propose cordoning a node so no new pods are scheduled on it (CordonNode).", false),
		newPropose[wire.UncordonNodeArgs](s, tendv1.ActionUncordonNode, wire.ToolProposeUncordonNode, "Propose uncordoning a node",
			"Propose uncordoning a node (UncordonNode).", false),
		newPropose[wire.DrainNodeArgs](s, tendv1.ActionDrainNode, wire.ToolProposeDrainNode, "Propose draining a node",
			"Propose draining a node: cordon it and evict its pods (DrainNode).", true),
		newPropose[wire.RetryJobArgs](s, tendv1.ActionRetryJob, wire.ToolProposeRetryJob, "Propose retrying a Job",
			"Propose running a failed Job again (RetryJob).", false),
		newPropose[wire.SetAutoscalerArgs](s, tendv1.ActionSetAutoscaler, wire.ToolProposeSetAutoscaler, "Propose autoscaler settings",
			"Propose new bounds or a new CPU target for a HorizontalPodAutoscaler (SetAutoscaler).", false),
		newPropose[wire.RestartContainerArgs](s, tendv1.ActionRestartContainer, wire.ToolProposeRestartContainer, "Propose restarting a container",
			"Propose restarting one container in place, on its node through tend's runtime shim (RestartContainer).", true),
		newPropose[wire.PruneImagesArgs](s, tendv1.ActionPruneImages, wire.ToolProposePruneImages, "Propose pruning images",
			"Propose pruning unused images on a node to free disk space (PruneImages).", false),
		newPropose[wire.CollectDiagnosticsArgs](s, tendv1.ActionCollectDiagnostics, wire.ToolProposeCollectDiagnostics, "Propose collecting diagnostics",
			"Propose collecting diagnostics (container state, recent logs, node state) from a pod or a node (CollectDiagnostics).", false),
	}
}

// propose checks the arguments and the caller, pins the target and creates
// the proposal, unless an open one with the same fingerprint exists.
func (s *Server) propose(ctx context.Context, a wire.ProposeArgs) (wire.ProposeResult, error) {
	c := a.CommonArgs()
	d, err := wire.Validate(a)
	if err != nil {
		return wire.ProposeResult{}, err
	}
	ns := d.Target.Namespace
	if ns == "" {
		// Proposals are namespaced; those for cluster-scoped targets live
		// in tend's own namespace.
		ns = s.opts.ClusterProposalNamespace
	}
	// A relayed proposal needs the caller's right to propose; one the
	// caller creates itself (stdio), the right to create. A proposal for a
	// cluster-scoped target needs that right on proposals/cluster,
	// cluster-wide, as the API server's admission policy checks too.
	attrs := authzv1.ResourceAttributes{Namespace: d.Target.Namespace, Verb: "create", Group: tendv1.GroupVersion.Group, Resource: "proposals"}
	if d.Target.Namespace == "" {
		attrs.Subresource = tendv1.ClusterScopedSubresource
	}
	if s.opts.Relay != "" {
		attrs.Verb = "propose"
	}
	// The action is the name checked: a Role that lists resourceNames
	// narrows the actions its subjects may propose.
	attrs.Name = string(d.Action)
	id, err := s.caller(ctx, attrs)
	if err != nil {
		return wire.ProposeResult{}, err
	}
	if err := s.pin(ctx, &d.Target); err != nil {
		return wire.ProposeResult{}, err
	}
	fp := c.Fingerprint
	if fp == "" {
		fp = fmt.Sprintf("%s/%s/%s/%s", d.Action, d.Target.Kind, d.Target.Namespace, d.Target.Name)
		if d.Change != "" {
			fp += "/" + d.Change
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
	life := s.opts.Expiry
	if in := time.Duration(c.ExpiresInSeconds) * time.Second; in > 0 && in < life {
		life = in
	}
	expires := metav1.NewTime(time.Now().Add(life))
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    ns,
			GenerateName: generateName(d.Action, d.Target.Name),
			// The label finds open repeats of the caller's own proposals.
			Labels: map[string]string{LabelFingerprint: fingerprintLabel(id.Username + "\n" + fp)},
		},
		Spec: tendv1.ProposalSpec{
			Action:     d.Action,
			Target:     d.Target,
			Parameters: d.Params,
			Evidence:   tendv1.Evidence{Summary: c.Summary, Telemetry: refs},
			Rationale:  c.Rationale,
			Risk:       risk,
			// The proposer is the authenticated caller, never an argument;
			// the API server checks that only a relay names another.
			Proposer:    tendv1.Proposer{Username: id.Username, Groups: id.Groups, Agent: c.Agent, Via: s.opts.Relay},
			Fingerprint: fp,
			ExpiresAt:   &expires,
		},
	}
	return s.create(ctx, p)
}

// pin records the target's UID, resourceVersion and generation as the
// server reads them now: a proposal names one existing object, so that it
// goes stale, rather than acting on a namesake, if the object is replaced.
func (s *Server) pin(ctx context.Context, t *tendv1.TargetRef) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.FromAPIVersionAndKind(t.APIVersion, t.Kind))
	switch err := s.opts.Client.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Name}, u); {
	case err == nil:
		t.UID, t.ResourceVersion, t.Generation = u.GetUID(), u.GetResourceVersion(), u.GetGeneration()
		return nil
	case apierrors.IsNotFound(err):
		where := ""
		if t.Namespace != "" {
			where = " in namespace " + t.Namespace
		}
		return fmt.Errorf("%w: %s %s does not exist%s; propose a change to an object that exists", wire.ErrInvalidArgument, t.Kind, t.Name, where)
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
