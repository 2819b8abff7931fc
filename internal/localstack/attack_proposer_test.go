package localstack

import (
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Forged proposer, widened target: a user who may create and approve
// proposals only in her own namespace tries to make the agent propose a
// rollback of a workload in kube-system and approve it herself; the agent's
// own token tries to create a proposal without the MCP server. Every
// attempt is refused by the API server, and the workload in kube-system is
// untouched.
func TestAttackForgedProposerAndWidenedTarget(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	shop := attackNamespace(t, st, nil)
	// Mallory may create Proposals and approve them in her namespace only.
	grant(t, st, shop, "mallory", proposalsRule("create", "get", "list", "approve"),
		rbacRule(tendv1.GroupVersion.Group, "approvals", "create", "get"))
	mallory := user(t, st, "mallory")

	// The victim: a healthy workload in kube-system.
	dns := demoDeployment(t, g, st, "kube-system", "dns-"+shop, "1.0", 1)
	t.Cleanup(func() { _ = st.Client.Delete(ctx, dns) })
	waitHealthy(g, st, dns)
	before := deployment(g, st, dns)

	forged := func(ns string, proposer tendv1.Proposer) *tendv1.Proposal {
		return &tendv1.Proposal{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "forged-"},
			Spec: tendv1.ProposalSpec{
				Action: tendv1.ActionRollbackWorkload,
				Target: tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "kube-system", Name: before.Name,
					UID: before.UID, Generation: before.Generation},
				Evidence: tendv1.Evidence{Summary: "crash loop"}, Proposer: proposer,
			},
		}
	}
	agent := tendv1.Proposer{Username: serviceAccountUser(AgentAccount)}
	for _, tc := range []struct {
		name string
		p    *tendv1.Proposal
		want string
	}{
		{"in her namespace, as the agent, at kube-system", forged(shop, agent), "spec.proposer must be the user creating the Proposal"},
		{"in her namespace, as the agent relayed by the MCP server", forged(shop, tendv1.Proposer{Username: agent.Username, Via: serviceAccountUser(MCPAccount)}), "spec.proposer must be the user creating the Proposal"},
		{"in her namespace, as herself, at kube-system", forged(shop, tendv1.Proposer{Username: "mallory"}), "a proposal acts only on its own namespace"},
		{"in kube-system itself", forged("kube-system", tendv1.Proposer{Username: "mallory"}), "forbidden"},
	} {
		err := mallory.Create(ctx, tc.p)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: create = %v, want Forbidden", tc.name, err)
		g.Expect(err.Error()).To(ContainSubstring(tc.want), tc.name)
	}

	// The agent's own token may propose through the MCP server, but not
	// create a Proposal directly, anywhere.
	agentClient := serviceAccountClient(t, st, AgentAccount)
	for _, ns := range []string{shop, "kube-system"} {
		p := forged(ns, agent)
		p.Spec.Target.Namespace = ns
		err := agentClient.Create(ctx, p)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "agent creating a proposal in %s directly = %v, want Forbidden", ns, err)
	}
	// Nor approve one.
	err := mallory.Create(ctx, &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "mallory-approves"},
		Spec:       tendv1.ApprovalSpec{Proposal: "anything", SpecHash: "x", Decision: tendv1.ApprovalApprove, Approver: "mallory"},
	})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory approving in kube-system = %v, want Forbidden", err)

	// The end state: no proposal for the victim anywhere, and it is as it was.
	var all tendv1.ProposalList
	g.Expect(st.Client.List(ctx, &all)).To(Succeed())
	for _, p := range all.Items {
		g.Expect(p.Spec.Target.Name).NotTo(Equal(before.Name), "proposal %s/%s reached the victim", p.Namespace, p.Name)
	}
	g.Consistently(func(g Gomega) {
		after := deployment(g, st, dns)
		g.Expect(after.Generation).To(Equal(before.Generation))
		g.Expect(after.Spec.Template).To(Equal(before.Spec.Template))
	}).Should(Succeed())

	// What she may do is propose, as herself, in her own namespace; a
	// proposal naming her as proposer is hers to make but never hers to
	// approve.
	own := demoDeployment(t, g, st, shop, "web", "1.0", 1)
	p := forged(shop, tendv1.Proposer{Username: "mallory"})
	p.Spec.Target = tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: shop, Name: own.Name, UID: deployment(g, st, own).UID}
	g.Expect(mallory.Create(ctx, p)).To(Succeed())
	g.Expect(p.Spec.Proposer.Username).To(Equal("mallory"))
	g.Expect(st.Client.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
}
