package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	mcpserver "github.com/mark3labs/mcp-go/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// Version is reported to MCP clients.
const Version = wire.Version

// LabelFingerprint on a Proposal carries a hash of its fingerprint so open
// duplicates are found with a label selector.
const LabelFingerprint = "tend.dev/fingerprint"

// Options configure the server.
type Options struct {
	// Client reads the cluster and creates Proposals, with the server's own
	// identity. It must be able to watch Proposals.
	Client client.WithWatch
	// Authenticator checks the bearer tokens of HTTP requests; nil refuses
	// them all. ServeStdio needs none.
	Authenticator Authenticator
	// Authorizer checks every tool call. Its answers are cached (see
	// CachingAuthorizer) for AuthorizedTTL and DeniedTTL.
	Authorizer Authorizer
	// AuthorizedTTL is how long an allowed answer is remembered, per
	// identity and request; DefaultAuthorizedTTL when zero, none when
	// negative. DeniedTTL is the same for a denied answer;
	// DefaultDeniedTTL when zero, never more than MaxDeniedTTL.
	AuthorizedTTL, DeniedTTL time.Duration
	// Reader, if set, serves get_resource and list_resources from informers
	// (see StartReadCache) for the kinds it caches, once the caller's
	// access was checked; other reads, and objects it has not seen yet, go
	// to the API server through Client.
	Reader client.Reader
	// DecisionWait bounds how long a propose tool waits for the gate; 10s
	// when zero. A proposal not decided by then is returned as Pending.
	DecisionWait time.Duration
	// Expiry of a new proposal; 1h when zero.
	Expiry time.Duration
	// MaxRequestBytes bounds an HTTP request body; 1 MiB when zero.
	MaxRequestBytes int64
	// ToolNamespaces are the namespaces, besides cluster-wide, in which a
	// caller's right to propose an action offers it the action's tool. A
	// tool not offered to a caller cannot be called by it either.
	ToolNamespaces []string
	// ClusterProposalNamespace holds the proposals for cluster-scoped
	// targets such as nodes; "tend-system" when empty.
	ClusterProposalNamespace string
	// Cluster names the cluster in telemetry subjects.
	Cluster string
	// Telemetry, if set, is the JetStream the get_telemetry tool reads.
	Telemetry jetstream.JetStream
	// Logs, if set, reads container logs for get_logs.
	Logs LogReader
	// Guards, if set, reports the guards' state for get_policies.
	Guards GuardReader
	// Redact configures redaction beyond Secret values, which are always
	// redacted.
	Redact Redaction
	// RateLimit is each identity's sustained rate of tool calls per second;
	// 5 when zero. Burst is how many calls it may make at once; 20 when zero.
	RateLimit float64
	Burst     int
	// Relay is the server's own username when it creates proposals on its
	// callers' behalf (tend mcp --listen): the proposal names the caller as
	// proposer and the server as spec.proposer.via, the API server's
	// admission policy lets only relays do that, and callers need the verb
	// propose on proposals. Empty when the server creates proposals as the
	// caller itself (tend mcp --stdio), who then needs the verb create.
	Relay string
	// Discovery, if set, resolves short resource names (deploy, po) for
	// the read tools.
	Discovery discovery.DiscoveryInterface
	// ResourceURL is the MCP endpoint's canonical URL, as its protected
	// resource metadata (RFC 9728) names it; when empty, the URL each
	// request reached.
	ResourceURL string
	// ShimActions is true when the proposal controller carries out the
	// actions the runtime shim performs on nodes (RestartContainer,
	// PruneImages, CollectDiagnostics). Without it their tools are not
	// offered: the gate would deny every such proposal as UnknownAction.
	ShimActions bool
	// Repeats, if set, receives a repeat for every proposal not created
	// because an open one has the same fingerprint; the proposal controller
	// counts them on the open one. *bus.RepeatPublisher implements it.
	Repeats RepeatRecorder
}

// Redaction configures what read tools redact besides Secret values.
type Redaction struct {
	// EnvValues redacts the literal value of every container env var.
	EnvValues bool
	// Annotations redacts every annotation value.
	Annotations bool
}

// RepeatRecorder records that an open proposal was proposed again.
type RepeatRecorder interface {
	PublishRepeat(ctx context.Context, r bus.Repeat) error
}

var _ RepeatRecorder = (*bus.RepeatPublisher)(nil)

// Server is tend's MCP server.
type Server struct {
	opts   Options
	mcp    *mcpserver.MCPServer
	http   *mcpserver.StreamableHTTPServer
	limits *limiters
	// toolActions maps each propose tool to its action.
	toolActions map[string]tendv1.Action
	// toolNames are the tools the server has, the only tool labels of its
	// metrics.
	toolNames map[string]bool
	offers    offerCache
	// mappings remembers the REST mappings of the kinds read tools were
	// asked for, by spelling; mappingCount counts them.
	mappings     sync.Map
	mappingCount atomic.Int64
}

