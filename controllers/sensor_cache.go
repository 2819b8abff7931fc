package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/tendops/tend/controllers/workload"
)

// SensorCacheTransform is the cache transform of a manager that runs the
// sensor alone: it keeps of each object only what envelopeFor and the fill
// functions read (fillPod also reads the pod's ReplicaSet), and drops the
// rest before the object is cached, so that the sensor's memory grows with
// what it reports rather than with everything the API server holds.
//
// It is for the sensor's own manager only: a manager whose cache other
// readers share (`tend up` runs the sensor beside the controller) must keep
// whole objects. A kind it does not know loses its managedFields only.
//
// It must stay in step with the fill functions: a field a fill function
// starts to read must be kept here too. TestSensorCacheTransform checks
// that each kind's telemetry is the same from the slimmed object as from
// the whole one.
func SensorCacheTransform() toolscache.TransformFunc {
	stripManagedFields := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *corev1.Pod:
			slimPod(o)
		case *appsv1.ReplicaSet:
			slimReplicaSet(o)
		case *corev1.Event:
			slimEvent(o)
		case *corev1.Node:
			slimNode(o)
		case *appsv1.Deployment:
			slimDeployment(o)
		case *appsv1.StatefulSet:
			slimStatefulSet(o)
		case *appsv1.DaemonSet:
			slimDaemonSet(o)
		case *batchv1.Job:
			slimJob(o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			slimHPA(o)
		case *corev1.Service:
			slimService(o)
		case *networkingv1.NetworkPolicy:
			slimNetworkPolicy(o)
		default:
			return stripManagedFields(obj)
		}
		return obj, nil
	}
}

// metaKeep says what of an object's metadata a kind keeps beyond its
// identity (name, namespace, uid, resourceVersion: the envelope's ID and
// object), generation and creation and deletion timestamps (Deleted, an
// event's time).
type metaKeep struct {
	// labels keeps every label (pods and nodes publish theirs; a pod's
	// template hash is a label).
	labels bool
	// controller keeps the controller's owner reference (a pod's, a
	// ReplicaSet's and a Job's workload).
	controller bool
	// annotations keeps these annotations (a Deployment's and a
	// ReplicaSet's revision).
	annotations []string
}

// slimMeta keeps of m what keep says and drops managedFields, finalizers,
// generateName and every label, annotation and owner reference not kept.
func slimMeta(m *metav1.ObjectMeta, keep metaKeep) {
	kept := metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
	if keep.labels {
		kept.Labels = m.Labels
	}
	if keep.controller {
		if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
			kept.OwnerReferences = []metav1.OwnerReference{*ref}
		}
	}
	for _, k := range keep.annotations {
		if v, ok := m.Annotations[k]; ok {
			if kept.Annotations == nil {
				kept.Annotations = map[string]string{}
			}
			kept.Annotations[k] = v
		}
	}
	*m = kept
}

// slimPod keeps what fillPod reads: labels (all published; the template
// and controller revision hashes), the controller reference (its
// workload, through the ReplicaSet), the node name and node selector, the
// containers' and init containers' declared facts (containerStates), the
// phase and conditions (Ready), and the containers' and init containers'
// statuses. Gone: annotations, volumes, ephemeral containers, tolerations,
// affinity and the rest of the spec; the pod's IPs, start time, QoS class,
// ephemeral container statuses and the rest of the status.
func slimPod(p *corev1.Pod) {
	slimMeta(&p.ObjectMeta, metaKeep{labels: true, controller: true})
	p.Spec = corev1.PodSpec{
		NodeName:       p.Spec.NodeName,
		NodeSelector:   p.Spec.NodeSelector,
		Containers:     slimContainers(p.Spec.Containers),
		InitContainers: slimContainers(p.Spec.InitContainers),
	}
	p.Status = corev1.PodStatus{
		Phase:                 p.Status.Phase,
		Conditions:            p.Status.Conditions,
		ContainerStatuses:     slimContainerStatuses(p.Status.ContainerStatuses),
		InitContainerStatuses: slimContainerStatuses(p.Status.InitContainerStatuses),
	}
}

