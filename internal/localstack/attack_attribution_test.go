package localstack

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Attribution: while tend verifies its rollback, the workload's owner ships
// a fix of their own (the new release with the setting it lacked). The
// workload ends healthy, but not by the proposal's change: the proposal
// ends Overtaken, not Succeeded, and tend does not undo over the owner's
// change.
func TestAttackOvertakenChangeIsNotCredited(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	ns := attackNamespace(t, st, nil)
	web := demoDeployment(t, g, st, ns, "web", "1.0", 2)
	waitHealthy(g, st, web)
	setImage(t, g, st, web, "2.0")

	// The agent proposes the rollback; the gate approves it; tend applies it.
	var p tendv1.Proposal
	g.Eventually(func(g Gomega) {
		items := proposalsIn(g, st, ns)
		g.Expect(items).To(HaveLen(1))
		p = items[0]
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseVerifying), p.Status.Message)
	}).Should(Succeed())

	// The owner's own fix: release 2.0 with DATABASE_URL.
	g.Eventually(func(g Gomega) {
		live := deployment(g, st, web)
		live.Spec.Template.Spec.Containers[0].Image = DemoImage + ":2.0"
		live.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DATABASE_URL", Value: "postgres://db:5432/shop"}}
		g.Expect(st.Client.Update(ctx, live)).To(Succeed())
	}).Should(Succeed())

	done := waitPhase(g, st, ns, p.Name, tendv1.PhaseOvertaken)
	g.Expect(done.Status.Message).To(ContainSubstring("changed by someone else"))
	g.Expect(done.Status.Rollback).To(BeNil(), "tend undid over the owner's change")
	waitHealthy(g, st, web)
	live := deployment(g, st, web)
	g.Expect(live.Spec.Template.Spec.Containers[0].Image).To(Equal(DemoImage + ":2.0"))
	g.Expect(live.Spec.Template.Spec.Containers[0].Env).To(HaveLen(1))
	g.Expect(st.Client.Get(ctx, client.ObjectKeyFromObject(&p), &p)).To(Succeed())
	g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseOvertaken))
}
