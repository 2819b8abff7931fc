package controllers

// Condition types on a Proposal.
const (
	// ConditionDecided is True once the gate decided the current spec.
	ConditionDecided = "Decided"
	// ConditionApproved is True once the proposal may be applied.
	ConditionApproved = "Approved"
	// ConditionApplied is True once the change was written to the target.
	ConditionApplied = "Applied"
	// ConditionVerified is True once verification passed, False when it failed.
	ConditionVerified = "Verified"
)

// Condition types on a GatePolicy.
const (
	// ConditionReady is True when the policy compiled and is in force.
	ConditionReady = "Ready"
)

// Reasons used in conditions, Events and the audit trail.
const (
	ReasonAutoApproved     = "AutoApproved"
	ReasonApprovalRequired = "ApprovalRequired"
	ReasonDenied           = "Denied"
	ReasonApproved         = "Approved"
	ReasonRejected         = "RejectedByApprover"
	ReasonExpired          = "Expired"
	ReasonSuperseded       = "Superseded"
	ReasonStale            = "TargetChanged"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonApplying         = "Applying"
	ReasonApplied          = "Applied"
	ReasonApplyFailed      = "ApplyFailed"
	ReasonVerifying        = "Verifying"
	ReasonVerified         = "Verified"
	ReasonVerifyFailed     = "VerificationFailed"
	ReasonRolledBack       = "RolledBack"
	ReasonRollbackFailed   = "RollbackFailed"
	ReasonSpecChanged      = "SpecChanged"
	// ReasonTargetNotPinned: the proposal does not pin its target's UID.
	ReasonTargetNotPinned = "TargetNotPinned"
	// ReasonTargetOutsideNamespace: the proposal reaches outside its own
	// namespace.
	ReasonTargetOutsideNamespace = "TargetOutsideNamespace"
	// ReasonOvertaken: someone else changed the target after tend applied
	// the proposal.
	ReasonOvertaken = "Overtaken"
	// ReasonAuditPending: committed transitions wait for the audit log.
	ReasonAuditPending = "AuditPending"
	ReasonCompiled     = "Compiled"
	ReasonInvalid      = "Invalid"
)