// slimContainers keeps what containerStates reads of each container: its
// name, image, ports (name, number, protocol), probes, memory request and
// limit and CPU request. Gone: command, args, env, envFrom, volume mounts,
// security context, the other resources and the rest.
func slimContainers(cs []corev1.Container) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{
			Name:           c.Name,
			Image:          c.Image,
			LivenessProbe:  slimProbe(c.LivenessProbe),
			ReadinessProbe: slimProbe(c.ReadinessProbe),
			StartupProbe:   slimProbe(c.StartupProbe),
			Resources: corev1.ResourceRequirements{
				Requests: slimResources(c.Resources.Requests, corev1.ResourceMemory, corev1.ResourceCPU),
				Limits:   slimResources(c.Resources.Limits, corev1.ResourceMemory),
			},
		}
		if c.Ports != nil {
			out[i].Ports = make([]corev1.ContainerPort, len(c.Ports))
			for j, p := range c.Ports {
				out[i].Ports[j] = corev1.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
			}
		}
	}
	return out
}

// slimResources keeps the named quantities of l.
func slimResources(l corev1.ResourceList, names ...corev1.ResourceName) corev1.ResourceList {
	var out corev1.ResourceList
	for _, n := range names {
		if q, ok := l[n]; ok {
			if out == nil {
				out = corev1.ResourceList{}
			}
			out[n] = q
		}
	}
	return out
}

// slimProbe keeps what probe reads: which handler, its path and port, and
// the timings. Gone: an exec probe's command, an HTTP probe's host, scheme
// and headers, a gRPC probe's service, the success threshold and the
// termination grace period.
func slimProbe(p *corev1.Probe) *corev1.Probe {
	if p == nil {
		return nil
	}
	out := &corev1.Probe{InitialDelaySeconds: p.InitialDelaySeconds, PeriodSeconds: p.PeriodSeconds,
		TimeoutSeconds: p.TimeoutSeconds, FailureThreshold: p.FailureThreshold}
	if h := p.HTTPGet; h != nil {
		out.HTTPGet = &corev1.HTTPGetAction{Path: h.Path, Port: h.Port}
	}
	if h := p.TCPSocket; h != nil {
		out.TCPSocket = &corev1.TCPSocketAction{Port: h.Port}
	}
	if h := p.GRPC; h != nil {
		out.GRPC = &corev1.GRPCAction{Port: h.Port}
	}
	if p.Exec != nil {
		out.Exec = &corev1.ExecAction{}
	}
	return out
}

// slimContainerStatuses keeps what containerStates reads of each status:
// the name, readiness, restart count, which state it is in with a waiting
// or terminated state's reason and message, and the last termination's
// reason and exit code. Gone: image, image ID, container ID, allocated
// resources, volume mounts, user and the rest.
func slimContainerStatuses(ss []corev1.ContainerStatus) []corev1.ContainerStatus {
	if ss == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(ss))
	for i, s := range ss {
		out[i] = corev1.ContainerStatus{Name: s.Name, Ready: s.Ready, RestartCount: s.RestartCount}
		if w := s.State.Waiting; w != nil {
			out[i].State.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		}
		if s.State.Running != nil {
			out[i].State.Running = &corev1.ContainerStateRunning{}
		}
		if t := s.State.Terminated; t != nil {
			out[i].State.Terminated = &corev1.ContainerStateTerminated{Reason: t.Reason, Message: t.Message}
		}
		if t := s.LastTerminationState.Terminated; t != nil {
			out[i].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{Reason: t.Reason, ExitCode: t.ExitCode}
		}
	}
	return out
}

// slimReplicaSet keeps what fillPod reads of a pod's ReplicaSet: its
// revision annotation and its controller reference (the Deployment). Gone:
// labels, the other annotations, the spec (with its pod template) and the
// status.
func slimReplicaSet(rs *appsv1.ReplicaSet) {
	slimMeta(&rs.ObjectMeta, metaKeep{controller: true, annotations: []string{workload.AnnotationRevision}})
	rs.Spec, rs.Status = appsv1.ReplicaSetSpec{}, appsv1.ReplicaSetStatus{}
}

