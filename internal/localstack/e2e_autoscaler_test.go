package localstack

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// TestAutoscalerTargetEndToEnd runs the autoscaler-target runbook through
// the whole loop on the local stack: an autoscaler that kept a StatefulSet
// healthy is pointed at one that does not exist; the HPA controller reports
// it cannot scale, the agent proposes pointing it back, the gate approves it
// (the target is missing and the bounds stay), and the controller applies
// and verifies it.
func TestAutoscalerTargetEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e-hpa", 2)
	c := st.Client

	ns := "queue"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	labels := map[string]string{"app": "kv"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kv"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](2),
			ServiceName:         "kv",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: DemoImage + ":1.4",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
				}}},
			},
		},
	}
	g.Expect(c.Create(ctx, sts)).To(Succeed())
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kv"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "kv"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 4,
		},
	}
	g.Expect(c.Create(ctx, hpa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := &appsv1.StatefulSet{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(sts), s)).To(Succeed())
		g.Expect(s.Status.ReadyReplicas).To(Equal(int32(2)))
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hpa), h)).To(Succeed())
		g.Expect(h.Status.ObservedGeneration).NotTo(BeNil())
		// The HPA controller reads the StatefulSet's scale: the status the
		// agent sees it healthy under.
		able := false
		for _, cond := range h.Status.Conditions {
			able = able || (cond.Type == autoscalingv2.AbleToScale && cond.Status == corev1.ConditionTrue)
		}
		g.Expect(able).To(BeTrue())
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	// The fault: the autoscaler now targets a StatefulSet that does not exist.
	g.Eventually(func() error {
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(hpa), h); err != nil {
			return err
		}
		h.Spec.ScaleTargetRef.Name = "kv-old"
		return c.Update(ctx, h)
	}).Should(Succeed())

	var p tendv1.Proposal
	g.Eventually(func(g Gomega) {
		var list tendv1.ProposalList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		p = list.Items[0]
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseSucceeded), "proposal %s: %s", p.Name, p.Status.Message)
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Expect(p.Spec.Action).To(Equal(tendv1.ActionSetAutoscaler))
	g.Expect(p.Spec.Parameters.Autoscaler).To(Equal(&tendv1.AutoscalerParameters{ScaleTargetName: "kv"}))
	g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	g.Expect(p.Status.Decision.Facts.Autoscaler.ScaleTargetExists).To(BeFalse())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hpa), hpa)).To(Succeed())
	g.Expect(hpa.Spec.ScaleTargetRef.Name).To(Equal("kv"))
	g.Expect(*hpa.Spec.MinReplicas).To(Equal(int32(2)))
	g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(4)))
}
