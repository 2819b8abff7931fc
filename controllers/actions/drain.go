package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// drainStepDelay is how soon the next step of a drain runs.
const drainStepDelay = 100 * time.Millisecond

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch

// drainNode cordons a node, then evicts its pods through the Eviction API,
// one at a time, skipping DaemonSet and mirror pods. Each eviction is
// recorded on the proposal before it is made and after it is done, so a
// restarted controller resumes where it was and never evicts a pod twice. A
// PodDisruptionBudget that refuses an eviction stops the drain, and the
// proposal names it; the budget is never violated. Verified when every
// evicted pod's workload is ready again elsewhere; undone by uncordoning.
type drainNode struct{ base }

var _ Action = (*drainNode)(nil)

func (a *drainNode) Info() tendv1.ActionInfo { return info(tendv1.ActionDrainNode) }

func (a *drainNode) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	params.Drain = nil
	if !paramsEmpty(params) {
		return fmt.Errorf("%w: DrainNode takes only drain parameters", ErrInvalidParameters)
	}
	return nil
}

// Facts are the node's state, the pods a drain evicts, the largest share
// of any workload's ready pods on it (what the drain takes down: a pod that
// is not ready, such as one on a node that stopped, serves nothing), and a
// budget the evictions would exceed.
func (a *drainNode) Facts(ctx context.Context, _ *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f, pods, err := nodeFacts(ctx, a.opts.Client, target.(*corev1.Node))
	if err != nil {
		return f, 0, err
	}
	f.Disruption = &tendv1.DisruptionFacts{PodsAffected: int32(len(pods))}
	onNode := map[string]int32{}
	owners := map[string]client.Object{}
	for i := range pods {
		owner, err := ownerWorkload(ctx, a.opts.Client, &pods[i])
		if err != nil {
			return f, 0, err
		}
		if owner == nil {
			continue
		}
		key := kindOf(owner) + "/" + pods[i].Namespace + "/" + owner.GetName()
		owners[key] = owner
		if workload.PodReady(&pods[i]) {
			onNode[key]++
		}
	}
	for key, n := range onNode {
		if desired, _ := ownerReplicas(owners[key]); desired > 0 {
			f.Disruption.Percent = max(f.Disruption.Percent, min(100, n*100/desired))
		}
	}
	blocking, err := blockingBudget(ctx, a.opts.Client, pods)
	if err != nil {
		return f, 0, err
	}
	if blocking != nil {
		f.Disruption.PDB, f.Disruption.PDBAllowed = blocking.Namespace+"/"+blocking.Name, blocking.Status.DisruptionsAllowed
	}
	return f, 0, nil
}

func (a *drainNode) Digest(target client.Object) (string, error) { return unschedulableDigest(target) }

// Apply cordons the node, then takes one step per call: it records the
// next pod to evict (Started), and on the next call evicts it, unless it is
// gone already, and records it Done; a budget that refuses records it
// Blocked and ends the drain. The controller persists the steps between
// calls.
func (a *drainNode) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	if dryRun {
		return a.applyEdit(ctx, p, attempt, true, setSchedulable(true), unschedulableDigest)
	}
	obj, err := a.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	node := obj.(*corev1.Node)
	rec := p.Status.Apply
	res := Result{Steps: slices.Clone(rec.Steps), UndoState: rec.UndoState}
	if node.Annotations[AnnotationApplied] != Marker(p, attempt) {
		if err := pinned(node, p); err != nil {
			return Result{}, err
		}
		undo, _ := json.Marshal(cordonUndo{Unschedulable: node.Spec.Unschedulable})
		res.UndoState = string(undo)
		node.Spec.Unschedulable = true
		stamp(node, Marker(p, attempt))
		if err := a.update(ctx, node, false); err != nil {
			return Result{}, err
		}
		res.InProgress, res.RequeueAfter = true, drainStepDelay
		return a.describe(res, node), nil
	}
	if slices.ContainsFunc(res.Steps, func(s tendv1.ApplyStep) bool { return s.State == tendv1.StepBlocked }) {
		return a.finish(res, node)
	}
	if t := p.Spec.Parameters.Drain; t != nil && t.TimeoutSeconds != nil && a.opts.Now().Sub(rec.StartedAt.Time) > time.Duration(*t.TimeoutSeconds)*time.Second {
		res.Steps = append(res.Steps, tendv1.ApplyStep{Action: "drain", Object: node.Name, State: tendv1.StepBlocked,
			Message: fmt.Sprintf("timed out after %ds with pods left to evict", *t.TimeoutSeconds)})
		return a.finish(res, node)
	}
	if i := slices.IndexFunc(res.Steps, func(s tendv1.ApplyStep) bool { return s.State == tendv1.StepStarted }); i >= 0 {
		if err := a.evictStep(ctx, p, &res.Steps[i]); err != nil {
			return Result{}, err
		}
		res.InProgress, res.RequeueAfter = true, drainStepDelay
		return a.describe(res, node), nil
	}
	pods, err := drainablePods(ctx, a.opts.APIReader, node.Name)
	if err != nil {
		return Result{}, err
	}
	for _, pod := range pods {
		if slices.ContainsFunc(res.Steps, func(s tendv1.ApplyStep) bool { return s.UID == string(pod.UID) }) {
			continue
		}
		if len(res.Steps) >= maxSteps {
			res.Steps = append(res.Steps[:maxSteps-1], tendv1.ApplyStep{Action: "drain", Object: node.Name, State: tendv1.StepBlocked,
				Message: fmt.Sprintf("more than %d pods to evict; tend evicts at most that many per proposal", maxSteps-1)})
			return a.finish(res, node)
		}
		owner, err := ownerWorkload(ctx, a.opts.Client, &pod)
		if err != nil {
			return Result{}, err
		}
		step := tendv1.ApplyStep{Action: "evict", Object: pod.Namespace + "/" + pod.Name, UID: string(pod.UID), State: tendv1.StepStarted}
		if owner != nil {
			step.Owner = kindOf(owner) + "/" + owner.GetName()
		}
		res.Steps = append(res.Steps, step)
		res.InProgress, res.RequeueAfter = true, drainStepDelay
		return a.describe(res, node), nil
	}
	return a.finish(res, node)
}

