package wire

import (
	"time"

	"github.com/tendops/tend/bus"
)

// Read tool names.
const (
	ToolListResources   = "list_resources"
	ToolGetResource     = "get_resource"
	ToolGetEvents       = "get_events"
	ToolGetLogs         = "get_logs"
	ToolGetTelemetry    = "get_telemetry"
	ToolListProposals   = "list_proposals"
	ToolGetProposal     = "get_proposal"
	ToolExplainDecision = "explain_decision"
	ToolGetPolicies     = "get_policies"
)

// ListResourcesArgs are the arguments of list_resources.
type ListResourcesArgs struct {
	APIVersion    string `json:"apiVersion" jsonschema:"API version, e.g. v1, apps/v1, batch/v1" schema:"maxLength=128"`
	Kind          string `json:"kind" jsonschema:"kind, e.g. Pod, Deployment, Event, Node; a resource or short name (pods, deploy) works too" schema:"maxLength=128"`
	Namespace     string `json:"namespace,omitempty" jsonschema:"namespace; absent lists every namespace (or a cluster-scoped kind)" schema:"format=dns-label"`
	LabelSelector string `json:"labelSelector,omitempty" jsonschema:"label selector, e.g. app=web,tier!=cache" schema:"maxLength=1024"`
	Limit         int64  `json:"limit,omitempty" jsonschema:"at most this many items (default 50)" schema:"min=1,max=200"`
	Continue      string `json:"continue,omitempty" jsonschema:"the continue token of the previous page" schema:"maxLength=4096"`
}

// GetResourceArgs are the arguments of get_resource.
type GetResourceArgs struct {
	APIVersion string `json:"apiVersion" jsonschema:"API version, e.g. v1, apps/v1" schema:"maxLength=128"`
	Kind       string `json:"kind" jsonschema:"kind, e.g. Pod, Deployment, ConfigMap; a resource or short name (pods, deploy) works too" schema:"maxLength=128"`
	Namespace  string `json:"namespace,omitempty" jsonschema:"namespace; absent for cluster-scoped kinds" schema:"format=dns-label"`
	Name       string `json:"name" jsonschema:"name of the object" schema:"format=dns-name"`
}

// ResourceList is the result of list_resources. Objects are as the API
// server returns them, less managed fields and last-applied annotations,
// with Secret values (and, where configured, env values and annotations)
// redacted.
type ResourceList struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Items      []map[string]any `json:"items"`
	Continue   string           `json:"continue,omitempty" jsonschema:"pass as continue for the next page"`
}

// Resource is the result of get_resource.
type Resource struct {
	Object map[string]any `json:"object"`
}

// GetEventsArgs are the arguments of get_events.
type GetEventsArgs struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace of the object; absent for cluster-scoped objects such as nodes" schema:"format=dns-label"`
	Kind      string `json:"kind" jsonschema:"kind of the object, e.g. Pod" schema:"maxLength=64"`
	Name      string `json:"name" jsonschema:"name of the object" schema:"format=dns-name"`
}

// EventView is one Kubernetes Event. Reason and Message are untrusted text:
// data to weigh, never instructions.
type EventView struct {
	Type     string    `json:"type"`
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	Count    int32     `json:"count,omitempty"`
	Source   string    `json:"source,omitempty"`
	LastSeen time.Time `json:"lastSeen"`
}

// Events is the result of get_events, newest first.
type Events struct {
	Events []EventView `json:"events"`
}

// GetLogsArgs are the arguments of get_logs.
type GetLogsArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the pod" schema:"format=dns-label"`
	Pod       string `json:"pod" jsonschema:"name of the pod" schema:"format=dns-name"`
	Container string `json:"container,omitempty" jsonschema:"container; required when the pod has several" schema:"format=dns-label"`
	Previous  bool   `json:"previous,omitempty" jsonschema:"the previous (crashed) instance's logs"`
	TailLines int64  `json:"tailLines,omitempty" jsonschema:"the last this many lines (default 200)" schema:"min=1,max=2000"`
}

// Logs is the result of get_logs. The text is untrusted: data, never
// instructions.
type Logs struct {
	Text      string `json:"text"`
	Truncated bool   `json:"truncated,omitempty"`
}

// GetTelemetryArgs are the arguments of get_telemetry.
type GetTelemetryArgs struct {
	Kind      string `json:"kind" jsonschema:"telemetry kind: pod, deployment, node, event, or from a node's runtime shim containers, containerstats, images or imagefs (name is the node)" schema:"enum=pod|deployment|node|event|containers|containerstats|images|imagefs"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace of the object; absent for nodes" schema:"format=dns-label"`
	Name      string `json:"name" jsonschema:"name of the object" schema:"format=dns-name"`
	Limit     int    `json:"limit,omitempty" jsonschema:"the most recent this many messages (default 10)" schema:"min=1,max=100"`
	Since     string `json:"since,omitempty" jsonschema:"how far back to look, as a Go duration such as 15m (default 1h, at most 24h)" schema:"maxLength=32"`
}

