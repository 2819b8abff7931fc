package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// What the pod and node actions share: a pod's workload, the budgets that
// cover it, and evictions.

// ownerWorkload returns the workload that controls pod (through its
// ReplicaSet for a Deployment), or nil for a pod no workload controls.
func ownerWorkload(ctx context.Context, c client.Reader, pod *corev1.Pod) (client.Object, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, nil
	}
	key := client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}
	var obj client.Object
	switch ref.Kind {
	case "ReplicaSet":
		rs := &appsv1.ReplicaSet{}
		if err := c.Get(ctx, key, rs); err != nil {
			return nil, client.IgnoreNotFound(err)
		}
		dref := metav1.GetControllerOf(rs)
		if dref == nil || dref.Kind != "Deployment" {
			return rs, nil
		}
		obj, key.Name = &appsv1.Deployment{}, dref.Name
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	default:
		return nil, nil
	}
	if err := c.Get(ctx, key, obj); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return obj, nil
}

// ownerReplicas are the desired and ready pods of a pod's workload (a
// bare ReplicaSet's too).
func ownerReplicas(owner client.Object) (desired, ready int32) {
	if rs, ok := owner.(*appsv1.ReplicaSet); ok {
		return *rs.Spec.Replicas, rs.Status.ReadyReplicas
	}
	return workload.Replicas(owner)
}

// podFacts are the facts of an action that takes one pod down: its
// workload's replicas, and a PodDisruptionBudget that allows no disruption
// now.
func podFacts(ctx context.Context, c client.Reader, pod *corev1.Pod) (tendv1.Facts, error) {
	f := tendv1.Facts{TargetExists: true, Disruption: &tendv1.DisruptionFacts{PodsAffected: 1, Percent: 100}}
	owner, err := ownerWorkload(ctx, c, pod)
	if err != nil {
		return f, err
	}
	if owner != nil {
		f.Replicas, f.ReadyReplicas = ownerReplicas(owner)
		if f.Replicas > 0 {
			f.Disruption.Percent = 100 / f.Replicas
		}
	}
	blocking, err := blockingBudget(ctx, c, []corev1.Pod{*pod})
	if err != nil {
		return f, err
	}
	if blocking != nil {
		f.Disruption.PDB, f.Disruption.PDBAllowed = blocking.Namespace+"/"+blocking.Name, blocking.Status.DisruptionsAllowed
	}
	return f, nil
}

// blockingBudget returns a PodDisruptionBudget that evicting pods (all at
// once) would exceed: one covering more of them than it allows now.
func blockingBudget(ctx context.Context, c client.Reader, pods []corev1.Pod) (*policyv1.PodDisruptionBudget, error) {
	byNS := map[string][]corev1.Pod{}
	for _, p := range pods {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	for ns, nsPods := range byNS {
		var list policyv1.PodDisruptionBudgetList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list pod disruption budgets: %w", err)
		}
		for i := range list.Items {
			pdb := &list.Items[i]
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				continue
			}
			covered := int32(0)
			for _, p := range nsPods {
				if sel.Matches(labels.Set(p.Labels)) {
					covered++
				}
			}
			if covered > 0 && covered > pdb.Status.DisruptionsAllowed {
				return pdb, nil
			}
		}
	}
	return nil, nil
}

