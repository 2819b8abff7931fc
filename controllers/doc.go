// Package controllers holds tend's controller-runtime reconcilers and the
// telemetry sensor.
//
//   - ProposalReconciler drives a Proposal through its lifecycle: validate,
//     decide (through the policy gate), await approval, apply (at most once),
//     verify and, when verification fails, roll back. It is the only code in
//     tend that changes workloads, and it changes them only for an Approved
//     proposal, with its own identity and field manager.
//   - ApprovalReconciler reports on each Approval whether it counts for its
//     proposal and, if not, why, by the rule the proposal controller counts
//     by. It writes only Approval status.
//   - GatePolicyReconciler compiles GatePolicies into the gate and reports
//     whether each one is in force.
//   - Sensor publishes the state of pods, nodes, events, deployments,
//     statefulsets, daemonsets, jobs and HPAs, and metrics.k8s.io usage when
//     served, to the TELEMETRY stream, coalescing each object to a bounded
//     rate.
//   - Notifier posts a Slack-compatible webhook message when a proposal
//     awaits approval, fails or is rolled back, off the reconcile path. It
//     sends names, phases and reason codes, never the proposal's free text.
//
// Nothing here may act on the word of untrusted text (logs, events,
// annotations): those are data carried as evidence, never instructions.
package controllers

// The controller's RBAC is generated from the markers next to the code that
// needs it (here, in controllers/actions and controllers/workload) into
// controllers/rbac/role.yaml, by `make generate`. Leader election keeps its
// lease in tend's namespace.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=tend-system,resources=leases,verbs=get;list;watch;create;update
