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
	}
}
