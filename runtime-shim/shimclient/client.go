package shimclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
)

// DefaultTokenLifetime is how long an attempt token is valid by default.
const DefaultTokenLifetime = 5 * time.Minute

// Errors of a call, besides *Error.
var (
	// ErrNoShim: no shim serves that node (nobody answered the request
	// at once). Retryable.
	ErrNoShim = errors.New("shimclient: no runtime shim serves the node")
	// ErrTimeout: the shim did not answer in time. Retryable: the attempt
	// may have been carried out, and a retry with the same Attempt either
	// finishes it or replays its result.
	ErrTimeout = errors.New("shimclient: the runtime shim did not answer in time")
	// ErrBadReply: the reply does not decode or is not for this request.
	ErrBadReply = errors.New("shimclient: bad reply")
	// ErrDigestMismatch: stored diagnostics are not the ones the shim reported.
	ErrDigestMismatch = errors.New("shimclient: diagnostics digest mismatch")
)

// Error is a shim's error reply.
type Error struct {
	Node, Verb string
	Code       bus.ShimErrorCode
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("runtime shim on %s refused %s: %s: %s", e.Node, e.Verb, e.Code, e.Message)
}

// Retryable reports whether sending the same request again (same Attempt)
// may succeed.
func (e *Error) Retryable() bool { return e.Code.Retryable() }

// Retryable reports whether err, from a Client call, may go away when the
// call is made again with the same Attempt: the shim was busy, its runtime
// or stores unavailable, no shim answered, or the answer did not come in time.
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable()
	}
	return errors.Is(err, ErrNoShim) || errors.Is(err, ErrTimeout)
}

