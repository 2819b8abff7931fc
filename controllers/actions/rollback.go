package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets;controllerrevisions,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// rollbackWorkload returns a workload to the pod template of an earlier
// revision, as `kubectl rollout undo` does: a Deployment's revisions are its
// ReplicaSets, a StatefulSet's or DaemonSet's its ControllerRevisions. Its
// undo returns to the revision that was current before the apply.
type rollbackWorkload struct{ base }

var _ Action = (*rollbackWorkload)(nil)

// rollbackUndo is the undo state: the revision current before the apply.
type rollbackUndo struct {
	Revision int64 `json:"revision"`
}

func (a *rollbackWorkload) Info() tendv1.ActionInfo { return info(tendv1.ActionRollbackWorkload) }

func (a *rollbackWorkload) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	if params.Scale != nil || len(params.Patch) > 0 || params.Resources != nil || params.Autoscaler != nil || params.Eviction != nil || params.Drain != nil || params.Container != nil || params.Prune != nil {
		return fmt.Errorf("%w: RollbackWorkload takes only rollback parameters", ErrInvalidParameters)
	}
	if r := params.Rollback; r != nil && r.ToRevision != 0 && r.ToRevision == r.FromRevision {
		return fmt.Errorf("%w: toRevision equals fromRevision (%d)", ErrInvalidParameters, r.ToRevision)
	}
	return nil
}

// Facts reads the workload's replicas and rollout history: which revision
// the rollback returns to (resolving "the one before"), and whether that
// revision ran healthy, by tend's record on its ReplicaSet or
// ControllerRevision, or live.
func (a *rollbackWorkload) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f := workloadFacts(target)
	h, err := a.history(ctx, target)
	if err != nil {
		return f, 0, err
	}
	current := h.current
	rf := &tendv1.RevisionFacts{Current: current}
	f.Revision = rf
	to := int64(0)
	if r := p.Spec.Parameters.Rollback; r != nil {
		to = r.ToRevision
	}
	if to == 0 {
		to = h.previous(current)
	}
	if to == 0 {
		rf.Evidence = fmt.Sprintf("the %s has no revision older than %d", kindOf(target), current)
		return f, 0, nil
	}
	rf.To = to
	switch {
	case to == current:
		rf.Evidence = fmt.Sprintf("revision %d is the current one", to)
		return f, 0, nil
	case !h.kept(to):
		rf.Evidence = fmt.Sprintf("revision %d is no longer kept", to)
		return f, 0, nil
	}
	health, err := h.judge(ctx, a.opts.Client, to, a.opts.Now(), a.opts.HealthyWindow)
	if err != nil {
		return f, 0, err
	}
	rf.ToHealthy, rf.Evidence = health.Healthy, truncate(health.Evidence, 1024)
	return f, health.Wait, nil
}

// history is a workload's rollout history: a Deployment's ReplicaSets, or a
// StatefulSet's or DaemonSet's ControllerRevisions.
type history struct {
	obj     client.Object
	current int64
	rss     []appsv1.ReplicaSet
	crs     []appsv1.ControllerRevision
}

// history reads obj's rollout history.
func (a *rollbackWorkload) history(ctx context.Context, obj client.Object) (*history, error) {
	h := &history{obj: obj}
	if d, ok := obj.(*appsv1.Deployment); ok {
		rss, err := workload.ReplicaSets(ctx, a.opts.Client, d)
		if err != nil {
			return nil, err
		}
		h.rss, h.current = rss, workload.Revision(d)
		return h, nil
	}
	if !workload.HasControllerRevisions(obj) {
		return nil, fmt.Errorf("%w: %s has no rollout history", ErrInvalidParameters, kindOf(obj))
	}
	crs, err := workload.ControllerRevisions(ctx, a.opts.Client, obj)
	if err != nil {
		return nil, err
	}
	h.crs, h.current = crs, workload.LatestControllerRevision(crs)
	return h, nil
}

func (h *history) previous(current int64) int64 {
	if h.crs != nil {
		return workload.PreviousControllerRevision(h.crs, current)
	}
	return workload.PreviousRevision(h.rss, current)
}

func (h *history) kept(rev int64) bool {
	if h.crs != nil {
		return workload.ControllerRevisionOf(h.crs, rev) != nil
	}
	return workload.ReplicaSetOf(h.rss, rev) != nil
}

