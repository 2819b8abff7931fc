package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
)

func memoryLimit(q string) tendv1.Parameters {
	return tendv1.Parameters{Resources: &tendv1.ResourcesParameters{Container: "app",
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}}}
}

func TestSetResources(t *testing.T) {
	e := newEnv(t)
	e.create(&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "limits"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
			Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}}})
	web := e.deployment("web", 2)

	// Raised: automatic, verified once the rollout completes with no OOM.
	p := e.propose(e.proposal(tendv1.ActionSetResources, web, memoryLimit("128Mi")))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.g.Expect(done.Status.Decision.Facts.Resources.MemoryLimitBytes).To(Equal(int64(64 << 20)))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("128Mi"))
	e.g.Expect(web.Spec.Template.Spec.Containers[0].Resources.Requests.Memory().String()).To(Equal("32Mi"))
	e.noMoreWrites(done, web)

	e.staleIsDecidedAgain(tendv1.ActionSetResources, web, memoryLimit("256Mi"), e.bumpTemplate(web))
	e.waitReady(web, 2)

	// Above the LimitRange: refused with the reason, nothing written.
	p = e.propose(e.proposal(tendv1.ActionSetResources, web, memoryLimit("2Gi")))
	refused := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(refused)).To(ContainElement(actions.ReasonLimitRange))
	e.g.Expect(refused.Status.Apply).To(BeNil())

	// A limit below the request: refused, nothing written.
	p = e.propose(e.proposal(tendv1.ActionSetResources, web, memoryLimit("16Mi")))
	refused = e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(refused)).To(ContainElement(actions.ReasonRequestAboveLimit))

	// Lowered: a human approves; the new pods are OOMKilled, the
	// verification fails and the previous values come back.
	lower := memoryLimit("16Mi")
	lower.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}
	p = e.propose(e.proposal(tendv1.ActionSetResources, web, lower))
	e.approve(p)
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.g.Expect(codes(undone)).To(ContainElement("LowersMemory"))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("128Mi"))
	e.noMoreWrites(undone, web)
	e.waitReady(web, 2)
}

// A template that sets no memory limit runs under its namespace's
// LimitRange default: that is the limit in force, so raising it (within
// fourfold) is not limiting the container for the first time.
func TestSetResourcesUnderLimitRangeDefault(t *testing.T) {
	e := newEnv(t)
	e.create(&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "defaults"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
			Default: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("96Mi")}}}}})
	web := e.deployment("web", 2, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	})
	p := e.propose(e.proposal(tendv1.ActionSetResources, web, memoryLimit("384Mi")))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove), reasons(done))
	e.g.Expect(done.Status.Decision.Facts.Resources.MemoryLimitBytes).To(Equal(int64(96 << 20)))
	e.g.Expect(done.Status.Decision.Facts.Resources.MemoryRequestBytes).To(Equal(int64(96 << 20)))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("384Mi"))

	// More than fourfold the limit in force still needs a human.
	p = e.propose(e.proposal(tendv1.ActionSetResources, web, memoryLimit("2Gi")))
	e.g.Expect(e.waitPhase(p, tendv1.PhaseAwaitingApproval).Status.Decision.Facts.Resources.MemoryLimitBytes).To(Equal(int64(384 << 20)))
}
