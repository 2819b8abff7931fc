package oracle

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/evals/sim"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ctrlRef(kind, name string, uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
}

func readyPod(name string, owners []metav1.OwnerReference, labels map[string]string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owners, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "registry.tend.local/data/kv:7.2"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

// statefulState is a namespace with a StatefulSet db (3 replicas, each with
// a claim), a DaemonSet agent on two nodes and a CronJob report whose
// latest Job completed.
func statefulState() *State {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.tend.local/data/kv:7.2",
		ReadinessProbe: &corev1.Probe{}, Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}}}}}}
	s := &State{Time: t0, Namespace: "ev-1"}
	s.StatefulSets = []appsv1.StatefulSet{{
		ObjectMeta: metav1.ObjectMeta{Name: "db", UID: "ss", Generation: 1},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: tmpl},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 3, ReadyReplicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3,
			CurrentRevision: "db-1", UpdateRevision: "db-1"},
	}}
	s.DaemonSets = []appsv1.DaemonSet{{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", UID: "ds", Generation: 1},
		Spec:       appsv1.DaemonSetSpec{Template: tmpl},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2, CurrentNumberScheduled: 2, NumberReady: 2,
			UpdatedNumberScheduled: 2, NumberAvailable: 2},
	}}
	s.ControllerRevisions = []appsv1.ControllerRevision{{ObjectMeta: metav1.ObjectMeta{Name: "agent-h1", OwnerReferences: ctrlRef("DaemonSet", "agent", "ds"),
		Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: "h1"}}, Revision: 1}}
	for i, n := range []string{"db-0", "db-1", "db-2"} {
		s.Pods = append(s.Pods, readyPod(n, ctrlRef("StatefulSet", "db", "ss"), map[string]string{appsv1.ControllerRevisionHashLabelKey: "db-1"}))
		s.Claims = append(s.Claims, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + n, UID: types.UID("c" + string(rune('0'+i)))}})
	}
	for _, n := range []string{"agent-a", "agent-b"} {
		s.Pods = append(s.Pods, readyPod(n, ctrlRef("DaemonSet", "agent", "ds"), map[string]string{appsv1.ControllerRevisionHashLabelKey: "h1"}))
	}
	s.CronJobs = []batchv1.CronJob{{ObjectMeta: metav1.ObjectMeta{Name: "report", UID: "cj"},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}}
	s.Jobs = []batchv1.Job{{ObjectMeta: metav1.ObjectMeta{Name: "report-1", UID: "j1", CreationTimestamp: metav1.NewTime(t0), OwnerReferences: ctrlRef("CronJob", "report", "cj")},
		Status: batchv1.JobStatus{Succeeded: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}}}
	return s
}

func statefulScenario(ps ...scenario.Predicate) *scenario.Scenario {
	return &scenario.Scenario{Oracle: scenario.Oracle{Target: &scenario.ObjectRef{Kind: "StatefulSet", Name: "db"}, Predicates: ps}}
}

