package harness

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tendops/tend/evals/scenario"
)

func TestPlace(t *testing.T) {
	dep := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"nodeSelector": map[string]any{"disk": "ssd"}}}},
		}}
	}
	u := dep()
	place(u, "ev-1", "1", false)
	if u.GetNamespace() != "ev-1" {
		t.Fatalf("namespace = %q", u.GetNamespace())
	}
	sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "spec", "nodeSelector")
	if diff := cmp.Diff(map[string]string{"disk": "ssd"}, sel); diff != "" {
		t.Fatalf("without own nodes the selector stays (-want +got):\n%s", diff)
	}

	u = dep()
	place(u, "ev-1", "1", true)
	sel, _, _ = unstructured.NestedStringMap(u.Object, "spec", "template", "spec", "nodeSelector")
	if diff := cmp.Diff(map[string]string{"disk": "ssd", runKey: "1"}, sel); diff != "" {
		t.Fatalf("with own nodes pods select them (-want +got):\n%s", diff)
	}
	tols, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "tolerations")
	want := []any{map[string]any{"key": runKey, "operator": "Equal", "value": "1", "effect": "NoSchedule"}}
	if diff := cmp.Diff(want, tols); diff != "" {
		t.Fatalf("tolerations (-want +got):\n%s", diff)
	}

	ev := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Event", "metadata": map[string]any{"name": "e"},
		"involvedObject": map[string]any{"kind": "Deployment", "name": "web"}}}
	place(ev, "ev-1", "1", true)
	if ns, _, _ := unstructured.NestedString(ev.Object, "involvedObject", "namespace"); ns != "ev-1" {
		t.Fatalf("event involvedObject namespace = %q", ns)
	}

	n := simNode("1", scenario.Node{Name: "a", Labels: map[string]string{"role": "primary"}, Unschedulable: true})
	if n.Name != "ev-1-a" || n.Labels["role"] != "primary" || n.Labels[runKey] != "1" || !n.Spec.Unschedulable ||
		n.Annotations[kwokNodeAnnotation] != "fake" || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Value != "1" {
		t.Fatalf("node: %+v", n)
	}
}
