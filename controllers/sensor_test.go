package controllers_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	msg, err := stream.GetLastMsgForSubject(ctx, bus.TelemetrySubject(auditCluster, kind, namespace, name))
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
	startManager(t, []string{ns}, func(mgr ctrl.Manager) error {
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
		}))
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
