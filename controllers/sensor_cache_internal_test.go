package controllers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers/workload"
)

// TestSensorCacheTransform checks that the sensor publishes the same
// telemetry, byte for byte, from the objects its cache keeps as from the
// whole objects: for fully populated objects of every kind it observes,
// with every field the fill functions read set and much they do not. That
// the fixtures set every field an envelope carries is checked too, so that
// a field the transform wrongly drops cannot go unnoticed for want of a
// value.
func TestSensorCacheTransform(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	transform := SensorCacheTransform()
	slim := func(t *testing.T, obj client.Object) client.Object {
		t.Helper()
		out, err := transform(obj.DeepCopyObject())
		if err != nil {
			t.Fatalf("transform %T: %v", obj, err)
		}
		o, ok := out.(client.Object)
		if !ok {
			t.Fatalf("transform %T returned a %T", obj, out)
		}
		// Idempotent: the informer may pass an object through twice.
		again, err := transform(o.DeepCopyObject())
		if err != nil {
			t.Fatalf("transform %T again: %v", obj, err)
		}
		if diff := cmp.Diff(o, again); diff != "" {
			t.Errorf("transforming a slimmed %T changes it (-once +twice):\n%s", obj, diff)
		}
		return o
	}

	// fillPod reads a pod's ReplicaSet through the sensor's client, which
	// in the sensor is its slimmed cache.
	replicaSets := sensorCacheReplicaSets()
	fullRS, slimRS := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme), fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme)
	for _, rs := range replicaSets {
		fullRS.WithObjects(rs.DeepCopy())
		slimRS.WithObjects(slim(t, rs))
	}
	full := &Sensor{Client: fullRS.Build()}
	slimmed := &Sensor{Client: slimRS.Build()}

	kinds := map[bus.Kind]sensorKind{}
	for _, k := range sensorKinds() {
		kinds[k.kind] = k
	}
	envelope := func(t *testing.T, s *Sensor, k sensorKind, obj client.Object) (*bus.Envelope, []byte) {
		t.Helper()
		env := envelopeFor(k.kind, obj, now)
		if err := k.fill(t.Context(), s, obj, env); err != nil {
			t.Fatalf("fill %s %s: %v", k.kind, obj.GetName(), err)
		}
		data, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return env, data
	}

	fixtures := sensorCacheFixtures(now)
	for kind, objs := range fixtures {
		k, ok := kinds[kind]
		if !ok {
			t.Fatalf("the sensor does not observe %s", kind)
		}
		var envs []*bus.Envelope
		for _, obj := range objs {
			t.Run(fmt.Sprintf("%s/%s", kind, obj.GetName()), func(t *testing.T) {
				want, wantData := envelope(t, full, k, obj.DeepCopyObject().(client.Object))
				got, gotData := envelope(t, slimmed, k, slim(t, obj))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("telemetry from the slimmed object differs (-whole +slimmed):\n%s", diff)
				} else if string(wantData) != string(gotData) {
					t.Errorf("telemetry from the slimmed object differs:\nwhole   %s\nslimmed %s", wantData, gotData)
				}
				envs = append(envs, want)
			})
		}
		t.Run(string(kind)+"/coverage", func(t *testing.T) {
			unset := unsetFields(envs, sensorStateField[kind], sensorNeverSet[kind])
			if len(unset) > 0 {
				t.Errorf("no %s fixture sets these envelope fields, so dropping what they come from would go unnoticed: %s",
					kind, strings.Join(unset, ", "))
			}
		})
	}
	for _, k := range sensorKinds() {
		if _, ok := fixtures[k.kind]; !ok {
			t.Errorf("no fixture for %s", k.kind)
		}
	}
}

