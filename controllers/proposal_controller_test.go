package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/controllers/actions"
	"github.com/tendops/tend/policies"
)

// agentUser is the proposer of every test proposal: the maintenance agent's
// service account, as the MCP server records it.
const agentUser = "system:serviceaccount:tend-system:tend-agent"

// fieldManager is the proposal controller's default field manager.
const fieldManager = "tend-proposal-controller"

var protected = map[string]string{"tend.dev/protected": "true"}

// rollbackProposal proposes returning d to its previous revision, pinned to
// d as it is now.
func rollbackProposal(d *appsv1.Deployment) *tendv1.Proposal {
	return &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, GenerateName: "rollback-" + d.Name + "-"},
		Spec: tendv1.ProposalSpec{
			Action: tendv1.ActionRollbackWorkload,
			Target: tendv1.TargetRef{
				APIVersion: "apps/v1", Kind: "Deployment", Namespace: d.Namespace, Name: d.Name,
				UID: d.UID, ResourceVersion: d.ResourceVersion, Generation: d.Generation,
			},
			Parameters: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2}},
			Evidence:   tendv1.Evidence{Summary: "pod of revision 2 in CrashLoopBackOff, 4 restarts"},
			Rationale:  "Revision 1 ran healthy; revision 2 crash-loops since its rollout.",
			Risk:       tendv1.RiskLow,
			Proposer:   tendv1.Proposer{Username: agentUser, Agent: "maintenance"},
		},
	}
}

func createProposal(t *testing.T, c client.Client, p *tendv1.Proposal) *tendv1.Proposal {
	t.Helper()
	if err := c.Create(t.Context(), p); err != nil {
		t.Fatalf("failed to create proposal: %v", err)
	}
	return p
}

// approve creates an Approval of p by approver for the spec hash given, as
// an administrator (the admission policy that binds the approver to the
// caller is tested in internal/localstack).
func approve(t *testing.T, c client.Client, p *tendv1.Proposal, approver, specHash string, decision tendv1.ApprovalDecision) *tendv1.Approval {
	t.Helper()
	a := &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, GenerateName: p.Name + "-"},
		Spec: tendv1.ApprovalSpec{
			Proposal: p.Name, SpecHash: specHash, Decision: decision, Approver: approver,
			Reason: "checked the evidence",
		},
	}
	if err := c.Create(t.Context(), a); err != nil {
		t.Fatalf("failed to create approval: %v", err)
	}
	return a
}

// waitPhase waits until the proposal is in phase want and returns it. It
// stops waiting as soon as the proposal ends in another phase.
func waitPhase(t *testing.T, g *WithT, c client.Client, p *tendv1.Proposal, want tendv1.Phase) *tendv1.Proposal {
	t.Helper()
	out := &tendv1.Proposal{}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(p), out)).To(Succeed())
		if out.Status.Phase != want && out.Status.Phase.Terminal() {
			StopTrying(fmt.Sprintf("proposal ended %s (%s), want %s", out.Status.Phase, out.Status.Message, want)).Now()
		}
		g.Expect(out.Status.Phase).To(Equal(want), out.Status.Message)
	}).Should(Succeed())
	return out
}

// expectTrail waits until the audit log holds exactly want for p.
func (h *harness) expectTrail(t *testing.T, g *WithT, p *tendv1.Proposal, want ...string) {
	t.Helper()
	g.Eventually(func(g Gomega) []string {
		return auditTrail(g, context.Background(), h.Audit, h.AuditKey, string(p.UID))
	}).Should(Equal(want))
}

func condition(p *tendv1.Proposal, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ}
}

