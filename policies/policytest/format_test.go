package policytest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

const header = "apiVersion: tend.dev/v1alpha1\nkind: GatePolicyTest\nmetadata: {name: s}\n"

const okCase = `- name: ok
  proposal: {action: RollbackWorkload, target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}}
  expect: {outcome: AutoApprove}
`

func TestParseSuites(t *testing.T) {
	data := []byte("# comment only\n---\n" + header + "cases:\n" + okCase + `- name: full
  now: "2026-06-01T08:30:00+02:00"
  proposal:
    action: ScaleWorkload
    target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}
    parameters: {scale: {replicas: 4}}
    proposer: {username: alice, groups: [sre]}
  target: {labels: {app: web}, ownerKind: ReplicaSet, ownerName: web-1, replicas: 2, exists: true}
  namespace: {labels: {team: a}, exists: false}
  state:
    killSwitch: true
    nodesDisrupted: 1
    breaker: {tripped: true, reason: why, resetAgo: 2h}
    recent:
    - {action: RollbackWorkload, namespace: shop, phase: Failed, createdAgo: 10m, finishedAgo: 5m}
    - {createdAgo: 1m}
  expect:
    outcome: Deny
    reasons: [A, B]
    policy: ""
    rule: r
    requiredApprovals: 0
    approverGroups: []
---
apiVersion: tend.dev/v1alpha1
kind: GatePolicyTest
metadata: {name: second}
cases:
` + okCase)
	suites, err := ParseSuites("x_test.yaml", data)
	if err != nil {
		t.Fatalf("ParseSuites() error = %v", err)
	}
	if len(suites) != 2 || suites[0].Name != "s" || suites[0].Document != 1 || suites[1].Name != "second" || suites[1].Document != 2 || suites[0].Source != "x_test.yaml" {
		t.Fatalf("ParseSuites() suites = %+v", suites)
	}
	c := suites[0].Cases[1]
	now := time.Date(2026, 6, 1, 6, 30, 0, 0, time.UTC)
	if !c.now().Equal(now) {
		t.Errorf("now() = %v, want %v", c.now(), now)
	}
	in := c.input()
	wantIn := policies.Input{
		Action: "ScaleWorkload", Risk: "Medium",
		Parameters: policies.Parameters{Scale: policies.ScaleParameters{Replicas: 4}},
		Target: policies.Target{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web",
			Labels: map[string]string{"app": "web"}, OwnerKind: "ReplicaSet", OwnerName: "web-1", Replicas: 2, Exists: true},
		Namespace: policies.Namespace{Name: "shop", Labels: map[string]string{"team": "a"}, Exists: false},
		Proposer:  policies.Proposer{Username: "alice", Groups: []string{"sre"}},
		Change:    policies.Change{Replicas: 4},
	}
	if diff := cmp.Diff(wantIn, in); diff != "" {
		t.Errorf("input() mismatch (-want +got):\n%s", diff)
	}
	wantState := policies.State{
		NodesDisrupted: 1,
		Breaker:        policies.BreakerState{Tripped: true, Reason: "why", ResetAt: now.Add(-2 * time.Hour)},
		Recent: []policies.ProposalRecord{
			{Action: "RollbackWorkload", Namespace: "shop", Phase: "Failed", Created: now.Add(-10 * time.Minute), Finished: now.Add(-5 * time.Minute)},
			{Phase: "Pending", Created: now.Add(-time.Minute)},
		},
	}
	if diff := cmp.Diff(wantState, c.State.state(now)); diff != "" {
		t.Errorf("state() mismatch (-want +got):\n%s", diff)
	}
	if !c.State.KillSwitch || c.Expect.Policy == nil || *c.Expect.Policy != "" || c.Expect.ApproverGroups == nil || len(c.Expect.ApproverGroups) != 0 {
		t.Errorf("expectation or kill switch lost: %+v", c)
	}
	// Facts default to existing.
	if in := suites[0].Cases[0].input(); !in.Target.Exists || !in.Namespace.Exists {
		t.Errorf("input() of a case without facts: target exists %v, namespace exists %v; want true, true", in.Target.Exists, in.Namespace.Exists)
	}
	if e := suites[0].Cases[0].Expect; e.Policy != nil || e.Rule != nil || e.RequiredApprovals != nil || e.ApproverGroups != nil {
		t.Errorf("unset expectations decoded as set: %+v", e)
	}
}

func TestParseSuitesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		// want are substrings of the error.
		want []string
	}{
		{name: "unknown field in a case", data: header + "cases:\n" + okCase + `- name: typo
  proposal: {action: RollbackWorkload, target: {apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web}}
  expect: {outcom: AutoApprove}
`, want: []string{"f_test.yaml: document 0", `case 1 "typo"`, `unknown field "expect.outcom"`}},
		{name: "unknown field in the proposal", data: header + "cases:\n" + `- name: p
  proposal: {action: RollbackWorkload, targt: {}}
  expect: {outcome: AutoApprove}
`, want: []string{`case 0 "p"`, `unknown field "proposal.targt"`}},
		{name: "field names are case-sensitive", data: header + "cases:\n" + `- name: p
  proposal: {Action: RollbackWorkload}
  expect: {outcome: AutoApprove}
`, want: []string{`case 0 "p"`, `unknown field "proposal.Action"`}},
		{name: "unknown top-level field", data: header + "case: []\n", want: []string{`unknown field "case"`}},
		{name: "duplicate field", data: header + "cases:\n" + `- name: p
  name: q
  proposal: {action: RollbackWorkload}
  expect: {outcome: AutoApprove}
`, want: []string{"document 0", `key "name" already set`}},
		{name: "wrong kind", data: "apiVersion: tend.dev/v1alpha1\nkind: GatePolicy\nmetadata: {name: p}\n", want: []string{`kind is "GatePolicy"`, "files not named *_test.yaml"}},
		{name: "wrong apiVersion", data: "apiVersion: tend.dev/v1\nkind: GatePolicyTest\nmetadata: {name: p}\ncases: []\n", want: []string{`apiVersion is "tend.dev/v1"`}},
		{name: "no name", data: "apiVersion: tend.dev/v1alpha1\nkind: GatePolicyTest\ncases: []\n", want: []string{"metadata.name is empty"}},
		{name: "no cases", data: header + "cases: []\n", want: []string{`"s" has no cases`}},
		{name: "empty file", data: "# nothing\n", want: []string{"f_test.yaml: no GatePolicyTest document"}},
		{name: "duplicate case", data: header + "cases:\n" + okCase + okCase, want: []string{`case 1 "ok"`, "already used by case 0"}},
		{name: "no outcome", data: header + "cases:\n" + `- name: p
  proposal: {action: RollbackWorkload}
  expect: {reasons: [X]}
`, want: []string{`case 0 "p"`, "expect.outcome is empty"}},
		{name: "bad outcome", data: header + "cases:\n" + `- name: p
  proposal: {action: RollbackWorkload}
  expect: {outcome: Allow}
`, want: []string{`expect.outcome "Allow" is not one of`}},
		{name: "no action", data: header + "cases:\n" + `- name: p
  proposal: {target: {name: x}}
  expect: {outcome: Deny}
`, want: []string{"proposal.action is empty"}},
		{name: "no name in a case", data: header + "cases:\n" + `- proposal: {action: RollbackWorkload}
  expect: {outcome: Deny}
`, want: []string{"case 0:", "name is empty"}},
		{name: "bad time", data: header + "cases:\n" + `- name: p
  now: yesterday
  proposal: {action: RollbackWorkload}
  expect: {outcome: Deny}
`, want: []string{`case 0 "p"`, "yesterday"}},
		{name: "bad duration", data: header + "cases:\n" + `- name: p
  proposal: {action: RollbackWorkload}
  state: {recent: [{createdAgo: soon}]}
  expect: {outcome: Deny}
`, want: []string{`case 0 "p"`, "soon"}},
		{name: "bad recent", data: header + "cases:\n" + `- name: p
  proposal: {action: RollbackWorkload}
  facts: {targetExists: true, disruption: {podsAffected: 3, percent: 101}}
  state:
    recent: [{action: Reboot, phase: Done, createdAgo: 1m, finishedAgo: 2m}]
  expect: {outcome: Deny}
`, want: []string{"facts.disruption.percent 101", `recent[0].action "Reboot"`, `recent[0].phase "Done"`, "recent[0].finishedAgo"}},
		{name: "not YAML", data: header + "cases: [\n", want: []string{"f_test.yaml: document 0", "failed to parse YAML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSuites("f_test.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("ParseSuites() error = nil, want one containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidTest) {
				t.Errorf("ParseSuites() error = %v, want it to wrap ErrInvalidTest", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseSuites() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
		wantErr    bool
	}{
		{name: "policy bundle", data: "apiVersion: tend.dev/v1alpha1\nkind: GatePolicy\n---\n# c\n---\nkind: GatePolicyTest\n", want: []string{"GatePolicy", "GatePolicyTest"}},
		{name: "values file", data: "replicas: 3\nimage: {tag: x}\n", want: []string{""}},
		{name: "list and scalar", data: "- a\n---\nhello\n---\nkind: 3\n", want: []string{"", "", ""}},
		{name: "empty", data: "", want: nil},
		{name: "not YAML", data: "{{ .Values.x }}\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Kinds([]byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Kinds() error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Kinds() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsTestFile(t *testing.T) {
	for name, want := range map[string]bool{
		"default_test.yaml": true, "a/b_test.yml": true, "default.yaml": false,
		"test.yaml": false, "default_test.yaml.bak": false, "x_test.json": false,
	} {
		if got := IsTestFile(name); got != want {
			t.Errorf("IsTestFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzParseSuites checks that no input makes the parser panic and that
// what it accepts runs.
func FuzzParseSuites(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "bundle", "default_test.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(header + "cases:\n" + okCase))
	f.Add([]byte(header + "cases:\n- name: x\n  proposal: {action: DrainNode}\n  state: {recent: [{createdAgo: 1h, finishedAgo: 1m}]}\n  expect: {outcome: Deny}\n"))
	pols, err := policies.DefaultBundle()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		suites, err := ParseSuites("fuzz_test.yaml", data)
		if err != nil {
			return
		}
		rep, err := Run(t.Context(), pols, suites, Options{})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		n := 0
		for _, s := range suites {
			n += len(s.Cases)
		}
		if len(rep.Cases) != n {
			t.Fatalf("Run() ran %d cases of %d", len(rep.Cases), n)
		}
		for i := range rep.Cases {
			if c := &rep.Cases[i]; c.Got.Outcome == v1alpha1.OutcomeAutoApprove && c.Got.Policy == "" {
				t.Fatalf("case %q auto-approved without a deciding policy", c.Name())
			}
		}
	})
}
