package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// nodePair makes two nodes of group for the test; workloads of the group
// spread over them evenly.
func (e *env) nodePair(group string) (*corev1.Node, *corev1.Node) {
	e.t.Helper()
	one, two := e.node(group+"1", true), e.node(group+"2", true)
	for _, n := range []*corev1.Node{one, two} {
		e.g.Eventually(func() error {
			e.get(e.g, n)
			n.Labels["tend.dev/group"] = group
			return e.st.Client.Update(e.ctx(), n)
		}).Should(Succeed())
		e.schedulerSees(group, n)
	}
	return one, two
}

// schedulerSees waits until the scheduler's own cache has n in group: a
// probe pod that fits only n by the group label is bound to it. Without
// this, a Deployment created right after the label lands can be spread over
// the nodes the scheduler knew of, which may be one.
func (e *env) schedulerSees(group string, n *corev1.Node) {
	e.t.Helper()
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "probe-" + n.Name},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{Name: "probe", Image: testImage}}}}
	e.onTestNodes(&probe.Spec)
	probe.Spec.NodeSelector["tend.dev/group"] = group
	probe.Spec.NodeSelector[corev1.LabelHostname] = n.Labels[corev1.LabelHostname]
	e.create(probe)
	e.g.Eventually(func(g Gomega) string {
		e.get(g, probe)
		return probe.Spec.NodeName
	}).Should(Equal(n.Name), "the scheduler never saw %s in group %s", n.Name, group)
	e.g.Expect(e.st.Client.Delete(e.ctx(), probe, client.GracePeriodSeconds(0))).To(Succeed())
	e.g.Eventually(func() bool {
		return apierrors.IsNotFound(e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(probe), &corev1.Pod{}))
	}).Should(BeTrue())
}

// spread makes a Deployment run on group's nodes, evenly (the node a drain
// cordons drops out of the spread).
func (e *env) spread(group string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		spec := &d.Spec.Template.Spec
		e.onTestNodes(spec)
		spec.NodeSelector["tend.dev/group"] = group
		spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: d.Spec.Selector, NodeTaintsPolicy: ptr.To(corev1.NodeInclusionPolicyHonor),
		}}
	}
}

// uidsOn are the UIDs of app's pods by node.
func (e *env) uidsOn(g Gomega, app string) map[string][]string {
	out := map[string][]string{}
	for _, p := range e.podsOf(g, app) {
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], string(p.UID))
	}
	return out
}

func (e *env) budget(app string, minAvailable int32) {
	e.t.Helper()
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: app},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(minAvailable)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
	e.create(pdb)
	e.g.Eventually(func(g Gomega) {
		e.get(g, pdb)
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
		g.Expect(pdb.Status.ExpectedPods).To(BeNumerically(">", 0))
	}).Should(Succeed())
}

func drainParams() tendv1.Parameters {
	return tendv1.Parameters{Drain: &tendv1.DrainParameters{TimeoutSeconds: ptr.To[int64](120)}}
}

