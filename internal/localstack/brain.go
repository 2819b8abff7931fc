package localstack

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/components"
)

// brains is the stack's maintenance agent and what its planners need.
type brains struct {
	agent   *agents.Agent
	mcpURL  string
	token   agents.TokenSource
	records planner.TranscriptRecorder
	tracer  trace.Tracer

	mu       sync.Mutex
	sessions []*planner.MCPTools
	watchers map[int]func(agents.Problem, planner.Result)
	next     int
}

// SetBrain changes the maintenance agent's brain: b must be resolved
// (planner.Brain.Resolve). A brain with a planner opens an MCP session as
// the agent for it; the stack's teardown closes it.
func (s *Stack) SetBrain(ctx context.Context, b planner.Brain) error {
	if s.brains == nil {
		return fmt.Errorf("localstack: the stack runs no agent")
	}
	return s.brains.set(ctx, b)
}

// Brain is the maintenance agent's brain.
func (s *Stack) Brain() string {
	if s.brains == nil {
		return ""
	}
	return s.brains.agent.CurrentBrain()
}

// WatchPlans tells fn of every planner run of the maintenance agent, until
// the returned function is called.
func (s *Stack) WatchPlans(fn func(agents.Problem, planner.Result)) (cancel func()) {
	if s.brains == nil {
		return func() {}
	}
	b := s.brains
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watchers == nil {
		b.watchers = map[int]func(agents.Problem, planner.Result){}
	}
	id := b.next
	b.next++
	b.watchers[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.watchers, id)
	}
}

func (b *brains) set(ctx context.Context, br planner.Brain) error {
	if !br.NeedsPlanner() {
		return b.agent.SetBrain(br.Name, nil)
	}
	// The stack's /metrics (the controller manager's) shows the model's
	// tokens and cost once a planner runs.
	if err := planner.Register(ctrlmetrics.Registry); err != nil {
		return err
	}
	p, tools, err := components.NewPlanner(ctx, br, components.PlannerOptions{
		MCPURL: b.mcpURL, Token: b.token, Transcripts: b.records, Tracer: b.tracer, OnResult: b.told,
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.sessions = append(b.sessions, tools)
	b.mu.Unlock()
	return b.agent.SetBrain(br.Name, p)
}

// told tells the watchers of a run.
func (b *brains) told(p agents.Problem, r planner.Result) {
	b.mu.Lock()
	fns := make([]func(agents.Problem, planner.Result), 0, len(b.watchers))
	for _, fn := range b.watchers {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(p, r)
	}
}

// close ends the planners' MCP sessions.
func (b *brains) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.sessions {
		_ = t.Close()
	}
	b.sessions = nil
}

// newBrains readies the agent's brains; the transcripts go to the bus as
// the agent.
func newBrains(agent *agents.Agent, mcpURL string, token agents.TokenSource, js jetstream.JetStream, cluster string, tracer trace.Tracer) *brains {
	return &brains{agent: agent, mcpURL: mcpURL, token: token, records: bus.NewTranscriptPublisher(js, cluster), tracer: tracer}
}
