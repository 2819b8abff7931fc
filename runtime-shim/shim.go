package shim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
)

// Defaults of Options.
const (
	DefaultMaxInFlight   = 4
	DefaultStateInterval = 5 * time.Second
	DefaultStatsInterval = 30 * time.Second
	DefaultImageInterval = 30 * time.Second
	DefaultPodLogRoot    = "/var/log/pods"
	// queueGroup makes one shim of a node answer each request, also while
	// two run during a rolling update.
	queueGroup = "tend-shim"
	// subscribeTimeout bounds the wait for the server to take the subscription.
	subscribeTimeout = 10 * time.Second
	// source is the envelopes' source.
	source = "runtime-shim"
)

// Options configure a Shim.
type Options struct {
	// Cluster and Node are the cluster and node this shim serves.
	Cluster, Node string
	// Runtime is the node's container runtime.
	Runtime Runtime
	// Conn and JS are the shim's NATS connection, as its own per-node user.
	Conn *nats.Conn
	JS   jetstream.JetStream
	// TrustedKeys are the public nkeys whose attempt tokens the shim
	// accepts: the proposal controller's.
	TrustedKeys []string
	// KeepImages is the node's allow-list: images PruneImages never
	// removes, whatever a request says (IDs, references, or prefixes
	// ending in "*").
	KeepImages []string
	// HostRoot is where the host's filesystem is mounted when the shim runs
	// in a container ("" when it runs on the host). The shim reads pod
	// logs and the image filesystem's capacity through it.
	HostRoot string
	// PodLogRoot is the host directory the kubelet keeps pod logs in; the
	// shim reads no log outside it. Default /var/log/pods.
	PodLogRoot string
	// MaxInFlight bounds the requests handled at once; more get a busy
	// reply. Default 4.
	MaxInFlight int
	// StateInterval, StatsInterval and ImageInterval are how often the
	// shim samples container states, container stats, and images with the
	// image filesystem. Each kind is published at most once per interval,
	// and only when it changed. A negative interval turns that kind off.
	StateInterval, StatsInterval, ImageInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate checks the options and fills in defaults.
func (o *Options) Validate() error {
	var errs []error
	if o.Cluster == "" {
		errs = append(errs, errors.New("a cluster is required"))
	}
	if err := validNodeName(o.Node); err != nil {
		errs = append(errs, err)
	}
	if o.Runtime == nil {
		errs = append(errs, errors.New("a container runtime is required"))
	}
	if o.Conn == nil || o.JS == nil {
		errs = append(errs, errors.New("a NATS connection and its JetStream client are required"))
	}
	if len(o.TrustedKeys) == 0 {
		errs = append(errs, errors.New("at least one trusted controller key is required"))
	}
	for _, k := range o.TrustedKeys {
		if _, err := nkeys.FromPublicKey(k); err != nil {
			errs = append(errs, fmt.Errorf("trusted key %q is not a public nkey: %w", k, err))
		}
	}
	for _, k := range o.KeepImages {
		if k == "" || strings.ContainsAny(k, " \t\n") {
			errs = append(errs, fmt.Errorf("keep-image pattern %q must be non-empty without spaces", k))
		}
	}
	if o.PodLogRoot == "" {
		o.PodLogRoot = DefaultPodLogRoot
	}
	if !filepath.IsAbs(o.PodLogRoot) {
		errs = append(errs, fmt.Errorf("the pod log root %q must be absolute", o.PodLogRoot))
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxInFlight < 0 {
		errs = append(errs, errors.New("max in-flight requests must be positive"))
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.StateInterval, DefaultStateInterval}, {&o.StatsInterval, DefaultStatsInterval}, {&o.ImageInterval, DefaultImageInterval}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return errors.Join(errs...)
}

// validNodeName checks a Kubernetes node name: a DNS subdomain.
func validNodeName(n string) error {
	if n == "" || len(n) > 253 {
		return fmt.Errorf("node name %q must have 1 to 253 characters", n)
	}
	for i := range len(n) {
		ch := n[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return fmt.Errorf("node name %q: only lower-case letters, digits, '-' and '.'", n)
		}
	}
	return nil
}

// Shim is the runtime shim of one node.
type Shim struct {
	opts     Options
	rt       Runtime
	instance string // this process, in the ledger
	sem      chan struct{}
	use      imageUse

	mu       sync.Mutex
	closing  bool
	inflight map[string]bool // attempt IDs being handled
	wg       sync.WaitGroup
	kv       jetstream.KeyValue
	obs      jetstream.ObjectStore
	created  map[string]time.Time // image ID -> creation, from its config
	serving  chan struct{}        // closed once the shim takes requests

	// afterStep, set by tests, is called after each step of an action
	// that has an effect or records one; an error stops the handler there
	// without a reply, as if the process had died.
	afterStep func(step string) error
}

// New returns the shim described by opts.
func New(opts Options) (*Shim, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid shim options: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Shim{
		opts:     opts,
		rt:       opts.Runtime,
		instance: hex.EncodeToString(b[:]),
		sem:      make(chan struct{}, opts.MaxInFlight),
		inflight: map[string]bool{},
		created:  map[string]time.Time{},
		serving:  make(chan struct{}),
		use:      imageUse{last: map[string]time.Time{}},
	}, nil
}

// Start serves requests and publishes telemetry until ctx is done, then
// stops taking requests and waits for those in flight. It returns an error
// only if it cannot subscribe to its requests.
func (s *Shim) Start(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("cluster", s.opts.Cluster, "node", s.opts.Node)
	ctx = logr.NewContext(ctx, log)
	// Requests outlive a shutdown signal: an action in flight finishes
	// within its own deadline.
	work := context.WithoutCancel(ctx)
	sub, err := s.opts.Conn.QueueSubscribe(bus.ShimNodeFilter(s.opts.Cluster, s.opts.Node), queueGroup, func(m *nats.Msg) {
		s.dispatch(work, m)
	})
	if err != nil {
		return fmt.Errorf("failed to subscribe to shim requests: %w", err)
	}
	if err := s.opts.Conn.FlushTimeout(subscribeTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("failed to subscribe to shim requests: %w", err)
	}
	log.Info("Serving shim requests", "subject", sub.Subject, "instance", s.instance)
	close(s.serving)
	telemetry := make(chan struct{})
	go func() {
		defer close(telemetry)
		s.runTelemetry(ctx)
	}()
	<-ctx.Done()
	// Drain rather than unsubscribe: requests the server already sent are
	// still answered, and the drain ends only once the server has taken the
	// interest away, so that no request reaches this shim after Start
	// returns. Without that wait, a request sent after a restart could go
	// to the stopped shim's queue subscription, which the server had not
	// yet dropped, and be lost until the caller's timeout.
	drained := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			log.Error(err, "Failed to stop taking shim requests")
		}
	} else {
		select {
		case <-drained:
		case <-time.After(subscribeTimeout):
			log.Info("The server did not confirm in time that this shim takes no more requests", "timeout", subscribeTimeout.String())
		}
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.wg.Wait()
	<-telemetry
	return nil
}

// dispatch handles a request in its own goroutine, within MaxInFlight.
func (s *Shim) dispatch(ctx context.Context, m *nats.Msg) {
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	select {
	case s.sem <- struct{}{}:
	default:
		s.respond(ctx, m, errorReply(verb, s.opts.Node, "", bus.ShimBusy, "the shim is handling %d requests; retry", cap(s.sem)))
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.sem
		s.respond(ctx, m, errorReply(verb, s.opts.Node, "", bus.ShimBusy, "the shim is shutting down; retry"))
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		if reply := s.handle(ctx, verb, m.Data); reply != nil {
			s.respond(ctx, m, reply)
		}
	}()
}

func (s *Shim) respond(ctx context.Context, m *nats.Msg, r *bus.ShimReply) {
	log := logr.FromContextOrDiscard(ctx)
	if r.Error != nil {
		log.Info("Refused or failed shim request", "verb", r.Verb, "attempt", r.AttemptID, "code", r.Error.Code, "message", r.Error.Message)
	} else {
		log.V(1).Info("Answered shim request", "verb", r.Verb, "attempt", r.AttemptID, "replayed", r.Replayed)
	}
	if m.Reply == "" {
		return
	}
	if err := m.Respond(bus.EncodeShimReply(r)); err != nil {
		log.Error(err, "Failed to reply to a shim request", "verb", r.Verb, "attempt", r.AttemptID)
	}
}

// handle checks a request and carries it out. It returns nil only when a
// test stopped it as if the process had died.
func (s *Shim) handle(ctx context.Context, verb string, data []byte) *bus.ShimReply {
	node := s.opts.Node
	if len(data) > bus.MaxShimRequestSize {
		return errorReply(verb, node, "", bus.ShimTooLarge, "the request has %d bytes, more than %d", len(data), bus.MaxShimRequestSize)
	}
	req, err := bus.DecodeShimRequest(data)
	if err != nil {
		return errorReply(verb, node, "", bus.ShimMalformed, "%v", err)
	}
	if req.Verb != verb {
		return errorReply(verb, node, "", bus.ShimMalformed, "the request is for %s but was sent to the %s subject", req.Verb, verb)
	}
	if req.Cluster != s.opts.Cluster || req.Node != node {
		return errorReply(verb, node, "", bus.ShimWrongNode, "this shim serves node %s of cluster %s, not %s of %s", node, s.opts.Cluster, req.Node, req.Cluster)
	}
	claims, err := bus.VerifyAttempt(req.Attempt, s.opts.TrustedKeys, s.opts.Now())
	if err == nil {
		err = claims.Matches(req)
	}
	if err != nil {
		return errorReply(verb, node, "", bus.ShimUnauthorized, "%v", err)
	}
	timeout := actionTimeout(req)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx = logr.NewContext(ctx, logr.FromContextOrDiscard(ctx).WithValues("verb", verb, "attempt", claims.ID, "proposal", claims.Proposal))
	var reply *bus.ShimReply
	switch verb {
	case bus.VerbStatus:
		reply = s.status(ctx, req.Status)
	case bus.VerbRestartContainer:
		reply = s.runAttempt(ctx, req, claims, restartAction{s: s, p: req.RestartContainer})
	case bus.VerbPruneImages:
		reply = s.runAttempt(ctx, req, claims, pruneAction{s: s, p: req.PruneImages})
	case bus.VerbCollectDiagnostics:
		reply = s.runAttempt(ctx, req, claims, diagnosticsAction{s: s, p: req.CollectDiagnostics, attempt: claims.ID})
	}
	if reply != nil {
		reply.Verb, reply.Node, reply.AttemptID = verb, node, claims.ID
	}
	return reply
}

// actionTimeout bounds the handling of one request.
func actionTimeout(req *bus.ShimRequest) time.Duration {
	switch req.Verb {
	case bus.VerbRestartContainer:
		return time.Duration(req.RestartContainer.Grace())*time.Second + time.Minute
	case bus.VerbPruneImages:
		return 5 * time.Minute
	case bus.VerbCollectDiagnostics:
		return 2 * time.Minute
	}
	return 30 * time.Second
}

func errorReply(verb, node, attempt string, code bus.ShimErrorCode, format string, args ...any) *bus.ShimReply {
	return &bus.ShimReply{
		SchemaVersion: bus.SchemaVersion, Verb: verb, Node: node, AttemptID: attempt,
		Error: shimErr(code, format, args...),
	}
}

func shimErr(code bus.ShimErrorCode, format string, args ...any) *bus.ShimError {
	return &bus.ShimError{Code: code, Message: clipText(fmt.Sprintf(format, args...), 4<<10)}
}

// failure turns an error of an action into an error reply: a missing or
// slow runtime or store may be retried, a missing object may not.
func failure(err error) *bus.ShimError {
	code := bus.ShimInternal
	switch {
	case errors.Is(err, ErrRuntimeUnavailable), errors.Is(err, errStore), errors.Is(err, context.DeadlineExceeded):
		code = bus.ShimUnavailable
	case errors.Is(err, ErrNotFound):
		code = bus.ShimNotFound
	}
	return &bus.ShimError{Code: code, Message: clipText(err.Error(), 4<<10)}
}

// step reports a step of an action to the test hook.
func (s *Shim) step(name string) error {
	if s.afterStep == nil {
		return nil
	}
	if err := s.afterStep(name); err != nil {
		return fmt.Errorf("%w after %s: %w", errStopped, name, err)
	}
	return nil
}

// errStopped marks a handler a test stopped as if the process had died.
var errStopped = errors.New("shim: stopped")

// imageUse remembers when the shim last saw a container use each image.
type imageUse struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (u *imageUse) saw(ids map[string]bool, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := range ids {
		u.last[id] = now
	}
}

func (u *imageUse) lastUsed(id string) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last[id]
}

// forget drops images that are gone, so the map stays as large as the
// node's images.
func (u *imageUse) forget(present map[string]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := range u.last {
		if !present[id] {
			delete(u.last, id)
		}
	}
}
