package agents

import (
	"context"
	"time"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/mcp/wire"
)

// Runbook is a maintenance rule driven by the telemetry stream: it judges
// the agent's model of the cluster and returns the proposals (or findings)
// it now wants. Evaluate is called after every delivery and on a tick, so
// it must be a pure function of the model and now: the same model yields
// the same intents, and the agent drops repeats by fingerprint.
//
// A runbook decides on typed facts and general rules (declared ports,
// probes, exit codes and reasons, node conditions, revision history),
// never on names, message text or values specific to one cluster.
type Runbook interface {
	Name() string
	Evaluate(m *Model, now time.Time) []Intent
}

// Analyzer is an improvement agent's rule, driven by a schedule rather than
// by telemetry: an ImprovementSchedule runs it over a scope and a window of
// history, and its intents are batched and canaried. (The improvement
// issue implements them.)
type Analyzer interface {
	Name() string
	Analyze(ctx context.Context, scope Scope, m *Model, now time.Time) ([]Intent, error)
}

// Scope is what one analyzer run may look at and propose for.
type Scope struct {
	// Namespaces are the namespaces in scope; all when empty.
	Namespaces []string
	// Window is how far back the run looks.
	Window time.Duration
	// Workloads, when not nil, are the only workloads in scope (the
	// schedule's label selector, resolved by the caller).
	Workloads map[ObjectKey]bool
	// History is the workloads' usage; analyzers that need it report
	// "not enough data" without it.
	History History
	// Autoscaling is the HPAs' history; the autoscaler-bounds analyzer
	// reports "not enough data" without it.
	Autoscaling AutoscalerHistory
	// Rightsizing are the schedule's rightsizing parameters.
	Rightsizing tendv1.RightsizingParams
}

// Planner decides what to propose with a language model: given the model
// and the runbooks' view of a problem, it plans read and propose tool calls.
// Its proposals go through the same tools and gate as a runbook's.
// agents/planner's Adapter implements it: it makes its proposals itself,
// through the propose tools as the agent, and returns the intents it left
// to the agent (none).
//
// The agent runs a planner beside its judgements, so it passes a nil m:
// the problem carries what the model holds about its object.
type Planner interface {
	Plan(ctx context.Context, m *Model, problem Problem) ([]Intent, error)
}

// Problem is what a planner is asked about: an object the runbooks found
// unhealthy, with the telemetry that shows it.
type Problem struct {
	// ID names the incident: the same problem has the same ID. The
	// planner's transcript and proposals carry it.
	ID       string
	Object   ObjectKey
	Summary  string
	Evidence []wire.TelemetryRef
	// Telemetry is the last state the model holds of the object and of
	// what it runs (a workload's pods, a node's pods): untrusted data.
	Telemetry []Telemetry
}
