package policytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// loadBundle parses the policies and the test suites of policies/bundle.
func loadBundle(t *testing.T) ([]v1alpha1.GatePolicy, []Suite) {
	t.Helper()
	dir := filepath.Join("..", "bundle")
	pb, err := os.ReadFile(filepath.Join(dir, "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policies.ParsePolicies(pb)
	if err != nil {
		t.Fatalf("ParsePolicies(default.yaml) error = %v", err)
	}
	tb, err := os.ReadFile(filepath.Join(dir, "default_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	suites, err := ParseSuites("default_test.yaml", tb)
	if err != nil {
		t.Fatalf("ParseSuites(default_test.yaml) error = %v", err)
	}
	return pols, suites
}

// TestPolicyBundleSuitePasses runs the default bundle's own test suite: every case
// must pass, and the suite must cover the behaviour the bundle promises.
func TestPolicyBundleSuitePasses(t *testing.T) {
	pols, suites := loadBundle(t)
	rep, err := Run(t.Context(), pols, suites, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	for _, p := range rep.Invalid() {
		t.Errorf("policy %s is invalid: %v", p.Name, p.Err)
	}
	outcomes := map[v1alpha1.Outcome]bool{}
	codes := map[string]bool{}
	for i := range rep.Cases {
		c := &rep.Cases[i]
		if !c.Passed() {
			t.Errorf("case %q failed:\n%s", c.Name(), c.Diff())
		}
		outcomes[c.Got.Outcome] = true
		for _, r := range c.Got.Reasons {
			codes[r.Code] = true
		}
	}
	if !rep.OK() {
		t.Errorf("Report.OK() = false; %d passed, %d failed", rep.Passed(), rep.Failed())
	}
	for _, o := range []v1alpha1.Outcome{v1alpha1.OutcomeAutoApprove, v1alpha1.OutcomeRequireApproval, v1alpha1.OutcomeDeny} {
		if !outcomes[o] {
			t.Errorf("no case of the default bundle's suite decides %s", o)
		}
	}
	for _, code := range []string{
		"SafeRollback", policies.ReasonProtectedNamespace, policies.ReasonNoMatchingRule,
		policies.ReasonKillSwitchEngaged, policies.ReasonCircuitOpen, policies.ReasonBlastRadius,
	} {
		if !codes[code] {
			t.Errorf("no case of the default bundle's suite yields reason %s", code)
		}
	}
}

// TestPolicyWrongExpectationFails checks that a case whose expectation the gate
// does not meet fails, and that its diff says what differs.
func TestPolicyWrongExpectationFails(t *testing.T) {
	pols, _ := loadBundle(t)
	suites, err := ParseSuites("wrong_test.yaml", []byte(`apiVersion: tend.dev/v1alpha1
kind: GatePolicyTest
metadata: {name: wrong}
cases:
- name: kube-system rollback is not automatic
  proposal:
    action: RollbackWorkload
    target: {apiVersion: apps/v1, kind: Deployment, namespace: kube-system, name: coredns}
  facts: {targetExists: true, revision: {current: 2, to: 1, toHealthy: true}}
  expect:
    outcome: AutoApprove
    reasons: [SafeRollback, Magic]
    policy: tend-default
    rule: rollback-auto
    requiredApprovals: 0
    approverGroups: [sre]
- name: right
  proposal:
    action: RollbackWorkload
    target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
  facts: {targetExists: true, revision: {current: 2, to: 1, toHealthy: true}}
  expect: {outcome: AutoApprove}
`))
	if err != nil {
		t.Fatalf("ParseSuites() error = %v", err)
	}
	rep, err := Run(t.Context(), pols, suites, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.OK() || rep.Passed() != 1 || rep.Failed() != 1 {
		t.Fatalf("Run() OK = %v, %d passed, %d failed; want not OK, 1 passed, 1 failed", rep.OK(), rep.Passed(), rep.Failed())
	}
	c := rep.Cases[0]
	if c.Passed() || c.Name() != "wrong/kube-system rollback is not automatic" {
		t.Fatalf("case %q passed = %v; want the first case to fail", c.Name(), c.Passed())
	}
	want := `(-expected +got)
- outcome: AutoApprove
+ outcome: RequireApproval
- reasons: include [SafeRollback, Magic] (missing [Magic])
+ reasons: [ProtectedNamespace, SafeRollback]
- policy: "tend-default"
+ policy: "" (no rule decided: guard ProtectedResource, ProtectedNamespace)
- rule: "rollback-auto"
+ rule: "" (no rule decided: guard ProtectedResource, ProtectedNamespace)
- requiredApprovals: 0
+ requiredApprovals: 1
- approverGroups: [sre]
+ approverGroups: []
`
	if diff := cmp.Diff(want, c.Diff()); diff != "" {
		t.Errorf("Diff() mismatch (-want +got):\n%s", diff)
	}
	if d := rep.Cases[1].Diff(); d != "" {
		t.Errorf("Diff() of a passing case = %q, want empty", d)
	}
}

// TestRunInvalidPolicy checks that an invalid policy is reported and that,
// as in a cluster, it denies the proposals in its scope.
func TestRunInvalidPolicy(t *testing.T) {
	pols, err := policies.ParsePolicies([]byte(`apiVersion: tend.dev/v1alpha1
kind: GatePolicy
metadata: {name: broken}
spec:
  rules:
  - name: typo
    when: proposal.actoin == "ScaleWorkload"
    outcome: Deny
    reason: Typo
`))
	if err != nil {
		t.Fatal(err)
	}
	suites := []Suite{{Name: "s", Cases: []Case{{
		Name:     "denied",
		Proposal: v1alpha1.ProposalSpec{Action: v1alpha1.ActionScaleWorkload, Target: v1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"}},
		Expect:   Expectation{Outcome: v1alpha1.OutcomeDeny, Reasons: []string{policies.ReasonPolicyInvalid}},
	}}}}
	rep, err := Run(t.Context(), pols, suites, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	inv := rep.Invalid()
	if len(inv) != 1 || inv[0].Name != "broken" || !strings.Contains(inv[0].Err.Error(), `rule "typo"`) {
		t.Fatalf("Invalid() = %+v, want policy broken naming rule typo", inv)
	}
	if rep.Failed() != 0 || rep.OK() {
		t.Errorf("Run() %d failed, OK = %v; want the case to pass and the report not OK", rep.Failed(), rep.OK())
	}
}

func TestRunFilter(t *testing.T) {
	pols, suites := loadBundle(t)
	for _, tc := range []struct {
		run  string
		want []string
	}{
		{run: "kill switch", want: []string{"default-bundle/the kill switch holds even a safe rollback"}},
		{run: "^default-bundle/draining", want: []string{
			"default-bundle/draining a node needs a human",
			"default-bundle/draining a second node at once is denied",
			"default-bundle/draining a Deployment is the wrong kind and is denied",
		}},
		{run: "^draining a node", want: []string{"default-bundle/draining a node needs a human"}},
		{run: "no such case", want: nil},
	} {
		t.Run(tc.run, func(t *testing.T) {
			rep, err := Run(t.Context(), pols, suites, Options{Run: regexp.MustCompile(tc.run)})
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			var got []string
			for i := range rep.Cases {
				got = append(got, rep.Cases[i].Name())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cases run mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunCaseTime checks that a case's now and relative times reach the
// guards: a freeze applies only while it lasts.
func TestRunCaseTime(t *testing.T) {
	pols, err := policies.ParsePolicies([]byte(`apiVersion: tend.dev/v1alpha1
kind: GatePolicy
metadata: {name: frozen}
spec:
  rules:
  - name: all
    when: "true"
    outcome: AutoApprove
    reason: Fine
  guards:
    freezes:
    - {name: launch, start: "2026-05-01T00:00:00Z", end: "2026-05-02T00:00:00Z"}
`))
	if err != nil {
		t.Fatal(err)
	}
	suites, err := ParseSuites("freeze_test.yaml", []byte(`apiVersion: tend.dev/v1alpha1
kind: GatePolicyTest
metadata: {name: freeze}
cases:
- name: during
  now: "2026-05-01T12:00:00Z"
  proposal: {action: RestartWorkload, target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}}
  expect: {outcome: RequireApproval, reasons: [ChangeFreeze]}
- name: after
  now: "2026-05-02T00:00:00Z"
  proposal: {action: RestartWorkload, target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}}
  facts: {targetExists: true}
  expect: {outcome: AutoApprove, policy: frozen, rule: all}
- name: default time is before
  proposal: {action: RestartWorkload, target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}}
  facts: {targetExists: true}
  expect: {outcome: AutoApprove}
`))
	if err != nil {
		t.Fatalf("ParseSuites() error = %v", err)
	}
	rep, err := Run(t.Context(), pols, suites, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	for i := range rep.Cases {
		if c := &rep.Cases[i]; !c.Passed() {
			t.Errorf("case %q failed:\n%s", c.Name(), c.Diff())
		}
	}
	if !rep.OK() {
		t.Errorf("Report.OK() = false")
	}
	if got := rep.Cases[2].Now; !got.Equal(DefaultNow) {
		t.Errorf("now of a case without one = %v, want DefaultNow %v", got, DefaultNow)
	}
}

// TestPolicyDocsExample checks that the example test file in docs/policies.md
// parses and passes against the default bundle, so that the documentation
// stays true.
func TestPolicyDocsExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Testing policies")
	if !ok {
		t.Fatal(`docs/policies.md has no "## Testing policies" section`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the Testing policies section has no YAML example")
	}
	block, _, _ = strings.Cut(block, "```")
	suites, err := ParseSuites("docs/policies.md", []byte(block))
	if err != nil {
		t.Fatalf("ParseSuites(example) error = %v", err)
	}
	pols, _ := loadBundle(t)
	rep, err := Run(t.Context(), pols, suites, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	for i := range rep.Cases {
		if c := &rep.Cases[i]; !c.Passed() {
			t.Errorf("example case %q failed:\n%s", c.Name(), c.Diff())
		}
	}
	if !rep.OK() {
		t.Errorf("the example did not pass: %d passed, %d failed", rep.Passed(), rep.Failed())
	}
}