// TestSensorCacheTransformDrops checks that the transform does drop what
// the sensor does not read.
func TestSensorCacheTransformDrops(t *testing.T) {
	transform := SensorCacheTransform()
	fixtures := sensorCacheFixtures(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	podObj, err := transform(fixtures[bus.KindPod][0].DeepCopyObject())
	if err != nil {
		t.Fatal(err)
	}
	pod := podObj.(*corev1.Pod)
	c := pod.Spec.Containers[0]
	for what, gone := range map[string]bool{
		"managedFields":              pod.ManagedFields == nil,
		"annotations":                pod.Annotations == nil,
		"finalizers":                 pod.Finalizers == nil,
		"non-controller owners":      len(pod.OwnerReferences) == 1,
		"volumes":                    pod.Spec.Volumes == nil,
		"ephemeral containers":       pod.Spec.EphemeralContainers == nil,
		"tolerations":                pod.Spec.Tolerations == nil,
		"service account":            pod.Spec.ServiceAccountName == "",
		"env":                        c.Env == nil && c.EnvFrom == nil,
		"command and args":           c.Command == nil && c.Args == nil,
		"volume mounts":              c.VolumeMounts == nil,
		"security context":           c.SecurityContext == nil,
		"ephemeral-storage requests": !slices.Contains(resourceNames(c.Resources.Requests), corev1.ResourceEphemeralStorage),
		"exec command":               pod.Spec.Containers[1].LivenessProbe.Exec.Command == nil,
		"pod IPs":                    pod.Status.PodIPs == nil && pod.Status.PodIP == "",
		"container status images":    pod.Status.ContainerStatuses[0].ImageID == "" && pod.Status.ContainerStatuses[0].ContainerID == "",
	} {
		if !gone {
			t.Errorf("the slimmed pod keeps its %s", what)
		}
	}
	rsObj, err := transform(sensorCacheReplicaSets()[0].DeepCopyObject())
	if err != nil {
		t.Fatal(err)
	}
	if rs := rsObj.(*appsv1.ReplicaSet); rs.Spec.Template.Spec.Containers != nil || len(rs.Annotations) != 1 || rs.Labels != nil {
		t.Errorf("the slimmed ReplicaSet keeps its template, labels or other annotations: %+v", rs)
	}
	nodeObj, err := transform(fixtures[bus.KindNode][0].DeepCopyObject())
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeObj.(*corev1.Node); n.Status.Images != nil || n.Status.Addresses != nil || n.Annotations != nil || n.Spec.Taints != nil {
		t.Errorf("the slimmed node keeps its images, addresses, annotations or taints: %+v", n)
	}
	// A kind the sensor does not observe only loses its managedFields.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}, Data: map[string]string{"k": "v"}}
	out, err := transform(cm.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	want := cm.DeepCopy()
	want.ManagedFields = nil
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("a ConfigMap (-want +got):\n%s", diff)
	}
}

func resourceNames(l corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for n := range l {
		out = append(out, n)
	}
	return out
}

// sensorStateField names the envelope field kind's telemetry fills.
var sensorStateField = map[bus.Kind]string{
	bus.KindPod: "Pod", bus.KindNode: "Node", bus.KindEvent: "Event", bus.KindDeployment: "Deployment",
	bus.KindStatefulSet: "StatefulSet", bus.KindDaemonSet: "DaemonSet", bus.KindJob: "Job", bus.KindHPA: "HPA",
	bus.KindService: "Service", bus.KindNetworkPolicy: "NetworkPolicy",
}

// sensorNeverSet are the envelope fields a kind's fill function never
// sets, whatever the object: a node has no namespace, a workload's
// template has no container status, and a DaemonSet has no revisions.
var sensorNeverSet = func() map[bus.Kind][]string {
	var template []string
	for _, f := range []string{"Ready", "RestartCount", "State", "Reason", "Message", "LastTerminationReason", "LastExitCode"} {
		template = append(template, "Template[]."+f)
	}
	return map[bus.Kind][]string{
		bus.KindNode:        {"Object.Namespace"},
		bus.KindDeployment:  template,
		bus.KindStatefulSet: template,
		bus.KindDaemonSet:   append(slices.Clone(template), "CurrentRevision", "UpdateRevision"),
	}
}()

// unsetFields lists the envelope's identity fields and the fields of its
// state field (as paths, "[]" for any element of a list) that none of envs
// sets, leaving out those in never.
func unsetFields(envs []*bus.Envelope, field string, never []string) []string {
	envType := reflect.TypeFor[bus.Envelope]()
	all, set := map[string]bool{}, map[string]bool{}
	for _, f := range []string{"ID", "Object", "Time", field} {
		sf, ok := envType.FieldByName(f)
		if !ok {
			panic("the envelope has no field " + f)
		}
		fieldPaths(sf, "", all)
		for _, env := range envs {
			setPaths(reflect.ValueOf(env).Elem().FieldByIndex(sf.Index), f, set)
		}
	}
	var out []string
	for p := range all {
		if !set[p] && !slices.Contains(never, strings.TrimPrefix(p, field+".")) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// isLeaf reports whether a value of t is compared as a whole: anything but
// structs (time.Time is a leaf), pointers to them and lists of them.
func isLeaf(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return isLeaf(t.Elem())
	case reflect.Struct:
		return t == reflect.TypeFor[time.Time]()
	default:
		return true
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// fieldPaths adds the path of every leaf of the struct field f.
func fieldPaths(f reflect.StructField, prefix string, out map[string]bool) {
	p := join(prefix, f.Name)
	if isLeaf(f.Type) {
		out[p] = true
		return
	}
	ft := f.Type
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if ft.Kind() == reflect.Slice {
		p += "[]"
		for ft = ft.Elem(); ft.Kind() == reflect.Pointer; ft = ft.Elem() {
		}
	}
	for i := range ft.NumField() {
		fieldPaths(ft.Field(i), p, out)
	}
}

// setPaths adds the path of every leaf of v that is not its zero value.
func setPaths(v reflect.Value, prefix string, out map[string]bool) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case isLeaf(v.Type()):
		if !v.IsZero() && (v.Kind() != reflect.Slice && v.Kind() != reflect.Map || v.Len() > 0) {
			out[prefix] = true
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			setPaths(v.Index(i), prefix+"[]", out)
		}
	default:
		for i := range v.NumField() {
			setPaths(v.Field(i), join(prefix, v.Type().Field(i).Name), out)
		}
	}
}

// sensorCacheContainers are containers with every field containerStates
// reads set, across them every kind of probe in every slot with a port
// named and numbered, and every state, and much it does not read, with
// their statuses; their names start with prefix.
func sensorCacheContainers(prefix string, now time.Time) ([]corev1.Container, []corev1.ContainerStatus) {
	probe := func(h corev1.ProbeHandler, delay int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: h, InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 2,
			FailureThreshold: 3, SuccessThreshold: 1, TerminationGracePeriodSeconds: ptr.To[int64](30)}
	}
	httpGet := func(path string, port intstr.IntOrString) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port, Host: "10.0.0.1", Scheme: corev1.URISchemeHTTPS,
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}}}
	}
	tcp := func(port intstr.IntOrString) corev1.ProbeHandler {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port, Host: "10.0.0.1"}}
	}
	grpc := corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: ptr.To("health")}}
	exec := corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/check", "--deep"}}}
	unread := func(c corev1.Container) corev1.Container {
		c.Command, c.Args = []string{"/app"}, []string{"--serve", "--verbose"}
		c.WorkingDir = "/srv"
		c.Env = []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "token"}}}}
		c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "kube-api-access", MountPath: "/var/run/secrets"}}
		c.ImagePullPolicy, c.TerminationMessagePath = corev1.PullIfNotPresent, "/dev/termination-log"
		c.SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "5"}}}}
		return c
	}
	res := func(cpuReq, memReq, memLim string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse(memReq),
				corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")},
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse(memLim)},
		}
	}
	containers := []corev1.Container{
		unread(corev1.Container{Name: prefix + "web", Image: "registry.example.com/web:1.4.2",
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP, HostPort: 80, HostIP: "0.0.0.0"}, {ContainerPort: 9090, Protocol: corev1.ProtocolUDP}},
			LivenessProbe:  probe(httpGet("/healthz", intstr.FromString("http")), 5),
			ReadinessProbe: probe(tcp(intstr.FromInt32(8080)), 1),
			StartupProbe:   probe(grpc, 0),
			Resources:      res("250m", "128Mi", "256Mi")}),
		unread(corev1.Container{Name: prefix + "worker", Image: "registry.example.com/worker:2.0",
			LivenessProbe:  probe(exec, 15),
			ReadinessProbe: probe(httpGet("/ready", intstr.FromString("ready")), 2),
			StartupProbe:   probe(tcp(intstr.FromString("admin")), 3),
			Resources:      res("1", "1Gi", "2Gi")}),
		unread(corev1.Container{Name: prefix + "batch", Image: "registry.example.com/batch:0.9",
			LivenessProbe:  probe(tcp(intstr.FromInt32(7000)), 4),
			ReadinessProbe: probe(grpc, 0),
			StartupProbe:   probe(httpGet("/started", intstr.FromInt32(8081)), 6)}),
		{Name: prefix + "bare", Image: "registry.example.com/bare:1"},
	}
	started := metav1.NewTime(now.Add(-time.Hour))
	status := func(c corev1.Container) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "registry.example.com/x@sha256:0123456789abcdef",
			ContainerID: "containerd://0123456789abcdef0123456789abcdef", Started: ptr.To(true),
			AllocatedResources: c.Resources.Requests, Resources: c.Resources.DeepCopy(),
			VolumeMounts: []corev1.VolumeMountStatus{{Name: "data", MountPath: "/data"}},
			User:         &corev1.ContainerUser{Linux: &corev1.LinuxContainerUser{UID: 1000, GID: 1000}}}
	}
	statuses := []corev1.ContainerStatus{status(containers[0]), status(containers[1]), status(containers[2])}
	statuses[0].Ready, statuses[0].RestartCount = true, 3
	statuses[0].State.Running = &corev1.ContainerStateRunning{StartedAt: started}
	statuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled",
		Message: "out of memory", Signal: 9, StartedAt: started, FinishedAt: started, ContainerID: "containerd://old"}
	statuses[1].RestartCount = 12
	statuses[1].State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}
	statuses[1].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", ContainerID: "containerd://older"}
	statuses[2].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "exit status 2",
		StartedAt: started, FinishedAt: started, ContainerID: "containerd://done"}
	// The last container has no status yet; a status of none is ignored.
	statuses = append(statuses, corev1.ContainerStatus{Name: prefix + "gone", Ready: true, RestartCount: 1})
	return containers, statuses
}

