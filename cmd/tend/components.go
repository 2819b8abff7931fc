package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/components"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/usage"
)

// natsFlags are how a server component reaches NATS: the URL, and its
// credentials and TLS material from files (a mounted Secret in a cluster),
// never from a flag's value.
type natsFlags struct {
	url          string
	auth         bus.Auth
	passwordFile string
}

func (n *natsFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&n.url, "nats-url", "", "NATS server with JetStream (required)")
	f.StringVar(&n.auth.CredsFile, "nats-creds", "", "file with the component's NATS credentials (user JWT and nkey seed)")
	f.StringVar(&n.auth.NKeySeedFile, "nats-nkey", "", "file with the component's nkey seed")
	f.StringVar(&n.auth.CAFile, "nats-ca", "", "CA certificate that signs the NATS server's (turns TLS on)")
	f.StringVar(&n.auth.CertFile, "nats-cert", "", "client certificate for mutual TLS")
	f.StringVar(&n.auth.KeyFile, "nats-key", "", "client key for mutual TLS")
	f.StringVar(&n.auth.User, "nats-user", "", "NATS user name, for servers with password users (the chart's bundled NATS); the password comes from --nats-password-file")
	f.StringVar(&n.passwordFile, "nats-password-file", "", "file with the --nats-user's password")
}

// given reports whether any credential or TLS file was given.
func (n *natsFlags) given() bool {
	return n.auth.CredsFile != "" || n.auth.NKeySeedFile != "" || n.auth.User != "" || n.passwordFile != "" ||
		n.auth.CAFile != "" || n.auth.CertFile != "" || n.auth.KeyFile != ""
}

func (n *natsFlags) validate() error {
	if n.url == "" {
		return errors.New("--nats-url is required")
	}
	if (n.auth.User == "") != (n.passwordFile == "") {
		return errors.New("--nats-user and --nats-password-file go together")
	}
	for flag, path := range map[string]string{"--nats-creds": n.auth.CredsFile, "--nats-nkey": n.auth.NKeySeedFile,
		"--nats-ca": n.auth.CAFile, "--nats-cert": n.auth.CertFile, "--nats-key": n.auth.KeyFile, "--nats-password-file": n.passwordFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	if n.passwordFile != "" {
		b, err := os.ReadFile(n.passwordFile)
		if err != nil {
			return fmt.Errorf("--nats-password-file: %w", err)
		}
		if n.auth.Password = strings.TrimSpace(string(b)); n.auth.Password == "" {
			return fmt.Errorf("--nats-password-file %s is empty", n.passwordFile)
		}
	}
	_, err := n.auth.Options()
	return err
}

// connect connects as component c, and keeps reconnecting for as long as
// the process runs.
//
// A server that does not answer yet (NATS starting beside tend, as the
// chart installs them together) is waited for, trying again with a growing
// delay and saying so; a server that refuses the credentials is an error at
// once.
func (n *natsFlags) connect(ctx context.Context, c bus.Component) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := n.auth.Options()
	if err != nil {
		return nil, nil, err
	}
	log := logr.FromContextOrDiscard(ctx)
	if log.GetSink() == nil {
		log = ctrl.Log
	}
	var (
		nc *nats.Conn
		js jetstream.JetStream
	)
	err = waitUntilUp(ctx, log, "NATS at "+n.url, func() (err error) {
		nc, js, err = bus.Connect(ctx, n.url, "tend-"+string(c), opts...)
		return err
	}, func(err error) bool { return errors.Is(err, nats.ErrNoServers) })
	return nc, js, err
}

// waitUntilUp calls try until it succeeds, while the server it needs is
// not up yet (notUp says which errors mean that; nil: any), logging each
// wait and trying again with a growing delay up to 30s. Any other error,
// or ctx ending, ends the wait.
func waitUntilUp(ctx context.Context, log logr.Logger, what string, try func() error, notUp func(error) bool) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := try()
		if err == nil || notUp != nil && !notUp(err) {
			return err
		}
		log.Info("Waiting for "+what, "error", err.Error(), "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before %s answered: %w", what, err)
		case <-time.After(delay):
		}
	}
}

