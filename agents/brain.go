package agents

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/mcp/wire"
)

// Brains of a maintenance agent: what decides its proposals.
const (
	// BrainDeterministic is the runbooks alone: the default when no model
	// endpoint is configured.
	BrainDeterministic = "deterministic"
	// BrainLLM hands every problem the runbooks see to the planner, and
	// makes none of their proposals.
	BrainLLM = "llm"
	// BrainHybrid is the runbooks first, and the planner for what no
	// runbook claims: an object the model shows unhealthy past a settle
	// time that no runbook proposed for or diagnosed (handoff.go). The
	// default when a model endpoint is configured.
	BrainHybrid = "hybrid"
	// BrainNone runs no runbook and no planner: the agent keeps its model
	// of the cluster and proposes and reports nothing. It is the eval
	// harness's baseline, where every fault must fail, and an observe-only
	// mode.
	BrainNone = "none"
)

// Brains lists the brains, in the order the docs give them.
var Brains = []string{BrainDeterministic, BrainLLM, BrainHybrid, BrainNone}

// ValidBrain checks a brain's name.
func ValidBrain(brain string) error {
	switch brain {
	case BrainDeterministic, BrainLLM, BrainHybrid, BrainNone:
		return nil
	}
	return fmt.Errorf("agents: brain %q: must be %s, %s, %s or %s", brain, BrainDeterministic, BrainLLM, BrainHybrid, BrainNone)
}

// Telemetry is one telemetry message of a problem's evidence: where it is
// on the bus, and the object's state it carried, as the model holds it.
// Data is untrusted (it carries names, messages and reasons from the
// cluster): a planner shows it to a model as data, never as instructions.
type Telemetry struct {
	Ref  wire.TelemetryRef `json:"ref"`
	Data json.RawMessage   `json:"data"`
}

// maxProblemTelemetry bounds the messages a problem carries.
const maxProblemTelemetry = 12

// problemOf describes what intent in is about, for the planner, from the
// model m; the agent's lock is held.
func problemOf(m *Model, in Intent) Problem {
	p := Problem{}
	var refs []wire.TelemetryRef
	if f := in.Finding; f != nil {
		p.Object = ObjectKey{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}
		p.Summary = f.Fault + " " + f.Advice
		refs = f.Evidence
	} else if tool, args, ok := in.Call(); ok {
		c := args.CommonArgs()
		if d, err := wire.Validate(args); err == nil {
			p.Object = ObjectKey{Kind: d.Target.Kind, Namespace: d.Target.Namespace, Name: d.Target.Name}
		}
		p.Summary = fmt.Sprintf("%s (runbook %s would call %s)", c.Summary, in.Runbook, tool)
		refs = c.Telemetry
	}
	if p.Object.Kind == "Node" {
		p.Object.Namespace = ""
	}
	key := in.fingerprint()
	if in.Finding == nil {
		key = "plan/" + in.Runbook + "/" + in.target()
	}
	p.ID = "inc-" + wire.Digest(key)[:20]
	p.Evidence = refs
	p.Telemetry = m.telemetryOf(p.Object)
	return p
}

