package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

const (
	annotationRevision = "deployment.kubernetes.io/revision"
	labelTemplateHash  = "pod-template-hash"
)

// rollbackWorkload returns a Deployment to the pod template of an earlier
// revision, as `kubectl rollout undo` does. Its undo returns to the revision
// that was current before the apply.
type rollbackWorkload struct {
	opts actionOptions
}

var _ action = (*rollbackWorkload)(nil)

func (a *rollbackWorkload) Validate(p *tendv1.Proposal) error {
	t := p.Spec.Target
	if t.APIVersion != "apps/v1" || t.Kind != "Deployment" {
		return fmt.Errorf("%w: RollbackWorkload supports apps/v1 Deployment targets, not %s %s", ErrInvalidParameters, t.APIVersion, t.Kind)
	}
	if t.Namespace == "" {
		return fmt.Errorf("%w: a Deployment target needs a namespace", ErrInvalidParameters)
	}
	if p.Spec.Parameters.Scale != nil || len(p.Spec.Parameters.Patch) > 0 {
		return fmt.Errorf("%w: RollbackWorkload takes only rollback parameters", ErrInvalidParameters)
	}
	if r := p.Spec.Parameters.Rollback; r != nil && r.ToRevision != 0 && r.ToRevision == r.FromRevision {
		return fmt.Errorf("%w: toRevision equals fromRevision (%d)", ErrInvalidParameters, r.ToRevision)
	}
	return nil
}