func reasonCodes(d *tendv1.Decision) []string {
	if d == nil {
		return nil
	}
	out := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func approvers(p *tendv1.Proposal) []string {
	out := []string{}
	for _, a := range p.Status.Approvals {
		out = append(out, a.Approver)
	}
	return out
}

func TestAutoApprovedRollbackSucceeds(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 5 * time.Minute}, ns)
	w := newFailingRollout(t, h.Client, ns, "web")
	before := w.Deployment()
	p := createProposal(t, h.Client, rollbackProposal(before))

	// tend wrote revision 1's template; the deployment controller rolls it
	// out and the new pod comes up ready.
	waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	w.Rollout(true)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseSucceeded)

	g.Expect(p.Status.SpecHash).To(Equal(p.Spec.Hash()))
	d := p.Status.Decision
	g.Expect(d).NotTo(BeNil())
	g.Expect(d.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	g.Expect(d.Policy).To(Equal("tend-default"))
	g.Expect(d.Rule).To(Equal("rollback-auto"))
	g.Expect(d.SpecHash).To(Equal(p.Status.SpecHash))
	g.Expect(reasonCodes(d)).To(Equal([]string{"SafeRollback"}))
	g.Expect(condition(p, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonAutoApproved))

	a := p.Status.Apply
	g.Expect(a).NotTo(BeNil())
	g.Expect(a.Attempt).NotTo(BeEmpty())
	g.Expect(a.Before).To(Equal("revision 2"))
	g.Expect(a.After).To(Equal("pod template of revision 1"))
	g.Expect(a.UndoState).To(MatchJSON(`{"revision": 2}`))
	g.Expect(a.FieldManager).To(Equal(fieldManager))
	g.Expect(a.CompletedAt).NotTo(BeNil())
	g.Expect(a.Error).To(BeEmpty())
	g.Expect(condition(p, controllers.ConditionApplied).Status).To(Equal(metav1.ConditionTrue))

	v := p.Status.Verify
	g.Expect(v).NotTo(BeNil())
	g.Expect(v.Passed).To(Equal(ptr.To(true)))
	g.Expect(v.CompletedAt).NotTo(BeNil())
	for _, c := range v.Checks {
		g.Expect(c.Passed).To(BeTrue(), "check %s: %s", c.Name, c.Message)
	}
	g.Expect(condition(p, controllers.ConditionVerified).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(p.Status.Rollback).To(BeNil())

	// The Deployment runs revision 1's template, written once by tend.
	dep := w.Deployment()
	g.Expect(dep.Spec.Template).To(Equal(w.Template("v1")))
	g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(w.image("v1")))
	g.Expect(dep.Generation).To(Equal(before.Generation + 1))
	g.Expect(a.ResultingGeneration).To(Equal(dep.Generation))
	g.Expect(dep.Annotations).To(HaveKeyWithValue(actions.AnnotationApplied, string(p.UID)+"/"+a.Attempt))
	g.Expect(dep.ManagedFields).To(ContainElement(HaveField("Manager", fieldManager)))

	h.expectTrail(t, g, p,
		"Pending→Approved", "Approved→Applying", "Applying→Verifying", "Verifying→Succeeded")

	// Every transition is also a Kubernetes Event on the proposal.
	g.Eventually(func(g Gomega) []string {
		var evs eventsv1.EventList
		g.Expect(h.Client.List(context.Background(), &evs, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.UID == p.UID {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}).Should(ContainElements(controllers.ReasonAutoApproved, controllers.ReasonApplying,
		controllers.ReasonVerifying, controllers.ReasonVerified))
}

func TestProtectedNamespaceCountsOnlyBoundApprovalsFromOthers(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 5 * time.Minute}, ns)
	w := newFailingRollout(t, h.Client, ns, "api")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))

	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)
	g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeRequireApproval))
	g.Expect(p.Status.Decision.RequiredApprovals).To(Equal(int32(1)))
	g.Expect(reasonCodes(p.Status.Decision)).To(ContainElement(policies.ReasonProtectedNamespace))
	g.Expect(p.Status.Decision.Rule).To(Equal("rollback-protected-namespace"))
	hash := p.Status.SpecHash
	g.Expect(hash).To(Equal(p.Spec.Hash()))
	g.Expect(p.Status.Apply).To(BeNil())

	// The proposer approving its own proposal, and an approval of some other
	// spec, count for nothing; had either counted, the proposal would have
	// been approved with it on record before alice's approval existed.
	other := p.Spec.DeepCopy()
	other.Rationale = "something else"
	approve(t, h.Client, p, agentUser, hash, tendv1.ApprovalApprove)
	approve(t, h.Client, p, "bob", other.Hash(), tendv1.ApprovalApprove)
	alice := approve(t, h.Client, p, "alice", hash, tendv1.ApprovalApprove)

	p = waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	g.Expect(p.Status.Approvals).To(HaveLen(1))
	g.Expect(p.Status.Approvals[0].Approver).To(Equal("alice"))
	g.Expect(p.Status.Approvals[0].Approval).To(Equal(alice.Name))
	g.Expect(p.Status.Approvals[0].Decision).To(Equal(tendv1.ApprovalApprove))
	g.Expect(condition(p, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonApproved))

	w.Rollout(true)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseSucceeded)
	g.Expect(w.Deployment().Spec.Template).To(Equal(w.Template("v1")))
	h.expectTrail(t, g, p,
		"Pending→AwaitingApproval", "AwaitingApproval→Approved", "Approved→Applying",
		"Applying→Verifying", "Verifying→Succeeded")
}

