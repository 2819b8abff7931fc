package agents

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/usage"
)

// benchSeries is how many distinct week-long series the benchmark's
// workloads share (so the fixture stays small); every workload's analysis
// still reads and judges all of its 10,080 samples.
const benchSeries = 16

// weekOfMinutes is 7 days of 1-minute samples.
const weekOfMinutes = 7 * 24 * 60

type benchHistory struct{ series [][]usage.Sample }

func (h benchHistory) Samples(_ context.Context, w ObjectKey, _ string) ([]usage.Sample, error) {
	var n int
	_, _ = fmt.Sscanf(w.Name, "app-%d", &n)
	return h.series[n%len(h.series)], nil
}
func (benchHistory) Source() string { return "bench" }

func benchFixture(workloads int) (*Model, Scope) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := benchHistory{}
	for range benchSeries {
		s := make([]usage.Sample, weekOfMinutes)
		base, peak := int64(20+rng.IntN(200)), int64(300+rng.IntN(700))
		mem := int64(64+rng.IntN(512)) << 20
		for i := range s {
			cpu := base + rng.Int64N(base/2+1)
			if rng.IntN(20) == 0 {
				cpu = peak - rng.Int64N(peak/4)
			}
			s[i] = usage.Sample{Time: rsNow.Add(-time.Duration(weekOfMinutes-1-i) * time.Minute), CPUMillicores: cpu, MemoryBytes: mem + rng.Int64N(mem/4)}
		}
		h.series = append(h.series, s)
	}
	m := NewModel()
	for i := range workloads {
		k := ObjectKey{KindDeployment, "shop", fmt.Sprintf("app-%d", i)}
		m.Workloads[k] = &Workload{Key: k, Deployment: &bus.DeploymentState{Replicas: 3, Template: []bus.ContainerState{
			{Name: "app", CPURequestMillicores: 2000, MemoryRequestBytes: 2 << 30, MemoryLimitBytes: 4 << 30},
		}}}
	}
	return m, Scope{Namespaces: []string{"shop"}, History: h, Rightsizing: tendv1.RightsizingParams{History: metav1.Duration{Duration: 7 * 24 * time.Hour}, MemoryHeadroomPercent: 20}}
}

// BenchmarkImproveAnalysis measures the rightsizing analysis of 1,000
// workloads, each with 7 days of 1-minute samples.
func BenchmarkImproveAnalysis(b *testing.B) {
	m, scope := benchFixture(1000)
	b.Run("workloads=1000", func(b *testing.B) {
		for b.Loop() {
			items, err := Rightsizing{}.Recommend(b.Context(), scope, m, rsNow)
			if err != nil || len(items) != 1000 {
				b.Fatalf("%d items, %v", len(items), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "analysis_time-ms")
	})
}

// BenchmarkImproveAnalysisSort is the reference: the same recommendations
// with the percentile taken the usual way, by sorting every series.
func BenchmarkImproveAnalysisSort(b *testing.B) {
	m, scope := benchFixture(1000)
	p := RightsizingDefaults(scope.Rightsizing)
	b.Run("workloads=1000", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for _, w := range inScope(scope, m) {
				samples, _ := scope.History.Samples(b.Context(), w.Key, "app")
				cpus := make([]int64, 0, len(samples))
				var memPeak int64
				for _, s := range samples {
					if !s.Time.Before(rsNow.Add(-p.History.Duration)) {
						cpus = append(cpus, s.CPUMillicores)
						memPeak = max(memPeak, s.MemoryBytes)
					}
				}
				sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
				if cpus[(int(p.CPUPercentile)*len(cpus)+99)/100-1] > 0 && memPeak > 0 {
					n++
				}
			}
			if n != 1000 {
				b.Fatalf("%d workloads judged", n)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "analysis_time-ms")
	})
}

// TestBenchFixtureAgreesWithReference checks that the benchmark and its
// reference compute the same percentile.
func TestBenchFixtureAgreesWithReference(t *testing.T) {
	_, scope := benchFixture(1)
	for _, s := range scope.History.(benchHistory).series {
		cpus := make([]int64, len(s))
		for i, x := range s {
			cpus[i] = x.CPUMillicores
		}
		sorted := append([]int64(nil), cpus...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		if got, want := Percentile(cpus, 95), sorted[(95*len(sorted)+99)/100-1]; got != want {
			t.Fatalf("Percentile = %d, sorted reference = %d", got, want)
		}
	}
}
