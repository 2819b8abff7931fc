package actions

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// AnnotationRestartedAt on a pod template restarts its pods, as `kubectl
// rollout restart` does.
const AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;update;patch

// restartWorkload is a rolling restart of a Deployment, StatefulSet or
// DaemonSet: a new restartedAt annotation in the pod template, which the
// workload's controller rolls out. Verified when every pod runs the
// restarted template and is ready. It cannot be undone: the old pods are
// gone.
type restartWorkload struct{ base }

var _ Action = (*restartWorkload)(nil)

func (a *restartWorkload) Info() tendv1.ActionInfo { return info(tendv1.ActionRestartWorkload) }

func (a *restartWorkload) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	if !paramsEmpty(p.Spec.Parameters) {
		return fmt.Errorf("%w: RestartWorkload takes no parameters", ErrInvalidParameters)
	}
	return nil
}

func (a *restartWorkload) Facts(_ context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	return workloadFacts(target), 0, nil
}

func (a *restartWorkload) Digest(target client.Object) (string, error) { return templateDigest(target) }

func (a *restartWorkload) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		t, _ := workload.Template(obj)
		prev := t.Annotations[AnnotationRestartedAt]
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		at := a.opts.Now().UTC().Format(time.RFC3339)
		t.Annotations[AnnotationRestartedAt] = at
		before := "pods of the current template"
		if prev != "" {
			before = "pods restarted at " + prev
		}
		return before, "pods restarted at " + at, "", nil
	}, templateDigest)
}

// Verify checks that the rollout completed and that every pod of the
// workload runs the restarted template and is ready.
func (a *restartWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	t, _ := workload.Template(obj)
	want := t.Annotations[AnnotationRestartedAt]
	pods, err := currentWorkloadPods(ctx, a.opts.Client, obj)
	if err != nil {
		return Verification{}, err
	}
	desired, _ := workload.Replicas(obj)
	v := rolloutVerification(obj, pods, desired)
	restarted := tendv1.Check{Name: "PodsRestarted", Passed: true}
	old := 0
	for i := range pods {
		if pods[i].Annotations[AnnotationRestartedAt] != want {
			old++
			restarted.Passed = false
		}
	}
	restarted.Message = fmt.Sprintf("%d of %d pods run the template restarted at %s", len(pods)-old, len(pods), want)
	v.Checks = append(v.Checks, restarted)
	return v, nil
}

func (a *restartWorkload) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *restartWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}

// currentWorkloadPods are the pods a workload's verification looks at: a
// Deployment's current revision's, or every pod of a StatefulSet or
// DaemonSet.
func currentWorkloadPods(ctx context.Context, c client.Reader, obj client.Object) ([]corev1.Pod, error) {
	if d, ok := obj.(*appsv1.Deployment); ok {
		return workload.CurrentPods(ctx, c, d)
	}
	return workload.Pods(ctx, c, obj)
}

// paramsEmpty reports whether no action's parameters are set.
func paramsEmpty(p tendv1.Parameters) bool {
	return p.Rollback == nil && p.Scale == nil && len(p.Patch) == 0 && p.Resources == nil &&
		p.Autoscaler == nil && p.Eviction == nil && p.Drain == nil && p.Container == nil && p.Prune == nil
}
