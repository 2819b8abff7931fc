package policies

import (
	"slices"
	"testing"
	"time"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzParsePolicies(f *testing.F) {
	f.Add(defaultBundle)
	g, err := New(Options{})
	if err != nil {
		f.Fatalf("New() error = %v", err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParsePolicies(data)
		if err != nil {
			if got != nil {
				t.Fatalf("ParsePolicies() = %d policies and error %v, want none with an error", len(got), err)
			}
			return
		}
		names := make(map[string]bool, len(got))
		for i, gp := range got {
			if gp.APIVersion != "tend.dev/v1alpha1" || gp.Kind != "GatePolicy" || gp.Name == "" {
				t.Fatalf("ParsePolicies() policy %d = %s %s %q, want a named tend.dev/v1alpha1 GatePolicy", i, gp.APIVersion, gp.Kind, gp.Name)
			}
			if names[gp.Name] {
				t.Fatalf("ParsePolicies() returned policy %q twice", gp.Name)
			}
			names[gp.Name] = true
		}
		// Whatever parsed must load without panicking.
		if results := g.Load(got); len(results) != len(got) {
			t.Fatalf("Load() = %d results for %d policies", len(results), len(got))
		}
	})
}

func FuzzDecide(f *testing.F) {
	g, err := New(Options{})
	if err != nil {
		f.Fatalf("New() error = %v", err)
	}
	f.Fuzz(func(t *testing.T, when, outcome, action, namespace, nsLabel, targetLabel, risk, patchPath string, replicas int64, exists, killSwitch bool) {
		gp := policy("fuzz", nil, v1alpha1.GateRule{
			Name: "rule", When: when, Outcome: v1alpha1.Outcome(outcome), Reason: "Fuzz",
		})
		results := g.Load([]v1alpha1.GatePolicy{gp})
		valid := results[0].Valid
		if valid != (results[0].Err == nil) {
			t.Fatalf("Load() = %+v: Valid and Err disagree", results[0])
		}
		g.SetKillSwitch(killSwitch)

		in := Input{
			Action:     action,
			Risk:       risk,
			Parameters: Parameters{PatchPaths: []string{patchPath}, Scale: ScaleParameters{Replicas: replicas}},
			Target: Target{
				APIVersion: "apps/v1", Kind: "Deployment", Namespace: namespace, Name: "web",
				Labels: map[string]string{"tend.dev/protected": targetLabel}, Replicas: replicas, Exists: exists,
			},
			Namespace: Namespace{Name: namespace, Labels: map[string]string{"tend.dev/protected": nsLabel}, Exists: true},
			Proposer:  Proposer{Username: "agent", Groups: []string{"agents"}},
		}
		now := time.Unix(replicas%(1<<33), 0)
		res := g.Decide(in, now)

		failed := false
		for _, r := range res.Reasons {
			switch r.Code {
			case ReasonInternalError:
				t.Fatalf("Decide() recovered a panic: %s", r.Message)
			case ReasonEvaluationError, ReasonPolicyInvalid, ReasonUnknownAction, ReasonTargetNotFound:
				failed = true
			}
		}
		switch {
		case rank(res.Outcome) < 0:
			t.Fatalf("Decide() outcome = %q, not one of the three", res.Outcome)
		case len(res.Reasons) == 0:
			t.Fatalf("Decide() = %+v without reasons", res)
		case failed && res.Outcome != v1alpha1.OutcomeDeny:
			t.Fatalf("Decide() = %s with reasons %+v, want Deny", res.Outcome, res.Reasons)
		case !valid && knownAction(action) && exists && res.Outcome != v1alpha1.OutcomeDeny:
			t.Fatalf("Decide() with an invalid policy (%v) = %s, want Deny", results[0].Err, res.Outcome)
		case (res.Outcome == v1alpha1.OutcomeRequireApproval) != (res.RequiredApprovals >= 1 && res.RequiredApprovals <= 10):
			t.Fatalf("Decide() = %s with %d required approvals", res.Outcome, res.RequiredApprovals)
		}
		if res.Outcome == v1alpha1.OutcomeAutoApprove {
			protected := slices.Contains(DefaultProtectedNamespaces, namespace) || nsLabel == "true" || targetLabel == "true"
			if !valid || outcome != string(v1alpha1.OutcomeAutoApprove) || !knownAction(action) || !exists || killSwitch || protected {
				t.Fatalf("Decide() = AutoApprove for valid=%t outcome=%q action=%q exists=%t killSwitch=%t protected=%t",
					valid, outcome, action, exists, killSwitch, protected)
			}
		}
	})
}