func TestApproverDenialEndsProposal(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{}, ns)
	w := newFailingRollout(t, h.Client, ns, "api")
	before := w.Deployment()
	p := createProposal(t, h.Client, rollbackProposal(before))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)

	approve(t, h.Client, p, "alice", p.Status.SpecHash, tendv1.ApprovalDeny)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseDenied)
	g.Expect(condition(p, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonRejected))
	g.Expect(p.Status.Apply).To(BeNil())
	g.Expect(w.Deployment().Spec.Template).To(Equal(before.Spec.Template))
	h.expectTrail(t, g, p, "Pending→AwaitingApproval", "AwaitingApproval→Denied")
}

func TestDecidedSpecIsImmutable(t *testing.T) {
	g := newG(t)
	// Two approvers are needed here, so that an approval can be on record
	// while the proposal still waits.
	createGatePolicy(t, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-two-approvers"},
		Spec: tendv1.GatePolicySpec{
			Actions: []tendv1.Action{tendv1.ActionRollbackWorkload},
			Rules: []tendv1.GateRule{{
				Name:      "two-approvers",
				When:      `proposal.namespace.labels[?"tend.test/approvers"].orValue("") == "two"`,
				Outcome:   tendv1.OutcomeRequireApproval,
				Approvals: &tendv1.ApprovalRequirement{Count: 2},
				Reason:    "TwoApprovers",
			}},
		},
	})
	ns := newNamespace(t, map[string]string{"tend.dev/protected": "true", "tend.test/approvers": "two"})
	h := startTend(t, controllers.ProposalOptions{}, ns)
	g.Eventually(func(g Gomega) bool {
		gp := &tendv1.GatePolicy{}
		g.Expect(h.Client.Get(context.Background(), client.ObjectKey{Name: "test-two-approvers"}, gp)).To(Succeed())
		return meta.IsStatusConditionTrue(gp.Status.Conditions, controllers.ConditionReady)
	}).Should(BeTrue(), "the two-approver policy is in force")

	w := newFailingRollout(t, h.Client, ns, "api")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)
	g.Expect(p.Status.Decision.RequiredApprovals).To(Equal(int32(2)))
	oldHash := p.Status.SpecHash

	approve(t, h.Client, p, "bob", oldHash, tendv1.ApprovalApprove)
	g.Eventually(func(g Gomega) []string {
		g.Expect(h.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		return approvers(p)
	}).Should(Equal([]string{"bob"}))
	g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval))
	g.Expect(p.Status.Message).To(Equal("Awaiting approval: 1 of 2"))

	// The proposer tries to edit the spec it asked bob to approve: the API
	// server refuses; a decided change stays the change.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Rationale = "Revision 2 fails its readiness probe; revision 1 did not."
		return h.Client.Update(t.Context(), p)
	})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "update: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec is immutable"))
	g.Expect(h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p)).To(Succeed())
	g.Expect(p.Spec.Hash()).To(Equal(oldHash))
	g.Expect(p.Status.DecidedSpec).NotTo(BeNil())
	g.Expect(p.Status.DecidedSpec.Hash()).To(Equal(oldHash))

	// An approval of any other hash does not count; carol's of the decided
	// one makes two.
	approve(t, h.Client, p, "eve", "0000", tendv1.ApprovalApprove)
	approve(t, h.Client, p, "carol", oldHash, tendv1.ApprovalApprove)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	g.Expect(approvers(p)).To(Equal([]string{"bob", "carol"}))
	g.Expect(w.Deployment().Spec.Template).To(Equal(w.Template("v1")))
	h.expectTrail(t, g, p, "Pending→AwaitingApproval", "AwaitingApproval→Approved", "Approved→Applying", "Applying→Verifying")
}

