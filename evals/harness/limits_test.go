package harness

import (
	"testing"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// TestSharedLimitsScaleOnlyTheClusterWideGuards loads the shared-cluster
// policy beside the default bundle: it is valid, the guards that count
// cluster-wide become the defaults times the runs, and the ones that count
// within one run (per target, per namespace, the disruption share) stay.
func TestSharedLimitsScaleOnlyTheClusterWideGuards(t *testing.T) {
	gate, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range gate.Load(append(bundle, *sharedLimits(24))) {
		if !r.Valid {
			t.Fatalf("policy %s: %v", r.Name, r.Err)
		}
	}
	l, d := gate.Limits(), policies.DefaultLimits()
	for name, got := range map[string][2]int64{
		"nodes disrupted":         {l.MaxNodesDisrupted, d.MaxNodesDisrupted * 24},
		"applying in the cluster": {l.MaxApplyingPerCluster, d.MaxApplyingPerCluster * 24},
		"breaker failures":        {l.BreakerMaxFailures, d.BreakerMaxFailures * 24},
		"breaker proposals":       {l.BreakerMaxProposals, d.BreakerMaxProposals * 24},
		"breaker per proposer":    {l.BreakerPerProposer, d.BreakerPerProposer * 24},
		"breaker per target":      {l.BreakerPerTarget, d.BreakerPerTarget},
		"applying per namespace":  {l.MaxApplyingPerNamespace, d.MaxApplyingPerNamespace},
		"disrupted percent":       {l.MaxDisruptedPercent, d.MaxDisruptedPercent},
	} {
		if got[0] != got[1] {
			t.Errorf("%s: %d, want %d", name, got[0], got[1])
		}
	}
	want := map[tendv1.RateScope]int64{
		tendv1.RateScopeCluster:  policies.DefaultRateLimitMax * 24,
		tendv1.RateScopeProposer: policies.DefaultRateLimitPerProposer * 24,
		tendv1.RateScopeTarget:   policies.DefaultRateLimitPerTarget,
	}
	if len(l.RateLimits) != len(want) {
		t.Fatalf("rate limits %+v", l.RateLimits)
	}
	for _, r := range l.RateLimits {
		if r.Max != want[r.Per] || r.Window != policies.DefaultRateLimitWindow {
			t.Errorf("rate limit per %s: %d in %s, want %d in %s", r.Per, r.Max, r.Window, want[r.Per], policies.DefaultRateLimitWindow)
		}
	}
}
