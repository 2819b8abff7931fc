package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/localstack"
)

// stackOptions are the flags shared by `tend up` and `tend demo`.
type stackOptions struct {
	kubeconfig    string
	natsURL       string
	binDir        string
	workDir       string
	nodes         int
	mcpAddr       string
	verifyTimeout time.Duration
	stableWindow  time.Duration
	notifyURL     string
	metricsAddr   string
	alertsAddr    string
	shimNodes     []string
	verbosity     int
	// brain is the maintenance agent's brain and its planner's options.
	brain     planner.Brain
	usageProm string
	retention time.Duration
}

func (o *stackOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "attach to the cluster of this kubeconfig instead of starting a local kwok cluster")
	f.StringVar(&o.natsURL, "nats-url", "", "attach to this NATS server (JetStream enabled) instead of starting an embedded one")
	f.StringVar(&o.binDir, "bin-dir", defaultBinDir(), "directory with the binaries `make tools` builds")
	f.StringVar(&o.workDir, "work-dir", ".tend", "directory for the local cluster and the NATS store")
	f.IntVar(&o.nodes, "nodes", 3, "number of simulated nodes in the local cluster")
	f.StringVar(&o.mcpAddr, "mcp-addr", "127.0.0.1:8765", "address of the MCP server (streamable HTTP at /mcp)")
	f.DurationVar(&o.verifyTimeout, "verify-timeout", 3*time.Minute, "how long a change may take to verify before it is rolled back")
	f.DurationVar(&o.stableWindow, "stable-window", 15*time.Second, "how long a change must stay healthy, with no restarts, to count as verified")
	f.StringVar(&o.notifyURL, "notify-url", "", "webhook (Slack-compatible) to tell when a proposal awaits approval, fails or is rolled back")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve the components' Prometheus metrics (tend_bus_*, tend_notify_*, controller-runtime's) at http://ADDR/metrics")
	f.StringVar(&o.alertsAddr, "alertmanager-addr", "", "serve an Alertmanager webhook receiver at http://ADDR/alertmanager that publishes alerts as telemetry")
	f.StringSliceVar(&o.shimNodes, "shim-node", nil, "a node whose runtime shim (tend-shim) may connect to the embedded NATS server; its nkey seed is written to <work-dir>/nats-keys/shim-<node>.nk (repeatable)")
	f.IntVarP(&o.verbosity, "verbosity", "v", 0, "log verbosity of the components (0: info)")
	o.brain.BindFlags(f)
	f.DurationVar(&o.retention, "telemetry-retention", bus.DefaultTelemetryMaxAge, "how long the TELEMETRY stream keeps telemetry, and so how much usage history improvement runs can read (e.g. 168h for a week)")
	f.StringVar(&o.usageProm, "usage-prometheus", "", "read improvement runs' usage history from the Prometheus server at this URL instead of tend's own telemetry")
}

func (o *stackOptions) Validate() error {
	if o.nodes < 1 || o.nodes > 1000 {
		return fmt.Errorf("--nodes must be between 1 and 1000, not %d", o.nodes)
	}
	if o.retention != 0 && o.retention < time.Minute {
		return fmt.Errorf("--telemetry-retention must be at least a minute, not %s", o.retention)
	}
	if o.verifyTimeout <= o.stableWindow {
		return fmt.Errorf("--verify-timeout (%s) must be longer than --stable-window (%s)", o.verifyTimeout, o.stableWindow)
	}
	if len(o.shimNodes) > 0 && o.natsURL != "" {
		return errors.New("--shim-node gives shims identities on the embedded NATS server; with --nats-url, configure them on that server")
	}
	for _, n := range o.shimNodes {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return fmt.Errorf("--shim-node %q: not a node name: %s", n, strings.Join(errs, "; "))
		}
	}
	if o.notifyURL != "" {
		if _, err := controllers.NewNotifier(controllers.NotifierOptions{URL: o.notifyURL}); err != nil {
			return fmt.Errorf("--notify-url: %w", err)
		}
	}
	if err := o.brain.Resolve(); err != nil {
		return err
	}
	if o.kubeconfig == "" {
		if _, err := os.Stat(o.binDir); err != nil {
			return fmt.Errorf("--bin-dir %s: %w (run `make tools` first)", o.binDir, err)
		}
	}
	return nil
}

func (o *stackOptions) localstack(logger logr.Logger, progress func(string, ...any)) localstack.Options {
	return localstack.Options{
		Kubeconfig:         o.kubeconfig,
		NATSURL:            o.natsURL,
		BinDir:             o.binDir,
		WorkDir:            o.workDir,
		Nodes:              o.nodes,
		MCPAddr:            o.mcpAddr,
		Proposal:           controllers.ProposalOptions{VerifyTimeout: o.verifyTimeout, StableWindow: o.stableWindow},
		NotifyURL:          o.notifyURL,
		MetricsAddr:        o.metricsAddr,
		AlertmanagerAddr:   o.alertsAddr,
		ShimNodes:          o.shimNodes,
		UsagePrometheus:    o.usageProm,
		TelemetryRetention: o.retention,
		Brain:              o.brain,
		Progress:           progress,
		Logger:             logger,
	}
}

func newUpCommand() *cobra.Command {
	o := &stackOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the local stack in the foreground until Ctrl-C",
		Long: `Run tend's local stack in the foreground:

  - a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    built by 'make tools') through kwokctl's binary runtime, with simulated nodes;
  - an embedded NATS server with JetStream;
  - tend's CRDs, admission policy and default gate policies;
  - tend's sensor, proposal controller, gate, MCP server and maintenance agent, in-process.

It prints the kubeconfig path and the MCP URL. Ctrl-C stops everything, including
the control-plane processes. With --kubeconfig and --nats-url it attaches to an
existing cluster and NATS instead of starting them.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.bind(cmd)
	return cmd
}

func runUp(ctx context.Context, out io.Writer, o *stackOptions) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "» "+format+"\n", args...) }
	start := time.Now()
	logger := newLogger(o.verbosity)
	ctrl.SetLogger(logger)
	stop, err := o.brain.StartTracing(ctx)
	if err != nil {
		return err
	}
	defer stop()
	st, err := localstack.Start(ctx, o.localstack(logger, say))
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping")
		st.Stop()
		say("Stopped; no process left running")
	}()
	fmt.Fprintf(out, `
tend is up (%s).

  kubeconfig:  %s
  MCP server:  %s   (bearer token: a ServiceAccount or user token)
  agent brain: %s
  NATS:        %s
  runtime shims trust: %s   (tend-shim --controller-key)

  export KUBECONFIG=%s
  tend proposals list -A

Press Ctrl-C to stop.
`, time.Since(start).Round(100*time.Millisecond), st.Kubeconfig, st.MCPURL, o.brainLine(), st.NATSURL, st.ShimControllerKey, st.Kubeconfig)
	select {
	case <-ctx.Done():
		return nil
	case <-st.Done():
		if err := st.Err(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("components stopped: %w", err)
		}
		return nil
	}
}

// brainLine describes the agent's brain for people: its name, and for a
// brain with a planner the model (never the key).
func (o *stackOptions) brainLine() string {
	if !o.brain.NeedsPlanner() {
		return o.brain.Name
	}
	return o.brain.Name + " (" + o.brain.LLM.Model.String() + ")"
}
