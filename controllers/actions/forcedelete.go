package actions

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// DefaultStuckPodGrace is how long past its deletion a pod on a lost node
// must be stuck before tend force-deletes it, unless Options say otherwise.
const DefaultStuckPodGrace = 30 * time.Second

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// forceDeletePod removes a pod stuck terminating on a node that is not
// ready (or gone), past its deletion grace period, with a zero grace
// period: the kubelet that would finish the deletion is not there. Any
// other pod is refused. Verified when the replacement is ready. It cannot
// be undone.
type forceDeletePod struct{ base }

var _ Action = (*forceDeletePod)(nil)

func (a *forceDeletePod) Info() tendv1.ActionInfo { return info(tendv1.ActionForceDeletePod) }

func (a *forceDeletePod) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	if !paramsEmpty(p.Spec.Parameters) {
		return fmt.Errorf("%w: ForceDeletePod takes no parameters", ErrInvalidParameters)
	}
	return nil
}

// stuck says why pod is stuck terminating on a lost node, or refuses.
func (a *forceDeletePod) stuck(ctx context.Context, pod *corev1.Pod) error {
	if pod.DeletionTimestamp == nil {
		return refuse(ReasonPodNotStuck, "pod %s/%s is not terminating; evict it instead", pod.Namespace, pod.Name)
	}
	grace := a.opts.StuckPodGrace
	if grace <= 0 {
		grace = DefaultStuckPodGrace
	}
	if past := a.opts.Now().Sub(pod.DeletionTimestamp.Time); past < grace {
		return refuse(ReasonPodNotStuck, "pod %s/%s has been terminating for %s past its grace period, less than %s", pod.Namespace, pod.Name, past.Round(time.Second), grace)
	}
	if pod.Spec.NodeName == "" {
		return nil
	}
	node := &corev1.Node{}
	switch err := a.opts.Client.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("failed to get node: %w", err)
	}
	if nodeReady(node) {
		return refuse(ReasonPodNotStuck, "pod %s/%s is terminating on node %s, which is ready: its kubelet will finish the deletion", pod.Namespace, pod.Name, node.Name)
	}
	return nil
}

func (a *forceDeletePod) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	pod := target.(*corev1.Pod)
	f, err := podFacts(ctx, a.opts.Client, pod)
	if err != nil {
		return f, 0, err
	}
	// The pod serves nothing already: its node is lost. Deleting it takes
	// nothing down, and no budget counts it (this is not an eviction).
	f.Disruption = &tendv1.DisruptionFacts{}
	return f, 0, a.stuck(ctx, pod)
}

func (a *forceDeletePod) Digest(client.Object) (string, error) { return "", nil }

func (a *forceDeletePod) Apply(ctx context.Context, p *tendv1.Proposal, _ string, dryRun bool) (Result, error) {
	obj, err := a.get(ctx, p, true)
	if apierrors.IsNotFound(err) {
		return Result{AlreadyApplied: true}, nil
	}
	if err != nil {
		return Result{}, err
	}
	pod := obj.(*corev1.Pod)
	if pod.UID != p.Spec.Target.UID {
		return Result{AlreadyApplied: true}, nil
	}
	if err := a.stuck(ctx, pod); err != nil {
		return Result{}, err
	}
	owner, err := ownerWorkload(ctx, a.opts.Client, pod)
	if err != nil {
		return Result{}, err
	}
	opts := []client.DeleteOption{client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID}}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := a.opts.Client.Delete(ctx, pod, opts...); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return Result{}, fmt.Errorf("failed to delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return Result{Before: fmt.Sprintf("pod %s terminating since %s on node %s", pod.Name, pod.DeletionTimestamp.UTC().Format(time.RFC3339), pod.Spec.NodeName),
		After: "deleted", UndoState: ownerState(owner)}, nil
}

func (a *forceDeletePod) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.replacementVerification(ctx, p)
}

func (a *forceDeletePod) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *forceDeletePod) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}

// nodeReady reports whether node's Ready condition is True.
func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
