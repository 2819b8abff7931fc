package controllers

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tendops/tend/controllers/workload"
)

// RevisionReconciler records on a Deployment's ReplicaSet that its
// revision ran healthy (workload.AnnotationRanHealthy), once, so that the fact
// survives the revision being scaled down by a later rollout. The record is
// the proposal controller's evidence for approving a rollback to that
// revision automatically; the annotation changes nothing the workload does.
type RevisionReconciler struct {
	Client client.Client
	// HealthyWindow is how long every pod must have been ready with no
	// restart; workload.DefaultHealthyWindow when zero.
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
		r.HealthyWindow = workload.DefaultHealthyWindow
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
	if owner == nil || owner.Kind != "Deployment" || rs.Annotations[workload.AnnotationRanHealthy] != "" || rs.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	pods, err := workload.ReplicaSetPods(ctx, r.Client, rs)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Now()
	h := workload.JudgeRevision(rs, pods, now, r.HealthyWindow)
	if !h.Healthy {
		if h.Wait > 0 {
			return ctrl.Result{RequeueAfter: h.Wait}, nil
		}
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(rs.DeepCopy())
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[workload.AnnotationRanHealthy] = now.UTC().Format(time.RFC3339)
	if err := r.Client.Patch(ctx, rs, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// ControllerRevisionReconciler records on a StatefulSet's or DaemonSet's
// ControllerRevision that its revision ran healthy
// (workload.AnnotationRanHealthy), once: what RevisionReconciler does for a
// Deployment's ReplicaSets. A revision is judged while its workload runs it;
// the record is what lets the gate approve a rollback to it after a later
// rollout replaced its pods.
type ControllerRevisionReconciler struct {
	Client client.Client
	// HealthyWindow is how long every pod must have been ready with no
	// restart; workload.DefaultHealthyWindow when zero.
	HealthyWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets;daemonsets,verbs=get;list;watch

// SetupWithManager registers the reconciler on ControllerRevisions, and on
// the pods of StatefulSets and DaemonSets (readiness and restarts are the
// pods').
func (r *ControllerRevisionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.HealthyWindow == 0 {
		r.HealthyWindow = workload.DefaultHealthyWindow
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&appsv1.ControllerRevision{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			ref := metav1.GetControllerOf(o)
			hash := o.GetLabels()[workload.LabelControllerRevisionHash]
			if ref == nil || hash == "" {
				return nil
			}
			var name string
			switch ref.Kind {
			case "StatefulSet":
				name = hash // a StatefulSet's pods name their revision
			case "DaemonSet":
				name = ref.Name + "-" + hash // a DaemonSet's carry its hash
			default:
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
		})).
		Named("controllerrevision").
		Complete(r)
}

// Reconcile records a ControllerRevision that its workload runs healthy.
func (r *ControllerRevisionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cr := &appsv1.ControllerRevision{}
	if err := r.Client.Get(ctx, req.NamespacedName, cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ref := metav1.GetControllerOf(cr)
	if ref == nil || cr.Annotations[workload.AnnotationRanHealthy] != "" || cr.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	var owner client.Object
	switch ref.Kind {
	case "StatefulSet":
		owner = &appsv1.StatefulSet{}
	case "DaemonSet":
		owner = &appsv1.DaemonSet{}
	default:
		return ctrl.Result{}, nil
	}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: cr.Namespace, Name: ref.Name}, owner); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if owner.GetUID() != ref.UID {
		return ctrl.Result{}, nil
	}
	crs, err := workload.ControllerRevisions(ctx, r.Client, owner)
	if err != nil {
		return ctrl.Result{}, err
	}
	pods, err := workload.ControllerRevisionPods(ctx, r.Client, owner, cr)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Now()
	h := workload.JudgeControllerRevision(owner, cr, workload.LatestControllerRevision(crs), pods, now, r.HealthyWindow)
	if !h.Healthy {
		if h.Wait > 0 {
			return ctrl.Result{RequeueAfter: h.Wait}, nil
		}
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(cr.DeepCopy())
	if cr.Annotations == nil {
		cr.Annotations = map[string]string{}
	}
	cr.Annotations[workload.AnnotationRanHealthy] = now.UTC().Format(time.RFC3339)
	if err := r.Client.Patch(ctx, cr, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}
