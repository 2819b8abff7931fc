package components

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
)

// MaintenanceAgent is the maintenance agent's name on the bus, in its
// durable consumers and in its proposals.
const MaintenanceAgent = "maintenance"

// AgentOptions configure the maintenance agent.
type AgentOptions struct {
	// MCPURL is the MCP server the agent reads and proposes through, with
	// Token, its own identity there (its service account's token).
	MCPURL string
	Token  agents.TokenSource
	// JS is the agent's NATS connection (bus.ComponentAgent).
	JS jetstream.JetStream
	// Cluster names the cluster on the bus.
	Cluster string
	// Shares is how many agents can share the telemetry's partitions, one
	// share each (bus.ConsumerOptions.Shares). Default 1: one agent takes
	// every object, the others stand by.
	Shares int
	// OnProposal, if set, is told of every proposal the agent makes.
	OnProposal func(agents.Outcome)
}

// Agent is the maintenance agent and the durable consumer that feeds it,
// both to be run (as manager runnables, or with Start).
type Agent struct {
	Agent    *agents.Agent
	Consumer *bus.Consumer
	// Close ends the agent's MCP session.
	Close func() error
}

// NewAgent readies the maintenance agent: the runbooks (agents'
// MaintenanceRunbooks), its MCP session as its own identity, its findings
// on the bus, and one durable consumer per share of the telemetry stream's
// partitions, each pinned to one running agent, so that replicas share the
// work, one object on one agent at a time. Its brain is deterministic
// until SetBrain.
func NewAgent(ctx context.Context, opts AgentOptions) (*Agent, error) {
	switch {
	case opts.MCPURL == "" || opts.Token == nil:
		return nil, errors.New("components: the agent needs an MCP server and a token")
	case opts.JS == nil || opts.Cluster == "":
		return nil, errors.New("components: the agent needs a NATS connection and a cluster name")
	}
	tools, err := agents.DialTools(ctx, opts.MCPURL, "tend-maintenance-agent", opts.Token)
	if err != nil {
		return nil, err
	}
	agent := &agents.Agent{
		Name:       MaintenanceAgent,
		Runbooks:   agents.MaintenanceRunbooks(),
		Tools:      tools,
		Findings:   &agents.BusFindings{Publisher: bus.NewFindingPublisher(opts.JS, opts.Cluster), Agent: MaintenanceAgent},
		OnProposal: opts.OnProposal,
	}
	consumer, err := bus.NewConsumer(opts.JS, bus.ConsumerOptions{
		Stream:     bus.StreamTelemetry,
		Durable:    "agent-" + MaintenanceAgent,
		Partitions: bus.DefaultTelemetryPartitions,
		Shares:     opts.Shares,
		Cluster:    opts.Cluster,
		// A new agent starts from each object's current state, not a day
		// of past ones (of a cluster that may be gone: the local stack's).
		CurrentState: true,
	}, agent.Handle)
	if err != nil {
		_ = tools.Close()
		return nil, err
	}
	return &Agent{Agent: agent, Consumer: consumer, Close: tools.Close}, nil
}

// PlannerOptions are what a planner of the maintenance agent needs besides
// its brain.
type PlannerOptions struct {
	MCPURL string
	Token  agents.TokenSource
	// Transcripts keep the planner's runs (bus.NewTranscriptPublisher as
	// the agent).
	Transcripts planner.TranscriptRecorder
	// Tracer, if set, records its spans; a brain's own Tracer wins.
	Tracer trace.Tracer
	// OnResult, if set, is told of every run.
	OnResult func(agents.Problem, planner.Result)
}

// NewPlanner opens the planner of a resolved brain that needs one: its own
// MCP session as the agent, its model and budgets. The caller closes the
// session once the planner is no longer used.
func NewPlanner(ctx context.Context, b planner.Brain, opts PlannerOptions) (*planner.Adapter, *planner.MCPTools, error) {
	if !b.NeedsPlanner() {
		return nil, nil, fmt.Errorf("components: brain %q runs no planner", b.Name)
	}
	tools, err := planner.DialMCP(ctx, opts.MCPURL, "tend-maintenance-planner", opts.Token)
	if err != nil {
		return nil, nil, err
	}
	llm, err := b.LLM.New(tools, MaintenanceAgent)
	if err != nil {
		_ = tools.Close()
		return nil, nil, err
	}
	llm.Transcripts, llm.Tracer = opts.Transcripts, opts.Tracer
	if b.Tracer != nil {
		llm.Tracer = b.Tracer
	}
	return &planner.Adapter{LLM: llm, OnResult: opts.OnResult}, tools, nil
}
