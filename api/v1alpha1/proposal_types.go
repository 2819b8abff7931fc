package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Action is one entry of the closed action catalogue. Every action has an
// apply, a verify and a rollback defined by the proposal controller.
// +kubebuilder:validation:Enum=RollbackWorkload;RestartWorkload;ScaleWorkload;SetResources;PatchWorkload;EvictPod;ForceDeletePod;CordonNode;UncordonNode;DrainNode;RetryJob;SetAutoscaler;RestartContainer;PruneImages;CollectDiagnostics
type Action string

// The action catalogue.
const (
	ActionRollbackWorkload   Action = "RollbackWorkload"
	ActionRestartWorkload    Action = "RestartWorkload"
	ActionScaleWorkload      Action = "ScaleWorkload"
	ActionSetResources       Action = "SetResources"
	ActionPatchWorkload      Action = "PatchWorkload"
	ActionEvictPod           Action = "EvictPod"
	ActionForceDeletePod     Action = "ForceDeletePod"
	ActionCordonNode         Action = "CordonNode"
	ActionUncordonNode       Action = "UncordonNode"
	ActionDrainNode          Action = "DrainNode"
	ActionRetryJob           Action = "RetryJob"
	ActionSetAutoscaler      Action = "SetAutoscaler"
	ActionRestartContainer   Action = "RestartContainer"
	ActionPruneImages        Action = "PruneImages"
	ActionCollectDiagnostics Action = "CollectDiagnostics"
)

// Actions lists the whole catalogue in a stable order.
var Actions = []Action{
	ActionRollbackWorkload, ActionRestartWorkload, ActionScaleWorkload, ActionSetResources,
	ActionPatchWorkload, ActionEvictPod, ActionForceDeletePod, ActionCordonNode,
	ActionUncordonNode, ActionDrainNode, ActionRetryJob, ActionSetAutoscaler,
	ActionRestartContainer, ActionPruneImages, ActionCollectDiagnostics,
}

// Risk is the proposer's own assessment of how much could go wrong.
// +kubebuilder:validation:Enum=Low;Medium;High
type Risk string

// Risk classes.
const (
	RiskLow    Risk = "Low"
	RiskMedium Risk = "Medium"
	RiskHigh   Risk = "High"
)

// TargetRef names the exact object a proposal acts on, pinned to the UID and
// resourceVersion it had when the proposal was made.
type TargetRef struct {
	// APIVersion of the target, e.g. apps/v1.
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// Kind of the target, e.g. Deployment.
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Namespace of the target; empty for cluster-scoped targets such as nodes.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the target.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// UID of the target when the proposal was made. Required: a proposal
	// names one existing object, not whatever holds the name later.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	UID types.UID `json:"uid"`
	// ResourceVersion of the target when the proposal was made. A different
	// resourceVersion at apply time makes the proposal stale.
	// +optional
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Generation of the target when the proposal was made. A spec change of
	// the target (a new generation) makes the proposal stale; status-only
	// updates, which change resourceVersion but not generation, do not.
	// +optional
	Generation int64 `json:"generation,omitempty"`
}

// RollbackParameters are the parameters of RollbackWorkload.
type RollbackParameters struct {
	// ToRevision is the rollout revision to return to; 0 means the one before
	// the current revision.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ToRevision int64 `json:"toRevision,omitempty"`
	// FromRevision is the revision the proposer saw as current and failing.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FromRevision int64 `json:"fromRevision,omitempty"`
}

// ScaleParameters are the parameters of ScaleWorkload.
type ScaleParameters struct {
	// Replicas is the desired replica count.
	// +kubebuilder:validation:Minimum=0
	Replicas int32 `json:"replicas"`
}

