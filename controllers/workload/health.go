package workload

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// AnnotationRanHealthy on a ReplicaSet records when tend saw its revision
// run healthy: every desired pod ready, none restarting, for the healthy
// window. It is a record, not a change: nothing reads it but the proposal
// controller, which lets the gate approve a rollback to a revision only on
// such a record or on the same evidence live.
const AnnotationRanHealthy = "tend.dev/ran-healthy"

// DefaultHealthyWindow is how long a revision's pods must all have been
// ready, with no restart, before tend counts it as healthy.
const DefaultHealthyWindow = 10 * time.Second

// Health is what tend knows of one revision's health.
type Health struct {
	// Healthy is whether the revision ran healthy, by record or live.
	Healthy bool
	// Evidence says how tend knows, or why it does not.
	Evidence string
	// Wait, when positive and not healthy, is how long until the live
	// evidence would be enough if nothing changes.
	Wait time.Duration
}

// JudgeRevision decides whether rs ran healthy: by tend's record on it, or
// live: it has desired replicas, the ReplicaSet controller observed its
// spec, every desired pod is ready and has been for window, and no
// container of its pods is waiting or restarted within window. pods are
// rs's live pods.
func JudgeRevision(rs *appsv1.ReplicaSet, pods []corev1.Pod, now time.Time, window time.Duration) Health {
	rev := Revision(rs)
	if at := rs.Annotations[AnnotationRanHealthy]; at != "" {
		return Health{Healthy: true, Evidence: fmt.Sprintf("revision %d ran healthy (recorded at %s)", rev, at)}
	}
	want := ptr.Deref(rs.Spec.Replicas, 1)
	switch {
	case want == 0:
		return Health{Evidence: fmt.Sprintf("revision %d has no replicas and no record of running healthy", rev)}
	case rs.Status.ObservedGeneration < rs.Generation:
		return Health{Evidence: fmt.Sprintf("revision %d: the ReplicaSet controller has not observed it yet", rev)}
	case rs.Status.ReadyReplicas < want || rs.Status.AvailableReplicas < want || int32(len(pods)) < want:
		return Health{Evidence: fmt.Sprintf("revision %d: %d of %d pods ready, %d available", rev, rs.Status.ReadyReplicas, want, rs.Status.AvailableReplicas)}
	}
	return judgePods(rev, pods, want, now, window)
}

// judgePods is the live evidence that revision rev ran healthy: each of
// pods (want of them) ready for window, none waiting or restarted within it.
func judgePods(rev int64, pods []corev1.Pod, want int32, now time.Time, window time.Duration) Health {
	since := now.Add(-window)
	var wait time.Duration
	for i := range pods {
		pod := &pods[i]
		readyAt, ready := ReadySince(pod)
		if !ready {
			return Health{Evidence: fmt.Sprintf("revision %d: pod %s is not ready", rev, pod.Name)}
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			if cs.State.Waiting != nil {
				return Health{Evidence: fmt.Sprintf("revision %d: container %s of pod %s is waiting", rev, cs.Name, pod.Name)}
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(since) {
				return Health{Evidence: fmt.Sprintf("revision %d: container %s of pod %s restarted within %s", rev, cs.Name, pod.Name, window)}
			}
		}
		if readyAt.After(since) {
			wait = max(wait, readyAt.Sub(since))
		}
	}
	if wait > 0 {
		return Health{Wait: wait, Evidence: fmt.Sprintf("revision %d: every pod ready, but not yet for %s", rev, window)}
	}
	return Health{Healthy: true, Evidence: fmt.Sprintf("revision %d: %d of %d pods ready for %s or more, none restarting", rev, len(pods), want, window)}
}
