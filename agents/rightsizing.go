package agents

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/usage"
)

// Defaults of the rightsizing parameters, for a schedule that leaves them unset.
const (
	DefaultRightsizingHistory = 7 * 24 * time.Hour
	DefaultCPUPercentile      = 95
	DefaultMemoryHeadroom     = 20
	DefaultMinSamples         = 60
	DefaultMaxGap             = 15 * time.Minute
	DefaultMinCPUMillicores   = 10
	DefaultMinMemoryMiB       = 32
)

// changeThreshold is the relative change below which a request is left as
// it is: rightsizing does not churn workloads for a few percent.
const changeThreshold = 0.10

// Rightsizing sets a container's CPU request at a high percentile of its
// usage, and its memory request (and limit, where it has one) at its peak
// plus headroom, with floors, never below the observed memory peak. A
// container whose history is short or has gaps is "not enough data".
type Rightsizing struct{}

var _ Improvement = Rightsizing{}

// Name is "rightsizing".
func (Rightsizing) Name() string { return "rightsizing" }

// Analyze returns the recommendations as intents.
func (r Rightsizing) Analyze(ctx context.Context, scope Scope, m *Model, now time.Time) ([]Intent, error) {
	items, err := r.Recommend(ctx, scope, m, now)
	return intentsOf(r.Name(), items), err
}

