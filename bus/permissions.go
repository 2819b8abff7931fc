package bus

import (
	"fmt"
	"strings"
)

// Component is a tend process that connects to NATS with its own identity.
type Component string

// The components and what each does on the bus.
const (
	// ComponentController is the controller manager: the proposal
	// controller publishes proposal events and the audit chain and sends
	// shim requests; it sets up the streams.
	ComponentController Component = "controller"
	// ComponentSensor is the sensor: it publishes the cluster's telemetry
	// and nothing else.
	ComponentSensor Component = "sensor"
	// ComponentAgent runs agents: it consumes telemetry through its own
	// durable consumers and dead-letters what it gives up on. It publishes
	// nothing else: its only write is a Proposal, made through MCP.
	ComponentAgent Component = "agent"
	// ComponentIngest is the Alertmanager receiver: it publishes alerts.
	ComponentIngest Component = "ingest"
	// ComponentMCP is the MCP server: it publishes proposal repeats and
	// reads recent telemetry for get_telemetry.
	ComponentMCP Component = "mcp"
	// ComponentShim is the runtime shim on a node: it answers shim requests
	// for its node and publishes that node's telemetry.
	ComponentShim Component = "shim"
	// ComponentAuditReader reads and verifies the audit chain (tend audit),
	// and reads the planner's transcripts (tend transcripts show).
	ComponentAuditReader Component = "audit-reader"
)

// Components lists every component, in the order docs/nats-permissions.md uses.
var Components = []Component{ComponentController, ComponentSensor, ComponentAgent, ComponentIngest, ComponentMCP, ComponentShim, ComponentAuditReader}

// Permissions is what one component may publish and subscribe to. Anything
// not allowed is denied; Deny lists what must stay denied even if an allow
// rule is widened later.
type Permissions struct {
	PublishAllow, PublishDeny     []string
	SubscribeAllow, SubscribeDeny []string
	// AllowResponses lets the component publish one reply to the reply
	// subject of each message it receives, for a few minutes, whatever
	// PublishAllow says (NATS allow_responses). The shim answers requests
	// this way, without any right to publish to inboxes in general.
	AllowResponses bool
}

