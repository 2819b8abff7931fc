package harness

import (
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tendops/tend/evals/scenario"
)

const (
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// runKey labels and taints a run's own nodes, so that only its pods go
	// there.
	runKey = "tend.dev/eval-run"
)

func nodeName(id, name string) string { return "ev-" + id + "-" + name }

// simNode is a scenario node: managed by kwok, labelled and tainted for its run.
func simNode(id string, n scenario.Node) *corev1.Node {
	labels := map[string]string{"kubernetes.io/hostname": nodeName(id, n.Name), "kubernetes.io/os": "linux", "type": "kwok", runKey: id}
	for k, v := range n.Labels {
		labels[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName(id, n.Name), Labels: labels, Annotations: map[string]string{kwokNodeAnnotation: "fake"}},
		Spec:       corev1.NodeSpec{Unschedulable: n.Unschedulable, Taints: []corev1.Taint{{Key: runKey, Value: id, Effect: corev1.TaintEffectNoSchedule}}},
	}
}

// place puts an object in the run's namespace; when the run has its own
// nodes, pod templates select them and tolerate their taint.
func place(u *unstructured.Unstructured, ns, id string, ownNodes bool) {
	u.SetNamespace(ns)
	if u.GetKind() == "Event" {
		_ = unstructured.SetNestedField(u.Object, ns, "involvedObject", "namespace")
	}
	if !ownNodes {
		return
	}
	path := podSpecPath(u.GetKind())
	if path == nil {
		return
	}
	sel, _, _ := unstructured.NestedStringMap(u.Object, append(slices.Clone(path), "nodeSelector")...)
	if sel == nil {
		sel = map[string]string{}
	}
	sel[runKey] = id
	_ = unstructured.SetNestedStringMap(u.Object, sel, append(slices.Clone(path), "nodeSelector")...)
	tols, _, _ := unstructured.NestedSlice(u.Object, append(slices.Clone(path), "tolerations")...)
	tol := map[string]any{"key": runKey, "operator": "Equal", "value": id, "effect": "NoSchedule"}
	if !slices.ContainsFunc(tols, func(t any) bool { return reflect.DeepEqual(t, tol) }) {
		tols = append(tols, tol)
	}
	_ = unstructured.SetNestedSlice(u.Object, tols, append(slices.Clone(path), "tolerations")...)
}

// podSpecPath is where an object of a kind holds its pod spec; nil for a
// kind without one.
func podSpecPath(kind string) []string {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return []string{"spec", "template", "spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case "Pod":
		return []string{"spec"}
	}
	return nil
}

// hasPodTemplate reports whether a kind holds a pod template.
func hasPodTemplate(kind string) bool { return podSpecPath(kind) != nil && kind != "Pod" }
