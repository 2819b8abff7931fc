package actions

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=replicasets;deployments;statefulsets;daemonsets,verbs=get;list;watch

// evictPod evicts one pod through the Eviction API, so that its
// PodDisruptionBudget decides whether it may go now; a budget that refuses
// refuses the proposal, naming it. Verified when the pod is gone and its
// workload is back to its desired ready pods. It cannot be undone.
type evictPod struct{ base }

var _ Action = (*evictPod)(nil)

func (a *evictPod) Info() tendv1.ActionInfo { return info(tendv1.ActionEvictPod) }

func (a *evictPod) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	if params.Eviction != nil {
		params.Eviction = nil
	}
	if !paramsEmpty(params) {
		return fmt.Errorf("%w: EvictPod takes only eviction parameters", ErrInvalidParameters)
	}
	return nil
}

// Facts are the pod's workload's replicas and a budget that would refuse.
func (a *evictPod) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	pod := target.(*corev1.Pod)
	f, err := podFacts(ctx, a.opts.Client, pod)
	return f, 0, err
}

// Digest: an eviction leaves nothing of tend's on anything.
func (a *evictPod) Digest(client.Object) (string, error) { return "", nil }

func (a *evictPod) Apply(ctx context.Context, p *tendv1.Proposal, _ string, dryRun bool) (Result, error) {
	gone, err := a.podGone(ctx, p)
	if err != nil {
		return Result{}, err
	}
	if gone {
		return Result{AlreadyApplied: true}, nil
	}
	obj, err := a.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	pod := obj.(*corev1.Pod)
	if err := pinned(pod, p); err != nil {
		return Result{}, err
	}
	owner, err := ownerWorkload(ctx, a.opts.Client, pod)
	if err != nil {
		return Result{}, err
	}
	var grace *int64
	if e := p.Spec.Parameters.Eviction; e != nil {
		grace = e.GracePeriodSeconds
	}
	if err := a.evict(ctx, pod, grace, dryRun); err != nil {
		return Result{}, err
	}
	return Result{Before: fmt.Sprintf("pod %s on %s", pod.Name, pod.Spec.NodeName), After: "evicted", UndoState: ownerState(owner)}, nil
}

func (a *evictPod) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.replacementVerification(ctx, p)
}

func (a *evictPod) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *evictPod) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}
