package planner

import (
	"time"

	"github.com/spf13/pflag"
)

// Options is everything a planner is configured with, as `tend up`, the
// in-cluster agent and `tend eval run` take it.
type Options struct {
	Model  Config
	Limits Limits
	Prices Prices
	// CallTimeout and IncidentTimeout bound one model call and one
	// incident.
	CallTimeout, IncidentTimeout time.Duration
}

// BindFlags binds the planner's flags. There is no flag for the API key:
// it comes from $TEND_LLM_API_KEY or a file (--llm-api-key-file,
// $TEND_LLM_API_KEY_FILE), so it never shows in a process list or a shell
// history.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Model.Provider, "llm-provider", "", "model API: openai (any OpenAI-compatible endpoint: OpenAI, vLLM, LM Studio, Ollama's /v1) or anthropic (default $"+EnvProvider+", else openai)")
	fs.StringVar(&o.Model.BaseURL, "llm-base-url", "", "model endpoint, e.g. http://localhost:11434/v1 (default $"+EnvBaseURL+", else the provider's)")
	fs.StringVar(&o.Model.Model, "llm-model", "", "model name (default $"+EnvModel+")")
	fs.StringVar(&o.Model.KeyFile, "llm-api-key-file", "", "file holding the API key (default $"+EnvKeyFile+", else the key in $"+EnvKey+")")
	fs.IntVar(&o.Limits.MaxSteps, "llm-max-steps", 12, "model calls per incident")
	fs.IntVar(&o.Limits.TokensPerIncident, "llm-tokens-per-incident", 60000, "tokens per incident, input and output (0: no limit)")
	fs.Float64Var(&o.Limits.CostPerIncident, "llm-cost-per-incident", 0, "US dollars per incident (0: no limit)")
	fs.IntVar(&o.Limits.TokensPerHour, "llm-tokens-per-hour", 600000, "tokens per hour over every incident (0: no limit)")
	fs.Float64Var(&o.Limits.CostPerHour, "llm-cost-per-hour", 0, "US dollars per hour over every incident (0: no limit)")
	fs.IntVar(&o.Limits.MaxOutputTokens, "llm-max-output-tokens", 1024, "tokens of one model answer")
	fs.Float64Var(&o.Prices.InputPerMillion, "llm-input-price", 0, "US dollars per million input tokens, for the cost budgets and reports")
	fs.Float64Var(&o.Prices.OutputPerMillion, "llm-output-price", 0, "US dollars per million output tokens")
	fs.DurationVar(&o.CallTimeout, "llm-call-timeout", time.Minute, "bound of one model call")
	fs.DurationVar(&o.IncidentTimeout, "llm-incident-timeout", 5*time.Minute, "bound of one incident's planning")
}
