package localstack

import (
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// TestCronJobImageEndToEnd runs the cronjob-image runbook through the
// whole loop on the local stack: a CronJob whose run completed is switched
// to an image whose runs fail; the agent proposes the previous image back,
// and the default policy asks a human (it changes what runs). Nothing is
// applied before that.
func TestCronJobImageEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const good, bad = "registry.tend.local/test/report:job", "registry.tend.local/test/report:broken"
	st := startE2E(t, "e2e-cron", 1,
		Fault{Name: "report-completes", Kind: FaultComplete, Seconds: 1, When: `.image == "` + good + `"`},
		Fault{Name: "report-fails", When: `.image == "` + bad + `"`, Reason: "Error", ExitCode: 1},
	)
	c := st.Client

	ns := "batch"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: batchv1.CronJobSpec{
			Schedule:          "* * * * *",
			ConcurrencyPolicy: batchv1.ReplaceConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](1),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "report", Image: good}},
				}},
			}},
		},
	}
	g.Expect(c.Create(ctx, cj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var jobs batchv1.JobList
		g.Expect(c.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
		done := 0
		for _, j := range jobs.Items {
			if j.Status.Succeeded > 0 {
				done++
			}
		}
		g.Expect(done).To(BeNumerically(">=", 1))
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())

	g.Eventually(func() error {
		cur := &batchv1.CronJob{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cj), cur); err != nil {
			return err
		}
		cur.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = bad
		return c.Update(ctx, cur)
	}).Should(Succeed())

	var p tendv1.Proposal
	g.Eventually(func(g Gomega) {
		var list tendv1.ProposalList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		p = list.Items[0]
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval), "proposal %s: %s", p.Name, p.Status.Message)
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Expect(p.Spec.Action).To(Equal(tendv1.ActionPatchWorkload))
	g.Expect(p.Spec.Target.Kind).To(Equal("CronJob"))
	g.Expect(p.Spec.Proposer.Username).To(Equal("system:serviceaccount:" + SystemNamespace + ":" + AgentAccount))
	ops, err := json.Marshal(p.Spec.Parameters.Patch)
	g.Expect(err).NotTo(HaveOccurred())
	path := "/spec/jobTemplate/spec/template/spec/containers/0/image"
	g.Expect(ops).To(MatchJSON(`[{"op":"test","path":"` + path + `","value":"` + bad + `"},{"op":"replace","path":"` + path + `","value":"` + good + `"}]`))
	g.Expect(p.Status.Apply).To(BeNil())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(cj), cj)).To(Succeed())
	g.Expect(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image).To(Equal(bad))
}
