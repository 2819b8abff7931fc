package workload

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestJudgeControllerRevision(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	window := 10 * time.Second
	cr := func(name string, rev int64, recorded bool) *appsv1.ControllerRevision {
		c := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelControllerRevisionHash: strings.TrimPrefix(name, "db-")}}, Revision: rev}
		if recorded {
			c.Annotations = map[string]string{AnnotationRanHealthy: "2026-03-14T10:00:00Z"}
		}
		return c
	}
	// The StatefulSet mid-rollout from db-1 (revision 1) to db-2 (revision 2).
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: 2},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)},
		Status:     appsv1.StatefulSetStatus{ObservedGeneration: 2, CurrentRevision: "db-1", UpdateRevision: "db-2"},
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: 1},
		Status:     appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2},
	}
	pod := func(name string, readyAgo time.Duration) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.PodStatus{
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyAgo))}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
			},
		}
	}
	crashing := pod("db-2", time.Minute)
	crashing.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	tests := []struct {
		name     string
		obj      client.Object
		cr       *appsv1.ControllerRevision
		latest   int64
		pods     []corev1.Pod
		healthy  bool
		wait     time.Duration
		evidence string
	}{
		{name: "recorded before, no pods left", obj: sts, cr: cr("db-1", 1, true), latest: 2, healthy: true, evidence: "recorded at"},
		{name: "the revision a rollout replaces: its remaining pods ready long enough", obj: sts, cr: cr("db-1", 1, false), latest: 2,
			pods: []corev1.Pod{pod("db-0", time.Minute), pod("db-1", time.Minute)}, healthy: true},
		{name: "the revision a rollout replaces: ready, not yet long enough", obj: sts, cr: cr("db-1", 1, false), latest: 2,
			pods: []corev1.Pod{pod("db-0", time.Minute), pod("db-1", 3*time.Second)}, wait: 7 * time.Second},
		{name: "an older revision the StatefulSet does not run", obj: sts, cr: cr("db-0", 0, false), latest: 2,
			pods: []corev1.Pod{pod("db-0", time.Minute)}, evidence: "neither"},
		{name: "the running revision needs every desired pod", obj: sts, cr: cr("db-2", 2, false), latest: 2,
			pods: []corev1.Pod{pod("db-0", time.Minute), pod("db-1", time.Minute)}, evidence: "2 of 3 pods"},
		{name: "the running revision, a pod crash-looping", obj: sts, cr: cr("db-2", 2, false), latest: 2,
			pods: []corev1.Pod{pod("db-0", time.Minute), pod("db-1", time.Minute), crashing}, evidence: "waiting"},
		{name: "a revision with no pods and no record", obj: sts, cr: cr("db-1", 1, false), latest: 2, evidence: "no pods"},
		{name: "a DaemonSet's revision on every node", obj: ds, cr: cr("agent-x", 1, false), latest: 1,
			pods: []corev1.Pod{pod("a", time.Minute), pod("b", time.Minute)}, healthy: true},
		{name: "a DaemonSet's spec not yet observed", obj: &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: ds.Status}, cr: cr("agent-x", 1, false), latest: 1,
			pods: []corev1.Pod{pod("a", time.Minute), pod("b", time.Minute)}, evidence: "not observed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := JudgeControllerRevision(tc.obj, tc.cr, tc.latest, tc.pods, now, window)
			if h.Healthy != tc.healthy || h.Wait != tc.wait || !strings.Contains(h.Evidence, tc.evidence) {
				t.Fatalf("got %+v, want healthy=%v wait=%s evidence containing %q", h, tc.healthy, tc.wait, tc.evidence)
			}
		})
	}
}

func TestRevisionTemplate(t *testing.T) {
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "db-1"},
		Data: runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"pg","image":"pg:15.1"}]},"$patch":"replace"}}}`)}}
	tmpl, err := RevisionTemplate(cr)
	if err != nil {
		t.Fatal(err)
	}
	if got := tmpl.Spec.Containers[0].Image; got != "pg:15.1" || tmpl.Labels["app"] != "db" {
		t.Fatalf("template = %+v", tmpl)
	}
	if _, err := RevisionTemplate(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: []byte(`{"spec":{}}`)}}); err == nil {
		t.Fatal("a revision without a template decoded")
	}
}
