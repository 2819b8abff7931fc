package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

// The groups the API server authenticates the test's approvers with (it
// adds system:authenticated to everyone's).
var (
	approversOnly = []string{"tend:approvers", "system:authenticated"}
	sre           = []string{"tend:approvers", "sre", "system:authenticated"}
)

// sreApprovals requires two approvers from the group sre for rollbacks in
// namespaces labelled with the labels it returns.
func sreApprovals(t *testing.T) map[string]string {
	t.Helper()
	createGatePolicy(t, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-sre-approvers"},
		Spec: tendv1.GatePolicySpec{
			Actions: []tendv1.Action{tendv1.ActionRollbackWorkload},
			Rules: []tendv1.GateRule{{
				Name:      "sre-approvers",
				When:      `proposal.namespace.labels[?"tend.test/approvers"].orValue("") == "sre"`,
				Outcome:   tendv1.OutcomeRequireApproval,
				Approvals: &tendv1.ApprovalRequirement{Count: 2, Groups: []string{"sre"}},
				Reason:    "SREApproval",
			}},
		},
	})
	return map[string]string{"tend.test/approvers": "sre"}
}

// waitPolicyReady waits until the running controllers put the GatePolicy
// named name in force.
func waitPolicyReady(g *WithT, c client.Client, name string) {
	g.Eventually(func(g Gomega) bool {
		gp := &tendv1.GatePolicy{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Name: name}, gp)).To(Succeed())
		return meta.IsStatusConditionTrue(gp.Status.Conditions, controllers.ConditionReady)
	}).Should(BeTrue(), "GatePolicy %s is in force", name)
}

// approveIn creates, as an administrator, an Approval of the proposal named
// proposal by approver in the groups given (the admission policy that binds
// both to the caller is tested in internal/localstack).
func approveIn(t *testing.T, c client.Client, ns, proposal, approver string, groups []string, specHash string) *tendv1.Approval {
	t.Helper()
	a := &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "approval-"},
		Spec: tendv1.ApprovalSpec{
			Proposal: proposal, SpecHash: specHash, Decision: tendv1.ApprovalApprove,
			Approver: approver, ApproverGroups: groups, Reason: "checked the evidence",
		},
	}
	if err := c.Create(t.Context(), a); err != nil {
		t.Fatalf("failed to create approval: %v", err)
	}
	return a
}

// approvalStatus waits until the approval's status is counted with a
// message containing msg, and returns the message.
func approvalStatus(t *testing.T, g *WithT, c client.Client, a *tendv1.Approval, counted bool, msg string) string {
	t.Helper()
	out := &tendv1.Approval{}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(a), out)).To(Succeed())
		g.Expect(out.Status.Message).To(ContainSubstring(msg))
		g.Expect(out.Status.Counted).To(Equal(counted))
	}).Should(Succeed(), "approval %s by %s", a.Name, a.Spec.Approver)
	return out.Status.Message
}