func (a *rollbackWorkload) Target(ctx context.Context, p *tendv1.Proposal) (client.Object, error) {
	d := &appsv1.Deployment{}
	key := client.ObjectKey{Namespace: p.Spec.Target.Namespace, Name: p.Spec.Target.Name}
	if err := a.opts.Client.Get(ctx, key, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Facts reads the Deployment's replicas and rollout history: which
// revision the rollback returns to (resolving "the one before"), and
// whether that revision ran healthy, by tend's record on its ReplicaSet or
// live.
func (a *rollbackWorkload) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	d, ok := target.(*appsv1.Deployment)
	if !ok {
		return tendv1.Facts{}, 0, fmt.Errorf("%w: target is a %T, not a Deployment", ErrInvalidParameters, target)
	}
	f := tendv1.Facts{
		TargetExists: true, TargetGeneration: d.Generation,
		Replicas: ptr.Deref(d.Spec.Replicas, 1), ReadyReplicas: d.Status.ReadyReplicas,
	}
	pods, pct := deploymentDisruption(d)
	f.Disruption = &tendv1.DisruptionFacts{PodsAffected: pods, Percent: pct}
	rss, err := a.replicaSets(ctx, d)
	if err != nil {
		return f, 0, err
	}
	current := revision(d)
	rf := &tendv1.RevisionFacts{Current: current}
	f.Revision = rf
	to := int64(0)
	if r := p.Spec.Parameters.Rollback; r != nil {
		to = r.ToRevision
	}
	if to == 0 {
		to = previousRevision(rss, current)
	}
	if to == 0 {
		rf.Evidence = fmt.Sprintf("the Deployment has no revision older than %d", current)
		return f, 0, nil
	}
	rf.To = to
	idx := slices.IndexFunc(rss, func(rs appsv1.ReplicaSet) bool { return revision(&rs) == to })
	switch {
	case to == current:
		rf.Evidence = fmt.Sprintf("revision %d is the current one", to)
		return f, 0, nil
	case idx < 0:
		rf.Evidence = fmt.Sprintf("revision %d is no longer kept", to)
		return f, 0, nil
	}
	rpods, err := replicaSetPods(ctx, a.opts.Client, &rss[idx])
	if err != nil {
		return f, 0, err
	}
	h := judgeRevision(&rss[idx], rpods, a.opts.Now(), a.opts.HealthyWindow)
	rf.ToHealthy, rf.Evidence = h.healthy, truncate(h.evidence, 1024)
	return f, h.wait, nil
}

// Digest is the digest of the Deployment's pod template: what a rollback
// writes.
func (a *rollbackWorkload) Digest(target client.Object) (string, error) {
	d, ok := target.(*appsv1.Deployment)
	if !ok {
		return "", fmt.Errorf("%w: target is a %T, not a Deployment", ErrInvalidParameters, target)
	}
	return digestOf(d.Spec.Template)
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

// previousRevision is the newest revision among rss older than current, or 0.
func previousRevision(rss []appsv1.ReplicaSet, current int64) int64 {
	var to int64
	for i := range rss {
		if r := revision(&rss[i]); r < current && r > to {
			to = r
		}
	}
	return to
}

// decidedRevision is the revision the gate decided a rollback returns to:
// the proposal's, or the one the controller resolved "the one before" to
// when it decided.
func decidedRevision(p *tendv1.Proposal) int64 {
	if r := p.Spec.Parameters.Rollback; r != nil && r.ToRevision != 0 {
		return r.ToRevision
	}
	if d := p.Status.Decision; d != nil && d.Facts != nil && d.Facts.Revision != nil {
		return d.Facts.Revision.To
	}
	return 0
}

func (a *rollbackWorkload) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (applyResult, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return applyResult{}, fmt.Errorf("failed to get deployment: %w", err)
	}
	d := obj.(*appsv1.Deployment)
	current := revision(d)
	if d.Annotations[AnnotationApplied] == marker(p, attempt) {
		return applyResult{AlreadyApplied: true, ResourceVersion: d.ResourceVersion, Generation: d.Generation}, nil
	}
	t := p.Spec.Target
	if t.UID != "" && d.UID != t.UID {
		return applyResult{}, fmt.Errorf("%w: deployment was recreated (uid %s, proposal saw %s)", ErrStale, d.UID, t.UID)
	}
	if t.Generation != 0 && d.Generation != t.Generation {
		return applyResult{}, fmt.Errorf("%w: deployment spec changed (generation %d, proposal saw %d)", ErrStale, d.Generation, t.Generation)
	}
	var params tendv1.RollbackParameters
	if p.Spec.Parameters.Rollback != nil {
		params = *p.Spec.Parameters.Rollback
	}
	if params.FromRevision != 0 && params.FromRevision != current {
		return applyResult{}, fmt.Errorf("%w: deployment is at revision %d, proposal saw %d", ErrStale, current, params.FromRevision)
	}
	to := decidedRevision(p)
	if to == 0 {
		return applyResult{}, fmt.Errorf("%w: the decision names no revision to return to", ErrInvalidParameters)
	}
	return a.rollTo(ctx, d, to, marker(p, attempt), dryRun)
}

func (a *rollbackWorkload) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (applyResult, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return applyResult{}, fmt.Errorf("failed to get deployment: %w", err)
	}
	d := obj.(*appsv1.Deployment)
	if d.Annotations[AnnotationApplied] == marker(p, attempt) {
		return applyResult{AlreadyApplied: true, ResourceVersion: d.ResourceVersion, Generation: d.Generation}, nil
	}
	applied := p.Status.Apply
	if applied == nil || applied.PreviousRevision == 0 {
		return applyResult{}, fmt.Errorf("%w: no applied change with a previous revision to undo", ErrInvalidParameters)
	}
	if d.Annotations[AnnotationApplied] != marker(p, applied.Attempt) ||
		(applied.ResultingGeneration != 0 && d.Generation != applied.ResultingGeneration) {
		return applyResult{}, fmt.Errorf("%w: deployment changed after tend applied the proposal; not undoing over it", ErrStale)
	}
	return a.rollTo(ctx, d, applied.PreviousRevision, marker(p, attempt), false)
}

// rollTo writes the pod template of revision `to` into d, stamped with mark.
// The update carries d's resourceVersion, so it fails rather than overwrite
// a concurrent change.
func (a *rollbackWorkload) rollTo(ctx context.Context, d *appsv1.Deployment, to int64, mark string, dryRun bool) (applyResult, error) {
	current := revision(d)
	rss, err := a.replicaSets(ctx, d)
	if err != nil {
		return applyResult{}, err
	}
	if to == current {
		return applyResult{}, fmt.Errorf("%w: deployment %s is already at revision %d", ErrInvalidParameters, d.Name, to)
	}
	idx := slices.IndexFunc(rss, func(rs appsv1.ReplicaSet) bool { return revision(&rs) == to })
	if idx < 0 {
		return applyResult{}, fmt.Errorf("%w: revision %d of deployment %s is no longer kept", ErrInvalidParameters, to, d.Name)
	}
	tmpl := rss[idx].Spec.Template.DeepCopy()
	delete(tmpl.Labels, labelTemplateHash)

	upd := d.DeepCopy()
	upd.Spec.Template = *tmpl
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	upd.Annotations[AnnotationApplied] = mark
	opts := []client.UpdateOption{client.FieldOwner(a.opts.FieldManager)}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := a.opts.Client.Update(ctx, upd, opts...); err != nil {
		return applyResult{}, fmt.Errorf("failed to update deployment: %w", err)
	}
	digest, err := a.Digest(upd)
	if err != nil {
		return applyResult{}, err
	}
	return applyResult{
		Before:           fmt.Sprintf("revision %d", current),
		After:            fmt.Sprintf("pod template of revision %d", to),
		PreviousRevision: current,
		ResourceVersion:  upd.ResourceVersion,
		Generation:       upd.Generation,
		Digest:           digest,
	}, nil
}

