package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// ReasonKillSwitch is used when the kill switch withdraws or holds an approval.
const ReasonKillSwitch = "KillSwitchEngaged"

// gatherState collects what the gate's guards need to know about the rest of
// the cluster. All of the gate's I/O happens here; the gate stays pure.
func (r *ProposalReconciler) gatherState(ctx context.Context, s *scope) (policies.State, error) {
	var st policies.State

	since := s.now.Add(-r.Gate.Limits().LongestWindow())
	var list tendv1.ProposalList
	if err := r.Client.List(ctx, &list); err != nil {
		return st, fmt.Errorf("failed to list proposals: %w", err)
	}
	for i := range list.Items {
		q := &list.Items[i]
		if q.UID == s.p.UID {
			continue
		}
		t := q.Spec.Target
		rec := policies.ProposalRecord{
			Action: string(q.Spec.Action), Namespace: q.Namespace, Phase: string(q.Status.Phase),
			Proposer: q.Spec.Proposer.Username, Target: policies.TargetKey(t.Kind, t.Namespace, t.Name),
			Created: q.CreationTimestamp.Time, Finished: finishedAt(q),
		}
		open := !q.Status.Phase.Terminal()
		if open || rec.Created.After(since) || rec.Finished.After(since) {
			st.Recent = append(st.Recent, rec)
		}
	}

	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return st, fmt.Errorf("failed to list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			st.NodesDisrupted++
		}
	}

	cm := &corev1.ConfigMap{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Options.SystemNamespace, Name: GateStateName}, cm); {
	case apierrors.IsNotFound(err):
		cm = nil
	case err != nil:
		return st, fmt.Errorf("failed to read gate state: %w", err)
	}
	st.Breaker = ParseGateState(cm).Breaker
	return st, nil
}

// finishedAt is when a terminal proposal ended, as well as its records tell.
func finishedAt(p *tendv1.Proposal) time.Time {
	if !p.Status.Phase.Terminal() {
		return time.Time{}
	}
	var t time.Time
	later := func(m *metav1.Time) {
		if m != nil && m.After(t) {
			t = m.Time
		}
	}
	if p.Status.Decision != nil {
		later(&p.Status.Decision.DecidedAt)
	}
	if a := p.Status.Apply; a != nil {
		later(a.CompletedAt)
	}
	if v := p.Status.Verify; v != nil {
		later(v.CompletedAt)
	}
	if rb := p.Status.Rollback; rb != nil {
		later(rb.CompletedAt)
	}
	if t.IsZero() {
		t = p.CreationTimestamp.Time
	}
	return t
}

// deploymentDisruption is how many of a Deployment's replicas a rollout
// takes down at once, and their share: all of them with Recreate, else
// maxUnavailable.
func deploymentDisruption(d *appsv1.Deployment) (pods, percent int32) {
	replicas := int(ptr.Deref(d.Spec.Replicas, 1))
	if replicas == 0 {
		return 0, 0
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return int32(replicas), 100
	}
	maxUnavailable := intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		maxUnavailable = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, replicas, false)
	if err != nil {
		// An unreadable strategy counts as the worst case.
		return int32(replicas), 100
	}
	n = min(n, replicas)
	return int32(n), int32(n * 100 / replicas)
}

// tripBreaker persists a circuit breaker trip, so that it holds until reset.
func (r *ProposalReconciler) tripBreaker(ctx context.Context, p *tendv1.Proposal, reason string) error {
	now := r.Options.Now().UTC().Format(time.RFC3339)
	if err := UpdateGateState(ctx, r.Client, r.Options.SystemNamespace, func(d map[string]string) {
		if d[KeyBreakerTripped] == "true" {
			return
		}
		d[KeyBreakerTripped], d[KeyBreakerReason], d[KeyBreakerTrippedAt] = "true", reason, now
	}); err != nil {
		return err
	}
	log.FromContext(ctx).Info("Circuit breaker tripped", "reason", reason)
	r.event(p, corev1.EventTypeWarning, "CircuitBreakerTripped", "The circuit breaker tripped: %s; nothing is approved automatically until `tend gate reset-breaker`", reason)
	return nil
}

// holdForKillSwitch keeps an Approved proposal from being applied while the
// kill switch is engaged. An automatic approval is withdrawn: the proposal
// goes back to the gate, which now asks a human. A human's approval stands,
// but nothing is applied until the switch is released.
func (r *ProposalReconciler) holdForKillSwitch(s *scope) (bool, error) {
	p := s.p
	if p.Status.Decision != nil && p.Status.Decision.Outcome == tendv1.OutcomeAutoApprove {
		p.Status.Decision = nil
		s.condition(ConditionApproved, metav1.ConditionFalse, ReasonKillSwitch, "The kill switch withdrew the automatic approval")
		s.setPhase(tendv1.PhasePending, "Kill switch engaged: automatic approval withdrawn; deciding again")
		s.requeueAfter(100 * time.Millisecond)
		return true, nil
	}
	s.condition(ConditionApplied, metav1.ConditionFalse, ReasonKillSwitch, "Held: the kill switch is engaged")
	p.Status.Message = "Held: the kill switch is engaged; nothing is applied until it is released"
	s.requeueAfter(2 * time.Second)
	return true, nil
}
