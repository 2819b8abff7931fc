package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ApprovalDecision is a human's verdict on a proposal.
// +kubebuilder:validation:Enum=Approve;Deny
type ApprovalDecision string

// Approval decisions.
const (
	ApprovalApprove ApprovalDecision = "Approve"
	ApprovalDeny    ApprovalDecision = "Deny"
)

// ApprovalSpec binds one human's verdict to one exact proposal spec.
type ApprovalSpec struct {
	// Proposal is the name of the Proposal, in the Approval's namespace.
	// +kubebuilder:validation:MinLength=1
	Proposal string `json:"proposal"`
	// SpecHash is the proposal's status.specHash the approver saw. An approval
	// for any other hash is void.
	// +kubebuilder:validation:MinLength=1
	SpecHash string `json:"specHash"`
	// Decision is Approve or Deny.
	Decision ApprovalDecision `json:"decision"`
	// Approver must equal the authenticated user creating the object; the
	// API server's admission policy enforces it.
	// +kubebuilder:validation:MinLength=1
	Approver string `json:"approver"`
	// ApproverGroups are the approver's groups as the API server
	// authenticated them; the admission policy rejects any other set. A rule
	// that names approver groups counts only approvals whose groups include
	// one of them. `tend proposals approve` fills them in.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +optional
	ApproverGroups []string `json:"approverGroups,omitempty"`
	// Reason the approver gives.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ApprovalStatus says whether the approval counts for its proposal.
type ApprovalStatus struct {
	// Counted is true while the approval counts (or, once the proposal was
	// decided, counted) towards its proposal's approval, by the same rule
	// the proposal controller counts by.
	// +optional
	Counted bool `json:"counted,omitempty"`
	// Message says what the approval counts for, or why it does not count:
	// the proposal does not exist, the spec hash is stale, the approver is
	// the proposer, the approver is in none of the required groups, the
	// approver already decided, or the proposal was already decided.
	// +optional
	Message string `json:"message,omitempty"`
}

// Approval is a human's approve or deny of one proposal, bound to its spec
// hash. Who may create one is enforced by the API server.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Proposal",type=string,JSONPath=`.spec.proposal`
// +kubebuilder:printcolumn:name="Decision",type=string,JSONPath=`.spec.decision`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.spec.approver`
// +kubebuilder:printcolumn:name="Counted",type=boolean,JSONPath=`.status.counted`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",message="an approval's spec is immutable"
type Approval struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApprovalSpec   `json:"spec"`
	Status ApprovalStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ApprovalList is a list of Approvals.
type ApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Approval `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Approval{}, &ApprovalList{})
}
