package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tendops/tend/policies/policytest"
)

// runTend runs the tend command line with args and returns what it printed.
func runTend(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// writeFiles writes files (path relative to dir → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const scalePolicy = `apiVersion: tend.dev/v1alpha1
kind: GatePolicy
metadata:
  name: scale
spec:
  actions: [ScaleWorkload]
  rules:
    - name: small
      when: proposal.parameters.scale.replicas <= 10
      outcome: AutoApprove
      reason: SmallScale
    - name: large
      when: proposal.parameters.scale.replicas > 10
      outcome: RequireApproval
      approvals: {count: 2, groups: [sre]}
      reason: LargeScale
`

const scaleTests = `apiVersion: tend.dev/v1alpha1
kind: GatePolicyTest
metadata:
  name: scale
cases:
  - name: small scale is automatic
    proposal:
      action: ScaleWorkload
      target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
      parameters: {scale: {replicas: 4}}
    target: {replicas: 3}
    facts: {targetExists: true, replicas: 3, readyReplicas: 3}
    expect: {outcome: AutoApprove, policy: scale, rule: small}
  - name: large scale needs two approvals
    proposal:
      action: ScaleWorkload
      target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
      parameters: {scale: {replicas: 40}}
    target: {replicas: 3}
    facts: {targetExists: true, replicas: 3, readyReplicas: 3}
    expect: {outcome: RequireApproval, rule: large, requiredApprovals: 2, approverGroups: [sre]}
`

// TestPolicyTestCommandDefaultBundle runs `tend policy test policies/` on
// the repository: the default bundle's suite passes, and the fuzz corpora
// and other files under policies/ are left alone.
func TestPolicyTestCommandDefaultBundle(t *testing.T) {
	dir := filepath.Join("..", "..", "policies")
	stdout, stderr, err := runTend(t, "policy", "test", dir)
	if err != nil {
		t.Fatalf("tend policy test %s: %v\nstdout:\n%s\nstderr:\n%s", dir, err, stdout, stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bundle", "default_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	suites, err := policytest.ParseSuites("default_test.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	n := len(suites[0].Cases)
	pass := 0
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "PASS ") {
			pass++
		}
	}
	if pass != n {
		t.Errorf("PASS lines = %d, want %d (one per case)\n%s", pass, n, stdout)
	}
	if strings.Contains(stdout, "FAIL") || !strings.HasSuffix(stdout, "passed, 0 failed\n") {
		t.Errorf("output does not report every case passed:\n%s", stdout)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
}

// TestPolicyTestCommandFailure checks a failing case: the command fails and
// prints the diff of expected against got and the summary.
func TestPolicyTestCommandFailure(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"policies/scale.yaml": scalePolicy,
		"policies/scale_test.yaml": scaleTests + `  - name: large scale wrongly expected automatic
    proposal:
      action: ScaleWorkload
      target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
      parameters: {scale: {replicas: 40}}
    facts: {targetExists: true, replicas: 3, readyReplicas: 3}
    expect: {outcome: AutoApprove, reasons: [SmallScale], rule: small, requiredApprovals: 0}
`,
		// Files that are not policies must not break the run.
		"values.yaml":                   "replicas: 3\n",
		"chart/templates/policy.yaml":   "{{- if .Values.policy }}\n{{ .Files.Get \"x\" }}\n{{- end }}\n",
		"testdata/fuzz/FuzzX/seed":      "go test fuzz v1\n[]byte(\"x\")\n",
		".git/config.yaml":              "{{ broken",
		"crds/gatepolicies.yaml":        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gatepolicies.tend.dev}\n",
		"notes/readme.md":               "# GatePolicy notes\n",
		"notes/broken-but-not-ours.yml": "a: [\n",
	})
	stdout, stderr, err := runTend(t, "policy", "test", dir)
	if !errors.Is(err, errPolicyTestsFailed) {
		t.Fatalf("tend policy test: error = %v, want errPolicyTestsFailed\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if want := "1 of 3 cases failed"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	testFile := filepath.Join(dir, "policies", "scale_test.yaml")
	want := `PASS     scale/small scale is automatic
PASS     scale/large scale needs two approvals
FAIL     scale/large scale wrongly expected automatic (` + testFile + `)
         (-expected +got)
         - outcome: AutoApprove
         + outcome: RequireApproval
         - reasons: include [SmallScale] (missing [SmallScale])
         + reasons: [LargeScale]
         - rule: "small"
         + rule: "large"
         - requiredApprovals: 0
         + requiredApprovals: 2
         got RequireApproval by policy scale, rule large (2 approvals from a member of sre)
         - LargeScale [policy scale, rule large]
2 passed, 1 failed
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
}

