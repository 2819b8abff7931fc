package localstack

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e-escalate", 1)
	c := st.Client

	ns := "orders"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	dep := newDemoDeployment(ns, "api", "2.3", 2)
	g.Expect(c.Create(ctx, dep)).To(Succeed())

	var found []string
	g.Eventually(func(g Gomega) {
		found = findingEvents(g, c, ns, "Deployment", "api")
		g.Expect(found).To(ContainElement(And(ContainSubstring("exits with code 1"), ContainSubstring("No runbook has a safe fix"))))
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	t.Logf("Finding on Deployment %s/api: %s", ns, found[0])
	expectNoProposals(g, c, ns, "a Deployment with no healthy revision got a proposal")
}

// findingEvents are the messages of the agents' finding Events on the
// object kind/name in ns, as the controller recorded them.
func findingEvents(g Gomega, c client.Client, ns, kind, name string) []string {
	var evs corev1.EventList
	g.Expect(c.List(context.Background(), &evs, client.InNamespace(ns))).To(Succeed())
	var found []string
	for _, e := range evs.Items {
		if e.Reason == controllers.ReasonFinding && e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			found = append(found, e.Message)
		}
	}
	return found
}

// expectNoProposals checks that nothing was proposed in ns.
func expectNoProposals(g Gomega, c client.Client, ns string, why ...any) {
	var proposals tendv1.ProposalList
	g.Expect(c.List(context.Background(), &proposals, client.InNamespace(ns))).To(Succeed())
	g.Expect(proposals.Items).To(BeEmpty(), why...)
}
