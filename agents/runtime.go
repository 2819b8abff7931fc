package agents

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// proposer makes proposals: it calls the propose tool named tool with args.
// *ToolClient implements it.
type proposer interface {
	Propose(ctx context.Context, tool string, args wire.ProposeArgs) (wire.ProposeResult, error)
}

var _ proposer = (*ToolClient)(nil)

// FindingRecorder records a diagnosis for a human: on the bus, and as an
// Event on the object.
type FindingRecorder interface {
	RecordFinding(ctx context.Context, f Finding) error
}

// maxFingerprint is the longest fingerprint the propose tools take.
const maxFingerprint = 128

// maxRemembered bounds the fingerprints an agent remembers.
const maxRemembered = 4096

// DefaultInterval is how often an agent judges its model when no telemetry
// arrives: faults that show as the absence of change (a pod that never
// becomes ready) are seen on this tick.
const DefaultInterval = 2 * time.Second

// DefaultTargetHold is how long an agent waits after proposing for an
// object before it proposes a different fix for the same object: one cause,
// one proposal, and time for the first fix to be decided and verified.
const DefaultTargetHold = 90 * time.Second

// DefaultPlannerConcurrency is how many problems the planner works on at
// once.
const DefaultPlannerConcurrency = 2

// Outcome reports one proposal the agent made, for whoever watches the agent.
type Outcome struct {
	Intent Intent
	Result wire.ProposeResult
}

// Agent is a maintenance agent: one model of the cluster folded from the
// telemetry stream, and a list of runbooks that judge it and propose
// through MCP.
type Agent struct {
	Name     string
	Runbooks []Runbook
	Tools    proposer
	// Findings records the diagnoses of runbooks that find no safe fix;
	// nil drops them (they are still logged).
	Findings FindingRecorder
	// OnProposal, if set, is told of every proposal made.
	OnProposal func(Outcome)
	// Interval between judgements without telemetry; DefaultInterval if 0.
	Interval time.Duration
	// TargetHold is DefaultTargetHold if 0.
	TargetHold time.Duration
	// Clock is time.Now if nil.
	Clock func() time.Time
	// Brain is BrainDeterministic when empty. BrainHybrid hands Planner
	// every object the model shows unhealthy past HandoffSettle that no
	// runbook claims (handoff.go); BrainLLM hands it every problem the
	// runbooks see, and makes none of their proposals. Set it before Start,
	// or with SetBrain.
	Brain   string
	Planner Planner
	// PlannerConcurrency bounds the planner runs at once;
	// DefaultPlannerConcurrency if 0.
	PlannerConcurrency int
	// HandoffSettle and HandoffCooldown are DefaultHandoffSettle and
	// DefaultHandoffCooldown if 0.
	HandoffSettle, HandoffCooldown time.Duration

	mu sync.Mutex
	// runCtx is Start's context: planner runs outlive the judgement that
	// started them. slots bound them; planning waits for them on stop.
	runCtx   context.Context
	slots    chan struct{}
	planning sync.WaitGroup
	model    *Model
	proposed map[string]proposed
	// inflight are the fingerprints being proposed right now: judgements
	// run concurrently (one per bus partition, and the tick), and one
	// intent must become one call.
	inflight map[string]bool
	// held maps a target to when it was last proposed for, and what.
	held map[string]heldTarget
	// sick maps the objects the hybrid brain judged unhealthy to when it
	// first did; handed the objects it handed the planner.
	sick   map[ObjectKey]time.Time
	free   map[ObjectKey]time.Time
	handed map[ObjectKey]handed
	// judgeAt is when the last judgement's earliest pending window ends
	// (Model.lasted); rejudge tells Start of a new one.
	judgeAt time.Time
	rejudge chan struct{}
	// lastJudged is when the last judgement evaluated the model.
	lastJudged time.Time
}

// proposed is what the agent remembers of one fingerprint it proposed.
type proposed struct {
	at     time.Time
	result wire.ProposeResult
}

// DefaultRetryDenied is how long an agent waits before it proposes again
// what the gate denied: the facts it decided on (a guard's count, a
// target's generation) may have changed. The gate's per-target rate limit
// bounds the repeats.
const DefaultRetryDenied = time.Minute

type heldTarget struct {
	at          time.Time
	fingerprint string
	runbook     string
	key         ObjectKey
}

func (a *Agent) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// modelLocked returns the agent's model, creating it on first use; a.mu is held.
func (a *Agent) modelLocked() *Model {
	if a.model == nil {
		a.model = NewModel()
	}
	return a.model
}