// slimEvent keeps what fillEvent reads: type, reason, message, count (and
// the series' count), the last timestamp, event time and creation time,
// and the involved object's kind, namespace, name and uid. Gone: labels,
// annotations, source, reporting controller and instance, action, related
// object, first timestamp.
func slimEvent(e *corev1.Event) {
	slimMeta(&e.ObjectMeta, metaKeep{})
	kept := corev1.Event{
		ObjectMeta: e.ObjectMeta,
		InvolvedObject: corev1.ObjectReference{Kind: e.InvolvedObject.Kind, Namespace: e.InvolvedObject.Namespace,
			Name: e.InvolvedObject.Name, UID: e.InvolvedObject.UID},
		Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count,
		LastTimestamp: e.LastTimestamp, EventTime: e.EventTime,
	}
	if e.Series != nil {
		kept.Series = &corev1.EventSeries{Count: e.Series.Count}
	}
	kept.TypeMeta = e.TypeMeta
	*e = kept
}

// slimNode keeps what fillNode reads: labels (all published),
// unschedulable, allocatable memory and CPU, and the conditions. Gone:
// annotations, taints, pod CIDRs, provider ID, capacity, addresses, node
// info, the images list, volumes and the rest of the status.
func slimNode(n *corev1.Node) {
	slimMeta(&n.ObjectMeta, metaKeep{labels: true})
	n.Spec = corev1.NodeSpec{Unschedulable: n.Spec.Unschedulable}
	n.Status = corev1.NodeStatus{
		Allocatable: slimResources(n.Status.Allocatable, corev1.ResourceMemory, corev1.ResourceCPU),
		Conditions:  n.Status.Conditions,
	}
}

// slimTemplate keeps of a workload's pod template what fillDeployment,
// fillStatefulSet and fillDaemonSet read: its containers' declared facts
// (images, containerStates). Gone: the template's metadata, volumes, init
// containers and the rest of its spec.
func slimTemplate(t *corev1.PodTemplateSpec) {
	*t = corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: slimContainers(t.Spec.Containers)}}
}

// slimDeployment keeps what fillDeployment reads: the generation, revision
// annotation, replicas, the template's containers, and the status's
// observed generation, replica counts and conditions. Gone: labels, the
// other annotations, selector, strategy and the rest of the template.
func slimDeployment(d *appsv1.Deployment) {
	slimMeta(&d.ObjectMeta, metaKeep{annotations: []string{workload.AnnotationRevision}})
	slimTemplate(&d.Spec.Template)
	d.Spec = appsv1.DeploymentSpec{Replicas: d.Spec.Replicas, Template: d.Spec.Template}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Status.ObservedGeneration, UpdatedReplicas: d.Status.UpdatedReplicas,
		ReadyReplicas: d.Status.ReadyReplicas, AvailableReplicas: d.Status.AvailableReplicas,
		UnavailableReplicas: d.Status.UnavailableReplicas, Conditions: d.Status.Conditions,
	}
}

// slimStatefulSet keeps what fillStatefulSet reads: the generation,
// replicas, the template's containers, and the status's observed
// generation, replica counts, revisions and conditions. Gone: labels,
// annotations, selector, volume claim templates, update strategy and the
// rest of the template.
func slimStatefulSet(ss *appsv1.StatefulSet) {
	slimMeta(&ss.ObjectMeta, metaKeep{})
	slimTemplate(&ss.Spec.Template)
	ss.Spec = appsv1.StatefulSetSpec{Replicas: ss.Spec.Replicas, Template: ss.Spec.Template}
	ss.Status = appsv1.StatefulSetStatus{
		ObservedGeneration: ss.Status.ObservedGeneration, CurrentReplicas: ss.Status.CurrentReplicas,
		UpdatedReplicas: ss.Status.UpdatedReplicas, ReadyReplicas: ss.Status.ReadyReplicas,
		AvailableReplicas: ss.Status.AvailableReplicas, CurrentRevision: ss.Status.CurrentRevision,
		UpdateRevision: ss.Status.UpdateRevision, Conditions: ss.Status.Conditions,
	}
}

