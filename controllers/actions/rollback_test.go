package actions_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// setProbePort rolls out a new revision of d with its readiness probe on
// port.
func (e *env) setProbePort(d *appsv1.Deployment, port int32) {
	e.t.Helper()
	e.g.Eventually(func() error {
		cur := &appsv1.Deployment{}
		if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(d), cur); err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromInt32(port)
		return e.st.Client.Update(e.ctx(), cur)
	}).Should(Succeed())
}

func TestRollbackWorkload(t *testing.T) {
	e := newEnv(t)
	web := e.deployment("web", 2)
	// Revision 2 never becomes ready.
	e.setProbePort(web, 9999)
	e.g.Eventually(func(g Gomega) string {
		e.get(g, web)
		return web.Annotations["deployment.kubernetes.io/revision"]
	}).Should(Equal("2"))

	back := tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2}}
	p := e.propose(e.proposal(tendv1.ActionRollbackWorkload, web, back))
	e.approveIfAsked(p)
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Facts.Revision.To).To(Equal(int64(1)))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue()).To(Equal(8080))
	e.noMoreWrites(done, web)

	e.staleIsDecidedAgain(tendv1.ActionRollbackWorkload, web, tendv1.Parameters{Rollback: &tendv1.RollbackParameters{}}, e.bumpTemplate(web))
	e.waitReady(web, 2)

	// Back to a revision none of whose pods run any more, and whose new
	// pods cannot start now (their ConfigMap is gone): the verification
	// fails, and the revision current before comes back.
	e.get(e.g, web)
	original := web.Annotations["deployment.kubernetes.io/revision"] // to be replaced in full by the next one
	e.bumpTemplate(web)()
	e.waitReady(web, 2)
	e.setProbePort(web, 9999)
	e.g.Eventually(func(g Gomega) int32 {
		e.get(g, web)
		return web.Status.UpdatedReplicas
	}).Should(BeNumerically(">=", 1))
	e.breakConfig()
	var to int64
	_, err := fmt.Sscan(original, &to)
	e.g.Expect(err).NotTo(HaveOccurred())
	p = e.propose(e.proposal(tendv1.ActionRollbackWorkload, web, tendv1.Parameters{Rollback: &tendv1.RollbackParameters{ToRevision: to}}))
	e.approveIfAsked(p)
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue()).To(Equal(9999))
	e.noMoreWrites(undone, web)
}