// New builds the server and registers its tools.
func New(opts Options) (*Server, error) {
	if opts.Client == nil || opts.Authorizer == nil {
		return nil, errors.New("mcp: Client and Authorizer are required")
	}
	if _, cached := opts.Authorizer.(*CachingAuthorizer); !cached && (opts.AuthorizedTTL >= 0 || opts.DeniedTTL >= 0) {
		opts.Authorizer = NewCachingAuthorizer(opts.Authorizer, opts.AuthorizedTTL, opts.DeniedTTL)
	}
	if opts.Authenticator == nil {
		opts.Authenticator = refuseTokens{}
	}
	if opts.DecisionWait == 0 {
		opts.DecisionWait = 10 * time.Second
	}
	if opts.Expiry == 0 {
		opts.Expiry = time.Hour
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.ClusterProposalNamespace == "" {
		opts.ClusterProposalNamespace = tendv1.DefaultSystemNamespace
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 5
	}
	if opts.Burst == 0 {
		opts.Burst = 20
	}
	if opts.RateLimit < 0 || opts.Burst < 0 {
		return nil, errors.New("mcp: RateLimit and Burst must not be negative")
	}
	s := &Server{opts: opts, limits: newLimiters(rate.Limit(opts.RateLimit), opts.Burst)}
	s.mcp = mcpserver.NewMCPServer("tend", Version,
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithRecovery(),
		mcpserver.WithToolHandlerMiddleware(s.measure),
		mcpserver.WithToolHandlerMiddleware(s.limit),
		mcpserver.WithToolFilter(s.offered),
		mcpserver.WithInstructions("tend lets you observe a Kubernetes cluster and propose changes. "+
			"You cannot change anything directly: propose_* tools create a Proposal that tend's policy gate "+
			"approves, sends to a human, or denies with reasons you can act on."),
	)
	s.toolActions, s.toolNames = map[string]tendv1.Action{}, map[string]bool{}
	for _, t := range append(s.proposeTools(), s.readTools()...) {
		if !s.implemented(t) {
			continue
		}
		s.toolNames[t.tool.Name] = true
		s.mcp.AddTool(t.tool, t.handler)
		if t.action != "" {
			s.toolActions[t.tool.Name] = t.action
		}
	}
	s.http = mcpserver.NewStreamableHTTPServer(s.mcp,
		mcpserver.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			if id, ok := IdentityFrom(r.Context()); ok {
				return withIdentity(ctx, id)
			}
			return ctx
		}),
	)
	return s, nil
}

// implemented reports whether a tool can do its work on this server: a
// propose tool whose action the controller carries out, a read tool whose
// source is configured. The others are not listed, and so cannot be called.
func (s *Server) implemented(t tool) bool {
	if t.action != "" {
		info, ok := tendv1.LookupAction(t.action)
		return ok && (!info.Shim || s.opts.ShimActions)
	}
	switch t.tool.Name {
	case wire.ToolGetLogs:
		return s.opts.Logs != nil
	case wire.ToolGetTelemetry:
		return s.opts.Telemetry != nil
	}
	return true
}

// Handler is the HTTP handler for the MCP endpoint: every request is
// authenticated before the MCP transport sees it.
func (s *Server) Handler() http.Handler {
	limit := s.opts.MaxRequestBytes
	return authenticate(s.opts.Authenticator, s.metadataURL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		s.http.ServeHTTP(w, r)
	}))
}

// ServeStdio serves MCP over in and out, as desktop clients run local
// servers, for the one identity id until ctx is done or in ends. There is no
// bearer token on stdio: the caller is whoever the server's credentials
// authenticate as (see Self), and Options.Authorizer should be a
// SelfAuthorizer for that identity.
func (s *Server) ServeStdio(ctx context.Context, id Identity, in io.Reader, out io.Writer) error {
	if id.Username == "" {
		return ErrUnauthenticated
	}
	stdio := mcpserver.NewStdioServer(s.mcp)
	stdio.SetContextFunc(func(ctx context.Context) context.Context { return withIdentity(ctx, id) })
	return stdio.Listen(ctx, in, out)
}

// caller returns the authenticated identity and checks it may do attrs.
func (s *Server) caller(ctx context.Context, attrs authzv1.ResourceAttributes) (Identity, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return Identity{}, ErrUnauthenticated
	}
	if err := s.opts.Authorizer.Authorize(ctx, id, attrs); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// create makes the proposal unless an open one with the same fingerprint
// exists, then waits for the gate's decision.
func (s *Server) create(ctx context.Context, p *tendv1.Proposal) (wire.ProposeResult, error) {
	var open tendv1.ProposalList
	if err := s.opts.Client.List(ctx, &open, client.InNamespace(p.Namespace), client.MatchingLabels{LabelFingerprint: p.Labels[LabelFingerprint]}); err != nil {
		return wire.ProposeResult{}, fmt.Errorf("failed to look for duplicates: %w", err)
	}
	for i := range open.Items {
		if q := &open.Items[i]; !q.Status.Phase.Terminal() && sameProposal(&q.Spec, &p.Spec) {
			return s.repeat(ctx, q), nil
		}
	}
	if err := s.opts.Client.Create(ctx, p); err != nil {
		return wire.ProposeResult{}, fmt.Errorf("failed to create proposal: %w", err)
	}
	decided, err := s.awaitDecision(ctx, p)
	if err != nil {
		return wire.ProposeResult{}, err
	}
	return resultOf(decided), nil
}

