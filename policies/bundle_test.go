package policies

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

func TestDefaultBundleLoads(t *testing.T) {
	bundle, err := DefaultBundle()
	if err != nil {
		t.Fatalf("DefaultBundle() error = %v", err)
	}
	g := newGate(t, Options{})
	for _, r := range g.Load(bundle) {
		if !r.Valid {
			t.Errorf("Load(DefaultBundle()) policy %q invalid: %v", r.Name, r.Err)
		}
	}
	gp := bundle[0]
	if len(gp.Spec.Actions) != 0 {
		t.Errorf("tend-default is scoped to %v; it holds the rules of every action", gp.Spec.Actions)
	}
	// A rule set per action: every action of the catalogue is named by a
	// rule, and every rule names one action or more.
	named := map[v1alpha1.Action]bool{}
	for _, r := range gp.Spec.Rules {
		found := false
		for _, a := range v1alpha1.Actions {
			if strings.Contains(r.When, `"`+string(a)+`"`) {
				named[a], found = true, true
			}
		}
		if !found {
			t.Errorf("rule %q names no action of the catalogue", r.Name)
		}
		if r.Message == "" || r.Reason == "" {
			t.Errorf("rule %q has no reason or message", r.Name)
		}
	}
	for _, a := range v1alpha1.Actions {
		if !named[a] {
			t.Errorf("no rule of tend-default decides %s", a)
		}
	}
	if r := gp.Spec.Rules[1]; r.Name != "rollback-auto" || r.Reason != "SafeRollback" || r.Outcome != v1alpha1.OutcomeAutoApprove || !strings.Contains(r.Message, "found ran healthy") {
		t.Errorf("rollback-auto = %+v, want AutoApprove SafeRollback with an explanation", r)
	}
}

const policyA = `apiVersion: tend.dev/v1alpha1
kind: GatePolicy
metadata:
  name: a
spec:
  rules:
    - name: r
      when: "true"
      outcome: Deny
      reason: X
`

const policyB = `apiVersion: tend.dev/v1alpha1
kind: GatePolicy
metadata:
  name: b
spec:
  actions: [ScaleWorkload]
  rules:
    - name: r
      when: proposal.parameters.scale.replicas > 10
      outcome: RequireApproval
      approvals: {count: 2, groups: [sre]}
      reason: Large
`

func TestParsePolicies(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		wantNames []string
		wantErr   []string // substrings; nil means no error
	}{
		{name: "empty", data: "", wantNames: nil},
		{name: "only comments", data: "# nothing here\n---\n# nor here\n", wantNames: nil},
		{name: "one", data: policyA, wantNames: []string{"a"}},
		{name: "two with separators", data: "---\n" + policyA + "---\n" + policyB, wantNames: []string{"a", "b"}},
		{name: "empty document in between", data: policyA + "---\n---\n" + policyB + "---\n", wantNames: []string{"a", "b"}},
		{
			name:    "unknown field",
			data:    policyA + "---\n" + strings.Replace(policyB, "reason: Large", "reason: Large\n      severity: high", 1),
			wantErr: []string{"document 1", `unknown field "spec.rules[0].severity"`},
		},
		{
			name:    "field name in the wrong case",
			data:    strings.Replace(policyA, "spec:", "Spec:", 1),
			wantErr: []string{"document 0", "Spec"},
		},
		{
			name:    "duplicate field",
			data:    strings.Replace(policyA, "kind: GatePolicy", "kind: GatePolicy\nkind: GatePolicy", 1),
			wantErr: []string{"document 0", "kind"},
		},
		{
			name:    "wrong apiVersion",
			data:    policyA + "---\n" + strings.Replace(policyB, "tend.dev/v1alpha1", "tend.dev/v1", 1),
			wantErr: []string{"document 1", `apiVersion is "tend.dev/v1"`},
		},
		{
			name:    "wrong kind",
			data:    strings.Replace(policyA, "kind: GatePolicy", "kind: Proposal", 1),
			wantErr: []string{"document 0", `kind is "Proposal"`},
		},
		{
			name:    "missing name",
			data:    strings.Replace(policyA, "name: a\n", "labels: {}\n", 1),
			wantErr: []string{"document 0", "metadata.name is empty"},
		},
		{
			name:    "duplicate policy",
			data:    policyA + "---\n" + policyA,
			wantErr: []string{"document 1", `"a" is already defined in document 0`},
		},
		{
			name:    "not a mapping",
			data:    "- just\n- a list\n",
			wantErr: []string{"document 0"},
		},
		{
			name:    "broken YAML",
			data:    "apiVersion: [\n",
			wantErr: []string{"document 0"},
		},
		{
			name:    "bad separator",
			data:    policyA + "--- nope\n" + policyB,
			wantErr: []string{"separator"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicies([]byte(tt.data))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParsePolicies() = %d policies, want an error", len(got))
				}
				if !errors.Is(err, ErrInvalidBundle) {
					t.Errorf("ParsePolicies() error = %v, want ErrInvalidBundle", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParsePolicies() error = %q, want it to contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicies() error = %v", err)
			}
			var names []string
			for _, gp := range got {
				names = append(names, gp.Name)
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("ParsePolicies() names mismatch (-want +got):\n%s", diff)
			}
		})
	}

	got, err := ParsePolicies([]byte(policyB))
	if err != nil {
		t.Fatalf("ParsePolicies() error = %v", err)
	}
	want := v1alpha1.GatePolicySpec{
		Actions: []v1alpha1.Action{v1alpha1.ActionScaleWorkload},
		Rules: []v1alpha1.GateRule{{
			Name: "r", When: "proposal.parameters.scale.replicas > 10", Outcome: v1alpha1.OutcomeRequireApproval,
			Approvals: &v1alpha1.ApprovalRequirement{Count: 2, Groups: []string{"sre"}}, Reason: "Large",
		}},
	}
	if diff := cmp.Diff(want, got[0].Spec); diff != "" {
		t.Errorf("ParsePolicies() spec mismatch (-want +got):\n%s", diff)
	}
}