// JSONPatchOperation is one RFC 6902 operation of a PatchWorkload change.
type JSONPatchOperation struct {
	// Op is the operation.
	// +kubebuilder:validation:Enum=add;remove;replace;test
	Op string `json:"op"`
	// Path is the JSON pointer the operation applies to.
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`
	// Value is the JSON value for add, replace and test.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
}

// Parameters holds the typed parameters of the proposal's action. At most the
// member matching the action is set.
type Parameters struct {
	// +optional
	Rollback *RollbackParameters `json:"rollback,omitempty"`
	// +optional
	Scale *ScaleParameters `json:"scale,omitempty"`
	// Patch is the exact JSON patch of a PatchWorkload proposal.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Patch []JSONPatchOperation `json:"patch,omitempty"`
	// +optional
	Resources *ResourcesParameters `json:"resources,omitempty"`
	// +optional
	Autoscaler *AutoscalerParameters `json:"autoscaler,omitempty"`
	// +optional
	Eviction *EvictionParameters `json:"eviction,omitempty"`
	// +optional
	Drain *DrainParameters `json:"drain,omitempty"`
	// +optional
	Container *ContainerParameters `json:"container,omitempty"`
	// +optional
	Prune *PruneParameters `json:"prune,omitempty"`
}

// ResourcesParameters are the parameters of SetResources: the new requests
// and limits of one container of the workload's pod template.
type ResourcesParameters struct {
	// Container names the container.
	// +kubebuilder:validation:MinLength=1
	Container string `json:"container"`
	// Requests replace the container's requests for the resources named.
	// +optional
	Requests corev1.ResourceList `json:"requests,omitempty"`
	// Limits replace the container's limits for the resources named.
	// +optional
	Limits corev1.ResourceList `json:"limits,omitempty"`
}

// AutoscalerParameters are the parameters of SetAutoscaler.
type AutoscalerParameters struct {
	// MinReplicas is the autoscaler's new lower bound.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the autoscaler's new upper bound.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// TargetCPUUtilization is the new average CPU utilization target, in
	// percent of requests.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`
	// ScaleTargetName points the autoscaler at another workload of the kind
	// and API version it targets now; only the name changes.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	ScaleTargetName string `json:"scaleTargetName,omitempty"`
}

// EvictionParameters are the parameters of EvictPod.
type EvictionParameters struct {
	// GracePeriodSeconds overrides the pod's termination grace period.
	// +kubebuilder:validation:Minimum=0
	// +optional
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
}

// DrainParameters are the parameters of DrainNode.
type DrainParameters struct {
	// GracePeriodSeconds overrides each pod's termination grace period.
	// +kubebuilder:validation:Minimum=0
	// +optional
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	// TimeoutSeconds bounds the whole drain.
	// +kubebuilder:validation:Minimum=1
	// +optional
	TimeoutSeconds *int64 `json:"timeoutSeconds,omitempty"`
}

// ContainerParameters name one container of the target pod, for
// RestartContainer and CollectDiagnostics.
type ContainerParameters struct {
	// Container names the container; empty means all of the pod's.
	// +optional
	Container string `json:"container,omitempty"`
}

// PruneParameters are the parameters of PruneImages: the image
// filesystem usage to prune down to, and images never to remove on top of
// the node's own allow-list. Exactly one of TargetUsedPercent and
// TargetUsedBytes is set.
// +kubebuilder:validation:XValidation:rule="has(self.targetUsedPercent) != has(self.targetUsedBytes)",message="set exactly one of targetUsedPercent and targetUsedBytes"
type PruneParameters struct {
	// TargetUsedPercent is the usage to prune down to, in percent of the
	// image filesystem's capacity (the node's shim must see the filesystem).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	// +optional
	TargetUsedPercent *int32 `json:"targetUsedPercent,omitempty"`
	// TargetUsedBytes is the usage to prune down to, in bytes.
	// +kubebuilder:validation:Minimum=1
	// +optional
	TargetUsedBytes *int64 `json:"targetUsedBytes,omitempty"`
	// Keep lists images never to remove: a reference
	// ("registry.example.com/app:1.2"), an image ID, or a prefix ending in
	// "*" ("registry.example.com/base/*"). The node's own allow-list, images
	// containers use and the sandbox image are kept whatever it says.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +optional
	Keep []string `json:"keep,omitempty"`
}