// sameProposal reports whether an open proposal a repeats b: the same
// proposer, action, target (down to its UID) and change. A label or a
// fingerprint someone else chose can never make another's proposal count
// as a repeat.
func sameProposal(a, b *tendv1.ProposalSpec) bool {
	return a.Proposer.Username == b.Proposer.Username && a.Action == b.Action &&
		a.Target.APIVersion == b.Target.APIVersion && a.Target.Kind == b.Target.Kind &&
		a.Target.Namespace == b.Target.Namespace && a.Target.Name == b.Target.Name && a.Target.UID == b.Target.UID &&
		equality.Semantic.DeepEqual(a.Parameters, b.Parameters)
}

// repeat records a repeat of the open proposal q and returns it.
func (s *Server) repeat(ctx context.Context, q *tendv1.Proposal) wire.ProposeResult {
	res := resultOf(q)
	res.Duplicate = true
	res.Repeats = q.Status.Repeats
	note := "An open proposal with the same fingerprint exists; returning it instead of creating another. "
	if s.opts.Repeats != nil {
		id, _ := IdentityFrom(ctx)
		err := s.opts.Repeats.PublishRepeat(ctx, bus.Repeat{
			ID: "repeat-" + utilrand.String(20), Namespace: q.Namespace, Name: q.Name, Proposer: id.Username, Time: time.Now().UTC(),
		})
		if err != nil {
			// The caller's answer does not depend on the count; say so
			// rather than fail the call.
			note += "(This repeat could not be counted: " + err.Error() + ".) "
		} else {
			res.Repeats++
		}
	}
	res.Message = note + res.Message
	return res
}

// awaitDecision watches the proposal until the gate decided it or the wait
// ends, and returns the latest state.
func (s *Server) awaitDecision(ctx context.Context, p *tendv1.Proposal) (*tendv1.Proposal, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DecisionWait)
	defer cancel()
	w, err := s.opts.Client.Watch(ctx, &tendv1.ProposalList{}, client.InNamespace(p.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", p.Name)})
	if err != nil {
		return nil, fmt.Errorf("failed to watch proposal: %w", err)
	}
	defer w.Stop()
	latest := p
	for {
		if latest.Status.Decision != nil {
			return latest, nil
		}
		select {
		case <-ctx.Done():
			return latest, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return latest, nil
			}
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				if q, ok := ev.Object.(*tendv1.Proposal); ok {
					latest = q
				}
			}
		}
	}
}

func (s *Server) getProposal(ctx context.Context, args wire.GetProposalArgs) (wire.ProposalView, error) {
	p, err := s.proposal(ctx, args)
	if err != nil {
		return wire.ProposalView{}, err
	}
	v := wire.ProposalView{
		Namespace: p.Namespace, Name: p.Name, Action: string(p.Spec.Action),
		Target:   fmt.Sprintf("%s %s/%s", p.Spec.Target.Kind, p.Spec.Target.Namespace, p.Spec.Target.Name),
		Proposer: p.Spec.Proposer.Username, Phase: string(p.Status.Phase), Message: p.Status.Message,
	}
	if p.Status.Decision != nil {
		r := resultOf(p)
		v.Decision = &r
	}
	for _, a := range p.Status.Approvals {
		v.Approvals = append(v.Approvals, fmt.Sprintf("%s by %s", a.Decision, a.Approver))
	}
	if p.Status.Verify != nil {
		v.Checks = p.Status.Verify.Checks
	}
	return v, nil
}

func resultOf(p *tendv1.Proposal) wire.ProposeResult {
	r := wire.ProposeResult{Namespace: p.Namespace, Name: p.Name, Phase: string(p.Status.Phase), Message: p.Status.Message}
	if r.Phase == "" {
		r.Phase = string(tendv1.PhasePending)
	}
	if info, ok := tendv1.LookupAction(p.Spec.Action); ok {
		r.Undo = undoNote(info)
		r.Disruption = disruptionNote(info)
	}
	if d := p.Status.Decision; d != nil {
		if f := d.Facts; f != nil && f.Disruption != nil {
			r.Disruption = disruptionFacts(f.Disruption)
		}
		r.Outcome = string(d.Outcome)
		r.RequiredApprovals = d.RequiredApprovals
		for _, x := range d.Reasons {
			r.Reasons = append(r.Reasons, wire.Reason{Code: x.Code, Message: x.Message, Policy: x.Policy, Rule: x.Rule, Guard: x.Guard})
		}
	}
	if r.Message == "" {
		r.Message = "Created; the gate has not decided yet. Check again with get_proposal."
	}
	return r
}

func fingerprintLabel(fp string) string { return wire.Digest(fp) }

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
