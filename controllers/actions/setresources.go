package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=limitranges;resourcequotas,verbs=get;list;watch

// setResources sets the requests and limits of one container of a
// workload's pod template. A value outside the namespace's LimitRange, or a
// change that would exceed its ResourceQuota, is refused with the reason.
// Verified when the rollout is complete and no container was OOMKilled
// since; undone by restoring the container's previous requests and limits.
type setResources struct{ base }

var _ Action = (*setResources)(nil)

// resourcesUndo is the undo state: the container's requirements before.
type resourcesUndo struct {
	Container string                      `json:"container"`
	Before    corev1.ResourceRequirements `json:"before"`
}

func (a *setResources) Info() tendv1.ActionInfo { return info(tendv1.ActionSetResources) }

func (a *setResources) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	r := p.Spec.Parameters.Resources
	if r == nil || r.Container == "" || (len(r.Requests) == 0 && len(r.Limits) == 0) {
		return fmt.Errorf("%w: SetResources needs resources.container and requests or limits", ErrInvalidParameters)
	}
	for _, l := range []corev1.ResourceList{r.Requests, r.Limits} {
		for name, q := range l {
			if !slices.Contains([]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}, name) || q.Sign() <= 0 {
				return fmt.Errorf("%w: %s %s: only positive cpu, memory and ephemeral-storage", ErrInvalidParameters, name, q.String())
			}
		}
	}
	for name, l := range r.Limits {
		if q, ok := r.Requests[name]; ok && q.Cmp(l) > 0 {
			return fmt.Errorf("%w: the %s request is above its limit", ErrInvalidParameters, name)
		}
	}
	return nil
}

// container returns the named container of a pod template.
func container(t *corev1.PodTemplateSpec, name string) *corev1.Container {
	for i := range t.Spec.Containers {
		if t.Spec.Containers[i].Name == name {
			return &t.Spec.Containers[i]
		}
	}
	return nil
}

// merged is the container's requirements with the proposal's values set.
func merged(cur corev1.ResourceRequirements, r *tendv1.ResourcesParameters) corev1.ResourceRequirements {
	out := *cur.DeepCopy()
	if out.Requests == nil && len(r.Requests) > 0 {
		out.Requests = corev1.ResourceList{}
	}
	if out.Limits == nil && len(r.Limits) > 0 {
		out.Limits = corev1.ResourceList{}
	}
	for k, v := range r.Requests {
		out.Requests[k] = v
	}
	for k, v := range r.Limits {
		out.Limits[k] = v
	}
	return out
}

// Facts are the workload's replicas and rollout disruption, and the
// container's current requirements. A value the LimitRange or the
// ResourceQuota rules out refuses the proposal.
func (a *setResources) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f := workloadFacts(target)
	r := p.Spec.Parameters.Resources
	t, _ := workload.Template(target)
	c := container(t, r.Container)
	if c == nil {
		return f, 0, refuse(ReasonContainerNotFound, "the pod template of %s %s has no container %q", p.Spec.Target.Kind, p.Spec.Target.Name, r.Container)
	}
	inForce, err := a.admitted(ctx, target.GetNamespace(), c.Resources)
	if err != nil {
		return f, 0, err
	}
	f.Resources = resourceFacts(c.Name, inForce)
	next := merged(c.Resources, r)
	for name, req := range next.Requests {
		if lim, ok := next.Limits[name]; ok && req.Cmp(lim) > 0 {
			return f, 0, refuse(ReasonRequestAboveLimit, "container %s would request %s %s above its limit %s; set the request too", r.Container, req.String(), name, lim.String())
		}
	}
	if err := a.withinLimitRanges(ctx, target.GetNamespace(), next); err != nil {
		return f, 0, err
	}
	return f, 0, a.withinQuotas(ctx, target.GetNamespace(), c.Resources, next, f.Replicas)
}