// ComponentPermissions returns the least privilege c needs on the bus of
// cluster. node is the node of a shim and is ignored for other components.
// An operator turns these into the users of their NATS accounts; the
// embedded server of `tend up` and the tests use them as they are.
func ComponentPermissions(c Component, cluster, node string) (Permissions, error) {
	cl := Token(cluster)
	// Every JetStream client checks that JetStream is there and reads its
	// replies, publish acks and pulled messages on its inbox.
	base := []string{"$JS.API.INFO"}
	inbox := []string{"_INBOX.>"}
	switch c {
	case ComponentController:
		return Permissions{
			PublishAllow: append(base,
				proposalsRoot+"."+cl+".>", auditRoot+"."+cl, shimRoot+"."+cl+".>",
				"$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.STREAM.INFO.*",
				"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.*", "$JS.API.DIRECT.GET.*.>",
				// Its consumers: proposal repeats and the audit chain.
				"$JS.API.CONSUMER.CREATE.*.>", "$JS.API.CONSUMER.INFO.*.>", "$JS.API.CONSUMER.DELETE.*.>",
				"$JS.API.CONSUMER.MSG.NEXT.*.>", "$JS.ACK.*.>", deadRoot+".>",
			),
			// The audit chain is kept whole: no one deletes, purges or
			// changes the limits of its stream, or deletes a record.
			PublishDeny: []string{
				"$JS.API.STREAM.UPDATE." + StreamAudit, "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
			},
			SubscribeAllow: inbox,
		}, nil
	case ComponentSensor:
		return Permissions{
			PublishAllow: append(base, telemetryRoot+"."+cl+".>"),
			PublishDeny: []string{shimRoot + ".>", auditRoot + ".>", proposalsRoot + ".>",
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"},
			SubscribeAllow: inbox,
			SubscribeDeny:  []string{shimRoot + ".>"},
		}, nil
	case ComponentAgent:
		t := StreamTelemetry
		return Permissions{
			PublishAllow: append(base,
				"$JS.API.STREAM.INFO."+t,
				"$JS.API.CONSUMER.CREATE."+t+".>", "$JS.API.CONSUMER.INFO."+t+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+t+".>", "$JS.ACK."+t+".>",
				// Giving its share's pin back when it stops.
				"$JS.API.CONSUMER.UNPIN."+t+".>",
				deadRoot+".>",
				// The transcripts of its planner's runs, in its cluster.
				transcriptsRoot+"."+cl+".>",
				// Its findings: diagnoses for a human, never a change.
				FindingsSubject(cluster),
			),
			// Agents never act: no shim requests, no telemetry, proposal,
			// audit or stream writes, no deleting consumers or messages.
			PublishDeny: []string{
				shimRoot + ".>", telemetryRoot + ".>", proposalsRoot + ".>", auditRoot + ".>",
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.DELETE.>",
			},
			SubscribeAllow: inbox,
			SubscribeDeny:  []string{shimRoot + ".>"},
		}, nil
	case ComponentIngest:
		return Permissions{
			PublishAllow:   append(base, telemetryRoot+"."+cl+"."+string(KindAlert)+".>"),
			PublishDeny:    []string{shimRoot + ".>", auditRoot + ".>", proposalsRoot + ".>"},
			SubscribeAllow: inbox,
			SubscribeDeny:  []string{shimRoot + ".>"},
		}, nil
	case ComponentMCP:
		t := StreamTelemetry
		return Permissions{
			// Proposal repeats, and get_telemetry's short-lived consumers
			// (they expire on their own; it deletes none).
			PublishAllow: append(base, "$JS.API.STREAM.INFO."+StreamProposals, ProposalsSubject(cluster, RepeatEvent),
				"$JS.API.CONSUMER.CREATE."+t+".>", "$JS.API.CONSUMER.INFO."+t+".>", "$JS.API.CONSUMER.MSG.NEXT."+t+".>"),
			PublishDeny:    []string{shimRoot + ".>", telemetryRoot + ".>", auditRoot + ".>"},
			SubscribeAllow: inbox,
			SubscribeDeny:  []string{shimRoot + ".>"},
		}, nil
	case ComponentShim:
		if node == "" {
			return Permissions{}, fmt.Errorf("bus: the %s component needs a node", c)
		}
		n := Token(node)
		allow := base
		// Its node's telemetry, and nothing about another node.
		for _, k := range NodeKinds {
			allow = append(allow, TelemetrySubject(cluster, k, "", node))
		}
		// Its node's entries of the attempt ledger.
		ledger, kv := "KV_"+ShimLedgerBucket, "$KV."+ShimLedgerBucket+"."+ShimLedgerPrefix(cluster, node)+".>"
		allow = append(allow, "$JS.API.STREAM.INFO."+ledger, kv, "$JS.API.DIRECT.GET."+ledger+"."+kv)
		// Diagnostics objects: new chunks and metadata, and reading
		// metadata. Object names cannot be limited to a node's through
		// subjects (the metadata subject encodes the name); the reply
		// carries the object's digest, which a reader checks.
		obj, o := "OBJ_"+DiagnosticsBucket, "$O."+DiagnosticsBucket
		allow = append(allow, "$JS.API.STREAM.INFO."+obj, o+".C.>", o+".M.>", "$JS.API.DIRECT.GET."+obj+"."+o+".M.>")
		return Permissions{
			PublishAllow: allow,
			PublishDeny: []string{shimRoot + ".>", auditRoot + ".>", proposalsRoot + ".>",
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"},
			SubscribeAllow: append(inbox, shimRoot+"."+cl+"."+n+".>"),
			// Replies: one message to the reply subject of each request it got.
			AllowResponses: true,
		}, nil
	case ComponentAuditReader:
		a, tr := StreamAudit, StreamTranscripts
		return Permissions{
			PublishAllow: append(base, "$JS.API.STREAM.INFO."+a, "$JS.API.STREAM.MSG.GET."+a,
				"$JS.API.DIRECT.GET."+a, "$JS.API.DIRECT.GET."+a+".>", "$JS.API.CONSUMER.CREATE."+a+".>",
				"$JS.API.CONSUMER.DELETE."+a+".>", "$JS.ACK."+a+".>",
				// The planner's transcripts, which reviewers read beside
				// the audit chain (tend transcripts show).
				"$JS.API.STREAM.INFO."+tr, "$JS.API.STREAM.MSG.GET."+tr),
			PublishDeny:    []string{shimRoot + ".>", auditRoot + ".>", telemetryRoot + ".>"},
			SubscribeAllow: inbox,
		}, nil
	}
	return Permissions{}, fmt.Errorf("bus: unknown component %q (want one of %s)", c, componentNames())
}

func componentNames() string {
	names := make([]string, len(Components))
	for i, c := range Components {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}