// serveFlags are a server component's endpoints and leader election.
type serveFlags struct {
	metricsAddr, healthAddr string
	pprofAddr               string
	leaderElect             bool
	development             bool
	podName, podUID         string
}

func (s *serveFlags) bind(cmd *cobra.Command, leaderHelp string) {
	f := cmd.Flags()
	f.StringVar(&s.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0: off)")
	f.StringVar(&s.healthAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0: off)")
	f.StringVar(&s.pprofAddr, "pprof-bind-address", "0", pprofHelp)
	f.BoolVar(&s.leaderElect, "leader-elect", true, leaderHelp)
	f.BoolVar(&s.development, "log-development", false, "human-readable logs instead of JSON")
}

// componentGCPercent is the garbage collector's target for tend's
// long-running components (sensor, controller, agent, MCP server) when
// GOGC is not set: the heap may grow to 1.5 times what is live between
// collections, where Go's default lets it double. They hold caches of the
// cluster and are idle most of the time, so memory is worth more to them
// than the CPU of collecting more often: at 1,000 nodes it saves the
// sensor, controller and agent about 60 MiB together for a few
// thousandths of a core (docs/performance.md). GOGC, when set, wins;
// GOMEMLIMIT works beside either.
const componentGCPercent = 50

// collectSooner sets componentGCPercent unless GOGC is set.
func collectSooner() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(componentGCPercent)
	}
}

// pprofHelp explains --pprof-bind-address.
const pprofHelp = "address of Go's profiles, /debug/pprof/ (0: off). They show what the process holds in memory: bind them to loopback, e.g. 127.0.0.1:6060, and reach them with kubectl port-forward"

// componentOptions are what every server component shares.
type componentOptions struct {
	kube            kubeOptions
	nats            natsFlags
	serve           serveFlags
	cluster         string
	systemNamespace string
}

func (o *componentOptions) bind(cmd *cobra.Command, leaderHelp string) {
	o.kube.bind(cmd, false)
	o.nats.bind(cmd)
	o.serve.bind(cmd, leaderHelp)
	f := cmd.Flags()
	f.StringVar(&o.cluster, "cluster", "local", "cluster name on the bus")
	f.StringVar(&o.systemNamespace, "system-namespace", localstack.SystemNamespace, "tend's namespace: leases, gate state, proposals for cluster-scoped targets")
	f.StringVar(&o.serve.podName, "pod-name", "", "the pod this runs in (the downward API's metadata.name): with --pod-uid, the leader's pod owns the Lease, which then goes with the component's last pod")
	f.StringVar(&o.serve.podUID, "pod-uid", "", "the UID of --pod-name (metadata.uid)")
}

func (o *componentOptions) validate() error {
	if strings.TrimSpace(o.cluster) == "" || strings.TrimSpace(o.systemNamespace) == "" {
		return errors.New("--cluster and --system-namespace must not be empty")
	}
	return o.nats.validate()
}

// controllerOptions are the flags of `tend controller`.
type controllerOptions struct {
	componentOptions
	auditKey       string
	shimSigningKey string
	notifyURLFile  string
	stableWindow   time.Duration
	verifyTimeout  time.Duration
	// Improvement runs: proposed through the MCP server with the token.
	mcpURL          string
	tokenFile       string
	usagePrometheus string
}