// admitted is what a container with requirements r runs under in
// namespace ns: r, with what it leaves unset filled in from the defaults of
// the namespace's Container LimitRanges, as the API server's LimitRanger
// admission fills them into every new pod (the first LimitRange to set a
// default wins; a default limit is also the default request when no
// default request is set). A template that sets no memory limit under a
// LimitRange's default runs limited by that default: raising it is not
// limiting it for the first time.
func (a *setResources) admitted(ctx context.Context, ns string, r corev1.ResourceRequirements) (corev1.ResourceRequirements, error) {
	var list corev1.LimitRangeList
	if err := a.opts.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return r, fmt.Errorf("failed to list limit ranges: %w", err)
	}
	out := *r.DeepCopy()
	for _, lr := range list.Items {
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer {
				continue
			}
			for name, q := range item.Default {
				if _, set := out.Limits[name]; !set {
					if out.Limits == nil {
						out.Limits = corev1.ResourceList{}
					}
					out.Limits[name] = q
				}
			}
			for name, q := range item.DefaultRequest {
				if _, set := out.Requests[name]; !set {
					if out.Requests == nil {
						out.Requests = corev1.ResourceList{}
					}
					out.Requests[name] = q
				}
			}
		}
	}
	for name, q := range out.Limits {
		if _, set := out.Requests[name]; !set {
			if out.Requests == nil {
				out.Requests = corev1.ResourceList{}
			}
			out.Requests[name] = q
		}
	}
	return out, nil
}

// resourceFacts turns requirements into the gate's numbers.
func resourceFacts(name string, r corev1.ResourceRequirements) *tendv1.ResourceFacts {
	return &tendv1.ResourceFacts{
		Container:          name,
		CPURequestMilli:    r.Requests.Cpu().MilliValue(),
		CPULimitMilli:      r.Limits.Cpu().MilliValue(),
		MemoryRequestBytes: r.Requests.Memory().Value(),
		MemoryLimitBytes:   r.Limits.Memory().Value(),
	}
}

// withinLimitRanges refuses requirements outside a Container LimitRange of
// the namespace.
func (a *setResources) withinLimitRanges(ctx context.Context, ns string, r corev1.ResourceRequirements) error {
	var list corev1.LimitRangeList
	if err := a.opts.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("failed to list limit ranges: %w", err)
	}
	for _, lr := range list.Items {
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer {
				continue
			}
			for name, maxQ := range item.Max {
				for what, l := range map[string]corev1.ResourceList{"limit": r.Limits, "request": r.Requests} {
					if q, ok := l[name]; ok && q.Cmp(maxQ) > 0 {
						return refuse(ReasonLimitRange, "the %s %s %s is above LimitRange %s's maximum %s", name, what, q.String(), lr.Name, maxQ.String())
					}
				}
			}
			for name, minQ := range item.Min {
				for what, l := range map[string]corev1.ResourceList{"limit": r.Limits, "request": r.Requests} {
					if q, ok := l[name]; ok && q.Cmp(minQ) < 0 {
						return refuse(ReasonLimitRange, "the %s %s %s is below LimitRange %s's minimum %s", name, what, q.String(), lr.Name, minQ.String())
					}
				}
			}
			for name, ratio := range item.MaxLimitRequestRatio {
				req, hasReq := r.Requests[name]
				lim, hasLim := r.Limits[name]
				if hasReq && hasLim && req.Sign() > 0 && float64(lim.MilliValue())/float64(req.MilliValue()) > ratio.AsApproximateFloat64() {
					return refuse(ReasonLimitRange, "the %s limit %s is more than %s times the request %s (LimitRange %s)", name, lim.String(), ratio.String(), req.String(), lr.Name)
				}
			}
		}
	}
	return nil
}

