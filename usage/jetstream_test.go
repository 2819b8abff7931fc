package usage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/usage"
)

func TestJetStreamHistory(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := bus.Connect(t.Context(), srv.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, "c1", "sensor")
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	publish := func(ns, pod string, at time.Time, cpu, mem int64) {
		t.Helper()
		env := &bus.Envelope{
			ID:     fmt.Sprintf("%s-%s-%d", ns, pod, at.Unix()),
			Object: bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: ns, Name: pod},
			Time:   at,
			Usage: &bus.UsageSample{Timestamp: at, CPUMillicores: cpu + 1, MemoryBytes: mem + 1, Containers: []bus.ContainerUsage{
				{Name: "app", CPUMillicores: cpu, MemoryBytes: mem}, {Name: "sidecar", CPUMillicores: 1, MemoryBytes: 1},
			}},
		}
		if _, err := pub.Publish(t.Context(), env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Minute)
		publish("shop", "web-7d9f8c6b5-abcde", at, int64(10*i), int64(1000*i))
		publish("shop", "web-7d9f8c6b5-fghij", at, int64(10*i+5), int64(1000*i+5))
		publish("shop", "webhook-6c8d7f5-klmno", at, 999, 999) // another Deployment whose name starts the same
		publish("other", "web-7d9f8c6b5-abcde", at, 777, 777)  // another namespace
	}
	src := &usage.JetStream{JS: js, Cluster: "c1"}
	// [base+1m, base+3m] keeps minutes 1, 2 and 3.
	h, err := src.History(t.Context(), "shop", base.Add(time.Minute), base.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.Workload("Deployment", "web", "app")
	if err != nil {
		t.Fatal(err)
	}
	var want []usage.Sample
	for i := 1; i <= 3; i++ {
		at := base.Add(time.Duration(i) * time.Minute)
		want = append(want, usage.Sample{Time: at, CPUMillicores: int64(10 * i), MemoryBytes: int64(1000 * i)}, usage.Sample{Time: at, CPUMillicores: int64(10*i + 5), MemoryBytes: int64(1000*i + 5)})
	}
	// Same-time samples of two pods come in either order.
	sortKey := cmp.Transformer("pairs", func(s []usage.Sample) map[string]int {
		m := map[string]int{}
		for _, x := range s {
			m[fmt.Sprintf("%d/%d/%d", x.Time.Unix(), x.CPUMillicores, x.MemoryBytes)]++
		}
		return m
	})
	if d := cmp.Diff(want, got, sortKey); d != "" {
		t.Errorf("web/app history (-want +got):\n%s", d)
	}
	if _, err := h.Workload("CronJob", "web", "app"); err == nil {
		t.Error("a CronJob's pods cannot be told by name, want an error")
	}
}
