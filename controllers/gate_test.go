package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

func setKillSwitch(t *testing.T, c client.Client, system, value string) {
	t.Helper()
	if err := controllers.UpdateGateState(context.Background(), c, system, func(d map[string]string) {
		d[controllers.KeyKillSwitch] = value
	}); err != nil {
		t.Fatal(err)
	}
}

// TestKillSwitchWithdrawsAutomaticApprovalInFlight: a proposal the gate
// auto-approved but the controller has not applied yet, when the kill switch
// is engaged, goes back to the gate and waits for a human; nothing is applied.
func TestKillSwitchWithdrawsAutomaticApprovalInFlight(t *testing.T) {
	g := newG(t)
	system := newNamespace(t, nil)
	c := kube(t)
	setKillSwitch(t, c, system, "on")
	ns := newNamespace(t, nil)
	w := newFailingRollout(t, c, ns, "web")
	before := w.Deployment()

	// The state an earlier gate decision left: approved automatically, not applied.
	p := createProposal(t, c, rollbackProposal(before))
	p.Status = tendv1.ProposalStatus{
		Phase:    tendv1.PhaseApproved,
		SpecHash: p.Spec.Hash(),
		Decision: &tendv1.Decision{Outcome: tendv1.OutcomeAutoApprove, Policy: "tend-default", Rule: "rollback-auto",
			SpecHash: p.Spec.Hash(), DecidedAt: metav1.Now()},
	}
	g.Expect(c.Status().Update(t.Context(), p)).To(Succeed())

	h := startTend(t, controllers.ProposalOptions{SystemNamespace: system, StableWindow: time.Second}, ns)
	p = waitPhase(t, g, c, p, tendv1.PhaseAwaitingApproval)
	g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeRequireApproval))
	g.Expect(reasonCodes(p.Status.Decision)).To(ContainElement(policies.ReasonKillSwitchEngaged))
	g.Expect(p.Status.Apply).To(BeNil())
	g.Expect(w.Deployment().Generation).To(Equal(before.Generation))
	h.expectTrail(t, g, p, "Approved→Pending", "Pending→AwaitingApproval")
}

// TestKillSwitchHoldsApplying: a human's approval stands while the switch is
// engaged, but nothing is applied until it is released.
func TestKillSwitchHoldsApplying(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, protected)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second}, ns)
	setKillSwitch(t, h.Client, h.System, "on")
	g.Eventually(h.Gate.KillSwitch).Should(BeTrue())

	w := newFailingRollout(t, h.Client, ns, "web")
	before := w.Deployment()
	p := createProposal(t, h.Client, rollbackProposal(before))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)
	approve(t, h.Client, p, "bob", p.Status.SpecHash, tendv1.ApprovalApprove)
	g.Eventually(func(g Gomega) {
		g.Expect(h.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseApproved))
		g.Expect(p.Status.Message).To(ContainSubstring("kill switch"))
	}).Should(Succeed())
	g.Consistently(func() int64 { return w.Deployment().Generation }).WithTimeout(3 * time.Second).Should(Equal(before.Generation))

	setKillSwitch(t, h.Client, h.System, "off")
	waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	g.Expect(w.Deployment().Spec.Template).To(Equal(w.Template("v1")))
}

// TestCircuitBreakerTripsAndHoldsUntilReset: recent failures trip the
// breaker; it is persisted, holds every automatic approval, and a reset
// clears it.
func TestCircuitBreakerTripsAndHoldsUntilReset(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	// The cluster breaker at three failures, and the per-proposer one out
	// of its way (all these proposals have one proposer).
	createGatePolicy(t, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-breaker-at-three"},
		Spec: tendv1.GatePolicySpec{
			Rules: []tendv1.GateRule{{Name: "none", When: "false", Outcome: tendv1.OutcomeDeny, Reason: "Never"}},
			Guards: &tendv1.GuardLimits{CircuitBreaker: &tendv1.CircuitBreakerLimits{
				MaxFailures: ptr.To[int32](3), MaxFailuresPerProposer: ptr.To[int32](10), MaxFailuresPerTarget: ptr.To[int32](10)}},
		},
	})
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second}, ns)
	waitPolicyReady(g, h.Client, "test-breaker-at-three")

	// Three proposals that were rolled back a few minutes ago.
	for i := range 3 {
		w := newFailingRollout(t, h.Client, ns, "failed-"+string(rune('a'+i)))
		f := rollbackProposal(w.Deployment())
		f.Spec.Action = tendv1.ActionRestartWorkload
		f = createProposal(t, h.Client, f)
		// Once its record is complete (the audit outbox empty), it is
		// rewritten as a rollback that failed.
		g.Eventually(func(g Gomega) {
			g.Expect(h.Client.Get(t.Context(), client.ObjectKeyFromObject(f), f)).To(Succeed())
			g.Expect(f.Status.Phase.Terminal()).To(BeTrue())
			g.Expect(f.Status.AuditOutbox).To(BeEmpty())
			done := metav1.NewTime(time.Now().Add(-time.Minute))
			f.Status.Phase = tendv1.PhaseRolledBack
			f.Status.Rollback = &tendv1.ApplyRecord{Attempt: "x", StartedAt: done, CompletedAt: &done}
			g.Expect(h.Client.Status().Update(t.Context(), f)).To(Succeed())
		}).Should(Succeed())
	}

	w := newFailingRollout(t, h.Client, ns, "web")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	p = waitPhase(t, g, h.Client, p, tendv1.PhaseAwaitingApproval)
	g.Expect(reasonCodes(p.Status.Decision)).To(ContainElement(policies.ReasonCircuitOpen))

	cm := &corev1.ConfigMap{}
	g.Expect(h.Client.Get(t.Context(), client.ObjectKey{Namespace: h.System, Name: controllers.GateStateName}, cm)).To(Succeed())
	st := controllers.ParseGateState(cm)
	g.Expect(st.Breaker.Tripped).To(BeTrue())
	g.Expect(st.Breaker.Reason).To(ContainSubstring("3 proposals failed"))

	// Reset: failures before it stop counting; a new proposal is automatic again.
	g.Expect(controllers.UpdateGateState(t.Context(), h.Client, h.System, func(d map[string]string) {
		d[controllers.KeyBreakerTripped] = "false"
		d[controllers.KeyBreakerResetAt] = time.Now().UTC().Format(time.RFC3339)
	})).To(Succeed())
	w2 := newFailingRollout(t, h.Client, ns, "api")
	p2 := createProposal(t, h.Client, rollbackProposal(w2.Deployment()))
	p2 = waitPhase(t, g, h.Client, p2, tendv1.PhaseVerifying)
	g.Expect(p2.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
}