func newControllerCommand() *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller --nats-url URL --audit-key FILE",
		Short: "Run the controller manager: the gate, proposals, approvals and policies",
		Long: `Run tend's controller manager, as its Deployment does in a cluster: the gate and its
GatePolicies, the proposal controller that decides, applies, verifies and undoes, the approval
controller, revision history, repeat counting and finding Events. It writes the audit chain
and sends the runtime shims their node actions. With --mcp-url it also runs the scheduled
improvement runs (ImprovementSchedule, ImprovementRun): their changes are proposed through the
MCP server with the token in --token-file (in a pod, its own service account's, which needs the
verb propose), and the gate decides them like any other proposal.

The identity on the API server is the pod's service account (in a cluster) or the kubeconfig's;
on NATS it is the controller component's (--nats-creds or --nats-nkey, files from a Secret).
With --leader-elect (the default) one replica acts at a time, elected with the Lease
tend-controller in the system namespace; a replica that stops releases it, and a reconcile
cut short is resumed by the next leader without applying twice.

/healthz and /readyz answer on --health-probe-bind-address, /metrics on
--metrics-bind-address. SIGTERM stops it gracefully: reconciles in flight finish first.`,
		Example: `  tend controller --nats-url tls://nats.tend-system:4222 --nats-creds /etc/tend/nats/controller.creds \
    --nats-ca /etc/tend/nats/ca.crt --audit-key /etc/tend/audit/key --cluster prod`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if o.auditKey == "" {
				return errors.New("--audit-key is required: the controller signs every audit record with it")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(cmd.Context(), o)
		},
	}
	o.bind(cmd, "elect one acting replica with the Lease tend-controller")
	f := cmd.Flags()
	f.StringVar(&o.auditKey, "audit-key", "", "file with the ed25519 key that signs the audit chain (required)")
	f.StringVar(&o.shimSigningKey, "shim-signing-key", "", "file with the nkey seed that signs node actions for the runtime shims (without it node actions are refused)")
	f.StringVar(&o.notifyURLFile, "notify-url-file", "", "file with a Slack-compatible webhook URL told when a proposal awaits approval, fails or is rolled back")
	f.DurationVar(&o.stableWindow, "stable-window", 0, "how long an applied change must stay healthy before it counts as verified (0: the default)")
	f.DurationVar(&o.verifyTimeout, "verify-timeout", 0, "how long verification may take before the change is undone (0: the default)")
	f.StringVar(&o.mcpURL, "mcp-url", "", "tend's MCP server, e.g. http://tend-mcp.tend-system:8090/mcp: improvement runs propose through it (empty: no improvement runs)")
	f.StringVar(&o.tokenFile, "token-file", defaultTokenFile, "with --mcp-url, the file with the token improvement runs propose with, read again for every session (it rotates)")
	f.StringVar(&o.usagePrometheus, "usage-prometheus", "", "with --mcp-url, a Prometheus HTTP API URL improvement runs read usage history from (default: the TELEMETRY stream)")
	return cmd
}

func runController(ctx context.Context, o *controllerOptions) error {
	collectSooner()
	log := zap.New(zap.UseDevMode(o.serve.development))
	ctrl.SetLogger(log)
	cfg, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	key, err := bus.ReadAuditKey(o.auditKey)
	if err != nil {
		return err
	}
	var signer nkeys.KeyPair
	if o.shimSigningKey != "" {
		seed, err := os.ReadFile(o.shimSigningKey)
		if err != nil {
			return fmt.Errorf("--shim-signing-key: %w", err)
		}
		if signer, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(seed)))); err != nil {
			return fmt.Errorf("--shim-signing-key %s: %w", o.shimSigningKey, err)
		}
	}
	var notifyURL string
	if o.notifyURLFile != "" {
		b, err := os.ReadFile(o.notifyURLFile)
		if err != nil {
			return fmt.Errorf("--notify-url-file: %w", err)
		}
		notifyURL = strings.TrimSpace(string(b))
	}
	nc, js, err := o.nats.connect(ctx, bus.ComponentController)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{}); err != nil {
		return err
	}
	ctl, err := components.NewController(ctx, components.ControllerOptions{
		Config:          cfg,
		Scheme:          localstack.Scheme(),
		SystemNamespace: o.systemNamespace,
		Cluster:         o.cluster,
		JS:              js,
		AuditKey:        key,
		Proposal:        controllers.ProposalOptions{StableWindow: o.stableWindow, VerifyTimeout: o.verifyTimeout},
		NotifyURL:       notifyURL,
		ShimSigner:      signer,
		MetricsAddr:     o.serve.metricsAddr,
		HealthAddr:      o.serve.healthAddr,
		PprofAddr:       o.serve.pprofAddr,
		LeaderElection:  o.serve.leaderElect,
		Pod:             components.Pod{Name: o.serve.podName, UID: types.UID(o.serve.podUID)},
		Logger:          log,
	})
	if err != nil {
		return err
	}
	if o.mcpURL != "" {
		closeTools, err := o.addImprovement(ctx, cfg, js, ctl)
		if err != nil {
			return err
		}
		defer closeTools()
	}
	log.Info("Starting the controller manager", "cluster", o.cluster, "systemNamespace", o.systemNamespace, "leaderElection", o.serve.leaderElect, "improvementRuns", o.mcpURL != "")
	return ctl.Manager.Start(ctx)
}

