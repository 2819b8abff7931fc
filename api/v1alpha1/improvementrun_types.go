package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunPhase is where an improvement run is.
// +kubebuilder:validation:Enum=Analyzing;Canary;Rolling;Succeeded;Stopped;Failed
type RunPhase string

// The phases of an ImprovementRun.
const (
	RunAnalyzing RunPhase = "Analyzing"
	RunCanary    RunPhase = "Canary"
	RunRolling   RunPhase = "Rolling"
	RunSucceeded RunPhase = "Succeeded"
	RunStopped   RunPhase = "Stopped"
	RunFailed    RunPhase = "Failed"
)

// Finished reports whether the phase is terminal.
func (p RunPhase) Finished() bool {
	return p == RunSucceeded || p == RunStopped || p == RunFailed
}

// LabelSchedule names the schedule of a run.
const LabelSchedule = "tend.dev/schedule"

// ImprovementRunSpec is one run of a schedule: its settings are copied from
// the schedule when the run is created, so changing the schedule does not
// change a run under way.
type ImprovementRunSpec struct {
	// Schedule is the name of the ImprovementSchedule that made the run.
	Schedule string `json:"schedule"`
	// ScheduledTime is the schedule's time the run is for.
	ScheduledTime metav1.Time `json:"scheduledTime"`
	// WindowEnd is when the run must stop applying.
	WindowEnd metav1.Time `json:"windowEnd"`
	// Agents are the analyzers to run.
	// +kubebuilder:validation:MinItems=1
	Agents []string `json:"agents"`
	// +optional
	Scope ScheduleScope `json:"scope,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	CanaryPercent int32 `json:"canaryPercent"`
	// +kubebuilder:validation:Minimum=1
	BatchSize int32 `json:"batchSize"`
	// +optional
	Soak metav1.Duration `json:"soak,omitempty"`
	// +optional
	ReportOnly bool `json:"reportOnly,omitempty"`
	// +optional
	Rightsizing RightsizingParams `json:"rightsizing,omitempty"`
	// +optional
	Pricing Pricing `json:"pricing,omitempty"`
	// Stop asks the run to stop: no further proposal is made.
	// +optional
	Stop bool `json:"stop,omitempty"`
}

// ItemOutcome is what became of one recommendation.
// +kubebuilder:validation:Enum=Planned;Reported;NotEnoughData;Proposed;AwaitingApproval;Applied;Verified;Denied;Failed;Undone;Skipped
type ItemOutcome string

// The outcomes of a RunItem.
const (
	// ItemPlanned: a change waits for its batch.
	ItemPlanned ItemOutcome = "Planned"
	// ItemReported: a finding for a human, nothing to apply.
	ItemReported ItemOutcome = "Reported"
	// ItemNotEnoughData: the history was too sparse to recommend anything.
	ItemNotEnoughData ItemOutcome = "NotEnoughData"
	ItemProposed      ItemOutcome = "Proposed"
	// ItemAwaitingApproval: the gate held the proposal for a human.
	ItemAwaitingApproval ItemOutcome = "AwaitingApproval"
	// ItemApplied: the proposal succeeded; the soak is under way.
	ItemApplied ItemOutcome = "Applied"
	// ItemVerified: applied and healthy through the soak.
	ItemVerified ItemOutcome = "Verified"
	ItemDenied   ItemOutcome = "Denied"
	ItemFailed   ItemOutcome = "Failed"
	// ItemUndone: applied, then put back after a regression.
	ItemUndone ItemOutcome = "Undone"
	// ItemSkipped: the run stopped before its batch.
	ItemSkipped ItemOutcome = "Skipped"
)

// Resources are one container's requests and limits, in millicores and bytes;
// 0 is unset.
type Resources struct {
	// +optional
	CPURequestMillicores int64 `json:"cpuRequestMillicores,omitempty"`
	// +optional
	MemoryRequestBytes int64 `json:"memoryRequestBytes,omitempty"`
	// +optional
	MemoryLimitBytes int64 `json:"memoryLimitBytes,omitempty"`
	// Replicas of the workload, for a change of scale.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// MinReplicas and MaxReplicas of a HorizontalPodAutoscaler.
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
}

// UsageEvidence is the data a recommendation rests on.
type UsageEvidence struct {
	// Window of history read.
	Window metav1.Duration `json:"window"`
	// +optional
	CPUPercentile int32 `json:"cpuPercentile,omitempty"`
	Samples       int32 `json:"samples"`
	// Observed usage over the window.
	// +optional
	CPUPercentileMillicores int64 `json:"cpuPercentileMillicores,omitempty"`
	// +optional
	CPUPeakMillicores int64 `json:"cpuPeakMillicores,omitempty"`
	// +optional
	MemoryPeakBytes int64 `json:"memoryPeakBytes,omitempty"`
	// Source of the history, e.g. jetstream or prometheus.
	// +optional
	Source string `json:"source,omitempty"`
}

// WorkloadRef names a workload.
type WorkloadRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// RunItem is one recommendation of a run and what became of it.
type RunItem struct {
	Workload WorkloadRef `json:"workload"`
	// +optional
	Container string `json:"container,omitempty"`
	// Analyzer that made the recommendation.
	Analyzer string `json:"analyzer"`
	// Action of the catalogue the change needs; empty for a report.
	// +optional
	Action string `json:"action,omitempty"`
	// Batch is 0 for the canary, then 1, 2, ...
	// +optional
	Batch int32 `json:"batch,omitempty"`
	// +optional
	Before Resources `json:"before,omitempty"`
	// +optional
	After Resources `json:"after,omitempty"`
	// +optional
	Evidence *UsageEvidence `json:"evidence,omitempty"`
	// Message explains the recommendation or finding.
	// +optional
	Message string      `json:"message,omitempty"`
	Outcome ItemOutcome `json:"outcome"`
	// Proposal that carries the change; UndoProposal the one that put it back.
	// +optional
	Proposal string `json:"proposal,omitempty"`
	// +optional
	UndoProposal string `json:"undoProposal,omitempty"`
	// AppliedAt is when the proposal succeeded; the soak counts from it.
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`
	// Restarts is the workload's container restarts when the item was proposed.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`
}

// Savings are what the applied changes free, against the old requests.
type Savings struct {
	CPUMillicores int64 `json:"cpuMillicores"`
	MemoryBytes   int64 `json:"memoryBytes"`
	// Monthly is the money at the schedule's prices, when it sets them.
	// +optional
	Monthly string `json:"monthly,omitempty"`
}

// ImprovementRunStatus is the run's progress.
type ImprovementRunStatus struct {
	// +optional
	Phase RunPhase `json:"phase,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Batch is the batch under way: 0 the canary.
	// +optional
	Batch int32 `json:"batch,omitempty"`
	// Batches is how many batches the run has, the canary included.
	// +optional
	Batches int32 `json:"batches,omitempty"`
	// +optional
	// +listType=atomic
	Items []RunItem `json:"items,omitempty"`
	// Projected savings of every recommended change; Achieved of those
	// applied and verified.
	// +optional
	Projected Savings `json:"projected,omitempty"`
	// +optional
	Achieved Savings `json:"achieved,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ImprovementRun is one run of an ImprovementSchedule: its analysis, its
// proposals in a canary and batches, and what they saved.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Batch",type=integer,JSONPath=`.status.batch`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImprovementRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImprovementRunSpec   `json:"spec"`
	Status ImprovementRunStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImprovementRunList is a list of ImprovementRuns.
type ImprovementRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImprovementRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImprovementRun{}, &ImprovementRunList{})
}