func TestInvalidProposalsAreDenied(t *testing.T) {
	ns := newNamespace(t, nil)
	h := startTend(t, controllers.ProposalOptions{}, ns)

	t.Run("target is not pinned", func(t *testing.T) {
		g := newG(t)
		p := rollbackProposal(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"}})
		p.Spec.Target.UID = ""
		err := h.Client.Create(t.Context(), p)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create: %v", err)
		g.Expect(err.Error()).To(ContainSubstring("spec.target.uid"))
	})

	t.Run("target does not exist", func(t *testing.T) {
		g := newG(t)
		p := rollbackProposal(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost", UID: "6f1d2c3b-0000-4000-8000-000000000000"}})
		p.Spec.Target.ResourceVersion, p.Spec.Target.Generation = "", 0
		createProposal(t, h.Client, p)
		p = waitPhase(t, g, h.Client, p, tendv1.PhaseDenied)
		g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeDeny))
		g.Expect(reasonCodes(p.Status.Decision)).To(HaveExactElements(policies.ReasonTargetNotFound))
		g.Expect(p.Status.Apply).To(BeNil())
		err := h.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ghost"}, &appsv1.Deployment{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "tend created the deployment: %v", err)
		h.expectTrail(t, g, p, "Pending→Denied")
	})

	t.Run("node action without a runtime shim client", func(t *testing.T) {
		g := newG(t)
		w := newFailingRollout(t, h.Client, ns, "scaled")
		before := w.Deployment()
		p := rollbackProposal(before)
		p.Spec.Action = tendv1.ActionRestartContainer
		p.Spec.Parameters = tendv1.Parameters{Container: &tendv1.ContainerParameters{Container: "app"}}
		createProposal(t, h.Client, p)
		p = waitPhase(t, g, h.Client, p, tendv1.PhaseDenied)
		g.Expect(reasonCodes(p.Status.Decision)).To(HaveExactElements("NoRuntimeShim"))
		g.Expect(p.Status.Apply).To(BeNil())
		after := w.Deployment()
		g.Expect(after.Spec.Replicas).To(Equal(ptr.To(int32(1))))
		g.Expect(after.Generation).To(Equal(before.Generation))
		h.expectTrail(t, g, p, "Pending→Denied")
	})

	t.Run("action outside the catalogue", func(t *testing.T) {
		g := newG(t)
		p := rollbackProposal(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})
		p.Name, p.GenerateName = "delete-everything", ""
		p.Spec.Action = "DeleteEverything"
		err := h.Client.Create(t.Context(), p)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create: %v", err)
		g.Expect(err.Error()).To(And(ContainSubstring("spec.action"), ContainSubstring("DeleteEverything")))
		err = h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), &tendv1.Proposal{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get: %v", err)
	})
}

func TestTargetChangedBeforeApprovalIsDenied(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{}, ns)
	w := newFailingRollout(t, h.Client, ns, "api")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)

	// Someone ships a fix (a new spec generation) while the proposal waits.
	w.Update(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = w.image("v3") })
	changed := w.Deployment()
	g.Expect(changed.Generation).To(BeNumerically(">", p.Spec.Target.Generation))

	approve(t, h.Client, p, "alice", p.Status.SpecHash, tendv1.ApprovalApprove)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseDenied)
	g.Expect(reasonCodes(p.Status.Decision)).To(HaveExactElements(controllers.ReasonStale))
	g.Expect(p.Status.Apply).To(BeNil())

	after := w.Deployment()
	g.Expect(after.Generation).To(Equal(changed.Generation))
	g.Expect(after.Spec.Template).To(Equal(changed.Spec.Template))
	g.Expect(after.Annotations).NotTo(HaveKey(actions.AnnotationApplied))
	h.expectTrail(t, g, p, "Pending→AwaitingApproval", "AwaitingApproval→Approved", "Approved→Denied")
}

