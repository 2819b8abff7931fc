package localstack

import (
	"testing"

	. "github.com/onsi/gomega"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/policies"
)

// A rollback to a revision that never ran healthy: the proposer claims the
// earlier revision is the fix (without naming it, or naming it), but it
// crash-looped too. The gate finds no record of it running healthy and
// asks a human; nothing is applied.
func TestAttackRollbackToNeverHealthyRevision(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	ns := attackNamespace(t, st, nil)
	// Revision 1 (2.0, no DATABASE_URL) crash-loops, and so does revision 2.
	web := demoDeployment(t, g, st, ns, "web", "2.0", 2)
	g.Eventually(func(g Gomega) int64 { return deployment(g, st, web).Status.ObservedGeneration }).Should(BeNumerically(">=", 1))
	setImage(t, g, st, web, "2.1")
	g.Eventually(func(g Gomega) string {
		return deployment(g, st, web).Annotations["deployment.kubernetes.io/revision"]
	}).Should(Equal("2"))
	before := deployment(g, st, web)

	tools := agentTools(t, st)
	for _, args := range []wire.ProposeRollbackArgs{
		{Namespace: ns, Name: "web", Common: wire.Common{Summary: "revision 2 crash-loops; the previous one was healthy", Risk: "Low"}},
		{Namespace: ns, Name: "web", FromRevision: 2, ToRevision: 1, Common: wire.Common{Summary: "revision 1 was healthy", Risk: "Low"}},
	} {
		var res wire.ProposeResult
		g.Expect(tools.Call(ctx, wire.ToolProposeRollback, args, &res)).To(Succeed())
		p := waitPhase(g, st, ns, res.Name, tendv1.PhaseAwaitingApproval)
		var codes []string
		for _, r := range p.Status.Decision.Reasons {
			codes = append(codes, r.Code)
		}
		g.Expect(codes).To(ContainElement(policies.ReasonRevisionNotHealthy))
		g.Expect(p.Status.Decision.Facts).NotTo(BeNil())
		g.Expect(p.Status.Decision.Facts.Revision.To).To(Equal(int64(1)))
		g.Expect(p.Status.Decision.Facts.Revision.ToHealthy).To(BeFalse())
		g.Expect(p.Status.Apply).To(BeNil())
	}
	g.Consistently(func(g Gomega) int64 { return deployment(g, st, web).Generation }).Should(Equal(before.Generation))
}
