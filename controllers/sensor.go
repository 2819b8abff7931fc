package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers/workload"
)

// publisher sends telemetry. *bus.Publisher implements it.
type publisher interface {
	PublishAsync(ctx context.Context, env *bus.Envelope, done func(seq uint64, err error)) error
}

var _ publisher = (*bus.Publisher)(nil)

// Defaults of Sensor.MinInterval and Sensor.Burst.
const (
	DefaultSensorInterval = time.Second
	DefaultSensorBurst    = 10
)

// What the sensor watches, and usage where metrics.k8s.io is served.
//
// +kubebuilder:rbac:groups="",resources=pods;nodes;events;namespaces;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets;replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.k8s.io,resources=pods;nodes,verbs=get;list

// Sensor publishes the observed state of pods, nodes, events, deployments,
// statefulsets, daemonsets, jobs, HPAs, services and network policies to
// the TELEMETRY stream, and
// resource usage from metrics.k8s.io when the cluster serves it. Each kind
// is a small level-based controller that publishes an object's latest state:
//
//   - the work queue folds a burst of changes to one object into one
//     reconcile, and a token bucket per object bounds how often it is
//     published: Burst changes go out at once, then one per MinInterval; a
//     change beyond that is held back and the object's state when it may be
//     published again is sent, so a flapping object sends its latest state
//     at a bounded rate while an object that changes now and then loses no
//     state;
//   - the envelope ID (uid/resourceVersion) is the Nats-Msg-Id, so JetStream
//     drops a state published twice;
//   - publishing is asynchronous; a publish that JetStream does not
//     acknowledge brings the object back to its controller, which publishes
//     its state again.
//
// A kind the API server does not serve, or that the sensor may not list and
// watch, is left out rather than failing the manager; Watching lists the
// kinds it observes.
type Sensor struct {
	Client    client.Client
	Publisher publisher
	Now       func() time.Time
	// MinInterval is the least time between two publishes about one object
	// once its Burst is spent. Default DefaultSensorInterval.
	MinInterval time.Duration
	// Burst is how many publishes about one object may go out back to back.
	// Default DefaultSensorBurst.
	Burst int
	// MetricsInterval is how often metrics.k8s.io is sampled. Default
	// DefaultMetricsInterval.
	MetricsInterval time.Duration

	mu       sync.Mutex
	buckets  map[objectKey]*bucket
	watching []bus.Kind
}

// bucket is the publish allowance of one object: tokens refill at one per
// MinInterval up to Burst, and a publish takes one.
type bucket struct {
	tokens float64
	at     time.Time
}

// objectKey names one observed object.
type objectKey struct {
	kind bus.Kind
	types.NamespacedName
}

// sensorKind is one kind of object the sensor observes.
type sensorKind struct {
	kind     bus.Kind
	group    string
	version  string
	resource string
	newObj   func() client.Object
	// fill sets the envelope's payload from the object.
	fill func(ctx context.Context, s *Sensor, obj client.Object, env *bus.Envelope) error
	// tombstone sets the payload of a deleted object; nil publishes nothing.
	tombstone func(env *bus.Envelope)
}

