package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch

// scaleWorkload sets a Deployment's or StatefulSet's replica count, unless
// a HorizontalPodAutoscaler owns it: then the proposal is refused, and
// SetAutoscaler is the way. Verified when the rollout is complete at the
// new count; undone by restoring the previous count.
type scaleWorkload struct{ base }

var _ Action = (*scaleWorkload)(nil)

// scaleUndo is the undo state: the replicas before.
type scaleUndo struct {
	Replicas int32 `json:"replicas"`
}

func (a *scaleWorkload) Info() tendv1.ActionInfo { return info(tendv1.ActionScaleWorkload) }

func (a *scaleWorkload) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	s := p.Spec.Parameters.Scale
	if s == nil || s.Replicas < 0 {
		return fmt.Errorf("%w: ScaleWorkload needs scale.replicas (0 or more)", ErrInvalidParameters)
	}
	return nil
}

// Facts are the workload's replicas; a scale down disrupts the pods it
// removes. An autoscaler that targets the workload refuses the proposal.
func (a *scaleWorkload) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f := workloadFacts(target)
	want := p.Spec.Parameters.Scale.Replicas
	removed := max(f.Replicas-want, 0)
	f.Disruption = &tendv1.DisruptionFacts{PodsAffected: removed}
	if f.Replicas > 0 {
		f.Disruption.Percent = removed * 100 / f.Replicas
	}
	hpa, err := autoscalerOf(ctx, a.opts.Client, target)
	if err != nil {
		return f, 0, err
	}
	if hpa != nil {
		return f, 0, refuse(ReasonAutoscalerOwnsReplicas, "HorizontalPodAutoscaler %s scales %s %s between %d and %d replicas; propose SetAutoscaler to change its bounds",
			hpa.Name, p.Spec.Target.Kind, p.Spec.Target.Name, ptr.Deref(hpa.Spec.MinReplicas, 1), hpa.Spec.MaxReplicas)
	}
	return f, 0, nil
}

// autoscalerOf returns the HorizontalPodAutoscaler that scales obj, if any.
func autoscalerOf(ctx context.Context, c client.Reader, obj client.Object) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil, fmt.Errorf("failed to list autoscalers: %w", err)
	}
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		switch obj.(type) {
		case *appsv1.Deployment:
			kind = "Deployment"
		case *appsv1.StatefulSet:
			kind = "StatefulSet"
		}
	}
	for i := range list.Items {
		ref := list.Items[i].Spec.ScaleTargetRef
		if ref.Kind == kind && ref.Name == obj.GetName() {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

func (a *scaleWorkload) Digest(target client.Object) (string, error) {
	return digestOf(replicasOf(target))
}

func replicasOf(obj client.Object) *int32 {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return w.Spec.Replicas
	case *appsv1.StatefulSet:
		return w.Spec.Replicas
	}
	return nil
}

func setReplicas(obj client.Object, n int32) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		w.Spec.Replicas = ptr.To(n)
	case *appsv1.StatefulSet:
		w.Spec.Replicas = ptr.To(n)
	}
}

func (a *scaleWorkload) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	want := p.Spec.Parameters.Scale.Replicas
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		had := ptr.Deref(replicasOf(obj), 1)
		if had == want {
			return "", "", "", refuse(ReasonNoChange, "%s %s already has %d replicas", p.Spec.Target.Kind, p.Spec.Target.Name, want)
		}
		setReplicas(obj, want)
		undo, _ := json.Marshal(scaleUndo{Replicas: had})
		return fmt.Sprintf("%d replicas", had), fmt.Sprintf("%d replicas", want), string(undo), nil
	}, a.Digest)
}

func (a *scaleWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	pods, err := currentWorkloadPods(ctx, a.opts.Client, obj)
	if err != nil {
		return Verification{}, err
	}
	return rolloutVerification(obj, pods, ptr.Deref(replicasOf(obj), 1)), nil
}

func (a *scaleWorkload) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, func(obj client.Object, state string) (string, string, error) {
		var u scaleUndo
		if err := json.Unmarshal([]byte(state), &u); err != nil {
			return "", "", fmt.Errorf("%w: the apply recorded no replica count: %v", ErrInvalidParameters, err)
		}
		had := ptr.Deref(replicasOf(obj), 1)
		setReplicas(obj, u.Replicas)
		return fmt.Sprintf("%d replicas", had), fmt.Sprintf("%d replicas", u.Replicas), nil
	}, a.Digest)
}

func (a *scaleWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