// maxSteps bounds the steps recorded on one proposal (the API's limit).
const maxSteps = 512

// evictStep carries out a Started eviction: a pod gone already (by UID) or
// terminating is Done without a second eviction; a budget's refusal is
// Blocked.
func (a *drainNode) evictStep(ctx context.Context, p *tendv1.Proposal, step *tendv1.ApplyStep) error {
	ns, name, _ := strings.Cut(step.Object, "/")
	pod := &corev1.Pod{}
	err := a.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod)
	switch {
	case apierrors.IsNotFound(err), err == nil && (string(pod.UID) != step.UID || pod.DeletionTimestamp != nil):
		step.State, step.Message = tendv1.StepDone, "gone"
		return nil
	case err != nil:
		return fmt.Errorf("failed to get pod %s: %w", step.Object, err)
	}
	var grace *int64
	if d := p.Spec.Parameters.Drain; d != nil {
		grace = d.GracePeriodSeconds
	}
	err = a.evict(ctx, pod, grace, false)
	var refusal *Refusal
	switch {
	case errors.As(err, &refusal):
		step.State, step.Message = tendv1.StepBlocked, truncate(refusal.Message, 512)
	case err != nil:
		return err
	default:
		step.State, step.Message = tendv1.StepDone, "evicted"
	}
	return nil
}

// finish ends the drain's apply.
func (a *drainNode) finish(res Result, node *corev1.Node) (Result, error) {
	res.InProgress = false
	res.Digest, _ = unschedulableDigest(node)
	res.ResourceVersion, res.Generation = node.ResourceVersion, node.Generation
	return a.describe(res, node), nil
}

// describe fills the result's account of the drain so far.
func (a *drainNode) describe(res Result, node *corev1.Node) Result {
	evicted, blocked := 0, ""
	for _, s := range res.Steps {
		switch s.State {
		case tendv1.StepDone, tendv1.StepSkipped:
			evicted++
		case tendv1.StepBlocked:
			blocked = s.Message
		}
	}
	res.Before = fmt.Sprintf("node %s in service", node.Name)
	res.After = fmt.Sprintf("cordoned, %d pods evicted", evicted)
	if blocked != "" {
		res.After += "; stopped: " + blocked
	}
	return res
}

// Verify checks that the node is cordoned, that no step was blocked, and
// that the workload of every evicted pod is ready again.
func (a *drainNode) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	v := Verification{Checks: []tendv1.Check{schedulabilityCheck(obj.(*corev1.Node), true)}}
	steps := p.Status.Apply.Steps
	drained := tendv1.Check{Name: "Drained", Passed: true, Message: fmt.Sprintf("%d pods evicted", len(steps))}
	for _, s := range steps {
		if s.State == tendv1.StepBlocked {
			drained = tendv1.Check{Name: "Drained", Message: "the drain stopped: " + s.Message}
			v.Hopeless = drained.Message
		}
	}
	v.Checks = append(v.Checks, drained)
	ready := tendv1.Check{Name: "WorkloadsReadyElsewhere", Passed: true}
	var waiting []string
	seen := map[string]bool{}
	for _, s := range steps {
		if s.Owner == "" || s.State == tendv1.StepBlocked || seen[s.Owner] {
			continue
		}
		seen[s.Owner] = true
		ns, _, _ := strings.Cut(s.Object, "/")
		kind, name, _ := strings.Cut(s.Owner, "/")
		owner, err := getOwner(ctx, a.opts.Client, ns, kind, name)
		if err != nil {
			return v, err
		}
		if owner == nil {
			continue
		}
		if desired, r := ownerReplicas(owner); r < desired {
			waiting = append(waiting, fmt.Sprintf("%s %s/%s %d/%d ready", kind, ns, name, r, desired))
		}
	}
	if len(waiting) > 0 {
		ready.Passed = false
		ready.Message = strings.Join(waiting, "; ")
	} else {
		ready.Message = fmt.Sprintf("the workloads of the %d evicted pods are ready", len(steps))
	}
	v.Checks = append(v.Checks, ready)
	return v, nil
}

func (a *drainNode) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, restoreSchedulable, unschedulableDigest)
}

func (a *drainNode) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