func sensorKinds() []sensorKind {
	return []sensorKind{
		observe(sensorKind{kind: bus.KindPod, version: "v1", resource: "pods",
			tombstone: func(e *bus.Envelope) { e.Pod = &bus.PodState{Deleted: true} }},
			func() *corev1.Pod { return &corev1.Pod{} }, fillPod),
		observe(sensorKind{kind: bus.KindNode, version: "v1", resource: "nodes",
			tombstone: func(e *bus.Envelope) { e.Node = &bus.NodeState{Deleted: true} }},
			func() *corev1.Node { return &corev1.Node{} }, fillNode),
		observe(sensorKind{kind: bus.KindEvent, version: "v1", resource: "events"},
			func() *corev1.Event { return &corev1.Event{} }, fillEvent),
		observe(sensorKind{kind: bus.KindDeployment, group: "apps", version: "v1", resource: "deployments",
			tombstone: func(e *bus.Envelope) { e.Deployment = &bus.DeploymentState{Deleted: true} }},
			func() *appsv1.Deployment { return &appsv1.Deployment{} }, fillDeployment),
		observe(sensorKind{kind: bus.KindStatefulSet, group: "apps", version: "v1", resource: "statefulsets",
			tombstone: func(e *bus.Envelope) { e.StatefulSet = &bus.WorkloadState{Deleted: true} }},
			func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, fillStatefulSet),
		observe(sensorKind{kind: bus.KindDaemonSet, group: "apps", version: "v1", resource: "daemonsets",
			tombstone: func(e *bus.Envelope) { e.DaemonSet = &bus.WorkloadState{Deleted: true} }},
			func() *appsv1.DaemonSet { return &appsv1.DaemonSet{} }, fillDaemonSet),
		observe(sensorKind{kind: bus.KindJob, group: "batch", version: "v1", resource: "jobs",
			tombstone: func(e *bus.Envelope) { e.Job = &bus.JobState{Deleted: true} }},
			func() *batchv1.Job { return &batchv1.Job{} }, fillJob),
		observe(sensorKind{kind: bus.KindHPA, group: "autoscaling", version: "v2", resource: "horizontalpodautoscalers",
			tombstone: func(e *bus.Envelope) { e.HPA = &bus.AutoscalerState{Deleted: true} }},
			func() *autoscalingv2.HorizontalPodAutoscaler { return &autoscalingv2.HorizontalPodAutoscaler{} }, fillHPA),
		observe(sensorKind{kind: bus.KindService, version: "v1", resource: "services",
			tombstone: func(e *bus.Envelope) { e.Service = &bus.ServiceState{Deleted: true} }},
			func() *corev1.Service { return &corev1.Service{} }, fillService),
		observe(sensorKind{kind: bus.KindNetworkPolicy, group: "networking.k8s.io", version: "v1", resource: "networkpolicies",
			tombstone: func(e *bus.Envelope) { e.NetworkPolicy = &bus.NetworkPolicyState{Deleted: true} }},
			func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, fillNetworkPolicy),
	}
}

// observe completes k with the typed constructor and fill function of its
// objects.
func observe[T client.Object](k sensorKind, newObj func() T, fill func(context.Context, *Sensor, T, *bus.Envelope) error) sensorKind {
	k.newObj = func() client.Object { return newObj() }
	k.fill = func(ctx context.Context, s *Sensor, obj client.Object, env *bus.Envelope) error {
		o, ok := obj.(T)
		if !ok {
			return fmt.Errorf("sensor: the %s controller got a %T", k.kind, obj)
		}
		return fill(ctx, s, o, env)
	}
	return k
}

// SetupWithManager registers one controller per observed kind that the API
// server serves and the sensor may list and watch, and the metrics.k8s.io
// sampler when that API is served and readable.
func (s *Sensor) SetupWithManager(mgr ctrl.Manager) error {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.MinInterval <= 0 {
		s.MinInterval = DefaultSensorInterval
	}
	if s.Burst <= 0 {
		s.Burst = DefaultSensorBurst
	}
	if s.MetricsInterval <= 0 {
		s.MetricsInterval = DefaultMetricsInterval
	}
	s.buckets = map[objectKey]*bucket{}
	log := mgr.GetLogger().WithName("sensor")
	ctx, cancel := context.WithTimeout(context.Background(), discoveryTimeout)
	defer cancel()
	api, err := newAPIAccess(mgr.GetConfig())
	if err != nil {
		return err
	}
	for _, k := range sensorKinds() {
		ok, why, err := api.readable(ctx, k.group, k.version, k.resource)
		if err != nil {
			return err
		}
		if !ok {
			log.Info("Not observing a kind", "kind", k.kind, "reason", why)
			continue
		}
		retry := make(chan event.GenericEvent, bus.MaxPendingPublishes)
		name := "sensor-" + string(k.kind)
		if err := ctrl.NewControllerManagedBy(mgr).Named(name).For(k.newObj()).
			WatchesRawSource(source.Channel(retry, &handler.EnqueueRequestForObject{})).
			Complete(s.reconciler(k, retry)); err != nil {
			return fmt.Errorf("failed to set up %s: %w", name, err)
		}
		s.watching = append(s.watching, k.kind)
	}
	return s.setupMetrics(ctx, mgr, api, log)
}