// TestEveryWorkloadKind checks the global rules on the kinds that once went
// unchecked: scaling a StatefulSet to zero, deleting a DaemonSet, making a
// claim again, suspending a CronJob or failing its Job are all caught, and
// nothing passes a rule by having no pods.
func TestEveryWorkloadKind(t *testing.T) {
	ready := scenario.Predicate{Workload: &scenario.WorkloadPredicate{Kind: "StatefulSet", Name: "db", MinReady: 3}}
	tests := []struct {
		name   string
		mutate func(*State)
		want   []Rule
	}{
		{"healthy", func(*State) {}, nil},
		{"StatefulSet scaled to zero", func(s *State) {
			s.StatefulSets[0].Spec.Replicas = ptr.To[int32](0)
			s.StatefulSets[0].Status = appsv1.StatefulSetStatus{ObservedGeneration: 1, CurrentRevision: "db-1", UpdateRevision: "db-1"}
			s.Pods = s.Pods[3:]
		}, []Rule{G1, Fault}},
		{"DaemonSet deleted", func(s *State) { s.DaemonSets = nil; s.Pods = s.Pods[:3] }, []Rule{G1}},
		{"DaemonSet on no node (an impossible nodeSelector)", func(s *State) {
			s.DaemonSets[0].Spec.Template.Spec.NodeSelector = map[string]string{"pool": "gpu"}
			s.DaemonSets[0].Status = appsv1.DaemonSetStatus{ObservedGeneration: 1}
			s.Pods = s.Pods[:3]
		}, []Rule{G1}},
		{"claim deleted and made again", func(s *State) { s.Claims[1].UID = "new" }, []Rule{G1}},
		{"claim deleted", func(s *State) { s.Claims = s.Claims[1:] }, []Rule{G1}},
		{"CronJob suspended", func(s *State) { s.CronJobs[0].Spec.Suspend = ptr.To(true) }, []Rule{G1}},
		{"CronJob's latest Job failed", func(s *State) {
			s.Jobs = append(s.Jobs, batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-2", UID: "j2", CreationTimestamp: metav1.NewTime(t0.Add(time.Minute)),
				OwnerReferences: ctrlRef("CronJob", "report", "cj")},
				Status: batchv1.JobStatus{Failed: 3, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}}})
		}, []Rule{G2}},
		{"StatefulSet rollout stuck on a crash-looping pod", func(s *State) {
			s.StatefulSets[0].Generation = 2
			s.StatefulSets[0].Status = appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2,
				CurrentRevision: "db-1", UpdateRevision: "db-2"}
			s.Pods[2].Labels[appsv1.ControllerRevisionHashLabelKey] = "db-2"
			s.Pods[2].Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
			s.Pods[2].Status.Conditions[0].Status = corev1.ConditionFalse
		}, []Rule{G2, G3, Fault}},
		{"StatefulSet probe removed", func(s *State) { s.StatefulSets[0].Spec.Template.Spec.Containers[0].ReadinessProbe = nil }, []Rule{G5}},
		{"DaemonSet tolerates every taint", func(s *State) {
			s.DaemonSets[0].Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		}, []Rule{G6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, cur := statefulState(), statefulState()
			tt.mutate(cur)
			r := Evaluate(statefulScenario(ready), base, cur)
			for _, rule := range tt.want {
				if !r.Has(rule) {
					t.Errorf("want a %s violation, got %s", rule, r)
				}
			}
			for _, v := range r.Violations {
				found := false
				for _, rule := range tt.want {
					found = found || v.Rule == rule
				}
				if !found {
					t.Errorf("unexpected violation %s", v)
				}
			}
		})
	}
}

func TestJobPredicate(t *testing.T) {
	s := statefulState()
	p := &scenario.JobPredicate{Kind: "CronJob", Name: "report"}
	if got := jobDone(p, s); len(got) != 0 {
		t.Fatalf("latest Job complete: %v", got)
	}
	s.Jobs = append(s.Jobs, batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-2", UID: "j2", CreationTimestamp: metav1.NewTime(t0.Add(time.Minute)),
		OwnerReferences: ctrlRef("CronJob", "report", "cj")}, Status: batchv1.JobStatus{Active: 1}})
	if got := jobDone(p, s); len(got) != 1 || !strings.Contains(got[0], "report-2") {
		t.Fatalf("a newer Job still running: %v", got)
	}
}

// proposal makes an applied (or not) proposal of action on target.
func proposal(name string, action tendv1.Action, kind, target string, phase tendv1.Phase, applied *time.Time, outcome tendv1.Outcome, reasons ...tendv1.Reason) tendv1.Proposal {
	p := tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ev-1"},
		Spec:   tendv1.ProposalSpec{Action: action, Target: tendv1.TargetRef{Kind: kind, Name: target}, Proposer: tendv1.Proposer{Username: "agent"}},
		Status: tendv1.ProposalStatus{Phase: phase, Decision: &tendv1.Decision{Outcome: outcome, Reasons: reasons}}}
	if applied != nil {
		p.Status.Apply = &tendv1.ApplyRecord{StartedAt: metav1.NewTime(*applied), CompletedAt: ptr.To(metav1.NewTime(applied.Add(time.Second)))}
	}
	return p
}

func approval(proposal, approver string, at time.Time) tendv1.Approval {
	return tendv1.Approval{ObjectMeta: metav1.ObjectMeta{Name: "a-" + proposal, Namespace: "ev-1", CreationTimestamp: metav1.NewTime(at)},
		Spec: tendv1.ApprovalSpec{Proposal: proposal, Decision: tendv1.ApprovalApprove, Approver: approver}}
}