// evict asks the Eviction API to evict pod, so that PodDisruptionBudgets
// are honoured. A budget that refuses is a *Refusal naming it; a pod gone
// already is not an error.
func (b base) evict(ctx context.Context, pod *corev1.Pod, grace *int64, dryRun bool) error {
	ev := &policyv1.Eviction{DeleteOptions: &metav1.DeleteOptions{
		GracePeriodSeconds: grace,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	}}
	if dryRun {
		ev.DeleteOptions.DryRun = []string{metav1.DryRunAll}
	}
	err := b.opts.Client.SubResource("eviction").Create(ctx, pod, ev)
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsTooManyRequests(err):
		pdb, _ := blockingBudget(ctx, b.opts.Client, []corev1.Pod{*pod})
		name := "a PodDisruptionBudget"
		if pdb != nil {
			name = "PodDisruptionBudget " + pdb.Namespace + "/" + pdb.Name
		}
		return refuse(ReasonPodDisruptionBudget, "%s does not allow evicting %s/%s now", name, pod.Namespace, pod.Name)
	case apierrors.IsConflict(err):
		// A failed precondition: the pod with this name may be another one
		// now, or this one may have changed under the eviction. Only the
		// first means the eviction is done; the second is tried again.
		now := &corev1.Pod{}
		switch gerr := b.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(pod), now); {
		case apierrors.IsNotFound(gerr):
			return nil
		case gerr != nil:
			return fmt.Errorf("failed to evict pod %s/%s: %w", pod.Namespace, pod.Name, err)
		case now.UID != pod.UID || now.DeletionTimestamp != nil:
			return nil
		}
	}
	return fmt.Errorf("failed to evict pod %s/%s: %w", pod.Namespace, pod.Name, err)
}

// podGone reports whether the pod p's target pinned is gone or going: not
// found, another pod by that name, or terminating.
func (b base) podGone(ctx context.Context, p *tendv1.Proposal) (bool, error) {
	obj, err := b.get(ctx, p, true)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return obj.GetUID() != p.Spec.Target.UID || obj.GetDeletionTimestamp() != nil, nil
}

// replacementVerification checks that a pod is gone and that its workload
// (as recorded at decision time) is back to its desired ready replicas.
func (b base) replacementVerification(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	gone := tendv1.Check{Name: "PodGone"}
	obj, err := b.get(ctx, p, false)
	switch {
	case apierrors.IsNotFound(err), err == nil && obj.GetUID() != p.Spec.Target.UID:
		gone.Passed, gone.Message = true, "the pod is gone"
	case err != nil:
		return Verification{}, err
	default:
		gone.Message = "the pod is still there"
		if obj.GetDeletionTimestamp() != nil {
			gone.Message = "the pod is still terminating"
		}
	}
	v := Verification{Checks: []tendv1.Check{gone}}
	owner, err := b.recordedOwner(ctx, p)
	if err != nil {
		return v, err
	}
	if owner == nil {
		v.Checks = append(v.Checks, tendv1.Check{Name: "Replaced", Passed: true, Message: "no workload controls the pod; nothing replaces it"})
		return v, nil
	}
	desired, ready := ownerReplicas(owner)
	v.Checks = append(v.Checks, tendv1.Check{Name: "Replaced", Passed: ready >= desired,
		Message: fmt.Sprintf("%s %s has %d of %d pods ready", kindOf(owner), owner.GetName(), ready, desired)})
	return v, nil
}

// recordedOwner is the workload of the pod as its undo state recorded it.
func (b base) recordedOwner(ctx context.Context, p *tendv1.Proposal) (client.Object, error) {
	rec := p.Status.Apply
	if rec == nil || rec.UndoState == "" {
		return nil, nil
	}
	var o podOwner
	if err := json.Unmarshal([]byte(rec.UndoState), &o); err != nil || o.Kind == "" {
		return nil, nil
	}
	owner, err := getOwner(ctx, b.opts.Client, p.Spec.Target.Namespace, o.Kind, o.Name)
	if err == nil && owner == nil {
		return nil, errors.New("the pod's workload is gone")
	}
	return owner, err
}

// getOwner reads the workload kind/name in namespace ns; nil when there is
// none (or the kind is not a workload).
func getOwner(ctx context.Context, c client.Reader, ns, kind, name string) (client.Object, error) {
	var obj client.Object
	switch kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	default:
		return nil, nil
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return obj, nil
}

// podOwner records a pod's workload at apply time (pod actions keep it in
// the undo state, which they need for nothing else).
type podOwner struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	case *appsv1.ReplicaSet:
		return "ReplicaSet"
	}
	return fmt.Sprintf("%T", obj)
}

// ownerState is the undo state of a pod action: the pod's workload.
func ownerState(owner client.Object) string {
	if owner == nil {
		return ""
	}
	b, _ := json.Marshal(podOwner{Kind: kindOf(owner), Name: owner.GetName()})
	return string(b)
}
