package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tendops/tend/bus"
)

// publisher sends telemetry. *bus.Publisher implements it.
type publisher interface {
	Publish(ctx context.Context, env *bus.Envelope) (uint64, error)
}

var _ publisher = (*bus.Publisher)(nil)

// Sensor publishes the observed state of pods, deployments, nodes and events
// to the TELEMETRY stream. Each kind is a small level-based controller: the
// work queue folds a burst of changes to one object into one publish of its
// latest state, and the envelope ID (uid/resourceVersion) lets JetStream drop
// repeats.
type Sensor struct {
	Client    client.Client
	Publisher publisher
	Now       func() time.Time
}

// SetupWithManager registers one controller per observed kind.
func (s *Sensor) SetupWithManager(mgr ctrl.Manager) error {
	if s.Now == nil {
		s.Now = time.Now
	}
	kinds := []struct {
		name string
		obj  client.Object
		fn   reconcile.Func
	}{
		{"sensor-pod", &corev1.Pod{}, s.reconcilePod},
		{"sensor-deployment", &appsv1.Deployment{}, s.reconcileDeployment},
		{"sensor-node", &corev1.Node{}, s.reconcileNode},
		{"sensor-event", &corev1.Event{}, s.reconcileEvent},
	}
	for _, k := range kinds {
		if err := ctrl.NewControllerManagedBy(mgr).Named(k.name).For(k.obj).Complete(k.fn); err != nil {
			return fmt.Errorf("failed to set up %s: %w", k.name, err)
		}
	}
	return nil
}

func (s *Sensor) publish(ctx context.Context, env *bus.Envelope) (reconcile.Result, error) {
	if _, err := s.Publisher.Publish(ctx, env); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to publish %s telemetry: %w", env.Object.Kind, err)
	}
	return reconcile.Result{}, nil
}

// deleted publishes a tombstone for an object that is gone.
func (s *Sensor) deleted(ctx context.Context, kind bus.Kind, req reconcile.Request) (reconcile.Result, error) {
	now := s.Now()
	env := &bus.Envelope{
		ID:     fmt.Sprintf("%s/%s/%s/deleted/%d", kind, req.Namespace, req.Name, now.UnixNano()),
		Object: bus.ObjectRef{Kind: kind, Namespace: req.Namespace, Name: req.Name},
		Time:   now,
	}
	switch kind {
	case bus.KindPod:
		env.Pod = &bus.PodState{Deleted: true}
	case bus.KindDeployment:
		env.Deployment = &bus.DeploymentState{Deleted: true}
	case bus.KindNode:
		env.Node = &bus.NodeState{Deleted: true}
	default:
		return reconcile.Result{}, nil
	}
	return s.publish(ctx, env)
}

func envelopeFor(kind bus.Kind, obj client.Object, now time.Time) *bus.Envelope {
	return &bus.Envelope{
		ID:     string(obj.GetUID()) + "/" + obj.GetResourceVersion(),
		Object: bus.ObjectRef{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID())},
		Time:   now,
	}
}

