package planner

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The planner's metrics: what the model cost and how its runs ended.
var (
	tokensTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_llm_tokens_total",
		Help: "Tokens the planner's model used, by provider, model and type (input or output).",
	}, []string{"provider", "model", "type"})
	costTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_llm_cost_usd_total",
		Help: "What the planner's model calls cost, in US dollars at the configured prices.",
	}, []string{"provider", "model"})
	runsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_planner_runs_total",
		Help: "Planner runs by outcome (finished, or the limit that stopped it), and runs that failed to start or reach the model (error).",
	}, []string{"outcome"})
	stepsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tend_planner_steps_total",
		Help: "Model calls the planner made over all its runs.",
	})
)

// Register registers the planner's metrics with r; registering them again
// is not an error.
func Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{tokensTotal, costTotal, runsTotal, stepsTotal} {
		if err := r.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("failed to register planner metrics: %w", err)
		}
	}
	return nil
}

// observe counts one run's usage and outcome.
func (p *LLM) observe(res Result, err error) {
	provider, model := p.Provider, p.ModelName
	tokensTotal.WithLabelValues(provider, model, "input").Add(float64(res.Usage.InputTokens))
	tokensTotal.WithLabelValues(provider, model, "output").Add(float64(res.Usage.OutputTokens))
	costTotal.WithLabelValues(provider, model).Add(res.Usage.CostUSD)
	stepsTotal.Add(float64(res.Steps))
	outcome := string(res.Outcome)
	if err != nil || outcome == "" {
		outcome = "error"
	}
	runsTotal.WithLabelValues(outcome).Inc()
}
