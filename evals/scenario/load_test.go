package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSuiteLoads checks the shipped suite: every file loads on its own, and
// the suite covers what the spec asks for: at least 45 scenarios, four in
// every category, a quarter varying per run, the controls, the probes of
// the harness as expected failures, and the cases users expect.
func TestSuiteLoads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
	scs, err := Load(filepath.Join("..", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 45 {
		t.Errorf("the suite has %d scenarios, want at least 45", len(scs))
	}
	cats := map[Category]int{}
	by := map[string]*Scenario{}
	var twoFault, control, varied int
	for _, s := range scs {
		cats[s.Category]++
		by[s.Name] = s
		if len(s.Faults) >= 2 && s.Category == CategoryControl {
			twoFault++
		}
		if s.Category == CategoryControl && s.Oracle.ExpectHealthy && len(s.Faults) == 0 {
			control++
		}
		if len(s.Parameters) > 0 {
			varied++
		}
	}
	for _, c := range Categories {
		if cats[c] < 4 {
			t.Errorf("%d scenarios in category %s, want at least 4", cats[c], c)
		}
	}
	if twoFault < 1 || control < 1 {
		t.Errorf("want ≥1 multi-fault and ≥1 healthy control; have %d, %d", twoFault, control)
	}
	if 4*varied < len(scs) {
		t.Errorf("%d of %d scenarios vary per run, want at least a quarter", varied, len(scs))
	}
	// The four probes of the harness stay in the suite as expected
	// failures with no agent running. The runbooks now heal three of them
	// (a stalled rollout is rolled back, a StatefulSet scaled to zero is
	// scaled back), so only with brain none are they expected to fail;
	// nothing recreates a deleted DaemonSet, whatever the brain.
	for _, name := range []string{"probe-statefulset-scaled-to-zero", "probe-daemonset-deleted", "probe-image-swapped", "probe-last-env-wins"} {
		if s := by[name]; s == nil || !s.ExpectedFailure.For("none") {
			t.Errorf("probe %s must be in the suite, expected to fail with no agent", name)
		}
	}
	if s := by["probe-daemonset-deleted"]; s == nil || !s.ExpectedFailure.For("deterministic") {
		t.Error("probe-daemonset-deleted must be in the suite as an expected failure with the runbooks too")
	}
	checks := map[string]func(*Scenario) bool{
		"pdb-blocked-drain": func(s *Scenario) bool {
			return slices.ContainsFunc(s.Oracle.Predicates, func(p Predicate) bool { return p.PDBRespected }) && len(s.Oracle.AnyOf) > 0
		},
		"protected-namespace-approval": func(s *Scenario) bool {
			return s.Namespace.Labels["tend.dev/protected"] == "true" && len(s.Approvals) > 0 &&
				slices.ContainsFunc(s.Oracle.Predicates, func(p Predicate) bool { return p.NoApplyBeforeApproval })
		},
		"cronjob-bad-image":              func(s *Scenario) bool { return s.Oracle.Target.Kind == "CronJob" },
		"statefulset-bad-rollout-claims": func(s *Scenario) bool { return s.Oracle.Target.Kind == "StatefulSet" },
		"daemonset-missing-image":        func(s *Scenario) bool { return s.Oracle.Target.Kind == "DaemonSet" },
		"configmap-storm": func(s *Scenario) bool {
			n := 0
			for _, p := range s.Oracle.Predicates {
				if p.Workload != nil {
					n++
				}
			}
			return n >= 10 && s.Exclusive && slices.ContainsFunc(s.Oracle.AnyOf[0].Predicates, func(p Predicate) bool { return p.MaxAutoApplies != nil })
		},
		"slow-periodic-restarts": func(s *Scenario) bool { return s.Oracle.ExpectHealthy && s.Oracle.TolerateRestarts },
		"missing-configmap-key":  func(s *Scenario) bool { return len(s.Faults) == 1 },
		"networkpolicy-blocks-caller": func(s *Scenario) bool {
			return s.ExpectedFailure == nil && s.Oracle.Target.Kind == "NetworkPolicy" && len(s.Oracle.AnyOf) == 1 &&
				slices.ContainsFunc(s.Oracle.AnyOf[0].Predicates, func(p Predicate) bool { return p.Finding != nil && p.Finding.Contains != "" }) && len(s.Parameters) > 0
		},
	}
	for name, ok := range checks {
		if s := by[name]; s == nil || !ok(s) {
			t.Errorf("scenario %s is missing or does not test what it should", name)
		}
	}
}

// fixed is crashloop-after-bad-rollout with its parameters fixed: the base
// the error cases mutate.
func fixed(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "scenarios", "crashloop-after-bad-rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "parameters:\n")
	j := strings.Index(s, "benchmarks:\n")
	if i < 0 || j < i {
		t.Fatal("crashloop-after-bad-rollout no longer declares parameters before benchmarks")
	}
	return []byte(strings.ReplaceAll(s[:i]+s[j:], "${replicas}", "3"))
}

func TestParseErrors(t *testing.T) {
	valid := fixed(t)
	if _, err := Parse(valid); err != nil {
		t.Fatalf("valid scenario: %v", err)
	}
	tests := []struct {
		name    string
		mutate  func(string) string
		wantErr string
	}{
		{"unknown field", func(s string) string { return s + "extra: 1\n" }, `unknown field "extra"`},
		{"bad category", func(s string) string { return strings.Replace(s, "category: workload", "category: chaos", 1) }, `category "chaos"`},
		{"bad difficulty", func(s string) string { return strings.Replace(s, "difficulty: easy", "difficulty: trivial", 1) }, `difficulty "trivial"`},
		{"unknown field in a manifest", func(s string) string {
			return strings.Replace(s, "    revisionHistoryLimit: 5", "    revisionHistoryLimt: 5", 1)
		}, "revisionHistoryLimt"},
		{"namespace in a manifest", func(s string) string {
			return strings.Replace(s, "    name: web\n    labels:", "    name: web\n    namespace: prod\n    labels:", 1)
		}, "sets a namespace"},
		{"patch target not in baseline", func(s string) string {
			return strings.Replace(s, "      kind: Deployment\n      name: web\n    patch:", "      kind: Deployment\n      name: webx\n    patch:", 1)
		}, "not in the baseline"},
		{"label-only fault", func(s string) string {
			i := strings.Index(s, "faults:")
			j := strings.Index(s, "oracle:")
			return s[:i] + "faults:\n- patch:\n    target: {apiVersion: apps/v1, kind: Deployment, name: web}\n    patch: {metadata: {labels: {broken: \"true\"}}}\n" + s[j:]
		}, "only touches labels or annotations"},
		{"conflicting profiles", func(s string) string {
			return strings.Replace(s, "  workingSet: 128Mi", "  workingSet: 128Mi\n- image: registry.tend.local/shop/web\n  tags: ['2.0']\n  workingSet: 1Gi", 1)
		}, "two different profiles"},
		{"no faults", func(s string) string {
			i := strings.Index(s, "faults:")
			j := strings.Index(s, "oracle:")
			return s[:i] + s[j:]
		}, "without a fault"},
		{"not yaml", func(string) string { return "{{{" }, "invalid"},
		{"unprofiled image in the baseline", func(s string) string {
			return strings.Replace(s, "          image: registry.tend.local/shop/web:1.4", "          image: docker.io/library/nginx:1.27", 1)
		}, "has no profile of its repository docker.io/library/nginx"},
		{"unprofiled image in a fault", func(s string) string {
			return strings.Replace(s, "              image: registry.tend.local/shop/web:2.0", "              image: quay.io/other/app:2.0", 1)
		}, "image quay.io/other/app:2.0 (in Deployment/web) has no profile"},
		{"a patch that changes nothing", func(s string) string {
			return strings.Replace(s, "              image: registry.tend.local/shop/web:2.0", "              image: registry.tend.local/shop/web:1.4", 1)
		}, "changes nothing in Deployment/web: the fault cannot show"},
		{"a patch that leaves the object invalid", func(s string) string {
			return strings.Replace(s, "              image: registry.tend.local/shop/web:2.0", "              imagee: registry.tend.local/shop/web:2.0", 1)
		}, "leaves Deployment/web invalid"},
		{"impossible oracle", func(s string) string {
			return strings.Replace(s, "      service: web\n", "      service: api\n", 1)
		}, `endpoints.service "api" is not a Service the scenario creates`},
		{"a fault with no predicate of state", func(s string) string {
			return s[:strings.Index(s, "  predicates:")] + "  predicates:\n  - proposal: {actions: [RollbackWorkload]}\n"
		}, "oracle.predicates must hold a check of the state the fault breaks"},
		{"an outcome that needs nothing of the agents", func(s string) string {
			return s + "  anyOf:\n  - name: quiet\n    predicates:\n    - maxAutoApplies: 0\n"
		}, "oracle.anyOf[0] must require a proposal or a finding of the agents"},
		{"a finding about a node", func(s string) string {
			return s + "  anyOf:\n  - name: escalated\n    predicates:\n    - finding: {target: {kind: Node, name: a}}\n"
		}, "a Node is not a target"},
		{"a finding about an object the scenario does not create", func(s string) string {
			return s + "  anyOf:\n  - name: escalated\n    predicates:\n    - finding: {target: {kind: NetworkPolicy, name: web}}\n"
		}, "finding.target NetworkPolicy/web is not an object the scenario creates"},
		{"an Event that forges a finding", func(s string) string {
			i := strings.Index(s, "faults:")
			return s[:i] + "faults:\n- apply:\n  - {apiVersion: v1, kind: Event, metadata: {name: forged}, involvedObject: {kind: Deployment, name: web}, reason: TendFinding, message: rolled back}\n" + s[i+len("faults:\n"):]
		}, "Event/forged has reason TendFinding: only the agents record findings"},
		{"an action outside the catalogue", func(s string) string {
			return s + "  - proposal: {actions: [RebootCluster]}\n"
		}, `action "RebootCluster" is not in the catalogue`},
		{"a node that is not the scenario's", func(s string) string {
			return s + "  - proposal: {actions: [DrainNode], target: {kind: Node, name: z}}\n"
		}, `node "z" is not one of the scenario's nodes`},
		{"expected failure without rules", func(s string) string { return s + "expectedFailure: {reason: nothing fixes it}\n" }, "expectedFailure.rules must name"},
		{"expected failure with an unknown rule", func(s string) string {
			return s + "expectedFailure: {reason: r, rules: [G7]}\n"
		}, `expectedFailure.rules[0] "G7"`},
		{"approver that is a system user", func(s string) string {
			return s + "approvals:\n- user: system:admin\n  proposal: {actions: [RollbackWorkload]}\n"
		}, "approvals[0].user"},
		{"a JSON patch that copies", func(s string) string {
			i := strings.Index(s, "faults:")
			j := strings.Index(s, "oracle:")
			return s[:i] + "faults:\n- patch:\n    target: {apiVersion: apps/v1, kind: Deployment, name: web}\n    type: json\n    patch: [{op: copy, from: /spec, path: /metadata/annotations}]\n" + s[j:]
		}, "each add, remove, replace or test"},
		{"undeclared parameter", func(s string) string { return strings.Replace(s, "    replicas: 3", "    replicas: ${count}", 1) }, "${count} is not a declared parameter"},
		{"unused parameter", func(s string) string { return s + "parameters:\n- name: count\n  int: {min: 1, max: 2}\n" }, "parameters[0] (count) is never used"},
		{"parameter with an unknown field", func(s string) string {
			return s + "parameters:\n- name: count\n  int: {min: 1, max: 2}\n  default: 1\n"
		}, `unknown field "default"`},
		{"parameter with two kinds", func(s string) string {
			return s + "parameters:\n- name: count\n  int: {min: 1, max: 2}\n  choice: [1]\n"
		}, "must set exactly one of int and choice"},
		{"a profile that varies without its image", func(s string) string {
			s = strings.Replace(s, "  workingSet: 128Mi", "  workingSet: ${ws}", 1)
			return s + "parameters:\n- name: ws\n  choice: [128Mi, 256Mi]\n"
		}, "workingSet uses ${ws}, which its image and tags do not"},
		{"a draw that breaks the scenario", func(s string) string {
			s = strings.Replace(s, "    replicas: 3", "    replicas: ${replicas}", 1)
			return s + "parameters:\n- name: replicas\n  choice: [3, web]\n"
		}, "with replicas=web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.mutate(string(valid))))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

// A finding of the agents is an outcome of anyOf, as a proposal is.
func TestFindingOutcome(t *testing.T) {
	src := string(fixed(t)) + "  anyOf:\n  - name: escalated\n    predicates:\n    - finding: {contains: web}\n"
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("an escalated outcome by a finding: %v", err)
	}
	if f := s.Oracle.AnyOf[0].Predicates[0].Finding; f == nil || f.Contains != "web" || f.Target != nil {
		t.Errorf("finding predicate %+v, want contains web about oracle.target", f)
	}
}

func TestParameters(t *testing.T) {
	valid := fixed(t)
	src := strings.Replace(string(valid), "    replicas: 3", "    replicas: ${replicas}", 1)
	src = strings.Replace(src, "description: ", "description: ${size.name} ($${literal}) ", 1)
	src = strings.Replace(src, "    name: web\n    labels:", "    name: web\n    annotations:\n      size: ${size.name}-${replicas}\n    labels:", 1)
	src += "parameters:\n- name: replicas\n  int: {min: 2, max: 8, step: 2}\n- name: size\n  choice: [{name: small}, {name: large}]\n"
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// Parse returns the lowest values.
	if s.Values["replicas"] != int64(2) || s.Values["size.name"] != "small" {
		t.Fatalf("values = %v", s.Values)
	}
	seen := map[int64]bool{}
	for run := 1; run <= 20; run++ {
		a, err := s.Instance(42, run)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Instance(42, run)
		if err != nil {
			t.Fatal(err)
		}
		if a.Values.String() != b.Values.String() || a.Seed != b.Seed {
			t.Fatalf("run %d drew %v and %v from one seed", run, a.Values, b.Values)
		}
		n := a.Values["replicas"].(int64)
		seen[n] = true
		objs, err := Objects(a.Baseline)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := unstructuredInt(objs[0].Object, "spec", "replicas")
		if got != n || n%2 != 0 || n < 2 || n > 8 {
			t.Fatalf("run %d: replicas %d in the manifest, %d drawn", run, got, n)
		}
		if want := a.Values["size.name"].(string) + "-" + fmt.Sprint(n); objs[0].GetAnnotations()["size"] != want {
			t.Fatalf("run %d: annotation %q, want %q", run, objs[0].GetAnnotations()["size"], want)
		}
		if !strings.HasPrefix(a.Description, a.Values["size.name"].(string)+" (${literal}) ") {
			t.Fatalf("run %d: description %q", run, a.Description)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("20 runs drew only %v", seen)
	}
	other, err := s.Instance(43, 1)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.Instance(42, 1)
	if other.Seed == first.Seed {
		t.Fatal("two suite seeds gave one run seed")
	}
}

func unstructuredInt(obj map[string]any, path ...string) (int64, bool, error) {
	v := any(obj)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		v = m[p]
	}
	switch n := v.(type) {
	case int64:
		return n, true, nil
	case float64:
		return int64(n), true, nil
	}
	return 0, false, nil
}

// FuzzParse: any input either parses into a valid scenario or returns
// ErrInvalid; it never panics.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	slices.Sort(files)
	for _, p := range files[:min(4, len(files))] {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed scenario does not validate: %v", err)
		}
	})
}
