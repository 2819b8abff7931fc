package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/tendops/tend/policies"
)

// GateStateName is the ConfigMap, in tend's system namespace, that holds the
// gate's switches: the kill switch and the circuit breaker. The API server is
// their ledger, so every replica and the CLI see the same state.
const GateStateName = "tend-gate"

// Keys of the gate state ConfigMap.
const (
	KeyKillSwitch       = "killSwitch"
	KeyBreakerTripped   = "breakerTripped"
	KeyBreakerReason    = "breakerReason"
	KeyBreakerTrippedAt = "breakerTrippedAt"
	KeyBreakerResetAt   = "breakerResetAt"
)

// GateState is the decoded gate state.
type GateState struct {
	KillSwitch bool
	Breaker    policies.BreakerState
	TrippedAt  time.Time
	// Missing is true when there is no gate state ConfigMap: the kill
	// switch then counts as engaged.
	Missing bool
}

// ParseGateState decodes the ConfigMap. The install creates it with the
// kill switch released; a missing one (nil), deleted since, engages the
// kill switch, as does a value it cannot parse: fail closed. Deleting the
// ConfigMap never releases the switch; `tend gate kill-switch off` creates
// it again.
func ParseGateState(cm *corev1.ConfigMap) GateState {
	var st GateState
	if cm == nil {
		return GateState{KillSwitch: true, Missing: true}
	}
	d := cm.Data
	switch d[KeyKillSwitch] {
	case "", "off", "false":
	default:
		st.KillSwitch = true
	}
	if v := d[KeyBreakerTripped]; v != "" {
		tripped, err := strconv.ParseBool(v)
		st.Breaker.Tripped = tripped || err != nil
	}
	st.Breaker.Reason = d[KeyBreakerReason]
	if t, err := time.Parse(time.RFC3339, d[KeyBreakerResetAt]); err == nil {
		st.Breaker.ResetAt = t
	}
	if t, err := time.Parse(time.RFC3339, d[KeyBreakerTrippedAt]); err == nil {
		st.TrippedAt = t
	}
	return st
}

// ReadGateState reads and decodes the gate state ConfigMap in namespace; a
// missing one engages the kill switch.
func ReadGateState(ctx context.Context, c client.Reader, namespace string) (GateState, error) {
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: GateStateName}, cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return GateState{}, fmt.Errorf("failed to read the gate state: %w", err)
		}
		cm = nil
	}
	return ParseGateState(cm), nil
}

// EnsureGateState creates the gate state ConfigMap in namespace, with the
// kill switch released and the breaker closed, unless it exists: an install
// or restart never changes a switch someone set.
func EnsureGateState(ctx context.Context, c client.Client, namespace string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: GateStateName,
		Labels: map[string]string{"app.kubernetes.io/name": "tend"}}, Data: map[string]string{KeyKillSwitch: "off"}}
	if err := c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create the gate state: %w", err)
	}
	return nil
}

// UpdateGateState reads, changes and writes the gate state ConfigMap,
// creating it when missing. mutate edits the data map in place.
func UpdateGateState(ctx context.Context, c client.Client, namespace string, mutate func(data map[string]string)) error {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: GateStateName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: GateStateName,
			Labels: map[string]string{"app.kubernetes.io/name": "tend"}}, Data: map[string]string{}}
		mutate(cm.Data)
		if err := c.Create(ctx, cm); err != nil {
			return fmt.Errorf("failed to create gate state: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("failed to read gate state: %w", err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	mutate(cm.Data)
	if err := c.Update(ctx, cm); err != nil {
		return fmt.Errorf("failed to update gate state: %w", err)
	}
	return nil
}

// killSwitch is the part of the gate this reconciler drives.
type killSwitch interface {
	SetKillSwitch(engaged bool)
}

var _ killSwitch = (*policies.Gate)(nil)

// The gate's switches (kill switch, circuit breaker) and the audit
// checkpoint live in ConfigMaps of tend's own namespace, and the controller
// may write ConfigMaps nowhere else.
//
// +kubebuilder:rbac:groups="",namespace=tend-system,resources=configmaps,verbs=get;list;watch;create;update;patch

// GateStateReconciler mirrors the kill switch of the gate state ConfigMap
// into the running gate, within the latency of a watch event.
type GateStateReconciler struct {
	Client    client.Client
	Gate      killSwitch
	Namespace string
}

// SetupWithManager registers the reconciler for the one ConfigMap.
func (r *GateStateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	only := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == GateStateName
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}, builder.WithPredicates(only)).
		Named("gatestate").
		Complete(r)
}

// Reconcile applies the kill switch.
func (r *GateStateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Client.Get(ctx, req.NamespacedName, cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		cm = nil
	}
	st := ParseGateState(cm)
	r.Gate.SetKillSwitch(st.KillSwitch)
	gateKillSwitch.Set(boolGauge(st.KillSwitch))
	gateBreakerOpen.Set(boolGauge(st.Breaker.Tripped))
	return ctrl.Result{}, nil
}
