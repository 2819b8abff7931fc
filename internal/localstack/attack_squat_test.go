package localstack

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// Fingerprint squatting: before the agent proposes, someone who may create
// proposals makes one carrying the agent's fingerprint, label and all, for
// another target. The agent's real proposal is still made and carried out;
// the squatter's counts for nothing but itself.
func TestAttackFingerprintSquatting(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	ns := attackNamespace(t, st, nil)
	grant(t, st, ns, "squatter", proposalsRule("create", "get", "list"))
	squatter := user(t, st, "squatter")

	web := demoDeployment(t, g, st, ns, "web", "1.0", 2)
	decoy := demoDeployment(t, g, st, ns, "decoy", "1.0", 1)
	waitHealthy(g, st, web)
	waitHealthy(g, st, decoy)

	// The fingerprint the agent's bad-rollout runbook gives this fault.
	fp := "bad-rollout/" + ns + "/web/revision-2"
	label := wire.Digest(serviceAccountUser(AgentAccount) + "\n" + fp)
	squat := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squat", Labels: map[string]string{mcp.LabelFingerprint: label}},
		Spec: tendv1.ProposalSpec{
			Action:      tendv1.ActionRollbackWorkload,
			Target:      tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "decoy", UID: deployment(g, st, decoy).UID},
			Parameters:  tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2, ToRevision: 1}},
			Evidence:    tendv1.Evidence{Summary: "squatting"},
			Proposer:    tendv1.Proposer{Username: "squatter"},
			Fingerprint: fp,
		},
	}
	g.Expect(squatter.Create(ctx, squat)).To(Succeed())

	// The fault, and the agent's proposal for it, with that fingerprint.
	setImage(t, g, st, web, "2.0")
	tools := agentTools(t, st)
	var res wire.ProposeResult
	g.Expect(tools.Call(ctx, wire.ToolProposeRollback, wire.ProposeRollbackArgs{
		Namespace: ns, Name: "web", FromRevision: 2, ToRevision: 1,
		Common: wire.Common{Summary: "revision 2 crash-loops", Fingerprint: fp},
	}, &res)).To(Succeed())
	g.Expect(res.Name).NotTo(Equal("squat"))

	// Whoever proposed first (the agent's runbook, or this call), a web
	// proposal of the agent's is applied and heals web.
	g.Eventually(func(g Gomega) []tendv1.Phase {
		var phases []tendv1.Phase
		for _, p := range proposalsIn(g, st, ns) {
			if p.Spec.Target.Name == "web" {
				g.Expect(p.Spec.Proposer.Username).To(Equal(serviceAccountUser(AgentAccount)))
				phases = append(phases, p.Status.Phase)
			}
		}
		return phases
	}).Should(ContainElement(BeElementOf(tendv1.PhaseVerifying, tendv1.PhaseSucceeded)))
	g.Expect(proposal(g, st, ns, "squat").Status.Repeats).To(BeZero(), "the agent's call was counted as a repeat of the squatter's")
	g.Eventually(func(g Gomega) string {
		return deployment(g, st, web).Spec.Template.Spec.Containers[0].Image
	}).Should(Equal(DemoImage + ":1.0"))
}