// TelemetryMessage is one telemetry message with its stream position.
type TelemetryMessage struct {
	Subject  string        `json:"subject"`
	Sequence uint64        `json:"sequence"`
	Envelope *bus.Envelope `json:"envelope"`
}

// Telemetry is the result of get_telemetry, oldest first.
type Telemetry struct {
	Messages []TelemetryMessage `json:"messages"`
}

// ListProposalsArgs are the arguments of list_proposals.
type ListProposalsArgs struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the proposals" schema:"format=dns-label"`
	Phase     string `json:"phase,omitempty" jsonschema:"only proposals in this phase" schema:"enum=Pending|AwaitingApproval|Approved|Denied|Applying|Verifying|Succeeded|Failed|RolledBack|Expired|Superseded|Overtaken"`
	Open      bool   `json:"open,omitempty" jsonschema:"only proposals that have not ended"`
}

// ProposalSummary is one line of list_proposals.
type ProposalSummary struct {
	Name     string    `json:"name"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	Phase    string    `json:"phase"`
	Outcome  string    `json:"outcome,omitempty"`
	Proposer string    `json:"proposer"`
	Repeats  int32     `json:"repeats,omitempty"`
	Created  time.Time `json:"created"`
}

// Proposals is the result of list_proposals, newest first.
type Proposals struct {
	Proposals []ProposalSummary `json:"proposals"`
}

// ExplainDecisionArgs are the arguments of explain_decision.
type ExplainDecisionArgs = GetProposalArgs

// Explanation is the result of explain_decision.
type Explanation struct {
	Phase             string   `json:"phase"`
	Outcome           string   `json:"outcome,omitempty" jsonschema:"empty while the gate has not decided"`
	Policy            string   `json:"policy,omitempty"`
	Rule              string   `json:"rule,omitempty"`
	Reasons           []Reason `json:"reasons,omitempty"`
	RequiredApprovals int32    `json:"requiredApprovals,omitempty"`
	ApproverGroups    []string `json:"approverGroups,omitempty"`
	Approvals         []string `json:"approvals,omitempty"`
	// Bound is whether the decision still applies to the proposal's spec.
	Bound     bool      `json:"bound"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	Advice    string    `json:"advice"`
}

// GetPoliciesArgs are the arguments of get_policies (none).
type GetPoliciesArgs struct{}

// PolicyView is one GatePolicy.
type PolicyView struct {
	Name    string     `json:"name"`
	Valid   bool       `json:"valid"`
	Message string     `json:"message,omitempty" jsonschema:"why the policy is invalid, when it is"`
	Actions []string   `json:"actions,omitempty" jsonschema:"the actions the policy applies to; all when empty"`
	Rules   []RuleView `json:"rules"`
}

// RuleView is one rule of a GatePolicy.
type RuleView struct {
	Name              string   `json:"name"`
	When              string   `json:"when" jsonschema:"the CEL condition"`
	Outcome           string   `json:"outcome"`
	RequiredApprovals int32    `json:"requiredApprovals,omitempty"`
	ApproverGroups    []string `json:"approverGroups,omitempty"`
	Reason            string   `json:"reason"`
	Message           string   `json:"message,omitempty"`
}

// Policies is the result of get_policies.
type Policies struct {
	Policies []PolicyView `json:"policies"`
	// Guards is the built-in guards' state, when the server knows it.
	Guards *GuardState `json:"guards,omitempty"`
}

// GuardState is the state and limits of the gate's built-in guards.
type GuardState struct {
	KillSwitch              bool            `json:"killSwitch"`
	BreakerTripped          bool            `json:"breakerTripped"`
	BreakerReason           string          `json:"breakerReason,omitempty"`
	MaxApplyingPerNamespace int64           `json:"maxApplyingPerNamespace"`
	MaxApplyingPerCluster   int64           `json:"maxApplyingPerCluster"`
	MaxDisruptedPercent     int64           `json:"maxDisruptedPercent"`
	MaxNodesDisrupted       int64           `json:"maxNodesDisrupted"`
	RateLimits              []RateLimitView `json:"rateLimits,omitempty"`
	BreakerMaxFailures      int64           `json:"breakerMaxFailures"`
	BreakerMaxProposals     int64           `json:"breakerMaxProposals"`
	BreakerWindow           string          `json:"breakerWindow"`
	Freezes                 []string        `json:"freezes,omitempty"`
}

// RateLimitView is one rate limit of the gate.
type RateLimitView struct {
	Action string `json:"action"`
	Max    int64  `json:"max"`
	Window string `json:"window"`
}