// TelemetryRef points at one telemetry message that supports a proposal.
type TelemetryRef struct {
	// Subject the message was published on.
	Subject string `json:"subject"`
	// Sequence of the message in the TELEMETRY stream.
	// +optional
	Sequence uint64 `json:"sequence,omitempty"`
	// ID is the message's envelope ID.
	// +optional
	ID string `json:"id,omitempty"`
}

// Evidence is what the proposer saw.
type Evidence struct {
	// Summary is a short human-readable account of the evidence. It is
	// untrusted text and is never interpreted.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Summary string `json:"summary,omitempty"`
	// Telemetry lists the messages the proposal is based on.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Telemetry []TelemetryRef `json:"telemetry,omitempty"`
}

// Proposer identifies who made a proposal. The API server's admission
// policy checks it against the authenticated creator: a proposal created
// directly names its creator; one relayed by the MCP server names the
// caller the server authenticated, and Via names the server.
type Proposer struct {
	// Username as authenticated by the Kubernetes API server.
	// +kubebuilder:validation:MinLength=1
	Username string `json:"username"`
	// Groups as authenticated by the Kubernetes API server.
	// +optional
	Groups []string `json:"groups,omitempty"`
	// Via is the relay that created the proposal on the proposer's behalf
	// (the MCP server's identity), empty when the proposer created it.
	// +optional
	Via string `json:"via,omitempty"`
	// Agent is the name the calling agent gave itself; informational only.
	// +optional
	Agent string `json:"agent,omitempty"`
}

// ProposalSpec is one concrete, complete change. It is immutable in meaning:
// any change to it changes the spec hash and voids every approval.
type ProposalSpec struct {
	// Action is the catalogue action to take.
	Action Action `json:"action"`
	// Target is the object the action applies to.
	Target TargetRef `json:"target"`
	// Parameters are the action's typed parameters.
	// +optional
	Parameters Parameters `json:"parameters,omitempty"`
	// Evidence supporting the proposal.
	// +optional
	Evidence Evidence `json:"evidence,omitempty"`
	// Rationale explains why the action should fix the problem.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Rationale string `json:"rationale,omitempty"`
	// Risk is the proposer's risk class.
	// +kubebuilder:default=Medium
	// +optional
	Risk Risk `json:"risk,omitempty"`
	// Proposer is the authenticated identity that made the proposal.
	Proposer Proposer `json:"proposer"`
	// Fingerprint identifies "the same proposal" for de-duplication.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// ExpiresAt is when an undecided or unapproved proposal expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// Phase is where a proposal is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;AwaitingApproval;Approved;Denied;Applying;Verifying;Succeeded;Failed;RolledBack;Expired;Superseded;Overtaken
type Phase string

// Proposal phases.
const (
	PhasePending          Phase = "Pending"
	PhaseAwaitingApproval Phase = "AwaitingApproval"
	PhaseApproved         Phase = "Approved"
	PhaseDenied           Phase = "Denied"
	PhaseApplying         Phase = "Applying"
	PhaseVerifying        Phase = "Verifying"
	PhaseSucceeded        Phase = "Succeeded"
	PhaseFailed           Phase = "Failed"
	PhaseRolledBack       Phase = "RolledBack"
	PhaseExpired          Phase = "Expired"
	PhaseSuperseded       Phase = "Superseded"
	// PhaseOvertaken: the change was applied, but someone else changed the
	// target before it was verified, so its outcome is not the proposal's
	// to claim; tend neither credits nor undoes it.
	PhaseOvertaken Phase = "Overtaken"
)

// Terminal reports whether no further transition can happen from p.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseDenied, PhaseSucceeded, PhaseFailed, PhaseRolledBack, PhaseExpired, PhaseSuperseded, PhaseOvertaken:
		return true
	}
	return false
}

