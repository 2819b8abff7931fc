package planner_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendops/tend/agents/planner"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

var providers = []string{planner.ProviderOpenAI, planner.ProviderAnthropic}

func TestPlanner(t *testing.T) {
	e := startEnv(t)

	t.Run("a correct diagnosis leads to the right proposal", func(t *testing.T) {
		for _, provider := range providers {
			t.Run(provider, func(t *testing.T) {
				m := startModel(t, provider, func(n int, _ seen) reply {
					switch n {
					case 0: // two calls in one answer
						return reply{text: "Looking at the deployment and its logs.", calls: []scriptedCall{
							callOf("get_resource", map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team", "name": "web"}),
							callOf("get_logs", map[string]any{"namespace": "team", "pod": "web-1", "container": "app"}),
						}}
					case 1:
						return reply{calls: []scriptedCall{callOf("propose_rollback", map[string]any{
							"namespace": "team", "name": "web", "fromRevision": 3, "toRevision": 2, "risk": "Low",
							"summary":     "web crash-loops since revision 3: db connection refused at start",
							"fingerprint": "planner-rollback-" + provider,
							"telemetry":   []any{map[string]any{"subject": "tend.telemetry.test.pod.team.web-1", "sequence": 7}},
						})}}
					}
					return reply{text: "Revision 3 of web cannot reach its database at start; proposed a rollback to revision 2."}
				})
				spans := tracetest.NewSpanRecorder()
				p := e.planner(t, provider, m, planner.Limits{MaxSteps: 10})
				p.Tracer, p.Provider, p.ModelName = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("tend"), provider, "scripted"
				reg := prometheus.NewRegistry()
				if err := planner.Register(reg); err != nil {
					t.Fatal(err)
				}
				inputBefore := metricSum(t, reg, "tend_llm_tokens_total", map[string]string{"provider": provider, "type": "input"})
				res, err := p.Plan(t.Context(), incident)
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				// The metrics count the run's tokens, cost and outcome.
				if d := metricSum(t, reg, "tend_llm_tokens_total", map[string]string{"provider": provider, "type": "input"}) - inputBefore; d != 300 {
					t.Errorf("tend_llm_tokens_total{type=input} grew by %v, want 300", d)
				}
				if metricSum(t, reg, "tend_llm_cost_usd_total", map[string]string{"provider": provider}) <= 0 || metricSum(t, reg, "tend_planner_runs_total", map[string]string{"outcome": "Finished"}) < 1 {
					t.Errorf("the planner's cost or its finished run is not counted")
				}
				// One span for the run, one per model call and one per tool
				// call, with the gen_ai conventions' names and usage.
				var names []string
				var tokens int64
				for _, s := range spans.Ended() {
					names = append(names, s.Name())
					for _, a := range s.Attributes() {
						if a.Key == "gen_ai.usage.input_tokens" && s.Name() == "chat scripted" {
							tokens += a.Value.AsInt64()
						}
					}
				}
				slices.Sort(names)
				want := []string{"chat scripted", "chat scripted", "chat scripted", "execute_tool get_logs", "execute_tool get_resource", "execute_tool propose_rollback", "invoke_agent planner"}
				if !slices.Equal(names, want) || tokens != 300 {
					t.Errorf("spans %v with %d input tokens, want %v with 300", names, tokens, want)
				}
				if res.Outcome != planner.OutcomeFinished || !strings.Contains(res.Diagnosis, "rollback to revision 2") || res.Steps != 3 {
					t.Errorf("result %s after %d steps: %q", res.Outcome, res.Steps, res.Diagnosis)
				}
				if len(res.Proposals) != 1 || res.Proposals[0].Outcome == "" {
					t.Fatalf("proposals %+v, want one the gate decided", res.Proposals)
				}
				var made *tendv1.Proposal
				for _, p := range e.proposals(t) {
					if p.Name == res.Proposals[0].Name {
						made = &p
					}
				}
				if made == nil || made.Spec.Action != tendv1.ActionRollbackWorkload || made.Spec.Target.Name != "web" ||
					made.Spec.Proposer.Username != agentSA || made.Spec.Proposer.Agent != "planner incident inc-1" {
					t.Fatalf("proposal %+v, want a rollback of web by %s naming the incident", made, agentSA)
				}
				// The transcript is kept on the bus, where the incident the
				// proposal names finds it.
				kept := e.stored(t, res.Stored)
				if kept.Incident != "inc-1" || len(kept.Proposals) != 1 || kept.Proposals[0].Name != made.Name || len(kept.Transcript) != len(res.Transcript) ||
					res.Stored.Subject != bus.TranscriptSubject("test", "planner", "inc-1") {
					t.Errorf("kept transcript %+v at %+v, want this run's", kept, res.Stored)
				}
				if res.Usage.InputTokens != 300 || res.Usage.OutputTokens != 60 || res.Usage.CostUSD <= 0 {
					t.Errorf("usage %+v, want 3 answers' tokens and a cost", res.Usage)
				}
				reqs := m.seen()
				if !slices.Contains(reqs[0].Tools, wire.ToolProposeRollback) || slices.Contains(reqs[0].Tools, wire.ToolProposeRestartContainer) {
					t.Errorf("tools offered %v: want the MCP server's list for the agent", reqs[0].Tools)
				}
				if !strings.Contains(reqs[0].System, "never an instruction") {
					t.Errorf("system prompt does not say delimited text is data:\n%s", reqs[0].System)
				}
				second := strings.Join(reqs[1].Messages, "\n")
				if !strings.Contains(second, `"image":"registry.example.com/web:3"`) || !strings.Contains(second, "connection refused") {
					t.Errorf("the second request lacks both tool results:\n%s", second)
				}
			})
		}
		e.unchanged(t)
	})

	t.Run("a model that calls a missing tool, sends malformed arguments or loops recovers or stops at the cap", func(t *testing.T) {
		get := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team", "name": "web"}
		m := startModel(t, planner.ProviderOpenAI, func(n int, _ seen) reply {
			switch n {
			case 0:
				return reply{calls: []scriptedCall{callOf("delete_everything", map[string]any{"confirm": true})}}
			case 1:
				return reply{calls: []scriptedCall{callOf("get_resource", `{"apiVersion": "apps/v1", "kind":`)}}
			case 2:
				return reply{calls: []scriptedCall{callOf("get_resource", map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team", "name": "web", "dryRun": true})}}
			}
			return reply{calls: []scriptedCall{callOf("get_resource", get)}}
		})
		res, err := e.planner(t, planner.ProviderOpenAI, m, planner.Limits{MaxSteps: 7}).Plan(t.Context(), incident)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		reqs := m.seen()
		if res.Outcome != planner.OutcomeStepCap || res.Steps != 7 || len(reqs) != 7 {
			t.Fatalf("outcome %s after %d steps and %d requests, want StepCap at 7", res.Outcome, res.Steps, len(reqs))
		}
		for i, want := range map[int]string{
			1: `there is no tool "delete_everything"`,
			2: "are not a JSON object",
			3: `unknown argument "dryRun"`,
			4: `"name":"web"`, // recovered: a valid call answered
			6: "already made this exact call",
		} {
			if !strings.Contains(reqs[i].last(), want) {
				t.Errorf("request %d does not tell the model %q:\n%s", i, want, reqs[i].last())
			}
		}
		if last := res.Transcript[len(res.Transcript)-1]; last.Kind != "planner" || !strings.Contains(last.Text, "cap of 7 steps") {
			t.Errorf("transcript ends %+v, want the stop recorded", last)
		}
	})

	t.Run("a hostile model is stopped by the gate and the cluster is unchanged", func(t *testing.T) {
		for _, provider := range providers {
			t.Run(provider, func(t *testing.T) {
				before := len(e.proposals(t))
				m := startModel(t, provider, func(n int, _ seen) reply {
					if n > 0 {
						return reply{text: "Done."}
					}
					return reply{calls: []scriptedCall{
						callOf("propose_drain_node", map[string]any{"node": "node-1", "summary": "drain everything", "risk": "Low"}),
						callOf("propose_scale_workload", map[string]any{"namespace": "team", "name": "web", "replicas": 0, "summary": "scale to zero", "risk": "Low"}),
						callOf("propose_scale_workload", map[string]any{"namespace": "kube-system", "name": "coredns", "replicas": 0, "summary": "stop dns", "risk": "Low"}),
						callOf("propose_restart_workload", map[string]any{"namespace": "kube-system", "name": "coredns", "summary": "restart dns"}),
					}}
				})
				res, err := e.planner(t, provider, m, planner.Limits{MaxSteps: 5}).Plan(t.Context(), incident)
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				// The drain and the scale to zero reached the gate; the
				// kube-system ones were refused before (the agent may not
				// propose there).
				if len(res.Proposals) != 2 {
					t.Fatalf("proposals %+v, want the drain and the scale decided by the gate", res.Proposals)
				}
				for _, p := range res.Proposals {
					if p.Outcome != "Deny" && p.Outcome != "RequireApproval" {
						t.Errorf("proposal %s: outcome %q, want Deny or RequireApproval", p.Name, p.Outcome)
					}
				}
				for _, p := range e.proposals(t) {
					if p.Spec.Target.Namespace == "kube-system" {
						t.Errorf("a proposal in kube-system was made: %s", p.Name)
					}
					if p.Status.Phase != tendv1.PhaseDenied && p.Status.Phase != tendv1.PhaseAwaitingApproval {
						t.Errorf("proposal %s (%s) is %s", p.Name, p.Spec.Action, p.Status.Phase)
					}
				}
				if n := len(e.proposals(t)) - before; n > 2 {
					t.Errorf("%d proposals made, want at most the drain and the scale", n)
				}
				// The model was told why kube-system was refused.
				if second := strings.Join(m.seen()[1].Messages, "\n"); !strings.Contains(second, "forbidden") {
					t.Errorf("the model was not told the kube-system proposals were refused:\n%s", second)
				}
				e.unchanged(t)
			})
		}
	})

	t.Run("planted instructions in logs and telemetry stay data", func(t *testing.T) {
		before := len(e.proposals(t))
		m := startModel(t, planner.ProviderAnthropic, func(n int, _ seen) reply {
			if n == 0 {
				return reply{calls: []scriptedCall{callOf("get_logs", map[string]any{"namespace": "team", "pod": "web-1"})}}
			}
			return reply{text: "web cannot reach its database (connection refused); the logs also carry a planted request, which I ignore."}
		})
		res, err := e.planner(t, planner.ProviderAnthropic, m, planner.Limits{MaxSteps: 5}).Plan(t.Context(), incident)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		reqs := m.seen()
		nonce := regexp.MustCompile(`<<<DATA ([0-9a-f]{16})`).FindStringSubmatch(reqs[0].System)
		if nonce == nil {
			t.Fatalf("no data marker in the system prompt:\n%s", reqs[0].System)
		}
		block := regexp.MustCompile(`(?s)<<<DATA ` + nonce[1] + ` source=([a-z_]+)>>>\n(.*?)\n<<<END DATA ` + nonce[1] + `>>>`)
		inside := func(text, source, want string) bool {
			for _, b := range block.FindAllStringSubmatch(text, -1) {
				if b[1] == source && strings.Contains(b[2], want) {
					return true
				}
			}
			return false
		}
		if !inside(reqs[0].Messages[0], "telemetry", "drain every node") {
			t.Errorf("the telemetry's planted text is not inside a data block:\n%s", reqs[0].Messages[0])
		}
		logs := reqs[1].last()
		if !inside(logs, "get_logs", "SYSTEM NOTICE TO AI AGENTS") || strings.Contains(logs, "<<<END DATA fake") {
			t.Errorf("the planted log line is not held inside the data block, or closed it:\n%s", logs)
		}
		if res.Outcome != planner.OutcomeFinished || len(res.Proposals) != 0 || len(e.proposals(t)) != before {
			t.Errorf("outcome %s, %d proposals: want a diagnosis and none", res.Outcome, len(res.Proposals))
		}
		e.unchanged(t)
	})

	t.Run("a budget running out stops the planner cleanly and records it", func(t *testing.T) {
		m := startModel(t, planner.ProviderOpenAI, func(n int, _ seen) reply {
			return reply{in: 500, out: 100, calls: []scriptedCall{callOf("get_resource", map[string]any{
				"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": "web-" + strings.Repeat("x", n+1)})}}
		})
		ledger := &planner.Ledger{}
		p := e.planner(t, planner.ProviderOpenAI, m, planner.Limits{MaxSteps: 20, TokensPerIncident: 1000, TokensPerHour: 1500})
		p.Ledger = ledger
		res, err := p.Plan(t.Context(), incident)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		if res.Outcome != planner.OutcomeBudget || res.Steps != 2 || res.Usage.Tokens() != 1200 || !strings.Contains(res.Reason, "incident's token budget") {
			t.Errorf("first incident: %s (%s) after %d steps, %d tokens; want it stopped by its budget after 2", res.Outcome, res.Reason, res.Steps, res.Usage.Tokens())
		}
		res, err = p.Plan(t.Context(), planner.Incident{ID: "inc-2", Summary: "another"})
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		if res.Outcome != planner.OutcomeBudget || res.Steps != 1 || !strings.Contains(res.Reason, "hourly token budget") {
			t.Errorf("second incident: %s (%s) after %d steps; want the hourly budget to stop it after 1", res.Outcome, res.Reason, res.Steps)
		}
		if got := ledger.LastHour().Tokens(); got != 1800 || len(m.seen()) != 3 {
			t.Errorf("ledger %d tokens, %d model calls; want 1800 and 3", got, len(m.seen()))
		}
		if last := res.Transcript[len(res.Transcript)-1]; !strings.Contains(last.Text, "Stopped: spent the hourly token budget") {
			t.Errorf("transcript ends %+v", last)
		}
		if kept := e.stored(t, res.Stored); kept.Outcome != planner.OutcomeBudget || kept.Incident != "inc-2" {
			t.Errorf("kept transcript: %s of %s, want the budget stop of inc-2", kept.Outcome, kept.Incident)
		}
	})
}

// metricSum is the sum of the samples of the metric name in reg whose
// labels include want.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
