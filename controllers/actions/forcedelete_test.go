package actions_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
)

// stuckOnLostNode makes pod <name>-0 of a one-replica StatefulSet stuck
// terminating on a node that lost its kubelet, the way it happens: the pod
// ran there, the node was lost, and its deletion is never confirmed, so
// the StatefulSet cannot start it again anywhere.
func (e *env) stuckOnLostNode(name string, lost *corev1.Node) *corev1.Pod {
	e.t.Helper()
	spec := podSpec()
	e.onTestNodes(&spec)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name + "-0", Labels: map[string]string{"app": name},
			Annotations: map[string]string{lostAnnotation: "true"}},
		Spec: spec,
	}
	pod.Spec.NodeName = lost.Name
	e.create(pod)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32), ServiceName: name, PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: spec},
		},
	}
	*s.Spec.Replicas = 1
	e.create(s)
	// The StatefulSet adopts the pod; the pod's deletion (by whoever
	// notices the node is gone) never completes.
	e.g.Eventually(func(g Gomega) {
		got := e.pod(g, pod.Name)
		g.Expect(metav1.GetControllerOf(got)).NotTo(BeNil())
	}).Should(Succeed())
	if err := e.st.Client.Delete(e.ctx(), pod); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
	e.g.Eventually(func(g Gomega) {
		got := e.pod(g, pod.Name)
		g.Expect(got.DeletionTimestamp).NotTo(BeNil())
		g.Expect(time.Since(got.DeletionTimestamp.Time)).To(BeNumerically(">", stuckPodGrace+time.Second))
	}).Should(Succeed())
	got := e.pod(e.g, pod.Name)
	e.g.Expect(got.UID).To(Equal(pod.UID))
	return got
}

func TestForceDeletePod(t *testing.T) {
	e := newEnv(t)
	e.node("good", true)
	lost := e.node("lost", false)
	e.setUnschedulable(lost, true)

	// A human approves; the pod is removed with no grace, and the
	// StatefulSet starts it again on a live node.
	stuck := e.stuckOnLostNode("db", lost)
	p := e.propose(e.proposal(tendv1.ActionForceDeletePod, stuck, tendv1.Parameters{}))
	e.approve(p)
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(codes(done)).To(ContainElement("ForceDelete"))
	fresh := e.replaced("db-0", stuck.UID)
	e.g.Expect(fresh.Spec.NodeName).NotTo(Equal(lost.Name))
	e.noMoreWrites(done, nil)
	e.g.Expect(e.pod(e.g, "db-0").UID).To(Equal(fresh.UID), "the new pod was deleted too")

	// A proposal for the pod that was stuck names a pod that is gone: its
	// namesake is not it, and it is decided again.
	p = e.proposal(tendv1.ActionForceDeletePod, fresh, tendv1.Parameters{})
	p.Spec.Target.UID = stuck.UID
	e.propose(p)
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(denied)).To(ContainElement("TargetChanged"))

	// A pod that is not stuck is refused.
	e.g.Eventually(func(g Gomega) corev1.PodPhase { return e.pod(g, "db-0").Status.Phase }).Should(Equal(corev1.PodRunning))
	p = e.propose(e.proposal(tendv1.ActionForceDeletePod, e.pod(e.g, "db-0"), tendv1.Parameters{}))
	refused := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(refused)).To(ContainElement(actions.ReasonPodNotStuck))
	e.g.Expect(e.pod(e.g, "db-0").UID).To(Equal(fresh.UID))

	// A replacement that cannot start fails the verification; a forced
	// deletion cannot be undone: Failed.
	stuck = e.stuckOnLostNode("cache", lost)
	e.breakConfig()
	p = e.propose(e.proposal(tendv1.ActionForceDeletePod, stuck, tendv1.Parameters{}))
	e.approve(p)
	failed := e.waitPhase(p, tendv1.PhaseFailed)
	e.g.Expect(failed.Status.Apply).NotTo(BeNil())
	e.noMoreWrites(failed, nil)
	e.g.Expect(e.st.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "cache-0"}, &corev1.Pod{})).To(Succeed())
}
