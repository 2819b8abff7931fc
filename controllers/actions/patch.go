package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	createpatch "gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// patchWorkload applies a JSON patch to a workload's pod template, a
// CronJob's job template, or a Service's selector and ports, on the paths
// of the table (tendv1.PatchPaths) only. The inverse patch is computed and
// recorded at apply time; the undo applies it. Verified like a rollout for
// workloads, by ready endpoints for a Service.
type patchWorkload struct{ base }

var _ Action = (*patchWorkload)(nil)

func (a *patchWorkload) Info() tendv1.ActionInfo { return info(tendv1.ActionPatchWorkload) }

func (a *patchWorkload) Validate(p *tendv1.Proposal) error {
	if err := validateTarget(p); err != nil {
		return err
	}
	ops := p.Spec.Parameters.Patch
	if len(ops) == 0 {
		return fmt.Errorf("%w: PatchWorkload needs a patch", ErrInvalidParameters)
	}
	for i, op := range ops {
		if !tendv1.PatchPathAllowed(p.Spec.Target.Kind, op.Path) {
			return refuse(ReasonPatchPathNotAllowed, "patch[%d]: tend does not patch %s on a %s (allowed: %s)", i, op.Path, p.Spec.Target.Kind, strings.Join(tendv1.PatchPaths[p.Spec.Target.Kind], ", "))
		}
	}
	_, err := patchOf(ops)
	return err
}

// patchOf is the proposal's patch as one RFC 6902 document.
func patchOf(ops []tendv1.JSONPatchOperation) (jsonpatch.Patch, error) {
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("%w: the patch does not encode: %v", ErrInvalidParameters, err)
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the patch does not decode: %v", ErrInvalidParameters, err)
	}
	return patch, nil
}

func (a *patchWorkload) Facts(_ context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	if _, ok := workload.Template(target); ok {
		return workloadFacts(target), 0, nil
	}
	// A CronJob's next run, or a Service's routing: no pod goes down.
	return tendv1.Facts{TargetExists: true, TargetGeneration: target.GetGeneration(), Disruption: &tendv1.DisruptionFacts{}}, 0, nil
}

// Digest covers what the patch may touch: a pod template, a job template,
// a Service's selector and ports.
func (a *patchWorkload) Digest(target client.Object) (string, error) {
	switch o := target.(type) {
	case *batchv1.CronJob:
		return digestOf(o.Spec.JobTemplate)
	case *corev1.Service:
		return digestOf([]any{o.Spec.Selector, o.Spec.Ports})
	}
	return templateDigest(target)
}

// patchUndo is the undo state: the inverse patch of the spec.
type patchUndo struct {
	Inverse json.RawMessage `json:"inverse"`
}

func (a *patchWorkload) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	patch, err := patchOf(p.Spec.Parameters.Patch)
	if err != nil {
		return Result{}, err
	}
	return a.applyEdit(ctx, p, attempt, dryRun, func(obj client.Object) (string, string, string, error) {
		inverse, err := patchObject(obj, patch)
		if err != nil {
			return "", "", "", err
		}
		undo, err := json.Marshal(patchUndo{Inverse: inverse})
		if err != nil {
			return "", "", "", err
		}
		paths := make([]string, len(p.Spec.Parameters.Patch))
		for i, op := range p.Spec.Parameters.Patch {
			paths[i] = op.Op + " " + op.Path
		}
		return "spec before the patch", "patched: " + strings.Join(paths, ", "), string(undo), nil
	}, a.Digest)
}

// patchObject applies patch to obj's JSON in place and returns the inverse
// patch: what turns the patched spec back into the one before.
func patchObject(obj client.Object, patch jsonpatch.Patch) (json.RawMessage, error) {
	before, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	after, err := patch.Apply(before)
	if err != nil {
		return nil, refuse(ReasonPatchNotApplicable, "the patch does not apply to %s: %v", obj.GetName(), err)
	}
	var beforeSpec, afterSpec struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(before, &beforeSpec); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(after, &afterSpec); err != nil {
		return nil, err
	}
	ops, err := createpatch.CreatePatch(afterSpec.Spec, beforeSpec.Spec)
	if err != nil {
		return nil, fmt.Errorf("failed to compute the inverse patch: %w", err)
	}
	for i := range ops {
		ops[i].Path = "/spec" + ops[i].Path
	}
	inverse, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	// Decode into a zero object, so that a removed field goes, then put it
	// in place of obj.
	fresh := reflect.New(reflect.TypeOf(obj).Elem())
	if err := json.Unmarshal(after, fresh.Interface()); err != nil {
		return nil, refuse(ReasonPatchNotApplicable, "the patched %s is not a valid object: %v", obj.GetName(), err)
	}
	reflect.ValueOf(obj).Elem().Set(fresh.Elem())
	return inverse, nil
}

func (a *patchWorkload) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	obj, err := a.Target(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	switch o := obj.(type) {
	case *corev1.Service:
		return a.verifyService(ctx, o)
	case *batchv1.CronJob:
		return Verification{Checks: []tendv1.Check{{Name: "TemplatePatched", Passed: true,
			Message: "the CronJob's job template carries the patch; its next run uses it"}}}, nil
	}
	pods, err := currentWorkloadPods(ctx, a.opts.Client, obj)
	if err != nil {
		return Verification{}, err
	}
	desired, _ := workload.Replicas(obj)
	return rolloutVerification(obj, pods, desired), nil
}

// verifyService checks that the Service has ready endpoints.
func (a *patchWorkload) verifyService(ctx context.Context, svc *corev1.Service) (Verification, error) {
	var slices discoveryv1.EndpointSliceList
	if err := a.opts.Client.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return Verification{}, fmt.Errorf("failed to list endpoint slices: %w", err)
	}
	ready := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
	}
	check := tendv1.Check{Name: "ServiceHasReadyEndpoints", Passed: ready > 0, Message: fmt.Sprintf("%d ready endpoints", ready)}
	return Verification{Checks: []tendv1.Check{check}}, nil
}

func (a *patchWorkload) Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error) {
	return a.undoEdit(ctx, p, attempt, func(obj client.Object, state string) (string, string, error) {
		var u patchUndo
		if err := json.Unmarshal([]byte(state), &u); err != nil || len(u.Inverse) == 0 {
			return "", "", fmt.Errorf("%w: the apply recorded no inverse patch", ErrInvalidParameters)
		}
		inverse, err := jsonpatch.DecodePatch(u.Inverse)
		if err != nil {
			return "", "", fmt.Errorf("%w: the recorded inverse patch does not decode: %v", ErrInvalidParameters, err)
		}
		if _, err := patchObject(obj, inverse); err != nil {
			return "", "", err
		}
		return "patched spec", "spec before the patch", nil
	}, a.Digest)
}

func (a *patchWorkload) VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	return a.undoObserved(ctx, p)
}