// Outcome is the result of a gate decision.
// +kubebuilder:validation:Enum=AutoApprove;RequireApproval;Deny
type Outcome string

// Gate outcomes, from weakest to strongest.
const (
	OutcomeAutoApprove     Outcome = "AutoApprove"
	OutcomeRequireApproval Outcome = "RequireApproval"
	OutcomeDeny            Outcome = "Deny"
)

// Reason is one machine-readable reason code with its explanation.
type Reason struct {
	// Code is a stable, machine-readable reason, e.g. ProtectedNamespace.
	Code string `json:"code"`
	// Message explains the reason to a human or an agent.
	// +optional
	Message string `json:"message,omitempty"`
	// Policy is the GatePolicy that produced the reason, if any.
	// +optional
	Policy string `json:"policy,omitempty"`
	// Rule is the rule within Policy, if any.
	// +optional
	Rule string `json:"rule,omitempty"`
	// Guard is the built-in guard that produced the reason, if any.
	// +optional
	Guard string `json:"guard,omitempty"`
}

// Decision is the gate's record of one decision.
type Decision struct {
	// Outcome of the gate.
	Outcome Outcome `json:"outcome"`
	// Policy that decided the outcome; empty when no rule matched or a guard decided.
	// +optional
	Policy string `json:"policy,omitempty"`
	// Rule within Policy that decided the outcome.
	// +optional
	Rule string `json:"rule,omitempty"`
	// Reasons lists every contributing reason, strongest first.
	// +optional
	Reasons []Reason `json:"reasons,omitempty"`
	// RequiredApprovals is how many distinct approvers RequireApproval needs.
	// +optional
	RequiredApprovals int32 `json:"requiredApprovals,omitempty"`
	// ApproverGroups, if set, restricts who may count as an approver.
	// +optional
	ApproverGroups []string `json:"approverGroups,omitempty"`
	// SpecHash is the hash of the spec this decision was made for.
	SpecHash string `json:"specHash"`
	// TargetResourceVersion is the target's resourceVersion the decision saw.
	// +optional
	TargetResourceVersion string `json:"targetResourceVersion,omitempty"`
	// DecidedAt is when the gate decided.
	DecidedAt metav1.Time `json:"decidedAt"`
	// Facts are what the controller read from the cluster for this
	// decision. The gate decided on them, never on the proposal's claims.
	// +optional
	Facts *Facts `json:"facts,omitempty"`
}

// Facts are what the proposal controller read from the cluster before a
// decision. A fact it could not establish is absent or false, and the gate
// then approves nothing automatically on it.
type Facts struct {
	// TargetExists is whether the target was found with the UID the
	// proposal pins.
	TargetExists bool `json:"targetExists"`
	// TargetGeneration is the target's generation when decided.
	// +optional
	TargetGeneration int64 `json:"targetGeneration,omitempty"`
	// Replicas is the target's desired replica count, for scalable targets.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is how many of them were ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Revision holds the rollout facts of a rollback.
	// +optional
	Revision *RevisionFacts `json:"revision,omitempty"`
	// Disruption is what the action takes down at once.
	// +optional
	Disruption *DisruptionFacts `json:"disruption,omitempty"`
	// Node holds the facts of a node action's node.
	// +optional
	Node *NodeFacts `json:"node,omitempty"`
	// Resources are the current requests and limits of the container a
	// SetResources proposal changes.
	// +optional
	Resources *ResourceFacts `json:"resources,omitempty"`
	// Autoscaler holds the current bounds of a SetAutoscaler target.
	// +optional
	Autoscaler *AutoscalerFacts `json:"autoscaler,omitempty"`
	// ImageFS is the node's image filesystem as its runtime shim reported
	// it, for PruneImages.
	// +optional
	ImageFS *ImageFSFacts `json:"imageFs,omitempty"`
	// Run is the improvement run the proposal's fingerprint names, as read
	// from the run object; absent when the proposal names no run.
	// +optional
	Run *RunFacts `json:"run,omitempty"`
}