// template is the pod template of revision rev.
func (h *history) template(rev int64) (*corev1.PodTemplateSpec, error) {
	if h.crs != nil {
		cr := workload.ControllerRevisionOf(h.crs, rev)
		if cr == nil {
			return nil, fmt.Errorf("%w: revision %d of %s %s is no longer kept", ErrInvalidParameters, rev, kindOf(h.obj), h.obj.GetName())
		}
		return workload.RevisionTemplate(cr)
	}
	rs := workload.ReplicaSetOf(h.rss, rev)
	if rs == nil {
		return nil, fmt.Errorf("%w: revision %d of deployment %s is no longer kept", ErrInvalidParameters, rev, h.obj.GetName())
	}
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, workload.LabelTemplateHash)
	return tmpl, nil
}

// judge says whether revision rev ran healthy.
func (h *history) judge(ctx context.Context, c client.Reader, rev int64, now time.Time, window time.Duration) (workload.Health, error) {
	if h.crs != nil {
		cr := workload.ControllerRevisionOf(h.crs, rev)
		pods, err := workload.ControllerRevisionPods(ctx, c, h.obj, cr)
		if err != nil {
			return workload.Health{}, err
		}
		return workload.JudgeControllerRevision(h.obj, cr, h.current, pods, now, window), nil
	}
	rs := workload.ReplicaSetOf(h.rss, rev)
	pods, err := workload.ReplicaSetPods(ctx, c, rs)
	if err != nil {
		return workload.Health{}, err
	}
	return workload.JudgeRevision(rs, pods, now, window), nil
}

func (a *rollbackWorkload) Digest(target client.Object) (string, error) {
	return templateDigest(target)
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

func (a *rollbackWorkload) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		to := decidedRevision(p)
		if to == 0 {
			return "", "", "", fmt.Errorf("%w: the decision names no revision to return to", ErrInvalidParameters)
		}
		h, err := a.history(ctx, obj)
		if err != nil {
			return "", "", "", err
		}
		current := h.current
		if r := p.Spec.Parameters.Rollback; r != nil && r.FromRevision != 0 && r.FromRevision != current {
			return "", "", "", fmt.Errorf("%w: %s is at revision %d, proposal saw %d", ErrStale, strings.ToLower(kindOf(obj)), current, r.FromRevision)
		}
		if err := h.rollTo(to); err != nil {
			return "", "", "", err
		}
		undo, _ := json.Marshal(rollbackUndo{Revision: current})
		return fmt.Sprintf("revision %d", current), fmt.Sprintf("pod template of revision %d", to), string(undo), nil
	}, templateDigest)
}

func (a *rollbackWorkload) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, func(obj client.Object, state string) (string, string, error) {
		var u rollbackUndo
		if err := json.Unmarshal([]byte(state), &u); err != nil || u.Revision == 0 {
			return "", "", fmt.Errorf("%w: the apply recorded no revision to return to", ErrInvalidParameters)
		}
		h, err := a.history(ctx, obj)
		if err != nil {
			return "", "", err
		}
		current := h.current
		if err := h.rollTo(u.Revision); err != nil {
			return "", "", err
		}
		return fmt.Sprintf("revision %d", current), fmt.Sprintf("pod template of revision %d", u.Revision), nil
	}, templateDigest)
}

// rollTo puts the pod template of revision to into the workload.
func (h *history) rollTo(to int64) error {
	if to == h.current {
		return fmt.Errorf("%w: %s %s is already at revision %d", ErrInvalidParameters, strings.ToLower(kindOf(h.obj)), h.obj.GetName(), to)
	}
	tmpl, err := h.template(to)
	if err != nil {
		return err
	}
	t, ok := workload.Template(h.obj)
	if !ok {
		return fmt.Errorf("%w: %s has no pod template", ErrInvalidParameters, kindOf(h.obj))
	}
	*t = *tmpl
	return nil
}

func (a *rollbackWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	pods, err := currentWorkloadPods(ctx, a.opts.Client, obj)
	if err != nil {
		return Verification{}, err
	}
	desired, _ := workload.Replicas(obj)
	return rolloutVerification(obj, pods, desired), nil
}

func (a *rollbackWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
