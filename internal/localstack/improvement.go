package localstack

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/usage"
)

// startImprovement runs the ImprovementSchedule and ImprovementRun
// controllers with the manager. A run's analysis reads the telemetry and
// the usage history with the controller's bus identity; its proposals go
// through the MCP server as the agent's service account, named
// "improvement", and the gate decides them like any other.
func (s *Stack) startImprovement(ctx context.Context, opts Options, mgr ctrl.Manager) error {
	tools, err := agents.DialTools(ctx, s.MCPURL, "tend-improvement-agent", serviceAccountToken(s.Client, SystemNamespace, AgentAccount))
	if err != nil {
		return err
	}
	s.cleanup = append(s.cleanup, func() { _ = tools.Close() })
	js, err := s.connect(ctx, bus.ComponentController)
	if err != nil {
		return err
	}
	var src usage.Source = &usage.JetStream{JS: js, Cluster: opts.ClusterName}
	if opts.UsagePrometheus != "" {
		if src, err = usage.NewPrometheus(opts.UsagePrometheus); err != nil {
			return err
		}
	}
	if err := (&controllers.ImprovementScheduleReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-improvement-controller"),
		Analyzers: agents.ImprovementAnalyzerNames(), Now: opts.ImprovementNow,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the schedule controller: %w", err)
	}
	improver := &agents.Improver{JS: js, Cluster: opts.ClusterName, Usage: src}
	rr := &controllers.ImprovementRunReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-improvement-controller"),
		Analyzer: improver,
		// The soak's throttling signal comes from the same usage history.
		Usage:    improver,
		Proposer: agents.NewItemProposer(tools, "improvement"),
		// Its proposals are made as the agent's service account.
		ProposerUsername: serviceAccountUser(AgentAccount),
		Now:              opts.ImprovementNow,
		Cluster:          opts.ClusterName,
	}
	if s.notifier != nil {
		rr.Notifier = s.notifier
	}
	if err := rr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the run controller: %w", err)
	}
	return nil
}