func (s *Sensor) reconcilePod(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := s.Client.Get(ctx, req.NamespacedName, pod); apierrors.IsNotFound(err) {
		return s.deleted(ctx, bus.KindPod, req)
	} else if err != nil {
		return reconcile.Result{}, err
	}
	st := &bus.PodState{
		Phase:        string(pod.Status.Phase),
		Ready:        podReady(pod),
		Deleted:      pod.DeletionTimestamp != nil,
		NodeName:     pod.Spec.NodeName,
		TemplateHash: pod.Labels[labelTemplateHash],
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		st.Workload = &bus.WorkloadRef{Kind: ref.Kind, Name: ref.Name}
		if ref.Kind == "ReplicaSet" {
			rs := &appsv1.ReplicaSet{}
			err := s.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, rs)
			if err != nil && !apierrors.IsNotFound(err) {
				return reconcile.Result{}, fmt.Errorf("failed to get replicaset: %w", err)
			}
			if err == nil {
				st.Revision = revision(rs)
				if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
					st.Workload = &bus.WorkloadRef{Kind: dref.Kind, Name: dref.Name}
				}
			}
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		c := bus.ContainerState{Name: cs.Name, Image: cs.Image, Ready: cs.Ready, RestartCount: cs.RestartCount}
		switch {
		case cs.State.Waiting != nil:
			c.State, c.Reason, c.Message = "waiting", cs.State.Waiting.Reason, cs.State.Waiting.Message
		case cs.State.Running != nil:
			c.State = "running"
		case cs.State.Terminated != nil:
			c.State, c.Reason, c.Message = "terminated", cs.State.Terminated.Reason, cs.State.Terminated.Message
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			c.LastTerminationReason, c.LastExitCode = t.Reason, t.ExitCode
		}
		st.Containers = append(st.Containers, c)
	}
	env := envelopeFor(bus.KindPod, pod, s.Now())
	env.Pod = st
	return s.publish(ctx, env)
}

func (s *Sensor) reconcileDeployment(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	d := &appsv1.Deployment{}
	if err := s.Client.Get(ctx, req.NamespacedName, d); apierrors.IsNotFound(err) {
		return s.deleted(ctx, bus.KindDeployment, req)
	} else if err != nil {
		return reconcile.Result{}, err
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	st := &bus.DeploymentState{
		Deleted:             d.DeletionTimestamp != nil,
		Generation:          d.Generation,
		ObservedGeneration:  d.Status.ObservedGeneration,
		Replicas:            replicas,
		UpdatedReplicas:     d.Status.UpdatedReplicas,
		ReadyReplicas:       d.Status.ReadyReplicas,
		AvailableReplicas:   d.Status.AvailableReplicas,
		UnavailableReplicas: d.Status.UnavailableReplicas,
		Revision:            revision(d),
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		st.Images = append(st.Images, c.Image)
	}
	for _, c := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env := envelopeFor(bus.KindDeployment, d, s.Now())
	env.Deployment = st
	return s.publish(ctx, env)
}

func (s *Sensor) reconcileNode(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	n := &corev1.Node{}
	if err := s.Client.Get(ctx, req.NamespacedName, n); apierrors.IsNotFound(err) {
		return s.deleted(ctx, bus.KindNode, req)
	} else if err != nil {
		return reconcile.Result{}, err
	}
	st := &bus.NodeState{Deleted: n.DeletionTimestamp != nil, Unschedulable: n.Spec.Unschedulable}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			st.Ready = c.Status == corev1.ConditionTrue
		}
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env := envelopeFor(bus.KindNode, n, s.Now())
	env.Node = st
	return s.publish(ctx, env)
}

func (s *Sensor) reconcileEvent(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	e := &corev1.Event{}
	if err := s.Client.Get(ctx, req.NamespacedName, e); err != nil {
		// A deleted event is just gone; there is nothing to report.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	last := e.LastTimestamp.Time
	if last.IsZero() {
		last = e.EventTime.Time
	}
	if last.IsZero() {
		last = e.CreationTimestamp.Time
	}
	count := e.Count
	if e.Series != nil && e.Series.Count > count {
		count = e.Series.Count
	}
	env := envelopeFor(bus.KindEvent, e, s.Now())
	env.Event = &bus.EventRecord{
		Type: e.Type, Reason: e.Reason, Message: e.Message, Count: count, LastTime: last,
		Involved: bus.ObjectRef{Kind: bus.Kind(lowerKind(e.InvolvedObject.Kind)), Namespace: e.InvolvedObject.Namespace,
			Name: e.InvolvedObject.Name, UID: string(e.InvolvedObject.UID)},
	}
	return s.publish(ctx, env)
}

func lowerKind(k string) string {
	b := []byte(k)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
