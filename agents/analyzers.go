package agents

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/usage"
)

// History gives a workload container's usage samples in time order, and
// the name of their source.
type History interface {
	Samples(ctx context.Context, w ObjectKey, container string) ([]usage.Sample, error)
	Source() string
}

// Improvement is an Analyzer whose recommendations can be recorded on an
// ImprovementRun: Recommend returns them with their before, after and
// evidence; Analyze returns the same as intents.
type Improvement interface {
	Analyzer
	Recommend(ctx context.Context, scope Scope, m *Model, now time.Time) ([]tendv1.RunItem, error)
}

// ImprovementAnalyzers are the analyzers an ImprovementSchedule may name.
func ImprovementAnalyzers() []Improvement {
	return []Improvement{Rightsizing{}, HPABounds{}, Availability{}, Idle{}}
}

// ImprovementAnalyzerNames are the names of ImprovementAnalyzers.
func ImprovementAnalyzerNames() []string {
	var out []string
	for _, a := range ImprovementAnalyzers() {
		out = append(out, a.Name())
	}
	return out
}

// ImprovementAnalyzer returns the analyzer called name.
func ImprovementAnalyzer(name string) (Improvement, bool) {
	for _, a := range ImprovementAnalyzers() {
		if a.Name() == name {
			return a, true
		}
	}
	return nil, false
}

