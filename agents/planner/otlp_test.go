package planner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
)

// noTools is an MCP server that offers the planner no tool: the run is one
// model call, which answers with a diagnosis.
type noTools struct{}

func (noTools) ListTools(context.Context) ([]planner.Tool, error) { return nil, nil }
func (noTools) CallTool(context.Context, string, json.RawMessage) (planner.Output, error) {
	return planner.Output{}, nil
}

// TestOTLPExport: with an OTLP endpoint, a planner run's spans reach an
// OTLP/HTTP collector, with the gen_ai attributes.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	spans := map[string]map[string]string{}
	var service string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := map[string]string{}
					for _, a := range s.Attributes {
						v := a.Value.GetStringValue()
						if _, ok := a.Value.GetValue().(*commonv1.AnyValue_IntValue); ok {
							v = fmt.Sprintf("int:%d", a.Value.GetIntValue())
						}
						attrs[a.Key] = v
					}
					spans[s.Name] = attrs
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(collector.Close)

	m := startModel(t, planner.ProviderOpenAI, func(int, seen) reply {
		return reply{text: "Nothing to change.", in: 321, out: 12}
	})
	b := planner.Brain{Name: agents.BrainHybrid, OTLPEndpoint: collector.URL,
		LLM: planner.Options{Model: planner.Config{Provider: planner.ProviderOpenAI, BaseURL: m.url, Model: "scripted"}, Limits: planner.Limits{MaxSteps: 3}}}
	if err := b.Resolve(); err != nil {
		t.Fatal(err)
	}
	stop, err := b.StartTracing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	llm, err := b.LLM.New(noTools{}, "maintenance")
	if err != nil {
		t.Fatal(err)
	}
	llm.Tracer = b.Tracer
	if _, err := llm.Plan(t.Context(), planner.Incident{ID: "inc-otlp", Summary: "web is unhealthy"}); err != nil {
		t.Fatal(err)
	}
	stop() // flushes

	mu.Lock()
	defer mu.Unlock()
	if service != "tend-agent" {
		t.Errorf("service.name %q", service)
	}
	agent, chat := spans["invoke_agent maintenance"], spans["chat scripted"]
	if agent == nil || chat == nil {
		t.Fatalf("spans received: %v", spans)
	}
	for k, want := range map[string]string{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "maintenance",
		"gen_ai.conversation.id": "inc-otlp", "gen_ai.provider.name": "openai", "gen_ai.request.model": "scripted"} {
		if agent[k] != want {
			t.Errorf("invoke_agent %s = %q, want %q", k, agent[k], want)
		}
	}
	if chat["gen_ai.operation.name"] != "chat" || chat["gen_ai.usage.input_tokens"] != "int:321" || chat["gen_ai.usage.output_tokens"] != "int:12" {
		t.Errorf("chat span attributes %v", chat)
	}
}
