package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// AnnotationApplied on a target records the last proposal attempt applied
// to it as "<proposal-uid>/<attempt>". It makes apply idempotent across
// controller crashes, and tells verification whose change the target
// carries.
const AnnotationApplied = "tend.dev/applied"

// Marker is what an attempt of p stamps on what it writes.
func Marker(p *tendv1.Proposal, attempt string) string {
	return string(p.UID) + "/" + attempt
}

// newObject is an empty object of the target's kind.
func newObject(t tendv1.TargetRef) (client.Object, error) {
	switch t.APIVersion + "/" + t.Kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "batch/v1/Job":
		return &batchv1.Job{}, nil
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/Pod":
		return &corev1.Pod{}, nil
	case "v1/Node":
		return &corev1.Node{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	}
	return nil, fmt.Errorf("%w: tend does not act on %s %s", ErrInvalidParameters, t.APIVersion, t.Kind)
}

// validateTarget checks that p's target is a kind its action acts on.
func validateTarget(p *tendv1.Proposal) error {
	i, ok := tendv1.LookupAction(p.Spec.Action)
	if !ok {
		return fmt.Errorf("%w: %s is not in the catalogue", ErrInvalidParameters, p.Spec.Action)
	}
	t := p.Spec.Target
	k, ok := i.Target(t.APIVersion, t.Kind)
	if !ok {
		return fmt.Errorf("%w: %s acts on %v, not %s %s", ErrInvalidParameters, p.Spec.Action, i.Kinds(), t.APIVersion, t.Kind)
	}
	if k.Namespaced != (t.Namespace != "") {
		if k.Namespaced {
			return fmt.Errorf("%w: a %s target needs a namespace", ErrInvalidParameters, t.Kind)
		}
		return fmt.Errorf("%w: a %s is cluster-scoped and takes no namespace", ErrInvalidParameters, t.Kind)
	}
	return nil
}

// get reads p's target: from the cache, or from the API server when fresh.
func (b base) get(ctx context.Context, p *tendv1.Proposal, fresh bool) (client.Object, error) {
	t := p.Spec.Target
	obj, err := newObject(t)
	if err != nil {
		return nil, err
	}
	var r client.Reader = b.opts.Client
	if fresh && b.opts.APIReader != nil {
		r = b.opts.APIReader
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Name}, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Target reads the live target from the cache.
func (b base) Target(ctx context.Context, p *tendv1.Proposal) (client.Object, error) {
	return b.get(ctx, p, false)
}

// pinned refuses a target that is not the one p pinned: recreated (another
// UID), or changed (another generation).
func pinned(obj client.Object, p *tendv1.Proposal) error {
	t := p.Spec.Target
	if obj.GetUID() != t.UID {
		return fmt.Errorf("%w: %s %s was recreated (uid %s, proposal saw %s)", ErrStale, t.Kind, t.Name, obj.GetUID(), t.UID)
	}
	if t.Generation != 0 && obj.GetGeneration() != t.Generation {
		return fmt.Errorf("%w: %s %s changed (generation %d, proposal saw %d)", ErrStale, t.Kind, t.Name, obj.GetGeneration(), t.Generation)
	}
	return nil
}

// stamp marks obj with mark.
func stamp(obj client.Object, mark string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationApplied] = mark
	obj.SetAnnotations(a)
}

