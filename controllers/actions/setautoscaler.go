package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;update;patch

// setAutoscaler sets a HorizontalPodAutoscaler's bounds and average CPU
// utilization target, or points it at another workload of the kind it
// targets. Verified when the autoscaler observed its new spec and keeps its
// target within the bounds; undone by restoring them.
type setAutoscaler struct{ base }

var _ Action = (*setAutoscaler)(nil)

// autoscalerUndo is the undo state: the bounds and metrics before.
type autoscalerUndo struct {
	MinReplicas *int32                     `json:"minReplicas,omitempty"`
	MaxReplicas int32                      `json:"maxReplicas"`
	Metrics     []autoscalingv2.MetricSpec `json:"metrics,omitempty"`
	ScaleTarget string                     `json:"scaleTarget,omitempty"`
}

func (a *setAutoscaler) Info() tendv1.ActionInfo { return info(tendv1.ActionSetAutoscaler) }

func (a *setAutoscaler) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	s := p.Spec.Parameters.Autoscaler
	if s == nil || (s.MinReplicas == nil && s.MaxReplicas == nil && s.TargetCPUUtilization == nil && s.ScaleTargetName == "") {
		return fmt.Errorf("%w: SetAutoscaler needs minReplicas, maxReplicas, targetCPUUtilization or scaleTargetName", ErrInvalidParameters)
	}
	if s.MinReplicas != nil && s.MaxReplicas != nil && *s.MinReplicas > *s.MaxReplicas {
		return fmt.Errorf("%w: minReplicas is above maxReplicas", ErrInvalidParameters)
	}
	return nil
}

// cpuTarget is the autoscaler's average CPU utilization target, or 0.
func cpuTarget(h *autoscalingv2.HorizontalPodAutoscaler) int32 {
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
			return ptr.Deref(m.Resource.Target.AverageUtilization, 0)
		}
	}
	return 0
}

// Facts are the autoscaler's bounds and whether the workload it targets
// exists. A new scale target is refused unless it exists, is of the kind
// the autoscaler targets now, no other autoscaler scales it, and its
// replicas are within the bounds the autoscaler will have: pointing the
// autoscaler at it changes no replica count by itself.
func (a *setAutoscaler) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	h := target.(*autoscalingv2.HorizontalPodAutoscaler)
	ref := h.Spec.ScaleTargetRef
	current, err := getOwner(ctx, a.opts.Client, h.Namespace, ref.Kind, ref.Name)
	if err != nil {
		return tendv1.Facts{}, 0, err
	}
	f := tendv1.Facts{
		TargetExists: true, TargetGeneration: h.Generation, Replicas: h.Status.CurrentReplicas, Disruption: &tendv1.DisruptionFacts{},
		Autoscaler: &tendv1.AutoscalerFacts{MinReplicas: ptr.Deref(h.Spec.MinReplicas, 1), MaxReplicas: h.Spec.MaxReplicas,
			CurrentReplicas: h.Status.CurrentReplicas, TargetCPUUtilization: cpuTarget(h),
			ScaleTarget: ref.Name, ScaleTargetExists: current != nil},
	}
	s := p.Spec.Parameters.Autoscaler
	if s == nil || s.ScaleTargetName == "" {
		return f, 0, nil
	}
	if s.ScaleTargetName == ref.Name {
		return f, 0, refuse(ReasonNoChange, "the autoscaler already targets %s %s", ref.Kind, ref.Name)
	}
	next, err := getOwner(ctx, a.opts.Client, h.Namespace, ref.Kind, s.ScaleTargetName)
	if err != nil {
		return f, 0, err
	}
	if next == nil || ref.APIVersion != "apps/v1" {
		return f, 0, refuse(ReasonScaleTargetNotFound, "no %s %s/%s exists for the autoscaler to scale", ref.Kind, h.Namespace, s.ScaleTargetName)
	}
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := a.opts.Client.List(ctx, &list, client.InNamespace(h.Namespace)); err != nil {
		return f, 0, fmt.Errorf("failed to list autoscalers: %w", err)
	}
	for _, other := range list.Items {
		if other.UID != h.UID && other.Spec.ScaleTargetRef.Kind == ref.Kind && other.Spec.ScaleTargetRef.Name == s.ScaleTargetName {
			return f, 0, refuse(ReasonAutoscalerOwnsReplicas, "autoscaler %s already scales %s %s", other.Name, ref.Kind, s.ScaleTargetName)
		}
	}
	lo, hi := ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas
	if s.MinReplicas != nil {
		lo = *s.MinReplicas
	}
	if s.MaxReplicas != nil {
		hi = *s.MaxReplicas
	}
	if desired, _ := workload.Replicas(next); desired < lo || desired > hi {
		return f, 0, refuse(ReasonOutsideBounds, "%s %s runs %d replicas, outside the autoscaler's bounds %d-%d: pointing it there would scale it at once", ref.Kind, s.ScaleTargetName, desired, lo, hi)
	}
	return f, 0, nil
}

