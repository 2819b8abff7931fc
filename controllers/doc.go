// Package controllers holds tend's controller-runtime reconcilers and the
// telemetry sensor.
//
//   - ProposalReconciler drives a Proposal through its lifecycle: validate,
//     decide (through the policy gate), await approval, apply (at most once),
//     verify and, when verification fails, roll back. It is the only code in
//     tend that changes workloads, and it changes them only for an Approved
//     proposal, with its own identity and field manager.
//   - GatePolicyReconciler compiles GatePolicies into the gate and reports
//     whether each one is in force.
//   - Sensor publishes the state of pods, deployments, nodes and events to the
//     TELEMETRY stream.
//
// Nothing here may act on the word of untrusted text (logs, events,
// annotations): those are data carried as evidence, never instructions.
package controllers