// Approvals that must never count are recorded as such, each with its
// reason, and the proposal is approved only by two distinct members of the
// rule's approver group.
func TestApprovalsCountOnlyFromDistinctApproversInRequiredGroups(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, sreApprovals(t))
	h := startTend(t, controllers.ProposalOptions{}, ns)
	waitPolicyReady(g, h.Client, "test-sre-approvers")
	w := newFailingRollout(t, h.Client, ns, "api")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)
	g.Expect(p.Status.Decision.RequiredApprovals).To(Equal(int32(2)))
	g.Expect(p.Status.Decision.ApproverGroups).To(Equal([]string{"sre"}))
	hash := p.Status.SpecHash
	other := p.Spec.DeepCopy()
	other.Rationale = "something else"

	ghost := approveIn(t, h.Client, ns, "ghost", "bob", sre, hash)
	stale := approveIn(t, h.Client, ns, p.Name, "carol", sre, other.Hash())
	self := approveIn(t, h.Client, ns, p.Name, agentUser, sre, hash)
	alice := approveIn(t, h.Client, ns, p.Name, "alice", approversOnly, hash)
	noGroups := approveIn(t, h.Client, ns, p.Name, "erin", nil, hash)

	approvalStatus(t, g, h.Client, ghost, false, "Proposal ghost does not exist")
	approvalStatus(t, g, h.Client, stale, false, "Spec hash is stale: the proposal's current hash is "+hash)
	approvalStatus(t, g, h.Client, self, false, "The approver is the proposer ("+agentUser+")")
	approvalStatus(t, g, h.Client, alice, false,
		"Approver alice is not in the required groups (sre); the approval's groups: tend:approvers, system:authenticated")
	approvalStatus(t, g, h.Client, noGroups, false, "Approver erin is not in the required groups (sre); the approval records no groups")
	g.Eventually(func(g Gomega) []tendv1.ApprovalRecord {
		g.Expect(h.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval))
		g.Expect(p.Status.Message).To(Equal("Awaiting approval: 0 of 2"))
		return p.Status.Approvals
	}).Should(BeEmpty())

	// The proposer's approval is also an Event on it, for kubectl describe.
	g.Eventually(func(g Gomega) []string {
		var evs eventsv1.EventList
		g.Expect(h.Client.List(context.Background(), &evs, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.UID == self.UID {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}).Should(Equal([]string{controllers.ReasonApproverIsProposer}))

	// Bob counts once, however often he approves: his oldest approval (by
	// name, within the one-second resolution of creation times) counts.
	bob := approveIn(t, h.Client, ns, p.Name, "bob", sre, hash)
	again := approveIn(t, h.Client, ns, p.Name, "bob", sre, hash)
	if again.CreationTimestamp.Equal(&bob.CreationTimestamp) && again.Name < bob.Name {
		bob, again = again, bob
	}
	approvalStatus(t, g, h.Client, bob, true, "Counts for proposal "+p.Name)
	approvalStatus(t, g, h.Client, again, false, "Duplicate approver: bob already decided in approval "+bob.Name)
	g.Eventually(func(g Gomega) []string {
		g.Expect(h.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval))
		g.Expect(p.Status.Message).To(Equal("Awaiting approval: 1 of 2"))
		return approvers(p)
	}).Should(Equal([]string{"bob"}))

	// A second member of sre approves it.
	carol := approveIn(t, h.Client, ns, p.Name, "carol", sre, hash)
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	g.Expect(approvers(p)).To(Equal([]string{"bob", "carol"}))
	approvalStatus(t, g, h.Client, carol, true, "Counts for proposal "+p.Name)
	approvalStatus(t, g, h.Client, bob, true, "Counts for proposal "+p.Name)

	// Once decided, the invalid ones keep their reasons and a late one
	// counts for nothing.
	approvalStatus(t, g, h.Client, alice, false, "Approver alice is not in the required groups")
	approvalStatus(t, g, h.Client, self, false, "The approver is the proposer")
	approvalStatus(t, g, h.Client, stale, false, "Spec hash is stale")
	approvalStatus(t, g, h.Client, again, false, "Duplicate approver")
	late := approveIn(t, h.Client, ns, p.Name, "dave", sre, hash)
	approvalStatus(t, g, h.Client, late, false, "Proposal "+p.Name+" was already decided (phase Verifying); approvals no longer count")
}

// An Approval's status follows the state of the world: the proposal it
// names appearing, and the proposal's spec changing under it.
func TestApprovalStatusFollowsItsProposal(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, sreApprovals(t))
	h := startTend(t, controllers.ProposalOptions{}, ns)
	waitPolicyReady(g, h.Client, "test-sre-approvers")
	w := newFailingRollout(t, h.Client, ns, "api")
	p := rollbackProposal(w.Deployment())
	p.GenerateName, p.Name = "", "rollback-api"
	hash := p.Spec.Hash()

	early := approveIn(t, h.Client, ns, p.Name, "bob", sre, hash)
	approvalStatus(t, g, h.Client, early, false, "Proposal rollback-api does not exist")

	p = createProposal(t, h.Client, p)
	approvalStatus(t, g, h.Client, early, true, "Counts for proposal rollback-api")
	g.Eventually(func(g Gomega) []string {
		g.Expect(h.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Message).To(Equal("Awaiting approval: 1 of 2"))
		return approvers(p)
	}).Should(Equal([]string{"bob"}))

	// The proposer tries to edit the spec under bob's approval: the API
	// server refuses, and bob's approval still counts.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Rationale = "Revision 2 fails its readiness probe; revision 1 did not."
		return h.Client.Update(t.Context(), p)
	})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "update: %v", err)
	approvalStatus(t, g, h.Client, early, true, "Counts for proposal rollback-api")
}
