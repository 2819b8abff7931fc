package harness

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

// SharedLimitsPolicy is the GatePolicy the harness installs while runs
// share the cluster. Each run's namespace stands for a cluster of its own,
// so the guards that count cluster-wide (the rate limits in the cluster and
// per proposer, proposals applying in the cluster, nodes out of service,
// the breaker's volume and failures, and its failures per proposer) get
// the defaults times the runs at once; otherwise one agent serving many
// runs meets limits no single cluster would, and the runs are scored as
// interference. The per-target and per-namespace limits stay the
// defaults: they already count within one run. Exclusive runs, which
// exercise those guards, run with the defaults: the policy is removed
// before them.
const SharedLimitsPolicy = "tend-evals-shared-cluster"

func sharedLimits(runs int) *tendv1.GatePolicy {
	n := int32(max(runs, 1))
	window := metav1.Duration{Duration: policies.DefaultRateLimitWindow}
	return &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: SharedLimitsPolicy},
		Spec: tendv1.GatePolicySpec{
			// Guards only: the rule never matches.
			Rules: []tendv1.GateRule{{Name: "none", When: "false", Outcome: tendv1.OutcomeDeny, Reason: "NeverMatches"}},
			Guards: &tendv1.GuardLimits{
				MaxNodesDisrupted:     ptr.To(policies.DefaultMaxNodesDisrupted * n),
				MaxApplyingPerCluster: ptr.To(policies.DefaultMaxApplyingPerCluster * n),
				RateLimits: []tendv1.RateLimit{
					{Action: "*", Per: tendv1.RateScopeCluster, Max: policies.DefaultRateLimitMax * n, Window: window},
					{Action: "*", Per: tendv1.RateScopeProposer, Max: policies.DefaultRateLimitPerProposer * n, Window: window},
					{Action: "*", Per: tendv1.RateScopeTarget, Max: policies.DefaultRateLimitPerTarget, Window: window},
				},
				CircuitBreaker: &tendv1.CircuitBreakerLimits{
					MaxFailures:            ptr.To(policies.DefaultBreakerMaxFailures * n),
					MaxProposals:           ptr.To(policies.DefaultBreakerMaxProposals * n),
					MaxFailuresPerProposer: ptr.To(policies.DefaultBreakerPerProposer * n),
				},
			},
		},
	}
}

// shareLimits installs the shared-cluster limits for runs at once.
func (e *env) shareLimits(ctx context.Context, runs int) error {
	want := sharedLimits(runs)
	have := &tendv1.GatePolicy{}
	switch err := e.admin.Get(ctx, client.ObjectKeyFromObject(want), have); {
	case apierrors.IsNotFound(err):
		if err := e.admin.Create(ctx, want); err != nil {
			return fmt.Errorf("failed to install the shared-cluster limits: %w", err)
		}
	case err != nil:
		return err
	default:
		have.Spec = want.Spec
		if err := e.admin.Update(ctx, have); err != nil {
			return fmt.Errorf("failed to update the shared-cluster limits: %w", err)
		}
	}
	return e.waitPolicy(ctx, true)
}

// unshareLimits removes them, so the defaults hold again.
func (e *env) unshareLimits(ctx context.Context) error {
	err := e.admin.Delete(ctx, &tendv1.GatePolicy{ObjectMeta: metav1.ObjectMeta{Name: SharedLimitsPolicy}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to remove the shared-cluster limits: %w", err)
	}
	return e.waitPolicy(ctx, false)
}

// waitPolicy waits until the gate has loaded the policy (present) or
// dropped it: the GatePolicy reconciler marks a policy Ready once the
// gate holds it, and the gate drops a deleted one when it sees it go.
func (e *env) waitPolicy(ctx context.Context, present bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		gp := &tendv1.GatePolicy{}
		err := e.admin.Get(ctx, client.ObjectKey{Name: SharedLimitsPolicy}, gp)
		switch {
		case present && err == nil && gp.Status.ObservedGeneration == gp.Generation && ready(gp):
			return nil
		case !present && apierrors.IsNotFound(err):
			// The reconciler drops it on the delete event; give it a beat.
			time.Sleep(time.Second)
			return nil
		case err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the gate did not take the shared-cluster limits within 30s")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ready(gp *tendv1.GatePolicy) bool {
	for _, c := range gp.Status.Conditions {
		if c.Type == controllers.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}
