package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// +kubebuilder:rbac:groups="",resources=pods;nodes,verbs=get;list;watch

// collectDiagnostics has the runtime shim of a pod's node (or of a node)
// collect diagnostics: for a pod, its containers' inspect output, stats
// and log tails; for a node, every container's state and usage and the
// images. The shim stores them as one document in the diagnostics object
// store, and the proposal's apply record links it. Verified when the
// stored document reads back with the digest the shim reported. It only
// reads, so there is nothing to undo.
type collectDiagnostics struct{ base }

var _ Action = (*collectDiagnostics)(nil)

func (a *collectDiagnostics) Info() tendv1.ActionInfo { return info(tendv1.ActionCollectDiagnostics) }

func (a *collectDiagnostics) Validate(p *tendv1.Proposal) error {
	if err := a.shimRequired(); err != nil {
		return err
	}
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	c := params.Container
	params.Container = nil
	if !paramsEmpty(params) {
		return fmt.Errorf("%w: CollectDiagnostics takes at most a container", ErrInvalidParameters)
	}
	if p.Spec.Target.Kind == "Node" && c != nil && c.Container != "" {
		return fmt.Errorf("%w: a node's diagnostics take no container; propose the pod's", ErrInvalidParameters)
	}
	return shimParams(&bus.ShimRequest{Verb: bus.VerbCollectDiagnostics, CollectDiagnostics: a.params(p, "")})
}

// params are the shim's parameters for the proposal's target, a pod of
// podUID or a node.
func (a *collectDiagnostics) params(p *tendv1.Proposal, podUID string) *bus.CollectDiagnosticsParams {
	t := p.Spec.Target
	if t.Kind == "Node" {
		return &bus.CollectDiagnosticsParams{}
	}
	out := &bus.CollectDiagnosticsParams{Namespace: t.Namespace, Pod: t.Name, PodUID: podUID}
	if c := p.Spec.Parameters.Container; c != nil {
		out.Container = c.Container
	}
	return out
}

// Facts are the node's state, or that the pod exists: diagnostics take
// nothing down. A node no shim serves is refused.
func (a *collectDiagnostics) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	switch t := target.(type) {
	case *corev1.Node:
		if err := a.shimServes(ctx, t.Name); err != nil {
			return tendv1.Facts{}, 0, err
		}
		f, _, err := nodeFacts(ctx, a.opts.Client, t)
		return f, 0, err
	case *corev1.Pod:
		if c := p.Spec.Parameters.Container; c != nil && c.Container != "" {
			if err := checkContainer(t, c.Container); err != nil {
				return tendv1.Facts{}, 0, err
			}
		}
		if t.Spec.NodeName == "" {
			return tendv1.Facts{}, 0, refuse(ReasonPodNotScheduled, "pod %s/%s runs on no node yet", t.Namespace, t.Name)
		}
		if err := a.shimServes(ctx, t.Spec.NodeName); err != nil {
			return tendv1.Facts{}, 0, err
		}
		return tendv1.Facts{TargetExists: true, TargetGeneration: t.Generation}, 0, nil
	}
	return tendv1.Facts{}, 0, fmt.Errorf("%w: CollectDiagnostics of a %T", ErrInvalidParameters, target)
}

// Digest: diagnostics write nothing to the target.
func (a *collectDiagnostics) Digest(client.Object) (string, error) { return "", nil }

// node reads the live target and returns the node the diagnostics come
// from, with the shim's parameters.
func (a *collectDiagnostics) node(ctx context.Context, p *tendv1.Proposal) (string, *bus.CollectDiagnosticsParams, error) {
	if p.Spec.Target.Kind == "Node" {
		obj, err := a.get(ctx, p, true)
		if err != nil {
			return "", nil, err
		}
		if err := pinned(obj, p); err != nil {
			return "", nil, err
		}
		return obj.GetName(), a.params(p, ""), nil
	}
	pod, err := a.livePod(ctx, p)
	if err != nil {
		return "", nil, err
	}
	return pod.Spec.NodeName, a.params(p, string(pod.UID)), nil
}

// Apply asks the shim to collect and store the diagnostics. A dry run
// checks that the node's shim answers.
func (a *collectDiagnostics) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	node, params, err := a.node(ctx, p)
	if err != nil {
		return Result{}, err
	}
	what := "node " + node
	if params.Pod != "" {
		what = fmt.Sprintf("pod %s on %s", params.Pod, node)
	}
	if dryRun {
		if _, err := a.status(ctx, node, bus.StatusParams{}); err != nil {
			return Result{}, err
		}
		return Result{Before: "no diagnostics of " + what, After: "diagnostics of " + what + " stored"}, nil
	}
	res, err := a.opts.Shim.CollectDiagnostics(ctx, node, shimAttempt(p, attempt), *params)
	if err != nil {
		return Result{}, shimFailed(node, bus.VerbCollectDiagnostics, err)
	}
	return Result{
		Before: "no diagnostics of " + what,
		After:  fmt.Sprintf("diagnostics of %s (%d containers, %d bytes) stored in %s/%s", what, res.Containers, res.Size, res.Bucket, res.Object),
		Shim: &tendv1.ShimRecord{Node: node, AttemptID: shimAttempt(p, attempt).ID, Diagnostics: &tendv1.DiagnosticsRef{
			Bucket: res.Bucket, Object: res.Object, Size: res.Size, Digest: res.Digest, Containers: int32(res.Containers),
		}},
	}, nil
}

// Verify reads the stored document back, checking it is the one the shim
// reported (its digest) and that it is this attempt's.
func (a *collectDiagnostics) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	rec, err := shimRecord(p)
	if err != nil || rec.Diagnostics == nil {
		return Verification{}, fmt.Errorf("%w: the apply recorded no diagnostics", ErrInvalidParameters)
	}
	d := rec.Diagnostics
	check := tendv1.Check{Name: "DiagnosticsStored"}
	ctx, cancel := context.WithTimeout(ctx, shimStatusTimeout)
	defer cancel()
	doc, err := a.opts.Shim.FetchDiagnostics(ctx, &bus.CollectDiagnosticsResult{Bucket: d.Bucket, Object: d.Object, Size: d.Size, Digest: d.Digest, Containers: int(d.Containers)})
	switch {
	case errors.Is(err, shimclient.ErrDigestMismatch), errors.Is(err, shimclient.ErrBadReply):
		check.Message = err.Error()
		return Verification{Checks: []tendv1.Check{check}, Hopeless: "the stored diagnostics are not the ones the shim reported: " + err.Error()}, nil
	case err != nil:
		check.Message = err.Error()
	case doc.AttemptID != rec.AttemptID || doc.Node != rec.Node:
		check.Message = fmt.Sprintf("the stored document is of attempt %q on %s, not this one", doc.AttemptID, doc.Node)
		return Verification{Checks: []tendv1.Check{check}, Hopeless: check.Message}, nil
	default:
		check.Passed = true
		check.Message = fmt.Sprintf("%s/%s: %d containers, %d bytes, digest checked", d.Bucket, d.Object, len(doc.Containers), d.Size)
	}
	return Verification{Checks: []tendv1.Check{check}}, nil
}

func (a *collectDiagnostics) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *collectDiagnostics) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}
