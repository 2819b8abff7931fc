package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/internal/localstack"
)

// TestSimulatorLive shows the simulator on the live stack, with the app
// profiles of the suite: Kubernetes' env semantics (the last of two
// entries wins; a missing ConfigMap key is CreateContainerConfigError), an
// image no profile describes never runs, a Job's batch app completes and a
// crashing one fails its pod under restartPolicy Never, a periodically
// restarting app restarts and stays Ready, and a StatefulSet's claims are
// provisioned and bound.
func TestSimulatorLive(t *testing.T) {
	st := liveStack(t)
	g := NewWithT(t)
	ctx := t.Context()
	c := st.Client
	ns := "ev-sim-" + randomID()
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })

	pod := func(name, image string, env []corev1.EnvVar, ready *corev1.Probe) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, Env: env, ReadinessProbe: ready}}}}
	}
	// The periodically restarting cache's tags vary with the runs' draws.
	var flakyImage string
	for ref := range st.profiles {
		if strings.HasPrefix(ref, "registry.tend.local/data/cache:") {
			flakyImage = ref
		}
	}
	g.Expect(flakyImage).NotTo(BeEmpty())
	probe8080 := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intOrString(8080)}}}
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-config"},
		Data: map[string]string{"orders-db-url": "postgres://orders-db:5432/orders"}})).To(Succeed())
	keyRef := func(key string) []corev1.EnvVar {
		return []corev1.EnvVar{{Name: "ORDERS_DB", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "orders-config"}, Key: key}}}}
	}
	for _, p := range []*corev1.Pod{
		// gateway listens on $PORT: the first entry says 8080, the last 9090.
		pod("first-port", "registry.tend.local/shop/gateway:1.0", []corev1.EnvVar{{Name: "PORT", Value: "9090"}, {Name: "PORT", Value: "8080"}}, probe8080),
		pod("last-port", "registry.tend.local/shop/gateway:1.0", []corev1.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "PORT", Value: "9090"}}, probe8080),
		pod("key-ok", "registry.tend.local/shop/orders:2.1", keyRef("orders-db-url"), nil),
		pod("key-missing", "registry.tend.local/shop/orders:2.1", keyRef("db-url"), nil),
		pod("unprofiled", "docker.io/library/nginx:1.27", nil, nil),
		pod("flaky", flakyImage, nil, nil),
	} {
		g.Expect(c.Create(ctx, p)).To(Succeed(), p.Name)
	}
	job := func(name, image string, env []corev1.EnvVar) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](1),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "job", Image: image, Env: env}}}}}}
	}
	g.Expect(c.Create(ctx, job("report", "registry.tend.local/batch/report:2.3", nil))).To(Succeed())
	// orders needs ORDERS_DB: without it, it exits 1, and the Job fails.
	g.Expect(c.Create(ctx, job("orders-once", "registry.tend.local/shop/orders:2.1", nil))).To(Succeed())
	labels := map[string]string{"app": "kv"}
	g.Expect(c.Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kv"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](2), ServiceName: "kv", PodManagementPolicy: appsv1.ParallelPodManagement,
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "kv", Image: "registry.tend.local/data/kv:7.2", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To(localstack.LocalPathStorageClass),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}},
	}})).To(Succeed())

	get := func(g Gomega, name string) *corev1.Pod {
		p := &corev1.Pod{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
		return p
	}
	waiting := func(p *corev1.Pod) string {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				return cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
			}
		}
		return ""
	}
	g.Eventually(func(g Gomega) {
		g.Expect(podReady(get(g, "first-port"))).To(BeTrue(), "PORT is 9090, then 8080: the last wins and the probe on 8080 passes")
		g.Expect(podReady(get(g, "last-port"))).To(BeFalse(), "PORT is 8080, then 9090: the last wins and the probe on 8080 fails")
		g.Expect(get(g, "last-port").Status.ContainerStatuses).NotTo(BeEmpty())
		g.Expect(podReady(get(g, "key-ok"))).To(BeTrue())
		g.Expect(waiting(get(g, "key-missing"))).To(Equal("CreateContainerConfigError: couldn't find key db-url in ConfigMap " + ns + "/orders-config"))
		g.Expect(waiting(get(g, "unprofiled"))).To(HavePrefix("ImagePullBackOff"))
		flaky := get(g, "flaky")
		g.Expect(podReady(flaky)).To(BeTrue())
		g.Expect(flaky.Status.ContainerStatuses[0].RestartCount).To(BeNumerically(">=", 1), "the cache restarts every 25 to 40s")
		g.Expect(flaky.Status.ContainerStatuses[0].LastTerminationState.Terminated).NotTo(BeNil())
		g.Expect(flaky.Status.ContainerStatuses[0].LastTerminationState.Terminated.Reason).To(Equal("OOMKilled"))

		var jobs batchv1.JobList
		g.Expect(c.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
		done := map[string]string{}
		for _, j := range jobs.Items {
			for _, cond := range j.Status.Conditions {
				if cond.Status == corev1.ConditionTrue && (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) {
					done[j.Name] = string(cond.Type)
				}
			}
		}
		g.Expect(done).To(Equal(map[string]string{"report": "Complete", "orders-once": "Failed"}))

		var claims corev1.PersistentVolumeClaimList
		g.Expect(c.List(ctx, &claims, client.InNamespace(ns))).To(Succeed())
		g.Expect(claims.Items).To(HaveLen(2))
		for _, pvc := range claims.Items {
			g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound), "claim %s", pvc.Name)
		}
		for i := range 2 {
			g.Expect(podReady(get(g, fmt.Sprintf("kv-%d", i)))).To(BeTrue())
		}
	}).WithTimeout(90 * time.Second).WithPolling(2 * time.Second).Should(Succeed())

	// A running container keeps the env it started with; a pod that could
	// not start picks up the fixed ConfigMap.
	cm := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-config"}, cm)).To(Succeed())
	cm.Data = map[string]string{"db-url": "postgres://orders-db:5432/orders"}
	g.Expect(c.Update(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(podReady(get(g, "key-missing"))).To(BeTrue())
	}).WithTimeout(60 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(podReady(get(g, "key-ok"))).To(BeTrue(), "a running container keeps its environment")
	}).WithTimeout(6 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
