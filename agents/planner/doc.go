// Package planner is tend's LLM planner: for an incident no runbook acted
// on, a model reads the cluster through tend's MCP tools and proposes
// changes through them, or gives a diagnosis. It runs a tool-calling loop on
// langchaingo's llms.Model (OpenAI-compatible and Anthropic providers); the
// tools are the ones the MCP server lists for the agent's own identity,
// called over MCP as that identity.
//
// It must never act: the only effect a model can have is a Proposal the
// policy gate decides, made through a propose tool the MCP server checked.
// It must never treat text from the cluster as instructions: tool results
// and telemetry reach the model inside delimiters, under a system prompt
// that says delimited text is data. And it must never run unbounded: a step
// cap, token and cost budgets per incident and per hour, and timeouts stop
// it, and every stop is recorded in the transcript.
package planner