// slimDaemonSet keeps what fillDaemonSet reads: the generation, the
// template's containers, and the status's observed generation, scheduled,
// ready and available counts and conditions. Gone: labels, annotations,
// selector, update strategy and the rest of the template.
func slimDaemonSet(ds *appsv1.DaemonSet) {
	slimMeta(&ds.ObjectMeta, metaKeep{})
	slimTemplate(&ds.Spec.Template)
	ds.Spec = appsv1.DaemonSetSpec{Template: ds.Spec.Template}
	ds.Status = appsv1.DaemonSetStatus{
		ObservedGeneration: ds.Status.ObservedGeneration, DesiredNumberScheduled: ds.Status.DesiredNumberScheduled,
		CurrentNumberScheduled: ds.Status.CurrentNumberScheduled, UpdatedNumberScheduled: ds.Status.UpdatedNumberScheduled,
		NumberReady: ds.Status.NumberReady, NumberAvailable: ds.Status.NumberAvailable, Conditions: ds.Status.Conditions,
	}
}

// slimJob keeps what fillJob reads: the controller reference (its
// CronJob), completions, parallelism, backoff limit, the template's
// container images, and the status's counts, times and conditions. Gone:
// labels, annotations, selector, the rest of the template and of the
// status.
func slimJob(j *batchv1.Job) {
	slimMeta(&j.ObjectMeta, metaKeep{controller: true})
	var containers []corev1.Container
	if cs := j.Spec.Template.Spec.Containers; cs != nil {
		containers = make([]corev1.Container, len(cs))
		for i, c := range cs {
			containers[i] = corev1.Container{Image: c.Image}
		}
	}
	j.Spec = batchv1.JobSpec{
		Completions: j.Spec.Completions, Parallelism: j.Spec.Parallelism, BackoffLimit: j.Spec.BackoffLimit,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers}},
	}
	j.Status = batchv1.JobStatus{
		Active: j.Status.Active, Succeeded: j.Status.Succeeded, Failed: j.Status.Failed,
		StartTime: j.Status.StartTime, CompletionTime: j.Status.CompletionTime, Conditions: j.Status.Conditions,
	}
}

// slimHPA keeps what fillHPA reads: the target's kind and name, the
// minimum and maximum replicas, and the status's replicas, last scale time
// and conditions. Gone: labels, annotations, metrics, behavior and current
// metrics.
func slimHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	slimMeta(&h.ObjectMeta, metaKeep{})
	h.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name},
		MinReplicas:    h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas,
	}
	h.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas,
		LastScaleTime: h.Status.LastScaleTime, Conditions: h.Status.Conditions,
	}
}

// slimService keeps what fillService reads: type, selector and each port's
// name, port and target port. Gone: labels, annotations, cluster IPs, the
// ports' protocols and node ports, and the status.
func slimService(s *corev1.Service) {
	slimMeta(&s.ObjectMeta, metaKeep{})
	var ports []corev1.ServicePort
	if s.Spec.Ports != nil {
		ports = make([]corev1.ServicePort, len(s.Spec.Ports))
		for i, p := range s.Spec.Ports {
			ports[i] = corev1.ServicePort{Name: p.Name, Port: p.Port, TargetPort: p.TargetPort}
		}
	}
	s.Spec = corev1.ServiceSpec{Type: s.Spec.Type, Selector: s.Spec.Selector, Ports: ports}
	s.Status = corev1.ServiceStatus{}
}

// slimNetworkPolicy keeps what fillNetworkPolicy reads: the generation,
// pod selector, policy types and ingress rules, whole. Gone: labels,
// annotations and the egress rules.
func slimNetworkPolicy(np *networkingv1.NetworkPolicy) {
	slimMeta(&np.ObjectMeta, metaKeep{})
	np.Spec.Egress = nil
}
