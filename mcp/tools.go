package mcp

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Tool names.
const (
	ToolProposeRollback = "propose_rollback"
	ToolGetProposal     = "get_proposal"
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
	Subject  string `json:"subject" jsonschema:"NATS subject of the telemetry message"`
	Sequence uint64 `json:"sequence,omitempty" jsonschema:"stream sequence of the message"`
	ID       string `json:"id,omitempty" jsonschema:"envelope ID of the message"`
}

// ProposeRollbackArgs are the arguments of propose_rollback.
type ProposeRollbackArgs struct {
	Namespace    string         `json:"namespace" jsonschema:"namespace of the Deployment"`
	Name         string         `json:"name" jsonschema:"name of the Deployment"`
	ToRevision   int64          `json:"toRevision,omitempty" jsonschema:"rollout revision to return to; 0 means the revision before the current one"`
	FromRevision int64          `json:"fromRevision,omitempty" jsonschema:"the revision you saw as current and failing; the proposal goes stale if the Deployment moved on"`
	Summary      string         `json:"summary" jsonschema:"what you observed, in one or two sentences"`
	Rationale    string         `json:"rationale,omitempty" jsonschema:"why the rollback should fix it"`
	Risk         string         `json:"risk,omitempty" jsonschema:"your risk assessment: Low, Medium or High (default Medium)"`
	Telemetry    []TelemetryRef `json:"telemetry,omitempty" jsonschema:"telemetry messages that support the proposal (at most 32)"`
	Fingerprint  string         `json:"fingerprint,omitempty" jsonschema:"identifies the same proposal across repeats; derived from target and revision when empty"`
	Agent        string         `json:"agent,omitempty" jsonschema:"name of the calling agent, for the record"`
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
	Outcome           string   `json:"outcome,omitempty" jsonschema:"AutoApprove, RequireApproval or Deny; empty if the gate has not decided yet"`
	Reasons           []Reason `json:"reasons,omitempty"`
	RequiredApprovals int32    `json:"requiredApprovals,omitempty"`
	Duplicate         bool     `json:"duplicate,omitempty" jsonschema:"true when an open proposal with the same fingerprint already existed and was returned instead"`
	Repeats           int32    `json:"repeats,omitempty" jsonschema:"for a duplicate: how many times the open proposal has been proposed again, including this call"`
	Message           string   `json:"message"`
}

// GetProposalArgs are the arguments of get_proposal.
type GetProposalArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the proposal"`
	Name      string `json:"name" jsonschema:"name of the proposal"`
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

func (a *ProposeRollbackArgs) validate() error {
	var errs []string
	if msgs := validation.IsDNS1123Label(a.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("namespace %q: %s", clip(a.Namespace), strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(a.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("name %q: %s", clip(a.Name), strings.Join(msgs, "; ")))
	}
	if a.ToRevision < 0 || a.FromRevision < 0 {
		errs = append(errs, "revisions must not be negative")
	}
	if strings.TrimSpace(a.Summary) == "" {
		errs = append(errs, "summary is required")
	}
	if len(a.Summary) > maxSummary {
		errs = append(errs, fmt.Sprintf("summary is %d bytes; at most %d", len(a.Summary), maxSummary))
	}
	if len(a.Rationale) > maxRationale {
		errs = append(errs, fmt.Sprintf("rationale is %d bytes; at most %d", len(a.Rationale), maxRationale))
	}
	switch tendv1.Risk(a.Risk) {
	case "", tendv1.RiskLow, tendv1.RiskMedium, tendv1.RiskHigh:
	default:
		errs = append(errs, fmt.Sprintf("risk %q: must be Low, Medium or High", clip(a.Risk)))
	}
	if len(a.Telemetry) > maxTelemetry {
		// Only the count: one message per ref would let a small request
		// produce an error many times its size.
		errs = append(errs, fmt.Sprintf("%d telemetry refs; at most %d", len(a.Telemetry), maxTelemetry))
	} else {
		for i, t := range a.Telemetry {
			if t.Subject == "" || len(t.Subject) > 1024 || len(t.ID) > maxShort {
				errs = append(errs, fmt.Sprintf("telemetry[%d]: subject required (at most 1024 bytes), id at most %d bytes", i, maxShort))
			}
		}
	}
	if len(a.Fingerprint) > 128 || len(a.Agent) > maxShort {
		errs = append(errs, "fingerprint is at most 128 bytes and agent at most 253")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(errs, "; "))
	}
	return nil
}

func (a *GetProposalArgs) validate() error {
	if len(validation.IsDNS1123Label(a.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(a.Name)) > 0 {
		return fmt.Errorf("%w: namespace and name must be valid Kubernetes names", ErrInvalidArgument)
	}
	return nil
}

// clip shortens untrusted text before it is echoed back.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
