package wire

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Limits on untrusted arguments.
const (
	maxSummary   = 4096
	maxRationale = 4096
	maxTelemetry = 32
	maxShort     = 253
)

// ErrInvalidArgument means a tool argument is malformed.
var ErrInvalidArgument = errors.New("mcp: invalid argument")

// TelemetryRef points at a telemetry message supporting a proposal.
type TelemetryRef struct {
	Subject  string `json:"subject" jsonschema:"NATS subject of the telemetry message" schema:"maxLength=1024"`
	Sequence uint64 `json:"sequence,omitempty" jsonschema:"stream sequence of the message"`
	ID       string `json:"id,omitempty" jsonschema:"envelope ID of the message" schema:"maxLength=253"`
}

// ProposeRollbackArgs are the arguments of propose_rollback.
type ProposeRollbackArgs struct {
	Namespace    string `json:"namespace" jsonschema:"namespace of the workload" schema:"format=dns-label"`
	Kind         string `json:"kind,omitempty" jsonschema:"kind of the workload: Deployment (default), StatefulSet or DaemonSet"`
	Name         string `json:"name" jsonschema:"name of the workload" schema:"format=dns-name"`
	ToRevision   int64  `json:"toRevision,omitempty" jsonschema:"rollout revision to return to (a Deployment's revision, a StatefulSet's or DaemonSet's ControllerRevision number); 0 means the revision before the current one" schema:"min=0"`
	FromRevision int64  `json:"fromRevision,omitempty" jsonschema:"the revision you saw as current and failing; the proposal goes stale if the Deployment moved on" schema:"min=0"`
	Common
}

// Reason is one reason code of a gate decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Guard   string `json:"guard,omitempty"`
}

// ProposeResult is what every propose tool returns: the proposal and the
// gate's decision, with reasons the caller can act on.
type ProposeResult struct {
	Namespace         string   `json:"namespace"`
	Name              string   `json:"name"`
	Phase             string   `json:"phase"`
	Outcome           string   `json:"outcome,omitempty" jsonschema:"the gate's decision; absent if the gate has not decided yet" schema:"enum=AutoApprove|RequireApproval|Deny"`
	Reasons           []Reason `json:"reasons,omitempty"`
	RequiredApprovals int32    `json:"requiredApprovals,omitempty"`
	Duplicate         bool     `json:"duplicate,omitempty" jsonschema:"true when an open proposal with the same fingerprint already existed and was returned instead"`
	Repeats           int32    `json:"repeats,omitempty" jsonschema:"for a duplicate: how many times the open proposal has been proposed again, including this call"`
	Undo              string   `json:"undo,omitempty" jsonschema:"what happens if the change's verification fails: undone (RolledBack) or not (Failed)"`
	Disruption        string   `json:"disruption,omitempty" jsonschema:"what the change takes down, as the controller read it from the cluster once it decided"`
	Message           string   `json:"message"`
}

// GetProposalArgs are the arguments of get_proposal.
type GetProposalArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the proposal" schema:"format=dns-label"`
	Name      string `json:"name" jsonschema:"name of the proposal" schema:"format=dns-name"`
}

// ProposalView is a proposal as get_proposal shows it.
type ProposalView struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Action    string         `json:"action"`
	Target    string         `json:"target"`
	Proposer  string         `json:"proposer"`
	Phase     string         `json:"phase"`
	Message   string         `json:"message,omitempty"`
	Decision  *ProposeResult `json:"decision,omitempty"`
	Approvals []string       `json:"approvals,omitempty"`
	Checks    []tendv1.Check `json:"checks,omitempty"`
}

// Validate checks the proposal's namespace and name.
func (a *GetProposalArgs) Validate() error {
	if len(validation.IsDNS1123Label(a.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(a.Name)) > 0 {
		return fmt.Errorf("%w: namespace and name must be valid Kubernetes names", ErrInvalidArgument)
	}
	return nil
}

// Clip shortens untrusted text before it is echoed back.
func Clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Version is the version of tend's MCP tools, reported by the server and
// sent by tend's clients.
const Version = "0.1.0"
