package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// policyLoader compiles the whole set of policies. *policies.Gate implements it.
type policyLoader interface {
	Load(ps []tendv1.GatePolicy) []policies.PolicyResult
}

var _ policyLoader = (*policies.Gate)(nil)

// +kubebuilder:rbac:groups=tend.dev,resources=gatepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=gatepolicies/status,verbs=update;patch

// GatePolicyReconciler keeps the gate's compiled policy set equal to the
// GatePolicies in the cluster and reports on each policy whether it compiled.
// A policy that does not compile is kept in the set as invalid, so the
// proposals it would have matched are denied, never auto-approved.
type GatePolicyReconciler struct {
	Client client.Client
	Gate   policyLoader
}

// SetupWithManager registers the reconciler.
func (r *GatePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&tendv1.GatePolicy{}).Named("gatepolicy").Complete(r)
}

// Reconcile reloads every policy into the gate and writes the requested
// policy's Ready condition.
func (r *GatePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var list tendv1.GatePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to list gate policies: %w", err)
	}
	live := list.Items[:0]
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	results := r.Gate.Load(live)

	gp := &tendv1.GatePolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, gp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonCompiled,
		Message: fmt.Sprintf("%d rule(s) compiled and in force", len(gp.Spec.Rules)), ObservedGeneration: gp.Generation}
	for _, res := range results {
		if res.Name == gp.Name && !res.Valid {
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonInvalid
			cond.Message = truncate(fmt.Sprintf("Policy does not compile; proposals it covers are denied: %v", res.Err), 1024)
		}
	}
	before := meta.FindStatusCondition(gp.Status.Conditions, ConditionReady)
	if before != nil && before.Status == cond.Status && before.Message == cond.Message && gp.Status.ObservedGeneration == gp.Generation {
		return ctrl.Result{}, nil
	}
	meta.SetStatusCondition(&gp.Status.Conditions, cond)
	gp.Status.ObservedGeneration = gp.Generation
	if err := r.Client.Status().Update(ctx, gp); err != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, fmt.Errorf("failed to update gate policy status: %w", err)
	} else if err != nil {
		return ctrl.Result{Requeue: true}, nil
	}
	return ctrl.Result{}, nil
}
