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
	// Guards sets the limits of the built-in guards. A value set here replaces
	// the default; across policies the strictest value applies. No policy can
	// switch a guard off.
	// +optional
	Guards *GuardLimits `json:"guards,omitempty"`
}

// GuardLimits are the limits of the built-in guards. Where a limit is
// exceeded, nothing is approved automatically: the outcome becomes at least
// RequireApproval. Unset fields keep the defaults.
type GuardLimits struct {
	// MaxDisruptedPercent is the largest share of a workload's replicas one
	// action may take down at once (default 50).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDisruptedPercent *int32 `json:"maxDisruptedPercent,omitempty"`
	// MaxNodesDisrupted is how many nodes may be cordoned or drained by tend
	// at once (default 1).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxNodesDisrupted *int32 `json:"maxNodesDisrupted,omitempty"`
	// MaxApplyingPerNamespace is how many proposals may be applying or
	// verifying at once in one namespace (default 3).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxApplyingPerNamespace *int32 `json:"maxApplyingPerNamespace,omitempty"`
	// MaxApplyingPerCluster is how many proposals may be applying or
	// verifying at once in the cluster (default 10).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxApplyingPerCluster *int32 `json:"maxApplyingPerCluster,omitempty"`
	// RateLimits bound how many proposals of an action are made per window
	// (default, for every action: 30 per 10 minutes in the cluster, 10 per
	// proposer and 3 per target).
	// +kubebuilder:validation:MaxItems=32
	// +optional
	RateLimits []RateLimit `json:"rateLimits,omitempty"`
	// CircuitBreaker trips when failures or volume cross a threshold; while
	// tripped nothing is approved automatically, until someone resets it.
	// +optional
	CircuitBreaker *CircuitBreakerLimits `json:"circuitBreaker,omitempty"`
	// ChangeWindows, when set, are the only times changes are approved
	// automatically.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	ChangeWindows []ChangeWindow `json:"changeWindows,omitempty"`
	// Freezes are periods in which nothing is approved automatically.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Freezes []Freeze `json:"freezes,omitempty"`
	// AllowedPatchPaths are the JSON-pointer prefixes a PatchWorkload may
	// touch and still be approved automatically; a patch outside them needs
	// a human. securityContext, RBAC, ownerReferences and finalizers always do.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	AllowedPatchPaths []string `json:"allowedPatchPaths,omitempty"`
}

// RateScope is what a rate limit counts proposals per.
// +kubebuilder:validation:Enum=Cluster;Proposer;Target
type RateScope string

// Rate limit scopes.
const (
	// RateScopeCluster counts every proposal of the cluster.
	RateScopeCluster RateScope = "Cluster"
	// RateScopeProposer counts the proposals of the same proposer, so that
	// one busy proposer cannot exhaust the others' budget.
	RateScopeProposer RateScope = "Proposer"
	// RateScopeTarget counts the proposals for the same target.
	RateScopeTarget RateScope = "Target"
)

// RateLimit bounds the proposals of one action per window.
type RateLimit struct {
	// Action limited; "*" for every action.
	// +kubebuilder:validation:MinLength=1
	Action string `json:"action"`
	// Per is what proposals are counted per (default Cluster).
	// +optional
	Per RateScope `json:"per,omitempty"`
	// Max proposals per window.
	// +kubebuilder:validation:Minimum=0
	Max int32 `json:"max"`
	// Window the proposals are counted in.
	Window metav1.Duration `json:"window"`
}

// CircuitBreakerLimits say when the breaker trips. The cluster breaker,
// once tripped, holds every automatic approval until it is reset; the
// per-proposer and per-target breakers hold only that proposer's or that
// target's proposals, while their failures are within the window.
type CircuitBreakerLimits struct {
	// MaxFailures within Window (proposals that ended Failed or RolledBack)
	// trips the cluster breaker (default 10).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxFailures *int32 `json:"maxFailures,omitempty"`
	// MaxFailuresPerProposer within Window holds that proposer's proposals
	// (default 3).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxFailuresPerProposer *int32 `json:"maxFailuresPerProposer,omitempty"`
	// MaxFailuresPerTarget within Window holds the proposals for that
	// target (default 2).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxFailuresPerTarget *int32 `json:"maxFailuresPerTarget,omitempty"`
	// MaxProposals within Window trips the breaker (default 50).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxProposals *int32 `json:"maxProposals,omitempty"`
	// Window failures and proposals are counted in (default 1h).
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`
}

// ChangeWindow is a recurring period in which automatic approval is allowed.
type ChangeWindow struct {
	// Schedule is a five-field cron expression for the window's start.
	// +kubebuilder:validation:MinLength=9
	Schedule string `json:"schedule"`
	// Duration of the window.
	Duration metav1.Duration `json:"duration"`
	// TimeZone is an IANA time zone name (default UTC).
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// Freeze is a period in which nothing is approved automatically.
type Freeze struct {
	// Name of the freeze, e.g. black-friday.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Start of the freeze.
	Start metav1.Time `json:"start"`
	// End of the freeze.
	End metav1.Time `json:"end"`
	// Reason shown to proposers.
	// +optional
	Reason string `json:"reason,omitempty"`
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