// update writes obj, which carries the resourceVersion it was read at, so
// that a concurrent change makes it fail rather than be overwritten.
func (b base) update(ctx context.Context, obj client.Object, dryRun bool) error {
	opts := []client.UpdateOption{client.FieldOwner(b.opts.FieldManager)}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := b.opts.Client.Update(ctx, obj, opts...); err != nil {
		return fmt.Errorf("failed to update %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
	}
	return nil
}

// digestOf is the hex SHA-256 of v's JSON encoding.
func digestOf(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("failed to encode for a digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// edit is one action's change of one object: it edits obj in place and
// says what it was and became, and what its undo needs (JSON).
type edit func(obj client.Object) (before, after, undo string, err error)

// applyEdit applies an edit of p's target exactly once: a target already
// stamped with the attempt is reported as applied; one that is not the
// pinned object is refused; otherwise the edit is written, stamped, in one
// update carrying the read resourceVersion.
func (b base) applyEdit(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool, change edit, digest func(client.Object) (string, error)) (Result, error) {
	obj, err := b.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	mark := Marker(p, attempt)
	if obj.GetAnnotations()[AnnotationApplied] == mark {
		d, err := digest(obj)
		return Result{AlreadyApplied: true, ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(), Digest: d}, err
	}
	if err := pinned(obj, p); err != nil {
		return Result{}, err
	}
	before, after, undo, err := change(obj)
	if err != nil {
		return Result{}, err
	}
	stamp(obj, mark)
	if err := b.update(ctx, obj, dryRun); err != nil {
		return Result{}, err
	}
	d, err := digest(obj)
	if err != nil {
		return Result{}, err
	}
	return Result{Before: before, After: after, UndoState: undo, ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(), Digest: d}, nil
}

// restore is an undo of one object from the apply's undo state.
type restore func(obj client.Object, undo string) (before, after string, err error)

// undoEdit reverts an applied edit exactly once, and only over tend's own
// change: a target someone changed after the apply (another stamp, or
// another digest of what the action wrote) is left alone.
func (b base) undoEdit(ctx context.Context, p *tendv1.Proposal, attempt string, back restore, digest func(client.Object) (string, error)) (Result, error) {
	obj, err := b.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	mark := Marker(p, attempt)
	if obj.GetAnnotations()[AnnotationApplied] == mark {
		return Result{AlreadyApplied: true, ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration()}, nil
	}
	applied := p.Status.Apply
	if applied == nil || applied.CompletedAt == nil {
		return Result{}, fmt.Errorf("%w: no completed apply to undo", ErrInvalidParameters)
	}
	d, err := digest(obj)
	if err != nil {
		return Result{}, err
	}
	if obj.GetAnnotations()[AnnotationApplied] != Marker(p, applied.Attempt) || (applied.ResultDigest != "" && d != applied.ResultDigest) {
		return Result{}, fmt.Errorf("%w: %s %s changed after tend applied the proposal; not undoing over it", ErrStale, p.Spec.Target.Kind, p.Spec.Target.Name)
	}
	before, after, err := back(obj, applied.UndoState)
	if err != nil {
		return Result{}, err
	}
	stamp(obj, mark)
	if err := b.update(ctx, obj, false); err != nil {
		return Result{}, err
	}
	return Result{Before: before, After: after, ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration()}, nil
}

// undoObserved is the common VerifyUndo: the target carries the undo's
// stamp, and its controller observed the restored spec where it reports
// that.
func (b base) undoObserved(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := b.get(ctx, p, false)
	if err != nil {
		return Verification{}, err
	}
	check := tendv1.Check{Name: "UndoObserved"}
	rb := p.Status.Rollback
	observed, reports := observedGeneration(obj)
	switch {
	case rb == nil || obj.GetAnnotations()[AnnotationApplied] != Marker(p, rb.Attempt):
		check.Message = fmt.Sprintf("the %s no longer carries tend's undo", p.Spec.Target.Kind)
	case reports && observed < rb.ResultingGeneration:
		check.Message = fmt.Sprintf("its controller has not observed generation %d yet", rb.ResultingGeneration)
	default:
		check.Passed = true
		check.Message = fmt.Sprintf("the %s carries the restored spec", p.Spec.Target.Kind)
		if reports {
			check.Message += fmt.Sprintf(", and its controller observed it (generation %d)", rb.ResultingGeneration)
		}
	}
	return Verification{Checks: []tendv1.Check{check}}, nil
}

// observedGeneration is the generation obj's controller last observed, for
// kinds that report one.
func observedGeneration(obj client.Object) (int64, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Status.ObservedGeneration, true
	case *appsv1.StatefulSet:
		return o.Status.ObservedGeneration, true
	case *appsv1.DaemonSet:
		return o.Status.ObservedGeneration, true
	case *autoscalingv2.HorizontalPodAutoscaler:
		if o.Status.ObservedGeneration != nil {
			return *o.Status.ObservedGeneration, true
		}
	}
	return 0, false
}

// noUndo is the Undo of an action that cannot be undone.
func noUndo(p *tendv1.Proposal) (Result, error) {
	return Result{}, fmt.Errorf("%w: %s", ErrCannotUndo, p.Spec.Action)
}