// RunFacts are the improvement run a proposal says it belongs to, as the
// controller found it. Only the run object says what is in the run and
// when its window closes; the proposal's fingerprint only names it.
type RunFacts struct {
	// Namespace and Name of the run the fingerprint names.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Member is whether that run exists and lists this proposal, for its
	// target, as one of its changes or as the undo of one.
	Member bool `json:"member"`
	// Undo is whether the run lists it as the undo of one of its changes.
	// +optional
	Undo bool `json:"undo,omitempty"`
	// WindowEnd is when the run's window closes, from the run's spec; set
	// only for a member.
	// +optional
	WindowEnd *metav1.Time `json:"windowEnd,omitempty"`
}

// ImageFSFacts are a node's image filesystem usage, as the runtime last
// measured it; capacity and percent are 0 when the shim cannot see the
// filesystem.
type ImageFSFacts struct {
	UsedBytes     int64 `json:"usedBytes"`
	CapacityBytes int64 `json:"capacityBytes,omitempty"`
	UsedPercent   int32 `json:"usedPercent,omitempty"`
}

// NodeFacts are a node's state as a node action finds it.
type NodeFacts struct {
	// Ready is whether the node's Ready condition is True.
	Ready bool `json:"ready"`
	// Unschedulable is whether the node is cordoned.
	Unschedulable bool `json:"unschedulable"`
	// Pods is how many pods a drain would evict (not DaemonSet or mirror
	// pods, not finished ones).
	Pods int32 `json:"pods"`
}

// ResourceFacts are one container's requests and limits, in millicores
// and bytes; 0 when not set.
type ResourceFacts struct {
	Container          string `json:"container"`
	CPURequestMilli    int64  `json:"cpuRequestMilli,omitempty"`
	CPULimitMilli      int64  `json:"cpuLimitMilli,omitempty"`
	MemoryRequestBytes int64  `json:"memoryRequestBytes,omitempty"`
	MemoryLimitBytes   int64  `json:"memoryLimitBytes,omitempty"`
}

// AutoscalerFacts are a HorizontalPodAutoscaler's current bounds and the
// workload it scales.
type AutoscalerFacts struct {
	MinReplicas          int32 `json:"minReplicas"`
	MaxReplicas          int32 `json:"maxReplicas"`
	CurrentReplicas      int32 `json:"currentReplicas"`
	TargetCPUUtilization int32 `json:"targetCPUUtilization,omitempty"`
	// ScaleTarget is the name of the workload it targets now, and
	// ScaleTargetExists whether that workload exists.
	// +optional
	ScaleTarget       string `json:"scaleTarget,omitempty"`
	ScaleTargetExists bool   `json:"scaleTargetExists,omitempty"`
}

// RevisionFacts are the rollout history facts of a rollback.
type RevisionFacts struct {
	// Current is the workload's current revision.
	Current int64 `json:"current"`
	// To is the revision the rollback returns to, resolved by the
	// controller (the proposal may leave it to "the one before").
	// +optional
	To int64 `json:"to,omitempty"`
	// ToHealthy is whether the controller found that revision ran healthy:
	// all of its desired pods ready, with no restarts, for a window.
	ToHealthy bool `json:"toHealthy"`
	// Evidence says how the controller knows, or why it does not.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Evidence string `json:"evidence,omitempty"`
}

// DisruptionFacts are how much of a workload an action takes down at once.
type DisruptionFacts struct {
	// PodsAffected is how many pods the action stops or replaces at once.
	PodsAffected int32 `json:"podsAffected"`
	// Percent is PodsAffected as a share of the desired replicas.
	Percent int32 `json:"percent"`
	// PDB names (namespace/name) a PodDisruptionBudget the action's
	// evictions would exceed now; empty when none would.
	// +optional
	PDB string `json:"pdb,omitempty"`
	// PDBAllowed is how many disruptions that budget allows now.
	// +optional
	PDBAllowed int32 `json:"pdbAllowed,omitempty"`
}

