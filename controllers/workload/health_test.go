package workload

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestJudgeRevision(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	window := 10 * time.Second
	rs := func(mutate func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
		r := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Generation: 1, Annotations: map[string]string{AnnotationRevision: "1"}},
			Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2)},
			Status:     appsv1.ReplicaSetStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2},
		}
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	pod := func(name string, readyAgo time.Duration, mutate func(*corev1.Pod)) corev1.Pod {
		p := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.PodStatus{
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyAgo))}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
			},
		}
		if mutate != nil {
			mutate(&p)
		}
		return p
	}
	restarted := func(ago time.Duration) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].RestartCount = 3
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.NewTime(now.Add(-ago))}
		}
	}
	tests := []struct {
		name     string
		rs       *appsv1.ReplicaSet
		pods     []corev1.Pod
		healthy  bool
		wait     time.Duration
		evidence string
	}{
		{name: "recorded before", rs: rs(func(r *appsv1.ReplicaSet) {
			r.Spec.Replicas = ptr.To[int32](0)
			r.Annotations[AnnotationRanHealthy] = "2026-03-14T10:00:00Z"
		}), healthy: true, evidence: "recorded at"},
		{name: "every pod ready long enough, none restarting", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, nil), pod("b", 11*time.Second, nil)}, healthy: true},
		{name: "ready, not yet long enough", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, nil), pod("b", 4*time.Second, nil)}, wait: 6 * time.Second},
		{name: "a restart within the window", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, restarted(5*time.Second)), pod("b", time.Minute, nil)}, evidence: "restarted within"},
		{name: "restarts long ago do not count", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, restarted(time.Hour)), pod("b", time.Minute, nil)}, healthy: true},
		{name: "a pod not ready", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, nil), pod("b", time.Minute, func(p *corev1.Pod) {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		})}, evidence: "not ready"},
		{name: "a container waiting", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
		}), pod("b", time.Minute, nil)}, evidence: "waiting"},
		{name: "fewer pods than desired", rs: rs(nil), pods: []corev1.Pod{pod("a", time.Minute, nil)}, evidence: "of 2 pods ready"},
		{name: "scaled to zero, never recorded", rs: rs(func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](0) }), evidence: "no replicas"},
		{name: "spec not observed", rs: rs(func(r *appsv1.ReplicaSet) { r.Generation = 2 }), pods: []corev1.Pod{pod("a", time.Minute, nil), pod("b", time.Minute, nil)}, evidence: "not observed"},
		{name: "status short of desired", rs: rs(func(r *appsv1.ReplicaSet) { r.Status.ReadyReplicas = 1 }), pods: []corev1.Pod{pod("a", time.Minute, nil), pod("b", time.Minute, nil)}, evidence: "1 of 2 pods ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := JudgeRevision(tt.rs, tt.pods, now, window)
			if h.Healthy != tt.healthy || h.Wait != tt.wait {
				t.Errorf("judgeRevision = healthy %v, wait %s (%s); want healthy %v, wait %s", h.Healthy, h.Wait, h.Evidence, tt.healthy, tt.wait)
			}
			if !strings.Contains(h.Evidence, tt.evidence) {
				t.Errorf("evidence %q, want it to contain %q", h.Evidence, tt.evidence)
			}
		})
	}
}
