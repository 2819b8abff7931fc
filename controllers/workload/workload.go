package workload

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and annotations the deployment controller writes.
const (
	AnnotationRevision = "deployment.kubernetes.io/revision"
	LabelTemplateHash  = "pod-template-hash"
)

// Revision is the rollout revision of a Deployment or ReplicaSet; 0 when it
// has none.
func Revision(obj metav1.Object) int64 {
	r, err := strconv.ParseInt(obj.GetAnnotations()[AnnotationRevision], 10, 64)
	if err != nil {
		return 0
	}
	return r
}

// PodReady reports whether pod's Ready condition is True.
func PodReady(pod *corev1.Pod) bool {
	_, ready := ReadySince(pod)
	return ready
}

// ReadySince returns when pod became ready, and whether it is ready. A
// terminating pod is not ready.
func ReadySince(pod *corev1.Pod) (time.Time, bool) {
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

// ReplicaSets lists the ReplicaSets d controls.
func ReplicaSets(ctx context.Context, c client.Reader, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := c.List(ctx, &list, client.InNamespace(d.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list replicasets: %w", err)
	}
	out := list.Items[:0]
	for _, rs := range list.Items {
		if metav1.IsControlledBy(&rs, d) {
			out = append(out, rs)
		}
	}
	return out, nil
}

// ReplicaSetOf returns d's ReplicaSet of revision rev, or nil.
func ReplicaSetOf(rss []appsv1.ReplicaSet, rev int64) *appsv1.ReplicaSet {
	i := slices.IndexFunc(rss, func(rs appsv1.ReplicaSet) bool { return Revision(&rs) == rev })
	if i < 0 {
		return nil
	}
	return &rss[i]
}

// PreviousRevision is the newest revision among rss older than current, or 0.
func PreviousRevision(rss []appsv1.ReplicaSet, current int64) int64 {
	var to int64
	for i := range rss {
		if r := Revision(&rss[i]); r < current && r > to {
			to = r
		}
	}
	return to
}

// ReplicaSetPods lists the live pods rs controls.
func ReplicaSetPods(ctx context.Context, c client.Reader, rs *appsv1.ReplicaSet) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(rs.Namespace),
		client.MatchingLabels{LabelTemplateHash: rs.Labels[LabelTemplateHash]}); err != nil {
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

// CurrentPods lists the live pods of d's current revision.
func CurrentPods(ctx context.Context, c client.Reader, d *appsv1.Deployment) ([]corev1.Pod, error) {
	rss, err := ReplicaSets(ctx, c, d)
	if err != nil {
		return nil, err
	}
	rs := ReplicaSetOf(rss, Revision(d))
	if rs == nil {
		return nil, nil
	}
	return ReplicaSetPods(ctx, c, rs)
}

// Pods lists the live pods of a workload (Deployment, StatefulSet,
// DaemonSet): those its selector matches that it controls, directly or
// through a ReplicaSet.
func Pods(ctx context.Context, c client.Reader, obj client.Object) ([]corev1.Pod, error) {
	sel, err := selectorOf(obj)
	if err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(obj.GetNamespace()), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	var owners []owner
	if d, ok := obj.(*appsv1.Deployment); ok {
		rss, err := ReplicaSets(ctx, c, d)
		if err != nil {
			return nil, err
		}
		for _, rs := range rss {
			owners = append(owners, owner{uid: string(rs.UID)})
		}
	} else {
		owners = append(owners, owner{uid: string(obj.GetUID())})
	}
	out := pods.Items[:0]
	for _, pod := range pods.Items {
		ref := metav1.GetControllerOf(&pod)
		if pod.DeletionTimestamp != nil || ref == nil {
			continue
		}
		if slices.ContainsFunc(owners, func(o owner) bool { return o.uid == string(ref.UID) }) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// owner is a controller a workload's pods may have.
type owner struct{ uid string }

// selectorOf is a workload's pod selector.
func selectorOf(obj client.Object) (labels.Selector, error) {
	var ls *metav1.LabelSelector
	switch w := obj.(type) {
	case *appsv1.Deployment:
		ls = w.Spec.Selector
	case *appsv1.StatefulSet:
		ls = w.Spec.Selector
	case *appsv1.DaemonSet:
		ls = w.Spec.Selector
	default:
		return nil, fmt.Errorf("workload: %T has no pod selector", obj)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("workload: invalid selector of %s: %w", obj.GetName(), err)
	}
	return sel, nil
}

// Replicas is a workload's desired and ready pod counts: a DaemonSet's are
// its scheduled and ready pods.
func Replicas(obj client.Object) (desired, ready int32) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return ptr.Deref(w.Spec.Replicas, 1), w.Status.ReadyReplicas
	case *appsv1.StatefulSet:
		return ptr.Deref(w.Spec.Replicas, 1), w.Status.ReadyReplicas
	case *appsv1.DaemonSet:
		return w.Status.DesiredNumberScheduled, w.Status.NumberReady
	}
	return 0, 0
}

// Rollout reports whether a workload's rollout is complete: its controller
// observed its spec, and every desired pod is updated, ready and available.
func Rollout(obj client.Object) (complete bool, message string) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		want, st := ptr.Deref(w.Spec.Replicas, 1), w.Status
		switch {
		case st.ObservedGeneration < w.Generation:
			return false, fmt.Sprintf("the deployment controller has not observed generation %d yet", w.Generation)
		case st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want || st.Replicas != want:
			return false, fmt.Sprintf("%d desired, %d updated, %d ready, %d available, %d total", want, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.Replicas)
		}
		return true, fmt.Sprintf("%d/%d replicas updated and available", want, want)
	case *appsv1.StatefulSet:
		want, st := ptr.Deref(w.Spec.Replicas, 1), w.Status
		switch {
		case st.ObservedGeneration < w.Generation:
			return false, fmt.Sprintf("the statefulset controller has not observed generation %d yet", w.Generation)
		case st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want || (st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision):
			return false, fmt.Sprintf("%d desired, %d updated, %d ready, %d total", want, st.UpdatedReplicas, st.ReadyReplicas, st.Replicas)
		}
		return true, fmt.Sprintf("%d/%d replicas updated and ready", want, want)
	case *appsv1.DaemonSet:
		st := w.Status
		switch {
		case st.ObservedGeneration < w.Generation:
			return false, fmt.Sprintf("the daemonset controller has not observed generation %d yet", w.Generation)
		case st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled || st.NumberAvailable != st.DesiredNumberScheduled:
			return false, fmt.Sprintf("%d desired, %d updated, %d ready, %d available", st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady, st.NumberAvailable)
		}
		return true, fmt.Sprintf("%d/%d pods updated and available", st.DesiredNumberScheduled, st.DesiredNumberScheduled)
	}
	return false, fmt.Sprintf("%T is not a workload", obj)
}

