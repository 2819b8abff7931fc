package localstack

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/components"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/policies"
)

// Options configure the local stack.
type Options struct {
	// Kubeconfig attaches to an existing cluster instead of starting one.
	Kubeconfig string
	// NATSURL attaches to an existing NATS server (with JetStream) instead
	// of starting an embedded one.
	NATSURL string
	// BinDir holds the tools `make tools` builds.
	BinDir string
	// WorkDir holds the kwok cluster and the embedded NATS store.
	WorkDir string
	// ClusterName names the cluster on the bus and for kwok; "local" when empty.
	ClusterName string
	// Nodes is the number of simulated nodes; 3 when zero.
	Nodes int
	// Faults are the app profiles of simulated pods; DemoFaults when nil.
	Faults []Fault
	// RealisticHeartbeats: see ClusterOptions.
	RealisticHeartbeats bool
	// MCPAddr is where the MCP server listens; 127.0.0.1:0 (any free port)
	// when empty.
	MCPAddr string
	// Proposal tunes the proposal controller (verification window etc.).
	Proposal controllers.ProposalOptions
	// NotifyURL, if set, is a webhook (Slack-compatible) told when a
	// proposal awaits approval, fails or is rolled back.
	NotifyURL string
	// OnProposal is told of every proposal the maintenance agent makes.
	OnProposal func(agents.Outcome)
	// Brain is the maintenance agent's brain, resolved
	// (planner.Brain.Resolve); deterministic when its name is empty.
	Brain planner.Brain
	// Tracer, if set, records the planner's spans (planner.NewTracer).
	Tracer trace.Tracer
	// TelemetryRetention is how long the TELEMETRY stream keeps telemetry,
	// and so how much usage history improvement runs can read;
	// bus.DefaultTelemetryMaxAge when zero.
	TelemetryRetention time.Duration
	// UsagePrometheus, if set, is the Prometheus server improvement runs
	// read usage history from; tend's own telemetry when empty.
	UsagePrometheus string
	// ImprovementNow is the clock of the improvement schedules and runs;
	// time.Now when nil.
	ImprovementNow func() time.Time
	// NoAgents runs the stack without the maintenance agent, for tests of
	// the controller that must be the only proposers.
	NoAgents bool
	// Progress receives one line per start-up step; may be nil.
	Progress func(format string, args ...any)
	// Logger for the components; discards when zero.
	Logger logr.Logger
	// MetricsAddr, if set, serves the components' Prometheus metrics
	// (tend_bus_* among them) at /metrics, e.g. "127.0.0.1:9090".
	MetricsAddr string
	// AlertmanagerAddr, if set, serves the Alertmanager webhook receiver at
	// http://<addr>/alertmanager, publishing alerts as telemetry.
	AlertmanagerAddr string
	// SkipControllerNameValidation lets tests run two stacks in one
	// process (controller-runtime wants each controller name once).
	SkipControllerNameValidation bool
	// ShimNodes are the nodes whose runtime shims may connect to the
	// embedded NATS server, each with its own nkey limited to its node:
	// ConnectShim in a test, or the seed the stack writes to
	// <work-dir>/nats-keys/shim-<node>.nk for a tend-shim process
	// (--nats-nkey-seed, --controller-key from ShimControllerKey).
	ShimNodes []string
}

// Stack is a running local stack.
type Stack struct {
	// notifier sends webhook notifications, nil without NotifyURL.
	notifier *controllers.Notifier
	// Kubeconfig is the admin kubeconfig of the cluster.
	Kubeconfig string
	// MCPURL is the MCP endpoint (streamable HTTP).
	MCPURL string
	// NATSURL is the NATS server's URL.
	NATSURL string
	// Client is an admin client with tend's types registered.
	Client client.Client
	// Config is the admin REST config.
	Config *rest.Config
	// JetStream is a connection to the bus as the audit reader: it can
	// read the audit chain and nothing else.
	JetStream jetstream.JetStream
	// NATSKeyFile holds the audit reader's nkey seed, for CLI commands
	// (tend audit) to connect to the embedded server; empty when attached
	// to an existing NATS server.
	NATSKeyFile string
	// MCPKeyFile holds the MCP server's nkey seed, so that `tend mcp
	// --stdio` reads telemetry as the MCP server does; empty when attached
	// to an existing NATS server.
	MCPKeyFile string
	// AuditPublicKey is the public half of the key the controller signs the
	// audit chain with.
	AuditPublicKey ed25519.PublicKey
	// ShimControllerKey is the public nkey the controller signs runtime
	// shim requests with: a shim's --controller-key.
	ShimControllerKey string
	// Gate is the running policy gate.
	Gate *policies.Gate
	// Cluster is the kwok cluster, nil when attached to an existing one.
	Cluster *Cluster
	// ClusterName names the cluster on the bus.
	ClusterName string

	// nats are the component identities of the embedded server; nil when
	// attached to an existing NATS server.
	nats     *natsIdentities
	auditKey ed25519.PrivateKey
	cancel   context.CancelFunc
	done     chan struct{}
	runErr   error
	cleanup  []func()
	once     sync.Once
	// brains is the maintenance agent's; nil when the stack runs none.
	brains *brains
}