// sensorCacheMeta is metadata with what the sensor reads and much it does
// not.
func sensorCacheMeta(namespace, name string, labels map[string]string, owners ...metav1.OwnerReference) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: namespace, Name: name, GenerateName: name + "-", UID: "uid-" + types.UID(name), ResourceVersion: "4711",
		Generation: 7, CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
		Labels:          labels,
		Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`, "team": "shop"},
		OwnerReferences: owners, Finalizers: []string{"example.com/keep"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{}}`)}}},
	}
}

func owner(kind, name string, controller bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "uid-" + types.UID(name), Controller: ptr.To(controller)}
}

func deleted(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)))
	m.DeletionGracePeriodSeconds = ptr.To[int64](30)
	return m
}

// sensorCacheReplicaSets are the ReplicaSets the fixture pods belong to.
func sensorCacheReplicaSets() []*appsv1.ReplicaSet {
	template := sensorCachePodTemplate(time.Time{})
	rs := &appsv1.ReplicaSet{
		ObjectMeta: sensorCacheMeta("shop", "web-7d9f8", map[string]string{"app": "web", workload.LabelTemplateHash: "7d9f8"},
			owner("Deployment", "web", true), owner("Rollout", "web", false)),
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template},
		Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, ObservedGeneration: 7},
	}
	rs.Annotations[workload.AnnotationRevision] = "4"
	// A ReplicaSet no Deployment controls.
	bare := &appsv1.ReplicaSet{ObjectMeta: sensorCacheMeta("shop", "bare-5c6", nil, owner("Rollout", "bare", true)), Spec: rs.Spec}
	bare.Annotations[workload.AnnotationRevision] = "2"
	return []*appsv1.ReplicaSet{rs, bare}
}

