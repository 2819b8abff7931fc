package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ApprovalRequirement says who must approve under RequireApproval.
type ApprovalRequirement struct {
	// Count of distinct approvers needed.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=1
	// +optional
	Count int32 `json:"count,omitempty"`
	// Groups, if set, are the groups an approver must belong to (any of them).
	// +optional
	Groups []string `json:"groups,omitempty"`
}

// GateRule is one CEL rule of a GatePolicy.
type GateRule struct {
	// Name of the rule, unique within the policy.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// When is a CEL boolean expression over the gate input (see docs/policies.md).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	When string `json:"when"`
	// Outcome when the rule matches.
	Outcome Outcome `json:"outcome"`
	// Approvals needed when Outcome is RequireApproval.
	// +optional
	Approvals *ApprovalRequirement `json:"approvals,omitempty"`
	// Reason is a machine-readable reason code, e.g. ProtectedNamespace.
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	Reason string `json:"reason"`
	// Message explains the outcome to the proposer.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// GatePolicySpec is a set of CEL rules. Across all policies, the strongest
// matching outcome wins: Deny beats RequireApproval beats AutoApprove. When no
// rule matches, the outcome is RequireApproval.
type GatePolicySpec struct {
	// Actions limits the policy to these actions; empty means every action.
	// +optional
	Actions []Action `json:"actions,omitempty"`
	// Rules of the policy.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Rules []GateRule `json:"rules"`
}

// GatePolicyStatus reports whether the policy compiled.
type GatePolicyStatus struct {
	// ObservedGeneration is the generation last compiled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (compiled and in force) or Invalid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GatePolicy holds CEL rules that decide proposals: auto-approve, require
// human approval, or deny.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gp,categories=tend
// +kubebuilder:printcolumn:name="Rules",type=integer,JSONPath=`.metadata.generation`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GatePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GatePolicySpec   `json:"spec"`
	Status GatePolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// GatePolicyList is a list of GatePolicies.
type GatePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GatePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GatePolicy{}, &GatePolicyList{})
}