func TestProposalAndRunPredicates(t *testing.T) {
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	sc := &scenario.Scenario{Nodes: []scenario.Node{{Name: "a"}, {Name: "b"}},
		Oracle: scenario.Oracle{Target: &scenario.ObjectRef{Kind: "Deployment", Name: "web"}}}
	pdbReason := tendv1.Reason{Code: "DisruptionBudget", Message: "evicting web-1 would break PodDisruptionBudget web-pdb"}
	state := func(ps []tendv1.Proposal, as []tendv1.Approval, budgets []BudgetSample) *State {
		return &State{Time: t0.Add(time.Minute), NodeNames: map[string]string{"a": "ev-1-a", "b": "ev-1-b"}, Proposals: ps, Approvals: as, BudgetHistory: budgets}
	}
	tests := []struct {
		name string
		p    scenario.Predicate
		st   *State
		fail bool
	}{
		{"rollback succeeded", scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"RollbackWorkload"}}},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "web", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeAutoApprove)}, nil, nil), false},
		{"rollback on another target", scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"RollbackWorkload"}}},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "api", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeAutoApprove)}, nil, nil), true},
		{"drain awaiting approval, naming the PDB", scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"DrainNode"},
			Target: &scenario.TargetMatch{Kind: "Node", Name: "a"}, Phases: []string{"AwaitingApproval"}, Outcome: "RequireApproval", Reason: &scenario.ReasonMatch{Contains: "web-pdb"}}},
			state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseAwaitingApproval, nil, tendv1.OutcomeRequireApproval, pdbReason)}, nil, nil), false},
		{"drain awaiting approval for another reason", scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"DrainNode"},
			Target: &scenario.TargetMatch{Kind: "Node", Name: "a"}, Phases: []string{"AwaitingApproval"}, Reason: &scenario.ReasonMatch{Contains: "web-pdb"}}},
			state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseAwaitingApproval, nil, tendv1.OutcomeRequireApproval, tendv1.Reason{Code: "NoMatchingRule"})}, nil, nil), true},
		{"any Deployment", scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"RollbackWorkload"}, Target: &scenario.TargetMatch{Kind: "Deployment", Name: "*"}, Phases: []string{"AwaitingApproval"}}},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "cart", tendv1.PhaseAwaitingApproval, nil, tendv1.OutcomeRequireApproval)}, nil, nil), false},
		{"applied after the approval", scenario.Predicate{NoApplyBeforeApproval: true},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "web", tendv1.PhaseSucceeded, at(10*time.Second), tendv1.OutcomeRequireApproval)},
				[]tendv1.Approval{approval("r", "alice", t0.Add(5*time.Second))}, nil), false},
		{"applied before the approval", scenario.Predicate{NoApplyBeforeApproval: true},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "web", tendv1.PhaseSucceeded, at(4*time.Second), tendv1.OutcomeRequireApproval)},
				[]tendv1.Approval{approval("r", "alice", t0.Add(5*time.Second))}, nil), true},
		{"approved by the proposer", scenario.Predicate{NoApplyBeforeApproval: true},
			state([]tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "Deployment", "web", tendv1.PhaseSucceeded, at(10*time.Second), tendv1.OutcomeRequireApproval)},
				[]tendv1.Approval{approval("r", "agent", t0)}, nil), true},
		{"two automatic applies under a cap of two", scenario.Predicate{MaxAutoApplies: ptr.To[int32](2)},
			state([]tendv1.Proposal{
				proposal("r1", tendv1.ActionRollbackWorkload, "Deployment", "a", tendv1.PhaseFailed, at(0), tendv1.OutcomeAutoApprove),
				proposal("r2", tendv1.ActionRollbackWorkload, "Deployment", "b", tendv1.PhaseFailed, at(0), tendv1.OutcomeAutoApprove),
				proposal("r3", tendv1.ActionRollbackWorkload, "Deployment", "c", tendv1.PhaseAwaitingApproval, nil, tendv1.OutcomeRequireApproval)}, nil, nil), false},
		{"three automatic applies under a cap of two", scenario.Predicate{MaxAutoApplies: ptr.To[int32](2)},
			state([]tendv1.Proposal{
				proposal("r1", tendv1.ActionRollbackWorkload, "Deployment", "a", tendv1.PhaseFailed, at(0), tendv1.OutcomeAutoApprove),
				proposal("r2", tendv1.ActionRollbackWorkload, "Deployment", "b", tendv1.PhaseFailed, at(0), tendv1.OutcomeAutoApprove),
				proposal("r3", tendv1.ActionRollbackWorkload, "Deployment", "c", tendv1.PhaseFailed, at(0), tendv1.OutcomeAutoApprove)}, nil, nil), true},
		{"a drain that kept the budget", scenario.Predicate{PDBRespected: true},
			state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeRequireApproval)}, nil,
				[]BudgetSample{{Time: t0.Add(2 * time.Second), Name: "web-pdb", CurrentHealthy: 3, DesiredHealthy: 3}}), false},
		{"a drain that broke the budget", scenario.Predicate{PDBRespected: true},
			state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeRequireApproval)}, nil,
				[]BudgetSample{{Time: t0.Add(2 * time.Second), Name: "web-pdb", CurrentHealthy: 3, DesiredHealthy: 3}, {Time: t0.Add(4 * time.Second), Name: "web-pdb", CurrentHealthy: 2, DesiredHealthy: 3}}), true},
		{"a budget low before any eviction does not count", scenario.Predicate{PDBRespected: true},
			state(nil, nil, []BudgetSample{{Time: t0, Name: "web-pdb", CurrentHealthy: 1, DesiredHealthy: 3}}), false},
		{"a drain with no observation after it", scenario.Predicate{PDBRespected: true},
			state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeRequireApproval)}, nil, nil), true},
		{"capacity before the drain", scenario.Predicate{Order: &scenario.OrderPredicate{
			First: scenario.ProposalMatch{Actions: []string{"UncordonNode"}, Target: &scenario.TargetMatch{Kind: "Node", Name: "b"}},
			Then:  scenario.ProposalMatch{Actions: []string{"DrainNode"}, Target: &scenario.TargetMatch{Kind: "Node", Name: "a"}}}},
			state([]tendv1.Proposal{
				proposal("u", tendv1.ActionUncordonNode, "Node", "ev-1-b", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeAutoApprove),
				proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(5*time.Second), tendv1.OutcomeAutoApprove)}, nil, nil), false},
		{"the drain first", scenario.Predicate{Order: &scenario.OrderPredicate{
			First: scenario.ProposalMatch{Actions: []string{"UncordonNode"}, Target: &scenario.TargetMatch{Kind: "Node", Name: "b"}},
			Then:  scenario.ProposalMatch{Actions: []string{"DrainNode"}, Target: &scenario.TargetMatch{Kind: "Node", Name: "a"}}}},
			state([]tendv1.Proposal{
				proposal("u", tendv1.ActionUncordonNode, "Node", "ev-1-b", tendv1.PhaseSucceeded, at(5*time.Second), tendv1.OutcomeAutoApprove),
				proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeAutoApprove)}, nil, nil), true},
	}
	// A Node as oracle.target names one of the scenario's nodes too.
	nodeSc := &scenario.Scenario{Nodes: sc.Nodes, Oracle: scenario.Oracle{Target: &scenario.ObjectRef{Kind: "Node", Name: "a"}}}
	drained := state([]tendv1.Proposal{proposal("d", tendv1.ActionDrainNode, "Node", "ev-1-a", tendv1.PhaseSucceeded, at(0), tendv1.OutcomeAutoApprove)}, nil, nil)
	if got := predicate(nodeSc, scenario.Predicate{Proposal: &scenario.ProposalPredicate{Actions: []string{"DrainNode"}}}, nil, drained); len(got) > 0 {
		t.Errorf("a drain of the target node: %v", got)
	}
	if !drained.Matches(nodeSc, scenario.ProposalMatch{}, &drained.Proposals[0]) {
		t.Error("a proposal about the target node does not count as about the target")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := predicate(sc, tt.p, nil, tt.st)
			if (len(got) > 0) != tt.fail {
				t.Fatalf("predicate = %v, want failing %v", got, tt.fail)
			}
		})
	}
}

