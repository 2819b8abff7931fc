package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// rollbackWorkload returns a Deployment to the pod template of an earlier
// revision, as `kubectl rollout undo` does. Its undo returns to the revision
// that was current before the apply.
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

// Facts reads the Deployment's replicas and rollout history: which
// revision the rollback returns to (resolving "the one before"), and
// whether that revision ran healthy, by tend's record on its ReplicaSet or
// live.
func (a *rollbackWorkload) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	d := target.(*appsv1.Deployment)
	f := workloadFacts(d)
	rss, err := workload.ReplicaSets(ctx, a.opts.Client, d)
	if err != nil {
		return f, 0, err
	}
	current := workload.Revision(d)
	rf := &tendv1.RevisionFacts{Current: current}
	f.Revision = rf
	to := int64(0)
	if r := p.Spec.Parameters.Rollback; r != nil {
		to = r.ToRevision
	}
	if to == 0 {
		to = workload.PreviousRevision(rss, current)
	}
	if to == 0 {
		rf.Evidence = fmt.Sprintf("the Deployment has no revision older than %d", current)
		return f, 0, nil
	}
	rf.To = to
	rs := workload.ReplicaSetOf(rss, to)
	switch {
	case to == current:
		rf.Evidence = fmt.Sprintf("revision %d is the current one", to)
		return f, 0, nil
	case rs == nil:
		rf.Evidence = fmt.Sprintf("revision %d is no longer kept", to)
		return f, 0, nil
	}
	pods, err := workload.ReplicaSetPods(ctx, a.opts.Client, rs)
	if err != nil {
		return f, 0, err
	}
	h := workload.JudgeRevision(rs, pods, a.opts.Now(), a.opts.HealthyWindow)
	rf.ToHealthy, rf.Evidence = h.Healthy, truncate(h.Evidence, 1024)
	return f, h.Wait, nil
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
		d := obj.(*appsv1.Deployment)
		current := workload.Revision(d)
		if r := p.Spec.Parameters.Rollback; r != nil && r.FromRevision != 0 && r.FromRevision != current {
			return "", "", "", fmt.Errorf("%w: deployment is at revision %d, proposal saw %d", ErrStale, current, r.FromRevision)
		}
		if err := a.rollTo(ctx, d, to); err != nil {
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
		d := obj.(*appsv1.Deployment)
		current := workload.Revision(d)
		if err := a.rollTo(ctx, d, u.Revision); err != nil {
			return "", "", err
		}
		return fmt.Sprintf("revision %d", current), fmt.Sprintf("pod template of revision %d", u.Revision), nil
	}, templateDigest)
}

// rollTo puts the pod template of revision to into d.
func (a *rollbackWorkload) rollTo(ctx context.Context, d *appsv1.Deployment, to int64) error {
	rss, err := workload.ReplicaSets(ctx, a.opts.Client, d)
	if err != nil {
		return err
	}
	if to == workload.Revision(d) {
		return fmt.Errorf("%w: deployment %s is already at revision %d", ErrInvalidParameters, d.Name, to)
	}
	rs := workload.ReplicaSetOf(rss, to)
	if rs == nil {
		return fmt.Errorf("%w: revision %d of deployment %s is no longer kept", ErrInvalidParameters, to, d.Name)
	}
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, workload.LabelTemplateHash)
	d.Spec.Template = *tmpl
	return nil
}

func (a *rollbackWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	d := obj.(*appsv1.Deployment)
	pods, err := workload.CurrentPods(ctx, a.opts.Client, d)
	if err != nil {
		return Verification{}, err
	}
	return rolloutVerification(d, pods, ptr.Deref(d.Spec.Replicas, 1)), nil
}

func (a *rollbackWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
