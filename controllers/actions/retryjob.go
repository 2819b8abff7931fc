package actions

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch

// retryJob runs a failed Job again, as a new Job from its spec, or a
// CronJob's job now, from its template (as `kubectl create job --from`
// does). The new Job's name comes from the attempt, so a restarted
// controller finds it rather than making another. Verified when the Job
// completes; a Job that fails makes verification hopeless. It cannot be
// undone: what the run did is done.
type retryJob struct{ base }

var _ Action = (*retryJob)(nil)

func (a *retryJob) Info() tendv1.ActionInfo { return info(tendv1.ActionRetryJob) }

func (a *retryJob) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	if !paramsEmpty(p.Spec.Parameters) {
		return fmt.Errorf("%w: RetryJob takes no parameters", ErrInvalidParameters)
	}
	return nil
}

// jobFailed reports whether a Job's Failed condition is True.
func jobFailed(j *batchv1.Job) bool {
	return jobCondition(j, batchv1.JobFailed)
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func (a *retryJob) Facts(_ context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	f := tendv1.Facts{TargetExists: true, TargetGeneration: target.GetGeneration(), Disruption: &tendv1.DisruptionFacts{}}
	if j, ok := target.(*batchv1.Job); ok && !jobFailed(j) {
		return f, 0, refuse(ReasonJobNotFailed, "Job %s/%s has not failed; only a failed Job is run again", j.Namespace, j.Name)
	}
	return f, 0, nil
}

func (a *retryJob) Digest(client.Object) (string, error) { return "", nil }

// retryName is the name of the Job an attempt creates.
func retryName(p *tendv1.Proposal, attempt string) string {
	suffix := "-retry-" + attempt
	if len(suffix) > 12 {
		suffix = suffix[:12]
	}
	name := p.Spec.Target.Name
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

// newJob is the Job a retry creates: the failed Job's spec without the
// selector and labels its controller generated, or a CronJob's template,
// owned by the CronJob as its own runs are.
func newJob(target client.Object, name string) (*batchv1.Job, error) {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: target.GetNamespace(), Name: name}}
	switch t := target.(type) {
	case *batchv1.Job:
		job.Labels = withoutGenerated(t.Labels)
		job.Spec = *t.Spec.DeepCopy()
		job.Spec.Selector, job.Spec.ManualSelector = nil, nil
		job.Spec.Template.Labels = withoutGenerated(job.Spec.Template.Labels)
	case *batchv1.CronJob:
		job.Labels = t.Spec.JobTemplate.Labels
		job.Annotations = map[string]string{"cronjob.kubernetes.io/instantiate": "manual"}
		job.Spec = *t.Spec.JobTemplate.Spec.DeepCopy()
		job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(t, batchv1.SchemeGroupVersion.WithKind("CronJob"))}
	default:
		return nil, fmt.Errorf("%w: %T is not a Job or CronJob", ErrInvalidParameters, target)
	}
	return job, nil
}

// withoutGenerated drops the labels the Job controller sets.
func withoutGenerated(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		switch k {
		case "controller-uid", "job-name", batchv1.ControllerUidLabel, batchv1.JobNameLabel:
			continue
		}
		out[k] = v
	}
	return out
}

func (a *retryJob) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	name := retryName(p, attempt)
	existing := &batchv1.Job{}
	switch err := a.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Spec.Target.Namespace, Name: name}, existing); {
	case err == nil:
		if existing.Annotations[AnnotationApplied] != Marker(p, attempt) {
			return Result{}, fmt.Errorf("%w: a Job %s exists that tend did not create", ErrStale, name)
		}
		return Result{AlreadyApplied: true, After: "job " + name}, nil
	case !apierrors.IsNotFound(err):
		return Result{}, fmt.Errorf("failed to get job: %w", err)
	}
	target, err := a.get(ctx, p, true)
	if err != nil {
		return Result{}, err
	}
	if err := pinned(target, p); err != nil {
		return Result{}, err
	}
	if j, ok := target.(*batchv1.Job); ok && !jobFailed(j) {
		return Result{}, refuse(ReasonJobNotFailed, "Job %s has not failed", j.Name)
	}
	job, err := newJob(target, name)
	if err != nil {
		return Result{}, err
	}
	stamp(job, Marker(p, attempt))
	opts := []client.CreateOption{client.FieldOwner(a.opts.FieldManager)}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := a.opts.Client.Create(ctx, job, opts...); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return Result{AlreadyApplied: true, After: "job " + name}, nil
		}
		return Result{}, fmt.Errorf("failed to create job %s: %w", name, err)
	}
	return Result{Before: fmt.Sprintf("%s %s", p.Spec.Target.Kind, p.Spec.Target.Name), After: "job " + name}, nil
}

// Verify checks that the new Job completed.
func (a *retryJob) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	name := retryName(p, p.Status.Apply.Attempt)
	job := &batchv1.Job{}
	if err := a.opts.Client.Get(ctx, client.ObjectKey{Namespace: p.Spec.Target.Namespace, Name: name}, job); err != nil {
		if apierrors.IsNotFound(err) {
			return Verification{Checks: []tendv1.Check{{Name: "JobComplete", Message: "job " + name + " is not there"}}}, nil
		}
		return Verification{}, err
	}
	check := tendv1.Check{Name: "JobComplete", Message: fmt.Sprintf("job %s: %d succeeded, %d failed, %d active", name, job.Status.Succeeded, job.Status.Failed, job.Status.Active)}
	v := Verification{}
	switch {
	case jobCondition(job, batchv1.JobComplete):
		check.Passed = true
	case jobFailed(job):
		v.Hopeless = "job " + name + " failed"
	}
	v.Checks = []tendv1.Check{check}
	return v, nil
}

func (a *retryJob) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *retryJob) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}
