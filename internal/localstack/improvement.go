package localstack

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/components"
	"github.com/tendops/tend/usage"
)

// startImprovement runs the ImprovementSchedule and ImprovementRun
// controllers with the manager. A run's analysis reads the telemetry and
// the usage history with the controller's bus identity; its proposals go
// through the MCP server as the agent's service account, named
// "improvement", and the gate decides them like any other.
func (s *Stack) startImprovement(ctx context.Context, opts Options, mgr ctrl.Manager) error {
	js, err := s.connect(ctx, bus.ComponentController)
	if err != nil {
		return err
	}
	var src usage.Source
	if opts.UsagePrometheus != "" {
		if src, err = usage.NewPrometheus(opts.UsagePrometheus); err != nil {
			return err
		}
	}
	io := components.ImprovementOptions{
		MCPURL: s.MCPURL, Token: serviceAccountToken(s.Client, SystemNamespace, AgentAccount),
		// Its proposals are made as the agent's service account.
		ProposerUsername: serviceAccountUser(AgentAccount),
		JS:               js, Cluster: opts.ClusterName, Usage: src, Now: opts.ImprovementNow,
	}
	if s.notifier != nil {
		io.Notifier = s.notifier
	}
	closeTools, err := components.AddImprovement(mgr, io)
	if err != nil {
		return err
	}
	s.cleanup = append(s.cleanup, closeTools)
	return nil
}