// Watching lists the kinds the sensor observes, once set up.
func (s *Sensor) Watching() []bus.Kind {
	return append([]bus.Kind(nil), s.watching...)
}

func (s *Sensor) reconciler(k sensorKind, retry chan<- event.GenericEvent) reconcile.Func {
	return func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		key := objectKey{kind: k.kind, NamespacedName: req.NamespacedName}
		obj := k.newObj()
		if err := s.Client.Get(ctx, req.NamespacedName, obj); apierrors.IsNotFound(err) {
			s.forget(key)
			if k.tombstone == nil {
				// A deleted event is just gone; there is nothing to report.
				return reconcile.Result{}, nil
			}
			return s.publish(ctx, k, key, s.tombstone(k, req))
		} else if err != nil {
			return reconcile.Result{}, err
		}
		if wait := s.hold(key); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		env := envelopeFor(k.kind, obj, s.Now())
		if err := k.fill(ctx, s, obj, env); err != nil {
			s.forget(key)
			return reconcile.Result{}, err
		}
		res, err := s.publishRetrying(ctx, k, key, env, retry)
		return res, err
	}
}

// hold reports how long to wait before an object may be published again,
// and if it may be now, takes a token from its bucket.
func (s *Sensor) hold(key objectKey) time.Duration {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(s.Burst), at: now}
		s.buckets[key] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(s.Burst), b.tokens+float64(elapsed)/float64(s.MinInterval))
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(s.MinInterval))
}

func (s *Sensor) forget(key objectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.buckets, key)
}

// publish publishes a tombstone; one that fails is retried by the
// controller's own requeue, as the object is gone.
func (s *Sensor) publish(ctx context.Context, k sensorKind, key objectKey, env *bus.Envelope) (reconcile.Result, error) {
	return s.publishRetrying(ctx, k, key, env, nil)
}

// publishRetrying sends env. When JetStream does not acknowledge it, the
// object goes back to its controller through retry; without retry the
// failure is only logged.
func (s *Sensor) publishRetrying(ctx context.Context, k sensorKind, key objectKey, env *bus.Envelope, retry chan<- event.GenericEvent) (reconcile.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	err := s.Publisher.PublishAsync(ctx, env, func(_ uint64, err error) {
		if err == nil {
			return
		}
		s.forget(key)
		log.Error(err, "Telemetry not acknowledged, publishing again", "kind", k.kind)
		if retry == nil {
			return
		}
		obj := k.newObj()
		obj.SetNamespace(key.Namespace)
		obj.SetName(key.Name)
		select {
		case retry <- event.GenericEvent{Object: obj}:
		default:
			// The queue holds as many as can be pending; a full one means
			// the controller has stopped.
		}
	})
	if err != nil {
		s.forget(key)
		return reconcile.Result{}, fmt.Errorf("failed to publish %s telemetry: %w", env.Object.Kind, err)
	}
	return reconcile.Result{}, nil
}

// tombstone is the envelope of an object that is gone.
func (s *Sensor) tombstone(k sensorKind, req reconcile.Request) *bus.Envelope {
	now := s.Now()
	env := &bus.Envelope{
		ID:     fmt.Sprintf("%s/%s/%s/deleted/%d", k.kind, req.Namespace, req.Name, now.UnixNano()),
		Object: bus.ObjectRef{Kind: k.kind, Namespace: req.Namespace, Name: req.Name},
		Time:   now,
	}
	k.tombstone(env)
	return env
}

func envelopeFor(kind bus.Kind, obj client.Object, now time.Time) *bus.Envelope {
	return &bus.Envelope{
		ID:     string(obj.GetUID()) + "/" + obj.GetResourceVersion(),
		Object: bus.ObjectRef{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID())},
		Time:   now,
	}
}

