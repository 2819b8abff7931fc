package agents

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/usage"
)

var rsNow = time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)

// series makes n one-minute samples ending at rsNow: CPU cycles through
// cpu, memory through mem.
func series(n int, cpu []int64, mem []int64) []usage.Sample {
	out := make([]usage.Sample, n)
	for i := range n {
		out[i] = usage.Sample{Time: rsNow.Add(-time.Duration(n-1-i) * time.Minute), CPUMillicores: cpu[i%len(cpu)], MemoryBytes: mem[i%len(mem)]}
	}
	return out
}

func TestRightsize(t *testing.T) {
	p := RightsizingDefaults(tendv1.RightsizingParams{History: metav1.Duration{Duration: 24 * time.Hour}, MinSamples: 60, MaxGap: metav1.Duration{Duration: 5 * time.Minute}, MemoryHeadroomPercent: 20})
	item := func(cpu, memReq, memLim int64) tendv1.RunItem {
		return tendv1.RunItem{Workload: tendv1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "web"}, Container: "web",
			Before: tendv1.Resources{CPURequestMillicores: cpu, MemoryRequestBytes: memReq, MemoryLimitBytes: memLim, Replicas: 3}}
	}
	// 100 samples: CPU 40m, with every 10th at 120m; memory 96Mi, every 10th at 160Mi.
	cpu := []int64{40, 40, 40, 40, 40, 40, 40, 40, 40, 120}
	mem := []int64{96 * mi, 96 * mi, 96 * mi, 96 * mi, 96 * mi, 96 * mi, 96 * mi, 96 * mi, 96 * mi, 160 * mi}
	gappy := append(series(50, cpu, mem)[:10], series(50, cpu, mem)[40:]...)
	for _, tc := range []struct {
		name    string
		before  tendv1.RunItem
		samples []usage.Sample
		want    tendv1.Resources
		outcome tendv1.ItemOutcome
		why     string
		none    bool
	}{
		{name: "overprovisioned comes down to the p95 and the peak plus headroom", before: item(2000, 1024*mi, 2048*mi), samples: series(100, cpu, mem),
			want: tendv1.Resources{CPURequestMillicores: 120, MemoryRequestBytes: 192 * mi, MemoryLimitBytes: 192 * mi, Replicas: 3}, outcome: tendv1.ItemPlanned},
		{name: "a limit below the peak goes up", before: item(10, 64*mi, 150*mi), samples: series(100, []int64{5}, []int64{128 * mi, 220 * mi}),
			want: tendv1.Resources{CPURequestMillicores: 10, MemoryRequestBytes: 264 * mi, MemoryLimitBytes: 264 * mi, Replicas: 3}, outcome: tendv1.ItemPlanned},
		{name: "no limit is not given one", before: item(1000, 1024*mi, 0), samples: series(100, []int64{40}, []int64{100 * mi}),
			want: tendv1.Resources{CPURequestMillicores: 40, MemoryRequestBytes: 120 * mi, Replicas: 3}, outcome: tendv1.ItemPlanned},
		{name: "floors hold", before: item(500, 512*mi, 0), samples: series(100, []int64{1}, []int64{4 * mi}),
			want: tendv1.Resources{CPURequestMillicores: 10, MemoryRequestBytes: 32 * mi, Replicas: 3}, outcome: tendv1.ItemPlanned},
		{name: "already right is left alone", before: item(120, 192*mi, 192*mi), samples: series(100, cpu, mem), none: true},
		{name: "too few samples", before: item(2000, 1024*mi, 0), samples: series(59, cpu, mem), outcome: tendv1.ItemNotEnoughData, why: "59 samples"},
		{name: "a gap", before: item(2000, 1024*mi, 0), samples: append(series(200, cpu, mem)[:30], series(200, cpu, mem)[60:]...), outcome: tendv1.ItemNotEnoughData, why: "a gap of 31m0s"},
		{name: "a stale history", before: item(2000, 1024*mi, 0), samples: series(200, cpu, mem)[:150], outcome: tendv1.ItemNotEnoughData, why: "the last sample is 50m0s old"},
		{name: "samples outside the window do not count", before: item(2000, 1024*mi, 0), samples: append(series(2000, cpu, mem)[:1000], gappy[len(gappy)-1]), outcome: tendv1.ItemNotEnoughData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Rightsize(p, tc.before, tc.samples, rsNow, "test")
			if tc.none {
				if ok {
					t.Fatalf("want no recommendation, got %+v", got)
				}
				return
			}
			if !ok {
				t.Fatal("want a recommendation, got none")
			}
			if got.Outcome != tc.outcome {
				t.Fatalf("outcome %s (%s), want %s", got.Outcome, got.Message, tc.outcome)
			}
			if tc.outcome == tendv1.ItemPlanned {
				if d := cmp.Diff(tc.want, got.After); d != "" {
					t.Errorf("after (-want +got):\n%s", d)
				}
				if got.After.MemoryRequestBytes < got.Evidence.MemoryPeakBytes {
					t.Errorf("memory request %d below the observed peak %d", got.After.MemoryRequestBytes, got.Evidence.MemoryPeakBytes)
				}
				if got.Action != "SetResources" || got.Evidence == nil || got.Evidence.Samples == 0 || got.Evidence.CPUPercentile != 95 {
					t.Errorf("action %q evidence %+v: want SetResources with the window, percentile and sample count", got.Action, got.Evidence)
				}
			}
			if !strings.Contains(got.Message, tc.why) {
				t.Errorf("message %q does not say %q", got.Message, tc.why)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		v    []int64
		p    int
		want int64
	}{{[]int64{5, 1, 3, 2, 4}, 50, 3}, {[]int64{5, 1, 3, 2, 4}, 100, 5}, {[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 95, 10}, {[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9}, {nil, 95, 0}} {
		if got := Percentile(append([]int64(nil), tc.v...), tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %d) = %d, want %d", tc.v, tc.p, got, tc.want)
		}
	}
}

type fixedHistory map[string][]usage.Sample

func (h fixedHistory) Samples(_ context.Context, w ObjectKey, c string) ([]usage.Sample, error) {
	return h[w.Name+"/"+c], nil
}
func (fixedHistory) Source() string { return "test" }

func TestImprovementAnalyzers(t *testing.T) {
	m := NewModel()
	dep := func(name string, replicas int32, c bus.ContainerState, labels map[string]string) {
		k := ObjectKey{KindDeployment, "shop", name}
		m.Workloads[k] = &Workload{Key: k, Deployment: &bus.DeploymentState{Replicas: replicas, Template: []bus.ContainerState{c}}, PodLabels: labels}
	}
	dep("catalog", 3, bus.ContainerState{Name: "catalog", CPURequestMillicores: 2000, MemoryRequestBytes: 1024 * mi, Readiness: &bus.Probe{}}, map[string]string{"app": "catalog"})
	dep("single", 1, bus.ContainerState{Name: "single", CPURequestMillicores: 10, MemoryRequestBytes: 64 * mi}, map[string]string{"app": "single"})
	dep("sleepy", 2, bus.ContainerState{Name: "sleepy", CPURequestMillicores: 10, MemoryRequestBytes: 36 * mi, Readiness: &bus.Probe{}}, nil)
	dep("new", 2, bus.ContainerState{Name: "new", CPURequestMillicores: 500, MemoryRequestBytes: 512 * mi}, nil)
	dep("elsewhere", 2, bus.ContainerState{Name: "elsewhere", CPURequestMillicores: 500, MemoryRequestBytes: 512 * mi}, nil)
	m.Workloads[ObjectKey{KindDeployment, "other", "elsewhere"}] = m.Workloads[ObjectKey{KindDeployment, "shop", "elsewhere"}]
	delete(m.Workloads, ObjectKey{KindDeployment, "shop", "elsewhere"})
	for _, s := range []string{"catalog", "single"} {
		m.Services[ObjectKey{"Service", "shop", s}] = &Service{Key: ObjectKey{"Service", "shop", s}, State: &bus.ServiceState{Selector: map[string]string{"app": s}}}
	}
	h := fixedHistory{
		"catalog/catalog": series(100, []int64{40}, []int64{96 * mi}),
		"single/single":   series(100, []int64{8}, []int64{50 * mi}),
		"sleepy/sleepy":   series(100, []int64{1}, []int64{30 * mi}),
		"new/new":         series(10, []int64{40}, []int64{96 * mi}),
	}
	scope := Scope{Namespaces: []string{"shop"}, History: h, Rightsizing: tendv1.RightsizingParams{History: metav1.Duration{Duration: 24 * time.Hour}, MemoryHeadroomPercent: 20}}
	var got []string
	for _, a := range ImprovementAnalyzers() {
		items, err := a.Recommend(t.Context(), scope, m, rsNow)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			got = append(got, a.Name()+" "+it.Workload.Name+" "+it.Action+" "+string(it.Outcome))
		}
	}
	wantSet := map[string]bool{
		"rightsizing catalog SetResources Planned":  true,
		"rightsizing new  NotEnoughData":            true,
		"rightsizing sleepy SetResources Planned":   false,
		"availability single ScaleWorkload Planned": true,
		"availability single  Reported":             true,
		"idle sleepy  Reported":                     true,
	}
	gotSet := map[string]bool{}
	for _, g := range got {
		gotSet[g] = true
	}
	for k, want := range wantSet {
		if gotSet[k] != want {
			t.Errorf("%q: got %v, want %v (all: %q)", k, gotSet[k], want, got)
		}
	}
	for _, g := range got {
		if strings.Contains(g, "elsewhere") {
			t.Errorf("out of scope: %q", g)
		}
	}
}

func FuzzPercentile(f *testing.F) {
	f.Add([]byte{5, 1, 3, 2, 4}, uint8(95))
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9}, uint8(50))
	f.Fuzz(func(t *testing.T, data []byte, p uint8) {
		pc := 1 + int(p)%100
		v := make([]int64, len(data))
		for i, b := range data {
			v[i] = int64(b)
		}
		sorted := slices.Clone(v)
		slices.Sort(sorted)
		var want int64
		if len(v) > 0 {
			want = sorted[max((pc*len(v)+99)/100, 1)-1]
		}
		if got := Percentile(v, pc); got != want {
			t.Fatalf("Percentile(%v, %d) = %d, want %d", data, pc, got, want)
		}
	})
}
