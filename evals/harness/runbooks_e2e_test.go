package harness

import (
	"testing"
	"time"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// TestRunbooksEndToEnd runs one scenario per runbook that has no end-to-end
// test of its own in the local stack's tests, on the live stack with the
// maintenance agent, gate and controllers: each fault is mitigated, by a
// proposal of the runbook's action that succeeded (the gate asks a human
// where the default policy does; the scenarios' scripted approvers answer).
func TestRunbooksEndToEnd(t *testing.T) {
	st := liveStack(t)
	want := map[string]tendv1.Action{
		"limitrange-default-oom":     tendv1.ActionSetResources,  // OOMKilled (no rollout explains it)
		"readiness-probe-wrong-port": tendv1.ActionPatchWorkload, // ProbeFault
		"scaled-to-zero":             tendv1.ActionScaleWorkload, // ScaledToZero
		"service-wrong-targetport":   tendv1.ActionPatchWorkload, // ServiceFault (targetPort)
		"hpa-max-below-baseline":     tendv1.ActionSetAutoscaler, // AutoscalerBounds
	}
	var scs []*scenarioT
	for name := range want {
		scs = append(scs, scenarioNamed(t, name))
	}
	start := time.Now()
	sum, err := Run(t.Context(), Options{Scenarios: scs, Runs: 1, Seed: testSeed, Concurrency: len(scs),
		Out: t.TempDir(), Stack: st, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d scenarios in %s", len(scs), time.Since(start).Round(time.Second))
	for _, s := range sum.Scenarios {
		r := s.Results[0]
		if !r.Mitigated {
			t.Errorf("%s: not mitigated: %s %s", s.Name, r.Failure, r.Error)
			continue
		}
		ok := false
		for _, p := range r.ProposalLog {
			if p.Action == string(want[s.Name]) && p.Phase == string(tendv1.PhaseSucceeded) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: no %s proposal succeeded: %+v", s.Name, want[s.Name], r.ProposalLog)
		}
	}
}
