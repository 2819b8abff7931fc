package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// What the node actions (RestartContainer, PruneImages, CollectDiagnostics)
// share: the runtime shim's client, the attempt the shim's ledger knows an
// apply by, and how the shim's errors become the controller's.

// ShimClient is what the node actions need of the runtime shim's client.
// *shimclient.Client implements it.
type ShimClient interface {
	RestartContainer(ctx context.Context, node string, a shimclient.Attempt, p bus.RestartContainerParams) (*bus.RestartContainerResult, error)
	PruneImages(ctx context.Context, node string, a shimclient.Attempt, p bus.PruneImagesParams) (*bus.PruneImagesResult, error)
	CollectDiagnostics(ctx context.Context, node string, a shimclient.Attempt, p bus.CollectDiagnosticsParams) (*bus.CollectDiagnosticsResult, error)
	FetchDiagnostics(ctx context.Context, res *bus.CollectDiagnosticsResult) (*bus.Diagnostics, error)
	Status(ctx context.Context, node string, p bus.StatusParams) (*bus.StatusResult, error)
}

var _ ShimClient = (*shimclient.Client)(nil)

// ErrRejected means the runtime shim refused a request for a reason that
// sending it again cannot cure (its token was not accepted, the request
// broke the protocol, the shim failed): the proposal fails, and the error
// says what a human must look at.
var ErrRejected = errors.New("actions: the runtime shim rejected the request")

// shimStatusTimeout bounds one Status read of a verification or a dry run:
// a reconcile does not wait on a silent shim for long.
const shimStatusTimeout = 20 * time.Second

// shimAttempt is the attempt the shim's ledger keys an apply of p on. The
// controller records attempt before the apply and keeps it, so a retried
// apply (a reply lost, the controller restarted) sends the same ID, and the
// shim replays its result rather than acting twice.
func shimAttempt(p *tendv1.Proposal, attempt string) shimclient.Attempt {
	return shimclient.Attempt{ID: string(p.UID) + "/apply/" + attempt, Proposal: p.Namespace + "/" + p.Name}
}

// shimRequired refuses a node action when the controller has no shim client.
func (b base) shimRequired() error {
	if b.opts.Shim == nil {
		return refuse(ReasonNoRuntimeShim, "this controller has no runtime shim client (no NATS connection or signing key configured)")
	}
	return nil
}

// shimParams checks parameters as the shim will, before anything is sent:
// a proposal the shim would refuse as malformed is invalid now.
func shimParams(req *bus.ShimRequest) error {
	req.SchemaVersion, req.Cluster, req.Node, req.Attempt = bus.SchemaVersion, "validate", "validate", "validate"
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidParameters, err)
	}
	return nil
}

// shimFailed sorts an error of a shim call. One that may go away (the shim
// was busy or unavailable, none answered, or not in time) is returned as it
// is, and the controller calls again with the same attempt. A refusal on the
// node's state (no such container, one that is not running) denies the
// proposal: the shim refuses before it acts. Anything else fails it.
func shimFailed(node, verb string, err error) error {
	if shimclient.Retryable(err) {
		return fmt.Errorf("the runtime shim on %s did not carry out %s yet: %w", node, verb, err)
	}
	if se, ok := errors.AsType[*shimclient.Error](err); ok {
		switch se.Code {
		case bus.ShimNotFound:
			return refuse(ReasonNotOnNode, "%s", se.Error())
		case bus.ShimConflict:
			return refuse(ReasonRuntimeConflict, "%s", se.Error())
		}
	}
	return fmt.Errorf("%w: %w", ErrRejected, err)
}

// status reads node's state through its shim, bounded.
func (b base) status(ctx context.Context, node string, p bus.StatusParams) (*bus.StatusResult, error) {
	ctx, cancel := context.WithTimeout(ctx, shimStatusTimeout)
	defer cancel()
	st, err := b.opts.Shim.Status(ctx, node, p)
	if err != nil {
		return nil, shimFailed(node, bus.VerbStatus, err)
	}
	return st, nil
}

// shimServes refuses a node no runtime shim serves: a proposal for it is
// denied with the reason at once, rather than approved and never carried
// out. A shim that is busy or slow is asked again later.
func (b base) shimServes(ctx context.Context, node string) error {
	_, err := b.shimStatus(ctx, node)
	return err
}

// shimStatus is shimServes with what the shim reported.
func (b base) shimStatus(ctx context.Context, node string) (*bus.StatusResult, error) {
	st, err := b.status(ctx, node, bus.StatusParams{})
	if errors.Is(err, shimclient.ErrNoShim) {
		return nil, refuse(ReasonNoRuntimeShim, "no runtime shim serves node %s", node)
	}
	return st, err
}

// livePod reads p's target pod from the API server, refuses one that is
// not the pinned pod, and returns it with the node it runs on.
func (b base) livePod(ctx context.Context, p *tendv1.Proposal) (*corev1.Pod, error) {
	obj, err := b.get(ctx, p, true)
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if err := pinned(pod, p); err != nil {
		return nil, err
	}
	if pod.Spec.NodeName == "" {
		return nil, refuse(ReasonPodNotScheduled, "pod %s/%s runs on no node yet", pod.Namespace, pod.Name)
	}
	return pod, nil
}

// podGoneFrom reports why the pinned pod is no longer there to verify on:
// deleted or replaced by a namesake; empty when it is there.
func (b base) podGoneFrom(ctx context.Context, p *tendv1.Proposal) (string, error) {
	obj, err := b.get(ctx, p, false)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("pod %s was deleted", p.Spec.Target.Name), nil
	case err != nil:
		return "", err
	case obj.GetUID() != p.Spec.Target.UID:
		return fmt.Sprintf("pod %s was replaced by a namesake", p.Spec.Target.Name), nil
	}
	return "", nil
}

// shimRecord is the apply's record of what the shim did.
func shimRecord(p *tendv1.Proposal) (*tendv1.ShimRecord, error) {
	if a := p.Status.Apply; a != nil && a.Shim != nil {
		return a.Shim, nil
	}
	return nil, fmt.Errorf("%w: the apply recorded no result of the runtime shim", ErrInvalidParameters)
}

// timePtr is t as an API time, nil when zero.
func timePtr(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}

// mib renders bytes in MiB, for people.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
