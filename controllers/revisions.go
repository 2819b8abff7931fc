package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// AnnotationRanHealthy on a ReplicaSet records when tend saw its revision
// run healthy: every desired pod ready, none restarting, for the healthy
// window. It is a record, not a change: nothing reads it but the proposal
// controller, which lets the gate approve a rollback to a revision only on
// such a record or on the same evidence live.
const AnnotationRanHealthy = "tend.dev/ran-healthy"

// DefaultHealthyWindow is how long a revision's pods must all have been
// ready, with no restart, before tend records it as healthy.
const DefaultHealthyWindow = 10 * time.Second

// revisionHealth is what tend knows of one revision's health.
type revisionHealth struct {
	// healthy is whether the revision ran healthy, by record or live.
	healthy bool
	// evidence says how tend knows, or why it does not.
	evidence string
	// wait, when positive and not healthy, is how long until the live
	// evidence would be enough if nothing changes.
	wait time.Duration
}

// judgeRevision decides whether rs ran healthy: by tend's record on it, or
// live: it has desired replicas, the ReplicaSet controller observed its
// spec, every desired pod is ready and has been for window, and no
// container of its pods is waiting or restarted within window. pods are
// rs's live pods.
func judgeRevision(rs *appsv1.ReplicaSet, pods []corev1.Pod, now time.Time, window time.Duration) revisionHealth {
	rev := revision(rs)
	if at := rs.Annotations[AnnotationRanHealthy]; at != "" {
		return revisionHealth{healthy: true, evidence: fmt.Sprintf("revision %d ran healthy (recorded at %s)", rev, at)}
	}
	want := ptr.Deref(rs.Spec.Replicas, 1)
	switch {
	case want == 0:
		return revisionHealth{evidence: fmt.Sprintf("revision %d has no replicas and no record of running healthy", rev)}
	case rs.Status.ObservedGeneration < rs.Generation:
		return revisionHealth{evidence: fmt.Sprintf("revision %d: the ReplicaSet controller has not observed it yet", rev)}
	case rs.Status.ReadyReplicas < want || rs.Status.AvailableReplicas < want || int32(len(pods)) < want:
		return revisionHealth{evidence: fmt.Sprintf("revision %d: %d of %d pods ready, %d available", rev, rs.Status.ReadyReplicas, want, rs.Status.AvailableReplicas)}
	}
	since := now.Add(-window)
	var wait time.Duration
	for i := range pods {
		pod := &pods[i]
		readyAt, ready := readySince(pod)
		if !ready {
			return revisionHealth{evidence: fmt.Sprintf("revision %d: pod %s is not ready", rev, pod.Name)}
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			if cs.State.Waiting != nil {
				return revisionHealth{evidence: fmt.Sprintf("revision %d: container %s of pod %s is waiting", rev, cs.Name, pod.Name)}
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(since) {
				return revisionHealth{evidence: fmt.Sprintf("revision %d: container %s of pod %s restarted within %s", rev, cs.Name, pod.Name, window)}
			}
		}
		if readyAt.After(since) {
			wait = max(wait, readyAt.Sub(since))
		}
	}
	if wait > 0 {
		return revisionHealth{wait: wait, evidence: fmt.Sprintf("revision %d: every pod ready, but not yet for %s", rev, window)}
	}
	return revisionHealth{healthy: true, evidence: fmt.Sprintf("revision %d: %d of %d pods ready for %s or more, none restarting", rev, len(pods), want, window)}
}

// readySince returns when pod became ready, and whether it is ready.
func readySince(pod *corev1.Pod) (time.Time, bool) {
	if pod.DeletionTimestamp != nil {
		return time.Time{}, false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
		}
	}
	return time.Time{}, false
}

// replicaSetPods lists the live pods rs controls.
func replicaSetPods(ctx context.Context, c client.Client, rs *appsv1.ReplicaSet) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(rs.Namespace),
		client.MatchingLabels{labelTemplateHash: rs.Labels[labelTemplateHash]}); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	out := pods.Items[:0]
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil && metav1.IsControlledBy(&pod, rs) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// RevisionReconciler records on a Deployment's ReplicaSet that its
// revision ran healthy (AnnotationRanHealthy), once, so that the fact
// survives the revision being scaled down by a later rollout. The record is
// the proposal controller's evidence for approving a rollback to that
// revision automatically; the annotation changes nothing the workload does.
type RevisionReconciler struct {
	Client client.Client
	// HealthyWindow is how long every pod must have been ready with no
	// restart; DefaultHealthyWindow when zero.
	HealthyWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// SetupWithManager registers the reconciler on ReplicaSets, and on the
// pods they control (readiness and restarts are the pods').
func (r *RevisionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.HealthyWindow == 0 {
		r.HealthyWindow = DefaultHealthyWindow
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&appsv1.ReplicaSet{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			ref := metav1.GetControllerOf(o)
			if ref == nil || ref.Kind != "ReplicaSet" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
		})).
		Named("revision").
		Complete(r)
}

// Reconcile records a ReplicaSet of a Deployment that runs healthy.
func (r *RevisionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &appsv1.ReplicaSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	owner := metav1.GetControllerOf(rs)
	if owner == nil || owner.Kind != "Deployment" || rs.Annotations[AnnotationRanHealthy] != "" || rs.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	pods, err := replicaSetPods(ctx, r.Client, rs)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Now()
	h := judgeRevision(rs, pods, now, r.HealthyWindow)
	if !h.healthy {
		if h.wait > 0 {
			return ctrl.Result{RequeueAfter: h.wait}, nil
		}
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(rs.DeepCopy())
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[AnnotationRanHealthy] = now.UTC().Format(time.RFC3339)
	if err := r.Client.Patch(ctx, rs, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}
