package controllers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

// latest returns the last telemetry envelope published about one object.
func latest(g Gomega, js jetstream.JetStream, kind bus.Kind, namespace, name string) *bus.Envelope {
	ctx := context.Background()
	stream, err := js.Stream(ctx, bus.StreamTelemetry)
	g.Expect(err).NotTo(HaveOccurred())
	msg, err := stream.GetLastMsgForSubject(ctx, bus.StoredTelemetryFilter(auditCluster, kind, namespace, name))
	g.Expect(err).NotTo(HaveOccurred(), "no %s telemetry about %s/%s", kind, namespace, name)
	env, err := bus.Decode(msg.Data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(env.Cluster).To(Equal(auditCluster))
	g.Expect(env.Source).To(Equal("sensor"))
	return env
}

func TestSensorPublishesTelemetry(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	js := startNATS(t)
	// The sensor's cache as `tend sensor` runs it, slimmed.
	startManagerTransforming(t, []string{ns}, controllers.SensorCacheTransform(), func(mgr ctrl.Manager) error {
		return (&controllers.Sensor{Client: mgr.GetClient(), Publisher: bus.NewPublisher(js, auditCluster, "sensor")}).SetupWithManager(mgr)
	})
	c := kube(t)

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "sensor-node-"}}
	g.Expect(c.Create(t.Context(), node)).To(Succeed())
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), node); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to delete node: %v", err)
		}
	})
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	g.Expect(c.Status().Update(t.Context(), node)).To(Succeed())

	w := newFailingRollout(t, c, ns, "web")
	var pods corev1.PodList
	g.Expect(c.List(t.Context(), &pods, client.InNamespace(ns))).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(1))
	pod := pods.Items[0]

	// The crash-looping pod, attributed to its Deployment and revision.
	g.Eventually(func(g Gomega) {
		env := latest(g, js, bus.KindPod, ns, pod.Name)
		g.Expect(env.Object).To(Equal(bus.ObjectRef{Kind: bus.KindPod, Namespace: ns, Name: pod.Name, UID: string(pod.UID)}))
		st := env.Pod
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Ready).To(BeFalse())
		g.Expect(st.Workload).To(Equal(&bus.WorkloadRef{Kind: "Deployment", Name: "web"}))
		g.Expect(st.Revision).To(Equal(int64(2)))
		g.Expect(st.TemplateHash).To(Equal(pod.Labels["pod-template-hash"]))
		g.Expect(st.Containers).To(HaveExactElements(bus.ContainerState{
			Name: "app", Image: w.image("v2"), RestartCount: 4, State: bus.ContainerWaiting,
			Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container",
			LastTerminationReason: "Error", LastExitCode: 1,
			Ports: []bus.ContainerPort{{ContainerPort: 8080, Protocol: "TCP"}},
		}))
		g.Expect(st.Labels).To(HaveKeyWithValue("pod-template-hash", pod.Labels["pod-template-hash"]))
	}).Should(Succeed())

	// The Deployment, at revision 2 with its pod unavailable.
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindDeployment, ns, "web").Deployment
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Revision).To(Equal(int64(2)))
		g.Expect(st.Images).To(Equal([]string{w.image("v2")}))
		g.Expect(st.UnavailableReplicas).To(Equal(int32(1)))
		g.Expect(st.ObservedGeneration).To(Equal(st.Generation))
	}).Should(Succeed())

	// The node, ready.
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindNode, "", node.Name).Node
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Ready).To(BeTrue())
	}).Should(Succeed())

	// A Kubernetes Event about the pod.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, GenerateName: pod.Name + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID, APIVersion: "v1"},
		Type:           corev1.EventTypeWarning,
		Reason:         "BackOff",
		Message:        "Back-off restarting failed container app",
		Count:          5,
		FirstTimestamp: metav1.NewTime(time.Now().Add(-time.Minute)),
		LastTimestamp:  metav1.Now(),
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
	}
	g.Expect(c.Create(t.Context(), ev)).To(Succeed())
	g.Eventually(func(g Gomega) {
		rec := latest(g, js, bus.KindEvent, ns, ev.Name).Event
		g.Expect(rec).NotTo(BeNil())
		g.Expect(rec.Reason).To(Equal("BackOff"))
		g.Expect(rec.Count).To(Equal(int32(5)))
		g.Expect(rec.Involved).To(Equal(bus.ObjectRef{Kind: bus.KindPod, Namespace: ns, Name: pod.Name, UID: string(pod.UID)}))
	}).Should(Succeed())

	// A deleted pod leaves a tombstone.
	g.Expect(c.Delete(t.Context(), &pod, client.GracePeriodSeconds(0))).To(Succeed())
	g.Eventually(func(g Gomega) bool {
		st := latest(g, js, bus.KindPod, ns, pod.Name).Pod
		g.Expect(st).NotTo(BeNil())
		return st.Deleted
	}).Should(BeTrue())
}

