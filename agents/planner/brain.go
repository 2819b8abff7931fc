package planner

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"

	"github.com/tendops/tend/agents"
)

// EnvBrain names the agent's brain when --brain is not given.
const EnvBrain = "TEND_BRAIN"

// Brain is what decides a maintenance agent's proposals, and for the llm
// and hybrid brains the planner's options: the flags `tend up` (and every
// command that starts agents) and `tend eval run` share.
type Brain struct {
	// Name is agents.BrainDeterministic, BrainLLM or BrainHybrid; empty
	// picks the default in Resolve.
	Name string
	LLM  Options
	// OTLPEndpoint, if set, is where the planner's spans go (OTLP/HTTP);
	// else OpenTelemetry's environment variables say, if they are set.
	OTLPEndpoint string
	// Tracer, if set, records the planner's spans (NewTracer); it is no
	// flag, but what the command made of OTLPEndpoint.
	Tracer trace.Tracer
}

// BindFlags binds --brain and the planner's flags.
func (b *Brain) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&b.Name, "brain", "", "agent brain: deterministic (runbooks only), llm (the LLM planner for every problem the runbooks see) or hybrid (runbooks first, the planner for what stays unhealthy that no runbook claims) or none (propose nothing: observe only, the evals' baseline) (default $"+EnvBrain+", else hybrid when a model endpoint or name is configured, else deterministic)")
	b.LLM.BindFlags(fs)
	fs.StringVar(&b.OTLPEndpoint, "otlp-endpoint", "", "export the planner's spans (gen_ai semantic conventions) to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (default $"+EnvOTLPEndpoint+")")
}

// Configured reports whether a model endpoint or name is configured, by
// flag or environment.
func (b *Brain) Configured() bool {
	return cmp.Or(b.LLM.Model.BaseURL, os.Getenv(EnvBaseURL), b.LLM.Model.Model, os.Getenv(EnvModel)) != ""
}

// Resolve picks the default brain and, for a brain with a planner, reads
// the model's configuration and key (Config.Resolve).
func (b *Brain) Resolve() error {
	b.Name = cmp.Or(b.Name, os.Getenv(EnvBrain))
	if b.Name == "" {
		b.Name = agents.BrainDeterministic
		if b.Configured() {
			b.Name = agents.BrainHybrid
		}
	}
	if err := agents.ValidBrain(b.Name); err != nil {
		return fmt.Errorf("--brain: %w", err)
	}
	if b.Name == agents.BrainDeterministic || b.Name == agents.BrainNone {
		return nil
	}
	if err := b.LLM.Model.Resolve(); err != nil {
		return fmt.Errorf("brain %s: %w", b.Name, err)
	}
	if b.LLM.Limits.MaxSteps < 1 {
		return fmt.Errorf("--llm-max-steps must be at least 1, not %d", b.LLM.Limits.MaxSteps)
	}
	return nil
}

// NeedsPlanner reports whether the brain runs the planner.
func (b *Brain) NeedsPlanner() bool {
	return b.Name == agents.BrainLLM || b.Name == agents.BrainHybrid
}

// New returns the planner of resolved options: their model, budgets and
// timeouts, with a ledger of its own for the hourly budgets, calling tools
// as agent. The caller sets Transcripts and Tracer.
func (o Options) New(tools Tools, agent string) (*LLM, error) {
	m, err := NewModel(o.Model)
	if err != nil {
		return nil, err
	}
	return &LLM{
		Model: m, Tools: tools, Agent: agent, Limits: o.Limits, Prices: o.Prices, Ledger: &Ledger{},
		CallTimeout: o.CallTimeout, IncidentTimeout: o.IncidentTimeout,
		Provider: o.Model.Provider, ModelName: o.Model.Model,
	}, nil
}

// Adapter is the planner as the agent runtime calls it: it turns the
// agent's problem into an incident, runs the LLM planner on it, and tells
// OnResult what the run did. The planner makes its proposals itself,
// through the propose tools as the agent, so Plan returns no intents.
type Adapter struct {
	LLM *LLM
	// OnResult, if set, is told of every run, with its problem.
	OnResult func(agents.Problem, Result)
}

var _ agents.Planner = (*Adapter)(nil)

// Plan implements agents.Planner. m is unused: the problem carries the
// model's telemetry of its object.
func (a *Adapter) Plan(ctx context.Context, _ *agents.Model, p agents.Problem) ([]agents.Intent, error) {
	res, err := a.LLM.Plan(ctx, IncidentOf(p))
	if a.OnResult != nil {
		a.OnResult(p, res)
	}
	return nil, err
}

// IncidentOf is the incident of an agent's problem: tend's own summary
// as a finding, the object, and the telemetry (data) the model holds.
func IncidentOf(p agents.Problem) Incident {
	in := Incident{
		ID:        p.ID,
		Summary:   fmt.Sprintf("%s is unhealthy, and no runbook fixed it.", p.Object),
		Kind:      p.Object.Kind,
		Namespace: p.Object.Namespace,
		Name:      p.Object.Name,
	}
	if p.Summary != "" {
		in.Findings = []string{p.Summary}
	}
	have := map[string]bool{}
	for _, t := range p.Telemetry {
		have[fmt.Sprintf("%s/%d", t.Ref.Subject, t.Ref.Sequence)] = true
		in.Evidence = append(in.Evidence, Evidence{Subject: t.Ref.Subject, Sequence: t.Ref.Sequence, Data: t.Data})
	}
	for _, r := range p.Evidence {
		if !have[fmt.Sprintf("%s/%d", r.Subject, r.Sequence)] {
			in.Evidence = append(in.Evidence, Evidence{Subject: r.Subject, Sequence: r.Sequence, Data: []byte("null")})
		}
	}
	return in
}
