package actions

// Reason codes of the refusals actions make.
const (
	// ReasonAutoscalerOwnsReplicas: an HPA scales the workload.
	ReasonAutoscalerOwnsReplicas = "AutoscalerOwnsReplicas"
	// ReasonNoChange: the target already is as the proposal would make it.
	ReasonNoChange = "NoChange"
	// ReasonLimitRange: a value is outside the namespace's LimitRange.
	ReasonLimitRange = "LimitRangeViolation"
	// ReasonQuota: the change would exceed the namespace's ResourceQuota.
	ReasonQuota = "QuotaExceeded"
	// ReasonContainerNotFound: the pod template has no such container.
	ReasonContainerNotFound = "ContainerNotFound"
	// ReasonPodDisruptionBudget: an eviction would exceed a PDB.
	ReasonPodDisruptionBudget = "PodDisruptionBudget"
	// ReasonPodNotStuck: a pod to force-delete is not stuck terminating on
	// a lost node.
	ReasonPodNotStuck = "PodNotStuck"
	// ReasonJobNotFailed: a Job to retry has not failed.
	ReasonJobNotFailed = "JobNotFailed"
	// ReasonPatchPathNotAllowed: the patch touches a path outside the
	// catalogue's table (the gate's code for the same refusal).
	ReasonPatchPathNotAllowed = "PatchPathNotAllowed"
	// ReasonRequestAboveLimit: a request would exceed its limit.
	ReasonRequestAboveLimit = "RequestAboveLimit"
	// ReasonPatchNotApplicable: the patch does not apply to the target.
	ReasonPatchNotApplicable = "PatchNotApplicable"
	// ReasonScaleTargetNotFound: an autoscaler's new scale target does not
	// exist.
	ReasonScaleTargetNotFound = "ScaleTargetNotFound"
	// ReasonOutsideBounds: a workload's replicas are outside the bounds of
	// the autoscaler that would scale it.
	ReasonOutsideBounds = "OutsideBounds"
)

// Reason codes of the node actions the runtime shim carries out.
const (
	// ReasonNoRuntimeShim: the controller has no runtime shim client.
	ReasonNoRuntimeShim = "NoRuntimeShim"
	// ReasonPodNotScheduled: the pod runs on no node.
	ReasonPodNotScheduled = "PodNotScheduled"
	// ReasonNotOnNode: the node's runtime has no such pod or container.
	ReasonNotOnNode = "NotOnNode"
	// ReasonRuntimeConflict: the runtime's state rules the action out (the
	// container is not running; a percent target without a filesystem the
	// shim can see).
	ReasonRuntimeConflict = "RuntimeConflict"
)
