package agents

// MaintenanceRunbooks returns the maintenance agent's runbooks, in the order
// it consults them. The local stack, `tend up` and the evals all run this
// list; a runbook is added here and nowhere else.
//
// Order matters where two runbooks could act on one object: the agent makes
// one proposal per object at a time (Agent.TargetHold), so the runbook
// listed first wins. The order runs from the cause that is surest and
// cheapest to undo to the widest:
func MaintenanceRunbooks() []Runbook {
	return []Runbook{
		// 1. A node that stopped (NotReady past its grace) or reports
		//    pressure: capacity first (uncordon a ready spare), then drain
		//    it. Node faults explain the pod faults on them, so they are
		//    judged first.
		&NodeHealth{},
		// 2. A rollout that broke a workload that ran healthy: undo the
		//    rollout (Deployment rollback; StatefulSet and DaemonSet images).
		&BadRollout{},
		// 3. Containers OOMKilled under a limit no rollout explains: raise
		//    the memory limit by a bounded factor.
		&OOMKilled{},
		// 4. A probe that checks a port its container does not declare:
		//    point it at the one the container declares (never remove it).
		//    Judged sooner than a stalled rollout, so it wins when both see
		//    the same fault.
		&ProbeFault{},
		// 5. A workload scaled to zero while a Service or an autoscaler
		//    still points at it: back to its last healthy count.
		&ScaledToZero{},
		// 6. A Service that sends traffic nowhere: a selector no pod
		//    matches, or a targetPort no container declares.
		&ServiceFault{},
		// 7. An autoscaler whose bounds hold its workload below the
		//    replicas it ran healthy with.
		&AutoscalerBounds{},
		// 8. An autoscaler pointed at a workload that does not exist: back
		//    to the workload it last kept healthy.
		&AutoscalerTarget{},
		// 9. A CronJob whose runs fail since its job template's image
		//    changed: back to the images its last completed run used.
		&CronJobImage{},
		// 10. An ingress NetworkPolicy that cut callers off from the pods
		//    it selects, or isolates the pods behind a Service from every
		//    pod: a finding for a human, never a change (what a policy
		//    admits is a security decision).
		&NetworkPolicyFault{},
		// 11. Last: what still fails and no runbook above proposed a fix
		//    for gets a finding for a human (a diagnosis, never a change).
		&Escalate{},
	}
}
