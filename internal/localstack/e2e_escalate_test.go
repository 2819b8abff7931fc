package localstack

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

// TestEscalateEndToEnd: a Deployment that never ran healthy (its first
// revision crash-loops: web 2.x exits 1 without DATABASE_URL) has no
// revision to roll back to and nothing a runbook can fix from typed facts.
// The escalate runbook records a finding on it, with the exit code and
// advice, through the controller as an Event; nothing is proposed.
func TestEscalateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test needs the local control plane")
	}
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e-escalate", 1)
	c := st.Client

	ns := "orders"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	labels := map[string]string{"app": "api"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "api", Image: DemoImage + ":2.3",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
				}}},
			},
		},
	}
	g.Expect(c.Create(ctx, dep)).To(Succeed())

	var found []string
	g.Eventually(func(g Gomega) {
		found = nil
		var evs corev1.EventList
		g.Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		for _, e := range evs.Items {
			if e.Reason == controllers.ReasonFinding && e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == "api" {
				found = append(found, e.Message)
			}
		}
		g.Expect(found).To(ContainElement(And(ContainSubstring("exits with code 1"), ContainSubstring("No runbook has a safe fix"))))
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	t.Logf("Finding on Deployment %s/api: %s", ns, found[0])
	var proposals tendv1.ProposalList
	g.Expect(c.List(ctx, &proposals, client.InNamespace(ns))).To(Succeed())
	g.Expect(proposals.Items).To(BeEmpty(), "a Deployment with no healthy revision got a proposal")
}
