package controllers

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/tendops/tend/bus"
)

func TestUsageEnvelope(t *testing.T) {
	ts := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	podMetrics := func(cpu, mem string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
			"metadata":  map[string]any{"namespace": "shop", "name": "web-1"},
			"timestamp": "2026-11-21T12:00:00Z", "window": "15.5s",
			"containers": []any{
				map[string]any{"name": "web", "usage": map[string]any{"cpu": cpu, "memory": mem}},
				map[string]any{"name": "sidecar", "usage": map[string]any{"cpu": "5m", "memory": "1Mi"}},
			},
		}}
	}
	nodeMetrics := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
		"metadata":  map[string]any{"name": "node-1"},
		"timestamp": "2026-11-21T12:00:00Z", "window": "20s",
		"usage": map[string]any{"cpu": "1500m", "memory": "3Gi"},
	}}

	got, err := usageEnvelope(bus.KindPodMetrics, podMetrics("250m", "128Mi"))
	if err != nil {
		t.Fatalf("pod metrics: %v", err)
	}
	want := &bus.UsageSample{Timestamp: ts, WindowSeconds: 15.5, CPUMillicores: 255, MemoryBytes: 129 << 20, Containers: []bus.ContainerUsage{
		{Name: "web", CPUMillicores: 250, MemoryBytes: 128 << 20}, {Name: "sidecar", CPUMillicores: 5, MemoryBytes: 1 << 20}}}
	if diff := cmp.Diff(want, got.Usage); diff != "" {
		t.Errorf("pod usage (-want +got):\n%s", diff)
	}
	if got.Object != (bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: "shop", Name: "web-1"}) {
		t.Errorf("object %+v", got.Object)
	}
	again, err := usageEnvelope(bus.KindPodMetrics, podMetrics("300m", "128Mi"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != got.ID {
		t.Errorf("one sample of one pod has two IDs: %s and %s", got.ID, again.ID)
	}

	got, err = usageEnvelope(bus.KindNodeMetrics, nodeMetrics)
	if err != nil {
		t.Fatalf("node metrics: %v", err)
	}
	if diff := cmp.Diff(&bus.UsageSample{Timestamp: ts, WindowSeconds: 20, CPUMillicores: 1500, MemoryBytes: 3 << 30}, got.Usage); diff != "" {
		t.Errorf("node usage (-want +got):\n%s", diff)
	}
	got.Cluster, got.SchemaVersion = "prod", bus.SchemaVersion
	if _, err := bus.Encode(got); err != nil {
		t.Errorf("node usage envelope does not encode: %v", err)
	}

	for name, u := range map[string]*unstructured.Unstructured{
		"bad quantity":  podMetrics("lots", "1Mi"),
		"bad timestamp": {Object: map[string]any{"metadata": map[string]any{"name": "n"}, "timestamp": "yesterday"}},
	} {
		if _, err := usageEnvelope(bus.KindPodMetrics, u); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSensorHold(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := &Sensor{Now: func() time.Time { return now }, MinInterval: time.Second, Burst: 3, buckets: map[objectKey]*bucket{}}
	pod := objectKey{kind: bus.KindPod}
	pod.Name = "web"
	node := objectKey{kind: bus.KindNode}
	node.Name = "node-1"
	steps := []struct {
		advance time.Duration
		key     objectKey
		want    time.Duration
	}{
		{0, pod, 0}, {0, pod, 0}, {0, pod, 0}, // the burst
		{0, pod, time.Second}, // spent: wait a whole interval
		{0, node, 0},          // another object has its own bucket
		{400 * time.Millisecond, pod, 600 * time.Millisecond},
		{600 * time.Millisecond, pod, 0},              // refilled by one
		{0, pod, time.Second},                         // and spent again
		{time.Hour, pod, 0}, {0, pod, 0}, {0, pod, 0}, // refilled, to the burst only
		{0, pod, time.Second},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		if got := s.hold(st.key); got != st.want {
			t.Errorf("step %d (%s after %s): hold = %s, want %s", i, st.key.Name, st.advance, got, st.want)
		}
	}
	s.forget(pod)
	if got := s.hold(pod); got != 0 {
		t.Errorf("after forget: hold = %s, want 0", got)
	}
}

func TestNetworkPolicyEnvelope(t *testing.T) {
	tcp := corev1.ProtocolTCP
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-ingress", UID: "np", ResourceVersion: "7", Generation: 2},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"ops"}}}},
						PodSelector: &metav1.LabelSelector{}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromString("http"))}, {Port: ptr.To(intstr.FromInt32(9000)), EndPort: ptr.To[int32](9100)}},
			}, {}},
		},
	}
	env := envelopeFor(bus.KindNetworkPolicy, np, time.Now())
	if err := fillNetworkPolicy(t.Context(), nil, np, env); err != nil {
		t.Fatal(err)
	}
	want := &bus.NetworkPolicyState{
		Generation:  2,
		PodSelector: bus.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PolicyTypes: []string{"Ingress"},
		Ingress: []bus.NetworkPolicyIngressRule{{
			From: []bus.NetworkPolicyPeer{
				{PodSelector: &bus.LabelSelector{MatchLabels: map[string]string{"app": "client"}}},
				{NamespaceSelector: &bus.LabelSelector{MatchExpressions: []bus.LabelSelectorRequirement{{Key: "team", Operator: "In", Values: []string{"ops"}}}},
					PodSelector: &bus.LabelSelector{}},
				{IPBlock: &bus.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
			},
			Ports: []bus.NetworkPolicyPort{{Protocol: "TCP", PortName: "http"}, {Port: 9000, EndPort: 9100}},
		}, {}},
	}
	if diff := cmp.Diff(want, env.NetworkPolicy); diff != "" {
		t.Errorf("network policy (-want +got):\n%s", diff)
	}
	env.Cluster, env.SchemaVersion = "prod", bus.SchemaVersion
	if _, err := bus.Encode(env); err != nil {
		t.Errorf("network policy envelope does not encode: %v", err)
	}

	// More peers than an envelope carries: published as truncated, with
	// no rules a reader could misjudge, and still a valid envelope.
	for i := range 65 {
		np.Spec.Ingress[1].From = append(np.Spec.Ingress[1].From, networkingv1.NetworkPolicyPeer{
			PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"n": strconv.Itoa(i)}}})
	}
	env = envelopeFor(bus.KindNetworkPolicy, np, time.Now())
	if err := fillNetworkPolicy(t.Context(), nil, np, env); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&bus.NetworkPolicyState{Generation: 2, PolicyTypes: []string{"Ingress"}, Truncated: true}, env.NetworkPolicy); diff != "" {
		t.Errorf("truncated network policy (-want +got):\n%s", diff)
	}
	env.Cluster, env.SchemaVersion = "prod", bus.SchemaVersion
	if _, err := bus.Encode(env); err != nil {
		t.Errorf("truncated network policy envelope does not encode: %v", err)
	}
}
