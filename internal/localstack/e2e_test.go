package localstack

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

// binDir is where `make tools` puts the control plane.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEND_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "kwokctl")); err != nil {
		t.Fatalf("control-plane binaries not found in %s (run `make tools`): %v", abs, err)
	}
	return abs
}

// TestLoopEndToEnd runs the whole loop on the local stack: a real control
// plane with kwok nodes, embedded NATS, and tend's components. A rollout
// whose pods crash-loop because of their spec is detected by the agent,
// proposed over MCP, auto-approved by the default policy, applied and
// verified by the controller, and recorded in the audit log.
func TestLoopEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e", 2)
	c := st.Client

	ns := "shop"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	labels := map[string]string{"app": "web"}
	dep := newDemoDeployment(ns, "web", "1.4", 2)
	g.Expect(c.Create(ctx, dep)).To(Succeed())
	healthy := func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(BeNumerically(">=", d.Generation))
		g.Expect(d.Status.ReadyReplicas).To(Equal(int32(2)))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)))
		g.Expect(d.Status.Replicas).To(Equal(int32(2)))
	}
	g.Eventually(healthy).WithTimeout(2 * time.Minute).Should(Succeed())

	// A fault in the spec: release 2.x needs DATABASE_URL and this rollout lacks it.
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), dep)).To(Succeed())
	dep.Spec.Template.Spec.Containers[0].Image = DemoImage + ":2.1"
	g.Expect(c.Update(ctx, dep)).To(Succeed())

	var p tendv1.Proposal
	g.Eventually(func(g Gomega) {
		var list tendv1.ProposalList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		p = list.Items[0]
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseSucceeded), "proposal %s: %s", p.Name, p.Status.Message)
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())

	// The proposal carries the whole record.
	g.Expect(p.Spec.Action).To(Equal(tendv1.ActionRollbackWorkload))
	g.Expect(p.Spec.Proposer.Username).To(Equal("system:serviceaccount:" + SystemNamespace + ":" + AgentAccount))
	g.Expect(p.Spec.Parameters.Rollback).To(Equal(&tendv1.RollbackParameters{FromRevision: 2, ToRevision: 1}))
	g.Expect(p.Spec.Evidence.Telemetry).NotTo(BeEmpty())
	g.Expect(p.Status.Decision).NotTo(BeNil())
	g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	g.Expect(p.Status.Decision.Policy).To(Equal("tend-default"))
	g.Expect(p.Status.Decision.SpecHash).To(Equal(p.Spec.Hash()))
	g.Expect(p.Status.Apply).NotTo(BeNil())
	g.Expect(p.Status.Apply.CompletedAt).NotTo(BeNil())
	g.Expect(p.Status.Apply.UndoState).To(MatchJSON(`{"revision": 2}`))
	g.Expect(p.Status.Verify).NotTo(BeNil())
	g.Expect(p.Status.Verify.Passed).To(Equal(ptr.To(true)))
	for _, check := range p.Status.Verify.Checks {
		g.Expect(check.Passed).To(BeTrue(), "check %s: %s", check.Name, check.Message)
	}

	// The deployment is healthy on the rolled-back template, with no
	// crash-looping pods left.
	g.Eventually(healthy).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), dep)).To(Succeed())
	g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(DemoImage + ":1.4"))
	g.Expect(dep.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "3"))
	var pods corev1.PodList
	g.Expect(c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels))).To(Succeed())
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil {
			continue
		}
		g.Expect(pod.Spec.Containers[0].Image).To(Equal(DemoImage+":1.4"), "pod %s", pod.Name)
	}

	// The audit trail holds every transition, hash-chained.
	recs, err := bus.NewAuditLog(st.JetStream, st.ClusterName).Records(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bus.VerifyChain(recs, st.AuditPublicKey)).To(Succeed())
	var path []string
	for _, r := range recs {
		if r.Object.Name == p.Name {
			path = append(path, r.From+">"+r.To)
		}
	}
	g.Expect(path).To(Equal([]string{"Pending>Approved", "Approved>Applying", "Applying>Verifying", "Verifying>Succeeded"}))

	// And as Kubernetes Events on the proposal.
	g.Eventually(func(g Gomega) {
		var evs corev1.EventList
		g.Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == p.Name {
				reasons[e.Reason] = true
			}
		}
		g.Expect(reasons).To(HaveKey("Verified"))
		g.Expect(reasons).To(HaveKey("AutoApproved"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// startE2E starts the local stack for an end-to-end test: a kwok cluster
// of nodes (and faults), tend's components with a short stable window,
// stopped when the test ends. The attack suite's stack may run in this
// process too, hence SkipControllerNameValidation.
// Under -short it skips the test.
func startE2E(t *testing.T, cluster string, nodes int, faults ...Fault) *Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test needs the local control plane")
	}
	st, err := Start(t.Context(), Options{
		BinDir:                       binDir(t),
		WorkDir:                      t.TempDir(),
		ClusterName:                  cluster,
		Nodes:                        nodes,
		Faults:                       faults,
		Proposal:                     controllers.ProposalOptions{StableWindow: 5 * time.Second, VerifyTimeout: 2 * time.Minute},
		Progress:                     t.Logf,
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatalf("failed to start the local stack: %v", err)
	}
	t.Cleanup(st.Stop)
	return st
}