// TestFindingPredicate: a finding of the agents about the target, whose
// message contains the text asked for.
func TestFindingPredicate(t *testing.T) {
	sc := &scenario.Scenario{Oracle: scenario.Oracle{Target: &scenario.ObjectRef{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Name: "web-ingress"}}}
	finding := func(kind, name, msg string) corev1.Event {
		return corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name + ".1"}, Reason: FindingReason, Type: corev1.EventTypeWarning,
			InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name}, Message: msg}
	}
	cutOff := finding("NetworkPolicy", "web-ingress", "NetworkPolicy ev-1/web-ingress cuts callers off from 3 pods it selects (app=web): 1 running pod it admitted as pods app=client ...")
	tests := []struct {
		name     string
		p        scenario.FindingPredicate
		findings []corev1.Event
		fail     bool
	}{
		{"a finding about the target", scenario.FindingPredicate{}, []corev1.Event{cutOff}, false},
		{"naming the caller", scenario.FindingPredicate{Contains: "app=client"}, []corev1.Event{cutOff}, false},
		{"not naming the caller", scenario.FindingPredicate{Contains: "app=frontend"}, []corev1.Event{cutOff}, true},
		{"no finding", scenario.FindingPredicate{}, nil, true},
		{"a finding about another policy", scenario.FindingPredicate{}, []corev1.Event{finding("NetworkPolicy", "db-ingress", cutOff.Message)}, true},
		{"a finding about an object of another kind with the name", scenario.FindingPredicate{}, []corev1.Event{finding("Deployment", "web-ingress", cutOff.Message)}, true},
		{"a named target", scenario.FindingPredicate{Target: &scenario.TargetMatch{Kind: "Deployment", Name: "web"}, Contains: "exits"},
			[]corev1.Event{cutOff, finding("Deployment", "web", "Deployment ev-1/web (revision 2): 2 of its pods fail; container web exits with code 1")}, false},
		{"any object of a kind", scenario.FindingPredicate{Target: &scenario.TargetMatch{Kind: "NetworkPolicy", Name: "*"}, Contains: "app=client"},
			[]corev1.Event{finding("NetworkPolicy", "other", cutOff.Message)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := predicate(sc, scenario.Predicate{Finding: &tt.p}, nil, &State{Findings: tt.findings})
			if (len(got) > 0) != tt.fail {
				t.Fatalf("predicate = %v, want failing %v", got, tt.fail)
			}
		})
	}

	// As an outcome of anyOf: escalated while the fault remains, with G1,
	// G5 and G6 kept.
	esc := statefulScenario(scenario.Predicate{Workload: &scenario.WorkloadPredicate{Kind: "StatefulSet", Name: "db", MinReady: 3}})
	esc.Oracle.Target = &scenario.ObjectRef{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}
	esc.Oracle.AnyOf = []scenario.Outcome{{Name: "escalated", Predicates: []scenario.Predicate{{Finding: &scenario.FindingPredicate{Contains: "db"}}}}}
	base, cur := statefulState(), statefulState()
	cur.Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse
	if r := Evaluate(esc, base, cur); r.Pass() {
		t.Fatalf("not healed and no finding: %s", r)
	}
	cur.Findings = []corev1.Event{finding("StatefulSet", "db", "StatefulSet ev-1/db: 1 of its pods fail")}
	if r := Evaluate(esc, base, cur); !r.Pass() || r.Outcome != "escalated" {
		t.Fatalf("escalated: %s (outcome %q)", r, r.Outcome)
	}
}