// Scheme has the built-in kinds and tend's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Start brings the stack up and returns once every component runs. Stop
// tears it down; so does cancelling ctx.
func Start(ctx context.Context, opts Options) (st *Stack, err error) {
	if opts.ClusterName == "" {
		opts.ClusterName = "local"
	}
	if opts.Faults == nil {
		opts.Faults = DemoFaults
	}
	if opts.MCPAddr == "" {
		opts.MCPAddr = "127.0.0.1:0"
	}
	// kwokctl runs its processes from their own directories: paths must be absolute.
	for _, p := range []*string{&opts.WorkDir, &opts.BinDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("failed to resolve %s: %w", *p, err)
		}
		*p = abs
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	ctx = log.IntoContext(ctx, opts.Logger)
	s := &Stack{ClusterName: opts.ClusterName, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.teardown()
		}
	}()

	// Cluster.
	s.Kubeconfig = opts.Kubeconfig
	if s.Kubeconfig == "" {
		cl, err := StartCluster(ctx, ClusterOptions{
			Name: opts.ClusterName, BinDir: opts.BinDir, WorkDir: filepath.Join(opts.WorkDir, "kwok"),
			Nodes: opts.Nodes, Faults: opts.Faults, RealisticHeartbeats: opts.RealisticHeartbeats, Progress: progress,
		})
		if err != nil {
			return nil, err
		}
		s.Cluster = cl
		s.Kubeconfig = cl.Kubeconfig()
		s.cleanup = append(s.cleanup, func() {
			if err := cl.Stop(context.Background()); err != nil {
				opts.Logger.Error(err, "Failed to delete the kwok cluster")
			}
		})
	} else {
		progress("Attaching to the cluster in %s", s.Kubeconfig)
	}
	cfg, err := RESTConfig(s.Kubeconfig)
	if err != nil {
		return nil, err
	}
	s.Config = cfg
	scheme := Scheme()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	s.Client = c

	// Bus. The embedded server accepts only the components' own keys, and
	// keeps its store (the audit chain above all) across restarts.
	s.NATSURL = opts.NATSURL
	if s.NATSURL == "" {
		ids, err := newNATSIdentities(opts.ShimNodes)
		if err != nil {
			return nil, err
		}
		users, err := ids.users(opts.ClusterName)
		if err != nil {
			return nil, err
		}
		ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: filepath.Join(opts.WorkDir, "nats"), NkeyUsers: users})
		if err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, ns.Shutdown)
		ids.url = ns.URL()
		s.nats, s.NATSURL = ids, ns.URL()
		if s.NATSKeyFile, err = ids.writeSeed(filepath.Join(opts.WorkDir, "nats-keys"), bus.ComponentAuditReader); err != nil {
			return nil, err
		}
		if err := ids.writeShimSeeds(filepath.Join(opts.WorkDir, "nats-keys")); err != nil {
			return nil, err
		}
		if s.MCPKeyFile, err = ids.writeSeed(filepath.Join(opts.WorkDir, "nats-keys"), bus.ComponentMCP); err != nil {
			return nil, err
		}
		progress("NATS with JetStream listening on %s (nkey authentication, one identity per component)", s.NATSURL)
	} else {
		progress("Attaching to NATS at %s", s.NATSURL)
	}
	js, err := s.connect(ctx, bus.ComponentController)
	if err != nil {
		return nil, err
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{TelemetryMaxAge: opts.TelemetryRetention}); err != nil {
		return nil, err
	}
	if s.JetStream, err = s.connect(ctx, bus.ComponentAuditReader); err != nil {
		return nil, err
	}
	if s.auditKey, err = bus.LoadOrCreateAuditKey(filepath.Join(opts.WorkDir, "audit.key")); err != nil {
		return nil, err
	}
	s.AuditPublicKey = s.auditKey.Public().(ed25519.PublicKey)

	// tend's resources.
	progress("Installing CRDs, RBAC, the approval admission policy and the default gate policies")
	if err := Install(ctx, c); err != nil {
		return nil, err
	}
	if err := controllers.PublishAuditKey(ctx, c, SystemNamespace, s.AuditPublicKey); err != nil {
		return nil, err
	}

	// Components.
	if err := s.startComponents(ctx, opts, scheme, progress); err != nil {
		return nil, err
	}
	if err := s.writeInfo(opts.WorkDir); err != nil {
		return nil, err
	}
	return s, nil
}