func sensorCachePodTemplate(now time.Time) corev1.PodTemplateSpec {
	containers, _ := sensorCacheContainers("", now)
	initContainers, _ := sensorCacheContainers("init-", now)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
		Spec: corev1.PodSpec{Containers: containers, InitContainers: initContainers,
			Volumes:            []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			ServiceAccountName: "web", NodeSelector: map[string]string{"disk": "ssd"}},
	}
}

func conditions[T any](n int, mk func(typ, status, reason, message string) T) []T {
	var out []T
	for i := range n {
		out = append(out, mk(fmt.Sprintf("Type%d", i), "True", fmt.Sprintf("Reason%d", i), fmt.Sprintf("message %d", i)))
	}
	return out
}

// sensorCacheFixtures are objects of every kind the sensor observes, with
// every field their fill function reads set, and much it does not.
func sensorCacheFixtures(now time.Time) map[bus.Kind][]client.Object {
	t0 := metav1.NewTime(now.Add(-time.Hour))

	containers, statuses := sensorCacheContainers("", now)
	initContainers, initStatuses := sensorCacheContainers("init-", now)
	podSpec := corev1.PodSpec{
		NodeName: "node-1", NodeSelector: map[string]string{"disk": "ssd", "zone": "a"},
		Containers: containers, InitContainers: initContainers,
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
		Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}}}}}}},
		Tolerations:        []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)}},
		ServiceAccountName: "web", SchedulerName: "default-scheduler", DNSPolicy: corev1.DNSClusterFirst,
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1,
			PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}}},
	}
	podStatus := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
			{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [worker]", LastTransitionTime: t0},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "Ready", LastTransitionTime: t0},
		},
		ContainerStatuses: statuses, InitContainerStatuses: initStatuses,
		EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", Image: "busybox"}},
		HostIP:                     "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "10.0.0.1"}}, PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}},
		StartTime: &t0, QOSClass: corev1.PodQOSBurstable, Message: "unread", Reason: "Unread", NominatedNodeName: "node-2",
	}
	pod := func(meta metav1.ObjectMeta) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: meta, Spec: *podSpec.DeepCopy(), Status: *podStatus.DeepCopy()}
	}
	pods := []client.Object{
		// A Deployment's pod, through its ReplicaSet.
		pod(sensorCacheMeta("shop", "web-7d9f8-abcde", map[string]string{"app": "web", workload.LabelTemplateHash: "7d9f8", "tier": "front"},
			owner("Node", "node-1", false), owner("ReplicaSet", "web-7d9f8", true))),
		// A ReplicaSet's that no Deployment controls, and one's that is gone.
		pod(sensorCacheMeta("shop", "bare-5c6-xyz", map[string]string{workload.LabelTemplateHash: "5c6"}, owner("ReplicaSet", "bare-5c6", true))),
		pod(sensorCacheMeta("shop", "lost-1a2-xyz", map[string]string{workload.LabelTemplateHash: "1a2"}, owner("ReplicaSet", "lost-1a2", true))),
		// A StatefulSet's, being deleted.
		pod(deleted(sensorCacheMeta("shop", "db-0", map[string]string{appsv1.ControllerRevisionHashLabelKey: "db-6f7"}, owner("StatefulSet", "db", true)))),
		// No controller, no labels.
		pod(sensorCacheMeta("shop", "loner", nil)),
	}
	// More labels than an envelope carries.
	many := map[string]string{}
	for i := range maxPodLabels + 1 {
		many[fmt.Sprintf("l%d", i)] = "v"
	}
	pods = append(pods, pod(sensorCacheMeta("shop", "labelled", many)))

	nodeConditions := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available", LastHeartbeatTime: t0, LastTransitionTime: t0},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: t0, LastTransitionTime: t0},
	}
	node := func(meta metav1.ObjectMeta, unschedulable bool) *corev1.Node {
		return &corev1.Node{ObjectMeta: meta,
			Spec: corev1.NodeSpec{Unschedulable: unschedulable, PodCIDR: "10.1.0.0/24", PodCIDRs: []string{"10.1.0.0/24"}, ProviderID: "kwok://node-1",
				Taints: []corev1.Taint{{Key: "kwok.x-k8s.io/node", Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7500m"), corev1.ResourceMemory: resource.MustParse("30Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Conditions:  slices.Clone(nodeConditions),
				Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
				NodeInfo:    corev1.NodeSystemInfo{KubeletVersion: "v1.35.0", OSImage: "Linux"},
				Images:      []corev1.ContainerImage{{Names: []string{"registry.example.com/web:1.4.2"}, SizeBytes: 1 << 20}},
			}}
	}
	notReady := node(deleted(sensorCacheMeta("", "node-2", map[string]string{"zone": "b"})), true)
	notReady.Status.Conditions[1].Status = corev1.ConditionFalse

	event := func(meta metav1.ObjectMeta) *corev1.Event {
		return &corev1.Event{ObjectMeta: meta,
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-7d9f8-abcde", UID: "uid-web-7d9f8-abcde",
				APIVersion: "v1", ResourceVersion: "4711", FieldPath: "spec.containers{worker}"},
			Reason: "BackOff", Message: "Back-off restarting failed container worker", Type: corev1.EventTypeWarning, Count: 5,
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
			FirstTimestamp: t0, ReportingController: "kubelet", ReportingInstance: "node-1", Action: "Restart",
			Related: &corev1.ObjectReference{Kind: "Node", Name: "node-1"},
		}
	}
	// Its time from LastTimestamp, EventTime or its creation; its count
	// from the series when that is more.
	lastTimestamp := event(sensorCacheMeta("shop", "web.1", nil))
	lastTimestamp.LastTimestamp = metav1.NewTime(now.Add(-time.Minute))
	lastTimestamp.Series = &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(now)}
	eventTime := event(sensorCacheMeta("shop", "web.2", nil))
	eventTime.EventTime = metav1.NewMicroTime(now.Add(-2 * time.Minute))
	eventTime.Series = &corev1.EventSeries{Count: 9, LastObservedTime: metav1.NewMicroTime(now)}
	created := event(sensorCacheMeta("shop", "web.3", nil))

	template := sensorCachePodTemplate(now)
	deployment := func(meta metav1.ObjectMeta, replicas *int32) *appsv1.Deployment {
		meta.Annotations[workload.AnnotationRevision] = "4"
		return &appsv1.Deployment{ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{Replicas: replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: *template.DeepCopy(), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
				RevisionHistoryLimit: ptr.To[int32](10), ProgressDeadlineSeconds: ptr.To[int32](600)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 6, Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3,
				UnavailableReplicas: 1, TerminatingReplicas: ptr.To[int32](1), CollisionCount: ptr.To[int32](1),
				Conditions: conditions(2, func(typ, status, reason, message string) appsv1.DeploymentCondition {
					return appsv1.DeploymentCondition{Type: appsv1.DeploymentConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: message, LastUpdateTime: t0, LastTransitionTime: t0}
				})}}
	}
	statefulSet := func(meta metav1.ObjectMeta, replicas *int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: meta,
			Spec: appsv1.StatefulSetSpec{Replicas: replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Template: *template.DeepCopy(), ServiceName: "db",
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: 6, Replicas: 3, CurrentReplicas: 2, UpdatedReplicas: 1, ReadyReplicas: 2,
				AvailableReplicas: 2, CurrentRevision: "db-6f7", UpdateRevision: "db-8a9", CollisionCount: ptr.To[int32](0),
				Conditions: conditions(1, func(typ, status, reason, message string) appsv1.StatefulSetCondition {
					return appsv1.StatefulSetCondition{Type: appsv1.StatefulSetConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: message, LastTransitionTime: t0}
				})}}
	}
	daemonSet := func(meta metav1.ObjectMeta) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: meta,
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}, Template: *template.DeepCopy()},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: 6, DesiredNumberScheduled: 5, CurrentNumberScheduled: 4, UpdatedNumberScheduled: 3,
				NumberReady: 2, NumberAvailable: 1, NumberUnavailable: 4, NumberMisscheduled: 1,
				Conditions: conditions(1, func(typ, status, reason, message string) appsv1.DaemonSetCondition {
					return appsv1.DaemonSetCondition{Type: appsv1.DaemonSetConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: message, LastTransitionTime: t0}
				})}}
	}
	job := func(meta metav1.ObjectMeta, counts bool) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: meta,
			Spec: batchv1.JobSpec{Template: *template.DeepCopy(), ActiveDeadlineSeconds: ptr.To[int64](600),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "x"}}},
			Status: batchv1.JobStatus{Active: 1, Succeeded: 2, Failed: 3, Ready: ptr.To[int32](1), UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
				Conditions: conditions(1, func(typ, status, reason, message string) batchv1.JobCondition {
					return batchv1.JobCondition{Type: batchv1.JobConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: message, LastProbeTime: t0, LastTransitionTime: t0}
				})}}
		if counts {
			j.Spec.Completions, j.Spec.Parallelism, j.Spec.BackoffLimit = ptr.To[int32](5), ptr.To[int32](2), ptr.To[int32](4)
			j.Status.StartTime, j.Status.CompletionTime = &t0, ptr.To(metav1.NewTime(now))
		}
		return j
	}
	hpa := func(meta metav1.ObjectMeta, min *int32) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta,
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
				MinReplicas:    min, MaxReplicas: 10,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)}},
			},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, DesiredReplicas: 5, LastScaleTime: &t0, ObservedGeneration: ptr.To[int64](7),
				CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType}},
				Conditions: conditions(2, func(typ, status, reason, message string) autoscalingv2.HorizontalPodAutoscalerCondition {
					return autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.HorizontalPodAutoscalerConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: message, LastTransitionTime: t0}
				})}}
	}
	service := func(meta metav1.ObjectMeta) *corev1.Service {
		return &corev1.Service{ObjectMeta: meta,
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
				ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, SessionAffinity: corev1.ServiceAffinityNone,
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, NodePort: 30080, AppProtocol: ptr.To("http")},
					{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9091), Protocol: corev1.ProtocolTCP},
				}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}}}
	}
	tcpProto := corev1.ProtocolTCP
	policy := func(meta metav1.ObjectMeta) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: meta, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "edge"}}}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "gateway"}},
						NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpExists}}}},
					{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}}},
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"},
							MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "stage", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod"}}}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.0.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcpProto, Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](8100)},
					{Port: ptr.To(intstr.FromString("http"))}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}}},
		}}
	}
	truncated := policy(sensorCacheMeta("shop", "wide", nil))
	for i := range maxPolicyList + 1 {
		truncated.Spec.Ingress = append(truncated.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(int32(1000 + i)))}}})
	}

	return map[bus.Kind][]client.Object{
		bus.KindPod:   pods,
		bus.KindNode:  {node(sensorCacheMeta("", "node-1", map[string]string{"kubernetes.io/hostname": "node-1", "zone": "a"}), false), notReady},
		bus.KindEvent: {lastTimestamp, eventTime, created},
		bus.KindDeployment: {deployment(sensorCacheMeta("shop", "web", map[string]string{"app": "web"}), ptr.To[int32](4)),
			deployment(deleted(sensorCacheMeta("shop", "old", nil)), nil)},
		bus.KindStatefulSet: {statefulSet(sensorCacheMeta("shop", "db", map[string]string{"app": "db"}), ptr.To[int32](3)),
			statefulSet(deleted(sensorCacheMeta("shop", "old-db", nil)), nil)},
		bus.KindDaemonSet: {daemonSet(sensorCacheMeta("shop", "agent", map[string]string{"app": "agent"})),
			daemonSet(deleted(sensorCacheMeta("shop", "old-agent", nil)))},
		bus.KindJob: {job(sensorCacheMeta("shop", "backup-29000000", nil, owner("CronJob", "backup", true)), true),
			job(deleted(sensorCacheMeta("shop", "adhoc", nil)), false)},
		bus.KindHPA: {hpa(sensorCacheMeta("shop", "web", nil), ptr.To[int32](2)), hpa(deleted(sensorCacheMeta("shop", "old", nil)), nil)},
		bus.KindService: {service(sensorCacheMeta("shop", "web", map[string]string{"app": "web"})),
			service(deleted(sensorCacheMeta("shop", "old", nil)))},
		bus.KindNetworkPolicy: {policy(sensorCacheMeta("shop", "web", nil)), policy(deleted(sensorCacheMeta("shop", "old", nil))), truncated},
	}
}