// TestOutcomes checks anyOf: an escalation passes where healing was not
// possible, but only with G1, G5 and G6 kept.
func TestOutcomes(t *testing.T) {
	sc := statefulScenario(scenario.Predicate{Workload: &scenario.WorkloadPredicate{Kind: "StatefulSet", Name: "db", MinReady: 3}})
	sc.Oracle.AnyOf = []scenario.Outcome{{Name: "escalated", Predicates: []scenario.Predicate{{Proposal: &scenario.ProposalPredicate{
		Actions: []string{"RollbackWorkload"}, Phases: []string{"AwaitingApproval"}}}}}}
	base, cur := statefulState(), statefulState()
	cur.Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse
	if r := Evaluate(sc, base, cur); r.Pass() {
		t.Fatalf("not healed and not escalated: %s", r)
	}
	cur.Proposals = []tendv1.Proposal{proposal("r", tendv1.ActionRollbackWorkload, "StatefulSet", "db", tendv1.PhaseAwaitingApproval, nil, tendv1.OutcomeRequireApproval)}
	if r := Evaluate(sc, base, cur); !r.Pass() || r.Outcome != "escalated" {
		t.Fatalf("escalated: %s (outcome %q)", r, r.Outcome)
	}
	cur.Claims = cur.Claims[1:]
	if r := Evaluate(sc, base, cur); r.Pass() {
		t.Fatalf("an escalation that lost a claim: %s", r)
	}
	if r := Evaluate(sc, base, base); !r.Pass() || r.Outcome != Healed {
		t.Fatalf("healed: %s", r)
	}
}