func TestApplyingSupersedesOtherOpenProposalsForTheTarget(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 5 * time.Minute}, ns)
	w := newFailingRollout(t, h.Client, ns, "api")
	first := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	first = waitPhase(t, g, h.Client, first, tendv1.PhaseAwaitingApproval)
	// CreationTimestamp has a resolution of a second: the second proposal is
	// made in a later second than the first one's apply starts.
	time.Sleep(1100 * time.Millisecond)
	second := rollbackProposal(w.Deployment())
	second.Spec.Rationale = "Another agent's view of the same problem."
	second = createProposal(t, h.Client, second)
	second = waitPhase(t, g, h.Client, second, tendv1.PhaseAwaitingApproval)
	other := rollbackProposal(w.Deployment())
	other.Spec.Target.Name = "another-app"
	other = createProposal(t, h.Client, other)
	other = waitPhase(t, g, h.Client, other, tendv1.PhaseDenied) // no such target; not affected either way

	time.Sleep(1100 * time.Millisecond)
	approve(t, h.Client, first, "alice", first.Status.SpecHash, tendv1.ApprovalApprove)
	first = waitPhase(t, g, h.Client, first, tendv1.PhaseVerifying)
	g.Expect(first.Status.Apply).NotTo(BeNil())

	second = waitPhase(t, g, h.Client, second, tendv1.PhaseSuperseded)
	g.Expect(second.Status.SupersededBy).To(Equal(first.Name))
	g.Expect(second.Status.Apply).To(BeNil())
	g.Expect(condition(second, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonSuperseded))
	h.expectTrail(t, g, second, "Pending→AwaitingApproval", "AwaitingApproval→Superseded")

	// An approval arriving afterwards changes nothing.
	approve(t, h.Client, second, "bob", second.Status.SpecHash, tendv1.ApprovalApprove)
	g.Consistently(func(g Gomega) tendv1.Phase {
		g.Expect(h.Client.Get(context.Background(), client.ObjectKeyFromObject(second), second)).To(Succeed())
		return second.Status.Phase
	}, 2*time.Second).Should(Equal(tendv1.PhaseSuperseded))
}

func TestFailedVerificationRollsBack(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 4 * time.Second}, ns)
	w := newFailingRollout(t, h.Client, ns, "web")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))

	// Revision 1's template rolls out as revision 3, but its pod never gets
	// ready either.
	waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	w.Rollout(false)
	// After the deadline tend writes the undo; the deployment controller then
	// observes it (revision 2's pod still crash-loops: the undo restores the
	// spec, not health), and tend verifies that.
	g.Eventually(func(g Gomega) {
		g.Expect(h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Rollback).NotTo(BeNil())
		g.Expect(p.Status.Rollback.CompletedAt).NotTo(BeNil())
	}).Should(Succeed())
	w.Rollout(false)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseRolledBack)
	g.Expect(p.Status.RollbackVerify).NotTo(BeNil())
	g.Expect(p.Status.RollbackVerify.Passed).To(Equal(ptr.To(true)))

	v := p.Status.Verify
	g.Expect(v.Passed).To(Equal(ptr.To(false)))
	g.Expect(v.CompletedAt).NotTo(BeNil())
	g.Expect(condition(p, controllers.ConditionVerified).Reason).To(Equal(controllers.ReasonVerifyFailed))

	rb := p.Status.Rollback
	g.Expect(rb).NotTo(BeNil())
	g.Expect(rb.Attempt).NotTo(BeEmpty())
	g.Expect(rb.Attempt).NotTo(Equal(p.Status.Apply.Attempt))
	g.Expect(rb.CompletedAt).NotTo(BeNil())
	g.Expect(rb.Error).To(BeEmpty())
	g.Expect(rb.Before).To(Equal("revision 3"))
	g.Expect(rb.After).To(Equal("pod template of revision 2"))

	// The undo put revision 2's template back.
	dep := w.Deployment()
	g.Expect(dep.Spec.Template).To(Equal(w.Template("v2")))
	g.Expect(dep.Annotations).To(HaveKeyWithValue(actions.AnnotationApplied, string(p.UID)+"/"+rb.Attempt))
	g.Expect(rb.ResultingGeneration).To(Equal(dep.Generation))
	h.expectTrail(t, g, p,
		"Pending→Approved", "Approved→Applying", "Applying→Verifying", "Verifying→RolledBack")
}

func TestUnapprovedProposalExpires(t *testing.T) {
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{}, ns)
	w := newFailingRollout(t, h.Client, ns, "api")
	before := w.Deployment()

	t.Run("expiry already past", func(t *testing.T) {
		g := newG(t)
		p := rollbackProposal(before)
		p.Spec.ExpiresAt = ptr.To(metav1.NewTime(time.Now().Add(-time.Minute)))
		createProposal(t, h.Client, p)
		p = waitPhase(t, g, h.Client, p, tendv1.PhaseExpired)
		g.Expect(condition(p, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonExpired))
		g.Expect(p.Status.Apply).To(BeNil())
		h.expectTrail(t, g, p, "Pending→Expired")
	})

	t.Run("expiry while awaiting approval", func(t *testing.T) {
		g := newG(t)
		p := rollbackProposal(before)
		p.Spec.ExpiresAt = ptr.To(metav1.NewTime(time.Now().Add(3 * time.Second)))
		createProposal(t, h.Client, p)
		p = waitPhase(t, g, h.Client, p, tendv1.PhaseExpired)
		g.Expect(condition(p, controllers.ConditionApproved).Reason).To(Equal(controllers.ReasonExpired))
		g.Expect(p.Status.Apply).To(BeNil())
	})

	after := w.Deployment()
	if after.Generation != before.Generation {
		t.Errorf("deployment generation moved from %d to %d", before.Generation, after.Generation)
	}
}