func (a *rollbackWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (verifyResult, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return verifyResult{}, fmt.Errorf("failed to get deployment: %w", err)
	}
	d := obj.(*appsv1.Deployment)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	rollout := tendv1.Check{Name: "RolloutComplete"}
	switch {
	case st.ObservedGeneration < d.Generation:
		rollout.Message = fmt.Sprintf("deployment controller has not observed generation %d yet", d.Generation)
	case st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want || st.Replicas != want:
		rollout.Message = fmt.Sprintf("%d desired, %d updated, %d ready, %d available, %d total", want, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.Replicas)
	default:
		rollout.Passed = true
		rollout.Message = fmt.Sprintf("%d/%d replicas updated and available", want, want)
	}

	pods, err := a.currentPods(ctx, d)
	if err != nil {
		return verifyResult{}, err
	}
	ready := tendv1.Check{Name: "PodsReady", Passed: len(pods) == int(want)}
	restarts := make(map[string]int32, len(pods))
	notReady := 0
	for i := range pods {
		pod := &pods[i]
		var n int32
		for _, cs := range pod.Status.ContainerStatuses {
			n += cs.RestartCount
			if cs.State.Waiting != nil {
				ready.Passed = false
			}
		}
		restarts[pod.Name] = n
		if !podReady(pod) {
			notReady++
			ready.Passed = false
		}
	}
	ready.Message = fmt.Sprintf("%d of %d pods of the current revision ready", len(pods)-notReady, len(pods))
	return verifyResult{Checks: []tendv1.Check{rollout, ready}, Restarts: restarts}, nil
}

// replicaSets lists the ReplicaSets controlled by d.
func (a *rollbackWorkload) replicaSets(ctx context.Context, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := a.opts.Client.List(ctx, &list, client.InNamespace(d.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list replicasets: %w", err)
	}
	out := list.Items[:0]
	for _, rs := range list.Items {
		if metav1.IsControlledBy(&rs, d) {
			out = append(out, rs)
		}
	}
	return out, nil
}

// currentPods lists the live pods of d's current revision.
func (a *rollbackWorkload) currentPods(ctx context.Context, d *appsv1.Deployment) ([]corev1.Pod, error) {
	rss, err := a.replicaSets(ctx, d)
	if err != nil {
		return nil, err
	}
	current := revision(d)
	idx := slices.IndexFunc(rss, func(rs appsv1.ReplicaSet) bool { return revision(&rs) == current })
	if idx < 0 {
		return nil, nil
	}
	rs := &rss[idx]
	var pods corev1.PodList
	if err := a.opts.Client.List(ctx, &pods, client.InNamespace(d.Namespace),
		client.MatchingLabels{labelTemplateHash: rs.Labels[labelTemplateHash]}); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	out := pods.Items[:0]
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil && metav1.IsControlledBy(&pod, rs) {
			out = append(out, pod)
		}
	}
	return out, nil
}

func revision(obj metav1.Object) int64 {
	r, err := strconv.ParseInt(obj.GetAnnotations()[annotationRevision], 10, 64)
	if err != nil {
		return 0
	}
	return r
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func marker(p *tendv1.Proposal, attempt string) string {
	return string(p.UID) + "/" + attempt
}

func (a *rollbackWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (verifyResult, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return verifyResult{}, fmt.Errorf("failed to get deployment: %w", err)
	}
	d := obj.(*appsv1.Deployment)
	check := tendv1.Check{Name: "UndoObserved"}
	rb := p.Status.Rollback
	switch {
	case rb == nil || d.Annotations[AnnotationApplied] != marker(p, rb.Attempt):
		check.Message = "the deployment no longer carries tend's undo"
	case d.Status.ObservedGeneration < rb.ResultingGeneration:
		check.Message = fmt.Sprintf("the deployment controller has not observed generation %d yet", rb.ResultingGeneration)
	default:
		check.Passed = true
		check.Message = fmt.Sprintf("the deployment controller rolls out the restored template (generation %d)", rb.ResultingGeneration)
	}
	return verifyResult{Checks: []tendv1.Check{check}}, nil
}