// RolloutDisruption is how many of a workload's ready pods a rollout of its
// pod template takes down at once, and their share of the desired pods:
// every ready pod with a Recreate or OnDelete strategy, else what
// maxUnavailable (of a StatefulSet or DaemonSet: one, or maxUnavailable)
// leaves after the pods that are unavailable already, which count against
// it. A workload with no ready pod loses nothing that serves.
func RolloutDisruption(obj client.Object) (pods, percent int32) {
	desired, ready := Replicas(obj)
	if desired <= 0 || ready <= 0 {
		return 0, 0
	}
	ready = min(ready, desired)
	share := func(n int32) (int32, int32) { return n, n * 100 / desired }
	all := func() (int32, int32) { return share(ready) }
	var mu *intstr.IntOrString
	def := intstr.FromString("25%")
	switch w := obj.(type) {
	case *appsv1.Deployment:
		if w.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			return all()
		}
		mu = &def
		if ru := w.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	case *appsv1.StatefulSet:
		if w.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return all()
		}
		one := intstr.FromInt32(1)
		mu = &one
		if ru := w.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	case *appsv1.DaemonSet:
		if w.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			return all()
		}
		one := intstr.FromInt32(1)
		mu = &one
		if ru := w.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	default:
		return 0, 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(mu, int(desired), false)
	if err != nil {
		// An unreadable strategy counts as the worst case.
		return all()
	}
	// The pods already unavailable use up the budget first.
	n -= int(desired - ready)
	return share(int32(max(0, min(n, int(ready)))))
}

// Template is a workload's pod template.
func Template(obj client.Object) (*corev1.PodTemplateSpec, bool) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template, true
	case *appsv1.StatefulSet:
		return &w.Spec.Template, true
	case *appsv1.DaemonSet:
		return &w.Spec.Template, true
	}
	return nil, false
}

// TerminatedWithin returns the first container of pods whose last
// termination had reason (e.g. OOMKilled) and ended after since, as
// "pod/container", or "".
func TerminatedWithin(pods []corev1.Pod, reason string, since time.Time) string {
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == reason && t.FinishedAt.After(since) {
				return pod.Name + "/" + cs.Name
			}
			if t := cs.State.Terminated; t != nil && t.Reason == reason && t.FinishedAt.After(since) {
				return pod.Name + "/" + cs.Name
			}
		}
	}
	return ""
}

// Restarts sums the container restarts of each pod, by pod name.
func Restarts(pods []corev1.Pod) map[string]int32 {
	out := make(map[string]int32, len(pods))
	for i := range pods {
		var n int32
		for _, cs := range pods[i].Status.ContainerStatuses {
			n += cs.RestartCount
		}
		out[pods[i].Name] = n
	}
	return out
}
