package controllers_test

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wl "github.com/tendops/tend/controllers/workload"
)

const (
	annotationRevision = "deployment.kubernetes.io/revision"
	labelTemplateHash  = "pod-template-hash"
)

// workload plays the deployment controller and the kubelet for one
// single-replica Deployment, which envtest (an API server without
// kube-controller-manager or nodes) does not run: it keeps one ReplicaSet per
// pod template with its rollout revision, and pods whose readiness the test
// chooses.
type workload struct {
	t         *testing.T
	c         client.Client
	Namespace string
	Name      string
}

// image is the container image of the workload's given version.
func (w *workload) image(version string) string {
	return fmt.Sprintf("registry.example/%s:%s", w.Name, version)
}

// newFailingRollout creates Deployment name whose revision 1 (image v1) was
// healthy and whose current revision 2 (image v2) crash-loops; revision 1's
// ReplicaSet is kept, scaled to zero, as the deployment controller does.
func newFailingRollout(t *testing.T, c client.Client, namespace, name string) *workload {
	t.Helper()
	w := newUnrolled(t, c, namespace, name)
	w.Rollout(true)
	// What tend's RevisionReconciler writes once revision 1 ran healthy for
	// its window (tested on its own in revisions_test.go): the record that
	// outlives the revision being scaled down, and the gate's evidence.
	w.RecordHealthy("v1")
	w.Update(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = w.image("v2") })
	w.Rollout(false)
	return w
}

// newUnrolled creates Deployment name (one replica of image v1) with no
// ReplicaSet yet.
func newUnrolled(t *testing.T, c client.Client, namespace, name string) *workload {
	t.Helper()
	w := &workload{t: t, c: c, Namespace: namespace, Name: name}
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: w.image("v1"),
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if err := c.Create(t.Context(), d); err != nil {
		t.Fatalf("failed to create deployment: %v", err)
	}
	return w
}

// newNeverHealthyRollout creates Deployment name whose revision 1 (image v1)
// crash-looped and was never healthy, and whose current revision 2 (image
// v2) crash-loops too: a rollback to revision 1 has no healthy record.
func newNeverHealthyRollout(t *testing.T, c client.Client, namespace, name string) *workload {
	t.Helper()
	w := newUnrolled(t, c, namespace, name)
	w.Rollout(false)
	w.Update(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = w.image("v2") })
	w.Rollout(false)
	return w
}

// RecordHealthy stamps the ReplicaSet of version with tend's record that it
// ran healthy.
func (w *workload) RecordHealthy(version string) {
	w.t.Helper()
	for _, rs := range w.ReplicaSets() {
		if rs.Spec.Template.Spec.Containers[0].Image != w.image(version) {
			continue
		}
		patch := client.MergeFrom(rs.DeepCopy())
		metav1.SetMetaDataAnnotation(&rs.ObjectMeta, wl.AnnotationRanHealthy, time.Now().UTC().Format(time.RFC3339))
		if err := w.c.Patch(w.t.Context(), &rs, patch); err != nil {
			w.t.Fatalf("failed to record revision %s healthy: %v", version, err)
		}
		return
	}
	w.t.Fatalf("no replicaset runs %s", w.image(version))
}

// Deployment reads the live Deployment.
func (w *workload) Deployment() *appsv1.Deployment {
	w.t.Helper()
	d := &appsv1.Deployment{}
	if err := w.c.Get(w.t.Context(), client.ObjectKey{Namespace: w.Namespace, Name: w.Name}, d); err != nil {
		w.t.Fatalf("failed to get deployment: %v", err)
	}
	return d
}

// Update changes the Deployment's spec as its owner would.
func (w *workload) Update(mutate func(*appsv1.Deployment)) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := w.Deployment()
		mutate(d)
		return w.c.Update(w.t.Context(), d)
	})
	if err != nil {
		w.t.Fatalf("failed to update deployment: %v", err)
	}
}

// ReplicaSets lists the Deployment's ReplicaSets.
func (w *workload) ReplicaSets() []appsv1.ReplicaSet {
	w.t.Helper()
	var list appsv1.ReplicaSetList
	if err := w.c.List(w.t.Context(), &list, client.InNamespace(w.Namespace)); err != nil {
		w.t.Fatalf("failed to list replicasets: %v", err)
	}
	d := w.Deployment()
	return slices.DeleteFunc(list.Items, func(rs appsv1.ReplicaSet) bool { return !metav1.IsControlledBy(&rs, d) })
}

// Template returns the pod template of the workload's version (as its
// ReplicaSet holds it, without the pod-template-hash label), which is what a
// rollback to that revision writes into the Deployment.
func (w *workload) Template(version string) corev1.PodTemplateSpec {
	w.t.Helper()
	for _, rs := range w.ReplicaSets() {
		if rs.Spec.Template.Spec.Containers[0].Image == w.image(version) {
			tmpl := rs.Spec.Template.DeepCopy()
			delete(tmpl.Labels, labelTemplateHash)
			return *tmpl
		}
	}
	w.t.Fatalf("no replicaset runs %s", w.image(version))
	return corev1.PodTemplateSpec{}
}