// Handle is the agent's bus.Handler: it folds the delivery into the model
// and has the runbooks judge it: at once when the agent is not running
// (Start), else by asking Start to judge now, or at the end of judgeSpacing
// after the last judgement.
func (a *Agent) Handle(ctx context.Context, d bus.Delivery) error {
	a.mu.Lock()
	a.modelLocked().Observe(d)
	if a.rejudge != nil && a.Clock == nil {
		// A running agent judges in Start, never here: proposing waits on
		// the MCP server and the gate, and the consumer hands this agent
		// every object's telemetry in one stream (one share), which must
		// not wait behind it. Judging the whole model again for each of a
		// burst of messages would cost the model's size per message, so a
		// message that comes within judgeSpacing of the last judgement is
		// judged with the others at its end.
		next := a.lastJudged.Add(judgeSpacing)
		if now := time.Now(); now.After(next) {
			next = now
		}
		if a.judgeAt.IsZero() || next.Before(a.judgeAt) {
			a.judgeAt = next
		}
		select {
		case a.rejudge <- struct{}{}:
		default:
		}
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	return a.judge(ctx)
}

// judgeSpacing is the least time between two judgements a running agent
// makes for telemetry: a message that arrives sooner after the last one is
// judged with the others at its end.
const judgeSpacing = 250 * time.Millisecond

// Start judges the model every Interval until ctx ends; it implements
// manager.Runnable.
func (a *Agent) Start(ctx context.Context) error {
	iv := a.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	t := time.NewTimer(iv)
	defer t.Stop()
	logger := log.FromContext(ctx).WithValues("agent", a.Name)
	a.mu.Lock()
	a.runCtx = ctx
	if a.rejudge == nil {
		a.rejudge = make(chan struct{}, 1)
	}
	rejudge := a.rejudge
	a.mu.Unlock()
	defer a.planning.Wait()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rejudge:
			t.Reset(a.untilJudgement(last, iv))
			continue
		case <-t.C:
		}
		last = time.Now()
		if err := a.judge(ctx); err != nil && ctx.Err() == nil {
			// The next tick asks again; the error is the MCP server's.
			logger.Error(err, "Failed to propose")
		}
		t.Reset(a.untilJudgement(last, iv))
	}
}

// minJudgeGap is the shortest time between two judgements Start makes.
const minJudgeGap = 100 * time.Millisecond

// untilJudgement is how long Start waits before it judges again: a tick
// after the last judgement, or sooner when a runbook's window ends sooner.
// With an injected clock only the tick counts (its windows are not on the
// real clock).
func (a *Agent) untilJudgement(last time.Time, iv time.Duration) time.Duration {
	next := last.Add(iv)
	a.mu.Lock()
	at := a.judgeAt
	a.mu.Unlock()
	if a.Clock == nil && !at.IsZero() && at.Before(next) {
		next = at
	}
	return max(time.Until(next), time.Until(last.Add(minJudgeGap)), 0)
}