// addImprovement runs the improvement controllers with the controller
// manager. Their proposer is whoever the API server says the token is,
// asked once at start, so a run adopts only that user's proposals.
func (o *controllerOptions) addImprovement(ctx context.Context, cfg *rest.Config, js jetstream.JetStream, ctl *components.Controller) (func(), error) {
	token := tokenFile(o.tokenFile)
	tok, err := token(ctx)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w (the token improvement runs propose with: a pod's own service account token, or one written with kubectl create token)", err)
	}
	as := rest.AnonymousClientConfig(cfg)
	as.BearerToken = tok
	c, err := client.New(as, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		return nil, err
	}
	self, err := mcp.Self(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("--token-file: the API server does not accept the token: %w", err)
	}
	var src usage.Source
	if o.usagePrometheus != "" {
		if src, err = usage.NewPrometheus(o.usagePrometheus); err != nil {
			return nil, err
		}
	}
	return components.AddImprovement(ctl.Manager, components.ImprovementOptions{
		MCPURL: o.mcpURL, Token: token, ProposerUsername: self.Username,
		JS: js, Cluster: o.cluster, Usage: src, Notifier: ctl.Notifier,
	})
}

// sensorOptions are the flags of `tend sensor`.
type sensorOptions struct {
	componentOptions
}

func newSensorCommand() *cobra.Command {
	o := &sensorOptions{}
	cmd := &cobra.Command{
		Use:   "sensor --nats-url URL",
		Short: "Run the sensor: publish what the cluster's objects and metrics show as telemetry",
		Long: `Run tend's sensor, as its Deployment does in a cluster. It watches pods, nodes, workloads,
jobs, autoscalers, events and metrics.k8s.io, and publishes what it sees as telemetry on the
TELEMETRY stream, rate-limited per object. It changes nothing in the cluster; on NATS it may
publish telemetry and nothing else (the sensor component's permissions).

With --leader-elect (the default) one replica publishes at a time, elected with the Lease
tend-sensor in the system namespace, so telemetry is not doubled. /healthz and /readyz answer
on --health-probe-bind-address, /metrics on --metrics-bind-address.`,
		Example: `  tend sensor --nats-url tls://nats.tend-system:4222 --nats-creds /etc/tend/nats/sensor.creds \
    --nats-ca /etc/tend/nats/ca.crt --cluster prod`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSensor(cmd.Context(), o)
		},
	}
	o.bind(cmd, "elect one publishing replica with the Lease tend-sensor")
	return cmd
}

func runSensor(ctx context.Context, o *sensorOptions) error {
	collectSooner()
	log := zap.New(zap.UseDevMode(o.serve.development))
	ctrl.SetLogger(log)
	cfg, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	nc, js, err := o.nats.connect(ctx, bus.ComponentSensor)
	if err != nil {
		return err
	}
	defer nc.Close()
	mgr, err := components.NewSensor(components.SensorOptions{
		Config:          cfg,
		Scheme:          localstack.Scheme(),
		SystemNamespace: o.systemNamespace,
		Cluster:         o.cluster,
		JS:              js,
		MetricsAddr:     o.serve.metricsAddr,
		HealthAddr:      o.serve.healthAddr,
		PprofAddr:       o.serve.pprofAddr,
		LeaderElection:  o.serve.leaderElect,
		Pod:             components.Pod{Name: o.serve.podName, UID: types.UID(o.serve.podUID)},
		Logger:          log,
	})
	if err != nil {
		return err
	}
	log.Info("Starting the sensor", "cluster", o.cluster, "leaderElection", o.serve.leaderElect)
	return mgr.Start(ctx)
}