// Rollout does what the deployment controller and the kubelet do after a
// change of the Deployment's pod template: the ReplicaSet of that template
// (an existing one, or a new one) becomes the newest revision and is scaled
// to one pod, every other ReplicaSet to none, and the Deployment's
// revision annotation and status follow. The new pod is ready when healthy,
// else it crash-loops. The Deployment's spec is never touched.
func (w *workload) Rollout(healthy bool) {
	w.t.Helper()
	ctx := w.t.Context()
	d := w.Deployment()
	rss := w.ReplicaSets()

	newest := int64(0)
	for _, rs := range rss {
		newest = max(newest, revisionOf(&rs))
	}
	var current *appsv1.ReplicaSet
	for i := range rss {
		tmpl := rss[i].Spec.Template.DeepCopy()
		delete(tmpl.Labels, labelTemplateHash)
		if equality.Semantic.DeepEqual(*tmpl, d.Spec.Template) {
			current = &rss[i]
		}
	}
	if current == nil {
		hash := templateHash(&d.Spec.Template)
		tmpl := d.Spec.Template.DeepCopy()
		tmpl.Labels[labelTemplateHash] = hash
		sel := d.Spec.Selector.DeepCopy()
		sel.MatchLabels[labelTemplateHash] = hash
		current = &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:       w.Namespace,
				Name:            w.Name + "-" + hash,
				Labels:          tmpl.Labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
			},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(0)), Selector: sel, Template: *tmpl},
		}
		if err := w.c.Create(ctx, current); err != nil {
			w.t.Fatalf("failed to create replicaset: %v", err)
		}
		rss = append(rss, *current)
	}
	rev := revisionOf(current)
	if rev == 0 || rev < newest {
		rev = newest + 1
	}

	// Scale: the current ReplicaSet to one pod, every other one to none.
	for _, rs := range rss {
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			live := &appsv1.ReplicaSet{}
			if err := w.c.Get(ctx, client.ObjectKeyFromObject(&rs), live); err != nil {
				return err
			}
			live.Spec.Replicas = ptr.To(int32(0))
			if live.Name == current.Name {
				live.Spec.Replicas = ptr.To(int32(1))
				metav1.SetMetaDataAnnotation(&live.ObjectMeta, annotationRevision, strconv.FormatInt(rev, 10))
			}
			if err := w.c.Update(ctx, live); err != nil {
				return err
			}
			// The ReplicaSet controller's report of its pods.
			ready := int32(0)
			if live.Name == current.Name && healthy {
				ready = 1
			}
			live.Status = appsv1.ReplicaSetStatus{Replicas: *live.Spec.Replicas, ReadyReplicas: ready, AvailableReplicas: ready,
				FullyLabeledReplicas: *live.Spec.Replicas, ObservedGeneration: live.Generation}
			return w.c.Status().Update(ctx, live)
		}); err != nil {
			w.t.Fatalf("failed to scale replicaset %s: %v", rs.Name, err)
		}
	}
	var pods corev1.PodList
	if err := w.c.List(ctx, &pods, client.InNamespace(w.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		w.t.Fatalf("failed to list pods: %v", err)
	}
	for i := range pods.Items {
		if err := w.c.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
			w.t.Fatalf("failed to delete pod: %v", err)
		}
	}
	w.startPod(current, healthy)

	// The Deployment's revision annotation and status. Like the deployment
	// controller, write both through the status subresource: an annotation
	// change through the main resource would bump the Deployment's generation.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		live := w.Deployment()
		if live.Generation != d.Generation {
			return fmt.Errorf("deployment spec changed during the rollout (generation %d, rolled out %d)", live.Generation, d.Generation)
		}
		metav1.SetMetaDataAnnotation(&live.ObjectMeta, annotationRevision, strconv.FormatInt(rev, 10))
		ready := int32(0)
		if healthy {
			ready = 1
		}
		live.Status = appsv1.DeploymentStatus{
			ObservedGeneration:  live.Generation,
			Replicas:            1,
			UpdatedReplicas:     1,
			ReadyReplicas:       ready,
			AvailableReplicas:   ready,
			UnavailableReplicas: 1 - ready,
		}
		return w.c.Status().Update(ctx, live)
	})
	if err != nil {
		w.t.Fatalf("failed to update deployment status: %v", err)
	}
	if got := w.Deployment(); revisionOf(got) != rev || got.Generation != d.Generation {
		w.t.Fatalf("deployment at revision %d generation %d after the rollout, want revision %d generation %d",
			revisionOf(got), got.Generation, rev, d.Generation)
	}
}

// startPod creates rs's pod and reports its containers running and ready, or
// crash-looping.
func (w *workload) startPod(rs *appsv1.ReplicaSet, healthy bool) {
	w.t.Helper()
	ctx := w.t.Context()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       w.Namespace,
			Name:            rs.Name + "-" + rand.String(5),
			Labels:          rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: *rs.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = "node-1"
	if err := w.c.Create(ctx, pod); err != nil {
		w.t.Fatalf("failed to create pod: %v", err)
	}
	now := metav1.NewTime(time.Now())
	status := corev1.ConditionTrue
	cs := corev1.ContainerStatus{
		Name:    "app",
		Image:   pod.Spec.Containers[0].Image,
		Ready:   true,
		Started: ptr.To(true),
		State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}
	if !healthy {
		status = corev1.ConditionFalse
		cs = corev1.ContainerStatus{
			Name:         "app",
			Image:        pod.Spec.Containers[0].Image,
			Started:      ptr.To(false),
			RestartCount: 4,
			State:        corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", StartedAt: now, FinishedAt: now,
			}},
		}
	}
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{cs},
		StartTime:         &now,
	}
	if err := w.c.Status().Update(ctx, pod); err != nil {
		w.t.Fatalf("failed to report pod status: %v", err)
	}
}

func revisionOf(obj metav1.Object) int64 {
	r, _ := strconv.ParseInt(obj.GetAnnotations()[annotationRevision], 10, 64)
	return r
}

func templateHash(t *corev1.PodTemplateSpec) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%#v", *t)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
