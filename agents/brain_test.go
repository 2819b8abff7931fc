package agents

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// problemLog is a Planner that keeps the problems it is handed.
type problemLog struct {
	mu       sync.Mutex
	problems []Problem
}

var _ Planner = (*problemLog)(nil)

func (p *problemLog) Plan(_ context.Context, _ *Model, pr Problem) ([]Intent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, pr)
	return nil, nil
}

func (p *problemLog) objects() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, pr := range p.problems {
		out = append(out, pr.Object.String())
	}
	return out
}

// countingProposer approves every proposal and counts them by tool.
type countingProposer struct {
	mu    sync.Mutex
	tools []string
}

func (c *countingProposer) Propose(_ context.Context, tool string, _ wire.ProposeArgs) (wire.ProposeResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tools = append(c.tools, tool)
	return wire.ProposeResult{Phase: "Approved", Outcome: "AutoApprove"}, nil
}

// brainWorld is two problems: team/web broke with a rollout (BadRollout
// claims it), and shop/api crash-loops on its first revision (no runbook
// has a fix; Escalate reports it).
func brainWorld() []bus.Delivery {
	crash := bus.ContainerState{Name: "app", State: bus.ContainerWaiting, Reason: "CrashLoopBackOff", Message: hostile,
		RestartCount: 4, LastTerminationReason: "Error", LastExitCode: 1}
	fresh := healthyDeployment(1, 1)
	fresh.ReadyReplicas, fresh.AvailableReplicas, fresh.UnavailableReplicas = 0, 0, 1
	return []bus.Delivery{
		depDelivery(1, 1, true), depDelivery(2, 2, false), podDelivery(3, "web-2-a", 2, crashLoopBackOff(4)),
		deploymentOf(4, "shop", "api", fresh),
		podOf(5, "shop", "api-1", "Deployment", "api", bus.PodState{Revision: 1, Containers: []bus.ContainerState{crash}}),
	}
}

// TestBrains: deterministic proposes what the runbooks claim and hands
// nothing to the planner; hybrid does the same and hands the planner the
// problem no runbook claims, with its telemetry; llm hands the planner
// every problem and proposes nothing itself.
func TestBrains(t *testing.T) {
	tests := []struct {
		brain     string
		proposals []string
		planned   []string
	}{
		{BrainDeterministic, []string{wire.ToolProposeRollback}, nil},
		{BrainHybrid, []string{wire.ToolProposeRollback}, []string{"Deployment/shop/api"}},
		{BrainLLM, nil, []string{"Deployment/team/web", "Deployment/shop/api"}},
	}
	for _, tt := range tests {
		t.Run(tt.brain, func(t *testing.T) {
			tools, pl := &countingProposer{}, &problemLog{}
			now := at(5).Add(time.Minute)
			a := &Agent{Name: "maintenance", Runbooks: []Runbook{&BadRollout{}, &Escalate{}}, Tools: tools, Clock: func() time.Time { return now }}
			if err := a.SetBrain(tt.brain, pl); err != nil {
				t.Fatal(err)
			}
			for _, d := range brainWorld() {
				if err := a.Handle(t.Context(), d); err != nil {
					t.Fatal(err)
				}
			}
			// Judged again, once the hybrid brain's settle time has passed
			// since it first saw the problem: each problem is handed over
			// once.
			for range 2 {
				now = now.Add(DefaultHandoffSettle)
				if err := a.judge(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.proposals, tools.tools); diff != "" {
				t.Errorf("proposals (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.planned, pl.objects()); diff != "" {
				t.Errorf("problems planned (-want +got):\n%s", diff)
			}
			for _, p := range pl.problems {
				if !strings.HasPrefix(p.ID, "inc-") || p.Summary == "" || len(p.Evidence) == 0 {
					t.Errorf("problem %+v lacks its ID, summary or evidence", p)
				}
				var states []string
				for _, tm := range p.Telemetry {
					states = append(states, tm.Ref.Subject)
					if !json.Valid(tm.Data) {
						t.Errorf("telemetry %s is not JSON", tm.Ref.Subject)
					}
				}
				if len(states) < 2 {
					t.Errorf("problem %s carries the telemetry of %v; want its workload's and its pods'", p.Object, states)
				}
				if p.Object.Name == "api" && !strings.Contains(string(p.Telemetry[1].Data), "ignore previous") {
					// The pod's message is evidence the planner shows as
					// data: it is carried, not dropped or obeyed.
					t.Errorf("the pod's telemetry is not carried whole: %s", p.Telemetry[1].Data)
				}
			}
		})
	}
}

// TestBrainPlannerRunsBeside: under Start, a planner run does not hold up
// judgements, and Start waits for it on stop.
func TestBrainPlannerRunsBeside(t *testing.T) {
	release := make(chan struct{})
	started := make(chan Problem, 4)
	pl := plannerFunc(func(ctx context.Context, p Problem) {
		started <- p
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	// The clock moves on by the settle time once the problem is in the
	// model, so that the hybrid brain hands it over.
	var later atomic.Bool
	clock := func() time.Time {
		if later.Load() {
			return at(5).Add(time.Minute + DefaultHandoffSettle)
		}
		return at(5).Add(time.Minute)
	}
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{&BadRollout{}, &Escalate{}}, Tools: &countingProposer{}, Clock: clock,
		Interval: 10 * time.Millisecond, Brain: BrainHybrid, Planner: pl}
	ctx, stop := startAgent(t, a)
	for _, d := range brainWorld() {
		if err := a.Handle(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	later.Store(true)
	select {
	case p := <-started:
		if p.Object.String() != "Deployment/shop/api" {
			t.Errorf("planned %s", p.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the planner was never handed the problem")
	}
	// The judgement returned while the planner runs.
	if err := a.judge(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case p := <-started:
		t.Errorf("problem %s handed over twice", p.Object)
	default:
	}
	close(release)
}

type plannerFunc func(context.Context, Problem)

func (f plannerFunc) Plan(ctx context.Context, _ *Model, p Problem) ([]Intent, error) {
	f(ctx, p)
	return nil, nil
}
