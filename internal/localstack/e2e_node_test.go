package localstack

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// TestNodePressureEndToEnd runs the node-health runbook through the whole
// loop on the local stack: the node that runs all four pods of a Deployment
// reports DiskPressure while the only other node is a cordoned spare. The
// agent uncordons the spare, cordons the node and evicts its pods one at a
// time; the gate approves each step by itself (four evictions are more than
// the namespace's applies in flight, so they must follow one another, not
// pile up), and every pod ends on the spare, ready.
func TestNodePressureEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e-node", 2)
	c := st.Client

	var nodes corev1.NodeList
	g.Eventually(func(g Gomega) {
		g.Expect(c.List(ctx, &nodes)).To(Succeed())
		g.Expect(nodes.Items).To(HaveLen(2))
	}).WithTimeout(time.Minute).Should(Succeed())
	pressured, spare := nodes.Items[0].Name, nodes.Items[1].Name
	setNode := func(name string, edit func(*corev1.Node), status bool) {
		g.Eventually(func() error {
			n := &corev1.Node{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
				return err
			}
			edit(n)
			if status {
				return c.Status().Update(ctx, n)
			}
			return c.Update(ctx, n)
		}).Should(Succeed())
	}
	setNode(spare, func(n *corev1.Node) { n.Spec.Unschedulable = true }, false)

	ns := "shop"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	labels := map[string]string{"app": "web"}
	dep := newDemoDeployment(ns, "web", "1.4", 4)
	g.Expect(c.Create(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), d)).To(Succeed())
		g.Expect(d.Status.ReadyReplicas).To(Equal(int32(4)))
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	// The fault: the node running every pod reports DiskPressure.
	setNode(pressured, func(n *corev1.Node) {
		now := metav1.Now()
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue,
			LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletHasDiskPressure",
		})
	}, true)

	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels))).To(Succeed())
		ready := 0
		for _, p := range pods.Items {
			g.Expect(p.Spec.NodeName).To(Equal(spare), "pod %s", p.Name)
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		g.Expect(ready).To(Equal(4))
	}).WithTimeout(4 * time.Minute).WithPolling(time.Second).Should(Succeed())

	// Every step was approved by the gate and succeeded: none waits for a
	// human because the evictions piled up.
	g.Eventually(func(g Gomega) {
		var list tendv1.ProposalList
		g.Expect(c.List(ctx, &list)).To(Succeed())
		count := map[tendv1.Action]int{}
		for _, p := range list.Items {
			g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseSucceeded), "proposal %s/%s (%s): %s", p.Namespace, p.Name, p.Spec.Action, p.Status.Message)
			g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove), "proposal %s", p.Name)
			count[p.Spec.Action]++
		}
		g.Expect(count).To(Equal(map[tendv1.Action]int{
			tendv1.ActionUncordonNode: 1, tendv1.ActionCordonNode: 1, tendv1.ActionEvictPod: 4,
		}))
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
}
