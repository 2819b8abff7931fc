package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
)

// Version is reported to MCP clients.
const Version = "0.1.0"

// LabelFingerprint on a Proposal carries a hash of its fingerprint so open
// duplicates are found with a label selector.
const LabelFingerprint = "tend.dev/fingerprint"

// Options configure the server.
type Options struct {
	// Client reads the cluster and creates Proposals, with the server's own
	// identity. It must be able to watch Proposals.
	Client client.WithWatch
	// Authenticator checks bearer tokens.
	Authenticator Authenticator
	// Authorizer checks every tool call.
	Authorizer Authorizer
	// DecisionWait bounds how long a propose tool waits for the gate; 10s
	// when zero. A proposal not decided by then is returned as Pending.
	DecisionWait time.Duration
	// Expiry of a new proposal; 1h when zero.
	Expiry time.Duration
	// MaxRequestBytes bounds an HTTP request body; 1 MiB when zero.
	MaxRequestBytes int64
	// Repeats, if set, receives a repeat for every proposal not created
	// because an open one has the same fingerprint; the proposal controller
	// counts them on the open one. *bus.RepeatPublisher implements it.
	Repeats RepeatRecorder
}

// RepeatRecorder records that an open proposal was proposed again.
type RepeatRecorder interface {
	PublishRepeat(ctx context.Context, r bus.Repeat) error
}

var _ RepeatRecorder = (*bus.RepeatPublisher)(nil)

// Server is tend's MCP server.
type Server struct {
	opts Options
	mcp  *mcpserver.MCPServer
	http *mcpserver.StreamableHTTPServer
}

// New builds the server and registers its tools.
func New(opts Options) (*Server, error) {
	if opts.Client == nil || opts.Authenticator == nil || opts.Authorizer == nil {
		return nil, errors.New("mcp: Client, Authenticator and Authorizer are required")
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
	s := &Server{opts: opts}
	s.mcp = mcpserver.NewMCPServer("tend", Version,
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithRecovery(),
		mcpserver.WithInstructions("tend lets you observe a Kubernetes cluster and propose changes. "+
			"You cannot change anything directly: propose_* tools create a Proposal that tend's policy gate "+
			"approves, sends to a human, or denies with reasons you can act on."),
	)
	s.mcp.AddTool(mcpgo.NewTool(ToolProposeRollback,
		mcpgo.WithDescription("Propose rolling a Deployment back to an earlier revision. Creates a Proposal and returns the gate's decision; it changes nothing by itself."),
		mcpgo.WithInputSchema[ProposeRollbackArgs](),
		mcpgo.WithOutputSchema[ProposeResult](),
		mcpgo.WithReadOnlyHintAnnotation(false),
		mcpgo.WithDestructiveHintAnnotation(false),
		mcpgo.WithIdempotentHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(false),
	), mcpgo.NewStructuredToolHandler(s.proposeRollback))
	s.mcp.AddTool(mcpgo.NewTool(ToolGetProposal,
		mcpgo.WithDescription("Show a proposal: its action, target, phase, the gate's decision with reasons, approvals and verification checks."),
		mcpgo.WithInputSchema[GetProposalArgs](),
		mcpgo.WithOutputSchema[ProposalView](),
		mcpgo.WithReadOnlyHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(false),
	), mcpgo.NewStructuredToolHandler(s.getProposal))
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

// Handler is the HTTP handler for the MCP endpoint: every request is
// authenticated before the MCP transport sees it.
func (s *Server) Handler() http.Handler {
	limit := s.opts.MaxRequestBytes
	return authenticate(s.opts.Authenticator, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		s.http.ServeHTTP(w, r)
	}))
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

func (s *Server) proposeRollback(ctx context.Context, _ mcpgo.CallToolRequest, args ProposeRollbackArgs) (ProposeResult, error) {
	if err := args.validate(); err != nil {
		return ProposeResult{}, err
	}
	id, err := s.caller(ctx, authzv1.ResourceAttributes{
		Namespace: args.Namespace, Verb: "create", Group: tendv1.GroupVersion.Group, Resource: "proposals",
	})
	if err != nil {
		return ProposeResult{}, err
	}
	target := tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: args.Namespace, Name: args.Name}
	d := &appsv1.Deployment{}
	switch err := s.opts.Client.Get(ctx, client.ObjectKey{Namespace: args.Namespace, Name: args.Name}, d); {
	case err == nil:
		target.UID, target.ResourceVersion, target.Generation = d.UID, d.ResourceVersion, d.Generation
	case apierrors.IsNotFound(err):
		// Proposed anyway: the controller denies it with TargetNotFound, so
		// the record shows what was asked and why it was refused.
	default:
		return ProposeResult{}, fmt.Errorf("failed to read the target: %w", err)
	}
	fp := args.Fingerprint
	if fp == "" {
		fp = fmt.Sprintf("%s/%s/%s/from-%d/to-%d", tendv1.ActionRollbackWorkload, args.Namespace, args.Name, args.FromRevision, args.ToRevision)
	}
	risk := tendv1.Risk(args.Risk)
	if risk == "" {
		risk = tendv1.RiskMedium
	}
	refs := make([]tendv1.TelemetryRef, 0, len(args.Telemetry))
	for _, t := range args.Telemetry {
		refs = append(refs, tendv1.TelemetryRef{Subject: t.Subject, Sequence: t.Sequence, ID: t.ID})
	}
	expires := metav1.NewTime(time.Now().Add(s.opts.Expiry))
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    args.Namespace,
			GenerateName: "rollback-" + shorten(args.Name, 40) + "-",
			Labels:       map[string]string{LabelFingerprint: fingerprintLabel(fp)},
		},
		Spec: tendv1.ProposalSpec{
			Action:     tendv1.ActionRollbackWorkload,
			Target:     target,
			Parameters: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{ToRevision: args.ToRevision, FromRevision: args.FromRevision}},
			Evidence:   tendv1.Evidence{Summary: args.Summary, Telemetry: refs},
			Rationale:  args.Rationale,
			Risk:       risk,
			// The proposer is the authenticated caller, never an argument.
			Proposer:    tendv1.Proposer{Username: id.Username, Groups: id.Groups, Agent: args.Agent},
			Fingerprint: fp,
			ExpiresAt:   &expires,
		},
	}
	return s.create(ctx, p)
}

