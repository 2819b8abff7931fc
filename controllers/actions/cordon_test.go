package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

func TestCordonNode(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", true)

	// Automatic; verified when the node is unschedulable and no pod waits
	// for it.
	p := e.propose(e.proposal(tendv1.ActionCordonNode, a, tendv1.Parameters{}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.get(e.g, a)
	e.g.Expect(a.Spec.Unschedulable).To(BeTrue())
	e.noMoreWrites(done, a)

	// A node replaced since the proposal is decided again.
	b := e.node("b", true)
	e.staleIsDecidedAgain(tendv1.ActionCordonNode, b, tendv1.Parameters{}, e.recreateNode(b))

	// A workload that may run only on node c has a pod waiting for room
	// there: cordoning c strands it, the verification fails, and c is
	// schedulable again.
	c := e.node("c", true)
	e.deployment("only-c", 1, e.pinnedTo(c.Name))
	big := &appsv1.Deployment{}
	e.g.Expect(e.st.Client.Get(e.ctx(), client.ObjectKey{Namespace: e.ns, Name: "only-c"}, big)).To(Succeed())
	e.g.Eventually(func() error {
		if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(big), big); err != nil {
			return err
		}
		big.Spec.Replicas = ptr.To[int32](2)
		big.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("5")
		return e.st.Client.Update(e.ctx(), big)
	}).Should(Succeed())
	e.g.Eventually(func(g Gomega) bool {
		for _, pod := range e.podsOf(g, "only-c") {
			for _, cond := range pod.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Reason == corev1.PodReasonUnschedulable {
					return true
				}
			}
		}
		return false
	}).Should(BeTrue(), "no pod of only-c waits for room on %s", c.Name)
	p = e.propose(e.proposal(tendv1.ActionCordonNode, c, tendv1.Parameters{}))
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.g.Expect(undone.Status.Verify).NotTo(BeNil())
	e.get(e.g, c)
	e.g.Expect(c.Spec.Unschedulable).To(BeFalse())
	e.noMoreWrites(undone, c)
}

func TestUncordonNode(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", true)
	e.setUnschedulable(a, true)

	// A ready node: automatic; verified when it is schedulable and ready.
	p := e.propose(e.proposal(tendv1.ActionUncordonNode, a, tendv1.Parameters{}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.get(e.g, a)
	e.g.Expect(a.Spec.Unschedulable).To(BeFalse())
	e.noMoreWrites(done, a)

	b := e.node("b", true)
	e.setUnschedulable(b, true)
	e.staleIsDecidedAgain(tendv1.ActionUncordonNode, b, tendv1.Parameters{}, e.recreateNode(b))

	// A node that is not ready: a human approves, the verification fails
	// (it cannot run what it would take), and it is cordoned again.
	lost := e.node("lost", false)
	e.setUnschedulable(lost, true)
	p = e.propose(e.proposal(tendv1.ActionUncordonNode, lost, tendv1.Parameters{}))
	e.approve(p)
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.get(e.g, lost)
	e.g.Expect(lost.Spec.Unschedulable).To(BeTrue())
	e.noMoreWrites(undone, lost)
}
