package policies

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// autoAll auto-approves every action, so that any RequireApproval comes from
// a guard.
func autoAll(guards *v1alpha1.GuardLimits) v1alpha1.GatePolicy {
	p := policy("auto-all", nil, rule("always", `true`, v1alpha1.OutcomeAutoApprove, "Fine"))
	p.Spec.Guards = guards
	return p
}

func records(n int, action, phase, ns string, created, finished time.Time) []ProposalRecord {
	out := make([]ProposalRecord, n)
	for i := range out {
		out[i] = ProposalRecord{Action: action, Phase: phase, Namespace: ns, Created: created, Finished: finished}
	}
	return out
}

func TestGuardsFire(t *testing.T) {
	rollback := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	cordon := input(v1alpha1.ActionCordonNode, "", nil)
	cordon.Target = Target{APIVersion: "v1", Kind: "Node", Name: "node-1", Exists: true}
	uncordon := cordon
	uncordon.Action = string(v1alpha1.ActionUncordonNode)
	drainBlocked := cordon
	drainBlocked.Action = string(v1alpha1.ActionDrainNode)
	drainBlocked.Facts.Disruption = DisruptionFacts{Pods: 3, Percent: 34, PDB: "shop/web", PDBAllowed: 0}
	patch := func(paths ...string) Input {
		in := input(v1alpha1.ActionPatchWorkload, "shop", nil)
		in.Parameters.PatchPaths = paths
		return in
	}
	servicePatch := func(paths ...string) Input {
		in := patch(paths...)
		in.Target.APIVersion, in.Target.Kind = "v1", "Service"
		return in
	}
	window := func(schedule string, d time.Duration, tz string) []v1alpha1.ChangeWindow {
		return []v1alpha1.ChangeWindow{{Schedule: schedule, Duration: metav1.Duration{Duration: d}, TimeZone: tz}}
	}
	ago := func(d time.Duration) time.Time { return noon.Add(-d) }
	disrupting := func(percent int64) Input {
		in := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
		in.Facts.Disruption.Percent = percent
		return in
	}
	noFacts := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	noFacts.Facts = Facts{}
	unhealthy := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	unhealthy.Facts.Revision.ToHealthy = false
	noEarlier := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	noEarlier.Facts.Revision = RevisionFacts{Current: 1}
	byProposer := func(n int, user string, phase string) []ProposalRecord {
		rs := records(n, "RestartWorkload", phase, "other", ago(5*time.Minute), ago(4*time.Minute))
		for i := range rs {
			rs[i].Proposer, rs[i].Target = user, TargetKey("Deployment", "other", fmt.Sprintf("w%d", i))
		}
		return rs
	}
	onTarget := func(n int, phase string) []ProposalRecord {
		rs := records(n, "RestartWorkload", phase, "shop", ago(5*time.Minute), ago(4*time.Minute))
		for i := range rs {
			rs[i].Proposer, rs[i].Target = fmt.Sprintf("user-%d", i), TargetKey("Deployment", "shop", "web")
		}
		return rs
	}
	inRun := func(run RunFacts) Input {
		in := input(v1alpha1.ActionSetResources, "shop", nil)
		in.Facts.Run = run
		return in
	}
	const runName = "shop/nightly-29610360"

	tests := []struct {
		name     string
		guards   *v1alpha1.GuardLimits
		in       Input
		st       State
		now      time.Time
		wantCode string // "" means AutoApprove
		wantDeny bool   // the guard denies rather than holds for a human
		wantTrip bool
	}{
		{name: "nothing going on", in: rollback},
		{name: "facts: none gathered", in: noFacts, wantCode: ReasonFactsMissing},
		{name: "facts: rollback to a revision never seen healthy", in: unhealthy, wantCode: ReasonRevisionNotHealthy},
		{name: "facts: rollback with no earlier revision", in: noEarlier, wantCode: ReasonRevisionNotHealthy},
		{name: "blast radius: too many replicas at once", in: disrupting(100), wantCode: ReasonBlastRadius, wantDeny: true},
		{name: "blast radius: within the default", in: disrupting(25)},
		{name: "blast radius: tightened by a policy", guards: &v1alpha1.GuardLimits{MaxDisruptedPercent: ptr.To[int32](20)}, in: disrupting(25), wantCode: ReasonBlastRadius, wantDeny: true},
		{name: "blast radius: nodes already cordoned", in: cordon, st: State{NodesDisrupted: 1}, wantCode: ReasonBlastRadius, wantDeny: true},
		{name: "blast radius: uncordoning does not count", in: uncordon, st: State{NodesDisrupted: 1}},
		{name: "disruption budget: a drain a PDB refuses", in: drainBlocked, wantCode: ReasonDisruptionBudget, wantDeny: true},
		{name: "blast radius: first node", in: cordon},
		{name: "applying in namespace", in: rollback, st: State{Recent: records(3, "RollbackWorkload", "Applying", "shop", ago(time.Hour), time.Time{})}, wantCode: ReasonTooManyApplying},
		{name: "applying elsewhere does not count for the namespace", in: rollback, st: State{Recent: records(3, "RollbackWorkload", "Verifying", "other", ago(2*time.Hour), time.Time{})}},
		{name: "applying in cluster", guards: &v1alpha1.GuardLimits{MaxApplyingPerCluster: ptr.To[int32](2)}, in: rollback, st: State{Recent: records(2, "RollbackWorkload", "Verifying", "other", ago(2*time.Hour), time.Time{})}, wantCode: ReasonTooManyApplying},
		{name: "rate: default 30 per 10m in the cluster", in: rollback, st: State{Recent: records(30, "RollbackWorkload", "Succeeded", "a", ago(time.Minute), ago(time.Minute))}, wantCode: ReasonRateLimited},
		{name: "rate: old proposals do not count", in: rollback, st: State{Recent: records(30, "RollbackWorkload", "Succeeded", "a", ago(11*time.Minute), ago(11*time.Minute))}},
		{name: "rate: default 10 per 10m per proposer", in: rollback, st: State{Recent: byProposer(10, "system:serviceaccount:tend:agent", "Succeeded")}, wantCode: ReasonRateLimited},
		{name: "rate: another proposer's volume does not count", in: rollback, st: State{Recent: byProposer(10, "system:serviceaccount:other:agent", "Succeeded")}},
		{name: "rate: default 3 per 10m per target", in: rollback, st: State{Recent: onTarget(3, "Succeeded")}, wantCode: ReasonRateLimited},
		{name: "rate: a policy's cluster limit keeps the default per-proposer one",
			guards: &v1alpha1.GuardLimits{RateLimits: []v1alpha1.RateLimit{{Action: "*", Max: 100, Window: metav1.Duration{Duration: time.Hour}}}},
			in:     rollback, st: State{Recent: byProposer(10, "system:serviceaccount:tend:agent", "Succeeded")}, wantCode: ReasonRateLimited},
		{name: "rate: per action limit", guards: &v1alpha1.GuardLimits{RateLimits: []v1alpha1.RateLimit{{Action: "RollbackWorkload", Max: 1, Window: metav1.Duration{Duration: time.Hour}}}},
			in: rollback, st: State{Recent: records(1, "RollbackWorkload", "Succeeded", "a", ago(30*time.Minute), ago(30*time.Minute))}, wantCode: ReasonRateLimited},
		{name: "rate: other actions do not count against a per-action limit", guards: &v1alpha1.GuardLimits{RateLimits: []v1alpha1.RateLimit{{Action: "RollbackWorkload", Max: 1, Window: metav1.Duration{Duration: time.Hour}}}},
			in: rollback, st: State{Recent: records(1, "ScaleWorkload", "Succeeded", "a", ago(30*time.Minute), ago(30*time.Minute))}},
		{name: "breaker: failures trip it", in: rollback, st: State{Recent: records(10, "RollbackWorkload", "RolledBack", "a", ago(50*time.Minute), ago(40*time.Minute))}, wantCode: ReasonCircuitOpen, wantTrip: true},
		{name: "breaker: failures before a reset do not count", in: rollback, st: State{Recent: records(10, "RollbackWorkload", "Failed", "a", ago(50*time.Minute), ago(40*time.Minute)), Breaker: BreakerState{ResetAt: ago(30 * time.Minute)}}},
		{name: "breaker: the proposer's own failures hold it", in: rollback, st: State{Recent: byProposer(3, "system:serviceaccount:tend:agent", "Failed")}, wantCode: ReasonProposerBreakerOpen},
		{name: "breaker: another proposer's failures do not hold it", in: rollback, st: State{Recent: byProposer(3, "system:serviceaccount:other:agent", "RolledBack")}},
		{name: "breaker: failures on the target hold it", in: rollback, st: State{Recent: onTarget(2, "RolledBack")}, wantCode: ReasonTargetBreakerOpen},
		{name: "breaker: volume trips it", guards: &v1alpha1.GuardLimits{CircuitBreaker: &v1alpha1.CircuitBreakerLimits{MaxProposals: ptr.To[int32](5)}, RateLimits: []v1alpha1.RateLimit{{Action: "*", Max: 100, Window: metav1.Duration{Duration: time.Minute}}}},
			in: rollback, st: State{Recent: records(5, "RestartWorkload", "Succeeded", "a", ago(20*time.Minute), ago(20*time.Minute))}, wantCode: ReasonCircuitOpen, wantTrip: true},
		{name: "breaker: stays open until reset", in: rollback, st: State{Breaker: BreakerState{Tripped: true, Reason: "3 failures"}}, wantCode: ReasonCircuitOpen},
		{name: "freeze: inside", guards: &v1alpha1.GuardLimits{Freezes: []v1alpha1.Freeze{{Name: "sale", Start: metav1.NewTime(ago(time.Hour)), End: metav1.NewTime(noon.Add(time.Hour)), Reason: "peak traffic"}}},
			in: rollback, wantCode: ReasonChangeFreeze},
		{name: "freeze: after", guards: &v1alpha1.GuardLimits{Freezes: []v1alpha1.Freeze{{Name: "sale", Start: metav1.NewTime(ago(3 * time.Hour)), End: metav1.NewTime(ago(time.Hour))}}},
			in: rollback},
		{name: "change window: inside (daily 09:00 UTC for 8h)", guards: &v1alpha1.GuardLimits{ChangeWindows: window("0 9 * * *", 8*time.Hour, "")}, in: rollback},
		{name: "change window: weekdays only, and noon is a Saturday", guards: &v1alpha1.GuardLimits{ChangeWindows: window("0 9 * * 1-5", 8*time.Hour, "")}, in: rollback, wantCode: ReasonOutsideChangeWindow},
		{name: "change window: outside", guards: &v1alpha1.GuardLimits{ChangeWindows: window("0 22 * * *", 2*time.Hour, "")}, in: rollback, wantCode: ReasonOutsideChangeWindow},
		{name: "change window: time zone", guards: &v1alpha1.GuardLimits{ChangeWindows: window("0 13 * * *", time.Hour, "Europe/Berlin")}, in: rollback},
		{name: "run window: a change of the run inside its window", in: inRun(RunFacts{Name: runName, Member: true, WindowEnd: noon.Add(time.Minute)})},
		{name: "run window: a change of the run once its window closed", in: inRun(RunFacts{Name: runName, Member: true, WindowEnd: noon}), wantCode: ReasonOutsideRunWindow, wantDeny: true},
		{name: "run window: an undo after the window closed", in: inRun(RunFacts{Name: runName, Member: true, Undo: true, WindowEnd: ago(time.Hour)})},
		{name: "run window: a member without a window", in: inRun(RunFacts{Name: runName, Member: true}), wantCode: ReasonOutsideRunWindow, wantDeny: true},
		{name: "run window: naming a run that does not list it", in: inRun(RunFacts{Name: runName}), wantCode: ReasonNotInRun, wantDeny: true},
		{name: "run window: claiming to be an undo does not help a non-member", in: inRun(RunFacts{Name: runName, Undo: true}), wantCode: ReasonNotInRun, wantDeny: true},
		{name: "patch: a path in the catalogue's table", in: patch("/spec/template/spec/containers/0/readinessProbe/httpGet/port")},
		{name: "patch: a path outside the table", in: patch("/spec/replicas"), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
		{name: "patch: no path at all", in: patch(), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
		{name: "patch: a policy's allowed path", guards: &v1alpha1.GuardLimits{AllowedPatchPaths: []string{"/spec/template/spec/containers"}}, in: patch("/spec/template/spec/containers/0/image")},
		{name: "patch: in the table, outside a policy's allowed paths", guards: &v1alpha1.GuardLimits{AllowedPatchPaths: []string{"/spec/template/spec/containers"}}, in: patch("/spec/template/spec/tolerations/0"), wantCode: ReasonPatchPathNotAllowed},
		{name: "patch: resources are SetResources' business", guards: &v1alpha1.GuardLimits{AllowedPatchPaths: []string{"/spec"}}, in: patch("/spec/template/spec/containers/0/resources/limits/memory"), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
		{name: "patch: securityContext is never patched", guards: &v1alpha1.GuardLimits{AllowedPatchPaths: []string{"/spec"}}, in: patch("/spec/template/spec/containers/0/securityContext/privileged"), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
		{name: "patch: finalizers are never patched", guards: &v1alpha1.GuardLimits{AllowedPatchPaths: []string{"/"}}, in: patch("/metadata/finalizers/0"), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
		{name: "patch: a Service's selector", in: servicePatch("/spec/selector/app")},
		{name: "patch: a Service's type", in: servicePatch("/spec/type"), wantCode: ReasonPatchPathNotAllowed, wantDeny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate(t, Options{}, autoAll(tt.guards))
			now := tt.now
			if now.IsZero() {
				now = noon
			}
			got := g.DecideState(context.Background(), tt.in, tt.st, now)
			if tt.wantCode == "" {
				if got.Outcome != v1alpha1.OutcomeAutoApprove {
					t.Fatalf("DecideState() = %+v, want AutoApprove", got)
				}
				return
			}
			want := v1alpha1.OutcomeRequireApproval
			if tt.wantDeny {
				want = v1alpha1.OutcomeDeny
			}
			if got.Outcome != want {
				t.Fatalf("DecideState() outcome = %s, want %s (%+v)", got.Outcome, want, got)
			}
			found := false
			for _, r := range got.Reasons {
				if r.Code == tt.wantCode && r.Guard != "" && r.Message != "" {
					found = true
				}
			}
			if !found {
				t.Errorf("DecideState() reasons = %+v, want a guard reason %s", got.Reasons, tt.wantCode)
			}
			if (got.TripBreaker != "") != tt.wantTrip {
				t.Errorf("TripBreaker = %q, want trip %v", got.TripBreaker, tt.wantTrip)
			}
		})
	}
}

// TestFreezeTurnsAutoIntoApproval is the example: the default bundle
// auto-approves a rollback, and a freeze in any policy holds it for a human.
func TestFreezeTurnsAutoIntoApproval(t *testing.T) {
	bundle, err := DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	freeze := policy("freeze", nil, rule("never", `false`, v1alpha1.OutcomeDeny, "Never"))
	freeze.Spec.Guards = &v1alpha1.GuardLimits{Freezes: []v1alpha1.Freeze{{
		Name: "year-end", Start: metav1.NewTime(noon.Add(-time.Hour)), End: metav1.NewTime(noon.Add(24 * time.Hour)), Reason: "year-end close",
	}}}
	g := newGate(t, Options{}, append(bundle, freeze)...)
	in := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	if got := g.Decide(in, noon.Add(-2*time.Hour)); got.Outcome != v1alpha1.OutcomeAutoApprove {
		t.Fatalf("before the freeze: %+v, want AutoApprove", got)
	}
	got := g.Decide(in, noon)
	if got.Outcome != v1alpha1.OutcomeRequireApproval || got.RequiredApprovals != 1 {
		t.Fatalf("during the freeze: %+v, want RequireApproval by 1", got)
	}
	if !strings.Contains(got.Reasons[0].Message, "year-end") || got.Reasons[0].Guard != GuardFreeze {
		t.Errorf("during the freeze: first reason %+v, want the freeze guard naming year-end", got.Reasons[0])
	}
}

func TestKillSwitchStopsAutoApproval(t *testing.T) {
	g := newGate(t, Options{}, autoAll(nil))
	in := input(v1alpha1.ActionRollbackWorkload, "shop", nil)
	if got := g.Decide(in, noon); got.Outcome != v1alpha1.OutcomeAutoApprove {
		t.Fatalf("before: %+v", got)
	}
	g.SetKillSwitch(true)
	if got := g.Decide(in, noon); got.Outcome != v1alpha1.OutcomeRequireApproval || got.Reasons[0].Code != ReasonKillSwitchEngaged {
		t.Fatalf("engaged: %+v, want RequireApproval KillSwitchEngaged", got)
	}
	g.SetKillSwitch(false)
	if got := g.Decide(in, noon); got.Outcome != v1alpha1.OutcomeAutoApprove {
		t.Fatalf("released: %+v", got)
	}
}

func TestLimitsMergeStrictest(t *testing.T) {
	a := autoAll(&v1alpha1.GuardLimits{MaxDisruptedPercent: ptr.To[int32](40), MaxApplyingPerCluster: ptr.To[int32](20)})
	b := policy("b", nil, rule("x", `false`, v1alpha1.OutcomeDeny, "X"))
	b.Spec.Guards = &v1alpha1.GuardLimits{MaxDisruptedPercent: ptr.To[int32](30)}
	g := newGate(t, Options{}, a, b)
	l := g.Limits()
	if l.MaxDisruptedPercent != 30 || l.MaxApplyingPerCluster != 20 || l.MaxNodesDisrupted != DefaultMaxNodesDisrupted {
		t.Errorf("Limits() = %+v, want strictest 30, set 20, default nodes", l)
	}
}

func TestInvalidGuardsFailClosed(t *testing.T) {
	bad := []*v1alpha1.GuardLimits{
		{ChangeWindows: []v1alpha1.ChangeWindow{{Schedule: "not a cron", Duration: metav1.Duration{Duration: time.Hour}}}},
		{ChangeWindows: []v1alpha1.ChangeWindow{{Schedule: "0 9 * * *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"}}},
		{RateLimits: []v1alpha1.RateLimit{{Action: "NukeCluster", Max: 1, Window: metav1.Duration{Duration: time.Minute}}}},
		{Freezes: []v1alpha1.Freeze{{Name: "backwards", Start: metav1.NewTime(noon), End: metav1.NewTime(noon.Add(-time.Hour))}}},
		{AllowedPatchPaths: []string{"spec"}},
	}
	for _, gl := range bad {
		g, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		res := g.Load([]v1alpha1.GatePolicy{autoAll(gl)})
		if res[0].Valid {
			t.Errorf("Load(%+v) valid, want invalid", gl)
		}
		if got := g.Decide(input(v1alpha1.ActionRollbackWorkload, "shop", nil), noon); got.Outcome != v1alpha1.OutcomeDeny || got.Reasons[0].Code != ReasonPolicyInvalid {
			t.Errorf("Decide() with invalid guards %+v = %+v, want Deny PolicyInvalid", gl, got)
		}
	}
}

// TestRulesSeeTheRun checks that a rule reads the run facts NewInput takes
// from the controller's v1alpha1.RunFacts, the window as a timestamp.
func TestRulesSeeTheRun(t *testing.T) {
	g := newGate(t, Options{}, policy("runs", nil,
		rule("in-run-window", `proposal.facts.run.member && !proposal.facts.run.undo && now < proposal.facts.run.windowEnd && proposal.facts.run.name == "shop/nightly"`,
			v1alpha1.OutcomeAutoApprove, "InRunWindow")))
	decide := func(run *v1alpha1.RunFacts) v1alpha1.Outcome {
		facts := healthyRevision
		facts.Run = run
		p := &v1alpha1.Proposal{Spec: v1alpha1.ProposalSpec{
			Action: v1alpha1.ActionScaleWorkload,
			Target: v1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"},
		}}
		in := NewInput(p, TargetFacts{Exists: true, Facts: &facts}, NamespaceFacts{Exists: true})
		return g.Decide(in, noon).Outcome
	}
	end := metav1.NewTime(noon.Add(time.Hour))
	for _, tt := range []struct {
		name string
		run  *v1alpha1.RunFacts
		want v1alpha1.Outcome
	}{
		{"a member inside the window", &v1alpha1.RunFacts{Namespace: "shop", Name: "nightly", Member: true, WindowEnd: &end}, v1alpha1.OutcomeAutoApprove},
		{"no run", nil, v1alpha1.OutcomeRequireApproval},
		// A non-member's window is never read, whatever the facts hold.
		{"a non-member", &v1alpha1.RunFacts{Namespace: "shop", Name: "nightly", WindowEnd: &end}, v1alpha1.OutcomeDeny},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.run); got != tt.want {
				t.Errorf("Decide() = %s, want %s", got, tt.want)
			}
		})
	}
}