func fillPod(ctx context.Context, s *Sensor, pod *corev1.Pod, env *bus.Envelope) error {
	st := &bus.PodState{
		Phase:        string(pod.Status.Phase),
		Ready:        workload.PodReady(pod),
		Deleted:      pod.DeletionTimestamp != nil,
		NodeName:     pod.Spec.NodeName,
		TemplateHash: pod.Labels[workload.LabelTemplateHash],
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		st.Workload = &bus.WorkloadRef{Kind: ref.Kind, Name: ref.Name}
		if ref.Kind == "ReplicaSet" {
			rs := &appsv1.ReplicaSet{}
			err := s.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, rs)
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("failed to get replicaset: %w", err)
			}
			if err == nil {
				st.Revision = workload.Revision(rs)
				if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
					st.Workload = &bus.WorkloadRef{Kind: dref.Kind, Name: dref.Name}
				}
			}
		}
	}
	if st.TemplateHash == "" {
		// A StatefulSet's or DaemonSet's pods name their controller revision.
		st.TemplateHash = pod.Labels[appsv1.ControllerRevisionHashLabelKey]
	}
	st.Containers = containerStates(pod.Spec.Containers, pod.Status.ContainerStatuses)
	st.InitContainers = containerStates(pod.Spec.InitContainers, pod.Status.InitContainerStatuses)
	if len(pod.Labels) > 0 && len(pod.Labels) <= maxPodLabels {
		st.Labels = maps.Clone(pod.Labels)
	}
	if len(pod.Spec.NodeSelector) > 0 && len(pod.Spec.NodeSelector) <= maxPodLabels {
		st.NodeSelector = maps.Clone(pod.Spec.NodeSelector)
	}
	for _, c := range pod.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.Pod = st
	return nil
}

// maxPodLabels bounds the labels a pod envelope carries; a pod with more
// carries none (the envelope's schema allows 64).
const maxPodLabels = 64

// containerStates are the declared facts and the status of each container,
// in spec order.
func containerStates(specs []corev1.Container, statuses []corev1.ContainerStatus) []bus.ContainerState {
	var out []bus.ContainerState
	for _, spec := range specs {
		c := bus.ContainerState{Name: spec.Name, Image: spec.Image}
		for _, p := range spec.Ports {
			c.Ports = append(c.Ports, bus.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: string(p.Protocol)})
		}
		c.Liveness, c.Readiness, c.Startup = probe(spec.LivenessProbe), probe(spec.ReadinessProbe), probe(spec.StartupProbe)
		if q, ok := spec.Resources.Requests[corev1.ResourceMemory]; ok {
			c.MemoryRequestBytes = q.Value()
		}
		if q, ok := spec.Resources.Limits[corev1.ResourceMemory]; ok {
			c.MemoryLimitBytes = q.Value()
		}
		if q, ok := spec.Resources.Requests[corev1.ResourceCPU]; ok {
			c.CPURequestMillicores = q.MilliValue()
		}
		for _, cs := range statuses {
			if cs.Name != spec.Name {
				continue
			}
			c.Ready, c.RestartCount = cs.Ready, cs.RestartCount
			switch {
			case cs.State.Waiting != nil:
				c.State, c.Reason, c.Message = bus.ContainerWaiting, cs.State.Waiting.Reason, cs.State.Waiting.Message
			case cs.State.Running != nil:
				c.State = bus.ContainerRunning
			case cs.State.Terminated != nil:
				c.State, c.Reason, c.Message = bus.ContainerTerminated, cs.State.Terminated.Reason, cs.State.Terminated.Message
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				c.LastTerminationReason, c.LastExitCode = t.Reason, t.ExitCode
			}
		}
		out = append(out, c)
	}
	return out
}