// Options configure a Client.
type Options struct {
	// Cluster is the cluster whose shims the client talks to.
	Cluster string
	// Conn is the controller's NATS connection; only the controller's
	// identity may publish shim requests.
	Conn *nats.Conn
	// JS reads diagnostics back (FetchDiagnostics); optional otherwise.
	JS jetstream.JetStream
	// Signer is the controller's nkey, whose public key the shims trust.
	Signer nkeys.KeyPair
	// TokenLifetime is how long each attempt token is valid. Default
	// DefaultTokenLifetime, at most bus.MaxAttemptLifetime.
	TokenLifetime time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Client sends the controller's requests to runtime shims.
type Client struct {
	opts Options
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	switch {
	case opts.Cluster == "":
		return nil, errors.New("shimclient: a cluster is required")
	case opts.Conn == nil:
		return nil, errors.New("shimclient: a NATS connection is required")
	case opts.Signer == nil:
		return nil, errors.New("shimclient: a signing nkey is required")
	case opts.TokenLifetime < 0 || opts.TokenLifetime > bus.MaxAttemptLifetime:
		return nil, fmt.Errorf("shimclient: the token lifetime must be at most %s", bus.MaxAttemptLifetime)
	}
	if _, err := opts.Signer.Seed(); err != nil {
		return nil, fmt.Errorf("shimclient: the signing nkey must hold its seed: %w", err)
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{opts: opts}, nil
}

// Attempt identifies one try of one catalogue action.
type Attempt struct {
	// ID is the same every time the same action is sent again, and new for
	// a new action: for example "<proposal UID>/apply/<n>". The shim keys
	// its ledger on it, so a repeated ID never acts twice. At most 256
	// printable ASCII characters.
	ID string
	// Proposal is "<namespace>/<name>" of the proposal, for the record.
	Proposal string
}

// RestartContainer stops the container p.Target on node; the kubelet then
// starts it again. Verify with Status: the container of that pod and name
// runs again with a start time after the result's StartedAt.
func (c *Client) RestartContainer(ctx context.Context, node string, a Attempt, p bus.RestartContainerParams) (*bus.RestartContainerResult, error) {
	r, err := c.Do(ctx, node, a, &bus.ShimRequest{Verb: bus.VerbRestartContainer, RestartContainer: &p})
	if err != nil {
		return nil, err
	}
	return r.RestartContainer, nil
}

// PruneImages removes unused images on node, oldest first, down to the
// target. Verify with Status: ImageFS.UsedBytes at or below the result's
// TargetUsedBytes once the runtime has measured its usage again.
func (c *Client) PruneImages(ctx context.Context, node string, a Attempt, p bus.PruneImagesParams) (*bus.PruneImagesResult, error) {
	r, err := c.Do(ctx, node, a, &bus.ShimRequest{Verb: bus.VerbPruneImages, PruneImages: &p})
	if err != nil {
		return nil, err
	}
	return r.PruneImages, nil
}

// CollectDiagnostics stores a pod's diagnostics on node in the diagnostics
// object store and returns where; FetchDiagnostics reads them.
func (c *Client) CollectDiagnostics(ctx context.Context, node string, a Attempt, p bus.CollectDiagnosticsParams) (*bus.CollectDiagnosticsResult, error) {
	r, err := c.Do(ctx, node, a, &bus.ShimRequest{Verb: bus.VerbCollectDiagnostics, CollectDiagnostics: &p})
	if err != nil {
		return nil, err
	}
	return r.CollectDiagnostics, nil
}

// Status reads node's image filesystem usage and, with p.Container, the
// newest container of that pod and name. It changes nothing, and signs its
// own one-off attempt.
func (c *Client) Status(ctx context.Context, node string, p bus.StatusParams) (*bus.StatusResult, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	r, err := c.Do(ctx, node, Attempt{ID: "status/" + hex.EncodeToString(b[:])}, &bus.ShimRequest{Verb: bus.VerbStatus, Status: &p})
	if err != nil {
		return nil, err
	}
	return r.Status, nil
}

// Do signs req for node and attempt a, sends it, and returns the shim's
// successful reply. An error reply is an *Error.
func (c *Client) Do(ctx context.Context, node string, a Attempt, req *bus.ShimRequest) (*bus.ShimReply, error) {
	req.SchemaVersion, req.Cluster, req.Node = bus.SchemaVersion, c.opts.Cluster, node
	digest, err := req.ParamsDigest()
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	req.Attempt, err = bus.SignAttempt(c.opts.Signer, bus.AttemptClaims{
		ID: a.ID, Proposal: a.Proposal, Cluster: c.opts.Cluster, Node: node, Verb: req.Verb,
		Params: digest, IssuedAt: now.UTC(), ExpiresAt: now.Add(c.opts.TokenLifetime).UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to sign the attempt: %w", err)
	}
	data, err := bus.EncodeShimRequest(req)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the %s request: %w", req.Verb, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout(req))
	defer cancel()
	msg, err := c.opts.Conn.RequestWithContext(ctx, bus.ShimSubject(c.opts.Cluster, node, req.Verb), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: %s", ErrNoShim, node)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("%w: %s on %s: %w", ErrTimeout, req.Verb, node, err)
	case err != nil:
		return nil, fmt.Errorf("failed to send %s to the shim on %s: %w", req.Verb, node, err)
	}
	reply, err := bus.DecodeShimReply(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("%w from %s: %w", ErrBadReply, node, err)
	}
	if reply.Verb != req.Verb || reply.Node != node || (reply.AttemptID != "" && reply.AttemptID != a.ID) {
		return nil, fmt.Errorf("%w: a reply for %s on %s (attempt %q) to %s on %s", ErrBadReply, reply.Verb, reply.Node, reply.AttemptID, req.Verb, node)
	}
	if reply.Error != nil {
		return nil, &Error{Node: node, Verb: req.Verb, Code: reply.Error.Code, Message: reply.Error.Message}
	}
	ok := false
	switch req.Verb {
	case bus.VerbRestartContainer:
		ok = reply.RestartContainer != nil
	case bus.VerbPruneImages:
		ok = reply.PruneImages != nil
	case bus.VerbCollectDiagnostics:
		ok = reply.CollectDiagnostics != nil
	case bus.VerbStatus:
		ok = reply.Status != nil
	}
	if !ok || reply.AttemptID != a.ID {
		return nil, fmt.Errorf("%w: the reply to %s on %s has no %s result", ErrBadReply, req.Verb, node, req.Verb)
	}
	return reply, nil
}

// Timeout is how long the client waits for the reply to req: a little
// longer than the shim gives itself.
func Timeout(req *bus.ShimRequest) time.Duration {
	switch req.Verb {
	case bus.VerbRestartContainer:
		return time.Duration(req.RestartContainer.Grace())*time.Second + 75*time.Second
	case bus.VerbPruneImages:
		return 5*time.Minute + 15*time.Second
	case bus.VerbCollectDiagnostics:
		return 2*time.Minute + 15*time.Second
	}
	return 45 * time.Second
}

// FetchDiagnostics reads stored diagnostics back, checking that they are
// the object the shim reported (its digest).
func (c *Client) FetchDiagnostics(ctx context.Context, res *bus.CollectDiagnosticsResult) (*bus.Diagnostics, error) {
	if c.opts.JS == nil {
		return nil, errors.New("shimclient: FetchDiagnostics needs a JetStream client")
	}
	if res.Bucket != bus.DiagnosticsBucket {
		return nil, fmt.Errorf("%w: diagnostics in bucket %q, not %s", ErrBadReply, res.Bucket, bus.DiagnosticsBucket)
	}
	if res.Size > bus.MaxDiagnosticsSize {
		return nil, fmt.Errorf("%w: diagnostics of %d bytes", ErrBadReply, res.Size)
	}
	obs, err := c.opts.JS.ObjectStore(ctx, res.Bucket)
	if err != nil {
		return nil, fmt.Errorf("failed to open object store %s: %w", res.Bucket, err)
	}
	r, err := obs.Get(ctx, res.Object)
	if err != nil {
		return nil, fmt.Errorf("failed to read diagnostics %s: %w", res.Object, err)
	}
	defer r.Close()
	info, err := r.Info()
	if err != nil {
		return nil, fmt.Errorf("failed to read diagnostics %s: %w", res.Object, err)
	}
	if info.Digest != res.Digest {
		return nil, fmt.Errorf("%w: %s has %s, the shim reported %s", ErrDigestMismatch, res.Object, info.Digest, res.Digest)
	}
	// Reading to the end checks the chunks against that digest.
	data, err := io.ReadAll(io.LimitReader(r, bus.MaxDiagnosticsSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read diagnostics %s: %w", res.Object, err)
	}
	return bus.DecodeDiagnostics(data)
}
