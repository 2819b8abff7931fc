package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/policies"
)

// mcpOptions are the options of `tend mcp`.
type mcpOptions struct {
	kube              kubeOptions
	stdio             bool
	listen            string
	pprofAddr         string
	nats              natsFlags
	shimActions       bool
	workDir           string
	cluster           string
	systemNamespace   string
	redactEnv         bool
	redactAnnotations bool
	rateLimit         float64
	burst             int
	decisionWait      time.Duration
	toolNamespaces    []string
	authzTTL          time.Duration
	deniedTTL         time.Duration
	tokenTTL          time.Duration
	readCache         bool
}

func (o *mcpOptions) Validate() error {
	switch {
	case o.stdio == (o.listen != ""):
		return errors.New("give exactly one of --stdio and --listen ADDR")
	case o.rateLimit <= 0 || o.burst <= 0:
		return errors.New("--rate-limit and --burst must be positive")
	case o.decisionWait <= 0:
		return errors.New("--decision-wait must be positive")
	case o.deniedTTL > mcp.MaxDeniedTTL:
		return fmt.Errorf("--authz-denied-ttl is at most %s: a caller just granted a right is not refused longer", mcp.MaxDeniedTTL)
	}
	if o.nats.url == "" && o.nats.given() {
		return errors.New("NATS credentials were given without --nats-url")
	}
	if o.nats.url != "" {
		return o.nats.validate()
	}
	return nil
}

func newMCPCommand() *cobra.Command {
	o := &mcpOptions{}
	cmd := &cobra.Command{
		Use:   "mcp (--stdio | --listen ADDR)",
		Short: "Serve tend's MCP tools: read the cluster and propose changes, never make them",
		Long: `Serve tend's MCP tools. Read tools list and get objects of any kind (Secret values are
always redacted), events, logs, recent telemetry, proposals, gate decisions and policies.
Propose tools, one per action of the catalogue, create a Proposal and return the gate's
decision; no tool changes anything else.

--stdio serves one user over standard input and output, as desktop assistants and IDEs run
local MCP servers. The caller is whoever your kubeconfig's credentials authenticate as
(asked of the API server with SelfSubjectReview); every call is checked with
SelfSubjectAccessReview, so the tools can do no more than you can, and your proposals
are recorded as yours.

--listen serves streamable HTTP at ADDR/mcp for many callers, as tend's own deployment does.
Each request needs a bearer token, checked with TokenReview (service-account tokens for
agents, user tokens for people); each call is authorized for its caller with
SubjectAccessReview. The kubeconfig's identity needs the tend:mcp ClusterRole: the server
creates each proposal as itself, a relay, naming the caller as proposer and itself in
spec.proposer.via, and the admission policy requires the caller to hold the verb propose.

A caller is offered, and may call, the propose tool of an action only if it may propose
(over stdio: create) that action (RBAC on proposals.tend.dev, the action as resource name: a role that lists
actions as resourceNames narrows what an agent sees and may do) cluster-wide or in one of
--tool-namespaces. Each caller has its own rate limit. With --nats-url, get_telemetry reads the TELEMETRY
stream, and repeats of open proposals are published for the controller to count.`,
		Example: `  # Claude Desktop, Cursor and other desktop clients: command "tend", args ["mcp", "--stdio"]
  tend mcp --stdio --context prod
  # In-cluster, behind a Service:
  tend mcp --listen :8090 --nats-url nats://nats.tend-system:4222`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMCP(cmd.Context(), o)
		},
	}
	o.kube.bind(cmd, false)
	f := cmd.Flags()
	f.BoolVar(&o.stdio, "stdio", false, "serve one user over standard input and output")
	f.StringVar(&o.listen, "listen", "", "serve streamable HTTP on this address, at /mcp (health at /healthz, metrics at /metrics)")
	f.StringVar(&o.pprofAddr, "pprof-bind-address", "0", pprofHelp)
	o.nats.bind(cmd)
	f.Lookup("nats-url").Usage = "NATS server with tend's streams, for telemetry and repeat counting (default with --stdio: the local stack's, when the kubeconfig reaches its cluster)"
	f.Lookup("nats-nkey").Usage = "file with the nkey seed to connect to NATS as (default with the local stack's NATS: its MCP server's)"
	f.StringVar(&o.workDir, "work-dir", ".tend", "work dir of the local stack started by `tend up`, whose NATS --stdio reads telemetry from")
	f.StringVar(&o.cluster, "cluster", "local", "cluster name on the bus")
	f.StringVar(&o.systemNamespace, "system-namespace", localstack.SystemNamespace, "tend's namespace: gate state, and proposals for cluster-scoped targets such as nodes")
	f.BoolVar(&o.shimActions, "shim-actions", false, "offer the node actions' propose tools (RestartContainer, PruneImages, CollectDiagnostics): set when the runtime shim runs on the nodes and the controller has its signing key")
	f.BoolVar(&o.redactEnv, "redact-env-values", false, "redact the literal value of every container env var in read results")
	f.BoolVar(&o.redactAnnotations, "redact-annotations", false, "redact every annotation value in read results")
	f.Float64Var(&o.rateLimit, "rate-limit", 5, "tool calls per second each caller may make, sustained")
	f.IntVar(&o.burst, "burst", 20, "tool calls each caller may make at once")
	f.DurationVar(&o.decisionWait, "decision-wait", 10*time.Second, "how long a propose tool waits for the gate's decision before returning Pending")
	f.DurationVar(&o.authzTTL, "authz-ttl", mcp.DefaultAuthorizedTTL, "how long an allowed authorization answer is remembered per caller and request (negative: never)")
	f.DurationVar(&o.deniedTTL, "authz-denied-ttl", mcp.DefaultDeniedTTL, "how long a denied authorization answer is remembered (negative: never; at most 5s)")
	f.DurationVar(&o.tokenTTL, "token-ttl", 10*time.Second, "how long a reviewed bearer token's identity is remembered (--listen; negative: never)")
	f.BoolVar(&o.readCache, "read-cache", true, "with --listen, serve reads of common kinds (pods, nodes, workloads, jobs, services, autoscalers, budgets) from informers; needs list and watch on them cluster-wide")
	f.StringSliceVar(&o.toolNamespaces, "tool-namespaces", nil, "namespaces, besides cluster-wide rights, where a caller's right to propose an action offers it that action's tool (default with --stdio: the kubeconfig context's namespace)")
	return cmd
}