// probe is the envelope's account of a container's probe.
func probe(p *corev1.Probe) *bus.Probe {
	if p == nil {
		return nil
	}
	out := &bus.Probe{InitialDelaySeconds: p.InitialDelaySeconds, PeriodSeconds: p.PeriodSeconds,
		TimeoutSeconds: p.TimeoutSeconds, FailureThreshold: p.FailureThreshold}
	port := func(v intstr.IntOrString) {
		if v.Type == intstr.String {
			out.PortName = v.StrVal
		} else {
			out.Port = v.IntVal
		}
	}
	switch {
	case p.HTTPGet != nil:
		out.Handler, out.Path = bus.ProbeHTTPGet, p.HTTPGet.Path
		port(p.HTTPGet.Port)
	case p.TCPSocket != nil:
		out.Handler = bus.ProbeTCPSocket
		port(p.TCPSocket.Port)
	case p.GRPC != nil:
		out.Handler, out.Port = bus.ProbeGRPC, p.GRPC.Port
	default:
		out.Handler = bus.ProbeExec
	}
	return out
}

func fillService(_ context.Context, _ *Sensor, svc *corev1.Service, env *bus.Envelope) error {
	st := &bus.ServiceState{Deleted: svc.DeletionTimestamp != nil, Type: string(svc.Spec.Type)}
	if len(svc.Spec.Selector) <= maxPodLabels {
		st.Selector = maps.Clone(svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		sp := bus.ServicePort{Name: p.Name, Port: p.Port}
		if p.TargetPort.Type == intstr.String {
			sp.TargetPortName = p.TargetPort.StrVal
		} else {
			sp.TargetPort = p.TargetPort.IntVal
		}
		st.Ports = append(st.Ports, sp)
	}
	env.Service = st
	return nil
}

// fillNetworkPolicy carries the policy's pod selector, policy types and
// ingress rules. A policy with more in one list than an envelope carries
// is published as Truncated, without its selector and rules.
func fillNetworkPolicy(_ context.Context, _ *Sensor, np *networkingv1.NetworkPolicy, env *bus.Envelope) error {
	st := &bus.NetworkPolicyState{Deleted: np.DeletionTimestamp != nil, Generation: np.Generation}
	for _, t := range np.Spec.PolicyTypes {
		st.PolicyTypes = append(st.PolicyTypes, string(t))
	}
	env.NetworkPolicy = st
	sel, ok := labelSelector(&np.Spec.PodSelector)
	var ingress []bus.NetworkPolicyIngressRule
	if ok {
		ingress, ok = ingressRules(np.Spec.Ingress)
	}
	if !ok || len(st.PolicyTypes) > 2 {
		st.Truncated = true
		return nil
	}
	st.PodSelector, st.Ingress = *sel, ingress
	return nil
}

// ingressRules are a policy's ingress rules in the envelope's form; ok is
// false when one list holds more than an envelope carries.
func ingressRules(rules []networkingv1.NetworkPolicyIngressRule) ([]bus.NetworkPolicyIngressRule, bool) {
	if len(rules) > maxPolicyList {
		return nil, false
	}
	var out []bus.NetworkPolicyIngressRule
	for _, r := range rules {
		if len(r.From) > maxPolicyList || len(r.Ports) > maxPolicyList {
			return nil, false
		}
		rule := bus.NetworkPolicyIngressRule{}
		for _, peer := range r.From {
			var p bus.NetworkPolicyPeer
			ok := true
			if peer.PodSelector != nil {
				p.PodSelector, ok = labelSelector(peer.PodSelector)
			}
			if ok && peer.NamespaceSelector != nil {
				p.NamespaceSelector, ok = labelSelector(peer.NamespaceSelector)
			}
			if ok && peer.IPBlock != nil {
				ok = len(peer.IPBlock.Except) <= maxPolicyList
				p.IPBlock = &bus.IPBlock{CIDR: peer.IPBlock.CIDR, Except: slices.Clone(peer.IPBlock.Except)}
			}
			if !ok {
				return nil, false
			}
			rule.From = append(rule.From, p)
		}
		for _, port := range r.Ports {
			p := bus.NetworkPolicyPort{}
			if port.Protocol != nil {
				p.Protocol = string(*port.Protocol)
			}
			if port.Port != nil {
				if port.Port.Type == intstr.String {
					p.PortName = port.Port.StrVal
				} else {
					p.Port = port.Port.IntVal
				}
			}
			if port.EndPort != nil {
				p.EndPort = *port.EndPort
			}
			rule.Ports = append(rule.Ports, p)
		}
		out = append(out, rule)
	}
	return out, true
}

// maxPolicyList bounds each list of a network policy an envelope carries
// (the envelope's schema allows 64), and maxSelectorText a selector's keys
// and values (a prefixed label key may be longer than the schema's names).
const (
	maxPolicyList   = 64
	maxSelectorText = 256
)

// labelSelector is the envelope's form of a selector; ok is false when it
// holds more labels, requirements or values than an envelope carries.
func labelSelector(s *metav1.LabelSelector) (*bus.LabelSelector, bool) {
	if len(s.MatchLabels) > maxPodLabels || len(s.MatchExpressions) > maxPolicyList {
		return nil, false
	}
	for k, v := range s.MatchLabels {
		if len(k) > maxSelectorText || len(v) > maxSelectorText {
			return nil, false
		}
	}
	out := &bus.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = maps.Clone(s.MatchLabels)
	}
	for _, r := range s.MatchExpressions {
		if len(r.Values) > maxPolicyList || len(r.Key) > maxSelectorText || slices.ContainsFunc(r.Values, func(v string) bool { return len(v) > maxSelectorText }) {
			return nil, false
		}
		out.MatchExpressions = append(out.MatchExpressions, bus.LabelSelectorRequirement{Key: r.Key, Operator: string(r.Operator), Values: slices.Clone(r.Values)})
	}
	return out, true
}