// Info is what a running stack writes to <work-dir>/stack.json, so that CLI
// commands (tend audit) find it without flags.
type Info struct {
	Kubeconfig string `json:"kubeconfig"`
	NATSURL    string `json:"natsURL"`
	// NATSKeyFile is the audit reader's nkey seed for the embedded server.
	NATSKeyFile string `json:"natsKeyFile,omitempty"`
	// MCPKeyFile is the MCP server's nkey seed for the embedded server.
	MCPKeyFile string `json:"mcpKeyFile,omitempty"`
	MCPURL     string `json:"mcpURL"`
	Cluster    string `json:"cluster"`
	// AuditPublicKey is the public half of the audit key (base64).
	AuditPublicKey string `json:"auditPublicKey"`
	// ShimControllerKey is the public nkey runtime shims trust
	// (tend-shim --controller-key).
	ShimControllerKey string `json:"shimControllerKey,omitempty"`
}

// InfoFile is the path of the stack info in a work dir.
func InfoFile(workDir string) string { return filepath.Join(workDir, "stack.json") }

// ReadInfo reads the info of the stack running in workDir.
func ReadInfo(workDir string) (Info, error) {
	var info Info
	b, err := os.ReadFile(InfoFile(workDir))
	if err != nil {
		return info, fmt.Errorf("no local stack runs in %s (start one with `tend up`, or pass --nats-url): %w", workDir, err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("failed to read %s: %w", InfoFile(workDir), err)
	}
	return info, nil
}

func (s *Stack) writeInfo(workDir string) error {
	b, err := json.MarshalIndent(Info{Kubeconfig: s.Kubeconfig, NATSURL: s.NATSURL, NATSKeyFile: s.NATSKeyFile, MCPKeyFile: s.MCPKeyFile, MCPURL: s.MCPURL,
		Cluster: s.ClusterName, AuditPublicKey: bus.EncodeAuditPublicKey(s.AuditPublicKey), ShimControllerKey: s.ShimControllerKey}, "", "  ")
	if err != nil {
		return err
	}
	path := InfoFile(workDir)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	s.cleanup = append(s.cleanup, func() { _ = os.Remove(path) })
	return nil
}

// connect connects to the bus as component c: with c's own key on the
// embedded server, with the one connection's settings when attached.
func (s *Stack) connect(ctx context.Context, c bus.Component) (jetstream.JetStream, error) {
	var (
		nc  *nats.Conn
		js  jetstream.JetStream
		err error
	)
	if s.nats != nil {
		nc, js, err = s.nats.connect(ctx, c)
	} else {
		nc, js, err = bus.Connect(ctx, s.NATSURL, "tend-"+string(c))
	}
	if err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, func() { _ = nc.Drain() })
	return js, nil
}

// ConnectSensor connects to the bus as the sensor does, for a harness that
// stands in for a metrics pipeline the local cluster lacks. The connection
// closes with the stack.
func (s *Stack) ConnectSensor(ctx context.Context) (jetstream.JetStream, error) {
	return s.connect(ctx, bus.ComponentSensor)
}

// ConnectShim connects to the embedded NATS server as the runtime shim of
// node, one of Options.ShimNodes. The caller closes the connection.
func (s *Stack) ConnectShim(ctx context.Context, node string) (*nats.Conn, jetstream.JetStream, error) {
	if s.nats == nil {
		return nil, nil, errors.New("localstack: shim identities exist only on the embedded NATS server")
	}
	return s.nats.connectShim(ctx, node)
}

