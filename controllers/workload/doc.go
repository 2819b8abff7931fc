// Package workload holds what tend knows about workloads that the sensor,
// the actions and the proposal controller share: a Deployment's revisions
// and ReplicaSets, which pods belong to a workload, whether a pod is ready,
// whether a rollout is complete, how much a rollout takes down at once, and
// whether a revision ran healthy.
//
// It reads; it must never write to the cluster.
package workload
