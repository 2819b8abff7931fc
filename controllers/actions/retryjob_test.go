package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
)

func jobSpec() batchv1.JobSpec {
	spec := podSpec()
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.Containers[0].Image = jobImage
	spec.Containers[0].ReadinessProbe = nil
	return batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: spec}}
}

func (e *env) jobs(g Gomega) []batchv1.Job {
	var list batchv1.JobList
	g.Expect(e.st.Client.List(e.ctx(), &list, client.InNamespace(e.ns))).To(Succeed())
	return list.Items
}

func (e *env) jobFailed(j *batchv1.Job) {
	e.t.Helper()
	e.g.Eventually(func(g Gomega) bool {
		e.get(g, j)
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}).Should(BeTrue(), "job %s never failed", j.Name)
}

func TestRetryJob(t *testing.T) {
	e := newEnv(t)
	// The Job fails while the configuration says so.
	e.setMode("fail")
	migrate := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "migrate"}, Spec: jobSpec()}
	e.create(migrate)
	e.jobFailed(migrate)

	// A Job that has not failed is refused.
	running := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "report"}, Spec: jobSpec()}
	running.Spec.Template.Spec.Containers[0].Image = testImage
	e.create(running)
	p := e.propose(e.proposal(tendv1.ActionRetryJob, running, tendv1.Parameters{}))
	refused := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(refused)).To(ContainElement(actions.ReasonJobNotFailed))
	e.g.Expect(e.jobs(e.g)).To(HaveLen(2))

	// Run again while the cause persists: the new run fails, and a run
	// cannot be undone: Failed.
	p = e.propose(e.proposal(tendv1.ActionRetryJob, migrate, tendv1.Parameters{}))
	failed := e.waitPhase(p, tendv1.PhaseFailed)
	e.g.Expect(failed.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.g.Expect(e.jobs(e.g)).To(HaveLen(3))
	e.noMoreWrites(failed, nil)
	e.g.Expect(e.jobs(e.g)).To(HaveLen(3), "a second run was created")

	// The configuration fixed, it runs once more and completes.
	e.setMode("serve")
	p = e.propose(e.proposal(tendv1.ActionRetryJob, migrate, tendv1.Parameters{}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(e.jobs(e.g)).To(HaveLen(4))
	e.noMoreWrites(done, nil)
	e.g.Expect(e.jobs(e.g)).To(HaveLen(4), "a second run was created")

	// A Job changed since the proposal is decided again.
	e.staleIsDecidedAgain(tendv1.ActionRetryJob, migrate, tendv1.Parameters{}, func() {
		e.g.Eventually(func() error {
			cur := &batchv1.Job{}
			if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(migrate), cur); err != nil {
				return err
			}
			cur.Spec.Parallelism = ptr.To[int32](2)
			return e.st.Client.Update(e.ctx(), cur)
		}).Should(Succeed())
	})
	e.g.Expect(e.jobs(e.g)).To(HaveLen(4))

	// A CronJob's job, now.
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: jobSpec()}}}
	e.create(cron)
	p = e.propose(e.proposal(tendv1.ActionRetryJob, cron, tendv1.Parameters{}))
	e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(e.jobs(e.g)).To(HaveLen(5))
}