// agentOptions are the flags of `tend agent`.
type agentOptions struct {
	nats      natsFlags
	serve     serveFlags
	cluster   string
	mcpURL    string
	tokenFile string
	shares    int
	brain     planner.Brain
}

// tokenFile is a token source that reads path again for every use, as a
// mounted service account token rotates.
func tokenFile(path string) agents.TokenSource {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// defaultTokenFile is where a pod's service account token is mounted.
const defaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

func newAgentCommand() *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent --mcp-url URL --nats-url URL",
		Short: "Run the maintenance agent: read telemetry, propose through the MCP server",
		Long: `Run tend's maintenance agent, as its Deployment does in a cluster. It consumes the TELEMETRY
stream through its own durable consumers (--shares of them, each pinned to one running
replica, so replicas share the work, one object on one agent at a time; a new one starts
from each object's current state, not the stream's history), judges the cluster with the
runbooks and, with an LLM brain, the planner, and proposes through the MCP server
with its service account's token. It never writes to the cluster itself, and needs no
Kubernetes access of its own beyond that token. Until the MCP server answers, the agent
waits for it, not ready, trying again with a growing delay (up to 30s) and logging why.

--brain and the --llm-* flags are those of tend up and tend eval run (docs/agents.md); the
model's key comes from a file or the environment, never a flag. /healthz and /readyz answer on
--health-probe-bind-address, /metrics on --metrics-bind-address. SIGTERM stops it: messages
already received are handled first.`,
		Example: `  tend agent --mcp-url http://tend-mcp.tend-system:8090/mcp --nats-url tls://nats.tend-system:4222 \
    --nats-creds /etc/tend/nats/agent.creds --nats-ca /etc/tend/nats/ca.crt --cluster prod
  # with a model: hybrid by default once an endpoint is set
  tend agent ... --llm-base-url https://llm.internal/v1 --llm-model qwen3 --llm-api-key-file /etc/tend/llm/key`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if strings.TrimSpace(o.cluster) == "" {
				return errors.New("--cluster must not be empty")
			}
			if o.mcpURL == "" {
				return errors.New("--mcp-url is required: the agent reads and proposes only through the MCP server")
			}
			if _, err := os.Stat(o.tokenFile); err != nil {
				return fmt.Errorf("--token-file: %w (the agent's service account token: mounted in a pod, or written with kubectl create token)", err)
			}
			if o.shares < 1 || o.shares > bus.DefaultTelemetryPartitions {
				return fmt.Errorf("--shares must be from 1 to %d (the telemetry stream's partitions), got %d", bus.DefaultTelemetryPartitions, o.shares)
			}
			if err := o.nats.validate(); err != nil {
				return err
			}
			return o.brain.Resolve()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), o)
		},
	}
	o.nats.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&o.serve.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0: off)")
	f.StringVar(&o.serve.healthAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0: off)")
	f.StringVar(&o.serve.pprofAddr, "pprof-bind-address", "0", pprofHelp)
	f.BoolVar(&o.serve.development, "log-development", false, "human-readable logs instead of JSON")
	f.StringVar(&o.cluster, "cluster", "local", "cluster name on the bus")
	f.StringVar(&o.mcpURL, "mcp-url", "", "tend's MCP server, e.g. http://tend-mcp.tend-system:8090/mcp (required)")
	f.StringVar(&o.tokenFile, "token-file", defaultTokenFile, "file with the agent's service account token, read again for every request (it rotates)")
	f.IntVar(&o.shares, "shares", 1, "how many agent replicas can share the telemetry, each taking its share of the objects; the others stand by. Set it to the replicas that run: every share adds latency per message")
	o.brain.BindFlags(f)
	return cmd
}