func fillDeployment(_ context.Context, _ *Sensor, d *appsv1.Deployment, env *bus.Envelope) error {
	st := &bus.DeploymentState{
		Deleted:             d.DeletionTimestamp != nil,
		Generation:          d.Generation,
		ObservedGeneration:  d.Status.ObservedGeneration,
		Replicas:            replicasOr1(d.Spec.Replicas),
		UpdatedReplicas:     d.Status.UpdatedReplicas,
		ReadyReplicas:       d.Status.ReadyReplicas,
		AvailableReplicas:   d.Status.AvailableReplicas,
		UnavailableReplicas: d.Status.UnavailableReplicas,
		Revision:            workload.Revision(d),
		Images:              images(d.Spec.Template.Spec),
		Template:            containerStates(d.Spec.Template.Spec.Containers, nil),
	}
	for _, c := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.Deployment = st
	return nil
}

func fillStatefulSet(_ context.Context, _ *Sensor, ss *appsv1.StatefulSet, env *bus.Envelope) error {
	st := &bus.WorkloadState{
		Deleted:            ss.DeletionTimestamp != nil,
		Generation:         ss.Generation,
		ObservedGeneration: ss.Status.ObservedGeneration,
		Replicas:           replicasOr1(ss.Spec.Replicas),
		CurrentReplicas:    ss.Status.CurrentReplicas,
		UpdatedReplicas:    ss.Status.UpdatedReplicas,
		ReadyReplicas:      ss.Status.ReadyReplicas,
		AvailableReplicas:  ss.Status.AvailableReplicas,
		CurrentRevision:    ss.Status.CurrentRevision,
		UpdateRevision:     ss.Status.UpdateRevision,
		Images:             images(ss.Spec.Template.Spec),
		Template:           containerStates(ss.Spec.Template.Spec.Containers, nil),
	}
	for _, c := range ss.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.StatefulSet = st
	return nil
}