// judge runs every runbook over the model, in order, and proposes.
func (a *Agent) judge(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("agent", a.Name)
	now := a.now()
	a.mu.Lock()
	m := a.modelLocked()
	brain := a.brainLocked()
	var intents []Intent
	var problems []*Problem
	var handoffs []Problem
	runbooks := a.Runbooks
	if brain == BrainNone {
		runbooks = nil
	}
	m.judgeAt = time.Time{}
	a.lastJudged = time.Now()
	for _, rb := range runbooks {
		for _, in := range rb.Evaluate(m, now) {
			in.Runbook = rb.Name()
			intents = append(intents, in)
			// The planner's problems are described now, from the model
			// as it stands, since it runs beside later judgements.
			var p *Problem
			if brain == BrainLLM {
				pr := problemOf(m, in)
				p = &pr
			}
			problems = append(problems, p)
		}
	}
	if brain == BrainHybrid {
		handoffs = a.handoffsLocked(m, now, intents)
	}
	a.judgeAt = m.judgeAt
	if !a.judgeAt.IsZero() && a.rejudge != nil {
		select {
		case a.rejudge <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	var errs []error
	for i, in := range intents {
		if err := a.act(ctx, logger, now, in, problems[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range handoffs {
		logger.Info("Handing over", "object", p.Object.String(), "incident", p.ID)
		key := p.Object
		if !a.plan(ctx, p, func() { a.handedBack(key, true) }) {
			// No free planner: handed over on a later judgement.
			a.handedBack(key, false)
		}
	}
	// Redelivered after a backoff; the runbooks see the same state and ask
	// again.
	return errors.Join(errs...)
}

// act makes what in asks for, once per fingerprint. With a problem, it
// hands the problem to the planner instead of proposing (BrainLLM), or
// besides recording the finding (BrainHybrid).
func (a *Agent) act(ctx context.Context, logger logr.Logger, now time.Time, in Intent, problem *Problem) error {
	fp := in.fingerprint()
	if fp == "" {
		return nil
	}
	if problem != nil && in.Finding == nil {
		// The planner decides alone: the runbook's proposal is its
		// problem, once per runbook and object (a runbook's next step on
		// the same object is the same problem).
		fp = "plan/" + in.Runbook + "/" + in.target()
	}
	target := in.target()
	hold := a.TargetHold
	if hold <= 0 {
		hold = DefaultTargetHold
	}
	a.mu.Lock()
	prev, done := a.proposed[fp]
	if done && prev.result.Outcome == "Deny" && now.Sub(prev.at) >= DefaultRetryDenied {
		done = false
	}
	if h, ok := a.held[target]; target != "" && ok && h.fingerprint != fp && h.runbook != in.Runbook && now.Sub(h.at) < hold {
		// Another runbook's fix for the same object is being decided or
		// verified. (A runbook may take its own next step: it judges the
		// object as its last step left it.)
		done = true
	}
	if a.inflight[fp] || (target != "" && a.inflight["target:"+target]) {
		done = true
	}
	if !done {
		if a.inflight == nil {
			a.inflight = map[string]bool{}
		}
		a.inflight[fp] = true
		if target != "" {
			a.inflight["target:"+target] = true
		}
	}
	a.mu.Unlock()
	if done {
		return nil
	}
	defer func() {
		a.mu.Lock()
		delete(a.inflight, fp)
		delete(a.inflight, "target:"+target)
		a.mu.Unlock()
	}()
	var res wire.ProposeResult
	if problem != nil && in.Finding == nil {
		logger.Info("Planning", "runbook", in.Runbook, "object", problem.Object.String(), "incident", problem.ID)
		if !a.plan(ctx, *problem, nil) {
			return nil
		}
	} else if in.Finding != nil {
		logger.Info("Escalating", "runbook", in.Runbook, "object", in.Finding.Object(), "fault", in.Finding.Fault)
		if a.Findings != nil {
			f := *in.Finding
			f.Runbook = in.Runbook
			if err := a.Findings.RecordFinding(ctx, f); err != nil {
				return fmt.Errorf("failed to record finding about %s: %w", in.Finding.Object(), err)
			}
		}
		if problem != nil {
			logger.Info("Planning", "object", problem.Object.String(), "incident", problem.ID)
			// A problem with no free planner is handed over on a later
			// judgement: the finding is recorded again then, once more
			// on the bus (its ID de-duplicates it).
			if !a.plan(ctx, *problem, nil) {
				return nil
			}
		}
	} else {
		tool, args, ok := in.Call()
		if !ok {
			return nil
		}
		c := args.CommonArgs()
		c.Agent = a.Name
		if len(c.Fingerprint) > maxFingerprint {
			c.Fingerprint = c.Fingerprint[:maxFingerprint-41] + "/" + wire.Digest(c.Fingerprint)
		}
		logger.Info("Proposing", "runbook", in.Runbook, "tool", tool, "target", target, "fingerprint", fp)
		var err error
		res, err = a.Tools.Propose(ctx, tool, args)
		if err != nil {
			// The message is redelivered and the proposal tried again;
			// say why it failed, not only that it is being retried.
			logger.Error(err, "Proposing failed; trying again on redelivery", "runbook", in.Runbook, "tool", tool, "target", target)
			return fmt.Errorf("failed to propose %s for %s: %w", tool, target, err)
		}
		logger.Info("Gate answered", "proposal", res.Namespace+"/"+res.Name, "outcome", res.Outcome, "phase", res.Phase, "duplicate", res.Duplicate)
	}
	a.mu.Lock()
	if a.proposed == nil || len(a.proposed) >= maxRemembered {
		// Forgetting is safe: the MCP server returns an open proposal with
		// the same fingerprint instead of making a second one.
		a.proposed = map[string]proposed{}
	}
	if a.held == nil || len(a.held) >= maxRemembered {
		a.held = map[string]heldTarget{}
	}
	a.proposed[fp] = proposed{at: now, result: res}
	if target != "" && in.Finding == nil {
		// A finding changes nothing, so it holds nothing back.
		key, _ := in.object()
		a.held[target] = heldTarget{at: now, fingerprint: fp, runbook: in.Runbook, key: key}
	}
	a.mu.Unlock()
	if a.OnProposal != nil && in.Finding == nil && problem == nil {
		a.OnProposal(Outcome{Intent: in, Result: res})
	}
	return nil
}