// count returns how many telemetry messages about one object the stream holds.
func count(g Gomega, js jetstream.JetStream, kind bus.Kind, namespace, name string) uint64 {
	ctx := context.Background()
	stream, err := js.Stream(ctx, bus.StreamTelemetry)
	g.Expect(err).NotTo(HaveOccurred())
	filter := bus.StoredTelemetryFilter(auditCluster, kind, namespace, name)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	g.Expect(err).NotTo(HaveOccurred())
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func TestSensorWorkloadKinds(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	js := startNATS(t)
	sensor := &controllers.Sensor{Client: nil, Publisher: bus.NewPublisher(js, auditCluster, "sensor")}
	startManagerTransforming(t, []string{ns}, controllers.SensorCacheTransform(), func(mgr ctrl.Manager) error {
		sensor.Client = mgr.GetClient()
		return sensor.SetupWithManager(mgr)
	})
	// envtest's API server serves every kind but not metrics.k8s.io.
	g.Expect(sensor.Watching()).To(ConsistOf(bus.KindPod, bus.KindNode, bus.KindEvent, bus.KindDeployment,
		bus.KindStatefulSet, bus.KindDaemonSet, bus.KindJob, bus.KindHPA, bus.KindService, bus.KindNetworkPolicy))
	c := kube(t)

	labels := map[string]string{"app": "db"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/db:17"}}},
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}
	g.Expect(c.Create(t.Context(), sts)).To(Succeed())
	sts.Status = appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 2, CurrentReplicas: 3, UpdatedReplicas: 1,
		CurrentRevision: "db-1", UpdateRevision: "db-2", ObservedGeneration: 1}
	g.Expect(c.Status().Update(t.Context(), sts)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindStatefulSet, ns, "db").StatefulSet
		g.Expect(st).To(Equal(&bus.WorkloadState{Generation: 1, ObservedGeneration: 1, Replicas: 3, CurrentReplicas: 3, UpdatedReplicas: 1,
			ReadyReplicas: 2, CurrentRevision: "db-1", UpdateRevision: "db-2", Images: []string{"registry.example.com/db:17"},
			Template: []bus.ContainerState{{Name: "app", Image: "registry.example.com/db:17"}}}))
	}).Should(Succeed())

	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}
	g.Expect(c.Create(t.Context(), ds)).To(Succeed())
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4, NumberReady: 3, NumberAvailable: 3, UpdatedNumberScheduled: 4}
	g.Expect(c.Status().Update(t.Context(), ds)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindDaemonSet, ns, "agent").DaemonSet
		g.Expect(st).NotTo(BeNil())
		g.Expect(*st).To(Equal(bus.WorkloadState{Generation: 1, Replicas: 4, CurrentReplicas: 4, UpdatedReplicas: 4, ReadyReplicas: 3,
			AvailableReplicas: 3, Images: []string{"registry.example.com/db:17"},
			Template: []bus.ContainerState{{Name: "app", Image: "registry.example.com/db:17"}}}))
	}).Should(Succeed())

	jobTemplate := template.DeepCopy()
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "migrate"},
		Spec:       batchv1.JobSpec{BackoffLimit: ptr.To(int32(2)), Template: *jobTemplate},
	}
	g.Expect(c.Create(t.Context(), job)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindJob, ns, "migrate").Job
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.BackoffLimit).To(Equal(int32(2)))
		g.Expect(st.Completions).To(Equal(int32(1)))
		g.Expect(st.Images).To(Equal([]string{"registry.example.com/db:17"}))
	}).Should(Succeed())

	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
			MinReplicas:    ptr.To(int32(2)), MaxReplicas: 5,
		},
	}
	g.Expect(c.Create(t.Context(), hpa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindHPA, ns, "db").HPA
		g.Expect(st).To(Equal(&bus.AutoscalerState{Target: bus.WorkloadRef{Kind: "StatefulSet", Name: "db"}, MinReplicas: 2, MaxReplicas: 5}))
	}).Should(Succeed())

	// A deleted HPA leaves a tombstone.
	g.Expect(c.Delete(t.Context(), hpa)).To(Succeed())
	g.Eventually(func(g Gomega) bool {
		st := latest(g, js, bus.KindHPA, ns, "db").HPA
		g.Expect(st).NotTo(BeNil())
		return st.Deleted
	}).Should(BeTrue())

	// A NetworkPolicy, as the API server defaulted it (policy types), each
	// change of it, and its tombstone.
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: labels},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}}},
		},
	}
	g.Expect(c.Create(t.Context(), np)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindNetworkPolicy, ns, "db-ingress").NetworkPolicy
		g.Expect(st).To(Equal(&bus.NetworkPolicyState{Generation: 1, PodSelector: bus.LabelSelector{MatchLabels: labels}, PolicyTypes: []string{"Ingress"},
			Ingress: []bus.NetworkPolicyIngressRule{{From: []bus.NetworkPolicyPeer{{PodSelector: &bus.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}}}}))
	}).Should(Succeed())
	np.Spec.Ingress[0].From[0].PodSelector.MatchLabels = map[string]string{"role": "admin"}
	g.Expect(c.Update(t.Context(), np)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := latest(g, js, bus.KindNetworkPolicy, ns, "db-ingress").NetworkPolicy
		g.Expect(st.Generation).To(Equal(int64(2)))
		g.Expect(st.Ingress[0].From[0].PodSelector.MatchLabels).To(Equal(map[string]string{"role": "admin"}))
	}).Should(Succeed())
	g.Expect(c.Delete(t.Context(), np)).To(Succeed())
	g.Eventually(func(g Gomega) bool {
		st := latest(g, js, bus.KindNetworkPolicy, ns, "db-ingress").NetworkPolicy
		g.Expect(st).NotTo(BeNil())
		return st.Deleted
	}).Should(BeTrue())
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSensorCoalesces flaps a node within one interval, on a clock that
// does not move: its changes are held back, and only its deletion, which is
// never held, is published after its first state.
func TestSensorCoalesces(t *testing.T) {
	g := newG(t)
	js := startNATS(t)
	clock := &fakeClock{now: time.Now()}
	startManager(t, nil, func(mgr ctrl.Manager) error {
		return (&controllers.Sensor{Client: mgr.GetClient(), Publisher: bus.NewPublisher(js, auditCluster, "sensor"),
			Now: clock.Now, MinInterval: time.Hour, Burst: 1}).SetupWithManager(mgr)
	})
	c := kube(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "flapping-"}}
	g.Expect(c.Create(t.Context(), node)).To(Succeed())
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), node); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to delete node: %v", err)
		}
	})
	g.Eventually(func(g Gomega) uint64 { return count(g, js, bus.KindNode, "", node.Name) }).Should(Equal(uint64(1)))
	first := latest(g, js, bus.KindNode, "", node.Name)

	for i := range 10 {
		node.Spec.Unschedulable = i%2 == 0
		g.Expect(c.Update(t.Context(), node)).To(Succeed())
	}
	g.Expect(c.Delete(t.Context(), node)).To(Succeed())
	g.Eventually(func(g Gomega) bool {
		return latest(g, js, bus.KindNode, "", node.Name).Node.Deleted
	}).Should(BeTrue())
	g.Expect(count(g, js, bus.KindNode, "", node.Name)).To(Equal(uint64(2)), "eleven changes and a deletion within one interval: the first state and the tombstone")
	g.Expect(first.ID).To(HavePrefix(string(node.UID) + "/"))
}

// TestSensorPublishesLatestAfterInterval flaps a node with a short interval:
// the state published last is its final one, although it changed within
// the interval.
func TestSensorPublishesLatestAfterInterval(t *testing.T) {
	g := newG(t)
	js := startNATS(t)
	startManager(t, nil, func(mgr ctrl.Manager) error {
		return (&controllers.Sensor{Client: mgr.GetClient(), Publisher: bus.NewPublisher(js, auditCluster, "sensor"),
			MinInterval: 200 * time.Millisecond, Burst: 1}).SetupWithManager(mgr)
	})
	c := kube(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "flapping-"}}
	g.Expect(c.Create(t.Context(), node)).To(Succeed())
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), node); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to delete node: %v", err)
		}
	})
	for i := range 10 {
		node.Spec.Unschedulable = i%2 == 0
		g.Expect(c.Update(t.Context(), node)).To(Succeed())
	}
	g.Eventually(func(g Gomega) string {
		return latest(g, js, bus.KindNode, "", node.Name).ID
	}).Should(Equal(string(node.UID) + "/" + node.ResourceVersion))
	g.Expect(latest(g, js, bus.KindNode, "", node.Name).Node.Unschedulable).To(BeFalse())
}
