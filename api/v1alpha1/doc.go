// Package v1alpha1 holds tend's API types (group tend.dev, version v1alpha1):
// Proposal, Approval, GatePolicy and ImprovementSchedule.
//
// The types carry data only. They must never import controllers, the gate, the
// bus or anything that performs I/O; validation that needs the cluster belongs
// to the proposal controller and to admission, not here.
//
// +kubebuilder:object:generate=true
// +groupName=tend.dev
package v1alpha1