// create makes the proposal unless an open one with the same fingerprint
// exists, then waits for the gate's decision.
func (s *Server) create(ctx context.Context, p *tendv1.Proposal) (ProposeResult, error) {
	var open tendv1.ProposalList
	if err := s.opts.Client.List(ctx, &open, client.InNamespace(p.Namespace), client.MatchingLabels{LabelFingerprint: p.Labels[LabelFingerprint]}); err != nil {
		return ProposeResult{}, fmt.Errorf("failed to look for duplicates: %w", err)
	}
	for i := range open.Items {
		if q := &open.Items[i]; !q.Status.Phase.Terminal() && q.Spec.Fingerprint == p.Spec.Fingerprint {
			return s.repeat(ctx, q), nil
		}
	}
	if err := s.opts.Client.Create(ctx, p); err != nil {
		return ProposeResult{}, fmt.Errorf("failed to create proposal: %w", err)
	}
	decided, err := s.awaitDecision(ctx, p)
	if err != nil {
		return ProposeResult{}, err
	}
	return resultOf(decided), nil
}

// repeat records a repeat of the open proposal q and returns it.
func (s *Server) repeat(ctx context.Context, q *tendv1.Proposal) ProposeResult {
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

func (s *Server) getProposal(ctx context.Context, _ mcpgo.CallToolRequest, args GetProposalArgs) (ProposalView, error) {
	if err := args.validate(); err != nil {
		return ProposalView{}, err
	}
	if _, err := s.caller(ctx, authzv1.ResourceAttributes{
		Namespace: args.Namespace, Verb: "get", Group: tendv1.GroupVersion.Group, Resource: "proposals", Name: args.Name,
	}); err != nil {
		return ProposalView{}, err
	}
	p := &tendv1.Proposal{}
	if err := s.opts.Client.Get(ctx, client.ObjectKey{Namespace: args.Namespace, Name: args.Name}, p); err != nil {
		return ProposalView{}, fmt.Errorf("failed to get proposal: %w", err)
	}
	v := ProposalView{
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

func resultOf(p *tendv1.Proposal) ProposeResult {
	r := ProposeResult{Namespace: p.Namespace, Name: p.Name, Phase: string(p.Status.Phase), Message: p.Status.Message}
	if r.Phase == "" {
		r.Phase = string(tendv1.PhasePending)
	}
	if d := p.Status.Decision; d != nil {
		r.Outcome = string(d.Outcome)
		r.RequiredApprovals = d.RequiredApprovals
		for _, x := range d.Reasons {
			r.Reasons = append(r.Reasons, Reason{Code: x.Code, Message: x.Message, Policy: x.Policy, Rule: x.Rule, Guard: x.Guard})
		}
	}
	if r.Message == "" {
		r.Message = "Created; the gate has not decided yet. Check again with get_proposal."
	}
	return r
}

func fingerprintLabel(fp string) string {
	sum := sha256.Sum256([]byte(fp))
	return hex.EncodeToString(sum[:])[:40]
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
