package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
)

func bounds(lo, hi int32) tendv1.Parameters {
	a := &tendv1.AutoscalerParameters{}
	if lo > 0 {
		a.MinReplicas = ptr.To(lo)
	}
	if hi > 0 {
		a.MaxReplicas = ptr.To(hi)
	}
	return tendv1.Parameters{Autoscaler: a}
}

func TestSetAutoscaler(t *testing.T) {
	e := newEnv(t)
	web := e.deployment("web", 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 4,
		},
	}
	e.create(hpa)
	e.g.Eventually(func(g Gomega) {
		e.get(g, hpa)
		g.Expect(hpa.Status.ObservedGeneration).NotTo(BeNil())
	}).Should(Succeed())

	// A higher maximum: automatic; verified once the autoscaler observed it.
	p := e.propose(e.proposal(tendv1.ActionSetAutoscaler, hpa, bounds(0, 6)))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.g.Expect(done.Status.Decision.Facts.Autoscaler.MaxReplicas).To(Equal(int32(4)))
	e.get(e.g, hpa)
	e.g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(6)))
	e.noMoreWrites(done, hpa)

	e.staleIsDecidedAgain(tendv1.ActionSetAutoscaler, hpa, bounds(0, 8), func() {
		e.g.Eventually(func() error {
			cur := &autoscalingv2.HorizontalPodAutoscaler{}
			if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(hpa), cur); err != nil {
				return err
			}
			cur.Spec.MaxReplicas = 7
			return e.st.Client.Update(e.ctx(), cur)
		}).Should(Succeed())
	})

	// A higher minimum the namespace's quota cannot hold: the autoscaler
	// never gets within its bounds, and the old ones come back.
	e.create(&corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}}})
	p = e.propose(e.proposal(tendv1.ActionSetAutoscaler, hpa, bounds(4, 0)))
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.get(e.g, hpa)
	e.g.Expect(*hpa.Spec.MinReplicas).To(Equal(int32(2)))
	e.g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(7)))
	e.noMoreWrites(undone, hpa)
	_ = web
}

// An autoscaler pointed at a workload that does not exist is pointed back
// at one that does, automatically; a workload whose replicas its bounds
// would change at once, or one another autoscaler scales, is refused.
func TestSetAutoscalerScaleTarget(t *testing.T) {
	e := newEnv(t)
	e.deployment("web", 2)
	e.deployment("big", 3)
	e.deployment("spare", 1)
	hpa := func(name, target string) *autoscalingv2.HorizontalPodAutoscaler {
		h := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
				MinReplicas:    ptr.To[int32](1), MaxReplicas: 2,
			},
		}
		e.create(h)
		return h
	}
	lost := hpa("web", "web-v2")
	retarget := func(name string) tendv1.Parameters {
		return tendv1.Parameters{Autoscaler: &tendv1.AutoscalerParameters{ScaleTargetName: name}}
	}

	// big runs 3 replicas, above the bounds 1-2: refused.
	p := e.propose(e.proposal(tendv1.ActionSetAutoscaler, lost, retarget("big")))
	e.g.Expect(codes(e.waitPhase(p, tendv1.PhaseDenied))).To(ContainElement(actions.ReasonOutsideBounds))
	// No such workload: refused.
	p = e.propose(e.proposal(tendv1.ActionSetAutoscaler, lost, retarget("web-v3")))
	e.g.Expect(codes(e.waitPhase(p, tendv1.PhaseDenied))).To(ContainElement(actions.ReasonScaleTargetNotFound))

	p = e.propose(e.proposal(tendv1.ActionSetAutoscaler, lost, retarget("web")))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove), reasons(done))
	e.g.Expect(done.Status.Decision.Facts.Autoscaler.ScaleTarget).To(Equal("web-v2"))
	e.g.Expect(done.Status.Decision.Facts.Autoscaler.ScaleTargetExists).To(BeFalse())
	e.get(e.g, lost)
	e.g.Expect(lost.Spec.ScaleTargetRef.Name).To(Equal("web"))
	e.noMoreWrites(done, lost)

	// Another autoscaler may not take web over; and moving one away from a
	// workload that exists is not automatic.
	other := hpa("other", "web-old")
	p = e.propose(e.proposal(tendv1.ActionSetAutoscaler, other, retarget("web")))
	e.g.Expect(codes(e.waitPhase(p, tendv1.PhaseDenied))).To(ContainElement(actions.ReasonAutoscalerOwnsReplicas))
	p = e.propose(e.proposal(tendv1.ActionSetAutoscaler, lost, retarget("spare")))
	e.g.Expect(e.waitPhase(p, tendv1.PhaseAwaitingApproval).Status.Decision.Facts.Autoscaler.ScaleTargetExists).To(BeTrue())
}