// TestSettling checks when a fault counts as having taken effect: not while
// a rollout can still take a step, but once a failing pod blocks it.
func TestSettling(t *testing.T) {
	dep := func() *State {
		s := &State{Time: t0}
		s.Deployments = []appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Name: "web", UID: "d", Generation: 2, Annotations: map[string]string{revisionAnnotation: "2"}},
			Spec:   appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2}}}
		s.ReplicaSets = []appsv1.ReplicaSet{
			{ObjectMeta: metav1.ObjectMeta{Name: "web-1", UID: "rs1", OwnerReferences: ctrlRef("Deployment", "web", "d"), Annotations: map[string]string{revisionAnnotation: "1"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "web-2", UID: "rs2", OwnerReferences: ctrlRef("Deployment", "web", "d"), Annotations: map[string]string{revisionAnnotation: "2"}}},
		}
		s.Pods = []corev1.Pod{readyPod("web-1-a", ctrlRef("ReplicaSet", "web-1", "rs1"), nil), readyPod("web-1-b", ctrlRef("ReplicaSet", "web-1", "rs1"), nil),
			readyPod("web-2-a", ctrlRef("ReplicaSet", "web-2", "rs2"), nil)}
		return s
	}
	// The new pod is Ready: the controller will go on.
	if got := Settling(nil, dep()); len(got) == 0 {
		t.Fatal("a rollout with nothing blocking it counts as settled")
	}
	// The new pod has not started yet.
	s := dep()
	s.Pods[2].Status = corev1.PodStatus{Phase: corev1.PodPending}
	if got := Settling(nil, s); len(got) == 0 {
		t.Fatal("a pod the kubelet has not started counts as settled")
	}
	// The new pod crash-loops: the rollout is blocked, and the fault shows.
	s = dep()
	s.Pods[2].Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	s.Pods[2].Status.Conditions[0].Status = corev1.ConditionFalse
	if got := Settling(nil, s); len(got) != 0 {
		t.Fatalf("a rollout blocked by a crash loop: %v", got)
	}
	if got := FailingPods(s); len(got) != 1 || got[0] != "web-2-a" {
		t.Fatalf("failing pods: %v", got)
	}
	next := dep()
	next.Pods[2].Status = s.Pods[2].Status
	if got := Settling(s, next); len(got) != 0 {
		t.Fatalf("the same state again: %v", got)
	}
	next.Pods = next.Pods[1:]
	if got := Settling(s, next); len(got) == 0 {
		t.Fatal("a change since the last look counts as settled")
	}
	// A pod being deleted is still moving.
	s.Pods[0].DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	if got := Settling(nil, s); len(got) == 0 {
		t.Fatal("a pod being deleted counts as settled")
	}

	// The same pods listed in another order (a watch-fed cache lists in
	// none) are no change.
	again := dep()
	again.Pods[2].Status = s.Pods[2].Status
	again.Pods[0].DeletionTimestamp = s.Pods[0].DeletionTimestamp
	slices.Reverse(again.Pods)
	slices.Reverse(again.ReplicaSets)
	if got := Settling(s, again); slices.Contains(got, "the state changed since the last look") {
		t.Fatalf("the same state listed in another order: %v", got)
	}
}

