package localstack

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp/wire"
)

// Spec edited after the decision: in every phase a proposal passes through
// (awaiting approval, approved and held by the kill switch, verifying,
// ended), an edit that points it at another workload, or changes its
// revision, is refused by the API server; the workload it was decided for
// is the only one changed, and the other keeps its spec.
func TestAttackSpecEditInEveryPhase(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	// A protected namespace, so that the proposal waits for a human.
	ns := attackNamespace(t, st, map[string]string{"tend.dev/protected": "true"})
	web := demoDeployment(t, g, st, ns, "web", "1.0", 2)
	other := demoDeployment(t, g, st, ns, "other", "1.0", 2)
	waitHealthy(g, st, web)
	waitHealthy(g, st, other)
	otherBefore := deployment(g, st, other)
	setImage(t, g, st, web, "2.0")

	tools := agentTools(t, st)
	var res wire.ProposeResult
	g.Eventually(func(g Gomega) {
		// The agent may have proposed it already; either way one exists.
		res = wire.ProposeResult{}
		err := tools.Call(ctx, wire.ToolProposeRollback, wire.ProposeRollbackArgs{
			Namespace: ns, Name: "web", FromRevision: 2, ToRevision: 1,
			Common: wire.Common{Summary: "revision 2 crash-loops"},
		}, &res)
		g.Expect(err).NotTo(HaveOccurred())
	}).Should(Succeed())
	name := res.Name

	edit := func(phase string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := proposal(g, st, ns, name)
			p.Spec.Target.Name, p.Spec.Target.UID = otherBefore.Name, otherBefore.UID
			p.Spec.Parameters.Rollback = &tendv1.RollbackParameters{ToRevision: 1}
			return st.Client.Update(ctx, p)
		})
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "edit while %s = %v, want Invalid", phase, err)
		g.Expect(err.Error()).To(ContainSubstring("spec is immutable"))
	}

	p := waitPhase(g, st, ns, name, tendv1.PhaseAwaitingApproval)
	edit("awaiting approval")

	// Approved while the kill switch holds every apply.
	g.Expect(controllers.UpdateGateState(ctx, st.Client, SystemNamespace, func(d map[string]string) { d[controllers.KeyKillSwitch] = "on" })).To(Succeed())
	t.Cleanup(func() {
		_ = controllers.UpdateGateState(context.Background(), st.Client, SystemNamespace, func(d map[string]string) { d[controllers.KeyKillSwitch] = "off" })
	})
	approver := user(t, st, "carol", ApproverGroup)
	g.Expect(approver.Create(ctx, &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "carol-"},
		Spec: tendv1.ApprovalSpec{Proposal: name, SpecHash: p.Status.SpecHash, Decision: tendv1.ApprovalApprove,
			Approver: "carol", ApproverGroups: []string{ApproverGroup, "system:authenticated"}},
	})).To(Succeed())
	g.Eventually(func(g Gomega) string {
		p = proposal(g, st, ns, name)
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseApproved))
		return p.Status.Message
	}).Should(ContainSubstring("kill switch"))
	edit("approved and held")

	g.Expect(controllers.UpdateGateState(ctx, st.Client, SystemNamespace, func(d map[string]string) { d[controllers.KeyKillSwitch] = "off" })).To(Succeed())
	waitPhase(g, st, ns, name, tendv1.PhaseVerifying)
	edit("verifying")
	p = waitPhase(g, st, ns, name, tendv1.PhaseSucceeded)
	edit("succeeded")

	// The decided spec was carried out: web rolled back, other untouched.
	g.Expect(p.Status.DecidedSpec.Target.Name).To(Equal("web"))
	g.Expect(deployment(g, st, web).Spec.Template.Spec.Containers[0].Image).To(Equal(DemoImage + ":1.0"))
	otherAfter := deployment(g, st, other)
	g.Expect(otherAfter.Generation).To(Equal(otherBefore.Generation))
	g.Expect(otherAfter.Spec.Template).To(Equal(otherBefore.Spec.Template))
}
