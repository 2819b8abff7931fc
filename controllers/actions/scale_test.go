package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
	"github.com/tendops/tend/policies"
)

func scaleTo(n int32) tendv1.Parameters {
	return tendv1.Parameters{Scale: &tendv1.ScaleParameters{Replicas: n}}
}

func TestScaleWorkload(t *testing.T) {
	e := newEnv(t)
	web := e.deployment("web", 2)

	// Up, automatically; verified when the rollout is complete at 3.
	p := e.propose(e.proposal(tendv1.ActionScaleWorkload, web, scaleTo(3)))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.get(e.g, web)
	e.g.Expect(*web.Spec.Replicas).To(Equal(int32(3)))
	e.g.Expect(done.Status.Apply.UndoState).To(ContainSubstring(`2`))
	e.noMoreWrites(done, web)

	e.staleIsDecidedAgain(tendv1.ActionScaleWorkload, web, scaleTo(4), e.bumpTemplate(web))
	e.waitReady(web, 3)

	// To zero: denied, nothing written.
	p = e.propose(e.proposal(tendv1.ActionScaleWorkload, web, scaleTo(0)))
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(denied)).To(ContainElement("ScaleToZero"))
	e.g.Expect(denied.Status.Apply).To(BeNil())

	// A quota that admits one more pod: the rollout never completes at 5,
	// the verification times out, and the old count is restored.
	e.create(&corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("4")}}})
	p = e.propose(e.proposal(tendv1.ActionScaleWorkload, web, scaleTo(5)))
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.get(e.g, web)
	e.g.Expect(*web.Spec.Replicas).To(Equal(int32(3)))
	e.g.Expect(undone.Status.Verify).NotTo(BeNil())
	e.noMoreWrites(undone, web)

	// An autoscaler owns the count: refused with the reason, nothing written.
	e.create(&autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](3), MaxReplicas: 4,
		},
	})
	p = e.propose(e.proposal(tendv1.ActionScaleWorkload, web, scaleTo(4)))
	refused := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(refused)).To(ContainElement(actions.ReasonAutoscalerOwnsReplicas))
	e.g.Expect(refused.Status.Apply).To(BeNil())
	_ = policies.ReasonTargetKind
}
