package controllers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
