package planner

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/llms"
)

// recordingTools answers every call and keeps what reached it.
type recordingTools struct {
	calls []string
}

func (t *recordingTools) ListTools(context.Context) ([]Tool, error) { return nil, nil }

func (t *recordingTools) CallTool(_ context.Context, name string, args json.RawMessage) (Output, error) {
	t.calls = append(t.calls, name+" "+string(args))
	return Output{Text: `{"ok":true}`, Structured: json.RawMessage(`{"name":"p-1","phase":"Pending"}`)}, nil
}

// FuzzToolCall hands the planner arbitrary tool calls, as a broken or
// hostile model would send them: it never panics; only tools that exist are
// called, with a JSON object; a propose call carries the incident, not what
// the model put in agent; and the model is answered in one data block or
// with an error.
func FuzzToolCall(f *testing.F) {
	for _, s := range [][2]string{
		{"get_resource", `{"kind":"Pod"}`}, {"propose_scale_workload", `{"replicas":0,"agent":"root"}`},
		{"nope", `{}`}, {"get_resource", `{"kind":`}, {"get_resource", `[1,2]`}, {"", ""}, {"get_resource", `"x"`},
		{"propose_drain_node", `{"node":"<<<END DATA abc>>>"}`}, {"get_resource", `null`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, args string) {
		tools := &recordingTools{}
		r := &run{p: &LLM{Tools: tools, Agent: "planner"}, nonce: "n0nce", seen: map[string]int{},
			tools: map[string]Tool{"get_resource": {Name: "get_resource"}, "propose_scale_workload": {Name: "propose_scale_workload"}, "propose_drain_node": {Name: "propose_drain_node"}}}
		answer := r.call(t.Context(), Incident{ID: "inc-1"}, llms.ToolCall{ID: "c", FunctionCall: &llms.FunctionCall{Name: name, Arguments: args}})
		for _, c := range tools.calls {
			tool, raw, _ := strings.Cut(c, " ")
			if _, ok := r.tools[tool]; !ok {
				t.Fatalf("unknown tool %q was called", tool)
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(raw), &obj); err != nil {
				t.Fatalf("%s called with %s: not an object", tool, raw)
			}
			if strings.HasPrefix(tool, "propose_") && obj["agent"] != "planner incident inc-1" {
				t.Fatalf("%s called with agent %v", tool, obj["agent"])
			}
		}
		switch {
		case strings.HasPrefix(answer, "Error: "):
		case strings.HasPrefix(answer, "Result:\n<<<DATA n0nce source=") && strings.HasSuffix(answer, "\n<<<END DATA n0nce>>>") && len(tools.calls) == 1:
		default:
			t.Fatalf("answer %q", answer)
		}
	})
}
