package oracle

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// reversed lists what its reader lists in reverse order, as a watch-fed
// cache may (it lists in no order).
type reversed struct{ client.Reader }

func (r reversed) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := r.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return err
	}
	slices.Reverse(items)
	return apimeta.SetList(list, items)
}

// TestGatherOrdersByName checks that a state lists objects by name
// whatever order its reader lists them in, so that reading the same
// cluster twice gives the same state, which Settling finds unchanged.
func TestGatherOrdersByName(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		p := readyPod(name, nil, nil)
		p.Namespace = "ev-1"
		objs = append(objs, &p)
	}
	for _, name := range []string{"api", "web"} {
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ev-1", Name: name}})
	}
	for _, name := range []string{"node-1", "node-2"} {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	scope := Scope{Namespace: "ev-1", SkipRBAC: true}
	inOrder, err := Gather(t.Context(), c, scope)
	if err != nil {
		t.Fatal(err)
	}
	backwards, err := Gather(t.Context(), reversed{c}, scope)
	if err != nil {
		t.Fatal(err)
	}
	names := func(s *State) []string {
		var out []string
		for _, p := range s.Pods {
			out = append(out, p.Name)
		}
		for _, d := range s.Deployments {
			out = append(out, d.Name)
		}
		for _, n := range s.Nodes {
			out = append(out, n.Name)
		}
		return out
	}
	want := []string{"web-a", "web-b", "web-c", "api", "web", "node-1", "node-2"}
	for _, s := range []*State{inOrder, backwards} {
		if got := names(s); !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
	}
	if got := Settling(inOrder, backwards); slices.Contains(got, "the state changed since the last look") {
		t.Fatalf("the same cluster read twice: %v", got)
	}
}
