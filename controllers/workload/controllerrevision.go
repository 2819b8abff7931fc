package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A StatefulSet's or DaemonSet's rollout history is its ControllerRevisions:
// each holds one pod template and a revision number, the newest of which is
// the template the workload runs now (a rollback to an older template gives
// that revision the next number, as a Deployment's ReplicaSet does). Their
// pods carry the revision's hash in LabelControllerRevisionHash: a
// StatefulSet's pods name the ControllerRevision, a DaemonSet's its hash.

// LabelControllerRevisionHash is the label the StatefulSet and DaemonSet
// controllers put on their pods and ControllerRevisions.
const LabelControllerRevisionHash = appsv1.ControllerRevisionHashLabelKey

// HasControllerRevisions reports whether obj keeps its history in
// ControllerRevisions (a StatefulSet or a DaemonSet).
func HasControllerRevisions(obj client.Object) bool {
	switch obj.(type) {
	case *appsv1.StatefulSet, *appsv1.DaemonSet:
		return true
	}
	return false
}

// ControllerRevisions lists the ControllerRevisions obj controls.
func ControllerRevisions(ctx context.Context, c client.Reader, obj client.Object) ([]appsv1.ControllerRevision, error) {
	var list appsv1.ControllerRevisionList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil, fmt.Errorf("failed to list controllerrevisions: %w", err)
	}
	out := list.Items[:0]
	for _, cr := range list.Items {
		if metav1.IsControlledBy(&cr, obj) {
			out = append(out, cr)
		}
	}
	return out, nil
}

// LatestControllerRevision is the newest revision number among crs: the
// template the workload runs now. 0 when crs is empty.
func LatestControllerRevision(crs []appsv1.ControllerRevision) int64 {
	var latest int64
	for i := range crs {
		latest = max(latest, crs[i].Revision)
	}
	return latest
}

// ControllerRevisionOf returns the ControllerRevision of revision rev, or nil.
func ControllerRevisionOf(crs []appsv1.ControllerRevision, rev int64) *appsv1.ControllerRevision {
	i := slices.IndexFunc(crs, func(cr appsv1.ControllerRevision) bool { return cr.Revision == rev })
	if i < 0 {
		return nil
	}
	return &crs[i]
}

// PreviousControllerRevision is the newest revision among crs older than
// current, or 0.
func PreviousControllerRevision(crs []appsv1.ControllerRevision, current int64) int64 {
	var to int64
	for i := range crs {
		if r := crs[i].Revision; r < current && r > to {
			to = r
		}
	}
	return to
}

// RevisionTemplate decodes the pod template a ControllerRevision holds (the
// StatefulSet and DaemonSet controllers store {"spec":{"template":...}}).
func RevisionTemplate(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("failed to decode controllerrevision %s: %w", cr.Name, err)
	}
	if data.Spec.Template == nil {
		return nil, fmt.Errorf("workload: controllerrevision %s holds no pod template", cr.Name)
	}
	return data.Spec.Template, nil
}

// OfControllerRevision reports whether pod runs cr's template: its revision
// hash label names cr (a StatefulSet's pods) or carries cr's hash (a
// DaemonSet's).
func OfControllerRevision(pod *corev1.Pod, cr *appsv1.ControllerRevision) bool {
	h := pod.Labels[LabelControllerRevisionHash]
	return h != "" && (h == cr.Name || h == cr.Labels[LabelControllerRevisionHash])
}

// ControllerRevisionPods lists the live pods of obj that run cr's template.
func ControllerRevisionPods(ctx context.Context, c client.Reader, obj client.Object, cr *appsv1.ControllerRevision) ([]corev1.Pod, error) {
	pods, err := Pods(ctx, c, obj)
	if err != nil {
		return nil, err
	}
	out := pods[:0]
	for _, pod := range pods {
		if OfControllerRevision(&pod, cr) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// JudgeControllerRevision decides whether cr, a revision of the StatefulSet
// or DaemonSet obj, ran healthy: by tend's record on it, or live. Live, the
// revision obj runs needs every desired pod on it; the revision a rollout is
// moving away from (a StatefulSet's current revision, or a DaemonSet's
// older one that still has pods) needs the pods it still has, at least one,
// as a Deployment's old ReplicaSet does. Either way obj's controller
// observed its spec, and each of those pods is ready for window with no
// container waiting or restarted within it. pods are cr's live pods.
func JudgeControllerRevision(obj client.Object, cr *appsv1.ControllerRevision, latest int64, pods []corev1.Pod, now time.Time, window time.Duration) Health {
	rev := cr.Revision
	if at := cr.Annotations[AnnotationRanHealthy]; at != "" {
		return Health{Healthy: true, Evidence: fmt.Sprintf("revision %d ran healthy (recorded at %s)", rev, at)}
	}
	if g, ok := observed(obj); !ok || g < obj.GetGeneration() {
		return Health{Evidence: fmt.Sprintf("revision %d: the controller has not observed generation %d yet", rev, obj.GetGeneration())}
	}
	want, _ := Replicas(obj)
	if rev != latest {
		if s, ok := obj.(*appsv1.StatefulSet); ok && s.Status.CurrentRevision != cr.Name {
			return Health{Evidence: fmt.Sprintf("revision %d is neither the one the StatefulSet runs nor the one its rollout replaces, and has no record of running healthy", rev)}
		}
		want = int32(len(pods))
	}
	if want == 0 {
		return Health{Evidence: fmt.Sprintf("revision %d has no pods and no record of running healthy", rev)}
	}
	if int32(len(pods)) < want {
		return Health{Evidence: fmt.Sprintf("revision %d: %d of %d pods run it", rev, len(pods), want)}
	}
	return judgePods(rev, pods, want, now, window)
}

// observed is the generation a StatefulSet's or DaemonSet's controller
// observed.
func observed(obj client.Object) (int64, bool) {
	switch w := obj.(type) {
	case *appsv1.StatefulSet:
		return w.Status.ObservedGeneration, true
	case *appsv1.DaemonSet:
		return w.Status.ObservedGeneration, true
	}
	return 0, false
}
