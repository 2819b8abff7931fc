package actions

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;update;patch

// uncordonNode marks a node schedulable again. Verified when the node is
// schedulable and ready, so that the pods it takes can run; undone by
// cordoning it again.
type uncordonNode struct{ base }

var _ Action = (*uncordonNode)(nil)

func (a *uncordonNode) Info() tendv1.ActionInfo { return info(tendv1.ActionUncordonNode) }

func (a *uncordonNode) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	if !paramsEmpty(p.Spec.Parameters) {
		return fmt.Errorf("%w: UncordonNode takes no parameters", ErrInvalidParameters)
	}
	return nil
}

func (a *uncordonNode) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f, _, err := nodeFacts(ctx, a.opts.Client, target.(*corev1.Node))
	return f, 0, err
}

func (a *uncordonNode) Digest(target client.Object) (string, error) {
	return unschedulableDigest(target)
}

func (a *uncordonNode) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	return a.applyEdit(ctx, p, attempt, dryRun, setSchedulable(false), unschedulableDigest)
}

func (a *uncordonNode) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	node := obj.(*corev1.Node)
	ready := tendv1.Check{Name: "NodeReady", Passed: nodeReady(node), Message: fmt.Sprintf("node %s is not ready: it cannot run the pods it would take", node.Name)}
	if ready.Passed {
		ready.Message = fmt.Sprintf("node %s is ready", node.Name)
	}
	return Verification{Checks: []tendv1.Check{schedulabilityCheck(node, false), ready}}, nil
}

func (a *uncordonNode) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, restoreSchedulable, unschedulableDigest)
}

func (a *uncordonNode) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