func runAgent(ctx context.Context, o *agentOptions) error {
	collectSooner()
	log := zap.New(zap.UseDevMode(o.serve.development))
	ctrl.SetLogger(log)
	ctx = logr.NewContext(ctx, log)
	stopTracing, err := o.brain.StartTracing(ctx)
	if err != nil {
		return err
	}
	defer stopTracing()
	nc, js, err := o.nats.connect(ctx, bus.ComponentAgent)
	if err != nil {
		return err
	}
	defer nc.Close()
	token := tokenFile(o.tokenFile)
	reg := prometheus.NewRegistry()
	if err := bus.Register(reg); err != nil {
		return err
	}
	if err := planner.Register(reg); err != nil {
		return err
	}
	var ready atomic.Bool
	stopServers, err := serveProbes(o.serve, reg, &ready)
	if err != nil {
		return err
	}
	defer stopServers()
	// The MCP server may start after the agent (a rollout, a restart):
	// wait for it, not ready meanwhile, rather than exit.
	var a *components.Agent
	if err := waitUntilUp(ctx, log, "the MCP server at "+o.mcpURL, func() (err error) {
		a, err = components.NewAgent(ctx, components.AgentOptions{MCPURL: o.mcpURL, Token: token, JS: js, Cluster: o.cluster, Shares: o.shares})
		return err
	}, nil); err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	if o.brain.NeedsPlanner() {
		p, tools, err := components.NewPlanner(ctx, o.brain, components.PlannerOptions{
			MCPURL: o.mcpURL, Token: token, Transcripts: bus.NewTranscriptPublisher(js, o.cluster),
		})
		if err != nil {
			return err
		}
		defer func() { _ = tools.Close() }()
		if err := a.Agent.SetBrain(o.brain.Name, p); err != nil {
			return err
		}
	} else if err := a.Agent.SetBrain(o.brain.Name, nil); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- a.Consumer.Start(ctx) }()
	go func() { errc <- a.Agent.Start(ctx) }()
	ready.Store(true)
	log.Info("Starting the maintenance agent", "cluster", o.cluster, "brain", a.Agent.CurrentBrain(), "mcp", o.mcpURL)
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// serveProbes serves /healthz and /readyz (ready once ready is true) and
// /metrics from reg, on the addresses given ("0" turns one off).
func serveProbes(s serveFlags, reg *prometheus.Registry, ready *atomic.Bool) (stop func(), err error) {
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return serveMuxes([]addrMux{{s.healthAddr, health}, {s.metricsAddr, metrics}, {s.pprofAddr, profilesMux()}})
}

// serveProfiles serves Go's profiles on addr ("0" or "": nowhere).
func serveProfiles(addr string) (stop func(), err error) {
	return serveMuxes([]addrMux{{addr, profilesMux()}})
}

// profilesMux serves Go's profiles at /debug/pprof/.
func profilesMux() *http.ServeMux {
	profiles := http.NewServeMux()
	profiles.HandleFunc("/debug/pprof/", pprof.Index)
	profiles.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	profiles.HandleFunc("/debug/pprof/profile", pprof.Profile)
	profiles.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	profiles.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return profiles
}

// addrMux is a mux and the address to serve it on.
type addrMux struct {
	addr string
	mux  *http.ServeMux
}

// serveMuxes serves each mux on its address, skipping "0" and "", and
// returns a stop that shuts them all down; on an error none is left
// running.
func serveMuxes(muxes []addrMux) (stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, hs := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hs.Shutdown(sctx)
			cancel()
		}
	}
	for _, m := range muxes {
		if m.addr == "0" || m.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", m.addr)
		if err != nil {
			stop()
			return nil, fmt.Errorf("failed to listen on %s: %w", m.addr, err)
		}
		hs := &http.Server{Handler: m.mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, hs)
		go func() { _ = hs.Serve(ln) }()
	}
	return stop, nil
}