// TestPolicyTestCommandInvalidPolicy checks that a policy that does not
// compile fails the run and that its error names the policy and the rule.
func TestPolicyTestCommandInvalidPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scale.yaml": strings.Replace(scalePolicy, "proposal.parameters.scale.replicas > 10", "proposal.parameters.scale.replica > 10", 1),
		// The policy denies what is in its scope, which this case expects.
		"scale_test.yaml": `apiVersion: tend.dev/v1alpha1
kind: GatePolicyTest
metadata: {name: broken}
cases:
  - name: denied while invalid
    proposal:
      action: ScaleWorkload
      target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
      parameters: {scale: {replicas: 4}}
    expect: {outcome: Deny, reasons: [PolicyInvalid], policy: scale}
`,
	})
	stdout, _, err := runTend(t, "policy", "test", dir)
	if !errors.Is(err, errPolicyTestsFailed) || !strings.Contains(err.Error(), "1 policy is invalid") {
		t.Fatalf("error = %v, want errPolicyTestsFailed saying 1 policy is invalid\n%s", err, stdout)
	}
	for _, want := range []string{
		"INVALID  GatePolicy scale (" + filepath.Join(dir, "scale.yaml") + "):\n",
		`rule "large": when does not compile`,
		"undefined field 'replica'",
		"PASS     broken/denied while invalid\n",
		"1 passed, 0 failed, 1 invalid policy\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
}

func TestPolicyTestCommandFlags(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"scale.yaml": scalePolicy, "scale_test.yml": scaleTests})

	stdout, _, err := runTend(t, "policy", "test", dir, "--run", "^large", "-v")
	if err != nil {
		t.Fatalf("tend policy test --run ^large -v: %v\n%s", err, stdout)
	}
	want := "Loaded GatePolicy scale from " + filepath.Join(dir, "scale.yaml") + `
PASS     scale/large scale needs two approvals
         RequireApproval by policy scale, rule large (2 approvals from a member of sre)
         - LargeScale [policy scale, rule large]
1 passed, 0 failed
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, _, err = runTend(t, "policy", "test", dir, "--run", "no such case")
	if !errors.Is(err, errPolicyTestsFailed) || !strings.Contains(err.Error(), `no case matches --run "no such case"`) {
		t.Errorf("--run matching nothing: error = %v, want errPolicyTestsFailed naming the pattern\n%s", err, stdout)
	}
}

// TestPolicyTestCommandErrors checks the errors that stop a run before any
// case is decided: each must name what is wrong and where.
func TestPolicyTestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		// args after `policy test`; "DIR" is replaced by the temp dir.
		args []string
		want []*regexp.Regexp
	}{
		{
			name: "unknown field in a case",
			files: map[string]string{"p.yaml": scalePolicy, "p_test.yaml": strings.Replace(scaleTests,
				"expect: {outcome: AutoApprove, policy: scale, rule: small}", "expect: {outcome: AutoApprove, polcy: scale}", 1)},
			args: []string{"DIR"},
			want: []*regexp.Regexp{regexp.MustCompile(`p_test\.yaml: document 0: GatePolicyTest "scale": case 0 "small scale is automatic": unknown field "expect\.polcy"`)},
		},
		{
			name:  "policy file with an unknown field",
			files: map[string]string{"p.yaml": strings.Replace(scalePolicy, "  rules:", "  rulez: []\n  rules:", 1), "p_test.yaml": scaleTests},
			args:  []string{"DIR"},
			want:  []*regexp.Regexp{regexp.MustCompile(`p\.yaml: policies: invalid policy bundle: document 0: .*unknown field "spec\.rulez"`)},
		},
		{
			name:  "policy defined twice",
			files: map[string]string{"a/p.yaml": scalePolicy, "b/p.yaml": scalePolicy, "p_test.yaml": scaleTests},
			args:  []string{"DIR"},
			want:  []*regexp.Regexp{regexp.MustCompile(`GatePolicy "scale" is defined in both .*a/p\.yaml and .*b/p\.yaml`)},
		},
		{
			name:  "explicit file that is neither",
			files: map[string]string{"values.yaml": "replicas: 3\n", "p_test.yaml": scaleTests},
			args:  []string{"DIR/values.yaml", "DIR/p_test.yaml"},
			want:  []*regexp.Regexp{regexp.MustCompile(`values\.yaml holds no GatePolicy and no GatePolicyTest document`)},
		},
		{
			name:  "no test files",
			files: map[string]string{"p.yaml": scalePolicy},
			args:  []string{"DIR"},
			want:  []*regexp.Regexp{regexp.MustCompile(`no test files \(\*_test\.yaml, \*_test\.yml\) found in `)},
		},
		{
			name:  "missing path",
			files: map[string]string{},
			args:  []string{"DIR/nope"},
			want:  []*regexp.Regexp{regexp.MustCompile(`cannot read PATH .*nope`)},
		},
		{
			name:  "bad --run",
			files: map[string]string{"p_test.yaml": scaleTests},
			args:  []string{"DIR", "--run", "("},
			want:  []*regexp.Regexp{regexp.MustCompile(`invalid --run pattern`)},
		},
		{
			name:  "no PATH",
			files: map[string]string{},
			args:  []string{},
			want:  []*regexp.Regexp{regexp.MustCompile(`requires at least 1 arg`)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			args := []string{"policy", "test"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			stdout, _, err := runTend(t, args...)
			if err == nil {
				t.Fatalf("tend %v: no error; stdout:\n%s", args, stdout)
			}
			if errors.Is(err, errPolicyTestsFailed) {
				t.Errorf("error = %v, want an error before any case ran", err)
			}
			for _, re := range tc.want {
				if !re.MatchString(err.Error()) {
					t.Errorf("error = %q, want it to match %s", err, re)
				}
			}
		})
	}
}