// Recommend returns one item per container that should change or lacks data.
func (r Rightsizing) Recommend(ctx context.Context, scope Scope, m *Model, now time.Time) ([]tendv1.RunItem, error) {
	p := RightsizingDefaults(scope.Rightsizing)
	var out []tendv1.RunItem
	for _, w := range inScope(scope, m) {
		containers, replicas := template(w)
		for _, c := range containers {
			base := tendv1.RunItem{Workload: workloadRef(w.Key), Container: c.Name, Analyzer: r.Name(),
				Before: tendv1.Resources{CPURequestMillicores: c.CPURequest, MemoryRequestBytes: c.MemRequest, MemoryLimitBytes: c.MemLimit, Replicas: replicas}}
			if scope.History == nil {
				base.Outcome, base.Message = tendv1.ItemNotEnoughData, "no usage history source"
				out = append(out, base)
				continue
			}
			samples, err := scope.History.Samples(ctx, w.Key, c.Name)
			if err != nil {
				return nil, fmt.Errorf("failed to read the usage of %s container %s: %w", w.Key, c.Name, err)
			}
			it, ok := Rightsize(p, base, samples, now, scope.History.Source())
			if ok {
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// RightsizingDefaults fills the parameters a schedule left unset.
func RightsizingDefaults(p tendv1.RightsizingParams) tendv1.RightsizingParams {
	if p.History.Duration <= 0 {
		p.History.Duration = DefaultRightsizingHistory
	}
	if p.CPUPercentile <= 0 {
		p.CPUPercentile = DefaultCPUPercentile
	}
	if p.MemoryHeadroomPercent < 0 {
		p.MemoryHeadroomPercent = DefaultMemoryHeadroom
	}
	if p.MinSamples <= 0 {
		p.MinSamples = DefaultMinSamples
	}
	if p.MaxGap.Duration <= 0 {
		p.MaxGap.Duration = DefaultMaxGap
	}
	if p.MinCPUMillicores <= 0 {
		p.MinCPUMillicores = DefaultMinCPUMillicores
	}
	if p.MinMemoryMiB <= 0 {
		p.MinMemoryMiB = DefaultMinMemoryMiB
	}
	return p
}

// Rightsize judges one container from its samples (in time order) and
// returns the recommendation; false when the container is already right.
// It is pure: the same samples give the same answer.
func Rightsize(p tendv1.RightsizingParams, it tendv1.RunItem, samples []usage.Sample, now time.Time, source string) (tendv1.RunItem, bool) {
	in := within(samples, now.Add(-p.History.Duration), now)
	ev := &tendv1.UsageEvidence{Window: metav1.Duration{Duration: p.History.Duration}, CPUPercentile: p.CPUPercentile, Samples: int32(len(in)), Source: source}
	it.Evidence = ev
	if why := sparse(p, in, now); why != "" {
		it.Outcome, it.Message = tendv1.ItemNotEnoughData, "not enough data: "+why
		return it, true
	}
	cpus := make([]int64, len(in))
	for i, s := range in {
		cpus[i] = s.CPUMillicores
		ev.CPUPeakMillicores = max(ev.CPUPeakMillicores, s.CPUMillicores)
		ev.MemoryPeakBytes = max(ev.MemoryPeakBytes, s.MemoryBytes)
	}
	ev.CPUPercentileMillicores = Percentile(cpus, int(p.CPUPercentile))

	after := tendv1.Resources{Replicas: it.Before.Replicas}
	after.CPURequestMillicores = roundUp(max(ev.CPUPercentileMillicores, p.MinCPUMillicores), 5)
	mem := ev.MemoryPeakBytes + ev.MemoryPeakBytes*int64(p.MemoryHeadroomPercent)/100
	after.MemoryRequestBytes = roundUp(max(mem, p.MinMemoryMiB<<20), 1<<20)
	if it.Before.MemoryLimitBytes > 0 {
		after.MemoryLimitBytes = after.MemoryRequestBytes
	}
	if !differs(it.Before.CPURequestMillicores, after.CPURequestMillicores) &&
		!differs(it.Before.MemoryRequestBytes, after.MemoryRequestBytes) &&
		!differs(it.Before.MemoryLimitBytes, after.MemoryLimitBytes) &&
		(it.Before.MemoryLimitBytes == 0 || it.Before.MemoryLimitBytes >= mem) {
		return it, false
	}
	it.After, it.Action, it.Outcome = after, "SetResources", tendv1.ItemPlanned
	it.Message = fmt.Sprintf("%s container %s: CPU request %s → %s, memory request %s → %s%s",
		it.Workload.Name, it.Container, milli(it.Before.CPURequestMillicores), milli(after.CPURequestMillicores),
		bytesOf(it.Before.MemoryRequestBytes), bytesOf(after.MemoryRequestBytes), limitText(it.Before.MemoryLimitBytes, after.MemoryLimitBytes))
	return it, true
}

// sparse says why the samples cannot support a recommendation, "" when they can.
func sparse(p tendv1.RightsizingParams, in []usage.Sample, now time.Time) string {
	if len(in) < int(p.MinSamples) {
		return fmt.Sprintf("%d samples in %s, %d needed", len(in), p.History.Duration, p.MinSamples)
	}
	for i := 1; i < len(in); i++ {
		if gap := in[i].Time.Sub(in[i-1].Time); gap > p.MaxGap.Duration {
			return fmt.Sprintf("a gap of %s in the history at %s (at most %s allowed)", gap, in[i-1].Time.UTC().Format(time.RFC3339), p.MaxGap.Duration)
		}
	}
	if age := now.Sub(in[len(in)-1].Time); age > p.MaxGap.Duration {
		return fmt.Sprintf("the last sample is %s old (at most %s allowed)", age.Round(time.Second), p.MaxGap.Duration)
	}
	return ""
}

// Percentile returns the nearest-rank p-th percentile of v, selecting it
// in linear expected time (v is reordered).
func Percentile(v []int64, p int) int64 {
	if len(v) == 0 {
		return 0
	}
	rank := (p*len(v) + 99) / 100 // ceil(p/100 × n)
	return nth(v, max(rank, 1)-1)
}

// nth returns the k-th smallest element of v (quickselect, median of three).
func nth(v []int64, k int) int64 {
	lo, hi := 0, len(v)-1
	for hi > lo {
		if hi-lo < 16 {
			slices.Sort(v[lo : hi+1])
			return v[k]
		}
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		pivot := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

func differs(before, after int64) bool {
	if before == 0 {
		return after != 0
	}
	d := float64(after-before) / float64(before)
	return d > changeThreshold || d < -changeThreshold
}

func roundUp(v, step int64) int64 { return (v + step - 1) / step * step }

func milli(v int64) string {
	if v == 0 {
		return "unset"
	}
	return resource.NewMilliQuantity(v, resource.DecimalSI).String()
}

func bytesOf(v int64) string {
	if v == 0 {
		return "unset"
	}
	return resource.NewQuantity(v, resource.BinarySI).String()
}

func limitText(before, after int64) string {
	if after == 0 {
		return ""
	}
	return fmt.Sprintf(", memory limit %s → %s", bytesOf(before), bytesOf(after))
}
