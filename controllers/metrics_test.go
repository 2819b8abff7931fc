package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

// metricValue returns the value of the sample of name whose labels include
// labels (a counter's or gauge's value, a histogram's count), summed over
// the samples that match.
func metricValue(g Gomega, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			sum += sampleValue(m)
		}
	}
	return sum
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetricsOfTheWork checks the proposal metrics on a real loop: an
// auto-approved rollback counts its decision by rule, its transitions and
// its finish, and times its stages; a proposal awaiting a human shows in the
// approval gauges. Other tests run alongside, so counts are compared as
// growth, not as totals.
func TestMetricsOfTheWork(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	h := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 5 * time.Minute}, ns)
	reg := prometheus.NewRegistry()
	g.Expect(controllers.RegisterProposalMetrics(reg, h.Client, nil)).To(Succeed())
	// Registering again (a second manager in one process) is no error.
	g.Expect(controllers.RegisterProposalMetrics(reg, h.Client, nil)).To(Succeed())

	action := map[string]string{"action": string(tendv1.ActionRollbackWorkload)}
	decided := map[string]string{"outcome": string(tendv1.OutcomeAutoApprove), "policy": "tend-default", "rule": "rollback-auto"}
	succeeded := map[string]string{"action": string(tendv1.ActionRollbackWorkload), "phase": string(tendv1.PhaseSucceeded)}
	verified := map[string]string{"action": string(tendv1.ActionRollbackWorkload), "stage": controllers.StageVerified}
	before := map[string]float64{
		"decisions": metricValue(g, reg, "tend_gate_decisions_total", decided),
		"finished":  metricValue(g, reg, "tend_proposals_finished_total", succeeded),
		"entered":   metricValue(g, reg, "tend_proposal_transitions_total", action),
		"verified":  metricValue(g, reg, "tend_proposal_stage_seconds", verified),
	}

	w := newFailingRollout(t, h.Client, ns, "web")
	p := createProposal(t, h.Client, rollbackProposal(w.Deployment()))
	waitPhase(t, g, h.Client, p, tendv1.PhaseVerifying)
	w.Rollout(true)
	waitPhase(t, g, h.Client, p, tendv1.PhaseSucceeded)

	g.Eventually(func(g Gomega) {
		g.Expect(metricValue(g, reg, "tend_gate_decisions_total", decided)).To(BeNumerically(">=", before["decisions"]+1))
		g.Expect(metricValue(g, reg, "tend_proposals_finished_total", succeeded)).To(BeNumerically(">=", before["finished"]+1))
		// Pending→Approved→Applying→Verifying→Succeeded: four entered.
		g.Expect(metricValue(g, reg, "tend_proposal_transitions_total", action)).To(BeNumerically(">=", before["entered"]+4))
		g.Expect(metricValue(g, reg, "tend_proposal_stage_seconds", verified)).To(BeNumerically(">=", before["verified"]+1))
	}).Should(Succeed())

	// The gate's switches are exported (their values belong to whichever
	// test last moved them; here only that they are there).
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	g.Expect(names).To(ContainElements("tend_gate_kill_switch_engaged", "tend_gate_breaker_open"))

	// A rollback in a protected namespace waits for a human.
	pns := newNamespace(t, protected)
	h2 := startTend(t, controllers.ProposalOptions{StableWindow: time.Second, VerifyTimeout: 5 * time.Minute}, pns)
	w2 := newFailingRollout(t, h2.Client, pns, "web")
	p2 := createProposal(t, h2.Client, rollbackProposal(w2.Deployment()))
	waitPhase(t, g, h2.Client, p2, tendv1.PhaseAwaitingApproval)
	g.Eventually(func(g Gomega) {
		g.Expect(metricValue(g, reg, "tend_approvals_waiting", nil)).To(BeNumerically(">=", 1))
		g.Expect(metricValue(g, reg, "tend_approval_oldest_wait_seconds", nil)).To(BeNumerically(">", 0))
		g.Expect(metricValue(g, reg, "tend_approvals_read_failed", nil)).To(BeZero())
	}).Should(Succeed())
}
