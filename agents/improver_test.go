package agents

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/usage"
)

func TestJudgeBounds(t *testing.T) {
	now := rsNow
	from := now.Add(-48 * time.Hour)
	item := tendv1.RunItem{Workload: tendv1.WorkloadRef{Kind: "HorizontalPodAutoscaler", Namespace: "shop", Name: "web"}, Before: tendv1.Resources{MinReplicas: 2, MaxReplicas: 4}}
	at := func(h int, cur, lo, hi int32) AutoscalerSample {
		return AutoscalerSample{Time: now.Add(time.Duration(-h) * time.Hour), CurrentReplicas: cur, MinReplicas: lo, MaxReplicas: hi}
	}
	held := func(h int, lo, hi int32) AutoscalerSample {
		s := at(h, lo, lo, hi)
		s.HeldAtMin = true
		return s
	}
	for _, tc := range []struct {
		name    string
		states  []AutoscalerSample
		outcome tendv1.ItemOutcome
		after   tendv1.Resources
		none    bool
	}{
		// From before the window: at 4 of 4 for 46 of the 48 hours.
		{name: "a max always hit goes up by half", states: []AutoscalerSample{at(100, 3, 2, 4), at(46, 4, 2, 4)}, outcome: tendv1.ItemPlanned, after: tendv1.Resources{MinReplicas: 2, MaxReplicas: 6}},
		{name: "a min never needed comes down", states: []AutoscalerSample{held(72, 2, 4), at(3, 3, 2, 4), held(2, 2, 4)}, outcome: tendv1.ItemPlanned, after: tendv1.Resources{MinReplicas: 1, MaxReplicas: 4}},
		{name: "a min the load sometimes needs stays", states: []AutoscalerSample{held(72, 2, 4), at(20, 3, 2, 4), held(2, 2, 4)}, none: true},
		{name: "a min that is not held stays", states: []AutoscalerSample{at(72, 2, 2, 4), at(30, 3, 2, 4), at(10, 2, 2, 4)}, none: true},
		{name: "bounds in use are left alone", states: []AutoscalerSample{at(72, 2, 2, 4), at(30, 4, 2, 4), at(10, 2, 2, 4)}, none: true},
		{name: "thirty hours of history are enough", states: []AutoscalerSample{at(30, 4, 2, 4)}, outcome: tendv1.ItemPlanned, after: tendv1.Resources{MinReplicas: 2, MaxReplicas: 6}},
		{name: "a few hours are not enough", states: []AutoscalerSample{at(5, 4, 2, 4)}, outcome: tendv1.ItemNotEnoughData},
		{name: "no history", outcome: tendv1.ItemNotEnoughData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := judgeBounds(item, tc.states, from, now)
			if tc.none {
				if ok {
					t.Fatalf("want nothing, got %+v", got)
				}
				return
			}
			if !ok || got.Outcome != tc.outcome {
				t.Fatalf("got %v %s (%s), want %s", ok, got.Outcome, got.Message, tc.outcome)
			}
			if tc.outcome == tendv1.ItemPlanned && (got.After != tc.after || got.Action != "SetAutoscaler") {
				t.Errorf("after %+v action %s, want %+v SetAutoscaler", got.After, got.Action, tc.after)
			}
		})
	}
}

// TestImproverReadsTheBus runs the Improver over telemetry and usage on a
// real NATS server: the model comes from the latest messages, the HPA's
// history from all of them, the usage from the pod metrics samples.
func TestImproverReadsTheBus(t *testing.T) {
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
	now := time.Now().Truncate(time.Minute)
	publish := func(env *bus.Envelope) {
		t.Helper()
		if _, err := pub.Publish(t.Context(), env); err != nil {
			t.Fatal(err)
		}
	}
	dep := func(name string, mem int64, at time.Time) *bus.Envelope {
		return &bus.Envelope{ID: fmt.Sprintf("dep-%s-%d", name, at.UnixNano()), Object: bus.ObjectRef{Kind: bus.KindDeployment, Namespace: "shop", Name: name}, Time: at,
			Deployment: &bus.DeploymentState{Replicas: 2, Template: []bus.ContainerState{{Name: "app", CPURequestMillicores: 1000, MemoryRequestBytes: mem}}}}
	}
	// An older spec, then the current one: the model keeps the latest.
	publish(dep("web", 4<<30, now.Add(-time.Hour)))
	publish(dep("web", 1<<30, now.Add(-time.Minute)))
	publish(dep("api", 1<<30, now.Add(-time.Minute)))
	for i, s := range []struct {
		h   int
		cur int32
	}{{50, 3}, {46, 4}} {
		at := now.Add(time.Duration(-s.h) * time.Hour)
		publish(&bus.Envelope{ID: fmt.Sprintf("hpa-%d", i), Object: bus.ObjectRef{Kind: bus.KindHPA, Namespace: "shop", Name: "api"}, Time: at,
			HPA: &bus.AutoscalerState{Target: bus.WorkloadRef{Kind: "Deployment", Name: "api"}, MinReplicas: 2, MaxReplicas: 4, CurrentReplicas: s.cur}})
	}
	for i := 0; i <= 120; i++ {
		at := now.Add(time.Duration(i-120) * time.Minute)
		publish(&bus.Envelope{ID: fmt.Sprintf("pm-%d", i), Object: bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: "shop", Name: "web-5d8f7c9b4-abcde"}, Time: at,
			Usage: &bus.UsageSample{Timestamp: at, Containers: []bus.ContainerUsage{{Name: "app", CPUMillicores: 100, MemoryBytes: 200 << 20}}}})
	}
	im := &Improver{JS: js, Cluster: "c1", Usage: &usage.JetStream{JS: js, Cluster: "c1"}}
	items, err := im.Recommend(t.Context(), []string{"rightsizing", "autoscaler-bounds"},
		[]tendv1.WorkloadRef{{Kind: "Deployment", Namespace: "shop", Name: "web"}, {Kind: "Deployment", Namespace: "shop", Name: "api"}},
		tendv1.RightsizingParams{History: metav1.Duration{Duration: 48 * time.Hour}, MinSamples: 60, MaxGap: metav1.Duration{Duration: 5 * time.Minute}, MemoryHeadroomPercent: 20}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tendv1.RunItem{}
	for _, it := range items {
		got[it.Analyzer+"/"+it.Workload.Name] = it
	}
	if w := got["rightsizing/web"]; w.Outcome != tendv1.ItemPlanned || w.Before.MemoryRequestBytes != 1<<30 || w.After.MemoryRequestBytes != 240<<20 || w.After.CPURequestMillicores != 100 || w.Evidence.Samples != 121 {
		t.Errorf("web: %+v", w)
	}
	if a := got["rightsizing/api"]; a.Outcome != tendv1.ItemNotEnoughData {
		t.Errorf("api has no usage samples: %+v", a)
	}
	if h := got["autoscaler-bounds/api"]; h.Outcome != tendv1.ItemPlanned || h.After.MaxReplicas != 6 {
		t.Errorf("api's HPA sat at its max for 46 of 48 hours: %+v", h)
	}
	if len(items) != 3 {
		t.Errorf("%d items, want 3: %+v", len(items), items)
	}
}