func TestInvalidGatePolicyFailsClosed(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	h := startTend(t, controllers.ProposalOptions{}, ns)
	createGatePolicy(t, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-broken"},
		Spec: tendv1.GatePolicySpec{
			Actions: []tendv1.Action{tendv1.ActionRollbackWorkload},
			Rules: []tendv1.GateRule{{
				Name:    "typo",
				When:    `proposal.action == "RollbackWorkload" && proposal.namespace.lables["team"] == "web"`,
				Outcome: tendv1.OutcomeAutoApprove,
				Reason:  "Typo",
			}},
		},
	})

	var ready metav1.Condition
	g.Eventually(func(g Gomega) string {
		gp := &tendv1.GatePolicy{}
		g.Expect(h.Client.Get(context.Background(), client.ObjectKey{Name: "test-broken"}, gp)).To(Succeed())
		c := meta.FindStatusCondition(gp.Status.Conditions, controllers.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		ready = *c
		return c.Reason
	}).Should(Equal(controllers.ReasonInvalid))
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Message).To(ContainSubstring("lables"))

	// The valid default policy is reported in force alongside.
	def := &tendv1.GatePolicy{}
	g.Expect(h.Client.Get(t.Context(), client.ObjectKey{Name: "tend-default"}, def)).To(Succeed())
	g.Expect(meta.IsStatusConditionTrue(def.Status.Conditions, controllers.ConditionReady)).To(BeTrue())

	// A rollback the default policy alone would auto-approve is denied.
	w := newFailingRollout(t, h.Client, ns, "web")
	before := w.Deployment()
	p := createProposal(t, h.Client, rollbackProposal(before))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseDenied)
	g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeDeny))
	g.Expect(p.Status.Decision.Policy).To(Equal("test-broken"))
	g.Expect(reasonCodes(p.Status.Decision)).To(HaveExactElements(policies.ReasonPolicyInvalid, "SafeRollback"))
	g.Expect(p.Status.Apply).To(BeNil())
	g.Expect(w.Deployment().Generation).To(Equal(before.Generation))
}

// A controller that crashed after writing the change but before recording
// it resumes from the attempt token: it finds its marker on the target and
// does not write again.
func TestInterruptedApplyIsNotRepeated(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	c := kube(t)
	w := newFailingRollout(t, c, ns, "web")
	p := createProposal(t, c, rollbackProposal(w.Deployment()))

	// The state the crashed controller left: Applying recorded with attempt
	// "a1", and the Deployment already carrying revision 1's template with
	// the marker of a1.
	p.Status = tendv1.ProposalStatus{
		Phase:    tendv1.PhaseApplying,
		SpecHash: p.Spec.Hash(),
		Decision: &tendv1.Decision{Outcome: tendv1.OutcomeAutoApprove, Policy: "tend-default", Rule: "rollback-auto",
			SpecHash: p.Spec.Hash(), DecidedAt: metav1.Now()},
		Apply: &tendv1.ApplyRecord{Attempt: "a1", StartedAt: metav1.Now(), FieldManager: fieldManager,
			Before: "revision 2", After: "pod template of revision 1", UndoState: `{"revision":2}`},
	}
	g.Expect(c.Status().Update(t.Context(), p)).To(Succeed())
	v1 := w.Template("v1")
	w.Update(func(d *appsv1.Deployment) {
		d.Spec.Template = v1
		metav1.SetMetaDataAnnotation(&d.ObjectMeta, actions.AnnotationApplied, string(p.UID)+"/a1")
	})
	written := w.Deployment()

	h := startTend(t, controllers.ProposalOptions{}, ns)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	g.Expect(p.Status.Apply.Attempt).To(Equal("a1"))
	g.Expect(p.Status.Apply.CompletedAt).NotTo(BeNil())
	g.Expect(p.Status.Apply.ResultingGeneration).To(Equal(written.Generation))

	after := w.Deployment()
	g.Expect(after.Generation).To(Equal(written.Generation))
	g.Expect(after.ResourceVersion).To(Equal(written.ResourceVersion))
	h.expectTrail(t, g, p, "Applying→Verifying")
}
