package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScheduleScope limits which workloads an improvement run looks at.
type ScheduleScope struct {
	// Namespaces to include; empty means all but kube-system.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// Selector over workload labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ImprovementScheduleSpec says when improvement agents run and on what.
type ImprovementScheduleSpec struct {
	// Schedule in cron syntax (five fields).
	// +kubebuilder:validation:MinLength=9
	Schedule string `json:"schedule"`
	// TimeZone is an IANA time zone name for Schedule.
	// +kubebuilder:default=UTC
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
	// Agents are the improvement analyzers to run, e.g. rightsizing.
	// +kubebuilder:validation:MinItems=1
	Agents []string `json:"agents"`
	// Scope of the run.
	// +optional
	Scope ScheduleScope `json:"scope,omitempty"`
	// Window is how long after the scheduled time proposals may still be applied.
	// +kubebuilder:default="1h"
	// +optional
	Window metav1.Duration `json:"window,omitempty"`
	// CanaryPercent of a run's changes are applied first, verified and
	// soaked before the rest: 1 to 100. The controller checks the range and
	// reports a value outside it as a condition.
	// +kubebuilder:default=10
	// +optional
	CanaryPercent int32 `json:"canaryPercent,omitempty"`
	// Suspend stops new runs.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// ReportOnly runs analyze and report but propose nothing.
	// +optional
	ReportOnly bool `json:"reportOnly,omitempty"`
	// BatchSize is how many proposals follow the canary at a time.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=5
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`
	// Soak is how long a verified canary or batch must stay healthy (no
	// OOM kill, no restart, no unavailable replica) before the next starts.
	// +kubebuilder:default="5m"
	// +optional
	Soak metav1.Duration `json:"soak,omitempty"`
	// Rightsizing tunes the rightsizing analyzer.
	// +optional
	Rightsizing RightsizingParams `json:"rightsizing,omitempty"`
	// Pricing turns saved resources into money in the report.
	// +optional
	Pricing Pricing `json:"pricing,omitempty"`
	// HistoryLimit is how many finished runs are kept.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=5
	// +optional
	HistoryLimit int32 `json:"historyLimit,omitempty"`
}

// RightsizingParams is the rightsizing strategy: CPU requests at a
// percentile of usage, memory requests and limits at the peak plus headroom.
type RightsizingParams struct {
	// History is how far back usage is read.
	// +kubebuilder:default="168h"
	// +optional
	History metav1.Duration `json:"history,omitempty"`
	// CPUPercentile of CPU usage the CPU request is set to.
	// +kubebuilder:validation:Minimum=50
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=95
	// +optional
	CPUPercentile int32 `json:"cpuPercentile,omitempty"`
	// MemoryHeadroomPercent is added to the memory peak for the request and limit.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=400
	// +kubebuilder:default=20
	// +optional
	MemoryHeadroomPercent int32 `json:"memoryHeadroomPercent,omitempty"`
	// MinSamples is the fewest samples a container needs; fewer is "not enough data".
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=60
	// +optional
	MinSamples int32 `json:"minSamples,omitempty"`
	// MaxGap is the longest gap allowed between samples; a longer one is
	// "not enough data".
	// +kubebuilder:default="15m"
	// +optional
	MaxGap metav1.Duration `json:"maxGap,omitempty"`
	// MinCPUMillicores is the floor of a CPU request.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=10
	// +optional
	MinCPUMillicores int64 `json:"minCPUMillicores,omitempty"`
	// MinMemoryMiB is the floor of a memory request and limit.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=32
	// +optional
	MinMemoryMiB int64 `json:"minMemoryMiB,omitempty"`
}

// Pricing is the monthly unit price of requested resources.
type Pricing struct {
	// CPUCoreMonthly is the price of one requested core for a month, e.g. "23.5".
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	CPUCoreMonthly string `json:"cpuCoreMonthly,omitempty"`
	// MemoryGiBMonthly is the price of one requested GiB for a month.
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	MemoryGiBMonthly string `json:"memoryGiBMonthly,omitempty"`
	// Currency names the unit, e.g. USD.
	// +kubebuilder:validation:MaxLength=8
	// +optional
	Currency string `json:"currency,omitempty"`
}

// ImprovementScheduleStatus reports runs.
type ImprovementScheduleStatus struct {
	// LastRunTime is when the last run started.
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`
	// NextRunTime is when the next run is due.
	// +optional
	NextRunTime *metav1.Time `json:"nextRunTime,omitempty"`
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Runs are the schedule's most recent runs, newest first, at most
	// historyLimit of them.
	// +optional
	// +listType=atomic
	Runs []RunReference `json:"runs,omitempty"`
	// Conditions: Ready or Invalid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RunReference names one run of a schedule.
type RunReference struct {
	Name          string      `json:"name"`
	ScheduledTime metav1.Time `json:"scheduledTime"`
	// +optional
	Phase RunPhase `json:"phase,omitempty"`
}

// ImprovementSchedule runs improvement agents on a schedule; their proposals
// are batched and canaried.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Next",type=date,JSONPath=`.status.nextRunTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImprovementSchedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImprovementScheduleSpec   `json:"spec"`
	Status ImprovementScheduleStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImprovementScheduleList is a list of ImprovementSchedules.
type ImprovementScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImprovementSchedule `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImprovementSchedule{}, &ImprovementScheduleList{})
}
