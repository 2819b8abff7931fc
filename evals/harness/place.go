package harness

import (
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
	var path []string
	switch u.GetKind() {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		path = []string{"spec", "template", "spec"}
	case "Pod":
		path = []string{"spec"}
	default:
		return
	}
	sel, _, _ := unstructured.NestedStringMap(u.Object, append(path, "nodeSelector")...)
	if sel == nil {
		sel = map[string]string{}
	}
	sel[runKey] = id
	_ = unstructured.SetNestedStringMap(u.Object, sel, append(path, "nodeSelector")...)
	tols, _, _ := unstructured.NestedSlice(u.Object, append(path, "tolerations")...)
	tols = append(tols, map[string]any{"key": runKey, "operator": "Equal", "value": id, "effect": "NoSchedule"})
	_ = unstructured.SetNestedSlice(u.Object, tols, append(path, "tolerations")...)
}
