package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;update;patch

// cordonNode marks a node unschedulable; its pods keep running. Verified
// when the node is unschedulable and no pod that may run only on it (by its
// hostname label) waits unschedulable; undone by marking it schedulable
// again.
type cordonNode struct{ base }

var _ Action = (*cordonNode)(nil)

func (a *cordonNode) Info() tendv1.ActionInfo { return info(tendv1.ActionCordonNode) }

func (a *cordonNode) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	if !paramsEmpty(p.Spec.Parameters) {
		return fmt.Errorf("%w: CordonNode takes no parameters", ErrInvalidParameters)
	}
	return nil
}

func (a *cordonNode) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f, _, err := nodeFacts(ctx, a.opts.Client, target.(*corev1.Node))
	return f, 0, err
}

func (a *cordonNode) Digest(target client.Object) (string, error) { return unschedulableDigest(target) }

func (a *cordonNode) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	return a.applyEdit(ctx, p, attempt, dryRun, setSchedulable(true), unschedulableDigest)
}

func (a *cordonNode) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	node := obj.(*corev1.Node)
	stranded, err := strandedPods(ctx, a.opts.Client, node)
	if err != nil {
		return Verification{}, err
	}
	placed := tendv1.Check{Name: "NoPodStranded", Passed: len(stranded) == 0,
		Message: "no pod that can run only on this node is waiting to be scheduled"}
	if len(stranded) > 0 {
		placed.Message = fmt.Sprintf("%d pods that can run only on node %s wait unschedulable while it is cordoned (%s)", len(stranded), node.Name, strings.Join(stranded, ", "))
	}
	return Verification{Checks: []tendv1.Check{schedulabilityCheck(node, true), placed}}, nil
}

// strandedPods are the pods a cordon of node strands: pending, marked
// Unschedulable by the scheduler, and selecting this node by its hostname
// label (the only node they may run on). Whatever else keeps them waiting,
// a cordoned node can only keep them waiting longer.
func strandedPods(ctx context.Context, c client.Reader, node *corev1.Node) ([]string, error) {
	host := node.Labels[corev1.LabelHostname]
	if host == "" {
		return nil, nil
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	var out []string
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName != "" || pod.Status.Phase != corev1.PodPending || pod.Spec.NodeSelector[corev1.LabelHostname] != host {
			continue
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				out = append(out, pod.Namespace+"/"+pod.Name)
			}
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = append(out[:5], "...")
	}
	return out, nil
}

func (a *cordonNode) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, restoreSchedulable, unschedulableDigest)
}

func (a *cordonNode) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
