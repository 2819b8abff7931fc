package actions_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
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

// A StatefulSet's rollback returns it to the pod template of the
// ControllerRevision before, which tend recorded as having run healthy; the
// gate approves it on that record, and the rollout completes.
func TestRollbackWorkloadStatefulSet(t *testing.T) {
	e := newEnv(t)
	db := e.statefulSet("db", 2)
	revisions := func(g Gomega) []appsv1.ControllerRevision {
		var list appsv1.ControllerRevisionList
		g.Expect(e.st.Client.List(e.ctx(), &list, client.InNamespace(e.ns))).To(Succeed())
		return list.Items
	}
	// tend records that revision 1 ran healthy.
	e.g.Eventually(func(g Gomega) string {
		crs := revisions(g)
		g.Expect(crs).To(HaveLen(1))
		return crs[0].Annotations[workload.AnnotationRanHealthy]
	}).WithTimeout(verifyTimeout).ShouldNot(BeEmpty())

	// Revision 2 never becomes ready.
	e.g.Eventually(func() error {
		cur := &appsv1.StatefulSet{}
		if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(db), cur); err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromInt32(9999)
		return e.st.Client.Update(e.ctx(), cur)
	}).Should(Succeed())
	e.g.Eventually(func(g Gomega) int32 {
		e.get(g, db)
		return db.Status.UpdatedReplicas
	}).Should(BeNumerically(">=", 1))
	e.g.Consistently(func(g Gomega) []string {
		var recorded []string
		for _, cr := range revisions(g) {
			if cr.Annotations[workload.AnnotationRanHealthy] != "" {
				recorded = append(recorded, fmt.Sprint(cr.Revision))
			}
		}
		return recorded
	}).WithTimeout(2*time.Second).Should(Equal([]string{"1"}), "a revision that never became ready was recorded healthy")

	p := e.propose(e.proposal(tendv1.ActionRollbackWorkload, db, tendv1.Parameters{Rollback: &tendv1.RollbackParameters{}}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove), reasons(done))
	e.g.Expect(done.Status.Decision.Facts.Revision.Current).To(Equal(int64(2)))
	e.g.Expect(done.Status.Decision.Facts.Revision.To).To(Equal(int64(1)))
	e.g.Expect(done.Status.Decision.Facts.Revision.ToHealthy).To(BeTrue())
	e.get(e.g, db)
	e.g.Expect(db.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue()).To(Equal(8080))
	e.waitStatefulSet(db, 2)
	e.g.Eventually(func(g Gomega) string {
		e.get(g, db)
		return db.Status.CurrentRevision
	}).Should(Equal(db.Status.UpdateRevision))
	e.noMoreWrites(done, db)

	// A rollback to a revision that never ran healthy is not automatic.
	p = e.propose(e.proposal(tendv1.ActionRollbackWorkload, db, tendv1.Parameters{Rollback: &tendv1.RollbackParameters{ToRevision: 2}}))
	e.g.Expect(e.waitPhase(p, tendv1.PhaseAwaitingApproval).Status.Decision.Facts.Revision.ToHealthy).To(BeFalse())
}