// withinQuotas refuses a change whose added requests or limits, over the
// workload's replicas, would exceed a ResourceQuota's hard limit.
func (a *setResources) withinQuotas(ctx context.Context, ns string, before, after corev1.ResourceRequirements, replicas int32) error {
	var list corev1.ResourceQuotaList
	if err := a.opts.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("failed to list resource quotas: %w", err)
	}
	for _, q := range list.Items {
		for name, hard := range q.Spec.Hard {
			var b, n resource.Quantity
			switch name {
			case corev1.ResourceRequestsCPU, corev1.ResourceCPU:
				b, n = before.Requests[corev1.ResourceCPU], after.Requests[corev1.ResourceCPU]
			case corev1.ResourceRequestsMemory, corev1.ResourceMemory:
				b, n = before.Requests[corev1.ResourceMemory], after.Requests[corev1.ResourceMemory]
			case corev1.ResourceLimitsCPU:
				b, n = before.Limits[corev1.ResourceCPU], after.Limits[corev1.ResourceCPU]
			case corev1.ResourceLimitsMemory:
				b, n = before.Limits[corev1.ResourceMemory], after.Limits[corev1.ResourceMemory]
			default:
				continue
			}
			delta := n.DeepCopy()
			delta.Sub(b)
			if delta.Sign() <= 0 {
				continue
			}
			used := q.Status.Used[name]
			total := used.DeepCopy()
			for range replicas {
				total.Add(delta)
			}
			if total.Cmp(hard) > 0 {
				return refuse(ReasonQuota, "ResourceQuota %s: %s would be %s over %d replicas, above its hard limit %s (used %s)", q.Name, name, total.String(), replicas, hard.String(), used.String())
			}
		}
	}
	return nil
}

func (a *setResources) Digest(target client.Object) (string, error) { return templateDigest(target) }

func (a *setResources) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	r := p.Spec.Parameters.Resources
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		t, _ := workload.Template(obj)
		c := container(t, r.Container)
		if c == nil {
			return "", "", "", refuse(ReasonContainerNotFound, "the pod template has no container %q", r.Container)
		}
		before := c.Resources
		c.Resources = merged(before, r)
		undo, err := json.Marshal(resourcesUndo{Container: c.Name, Before: before})
		if err != nil {
			return "", "", "", err
		}
		return describeResources(c.Name, before), describeResources(c.Name, c.Resources), string(undo), nil
	}, templateDigest)
}

func describeResources(name string, r corev1.ResourceRequirements) string {
	return fmt.Sprintf("%s: requests %s, limits %s", name, quantities(r.Requests), quantities(r.Limits))
}

func quantities(l corev1.ResourceList) string {
	if len(l) == 0 {
		return "none"
	}
	out := ""
	for _, k := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := l[k]; ok {
			if out != "" {
				out += " "
			}
			out += string(k) + "=" + q.String()
		}
	}
	return out
}

// Verify checks the rollout, and that no container of the workload was
// OOMKilled since the apply.
func (a *setResources) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	pods, err := currentWorkloadPods(ctx, a.opts.Client, obj)
	if err != nil {
		return Verification{}, err
	}
	desired, _ := workload.Replicas(obj)
	v := rolloutVerification(obj, pods, desired)
	oom := tendv1.Check{Name: "NoOOMKilled", Passed: true, Message: "no container was OOMKilled since the change"}
	if rec := p.Status.Apply; rec != nil {
		if c := workload.TerminatedWithin(pods, "OOMKilled", rec.StartedAt.Time); c != "" {
			oom = tendv1.Check{Name: "NoOOMKilled", Message: c + " was OOMKilled since the change"}
		}
	}
	v.Checks = append(v.Checks, oom)
	return v, nil
}

func (a *setResources) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, func(obj client.Object, state string) (string, string, error) {
		var u resourcesUndo
		if err := json.Unmarshal([]byte(state), &u); err != nil || u.Container == "" {
			return "", "", fmt.Errorf("%w: the apply recorded no requirements to restore", ErrInvalidParameters)
		}
		t, _ := workload.Template(obj)
		c := container(t, u.Container)
		if c == nil {
			return "", "", fmt.Errorf("%w: the pod template has no container %q any more", ErrStale, u.Container)
		}
		before := c.Resources
		c.Resources = u.Before
		return describeResources(c.Name, before), describeResources(c.Name, c.Resources), nil
	}, templateDigest)
}

func (a *setResources) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
