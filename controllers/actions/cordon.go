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

// cordonNode marks a node unschedulable; its pods keep running. Undone by
// marking it schedulable again.
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
	return Verification{Checks: []tendv1.Check{schedulabilityCheck(obj.(*corev1.Node), true)}}, nil
}

func (a *cordonNode) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, restoreSchedulable, unschedulableDigest)
}

func (a *cordonNode) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
