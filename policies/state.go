package policies

import "time"

// State is what the built-in guards need to know beyond the proposal itself:
// what else is going on in the cluster. A gatherer outside this package
// collects it (all I/O lives there); the gate only reads it.
type State struct {
	// Recent lists the other proposals of the cluster made within the longest
	// guard window (or still applying), in any order.
	Recent []ProposalRecord
	// NodesDisrupted is how many nodes are cordoned or draining now.
	NodesDisrupted int64
	// Breaker is the persisted state of the circuit breaker.
	Breaker BreakerState
}

// ProposalRecord is one other proposal, as the guards count it.
type ProposalRecord struct {
	Action    string
	Namespace string
	// Proposer is the other proposal's proposer, for the per-proposer
	// limits.
	Proposer string
	// Target identifies its target (TargetKey), for the per-target limits.
	Target string
	// Phase of the proposal.
	Phase string
	// Created is when the proposal was made; Finished when it reached a
	// terminal phase (zero while open).
	Created, Finished time.Time
}

// BreakerState is the circuit breaker as persisted by the controller.
type BreakerState struct {
	// Tripped is true from the trip until a reset.
	Tripped bool
	// Reason the breaker tripped.
	Reason string
	// ResetAt is the last reset; failures and proposals before it do not count.
	ResetAt time.Time
}

func (r ProposalRecord) applying() bool {
	return r.Phase == "Applying" || r.Phase == "Verifying"
}

func (r ProposalRecord) failed() bool {
	return r.Phase == "Failed" || r.Phase == "RolledBack"
}

// TargetKey identifies a proposal's target for the per-target limits: its
// kind, namespace and name (the UID changes when an object is recreated,
// but a flapping target is the same to an operator).
func TargetKey(kind, namespace, name string) string {
	return kind + "/" + namespace + "/" + name
}
