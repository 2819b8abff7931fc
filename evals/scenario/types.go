package scenario

import (
	"encoding/json"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/evals/sim"
)

// Category is a class of the EVALS.md taxonomy.
type Category string

// The taxonomy's categories.
const (
	CategoryWorkload     Category = "workload"
	CategoryScheduling   Category = "scheduling"
	CategoryStorage      Category = "storage"
	CategoryNetworking   Category = "networking"
	CategoryNode         Category = "node"
	CategoryControlPlane Category = "control-plane"
	CategoryControl      Category = "control"
	CategoryImprovement  Category = "improvement"
	CategoryAdversarial  Category = "adversarial"
)

// Categories lists every category in report order.
var Categories = []Category{CategoryWorkload, CategoryScheduling, CategoryStorage, CategoryNetworking,
	CategoryNode, CategoryControlPlane, CategoryControl, CategoryImprovement, CategoryAdversarial}

// Difficulty is how hard a scenario is for an agent.
type Difficulty string

// Difficulties.
const (
	Easy   Difficulty = "easy"
	Medium Difficulty = "medium"
	Hard   Difficulty = "hard"
)

// Suite is a public benchmark a scenario can be set beside.
type Suite string

// Benchmarks scenarios correspond to.
const (
	AIOpsLab Suite = "AIOpsLab"
	ITBench  Suite = "ITBench"
	K8sBench Suite = "k8s-bench"
	// None marks a scenario with no counterpart (the gate-specific ones).
	None Suite = "none"
)

// Scenario is one eval scenario.
type Scenario struct {
	// Name is a DNS label, unique in the suite.
	Name string `json:"name"`
	// Description says what goes wrong, for the report.
	Description string `json:"description"`
	// Category in the taxonomy.
	Category Category `json:"category"`
	// Difficulty for an agent.
	Difficulty Difficulty `json:"difficulty"`
	// Benchmarks names the problems of other suites this one corresponds to.
	Benchmarks []Reference `json:"benchmarks"`
	// Profiles are the app profiles of the images the scenario runs.
	Profiles []sim.Profile `json:"profiles,omitempty"`
	// Nodes are simulated nodes of the scenario's own; only its pods
	// schedule there, and node faults act on them.
	Nodes []Node `json:"nodes,omitempty"`
	// Baseline is the healthy state: manifests of namespaced objects,
	// created in the scenario's namespace.
	Baseline []Manifest `json:"baseline"`
	// Faults are injected in order, after the baseline is healthy.
	Faults []Fault `json:"faults,omitempty"`
	// Oracle says when the fault is mitigated.
	Oracle Oracle `json:"oracle"`
	// Timeouts bound each phase.
	Timeouts Timeouts `json:"timeouts,omitempty"`
	// Parameters are values drawn per run from a seeded range, referenced
	// as ${name} in the rest of the file.
	Parameters []Parameter `json:"parameters,omitempty"`
	// Namespace sets up the run's namespace (labels such as
	// tend.dev/protected).
	Namespace NamespaceSpec `json:"namespace,omitempty"`
	// Approvals are scripted human decisions: a second user who approves or
	// denies matching proposals once they await approval.
	Approvals []Approval `json:"approvals,omitempty"`
	// ExpectedFailure marks a scenario that nothing in tend fixes today: it
	// is run and scored like any other (a failure scores 0), and the report
	// checks that it failed for the reason given.
	ExpectedFailure *ExpectedFailure `json:"expectedFailure,omitempty"`
	// Exclusive runs the scenario alone, with the gate's state reset before
	// it: for scenarios about cluster-wide guards (breakers, rate limits),
	// which other runs would otherwise disturb.
	Exclusive bool `json:"exclusive,omitempty"`

	// File the scenario was loaded from.
	File string `json:"-"`
	// Values are the parameter values of this instance (nil without
	// parameters); Seed drew them.
	Values Values `json:"-"`
	Seed   uint64 `json:"-"`
	// tree is the file decoded, to draw instances from.
	tree map[string]any
}

// NamespaceSpec configures the run's namespace.
type NamespaceSpec struct {
	// Labels of the namespace.
	Labels map[string]string `json:"labels,omitempty"`
}

