package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// The metrics of the work tend exists for, counted once per committed
// transition (persist records a transition only after its status write
// won), with labels bounded by the catalogue, the phases and the policies.
var (
	proposalTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_proposal_transitions_total",
		Help: "Proposal phase transitions committed, by action and the phase entered.",
	}, []string{"action", "phase"})
	proposalsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_proposals_finished_total",
		Help: "Proposals that reached a final phase (Succeeded, Failed, RolledBack, Denied, Expired, Superseded, Overtaken), by action and that phase.",
	}, []string{"action", "phase"})
	gateDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_gate_decisions_total",
		Help: "Gate decisions, by outcome and the policy and rule that decided (policy \"builtin\" for the controller's own checks and guards).",
	}, []string{"outcome", "policy", "rule"})
	proposalStageSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tend_proposal_stage_seconds",
		Help:    "Time from a proposal's creation until it was decided, applied (entered Verifying) and verified (Succeeded), by action and stage.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600},
	}, []string{"action", "stage"})
)

// The gate's switches, as the gate state ConfigMap last read holds them.
var (
	gateKillSwitch = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tend_gate_kill_switch_engaged",
		Help: "1 while the kill switch is engaged (nothing is approved automatically or applied), or its ConfigMap is missing.",
	})
	gateBreakerOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tend_gate_breaker_open",
		Help: "1 while the gate's circuit breaker is tripped (automatic approvals held until a human resets it).",
	})
)

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Stages of tend_proposal_stage_seconds.
const (
	StageDecided  = "decided"
	StageApplied  = "applied"
	StageVerified = "verified"
)

// observeTransition counts one committed transition of p.
func observeTransition(p *tendv1.Proposal, from, to tendv1.Phase, now time.Time) {
	action := string(decidedSpec(p).Action)
	if _, ok := tendv1.LookupAction(decidedSpec(p).Action); !ok {
		action = "unknown"
	}
	proposalTransitions.WithLabelValues(action, string(to)).Inc()
	if to.Terminal() {
		proposalsFinished.WithLabelValues(action, string(to)).Inc()
	}
	age := now.Sub(p.CreationTimestamp.Time).Seconds()
	if age < 0 {
		age = 0
	}
	if d := p.Status.Decision; d != nil && from == tendv1.PhasePending && (to == tendv1.PhaseApproved || to == tendv1.PhaseAwaitingApproval || to == tendv1.PhaseDenied) {
		policy, rule := d.Policy, d.Rule
		if policy == "" {
			policy = "builtin"
		}
		gateDecisions.WithLabelValues(string(d.Outcome), policy, rule).Inc()
		proposalStageSeconds.WithLabelValues(action, StageDecided).Observe(age)
	}
	switch to {
	case tendv1.PhaseVerifying:
		proposalStageSeconds.WithLabelValues(action, StageApplied).Observe(age)
	case tendv1.PhaseSucceeded:
		proposalStageSeconds.WithLabelValues(action, StageVerified).Observe(age)
	}
}

// approvalCollector reports the proposals awaiting a human, read from the
// manager's cache when Prometheus scrapes.
type approvalCollector struct {
	reader  client.Reader
	now     func() time.Time
	waiting *prometheus.Desc
	oldest  *prometheus.Desc
	failed  *prometheus.Desc
}

func newApprovalCollector(reader client.Reader, now func() time.Time) *approvalCollector {
	if now == nil {
		now = time.Now
	}
	return &approvalCollector{
		reader:  reader,
		now:     now,
		waiting: prometheus.NewDesc("tend_approvals_waiting", "Proposals awaiting a human's approval.", nil, nil),
		oldest:  prometheus.NewDesc("tend_approval_oldest_wait_seconds", "How long the proposal waiting longest for approval has waited (0 when none waits).", nil, nil),
		failed:  prometheus.NewDesc("tend_approvals_read_failed", "1 when the proposals could not be read for the approval metrics at this scrape.", nil, nil),
	}
}

func (c *approvalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.waiting
	ch <- c.oldest
	ch <- c.failed
}

func (c *approvalCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list tendv1.ProposalList
	if err := c.reader.List(ctx, &list); err != nil {
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, 0)
	n, oldest := 0, 0.0
	now := c.now()
	for _, p := range list.Items {
		if p.Status.Phase != tendv1.PhaseAwaitingApproval {
			continue
		}
		n++
		since := p.CreationTimestamp.Time
		if d := p.Status.Decision; d != nil && !d.DecidedAt.IsZero() {
			since = d.DecidedAt.Time
		}
		if w := now.Sub(since).Seconds(); w > oldest {
			oldest = w
		}
	}
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
}

// RegisterProposalMetrics registers the proposal, decision and approval
// metrics with r; reader lists proposals for the approval gauges (the
// manager's cached client).
func RegisterProposalMetrics(r prometheus.Registerer, reader client.Reader, now func() time.Time) error {
	for _, c := range []prometheus.Collector{proposalTransitions, proposalsFinished, gateDecisions, proposalStageSeconds, gateKillSwitch, gateBreakerOpen} {
		if err := r.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("failed to register proposal metrics: %w", err)
		}
	}
	if err := r.Register(newApprovalCollector(reader, now)); err != nil {
		if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
			return fmt.Errorf("failed to register approval metrics: %w", err)
		}
	}
	return nil
}
