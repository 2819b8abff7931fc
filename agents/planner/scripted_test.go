package planner_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// reply is one answer of a scripted model: text, tool calls, or both.
type reply struct {
	text  string
	calls []scriptedCall
	// tokens is what the answer reports it used (in and out); 100 and 20
	// when zero.
	in, out int
}

type scriptedCall struct {
	name string
	// args is sent as the call's arguments verbatim: it may be malformed.
	args string
}

func callOf(name string, args any) scriptedCall {
	if s, ok := args.(string); ok {
		return scriptedCall{name: name, args: s}
	}
	b, _ := json.Marshal(args)
	return scriptedCall{name: name, args: string(b)}
}

// seen is a request as the scripted server received it, the same for both
// providers: the system prompt, every message as text, the tools offered.
type seen struct {
	System   string
	Messages []string
	Tools    []string
}

// last is the text of the request's last message.
func (s seen) last() string { return s.Messages[len(s.Messages)-1] }

// script decides the model's answer to the n-th request (from 0).
type script func(n int, req seen) reply

// model is a scripted model server, speaking either the OpenAI chat
// completions API or Anthropic's messages API, for langchaingo's real
// clients to talk to over loopback HTTP.
type model struct {
	provider string
	url      string

	mu       sync.Mutex
	requests []seen
}

func (m *model) seen() []seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seen(nil), m.requests...)
}

func startModel(t *testing.T, provider string, s script) *model {
	t.Helper()
	m := &model{provider: provider}
	mux := http.NewServeMux()
	handle := func(decode func([]byte) (seen, error), encode func(reply) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			req, err := decode(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m.mu.Lock()
			n := len(m.requests)
			m.requests = append(m.requests, req)
			m.mu.Unlock()
			rep := s(n, req)
			if rep.in == 0 {
				rep.in, rep.out = 100, 20
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(encode(rep))
		}
	}
	mux.HandleFunc("POST /v1/chat/completions", handle(decodeOpenAI, encodeOpenAI))
	mux.HandleFunc("POST /v1/messages", handle(decodeAnthropic, encodeAnthropic))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	m.url = ts.URL + "/v1"
	return m
}

func decodeOpenAI(body []byte) (seen, error) {
	var req struct {
		Messages []struct {
			Role      string          `json:"role"`
			Content   json.RawMessage `json:"content"`
			ToolCalls []struct {
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return seen{}, err
	}
	var out seen
	for _, msg := range req.Messages {
		text := contentText(msg.Content)
		for _, tc := range msg.ToolCalls {
			text += fmt.Sprintf("[call %s %s]", tc.Function.Name, tc.Function.Arguments)
		}
		if msg.Role == "system" {
			out.System += text
			continue
		}
		out.Messages = append(out.Messages, msg.Role+": "+text)
	}
	for _, tool := range req.Tools {
		out.Tools = append(out.Tools, tool.Function.Name)
	}
	return out, nil
}

// contentText reads a content that is a string or a list of parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type    string          `json:"type"`
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
		Name    string          `json:"name"`
		Input   json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		switch p.Type {
		case "tool_use":
			fmt.Fprintf(&b, "[call %s %s]", p.Name, p.Input)
		case "tool_result":
			b.WriteString(contentText(p.Content))
		default:
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func encodeOpenAI(r reply) any {
	type fn struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	type call struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function fn     `json:"function"`
	}
	var calls []call
	for i, c := range r.calls {
		calls = append(calls, call{ID: fmt.Sprintf("call_%d", i), Type: "function", Function: fn{c.name, c.args}})
	}
	finish := "stop"
	if len(calls) > 0 {
		finish = "tool_calls"
	}
	return map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
		"choices": []any{map[string]any{"index": 0, "finish_reason": finish,
			"message": map[string]any{"role": "assistant", "content": r.text, "tool_calls": calls}}},
		"usage": map[string]any{"prompt_tokens": r.in, "completion_tokens": r.out, "total_tokens": r.in + r.out},
	}
}

func decodeAnthropic(body []byte) (seen, error) {
	var req struct {
		System   json.RawMessage `json:"system"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return seen{}, err
	}
	out := seen{System: contentText(req.System)}
	for _, msg := range req.Messages {
		out.Messages = append(out.Messages, msg.Role+": "+contentText(msg.Content))
	}
	for _, tool := range req.Tools {
		out.Tools = append(out.Tools, tool.Name)
	}
	return out, nil
}

func encodeAnthropic(r reply) any {
	var content []any
	if r.text != "" {
		content = append(content, map[string]any{"type": "text", "text": r.text})
	}
	for i, c := range r.calls {
		var input any = map[string]any{}
		// Anthropic sends tool input as an object; a malformed one cannot
		// be sent, so it arrives as a string value.
		if json.Unmarshal([]byte(c.args), &input) != nil {
			input = c.args
		}
		content = append(content, map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", i), "name": c.name, "input": input})
	}
	stop := "end_turn"
	if len(r.calls) > 0 {
		stop = "tool_use"
	}
	return map[string]any{
		"id": "msg_1", "type": "message", "role": "assistant", "model": "scripted", "content": content,
		"stop_reason": stop, "usage": map[string]any{"input_tokens": r.in, "output_tokens": r.out},
	}
}