// ApprovalRecord is one counted approval or denial.
type ApprovalRecord struct {
	// Approval is the name of the Approval object.
	Approval string `json:"approval"`
	// Approver is the authenticated user who approved or denied.
	Approver string `json:"approver"`
	// Decision is Approve or Deny.
	Decision ApprovalDecision `json:"decision"`
	// Reason the approver gave.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Time of the approval.
	Time metav1.Time `json:"time"`
}

// ApplyRecord records one application of a change (the action, or its undo).
type ApplyRecord struct {
	// Attempt is a unique token for this apply, written before the change is
	// made, so that a restarted controller can tell a finished apply from one
	// that never started.
	Attempt string `json:"attempt"`
	// StartedAt is when the apply began.
	StartedAt metav1.Time `json:"startedAt"`
	// CompletedAt is when the apply finished, successfully or not.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// FieldManager used for the write.
	// +optional
	FieldManager string `json:"fieldManager,omitempty"`
	// Before describes the target before the change (e.g. "revision 2").
	// +optional
	Before string `json:"before,omitempty"`
	// After describes the target after the change (e.g. "revision 3 (template of revision 1)").
	// +optional
	After string `json:"after,omitempty"`
	// UndoState is what the action recorded, at apply time, to undo the
	// change (JSON of the action's own: the previous replica count, the
	// inverse patch, the revision to return to).
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	UndoState string `json:"undoState,omitempty"`
	// Steps record the progress of an apply made of several writes (a
	// drain's evictions), so that a restarted controller resumes where it
	// was and never repeats a step.
	// +kubebuilder:validation:MaxItems=512
	// +optional
	Steps []ApplyStep `json:"steps,omitempty"`
	// ResultingGeneration is the target's generation after the write; an undo
	// refuses to run over a target someone else changed since.
	// +optional
	ResultingGeneration int64 `json:"resultingGeneration,omitempty"`
	// ResultingResourceVersion is the target's resourceVersion after the write.
	// +optional
	ResultingResourceVersion string `json:"resultingResourceVersion,omitempty"`
	// ResultDigest is a digest of the part of the target the write set (a
	// workload's pod template, say), as the API server stored it.
	// Verification credits the proposal only while the live target still
	// has it.
	// +optional
	ResultDigest string `json:"resultDigest,omitempty"`
	// Shim records what the runtime shim did on a node, for the node
	// actions (RestartContainer, PruneImages, CollectDiagnostics): the
	// attempt the shim's ledger knows it by, and its result.
	// +optional
	Shim *ShimRecord `json:"shim,omitempty"`
	// Error, if the apply failed.
	// +optional
	Error string `json:"error,omitempty"`
}

// ShimRecord is what a node's runtime shim reported for one attempt.
type ShimRecord struct {
	// Node the action ran on.
	Node string `json:"node"`
	// AttemptID is the attempt's ID in the shim's ledger: sent again, it
	// replays the recorded result and does nothing twice.
	// +kubebuilder:validation:MaxLength=256
	AttemptID string `json:"attemptID"`
	// Container is the container RestartContainer stopped.
	// +optional
	Container *StoppedContainer `json:"container,omitempty"`
	// Prune is what PruneImages did.
	// +optional
	Prune *PruneRecord `json:"prune,omitempty"`
	// Diagnostics locates what CollectDiagnostics stored.
	// +optional
	Diagnostics *DiagnosticsRef `json:"diagnostics,omitempty"`
}

// StoppedContainer is the container RestartContainer stopped; the one the
// kubelet starts next must start later.
type StoppedContainer struct {
	ID string `json:"id"`
	// StartedAt is when the stopped container had started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// RestartCount of the stopped container.
	// +optional
	RestartCount int32 `json:"restartCount,omitempty"`
	// AlreadyStopped is true when it had stopped before the shim stopped it.
	// +optional
	AlreadyStopped bool `json:"alreadyStopped,omitempty"`
}