// Approval is a scripted human decision on proposals.
type Approval struct {
	// User decides, as a member of the approvers group, authenticated by
	// the API server (a client certificate): never the proposer.
	User string `json:"user"`
	// Proposal selects the proposals the user decides.
	Proposal ProposalMatch `json:"proposal"`
	// Decision is Approve (the default) or Deny.
	Decision string `json:"decision,omitempty"`
	// AfterSeconds the proposal has awaited approval before the user
	// decides (their review).
	AfterSeconds int32 `json:"afterSeconds,omitempty"`
	// Reason the user gives.
	Reason string `json:"reason,omitempty"`
}

// ProposalMatch selects proposals.
type ProposalMatch struct {
	// Actions, any of; every action when empty.
	Actions []string `json:"actions,omitempty"`
	// Target of the proposal; oracle.target when unset. A Node names one of
	// the scenario's nodes.
	Target *TargetMatch `json:"target,omitempty"`
}

// TargetMatch names a proposal's target; the name * matches any target of
// the kind.
type TargetMatch struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// ExpectedFailure says why nothing fixes a scenario today.
type ExpectedFailure struct {
	// Reason, for the report.
	Reason string `json:"reason"`
	// Rules at least one of which a run must end violating (G1–G6, fault):
	// the right reason to fail. A run that fails otherwise is flagged.
	Rules []string `json:"rules"`
	// Brains, when set, limit the expectation to runs of the suite with one
	// of these agent brains (see Brains); with any other brain the scenario
	// scores as an ordinary one. A probe of the harness that the runbooks
	// heal names [none]: with no agent running, it must still fail.
	Brains []string `json:"brains,omitempty"`
}

// Brains are the agent brains a suite can run with (agents.Brains): none
// starts no runbook and no planner (the harness's own baseline: every fault
// must then fail), deterministic runs the runbooks, llm the planner, hybrid
// the runbooks and then the planner.
var Brains = agents.Brains

// For reports whether the expectation holds for a run with brain.
func (e *ExpectedFailure) For(brain string) bool {
	return e != nil && (len(e.Brains) == 0 || slices.Contains(e.Brains, brain))
}

// Reference is a problem of another benchmark suite.
type Reference struct {
	Suite   Suite  `json:"suite"`
	Problem string `json:"problem"`
}

// Node is a simulated node the scenario owns.
type Node struct {
	// Name, unique in the scenario; the harness makes it unique in the cluster.
	Name string `json:"name"`
	// Labels of the node, besides the hostname label.
	Labels map[string]string `json:"labels,omitempty"`
	// Unschedulable starts the node cordoned (a spare held in reserve).
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// Manifest is one Kubernetes object, as YAML.
type Manifest struct {
	json.RawMessage
}

// UnmarshalJSON keeps the raw object.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	m.RawMessage = append(m.RawMessage[:0], b...)
	return nil
}

// MarshalJSON returns the raw object.
func (m Manifest) MarshalJSON() ([]byte, error) {
	if m.RawMessage == nil {
		return []byte("null"), nil
	}
	return m.RawMessage, nil
}

// ObjectRef names an object in the scenario's namespace.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// PatchType is how a patch applies.
type PatchType string

// Patch types.
const (
	StrategicMerge PatchType = "strategic"
	MergePatch     PatchType = "merge"
	JSONPatch      PatchType = "json"
)

// Fault is one injection step: exactly one of its members is set.
type Fault struct {
	// Description of the step, for the report.
	Description string `json:"description,omitempty"`
	// Patch changes an object of the baseline.
	Patch *Patch `json:"patch,omitempty"`
	// Apply creates objects in the namespace (an Event, a NetworkPolicy).
	Apply []Manifest `json:"apply,omitempty"`
	// Delete deletes an object of the baseline.
	Delete *ObjectRef `json:"delete,omitempty"`
	// StopNode stops the heartbeats of one of the scenario's nodes: the
	// simulated kubelet stops, its lease expires and the node goes NotReady.
	StopNode string `json:"stopNode,omitempty"`
	// Cordon marks one of the scenario's nodes unschedulable.
	Cordon string `json:"cordon,omitempty"`
	// NodeCondition sets a condition on one of the scenario's nodes.
	NodeCondition *NodeCondition `json:"nodeCondition,omitempty"`
}

