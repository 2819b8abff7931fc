package policies

// Reason codes the gate itself produces. Rules bring their own codes.
const (
	// ReasonNoPolicies: no GatePolicy is loaded; a human decides.
	ReasonNoPolicies = "NoPolicies"
	// ReasonNoMatchingRule: no rule matched the proposal; a human decides.
	ReasonNoMatchingRule = "NoMatchingRule"
	// ReasonPolicyInvalid: a policy in scope does not compile or validate.
	ReasonPolicyInvalid = "PolicyInvalid"
	// ReasonEvaluationError: a rule failed at run time, exceeded the cost limit,
	// yielded a non-bool or was interrupted.
	ReasonEvaluationError = "EvaluationError"
	// ReasonUnknownAction: the action is not in the catalogue.
	ReasonUnknownAction = "UnknownAction"
	// ReasonTargetNotFound: the target (or its namespace) is missing or unnamed.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonInternalError: the gate itself failed (a recovered panic).
	ReasonInternalError = "InternalError"
	// ReasonProtectedNamespace: the target's namespace is protected.
	ReasonProtectedNamespace = "ProtectedNamespace"
	// ReasonProtectedTarget: the target itself is labelled protected.
	ReasonProtectedTarget = "ProtectedTarget"
	// ReasonKillSwitchEngaged: the kill switch is engaged; nothing is
	// approved automatically.
	ReasonKillSwitchEngaged = "KillSwitchEngaged"
	// ReasonBlastRadius: the action would take down too many replicas or
	// nodes at once.
	ReasonBlastRadius = "BlastRadiusExceeded"
	// ReasonTooManyApplying: too many proposals are applying at once.
	ReasonTooManyApplying = "TooManyApplying"
	// ReasonRateLimited: too many proposals of this action in the window.
	ReasonRateLimited = "RateLimited"
	// ReasonCircuitOpen: the circuit breaker tripped and was not reset.
	ReasonCircuitOpen = "CircuitBreakerOpen"
	// ReasonProposerBreakerOpen: the proposer's own proposals failed too
	// often within the breaker window.
	ReasonProposerBreakerOpen = "ProposerBreakerOpen"
	// ReasonTargetBreakerOpen: proposals for the target failed too often
	// within the breaker window.
	ReasonTargetBreakerOpen = "TargetBreakerOpen"
	// ReasonFactsMissing: the controller gathered no facts for the decision.
	ReasonFactsMissing = "FactsMissing"
	// ReasonRevisionNotHealthy: the controller found no record that the
	// revision a rollback returns to ever ran healthy.
	ReasonRevisionNotHealthy = "RevisionNotKnownHealthy"
	// ReasonOutsideChangeWindow: now is outside every change window.
	ReasonOutsideChangeWindow = "OutsideChangeWindow"
	// ReasonOutsideRunWindow: the proposal is a change of an improvement run
	// whose window has closed.
	ReasonOutsideRunWindow = "OutsideRunWindow"
	// ReasonNotInRun: the proposal names an improvement run that does not
	// list it.
	ReasonNotInRun = "NotInImprovementRun"
	// ReasonChangeFreeze: a change freeze is in effect.
	ReasonChangeFreeze = "ChangeFreeze"
	// ReasonSensitivePatch: the patch touches securityContext, RBAC,
	// ownerReferences or finalizers.
	ReasonSensitivePatch = "SensitivePatch"
	// ReasonPatchPathNotAllowed: the patch touches a path outside the
	// catalogue's table, or one a policy does not allow.
	ReasonPatchPathNotAllowed = "PatchPathNotAllowed"
	// ReasonDisruptionBudget: a PodDisruptionBudget refuses the evictions
	// the action needs.
	ReasonDisruptionBudget = "DisruptionBudgetExceeded"
	// ReasonTargetKind: the action does not act on the target's kind.
	ReasonTargetKind = "TargetKindNotSupported"
)

// Names of the built-in guards, as recorded in Reason.Guard.
const (
	GuardProtectedResource = "ProtectedResource"
	GuardKillSwitch        = "KillSwitch"
	GuardBlastRadius       = "BlastRadius"
	GuardRate              = "Rate"
	GuardCircuitBreaker    = "CircuitBreaker"
	GuardChangeWindow      = "ChangeWindow"
	GuardRunWindow         = "RunWindow"
	GuardFreeze            = "Freeze"
	GuardPatchPaths        = "PatchPaths"
	GuardFacts             = "Facts"
	GuardDisruptionBudget  = "DisruptionBudget"
)