// PruneRecord is what PruneImages did.
type PruneRecord struct {
	// UsedBytesBefore is the image filesystem's usage when pruning started.
	UsedBytesBefore int64 `json:"usedBytesBefore"`
	// TargetUsedBytes is the target in bytes; verification waits until the
	// measured usage is at or below it.
	TargetUsedBytes int64 `json:"targetUsedBytes"`
	// EstimatedUsedBytesAfter is the usage expected once the runtime
	// measures it again.
	EstimatedUsedBytesAfter int64 `json:"estimatedUsedBytesAfter"`
	// TargetReached is false when removing every image that may go was not
	// expected to reach the target.
	TargetReached bool `json:"targetReached"`
	// RemovedImages is how many images were removed, FreedBytes their size.
	RemovedImages int32 `json:"removedImages"`
	FreedBytes    int64 `json:"freedBytes"`
	// Removed lists the removed images (references, or IDs of untagged
	// ones), at most 32.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Removed []string `json:"removed,omitempty"`
	// Kept counts the images kept because a running container uses them,
	// another container uses them, the runtime pins them, or an allow-list
	// names them.
	KeptRunning     int32 `json:"keptRunning,omitempty"`
	KeptInUse       int32 `json:"keptInUse,omitempty"`
	KeptPinned      int32 `json:"keptPinned,omitempty"`
	KeptAllowListed int32 `json:"keptAllowListed,omitempty"`
}

// DiagnosticsRef locates a diagnostics bundle in the NATS object store.
type DiagnosticsRef struct {
	Bucket string `json:"bucket"`
	Object string `json:"object"`
	Size   int64  `json:"size"`
	// Digest is the object store's digest of the bundle; readers check it.
	Digest     string `json:"digest"`
	Containers int32  `json:"containers"`
}

// StepState is where one step of an apply is.
// +kubebuilder:validation:Enum=Started;Done;Skipped;Blocked
type StepState string

// Step states.
const (
	// StepStarted: the step is about to be, or was, carried out; a
	// restarted controller checks which before doing anything.
	StepStarted StepState = "Started"
	StepDone    StepState = "Done"
	// StepSkipped: the step had nothing to do (the pod was gone already).
	StepSkipped StepState = "Skipped"
	// StepBlocked: the step cannot be carried out without breaking a
	// guarantee (a PodDisruptionBudget); the apply stops there.
	StepBlocked StepState = "Blocked"
)

// ApplyStep is one step of an apply made of several writes.
type ApplyStep struct {
	// Action of the step, e.g. evict.
	Action string `json:"action"`
	// Object the step acts on, as namespace/name.
	Object string `json:"object"`
	// UID of the object.
	// +optional
	UID string `json:"uid,omitempty"`
	// Owner is the workload of the object (Kind/name), when it has one.
	// +optional
	Owner string    `json:"owner,omitempty"`
	State StepState `json:"state"`
	// Message says what happened, or what blocks the step.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Message string `json:"message,omitempty"`
}

// Check is one verification check and its latest result.
type Check struct {
	// Name of the check, e.g. RolloutComplete.
	Name string `json:"name"`
	// Passed reports whether the check passed on its latest evaluation.
	Passed bool `json:"passed"`
	// Message with details.
	// +optional
	Message string `json:"message,omitempty"`
}

// VerifyRecord records the verification of an applied change.
type VerifyRecord struct {
	// StartedAt is when verification began.
	StartedAt metav1.Time `json:"startedAt"`
	// Deadline by which verification must pass.
	Deadline metav1.Time `json:"deadline"`
	// StableSince is when every check first passed in the current streak.
	// +optional
	StableSince *metav1.Time `json:"stableSince,omitempty"`
	// CompletedAt is when verification concluded.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// Passed is set once verification concluded.
	// +optional
	Passed *bool `json:"passed,omitempty"`
	// Checks with their latest results.
	// +optional
	Checks []Check `json:"checks,omitempty"`
	// Baseline holds per-pod restart counts captured at the start of the
	// stability window, keyed by pod name.
	// +optional
	Baseline map[string]int32 `json:"baseline,omitempty"`
}