func (a *setAutoscaler) Digest(target client.Object) (string, error) {
	h, ok := target.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return "", fmt.Errorf("%w: %T is not an autoscaler", ErrInvalidParameters, target)
	}
	return digestOf([]any{h.Spec.MinReplicas, h.Spec.MaxReplicas, h.Spec.Metrics, h.Spec.ScaleTargetRef})
}

func describeBounds(h *autoscalingv2.HorizontalPodAutoscaler) string {
	s := fmt.Sprintf("%d-%d replicas", ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas)
	if t := cpuTarget(h); t > 0 {
		s += fmt.Sprintf(", CPU target %d%%", t)
	}
	return fmt.Sprintf("%s of %s %s", s, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
}

func (a *setAutoscaler) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	s := p.Spec.Parameters.Autoscaler
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
		undo, err := json.Marshal(autoscalerUndo{MinReplicas: h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas, Metrics: h.Spec.Metrics, ScaleTarget: h.Spec.ScaleTargetRef.Name})
		if err != nil {
			return "", "", "", err
		}
		before := describeBounds(h)
		if s.MinReplicas != nil {
			h.Spec.MinReplicas = ptr.To(*s.MinReplicas)
		}
		if s.MaxReplicas != nil {
			h.Spec.MaxReplicas = *s.MaxReplicas
		}
		if ptr.Deref(h.Spec.MinReplicas, 1) > h.Spec.MaxReplicas {
			return "", "", "", fmt.Errorf("%w: the bounds would be %d-%d", ErrInvalidParameters, ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas)
		}
		if s.TargetCPUUtilization != nil {
			setCPUTarget(h, *s.TargetCPUUtilization)
		}
		if s.ScaleTargetName != "" {
			h.Spec.ScaleTargetRef.Name = s.ScaleTargetName
		}
		return before, describeBounds(h), string(undo), nil
	}, a.Digest)
}

// setCPUTarget sets (or adds) the average CPU utilization metric.
func setCPUTarget(h *autoscalingv2.HorizontalPodAutoscaler, pct int32) {
	for i := range h.Spec.Metrics {
		m := &h.Spec.Metrics[i]
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			m.Resource.Target = autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(pct)}
			return
		}
	}
	h.Spec.Metrics = append(h.Spec.Metrics, autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(pct)}},
	})
}

// Verify checks that the autoscaler observed its spec and that its
// workload's ready replicas are within the new bounds: the bounds took
// effect, not only on paper.
func (a *setAutoscaler) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	observed := tendv1.Check{Name: "AutoscalerObserved"}
	if g := h.Status.ObservedGeneration; g != nil && *g >= h.Generation {
		observed.Passed, observed.Message = true, fmt.Sprintf("the autoscaler observed generation %d", h.Generation)
	} else {
		observed.Message = fmt.Sprintf("the autoscaler has not observed generation %d yet", h.Generation)
	}
	lo, hi := ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas
	bounds := tendv1.Check{Name: "WithinBounds"}
	ref := h.Spec.ScaleTargetRef
	switch target, err := getOwner(ctx, a.opts.Client, h.Namespace, ref.Kind, ref.Name); {
	case err != nil:
		return Verification{}, err
	case target == nil:
		bounds.Message = fmt.Sprintf("the autoscaler's target %s %s does not exist", ref.Kind, ref.Name)
	default:
		_, ready := workload.Replicas(target)
		bounds.Passed = ready >= lo && ready <= hi
		bounds.Message = fmt.Sprintf("%s %s has %d ready replicas, bounds %d-%d", ref.Kind, ref.Name, ready, lo, hi)
	}
	return Verification{Checks: []tendv1.Check{observed, bounds}}, nil
}

func (a *setAutoscaler) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, func(obj client.Object, state string) (string, string, error) {
		var u autoscalerUndo
		if err := json.Unmarshal([]byte(state), &u); err != nil || u.MaxReplicas == 0 {
			return "", "", fmt.Errorf("%w: the apply recorded no bounds to restore", ErrInvalidParameters)
		}
		h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
		before := describeBounds(h)
		h.Spec.MinReplicas, h.Spec.MaxReplicas, h.Spec.Metrics = u.MinReplicas, u.MaxReplicas, u.Metrics
		if u.ScaleTarget != "" {
			h.Spec.ScaleTargetRef.Name = u.ScaleTarget
		}
		return before, describeBounds(h), nil
	}, a.Digest)
}

func (a *setAutoscaler) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