// as returns a REST config that acts as a service account of tend's, so each
// component holds only its own RBAC, as it would in a cluster.
func (s *Stack) as(account string) *rest.Config {
	cfg := rest.CopyConfig(s.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: serviceAccountUser(account)}
	return cfg
}

// serviceAccountUser is the username of one of tend's service accounts.
func serviceAccountUser(account string) string {
	return "system:serviceaccount:" + SystemNamespace + ":" + account
}

func (s *Stack) startComponents(ctx context.Context, opts Options, scheme *runtime.Scheme, progress func(string, ...any)) error {
	controllerJS, err := s.connect(ctx, bus.ComponentController)
	if err != nil {
		return err
	}
	// The node actions go to the runtime shims signed with a key the shims
	// trust.
	signer, err := loadOrCreateShimSigner(filepath.Join(opts.WorkDir, "shim-controller.nk"))
	if err != nil {
		return err
	}
	if s.ShimControllerKey, err = signer.PublicKey(); err != nil {
		return fmt.Errorf("failed to read the shim signing key: %w", err)
	}
	ctl, err := components.NewController(ctx, components.ControllerOptions{
		Config:          s.as(ControllerAccount),
		Scheme:          scheme,
		SystemNamespace: SystemNamespace,
		Cluster:         opts.ClusterName,
		JS:              controllerJS,
		AuditKey:        s.auditKey,
		Proposal:        opts.Proposal,
		NotifyURL:       opts.NotifyURL,
		ShimSigner:      signer,
		MetricsAddr:     opts.MetricsAddr,
		// Leader election even here: a second stack on the same cluster
		// waits rather than acting beside this one.
		LeaderElection:     true,
		SkipNameValidation: opts.SkipControllerNameValidation,
		Logger:             opts.Logger,
	})
	if err != nil {
		return err
	}
	mgr, gate := ctl.Manager, ctl.Gate
	s.Gate, s.notifier = gate, ctl.Notifier
	// The sensor runs in the same process, with its own NATS identity.
	sensorJS, err := s.connect(ctx, bus.ComponentSensor)
	if err != nil {
		return err
	}
	if err := components.AddSensor(mgr, sensorJS, opts.ClusterName); err != nil {
		return err
	}
	if err := mcp.Register(ctrlmetrics.Registry); err != nil {
		return err
	}
	if opts.AlertmanagerAddr != "" {
		ingestJS, err := s.connect(ctx, bus.ComponentIngest)
		if err != nil {
			return err
		}
		if err := s.serveAlerts(opts, ingestJS); err != nil {
			return err
		}
	}

	// MCP server.
	wc, err := client.NewWithWatch(s.as(MCPAccount), client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("failed to create MCP server client: %w", err)
	}
	mcpJS, err := s.connect(ctx, bus.ComponentMCP)
	if err != nil {
		return err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(s.as(MCPAccount))
	if err != nil {
		return fmt.Errorf("failed to create MCP server discovery client: %w", err)
	}
	// Reads of the common kinds are served from informers; the stack's
	// teardown stops them.
	readCtx, stopReads := context.WithCancel(context.Background())
	s.cleanup = append(s.cleanup, stopReads)
	reader, err := mcp.StartReadCache(readCtx, s.as(MCPAccount), scheme, nil)
	if err != nil {
		return err
	}
	srv, err := mcp.New(mcp.Options{
		Reader:                   reader,
		Client:                   wc,
		Authenticator:            &mcp.TokenReviewAuthenticator{Client: wc},
		Authorizer:               &mcp.SubjectAccessReviewAuthorizer{Client: wc},
		Relay:                    serviceAccountUser(MCPAccount),
		Discovery:                memory.NewMemCacheClient(disco),
		Repeats:                  bus.NewRepeatPublisher(mcpJS, opts.ClusterName),
		Cluster:                  opts.ClusterName,
		Telemetry:                mcpJS,
		Logs:                     &mcp.KubeLogs{Clientset: kubernetes.NewForConfigOrDie(s.as(MCPAccount))},
		Guards:                   &guardReader{client: wc, gate: gate},
		ClusterProposalNamespace: SystemNamespace,
		// The controller runs the node actions through the runtime shims.
		ShimActions: true,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.MCPAddr)
	if err != nil {
		return fmt.Errorf("failed to listen for MCP on %s: %w", opts.MCPAddr, err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux, "/mcp")
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.MCPURL = "http://" + ln.Addr().String() + "/mcp"
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error(err, "MCP server stopped")
		}
	}()
	s.cleanup = append(s.cleanup, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	})
	progress("MCP server listening on %s", s.MCPURL)

	if !opts.NoAgents {
		if err := s.startAgent(ctx, opts, mgr); err != nil {
			return err
		}
		if err := s.startImprovement(ctx, opts, mgr); err != nil {
			return err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() {
		defer close(s.done)
		s.runErr = mgr.Start(runCtx)
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return errors.New("localstack: caches did not sync within a minute")
	}
	progress("Sensor, proposal controller, gate and maintenance agent running")
	return nil
}

// guardReader reports the gate's guards to the MCP server: the limits the
// gate compiled from the policies, and the kill switch and breaker as the
// gate state ConfigMap records them.
type guardReader struct {
	client client.Client
	gate   *policies.Gate
}

func (g *guardReader) GuardState(ctx context.Context) (wire.GuardState, error) {
	st := mcp.LimitsState(g.gate.Limits())
	gs, err := controllers.ReadGateState(ctx, g.client, SystemNamespace)
	if err != nil {
		return wire.GuardState{}, err
	}
	st.KillSwitch, st.BreakerTripped, st.BreakerReason = gs.KillSwitch, gs.Breaker.Tripped, gs.Breaker.Reason
	return st, nil
}

// serveAlerts serves the Alertmanager webhook receiver until the stack stops.
func (s *Stack) serveAlerts(opts Options, js jetstream.JetStream) error {
	recv, err := bus.NewAlertReceiver(bus.NewPublisher(js, opts.ClusterName, "alertmanager"),
		bus.AlertReceiverOptions{Cluster: opts.ClusterName, Log: opts.Logger.WithName("alertmanager")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.AlertmanagerAddr)
	if err != nil {
		return fmt.Errorf("failed to listen for Alertmanager on %s: %w", opts.AlertmanagerAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/alertmanager", recv)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error(err, "Alertmanager receiver stopped")
		}
	}()
	s.cleanup = append(s.cleanup, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return nil
}

// Done is closed when the components stop.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err is the components' error once Done is closed.
func (s *Stack) Err() error { return s.runErr }

// Stop stops the components, the bus and the cluster, and waits for them.
func (s *Stack) Stop() {
	s.teardown()
}

func (s *Stack) teardown() {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		for i := len(s.cleanup) - 1; i >= 0; i-- {
			s.cleanup[i]()
		}
	})
}

// startAgent starts the maintenance agent with the manager: its own service
// account token, MCP over HTTP, its durable consumers of the telemetry.
func (s *Stack) startAgent(ctx context.Context, opts Options, mgr ctrl.Manager) error {
	// Maintenance agent: its own service account token, MCP over HTTP.
	token := serviceAccountToken(s.Client, SystemNamespace, AgentAccount)
	agentJS, err := s.connect(ctx, bus.ComponentAgent)
	if err != nil {
		return err
	}
	a, err := components.NewAgent(ctx, components.AgentOptions{
		MCPURL: s.MCPURL, Token: token, JS: agentJS, Cluster: opts.ClusterName, OnProposal: opts.OnProposal,
	})
	if err != nil {
		return err
	}
	s.cleanup = append(s.cleanup, func() { _ = a.Close() })
	agent := a.Agent
	// The planner (llm and hybrid brains) calls the MCP tools as the
	// agent, and keeps its transcripts on the bus as the agent.
	s.brains = newBrains(agent, s.MCPURL, token, agentJS, opts.ClusterName, opts.Tracer)
	s.cleanup = append(s.cleanup, s.brains.close)
	if err := s.brains.set(ctx, opts.Brain); err != nil {
		return err
	}
	if err := mgr.Add(a.Consumer); err != nil {
		return fmt.Errorf("failed to add agent: %w", err)
	}
	// The agent also judges on a tick: faults that show as the absence of
	// change (a pod that never becomes ready) send no telemetry.
	if err := mgr.Add(agent); err != nil {
		return fmt.Errorf("failed to add agent: %w", err)
	}
	return nil
}