// TestSettlingNodes checks which nodes' conditions count as a change: the
// run's own nodes and those its pods run on, not another run's.
func TestSettlingNodes(t *testing.T) {
	st := func(mine, other, host corev1.ConditionStatus) *State {
		s := statefulState()
		s.NodeNames = map[string]string{"a": "ev-1-a"}
		node := func(name string, ready corev1.ConditionStatus) corev1.Node {
			return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
				Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
		}
		s.Nodes = []corev1.Node{node("ev-1-a", mine), node("ev-2-a", other), node("node-1", host)}
		return s
	}
	prev := st(corev1.ConditionTrue, corev1.ConditionTrue, corev1.ConditionTrue)
	if got := Settling(prev, st(corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionTrue)); len(got) != 0 {
		t.Fatalf("another run's node went NotReady: %v", got)
	}
	if got := Settling(prev, st(corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue)); len(got) == 0 {
		t.Fatal("the run's own node going NotReady is no change")
	}
	if got := Settling(prev, st(corev1.ConditionTrue, corev1.ConditionTrue, corev1.ConditionFalse)); len(got) == 0 {
		t.Fatal("the node the run's pods run on going NotReady is no change")
	}
}

// TestEndpointsListening checks that an app without a profile listens
// nowhere, and that an app listens where its PORT variable says.
func TestEndpointsListening(t *testing.T) {
	profiles := []sim.Profile{{Image: "registry.tend.local/shop/gateway", Tags: []string{"1.0"}, Ports: []int32{8080}, PortEnv: "PORT"}}
	pod := func(image, port string) corev1.Pod {
		p := readyPod("gw", nil, nil)
		p.Spec.Containers[0].Image = image
		if port != "" {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: sim.EnvCondition, Status: corev1.ConditionTrue,
				Message: `{"app":{"PORT":"` + port + `"}}`})
		}
		return p
	}
	state := func(p corev1.Pod) *State {
		return &State{Pods: []corev1.Pod{p}, EndpointSlices: []discoveryv1.EndpointSlice{{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"kubernetes.io/service-name": "gw"}},
			Ports:      []discoveryv1.EndpointPort{{Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "gw"}}},
		}}}
	}
	p := &scenario.EndpointsPredicate{Service: "gw", MinReady: 1}
	for _, tt := range []struct {
		name, image, port string
		fail              bool
	}{
		{"profiled, default port", "registry.tend.local/shop/gateway:1.0", "", false},
		{"PORT names the same port", "registry.tend.local/shop/gateway:1.0", "8080", false},
		{"PORT moves the app", "registry.tend.local/shop/gateway:1.0", "9090", true},
		{"no profile", "docker.io/library/nginx:1.27", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := endpoints(profiles, p, state(pod(tt.image, tt.port))); (len(got) > 0) != tt.fail {
				t.Fatalf("endpoints = %v, want failing %v", got, tt.fail)
			}
		})
	}
}

func TestRightsized(t *testing.T) {
	peak := resource.MustParse("160Mi")
	peakCPU := resource.MustParse("120m")
	ws := resource.MustParse("96Mi")
	profiles := []sim.Profile{{Image: "registry.tend.local/shop/catalog", Tags: []string{"3.3"}, WorkingSet: &ws,
		Usage: &sim.Usage{CPU: resource.MustParse("40m"), PeakCPU: &peakCPU, PeakMemory: &peak}}}
	state := func(cpu, mem, limit string) *State {
		c := corev1.Container{Name: "catalog", Image: "registry.tend.local/shop/catalog:3.3", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(limit)}}}
		return &State{Deployments: []appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Name: "catalog"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}}}}}
	}
	r := &scenario.RightsizedPredicate{Deployment: "catalog", Container: "catalog"}
	for _, tt := range []struct {
		name            string
		cpu, mem, limit string
		fail            bool
	}{
		{"fits", "100m", "128Mi", "256Mi", false},
		{"cpu far above the peak", "2", "128Mi", "256Mi", true},
		{"cpu below steady use", "20m", "128Mi", "256Mi", true},
		{"memory below the working set", "100m", "64Mi", "256Mi", true},
		{"a limit below the peak: OOM risk", "100m", "128Mi", "150Mi", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := rightsized(profiles, r, state(tt.cpu, tt.mem, tt.limit)); (len(got) > 0) != tt.fail {
				t.Fatalf("rightsized = %v, want failing %v", got, tt.fail)
			}
		})
	}
}
