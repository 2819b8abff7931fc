package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

func TestEvictPod(t *testing.T) {
	e := newEnv(t)
	db := e.statefulSet("db", 3)

	// One pod of three: automatic, through the Eviction API; verified when
	// the pod is gone and the StatefulSet is whole again.
	victim := e.pod(e.g, "db-1")
	p := e.propose(e.proposal(tendv1.ActionEvictPod, victim, tendv1.Parameters{}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.replaced("db-1", victim.UID)
	// Reconciled again, it evicts nothing more: every pod keeps its UID.
	uids := map[string]string{}
	for _, pod := range e.podsOf(e.g, "db") {
		uids[pod.Name] = string(pod.UID)
	}
	e.noMoreWrites(done, nil)
	for _, pod := range e.podsOf(e.g, "db") {
		e.g.Expect(string(pod.UID)).To(Equal(uids[pod.Name]), "pod %s was evicted again", pod.Name)
	}
	e.waitStatefulSet(db, 3)

	// A pod replaced since the proposal (same name, another UID) is not
	// the pod proposed: decided again.
	stale := e.pod(e.g, "db-2")
	e.staleIsDecidedAgain(tendv1.ActionEvictPod, stale, tendv1.Parameters{}, func() {
		e.g.Expect(e.st.Client.Delete(e.ctx(), stale)).To(Succeed())
		e.replaced("db-2", stale.UID)
	})
	e.waitStatefulSet(db, 3)

	// A budget that allows no disruption: denied, naming it; nothing evicted.
	e.create(&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(3)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}})
	e.g.Eventually(func(g Gomega) int32 {
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"}}
		e.get(g, pdb)
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
		return pdb.Status.ExpectedPods
	}).Should(Equal(int32(3)))
	target := e.pod(e.g, "db-0")
	p = e.propose(e.proposal(tendv1.ActionEvictPod, target, tendv1.Parameters{}))
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(denied)).To(ContainElement(policies.ReasonDisruptionBudget))
	e.g.Expect(denied.Status.Decision.Reasons[0].Message).To(ContainSubstring(e.ns + "/db"))
	e.g.Expect(e.pod(e.g, "db-0").UID).To(Equal(target.UID))
	e.g.Expect(e.st.Client.Delete(e.ctx(), &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"}})).To(Succeed())

	// A replacement that cannot start fails the verification; an eviction
	// cannot be undone, so the proposal ends Failed.
	e.breakConfig()
	target = e.pod(e.g, "db-0")
	p = e.propose(e.proposal(tendv1.ActionEvictPod, target, tendv1.Parameters{}))
	failed := e.waitPhase(p, tendv1.PhaseFailed)
	e.g.Expect(failed.Status.Apply).NotTo(BeNil())
	e.g.Expect(e.pod(e.g, "db-0").Status.Phase).NotTo(Equal(corev1.PodRunning))
	e.noMoreWrites(failed, nil)
}
