package agents

import (
	"github.com/tendops/tend/mcp/wire"
)

// Finding is a diagnosis for a human, made when a runbook sees a fault it
// has no safe fix for: what is wrong, the telemetry that shows it, and what
// a human could do. Every field is built from typed facts and validated
// names; no text from telemetry is copied into it.
type Finding struct {
	// Object is the object at fault.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Fault names the fault in one sentence.
	Fault string `json:"fault"`
	// Advice says what a human could do.
	Advice string `json:"advice"`
	// Evidence cites the telemetry by subject and sequence.
	Evidence []wire.TelemetryRef `json:"evidence,omitempty"`
	// Fingerprint identifies the finding across repeats.
	Fingerprint string `json:"fingerprint"`
	// Runbook that made it; the agent fills it in.
	Runbook string `json:"runbook,omitempty"`
}

// Object names the finding's object.
func (f Finding) Object() string {
	return ObjectKey{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}.String()
}
