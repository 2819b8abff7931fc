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
	// CanaryFraction of a run's proposals applied first before the rest.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=10
	// +optional
	CanaryPercent int32 `json:"canaryPercent,omitempty"`
	// Suspend stops new runs.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
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
	// Conditions: Ready or Invalid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ImprovementSchedule runs improvement agents on a schedule; their proposals
// are batched and canaried.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Next",type=date,JSONPath=`.status.nextRunTime`
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