func TestDrainNode(t *testing.T) {
	e := newEnv(t)

	// A human approves; the node is cordoned and its two pods evicted one
	// at a time, each step recorded; verified when the workload is ready
	// on the other node.
	a1, a2 := e.nodePair("a")
	web := e.deployment("web", 4, e.spread("a"))
	e.g.Expect(e.uidsOn(e.g, "web")[a1.Name]).To(HaveLen(2))
	p := e.propose(e.proposal(tendv1.ActionDrainNode, a1, drainParams()))
	e.approve(p)
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Facts.Disruption.PodsAffected).To(Equal(int32(2)))
	e.g.Expect(done.Status.Apply.Steps).To(HaveLen(2))
	for _, s := range done.Status.Apply.Steps {
		e.g.Expect(s.State).To(Equal(tendv1.StepDone), "step %+v", s)
	}
	e.get(e.g, a1)
	e.g.Expect(a1.Spec.Unschedulable).To(BeTrue())
	e.waitReady(web, 4)
	e.g.Expect(e.uidsOn(e.g, "web")[a2.Name]).To(HaveLen(4))
	before := e.uidsOn(e.g, "web")
	e.noMoreWrites(done, a1)
	e.g.Expect(e.uidsOn(e.g, "web")).To(Equal(before), "a pod was evicted again")

	// A node replaced since the proposal is decided again.
	s := e.node("s", true)
	e.staleIsDecidedAgain(tendv1.ActionDrainNode, s, drainParams(), e.recreateNode(s))

	// A drain that a PodDisruptionBudget would refuse: denied, naming the
	// budget; the node is not cordoned and no pod moves.
	b1, _ := e.nodePair("b")
	e.deployment("api", 4, e.spread("b"))
	e.budget("api", 4)
	before = e.uidsOn(e.g, "api")
	p = e.propose(e.proposal(tendv1.ActionDrainNode, b1, drainParams()))
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(denied)).To(ContainElement(policies.ReasonDisruptionBudget))
	e.g.Expect(denied.Status.Decision.Reasons[0].Message).To(ContainSubstring(e.ns + "/api"))
	e.get(e.g, b1)
	e.g.Expect(b1.Spec.Unschedulable).To(BeFalse())
	e.g.Expect(e.uidsOn(e.g, "api")).To(Equal(before))

	// A budget that appears after the decision blocks the first eviction:
	// the drain stops there, records the budget, never violates it, and is
	// undone (uncordoned).
	c1, _ := e.nodePair("c")
	e.deployment("cache", 4, e.spread("c"))
	before = e.uidsOn(e.g, "cache")
	p = e.propose(e.proposal(tendv1.ActionDrainNode, c1, drainParams()))
	e.waitPhase(p, tendv1.PhaseAwaitingApproval)
	e.budget("cache", 4)
	e.approve(p)
	blocked := e.waitPhase(p, tendv1.PhaseRolledBack)
	var stepped []tendv1.ApplyStep
	for _, s := range blocked.Status.Apply.Steps {
		if s.State == tendv1.StepBlocked {
			stepped = append(stepped, s)
		}
	}
	e.g.Expect(stepped).To(HaveLen(1), "steps %+v", blocked.Status.Apply.Steps)
	e.g.Expect(stepped[0].Message).To(ContainSubstring("cache"))
	e.g.Expect(blocked.Status.Message + stepped[0].Message).To(ContainSubstring(e.ns + "/cache"))
	e.g.Expect(e.uidsOn(e.g, "cache")).To(Equal(before), "a pod the budget protects was evicted")
	e.get(e.g, c1)
	e.g.Expect(c1.Spec.Unschedulable).To(BeFalse())
	e.noMoreWrites(blocked, c1)

	// Replacements that cannot start fail the verification: the node is
	// uncordoned again.
	d1, _ := e.nodePair("d")
	e.deployment("batch", 4, e.spread("d"))
	e.breakConfig()
	p = e.propose(e.proposal(tendv1.ActionDrainNode, d1, drainParams()))
	e.approve(p)
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.g.Expect(undone.Status.Apply.Steps).To(HaveLen(2))
	e.get(e.g, d1)
	e.g.Expect(d1.Spec.Unschedulable).To(BeFalse())
	e.noMoreWrites(undone, d1)
}

// What a drain takes down is the ready pods on the node: a workload whose
// pods there are all not ready (as on a node that stopped) loses nothing
// that serves, so a human decides; one whose ready pods all run there would
// lose all of them at once, which the blast-radius guard denies.
func TestDrainNodeCountsReadyPods(t *testing.T) {
	e := newEnv(t)
	n1, n2 := e.node("r1", true), e.node("r2", true)
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
	e.pinnedTo(n1.Name)(web)
	web.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromInt32(9999)
	e.create(web)
	e.g.Eventually(func(g Gomega) int {
		running := 0
		for _, p := range e.podsOf(g, "web") {
			if p.Spec.NodeName == n1.Name && p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running
	}).Should(Equal(2))
	p := e.propose(e.proposal(tendv1.ActionDrainNode, n1, drainParams()))
	asked := e.waitPhase(p, tendv1.PhaseAwaitingApproval)
	e.g.Expect(asked.Status.Decision.Facts.Disruption.PodsAffected).To(Equal(int32(2)))
	e.g.Expect(asked.Status.Decision.Facts.Disruption.Percent).To(Equal(int32(0)))
	e.g.Expect(codes(asked)).NotTo(ContainElement(policies.ReasonBlastRadius))

	e.deployment("api", 2, e.pinnedTo(n2.Name))
	p = e.propose(e.proposal(tendv1.ActionDrainNode, n2, drainParams()))
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(denied.Status.Decision.Facts.Disruption.Percent).To(Equal(int32(100)))
	e.g.Expect(codes(denied)).To(ContainElement(policies.ReasonBlastRadius))
}
