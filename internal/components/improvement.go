package components

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/usage"
)

// ImprovementOptions are what scheduled improvement runs need: the
// ImprovementSchedule and ImprovementRun controllers, whose analyses read
// the usage history and whose changes go through the MCP server as one
// proposer, decided by the gate like any other proposal.
type ImprovementOptions struct {
	// MCPURL and Token are the MCP server and the proposer's token.
	MCPURL string
	Token  agents.TokenSource
	// ProposerUsername is the username the API server gives Token: a run
	// adopts, after a restart, only proposals this user made.
	ProposerUsername string
	// JS reads the telemetry (bus.ComponentController's connection) and
	// Cluster names the cluster on the bus.
	JS      jetstream.JetStream
	Cluster string
	// Usage is the usage history; the TELEMETRY stream when nil.
	Usage usage.Source
	// Now is the clock of schedules and runs; time.Now when nil.
	Now func() time.Time
	// Notifier, if set, is sent every finished run's summary.
	Notifier *controllers.Notifier
}

// AddImprovement registers the improvement controllers with mgr. The MCP
// session is opened on the first proposal, and again after one fails, so
// the controllers start whether or not the MCP server is up yet. The
// returned function closes the session.
func AddImprovement(mgr ctrl.Manager, opts ImprovementOptions) (closeFn func(), err error) {
	switch {
	case opts.MCPURL == "" || opts.Token == nil:
		return nil, errors.New("components: improvement runs need an MCP server and a token to propose with")
	case opts.JS == nil || opts.Cluster == "":
		return nil, errors.New("components: improvement runs need a NATS connection and a cluster name")
	}
	src := opts.Usage
	if src == nil {
		src = &usage.JetStream{JS: opts.JS, Cluster: opts.Cluster}
	}
	if err := (&controllers.ImprovementScheduleReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-improvement-controller"),
		Analyzers: agents.ImprovementAnalyzerNames(), Now: opts.Now,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the schedule controller: %w", err)
	}
	tools := &lazyTools{url: opts.MCPURL, token: opts.Token}
	improver := &agents.Improver{JS: opts.JS, Cluster: opts.Cluster, Usage: src}
	rr := &controllers.ImprovementRunReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-improvement-controller"),
		Analyzer: improver,
		// The soak's throttling signal comes from the same usage history.
		Usage:            improver,
		Proposer:         &agents.ItemProposer{Tools: tools, Agent: "improvement"},
		ProposerUsername: opts.ProposerUsername,
		Now:              opts.Now,
		Cluster:          opts.Cluster,
	}
	if opts.Notifier != nil {
		rr.Notifier = opts.Notifier
	}
	if err := rr.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failed to set up the run controller: %w", err)
	}
	return tools.close, nil
}

// lazyTools is an MCP session opened when first needed and opened again
// after a call fails.
type lazyTools struct {
	url   string
	token agents.TokenSource

	mu sync.Mutex
	c  *agents.ToolClient
}

func (l *lazyTools) Propose(ctx context.Context, tool string, args wire.ProposeArgs) (wire.ProposeResult, error) {
	l.mu.Lock()
	if l.c == nil {
		c, err := agents.DialTools(ctx, l.url, "tend-improvement-agent", l.token)
		if err != nil {
			l.mu.Unlock()
			return wire.ProposeResult{}, err
		}
		l.c = c
	}
	c := l.c
	l.mu.Unlock()
	res, err := c.Propose(ctx, tool, args)
	if err != nil {
		// A session the server forgot (a restart) is opened again next time.
		l.mu.Lock()
		if l.c == c {
			_ = c.Close()
			l.c = nil
		}
		l.mu.Unlock()
	}
	return res, err
}

func (l *lazyTools) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		_ = l.c.Close()
		l.c = nil
	}
}