// Patch is a patch of one object.
type Patch struct {
	Target ObjectRef `json:"target"`
	// Type of patch; strategic when empty.
	Type PatchType `json:"type,omitempty"`
	// Patch is the patch document.
	Patch json.RawMessage `json:"patch"`
}

// NodeCondition is a node condition the simulated kubelet reports.
type NodeCondition struct {
	Node   string `json:"node"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// Oracle decides whether a run mitigated the fault: the fault-specific
// predicates AND the global rules G1–G6.
type Oracle struct {
	// Target is the faulty object: a proposal about it counts as
	// detection. A Node names one of the scenario's nodes.
	Target *ObjectRef `json:"target,omitempty"`
	// ExpectHealthy marks a scenario whose right outcome is to change
	// nothing (the healthy control, an injection attempt without a fault):
	// it passes when the rules hold to the end and no proposal was applied.
	ExpectHealthy bool `json:"expectHealthy,omitempty"`
	// Predicates specific to the fault: with the global rules G1–G6, the
	// "healed" outcome.
	Predicates []Predicate `json:"predicates,omitempty"`
	// AnyOf lists other acceptable outcomes (correctly escalated, say): a run
	// passes when the healed outcome or any of these holds. An alternative
	// is its predicates with G1, G5 and G6 (the fault may remain, so health
	// is not required), and must require something of the agents (a
	// proposal or a finding predicate).
	AnyOf []Outcome `json:"anyOf,omitempty"`
	// TolerateRestarts lifts G4: the app restarts by design (a slow
	// periodic restart), and the point is what the agents do about it.
	TolerateRestarts bool `json:"tolerateRestarts,omitempty"`
	// Cause lists baseline guardrails the ground truth names as the cause
	// ("Deployment/web/web/readinessProbe", "NetworkPolicy/allow-web"): G5
	// lets the fix change or remove them.
	Cause []string `json:"cause,omitempty"`
}

// Predicate is one fault-specific check: exactly one member is set.
type Predicate struct {
	// Endpoints: the Service has at least MinReady ready endpoints, on a
	// port the selected pods' app listens on.
	Endpoints *EndpointsPredicate `json:"endpoints,omitempty"`
	// Reachable: pods with these labels may reach the Service's pods under
	// the namespace's NetworkPolicies.
	Reachable *ReachablePredicate `json:"reachable,omitempty"`
	// Autoscaler: the HorizontalPodAutoscaler targets an existing workload
	// and allows at least MinMaxReplicas.
	Autoscaler *AutoscalerPredicate `json:"autoscaler,omitempty"`
	// OnReadyNodes: every pod of the namespace runs on a Ready,
	// untainted-by-pressure node.
	OnReadyNodes bool `json:"onReadyNodes,omitempty"`
	// Proposal: a proposal of one of these actions on the target reached
	// one of the phases (Succeeded by default), with the decision given.
	Proposal *ProposalPredicate `json:"proposal,omitempty"`
	// Finding: the agents recorded a finding about the target (for a
	// fault they have no safe fix for), whose text contains the given.
	Finding *FindingPredicate `json:"finding,omitempty"`
	// Workload: the workload exists with at least MinReady ready pods on
	// its current template.
	Workload *WorkloadPredicate `json:"workload,omitempty"`
	// Job: the Job completed; for a CronJob, its most recent Job did.
	Job *JobPredicate `json:"job,omitempty"`
	// NoApplyBeforeApproval: every applied proposal was approved by a
	// human before its apply started.
	NoApplyBeforeApproval bool `json:"noApplyBeforeApproval,omitempty"`
	// MaxAutoApplies caps the proposals applied without a human's approval.
	MaxAutoApplies *int32 `json:"maxAutoApplies,omitempty"`
	// PDBRespected: no pod-removing action applied while a
	// PodDisruptionBudget of the namespace had no disruption to spare, and
	// no budget dropped below its desired healthy pods after one.
	PDBRespected bool `json:"pdbRespected,omitempty"`
	// Order: every applied proposal matching Then started after one
	// matching First had been applied ("capacity added before the drain").
	Order *OrderPredicate `json:"order,omitempty"`
	// Rightsized: the container's requests and limits fit its app's usage
	// (requests at least the steady use and at most Headroom times the
	// peak; a memory limit at least the peak).
	Rightsized *RightsizedPredicate `json:"rightsized,omitempty"`
}

// Outcome is an acceptable outcome other than healed.
type Outcome struct {
	// Name of the outcome, for the report (escalated, held...).
	Name string `json:"name"`
	// Predicates of the outcome.
	Predicates []Predicate `json:"predicates"`
}

// WorkloadPredicate checks a workload's ready pods.
type WorkloadPredicate struct {
	// Kind: Deployment, StatefulSet, DaemonSet or ReplicaSet.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// MinReady pods, ready and of the current template.
	MinReady int32 `json:"minReady"`
}

// JobPredicate checks that a Job, or a CronJob's latest Job, completed.
type JobPredicate struct {
	// Kind: Job or CronJob.
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// OrderPredicate orders applied proposals.
type OrderPredicate struct {
	First ProposalMatch `json:"first"`
	Then  ProposalMatch `json:"then"`
}

// RightsizedPredicate checks a container's resources against its usage.
type RightsizedPredicate struct {
	Deployment string `json:"deployment"`
	Container  string `json:"container"`
	// Headroom over the peak that requests may keep (2 when unset).
	Headroom float64 `json:"headroom,omitempty"`
}

// ReasonMatch matches a reason of a gate decision.
type ReasonMatch struct {
	// Code of the reason (ProtectedNamespace, CircuitBreakerOpen...).
	Code string `json:"code,omitempty"`
	// Contains is text the reason's message must contain (a PDB's name).
	Contains string `json:"contains,omitempty"`
}

// EndpointsPredicate checks a Service's endpoints.
type EndpointsPredicate struct {
	Service  string `json:"service"`
	MinReady int32  `json:"minReady"`
}

// ReachablePredicate checks NetworkPolicies.
type ReachablePredicate struct {
	From    map[string]string `json:"from"`
	Service string            `json:"service"`
}

// AutoscalerPredicate checks an HPA.
type AutoscalerPredicate struct {
	Name           string `json:"name"`
	MinMaxReplicas int32  `json:"minMaxReplicas"`
}

// ProposalPredicate checks the proposals made.
type ProposalPredicate struct {
	// Actions, any of.
	Actions []string `json:"actions"`
	// Target; oracle.target when unset.
	Target *TargetMatch `json:"target,omitempty"`
	// Phases the proposal may be in; Succeeded when empty.
	Phases []string `json:"phases,omitempty"`
	// Outcome of the gate's decision (AutoApprove, RequireApproval, Deny).
	Outcome string `json:"outcome,omitempty"`
	// Reason the decision must give.
	Reason *ReasonMatch `json:"reason,omitempty"`
}

// FindingPredicate checks the agents' findings: the Warning Events with
// reason FindingReason the controller records on the objects they are
// about.
type FindingPredicate struct {
	// Target the finding is about; oracle.target when unset. The name *
	// matches any object of the kind. Findings are read from the run's
	// namespace, so a Node is not a target.
	Target *TargetMatch `json:"target,omitempty"`
	// Contains is text the finding's message must contain (a name, a
	// label value).
	Contains string `json:"contains,omitempty"`
}

// FindingReason is the reason of the Event an agent's finding becomes
// (the controller's ReasonFinding; the harness does not import the
// product's controllers).
const FindingReason = "TendFinding"

// Timeouts bound the phases of a run.
type Timeouts struct {
	// Baseline: how long the baseline may take to become healthy (60s).
	Baseline metav1.Duration `json:"baseline,omitempty"`
	// Manifest: how long the fault may take to show (45s).
	Manifest metav1.Duration `json:"manifest,omitempty"`
	// Mitigate: how long after injection the oracle may take to pass (90s);
	// for an expectHealthy scenario, how long it is watched.
	Mitigate metav1.Duration `json:"mitigate,omitempty"`
	// Stable: how long the oracle must keep passing, with no restarts (10s).
	Stable metav1.Duration `json:"stable,omitempty"`
}