// inScope returns the model's workloads the scope covers, sorted by key.
func inScope(scope Scope, m *Model) []*Workload {
	var out []*Workload
	for k, w := range m.Workloads {
		if len(scope.Namespaces) > 0 && !slices.Contains(scope.Namespaces, k.Namespace) {
			continue
		}
		if scope.Workloads != nil && !scope.Workloads[k] {
			continue
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

// template returns a workload's declared containers and replicas.
func template(w *Workload) ([]containerSpec, int32) {
	var cs []containerSpec
	switch {
	case w.Deployment != nil:
		for _, c := range w.Deployment.Template {
			cs = append(cs, containerSpec{Name: c.Name, CPURequest: c.CPURequestMillicores, MemRequest: c.MemoryRequestBytes, MemLimit: c.MemoryLimitBytes, HasReadiness: c.Readiness != nil})
		}
		return cs, w.Deployment.Replicas
	case w.State != nil:
		for _, c := range w.State.Template {
			cs = append(cs, containerSpec{Name: c.Name, CPURequest: c.CPURequestMillicores, MemRequest: c.MemoryRequestBytes, MemLimit: c.MemoryLimitBytes, HasReadiness: c.Readiness != nil})
		}
		return cs, w.State.Replicas
	}
	return nil, 0
}

type containerSpec struct {
	Name                             string
	CPURequest, MemRequest, MemLimit int64
	HasReadiness                     bool
}

func workloadRef(k ObjectKey) tendv1.WorkloadRef {
	return tendv1.WorkloadRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
}

// ItemIntent turns a recommendation into the propose call that makes it,
// false for a report or an action the run does not propose.
func ItemIntent(it tendv1.RunItem, fingerprint, agent string) (Intent, bool) {
	common := wire.Common{Summary: it.Message, Rationale: evidenceText(it.Evidence), Risk: "Low", Fingerprint: fingerprint, Agent: agent}
	wl := wire.WorkloadArgs{Namespace: it.Workload.Namespace, Kind: it.Workload.Kind, Name: it.Workload.Name}
	switch it.Action {
	case "SetResources":
		args := &wire.SetResourcesArgs{WorkloadArgs: wl, Container: it.Container, Common: common, Requests: map[string]string{}}
		if v := it.After.CPURequestMillicores; v > 0 {
			args.Requests["cpu"] = resource.NewMilliQuantity(v, resource.DecimalSI).String()
		}
		if v := it.After.MemoryRequestBytes; v > 0 {
			args.Requests["memory"] = resource.NewQuantity(v, resource.BinarySI).String()
		}
		if v := it.After.MemoryLimitBytes; v > 0 {
			args.Limits = map[string]string{"memory": resource.NewQuantity(v, resource.BinarySI).String()}
		}
		return Intent{SetResources: args}, true
	case "SetAutoscaler":
		args := &wire.SetAutoscalerArgs{Namespace: it.Workload.Namespace, Name: it.Workload.Name, Common: common}
		if it.After.MinReplicas != it.Before.MinReplicas {
			args.MinReplicas = &it.After.MinReplicas
		}
		if it.After.MaxReplicas != it.Before.MaxReplicas {
			args.MaxReplicas = &it.After.MaxReplicas
		}
		return Intent{SetAutoscaler: args}, true
	case "ScaleWorkload":
		return Intent{ScaleWorkload: &wire.ScaleWorkloadArgs{WorkloadArgs: wl, Replicas: &it.After.Replicas, Common: common}}, true
	}
	return Intent{}, false
}

// evidenceText is the evidence in words, for a proposal's rationale.
func evidenceText(e *tendv1.UsageEvidence) string {
	if e == nil {
		return ""
	}
	return fmt.Sprintf("Usage from %s over %s: %d samples; CPU p%d %dm, peak %dm; memory peak %s.",
		e.Source, e.Window.Duration, e.Samples, e.CPUPercentile, e.CPUPercentileMillicores, e.CPUPeakMillicores,
		resource.NewQuantity(e.MemoryPeakBytes, resource.BinarySI).String())
}

// intentsOf converts recommendations to intents: the changes as propose
// calls, the rest as findings.
func intentsOf(name string, items []tendv1.RunItem) []Intent {
	var out []Intent
	for _, it := range items {
		if in, ok := ItemIntent(it, "", name); ok && it.Outcome == tendv1.ItemPlanned {
			in.Runbook = name
			out = append(out, in)
			continue
		}
		out = append(out, Intent{Runbook: name, Finding: &Finding{
			Kind: it.Workload.Kind, Namespace: it.Workload.Namespace, Name: it.Workload.Name,
			Fault: it.Message, Advice: adviceOf(it),
			Fingerprint: fmt.Sprintf("%s/%s/%s/%s/%s", name, it.Workload.Namespace, it.Workload.Name, it.Container, it.Outcome),
		}})
	}
	return out
}

func adviceOf(it tendv1.RunItem) string {
	switch it.Outcome {
	case tendv1.ItemNotEnoughData:
		return "Keep collecting usage; the next run decides once the history is long enough."
	default:
		return "Review the workload; the run changes nothing for this."
	}
}

// ItemProposer proposes a run's recommended changes through the MCP
// server's propose tools, as the improvement agent.
type ItemProposer struct {
	Tools proposer
	// Agent is the name given in the proposals, "improvement" when empty.
	Agent string
}

// NewItemProposer returns an ItemProposer calling tools.
func NewItemProposer(tools *ToolClient, agent string) *ItemProposer {
	return &ItemProposer{Tools: tools, Agent: agent}
}

// ProposeItem calls the propose tool of the item's action with its after
// values, its evidence and fingerprint.
func (p *ItemProposer) ProposeItem(ctx context.Context, it tendv1.RunItem, fingerprint string, notAfter time.Time) (wire.ProposeResult, error) {
	agent := p.Agent
	if agent == "" {
		agent = "improvement"
	}
	in, ok := ItemIntent(it, fingerprint, agent)
	if !ok {
		return wire.ProposeResult{}, fmt.Errorf("agents: %s is not a change a run proposes", it.Action)
	}
	tool, args, _ := in.Call()
	if !notAfter.IsZero() {
		left := int64(time.Until(notAfter).Seconds())
		if left < 1 {
			return wire.ProposeResult{}, fmt.Errorf("agents: the window for %s/%s closed at %s", it.Workload.Namespace, it.Workload.Name, notAfter.UTC().Format(time.RFC3339))
		}
		args.CommonArgs().ExpiresInSeconds = left
	}
	return p.Tools.Propose(ctx, tool, args)
}