// telemetryOf is the last state the model holds of the object key and of
// what it owns or runs (a workload's pods, a node's pods, an autoscaler's
// target, the pods a network policy selects), at most maxProblemTelemetry
// messages.
func (m *Model) telemetryOf(key ObjectKey) []Telemetry {
	var out []Telemetry
	add := func(s Seen, state any) {
		if len(out) >= maxProblemTelemetry || state == nil {
			return
		}
		b, err := json.Marshal(state)
		if err != nil {
			return
		}
		out = append(out, Telemetry{Ref: s.Ref, Data: b})
	}
	addWorkload := func(k ObjectKey) {
		w := m.Workloads[k]
		if w == nil {
			return
		}
		if w.Deployment != nil {
			add(w.Seen, w.Deployment)
		} else {
			add(w.Seen, w.State)
		}
		for _, p := range m.PodsOf(k) {
			add(p.Seen, p.State)
		}
	}
	switch key.Kind {
	case KindDeployment, KindStatefulSet, KindDaemonSet:
		addWorkload(key)
	case "Node":
		if n := m.Nodes[key.Name]; n != nil {
			add(n.Seen, n.State)
		}
		for _, p := range m.PodsOn(key.Name) {
			add(p.Seen, p.State)
		}
	case "HorizontalPodAutoscaler":
		if h := m.Autoscalers[key]; h != nil {
			add(h.Seen, h.State)
			addWorkload(ObjectKey{Kind: h.State.Target.Kind, Namespace: key.Namespace, Name: h.State.Target.Name})
		}
	case "Service":
		if s := m.Services[key]; s != nil {
			add(s.Seen, s.State)
			for _, wk := range sortedKeys(m.Workloads) {
				if wk.Namespace == key.Namespace && selects(s.State.Selector, m.Workloads[wk].PodLabels) {
					addWorkload(wk)
				}
			}
		}
	case KindNetworkPolicy:
		// The policy, and the pods of its namespace it selects.
		if np := m.NetworkPolicies[key]; np != nil {
			add(np.Seen, np.State)
			for _, pk := range sortedKeys(m.Pods) {
				p := m.Pods[pk]
				if pk.Namespace == key.Namespace && p.State.Labels != nil && matchSelector(&np.State.PodSelector, p.State.Labels) {
					add(p.Seen, p.State)
				}
			}
		}
	case "Pod":
		if p := m.Pods[key]; p != nil {
			add(p.Seen, p.State)
			if n := m.Nodes[p.State.NodeName]; n != nil {
				add(n.Seen, n.State)
			}
		}
	case "Job":
		if j := m.Jobs[key]; j != nil {
			add(j.Seen, j.State)
			for _, p := range m.PodsOf(key) {
				add(p.Seen, p.State)
			}
		}
	case "CronJob":
		// Its Jobs, newest first, and the pods of the newest.
		var jobs []*Job
		for _, jk := range sortedKeys(m.Jobs) {
			if o := m.Jobs[jk].State.Owner; jk.Namespace == key.Namespace && o != nil && o.Kind == "CronJob" && o.Name == key.Name {
				jobs = append(jobs, m.Jobs[jk])
			}
		}
		slices.SortFunc(jobs, func(a, b *Job) int {
			if newerJob(a, b) {
				return -1
			}
			return 1
		})
		for i, j := range jobs {
			add(j.Seen, j.State)
			if i == 0 {
				for _, p := range m.PodsOf(j.Key) {
					add(p.Seen, p.State)
				}
			}
		}
	}
	return out
}

// plan hands a problem to the planner, and calls done (if set) once the run
// ends. With a running agent (Start), the planner runs beside the
// judgements, at most PlannerConcurrency at once; a problem that finds no
// free slot is forgotten (plan returns false, and done is not called), and
// handed over again on a later judgement. Without one (a test calling
// Handle), it runs now.
func (a *Agent) plan(ctx context.Context, p Problem, done func()) bool {
	a.mu.Lock()
	pl, runCtx := a.Planner, a.runCtx
	if a.slots == nil {
		n := a.PlannerConcurrency
		if n <= 0 {
			n = DefaultPlannerConcurrency
		}
		a.slots = make(chan struct{}, n)
	}
	slots := a.slots
	a.mu.Unlock()
	if pl == nil {
		return false
	}
	run := func(ctx context.Context) {
		if done != nil {
			defer done()
		}
		if _, err := pl.Plan(ctx, nil, p); err != nil && ctx.Err() == nil {
			// The transcript records the failure; the problem is not
			// handed over again until the agent forgets it.
			log.FromContext(ctx).WithValues("agent", a.Name).Error(err, "Failed to plan", "incident", p.ID, "object", p.Object.String())
		}
	}
	if runCtx == nil {
		run(ctx)
		return true
	}
	select {
	case slots <- struct{}{}:
	default:
		return false
	}
	a.planning.Add(1)
	go func() {
		defer a.planning.Done()
		defer func() { <-slots }()
		run(runCtx)
	}()
	return true
}

// SetBrain changes the agent's brain and planner (nil for
// BrainDeterministic) from its next judgement on. Planner runs in flight
// finish on the planner they started with.
func (a *Agent) SetBrain(brain string, p Planner) error {
	if brain == "" {
		brain = BrainDeterministic
	}
	if err := ValidBrain(brain); err != nil {
		return err
	}
	if (brain == BrainLLM || brain == BrainHybrid) && p == nil {
		return fmt.Errorf("agents: brain %q needs a planner", brain)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Brain, a.Planner = brain, p
	return nil
}

// brain is the agent's brain; the agent's lock is held.
func (a *Agent) brainLocked() string {
	if a.Brain == BrainNone {
		return BrainNone
	}
	if a.Brain == "" || a.Planner == nil {
		return BrainDeterministic
	}
	return a.Brain
}

// CurrentBrain is the agent's brain.
func (a *Agent) CurrentBrain() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.brainLocked()
}
