package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tmc/langchaingo/llms"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// Planner handles one incident: it diagnoses it and proposes changes
// through tend's MCP tools. The agents runtime calls it for what no runbook
// claims.
//
// The agent runtime declares its own agents.Planner, on its problems;
// Adapter turns one into the other.
type Planner interface {
	Plan(ctx context.Context, in Incident) (Result, error)
}

// Incident is what the planner is asked about.
type Incident struct {
	// ID names the incident; proposals made for it carry it.
	ID string `json:"id"`
	// Summary is tend's own description of the incident.
	Summary string `json:"summary"`
	// Kind, Namespace and Name identify the object the incident is about.
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Findings are what tend's runbooks found that none acted on.
	Findings []string `json:"findings,omitempty"`
	// Evidence is the telemetry about the incident, as delivered: data,
	// shown to the model inside delimiters.
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Evidence is one telemetry message.
type Evidence struct {
	Subject  string          `json:"subject"`
	Sequence uint64          `json:"sequence,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// Outcome is how a planning run ended.
type Outcome string

// Outcomes of a run.
const (
	// OutcomeFinished: the model answered without calling a tool.
	OutcomeFinished Outcome = "Finished"
	// OutcomeStepCap: the run reached Limits.MaxSteps.
	OutcomeStepCap Outcome = "StepCap"
	// OutcomeBudget: a token or cost budget was spent.
	OutcomeBudget Outcome = "BudgetExhausted"
	// OutcomeTimeout: the incident's time ran out.
	OutcomeTimeout Outcome = "Timeout"
	// OutcomeModelError: the model could not be reached or answered
	// something unusable.
	OutcomeModelError Outcome = "ModelError"
)

// Result is what a run produced and what it cost.
type Result struct {
	Incident string  `json:"incident"`
	Outcome  Outcome `json:"outcome"`
	// Reason says why the run stopped, for an outcome other than Finished.
	Reason string `json:"reason,omitempty"`
	// Diagnosis is the model's final answer.
	Diagnosis string `json:"diagnosis,omitempty"`
	// Proposals are the proposals made (or found open) through propose
	// tools, with the gate's decisions.
	Proposals []wire.ProposeResult `json:"proposals,omitempty"`
	Steps     int                  `json:"steps"`
	Usage     Usage                `json:"usage"`
	// Transcript is every model answer and tool call of the run.
	Transcript []Entry `json:"transcript"`
	// Stored is where the transcript was kept on the bus, when it was.
	Stored *bus.TranscriptRef `json:"stored,omitempty"`
}

// TranscriptRecorder keeps transcripts. *bus.TranscriptPublisher
// implements it.
type TranscriptRecorder interface {
	PublishTranscript(ctx context.Context, agent, incident string, transcript []byte) (bus.TranscriptRef, error)
}

var _ TranscriptRecorder = (*bus.TranscriptPublisher)(nil)

// Entry is one line of a transcript.
type Entry struct {
	Step int       `json:"step"`
	At   time.Time `json:"at"`
	// Kind is "model" (an answer), "tool" (a call and its result) or
	// "planner" (what the planner decided: a refused call, a stop).
	Kind      string `json:"kind"`
	Tool      string `json:"tool,omitempty"`
	Arguments string `json:"arguments,omitempty"`
	Text      string `json:"text,omitempty"`
	Error     bool   `json:"error,omitempty"`
	Usage     *Usage `json:"usage,omitempty"`
}

// LLM is the planner on a langchaingo model.
type LLM struct {
	// Model is the language model: an OpenAI-compatible or Anthropic
	// client (see NewModel).
	Model llms.Model
	// Tools is the MCP server, as the agent's own identity.
	Tools Tools
	// Agent is the agent's name; proposals record it with the incident.
	Agent  string
	Limits Limits
	Prices Prices
	// Ledger keeps the hourly totals; shared by every incident. A nil
	// Ledger keeps none, and hourly limits never stop a run.
	Ledger *Ledger
	// CallTimeout bounds one model call (60s when zero); IncidentTimeout a
	// whole run (5m when zero).
	CallTimeout, IncidentTimeout time.Duration
	// Transcripts, if set, keeps every run's transcript, whatever its
	// outcome; its proposals name the incident, which names the transcript.
	Transcripts TranscriptRecorder
	// Tracer, if set, records a span per run, model call and tool call,
	// with OpenTelemetry's gen_ai semantic conventions. Provider and
	// ModelName name the model in them.
	Tracer              trace.Tracer
	Provider, ModelName string
}

var _ Planner = (*LLM)(nil)

// maxRepeats is how often the model may make the same call in a run; a
// further one is refused, and the model told so.
const maxRepeats = 2

// maxToolText bounds a tool result as the model sees it.
const maxToolText = 32 << 10

// Plan runs the tool-calling loop for one incident until the model answers
// without a tool call, or a limit stops it. A stop is a result, not an
// error: the error is for a run that could not start or a model that could
// not be reached.
func (p *LLM) Plan(ctx context.Context, in Incident) (Result, error) {
	ctx, span := p.tracer().Start(ctx, "invoke_agent "+p.Agent, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.name", p.Agent),
		attribute.String("gen_ai.conversation.id", in.ID),
		attribute.String("gen_ai.provider.name", p.Provider),
		attribute.String("gen_ai.request.model", p.ModelName),
	))
	res, err := p.plan(ctx, in)
	p.observe(res, err)
	span.SetAttributes(
		attribute.String("tend.planner.outcome", string(res.Outcome)),
		attribute.Int("tend.planner.steps", res.Steps),
		attribute.Int("gen_ai.usage.input_tokens", res.Usage.InputTokens),
		attribute.Int("gen_ai.usage.output_tokens", res.Usage.OutputTokens),
	)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else if res.Outcome != OutcomeFinished {
		span.SetStatus(codes.Error, res.Reason)
	}
	defer span.End()
	if p.Transcripts == nil {
		return res, err
	}
	// Kept even when the run's time ran out: a reviewer needs it most then.
	raw, merr := json.Marshal(res)
	if merr != nil {
		return res, errors.Join(err, fmt.Errorf("failed to encode the transcript: %w", merr))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ref, perr := p.Transcripts.PublishTranscript(sctx, p.Agent, in.ID, raw)
	if perr != nil {
		return res, errors.Join(err, fmt.Errorf("failed to keep the transcript: %w", perr))
	}
	res.Stored = &ref
	return res, err
}

func (p *LLM) plan(ctx context.Context, in Incident) (Result, error) {
	timeout := p.IncidentTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := run{p: p, res: Result{Incident: in.ID}, nonce: newNonce(), seen: map[string]int{}}
	tools, err := p.Tools.ListTools(ctx)
	if err != nil {
		return r.res, fmt.Errorf("failed to list the agent's tools: %w", err)
	}
	r.tools = map[string]Tool{}
	var defs []llms.Tool
	for _, t := range tools {
		var params map[string]any
		if err := json.Unmarshal(t.InputSchema, &params); err != nil {
			return r.res, fmt.Errorf("failed to read the schema of %s: %w", t.Name, err)
		}
		r.tools[t.Name] = t
		defs = append(defs, llms.Tool{Type: "function", Function: &llms.FunctionDefinition{Name: t.Name, Description: t.Description, Parameters: params}})
	}
	messages := []llms.MessageContent{
		llms.TextParts(llms.ChatMessageTypeSystem, fmt.Sprintf(systemPrompt, r.nonce)),
		llms.TextParts(llms.ChatMessageTypeHuman, r.describe(in)),
	}
	for {
		if lim := p.Limits.MaxSteps; lim > 0 && r.res.Steps >= lim {
			r.stop(OutcomeStepCap, fmt.Sprintf("reached the cap of %d steps", lim))
			return r.res, nil
		}
		var hour Usage
		if p.Ledger != nil {
			hour = p.Ledger.LastHour()
		}
		if why := p.Limits.exhausted(r.res.Usage, hour); why != "" {
			r.stop(OutcomeBudget, "spent "+why)
			return r.res, nil
		}
		r.res.Steps++
		resp, err := r.generate(ctx, messages, defs, p.Limits.maxOutput(r.res.Usage, hour))
		if err != nil {
			if ctx.Err() != nil {
				r.stop(OutcomeTimeout, "the incident's time ran out")
				return r.res, nil
			}
			r.stop(OutcomeModelError, err.Error())
			return r.res, fmt.Errorf("failed to ask the model: %w", err)
		}
		text, calls := r.read(resp)
		if len(calls) == 0 {
			r.res.Outcome, r.res.Diagnosis = OutcomeFinished, strings.TrimSpace(text)
			return r.res, nil
		}
		for _, call := range calls {
			// One tool call per message, each followed by its result: the
			// Anthropic client sends only a message's first part, and the
			// OpenAI-compatible one accepts either.
			answer := r.call(ctx, in, call)
			if !json.Valid([]byte(call.FunctionCall.Arguments)) || !isObject(call.FunctionCall.Arguments) {
				call.FunctionCall.Arguments = "{}"
			}
			messages = append(messages,
				llms.MessageContent{Role: llms.ChatMessageTypeAI, Parts: []llms.ContentPart{call}},
				llms.MessageContent{Role: llms.ChatMessageTypeTool, Parts: []llms.ContentPart{llms.ToolCallResponse{
					ToolCallID: call.ID, Name: call.FunctionCall.Name, Content: answer,
				}}},
			)
		}
	}
}

func (p *LLM) tracer() trace.Tracer {
	if p.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return p.Tracer
}

// run is the state of one Plan.
type run struct {
	p     *LLM
	res   Result
	nonce string
	tools map[string]Tool
	seen  map[string]int
}

func (r *run) log(e Entry) {
	e.Step, e.At = r.res.Steps, time.Now().UTC()
	r.res.Transcript = append(r.res.Transcript, e)
}

func (r *run) stop(o Outcome, reason string) {
	r.res.Outcome, r.res.Reason = o, reason
	r.log(Entry{Kind: "planner", Text: "Stopped: " + reason})
}

// describe is the incident as the model reads it: tend's own words, then
// the evidence as data.
func (r *run) describe(in Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Incident %s: %s\n", in.ID, in.Summary)
	if in.Kind != "" {
		fmt.Fprintf(&b, "Object: %s %s/%s\n", in.Kind, in.Namespace, in.Name)
	}
	if len(in.Findings) > 0 {
		b.WriteString("tend's runbooks found, and none acted on:\n")
		for _, f := range in.Findings {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	if len(in.Evidence) > 0 {
		ev, _ := json.Marshal(in.Evidence)
		b.WriteString("Telemetry about the incident (cite subjects and sequences as evidence in proposals):\n")
		b.WriteString(data(r.nonce, "telemetry", clip(string(ev))))
	}
	return b.String()
}

// generate makes one model call within the call timeout and records what
// it cost.
func (r *run) generate(ctx context.Context, messages []llms.MessageContent, defs []llms.Tool, maxOut int) (*llms.ContentResponse, error) {
	timeout := r.p.CallTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cctx, span := r.p.tracer().Start(cctx, "chat "+r.p.ModelName, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", r.p.Provider),
		attribute.String("gen_ai.request.model", r.p.ModelName),
		attribute.Int("gen_ai.request.max_tokens", maxOut),
		attribute.String("gen_ai.conversation.id", r.res.Incident),
	))
	defer span.End()
	resp, err := r.p.Model.GenerateContent(cctx, messages, llms.WithTools(defs), llms.WithMaxTokens(maxOut))
	if err == nil && (resp == nil || len(resp.Choices) == 0) {
		err = errors.New("the model returned no choice")
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	u := usageOf(resp)
	var finish []string
	for _, c := range resp.Choices {
		if c != nil && c.StopReason != "" && !slices.Contains(finish, c.StopReason) {
			finish = append(finish, c.StopReason)
		}
	}
	span.SetAttributes(
		attribute.Int("gen_ai.usage.input_tokens", u.InputTokens),
		attribute.Int("gen_ai.usage.output_tokens", u.OutputTokens),
		attribute.StringSlice("gen_ai.response.finish_reasons", finish),
	)
	u.CostUSD = r.p.Prices.cost(u.InputTokens, u.OutputTokens)
	r.res.Usage.add(u)
	if r.p.Ledger != nil {
		r.p.Ledger.record(u)
	}
	r.log(Entry{Kind: "model", Text: clip(joinText(resp)), Usage: &u})
	return resp, nil
}

// read collects the text and the tool calls of every choice: the Anthropic
// client returns each content block as its own choice.
func (r *run) read(resp *llms.ContentResponse) (string, []llms.ToolCall) {
	var calls []llms.ToolCall
	for _, c := range resp.Choices {
		if c == nil {
			continue
		}
		for _, tc := range c.ToolCalls {
			if tc.FunctionCall == nil {
				tc.FunctionCall = &llms.FunctionCall{}
			}
			if tc.ID == "" {
				tc.ID = fmt.Sprintf("call_%d_%d", r.res.Steps, len(calls))
			}
			tc.Type = "function"
			calls = append(calls, tc)
		}
		if c.FuncCall != nil && len(c.ToolCalls) == 0 {
			calls = append(calls, llms.ToolCall{ID: fmt.Sprintf("call_%d_%d", r.res.Steps, len(calls)), Type: "function", FunctionCall: c.FuncCall})
		}
	}
	return joinText(resp), calls
}

func joinText(resp *llms.ContentResponse) string {
	var parts []string
	for _, c := range resp.Choices {
		if c != nil && strings.TrimSpace(c.Content) != "" {
			parts = append(parts, c.Content)
		}
	}
	return strings.Join(parts, "\n")
}

// call makes one tool call the model asked for and returns what the model
// is told. A call the planner refuses (an unknown tool, arguments that are
// not a JSON object, a repeat) is answered with an error the model can act
// on; so is the server's refusal.
func (r *run) call(ctx context.Context, in Incident, call llms.ToolCall) string {
	name, args := call.FunctionCall.Name, strings.TrimSpace(call.FunctionCall.Arguments)
	refuse := func(msg string) string {
		r.log(Entry{Kind: "planner", Tool: name, Arguments: clip(args), Text: msg, Error: true})
		return "Error: " + msg
	}
	if _, ok := r.tools[name]; !ok {
		names := make([]string, 0, len(r.tools))
		for n := range r.tools {
			names = append(names, n)
		}
		slices.Sort(names)
		return refuse(fmt.Sprintf("there is no tool %q. The tools are: %s.", wire.Clip(name), strings.Join(names, ", ")))
	}
	if args == "" {
		args = "{}"
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(args), &obj); err != nil {
		return refuse(fmt.Sprintf("the arguments of %s are not a JSON object (%s); send one object with the fields of its input schema.", name, wire.Clip(err.Error())))
	}
	if strings.HasPrefix(name, "propose_") {
		// The proposal names the incident whose transcript explains it.
		obj["agent"] = agentField(r.p.Agent, in.ID)
	}
	raw, _ := json.Marshal(obj)
	key := name + " " + string(raw)
	if r.seen[key] >= maxRepeats {
		return refuse(fmt.Sprintf("you already made this exact call %d times; its answer will not change. Use what you learned, try something else, or finish with a diagnosis.", r.seen[key]))
	}
	r.seen[key]++
	ctx, span := r.p.tracer().Start(ctx, "execute_tool "+name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", name),
		attribute.String("gen_ai.tool.call.id", call.ID),
		attribute.String("gen_ai.tool.type", "function"),
	))
	defer span.End()
	out, err := r.p.Tools.CallTool(ctx, name, raw)
	if err != nil || out.IsError {
		span.SetStatus(codes.Error, "the tool refused or failed")
	}
	if err != nil {
		r.log(Entry{Kind: "tool", Tool: name, Arguments: clip(string(raw)), Text: err.Error(), Error: true})
		return "Error: the call did not reach the tool: " + wire.Clip(err.Error())
	}
	r.log(Entry{Kind: "tool", Tool: name, Arguments: clip(string(raw)), Text: clip(out.Text), Error: out.IsError})
	if !out.IsError && strings.HasPrefix(name, "propose_") {
		var pr wire.ProposeResult
		if json.Unmarshal(out.Structured, &pr) == nil && pr.Name != "" {
			r.res.Proposals = append(r.res.Proposals, pr)
		}
	}
	prefix := "Result"
	if out.IsError {
		prefix = "Error (the tool refused; correct the call or do something else)"
	}
	return prefix + ":\n" + data(r.nonce, name, clip(out.Text))
}

// agentField is what a planner's proposals record as their agent: the
// agent and the incident, within the field's 253 bytes.
func agentField(agent, incident string) string {
	s := agent + " incident " + incident
	if len(s) > 253 {
		s = strings.ToValidUTF8(s[:253], "")
	}
	return s
}

func isObject(s string) bool {
	var m map[string]any
	return json.Unmarshal([]byte(s), &m) == nil
}

func clip(s string) string {
	if len(s) > maxToolText {
		return s[:maxToolText] + "\n[truncated]"
	}
	return s
}

// usageOf reads the tokens a response used. Providers name them
// differently, and the Anthropic client repeats the message's totals on
// every choice.
func usageOf(resp *llms.ContentResponse) Usage {
	var u Usage
	for _, c := range resp.Choices {
		if c == nil {
			continue
		}
		in := firstInt(c.GenerationInfo, "PromptTokens", "InputTokens")
		out := firstInt(c.GenerationInfo, "CompletionTokens", "OutputTokens")
		u.InputTokens, u.OutputTokens = max(u.InputTokens, in), max(u.OutputTokens, out)
	}
	return u
}

func firstInt(info map[string]any, keys ...string) int {
	for _, k := range keys {
		switch v := info[k].(type) {
		case int:
			return v
		case int32:
			return int(v)
		case int64:
			return int(v)
		case float64:
			return int(v)
		}
	}
	return 0
}