func runMCP(ctx context.Context, o *mcpOptions) error {
	collectSooner()
	// Only the profiles: health and metrics are served beside /mcp.
	stopProfiles, err := serveProfiles(o.pprofAddr)
	if err != nil {
		return err
	}
	defer stopProfiles()
	cfg, err := o.kube.restConfig()
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create clientset: %w", err)
	}
	opts := mcp.Options{
		Client:                   c,
		Logs:                     &mcp.KubeLogs{Clientset: cs},
		Guards:                   &policyGuards{client: c, namespace: o.systemNamespace},
		Redact:                   mcp.Redaction{EnvValues: o.redactEnv, Annotations: o.redactAnnotations},
		RateLimit:                o.rateLimit,
		Burst:                    o.burst,
		DecisionWait:             o.decisionWait,
		Cluster:                  o.cluster,
		ClusterProposalNamespace: o.systemNamespace,
		ToolNamespaces:           o.toolNamespaces,
		ShimActions:              o.shimActions,
		AuthorizedTTL:            o.authzTTL,
		DeniedTTL:                o.deniedTTL,
	}
	if o.readCache && !o.stdio {
		// One user over stdio may not list and watch cluster-wide; its
		// reads go to the API server.
		if opts.Reader, err = mcp.StartReadCache(ctx, cfg, localstack.Scheme(), nil); err != nil {
			return err
		}
	}
	if o.stdio && o.nats.url == "" {
		o.fromLocalStack(cfg.Host)
	}
	if o.nats.url != "" {
		nc, js, err := o.nats.connect(ctx, bus.ComponentMCP)
		if err != nil {
			return err
		}
		defer nc.Close()
		opts.Telemetry = js
		opts.Repeats = bus.NewRepeatPublisher(js, o.cluster)
	}
	if o.stdio && len(opts.ToolNamespaces) == 0 {
		// One user, whose rights are often in the namespace it works in:
		// the kubeconfig context's.
		if ns, _, err := o.kube.loader().Namespace(); err == nil && ns != "" {
			opts.ToolNamespaces = []string{ns}
		}
	}
	if o.stdio {
		self, err := mcp.Self(ctx, c)
		if err != nil {
			return err
		}
		opts.Authorizer = &mcp.SelfAuthorizer{Client: c, Self: self}
		srv, err := mcp.New(opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "tend MCP server on stdio, acting for %s\n", self.Username)
		return srv.ServeStdio(ctx, self, os.Stdin, os.Stdout)
	}
	// Over HTTP the server relays: it creates each proposal as itself,
	// naming the caller as proposer and itself as spec.proposer.via, and
	// callers need the verb propose, as tend up's server does.
	self, err := mcp.Self(ctx, c)
	if err != nil {
		return err
	}
	opts.Relay = self.Username
	opts.Authenticator = &mcp.TokenReviewAuthenticator{Client: c, TTL: o.tokenTTL, DeniedTTL: min(o.deniedTTL, mcp.MaxDeniedTTL)}
	opts.Authorizer = &mcp.SubjectAccessReviewAuthorizer{Client: c}
	srv, err := mcp.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", o.listen, err)
	}
	mux := http.NewServeMux()
	srv.Mount(mux, "/mcp")
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	reg := prometheus.NewRegistry()
	if err := mcp.Register(reg); err != nil {
		return err
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "tend MCP server listening on http://%s/mcp\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}

// fromLocalStack takes the NATS server, key and cluster name of the local
// stack running in the work dir, if the kubeconfig reaches that stack's API
// server (apiHost): a desktop client's `tend mcp --stdio` then reads
// telemetry without more flags. Against any other cluster it does nothing.
func (o *mcpOptions) fromLocalStack(apiHost string) {
	info, err := localstack.ReadInfo(o.workDir)
	if err != nil || info.NATSURL == "" {
		return
	}
	stack, err := clientcmd.BuildConfigFromFlags("", info.Kubeconfig)
	if err != nil || stack.Host != apiHost {
		return
	}
	o.nats.url = info.NATSURL
	if !o.nats.given() {
		o.nats.auth.NKeySeedFile = info.MCPKeyFile
	}
	if o.cluster == "local" && info.Cluster != "" {
		o.cluster = info.Cluster
	}
	fmt.Fprintf(os.Stderr, "Reading telemetry from the local stack's NATS at %s\n", o.nats.url)
}

// policyGuards reports the guards as the controller would apply them: the
// limits compiled from the cluster's GatePolicies, and the kill switch and
// breaker from the gate state ConfigMap.
type policyGuards struct {
	client    client.Client
	namespace string
}

func (g *policyGuards) GuardState(ctx context.Context) (wire.GuardState, error) {
	var list tendv1.GatePolicyList
	if err := g.client.List(ctx, &list); err != nil {
		return wire.GuardState{}, fmt.Errorf("failed to list gate policies: %w", err)
	}
	gate, err := policies.New(policies.Options{})
	if err != nil {
		return wire.GuardState{}, err
	}
	gate.Load(list.Items)
	st := mcp.LimitsState(gate.Limits())
	gs, err := controllers.ReadGateState(ctx, g.client, g.namespace)
	if err != nil {
		return wire.GuardState{}, err
	}
	st.KillSwitch, st.BreakerTripped, st.BreakerReason = gs.KillSwitch, gs.Breaker.Tripped, gs.Breaker.Reason
	return st, nil
}
