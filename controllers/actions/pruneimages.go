package actions

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// pruneImages removes unused images on a node through its runtime shim,
// oldest first, down to a target usage of the image filesystem. The shim
// never removes an image a container uses, the sandbox image, one the
// runtime pins, or one its own allow-list or the proposal's names.
// Verified when the image filesystem's measured usage is at or below the
// target. It cannot be undone: the images are gone (a registry has them).
type pruneImages struct{ base }

var _ Action = (*pruneImages)(nil)

// maxRemovedRecorded bounds the removed images listed on the proposal.
const maxRemovedRecorded = 32

func (a *pruneImages) Info() tendv1.ActionInfo { return info(tendv1.ActionPruneImages) }

func (a *pruneImages) Validate(p *tendv1.Proposal) error {
	if err := a.shimRequired(); err != nil {
		return err
	}
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	pr := params.Prune
	params.Prune = nil
	if !paramsEmpty(params) {
		return fmt.Errorf("%w: PruneImages takes only prune parameters", ErrInvalidParameters)
	}
	if pr == nil {
		return fmt.Errorf("%w: PruneImages needs a target: targetUsedPercent or targetUsedBytes", ErrInvalidParameters)
	}
	if (pr.TargetUsedPercent != nil) == (pr.TargetUsedBytes != nil) {
		return fmt.Errorf("%w: set exactly one of targetUsedPercent and targetUsedBytes", ErrInvalidParameters)
	}
	if (pr.TargetUsedPercent != nil && *pr.TargetUsedPercent <= 0) || (pr.TargetUsedBytes != nil && *pr.TargetUsedBytes <= 0) {
		return fmt.Errorf("%w: the target must be positive", ErrInvalidParameters)
	}
	return shimParams(&bus.ShimRequest{Verb: bus.VerbPruneImages, PruneImages: pruneParams(pr)})
}

// pruneParams are the shim's parameters of a proposal's.
func pruneParams(pr *tendv1.PruneParameters) *bus.PruneImagesParams {
	return &bus.PruneImagesParams{
		TargetUsedPercent: ptr.Deref(pr.TargetUsedPercent, 0),
		TargetUsedBytes:   ptr.Deref(pr.TargetUsedBytes, 0),
		Keep:              pr.Keep,
	}
}

// Facts are the node's state and its image filesystem's usage as the
// node's shim reports it; a node no shim serves is refused.
func (a *pruneImages) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	st, err := a.shimStatus(ctx, target.GetName())
	if err != nil {
		return tendv1.Facts{}, 0, err
	}
	f, _, err := nodeFacts(ctx, a.opts.Client, target.(*corev1.Node))
	if fs := st.ImageFS; fs != nil {
		f.ImageFS = &tendv1.ImageFSFacts{UsedBytes: fs.UsedBytes, CapacityBytes: fs.CapacityBytes}
		if fs.CapacityBytes > 0 {
			f.ImageFS.UsedPercent = int32(fs.UsedBytes * 100 / fs.CapacityBytes)
		}
	}
	return f, 0, err
}

// Digest: pruning writes nothing to the Node object.
func (a *pruneImages) Digest(client.Object) (string, error) { return "", nil }

// describeTarget says what a proposal prunes down to.
func describeTarget(pr *tendv1.PruneParameters) string {
	if pr.TargetUsedPercent != nil {
		return fmt.Sprintf("%d%% of the image filesystem", *pr.TargetUsedPercent)
	}
	return mib(*pr.TargetUsedBytes)
}

// Apply asks the node's shim to prune. A dry run reads the image
// filesystem's usage through the shim and changes nothing.
func (a *pruneImages) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	obj, err := a.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	if err := pinned(obj, p); err != nil {
		return Result{}, err
	}
	node, pr := obj.GetName(), p.Spec.Parameters.Prune
	if dryRun {
		st, err := a.status(ctx, node, bus.StatusParams{})
		if err != nil {
			return Result{}, err
		}
		before := "image filesystem usage unknown"
		if fs := st.ImageFS; fs != nil {
			before = "image filesystem " + describeUsage(fs)
		}
		return Result{Before: before, After: "unused images pruned down to " + describeTarget(pr)}, nil
	}
	res, err := a.opts.Shim.PruneImages(ctx, node, shimAttempt(p, attempt), *pruneParams(pr))
	if err != nil {
		return Result{}, shimFailed(node, bus.VerbPruneImages, err)
	}
	rec := &tendv1.PruneRecord{
		UsedBytesBefore: res.UsedBytesBefore, TargetUsedBytes: res.TargetUsedBytes, EstimatedUsedBytesAfter: res.EstimatedUsedBytesAfter,
		TargetReached: res.TargetReached, RemovedImages: int32(len(res.Removed)), FreedBytes: res.FreedBytes,
		KeptRunning: int32(res.KeptRunning), KeptInUse: int32(res.KeptInUse), KeptPinned: int32(res.KeptPinned), KeptAllowListed: int32(res.KeptAllowListed),
	}
	for _, img := range res.Removed {
		if len(rec.Removed) == maxRemovedRecorded {
			break
		}
		name := img.ID
		if len(img.Tags) > 0 {
			name = img.Tags[0]
		}
		rec.Removed = append(rec.Removed, truncate(name, 512))
	}
	after := fmt.Sprintf("%d images removed (%s freed), about %s used, target %s", len(res.Removed), mib(res.FreedBytes), mib(res.EstimatedUsedBytesAfter), mib(res.TargetUsedBytes))
	if !res.TargetReached {
		after += "; every image that may go is not expected to reach the target"
	}
	return Result{
		Before: fmt.Sprintf("image filesystem %s used", mib(res.UsedBytesBefore)), After: after,
		Shim: &tendv1.ShimRecord{Node: node, AttemptID: shimAttempt(p, attempt).ID, Prune: rec},
	}, nil
}

// describeUsage renders an image filesystem's usage.
func describeUsage(fs *bus.ImageFSUsage) string {
	s := mib(fs.UsedBytes) + " used"
	if fs.CapacityBytes > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", mib(fs.CapacityBytes), fs.UsedBytes*100/fs.CapacityBytes)
	}
	return s
}

// Verify reads the image filesystem's usage as the runtime last measured
// it, through the shim: it must be at or below the target.
func (a *pruneImages) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	rec, err := shimRecord(p)
	if err != nil || rec.Prune == nil {
		return Verification{}, fmt.Errorf("%w: the apply recorded no prune", ErrInvalidParameters)
	}
	check := tendv1.Check{Name: "ImageFSBelowTarget"}
	st, err := a.status(ctx, rec.Node, bus.StatusParams{})
	switch {
	case shimclient.Retryable(err):
		check.Message = err.Error()
	case err != nil:
		return Verification{}, err
	case st.ImageFS == nil:
		check.Message = "the runtime reports no image filesystem"
	case st.ImageFS.UsedBytes <= rec.Prune.TargetUsedBytes:
		check.Passed = true
		check.Message = fmt.Sprintf("image filesystem %s, at or below the target %s", describeUsage(st.ImageFS), mib(rec.Prune.TargetUsedBytes))
	default:
		check.Message = fmt.Sprintf("image filesystem %s, above the target %s", describeUsage(st.ImageFS), mib(rec.Prune.TargetUsedBytes))
		if !rec.Prune.TargetReached {
			check.Message += "; the shim found too few images it may remove"
		}
	}
	return Verification{Checks: []tendv1.Check{check}}, nil
}

func (a *pruneImages) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *pruneImages) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}