// ProposalStatus is the observed lifecycle of a proposal.
type ProposalStatus struct {
	// Phase of the proposal.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// SpecHash is the hash of the spec as last reconciled.
	// +optional
	SpecHash string `json:"specHash,omitempty"`
	// DecidedSpec is the spec the gate decided. Approval, apply, verify
	// and undo act on it, whatever the live spec says.
	// +optional
	DecidedSpec *ProposalSpec `json:"decidedSpec,omitempty"`
	// Conditions: Decided, Approved, Applied, Verified.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Decision is the gate's latest decision.
	// +optional
	Decision *Decision `json:"decision,omitempty"`
	// Approvals counted for the current spec hash.
	// +optional
	Approvals []ApprovalRecord `json:"approvals,omitempty"`
	// Apply records the application of the action.
	// +optional
	Apply *ApplyRecord `json:"apply,omitempty"`
	// Verify records the verification of the action.
	// +optional
	Verify *VerifyRecord `json:"verify,omitempty"`
	// Rollback records the undo, when verification failed.
	// +optional
	Rollback *ApplyRecord `json:"rollback,omitempty"`
	// RollbackVerify records the verification of the undo: that the cluster
	// acted on the restored spec.
	// +optional
	RollbackVerify *VerifyRecord `json:"rollbackVerify,omitempty"`
	// Repeats counts identical proposals folded into this one: proposals
	// with the same fingerprint made while this one was open.
	// +optional
	Repeats int32 `json:"repeats,omitempty"`
	// LastRepeat is when the latest repeat was counted.
	// +optional
	LastRepeat *metav1.Time `json:"lastRepeat,omitempty"`
	// RepeatSequence is the PROPOSALS stream sequence of the latest repeat
	// counted, so that a redelivered repeat is not counted twice.
	// +optional
	RepeatSequence uint64 `json:"repeatSequence,omitempty"`
	// SupersededBy names the proposal whose change to the same target made
	// this one obsolete.
	// +optional
	SupersededBy string `json:"supersededBy,omitempty"`
	// Message is a one-line summary of the current state.
	// +optional
	Message string `json:"message,omitempty"`
	// AuditSequence counts the transitions of this proposal recorded so
	// far (committed to status; the audit log may still be catching up).
	// +optional
	AuditSequence int64 `json:"auditSequence,omitempty"`
	// AuditOutbox holds committed transitions not yet appended to the audit
	// log; the controller retries them until they are.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	AuditOutbox []PendingAudit `json:"auditOutbox,omitempty"`
}

// PendingAudit is one committed transition waiting for the audit log.
type PendingAudit struct {
	// Sequence of the transition within the proposal, from 1.
	Sequence int64 `json:"sequence"`
	// Time of the transition.
	Time metav1.Time `json:"time"`
	// From and To are the phases.
	// +optional
	From Phase `json:"from,omitempty"`
	To   Phase `json:"to"`
	// Reason code of the transition.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message of the transition.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Message string `json:"message,omitempty"`
}

// Proposal is one agent-proposed change, decided by the gate, approved by
// humans where required, and applied, verified and if need be rolled back by
// the proposal controller.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=prop,categories=tend
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Decision",type=string,JSONPath=`.status.decision.outcome`
// +kubebuilder:printcolumn:name="Proposer",type=string,JSONPath=`.spec.proposer.username`,priority=1
// +kubebuilder:printcolumn:name="Repeats",type=integer,JSONPath=`.status.repeats`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",message="a proposal's spec is immutable; make a new proposal for another change"
type Proposal struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProposalSpec   `json:"spec"`
	Status ProposalStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ProposalList is a list of Proposals.
type ProposalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Proposal `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Proposal{}, &ProposalList{})
}