func fillDaemonSet(_ context.Context, _ *Sensor, ds *appsv1.DaemonSet, env *bus.Envelope) error {
	st := &bus.WorkloadState{
		Deleted:            ds.DeletionTimestamp != nil,
		Generation:         ds.Generation,
		ObservedGeneration: ds.Status.ObservedGeneration,
		Replicas:           ds.Status.DesiredNumberScheduled,
		CurrentReplicas:    ds.Status.CurrentNumberScheduled,
		UpdatedReplicas:    ds.Status.UpdatedNumberScheduled,
		ReadyReplicas:      ds.Status.NumberReady,
		AvailableReplicas:  ds.Status.NumberAvailable,
		Images:             images(ds.Spec.Template.Spec),
		Template:           containerStates(ds.Spec.Template.Spec.Containers, nil),
	}
	for _, c := range ds.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.DaemonSet = st
	return nil
}

func fillJob(_ context.Context, _ *Sensor, j *batchv1.Job, env *bus.Envelope) error {
	st := &bus.JobState{
		Deleted:   j.DeletionTimestamp != nil,
		Active:    j.Status.Active,
		Succeeded: j.Status.Succeeded,
		Failed:    j.Status.Failed,
		Images:    images(j.Spec.Template.Spec),
	}
	if ref := metav1.GetControllerOf(j); ref != nil {
		st.Owner = &bus.WorkloadRef{Kind: ref.Kind, Name: ref.Name}
	}
	if j.Spec.Completions != nil {
		st.Completions = *j.Spec.Completions
	}
	if j.Spec.Parallelism != nil {
		st.Parallelism = *j.Spec.Parallelism
	}
	if j.Spec.BackoffLimit != nil {
		st.BackoffLimit = *j.Spec.BackoffLimit
	}
	if j.Status.StartTime != nil {
		st.StartTime = j.Status.StartTime.Time
	}
	if j.Status.CompletionTime != nil {
		st.CompletionTime = j.Status.CompletionTime.Time
	}
	for _, c := range j.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.Job = st
	return nil
}

func fillHPA(_ context.Context, _ *Sensor, h *autoscalingv2.HorizontalPodAutoscaler, env *bus.Envelope) error {
	st := &bus.AutoscalerState{
		Deleted:         h.DeletionTimestamp != nil,
		Target:          bus.WorkloadRef{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name},
		MinReplicas:     replicasOr1(h.Spec.MinReplicas),
		MaxReplicas:     h.Spec.MaxReplicas,
		CurrentReplicas: h.Status.CurrentReplicas,
		DesiredReplicas: h.Status.DesiredReplicas,
	}
	if h.Status.LastScaleTime != nil {
		st.LastScaleTime = h.Status.LastScaleTime.Time
	}
	for _, c := range h.Status.Conditions {
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.HPA = st
	return nil
}

func fillNode(_ context.Context, _ *Sensor, n *corev1.Node, env *bus.Envelope) error {
	st := &bus.NodeState{Deleted: n.DeletionTimestamp != nil, Unschedulable: n.Spec.Unschedulable}
	if len(n.Labels) > 0 && len(n.Labels) <= maxPodLabels {
		st.Labels = maps.Clone(n.Labels)
	}
	if q, ok := n.Status.Allocatable[corev1.ResourceMemory]; ok {
		st.AllocatableMemoryBytes = q.Value()
	}
	if q, ok := n.Status.Allocatable[corev1.ResourceCPU]; ok {
		st.AllocatableCPUMillicores = q.MilliValue()
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			st.Ready = c.Status == corev1.ConditionTrue
		}
		st.Conditions = append(st.Conditions, bus.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	env.Node = st
	return nil
}

func fillEvent(_ context.Context, _ *Sensor, e *corev1.Event, env *bus.Envelope) error {
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
	env.Event = &bus.EventRecord{
		Type: e.Type, Reason: e.Reason, Message: e.Message, Count: count, LastTime: last,
		Involved: bus.ObjectRef{Kind: bus.Kind(lowerKind(e.InvolvedObject.Kind)), Namespace: e.InvolvedObject.Namespace,
			Name: e.InvolvedObject.Name, UID: string(e.InvolvedObject.UID)},
	}
	return nil
}

func replicasOr1(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

func images(spec corev1.PodSpec) []string {
	var out []string
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return out
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
