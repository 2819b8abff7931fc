package harness

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/evals/sim"
)

// Usage history an improvement scenario's run analyses: samples every
// minute over the last three hours, for every pod of the baseline.
const (
	usageHistory  = 3 * time.Hour
	usageInterval = time.Minute
	// usagePeakEvery: one sample in this many is at the app's peak.
	usagePeakEvery = 12
	// idleCPU is the CPU use of an app whose profile gives none.
	idleCPU = 5
)

// ImprovementResult is what an improvement scenario's run did.
type ImprovementResult struct {
	Run   string          `json:"run"`
	Phase tendv1.RunPhase `json:"phase"`
	// Saved CPU (millicores) and memory requests (bytes), of the changes
	// applied and verified; negative where the run added.
	SavedCPUMillicores int64 `json:"savedCPUMillicores"`
	SavedMemoryBytes   int64 `json:"savedMemoryBytes"`
}

// startImprovement stands in for the metrics pipeline and the schedule: it
// publishes the usage history the scenario's app profiles describe for the
// baseline's pods, as the sensor publishes metrics samples, then creates an
// ImprovementSchedule over the namespace and starts its run, as `tend runs
// start` does. The run proposes through the gate like any agent.
func (r *runCtx) startImprovement(ctx context.Context) error {
	ns := r.scope.Namespace
	js, err := r.e.stack.ConnectSensor(ctx)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(js, r.e.stack.ClusterName, "eval-usage")
	defer func() { _ = pub.Close(context.WithoutCancel(ctx)) }()
	var pods corev1.PodList
	if err := r.e.admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("failed to list pods: %w", err)
	}
	now := time.Now()
	rng := rand.New(rand.NewPCG(r.sc.Seed, 15))
	published := 0
	for _, p := range pods.Items {
		var containers []bus.ContainerUsage
		var profiles []*sim.Profile
		for _, c := range p.Spec.Containers {
			prof := r.profileOf(c.Image)
			if prof == nil {
				return fmt.Errorf("pod %s container %s: image %s has no profile", p.Name, c.Name, c.Image)
			}
			containers = append(containers, bus.ContainerUsage{Name: c.Name})
			profiles = append(profiles, prof)
		}
		for t := now.Add(-usageHistory); !t.After(now); t = t.Add(usageInterval) {
			peak := rng.IntN(usagePeakEvery) == 0
			sample := &bus.UsageSample{Timestamp: t, WindowSeconds: usageInterval.Seconds()}
			for i := range containers {
				cpu, mem := usageOf(profiles[i], peak, rng)
				containers[i].CPUMillicores, containers[i].MemoryBytes = cpu, mem
				sample.CPUMillicores += cpu
				sample.MemoryBytes += mem
			}
			sample.Containers = append([]bus.ContainerUsage(nil), containers...)
			h := fnv.New64a()
			_, _ = h.Write([]byte(ns + "/" + p.Name))
			env := &bus.Envelope{
				ID:     fmt.Sprintf("podmetrics-%x-%d", h.Sum64(), t.Unix()),
				Object: bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: ns, Name: p.Name},
				Time:   t, Usage: sample,
			}
			if err := pub.PublishAsync(ctx, env, nil); err != nil {
				return fmt.Errorf("failed to publish usage: %w", err)
			}
			published++
		}
	}
	if published == 0 {
		return fmt.Errorf("no pods to publish usage for in %s", ns)
	}
	if err := pub.Close(ctx); err != nil {
		return fmt.Errorf("failed to publish usage: %w", err)
	}
	s := &tendv1.ImprovementSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns},
		Spec: tendv1.ImprovementScheduleSpec{
			Schedule: "0 3 * * *", TimeZone: "UTC", Agents: []string{"rightsizing"},
			Window: metav1.Duration{Duration: time.Hour}, CanaryPercent: 50, BatchSize: 5,
			Soak: metav1.Duration{Duration: 10 * time.Second},
			Rightsizing: tendv1.RightsizingParams{
				History: metav1.Duration{Duration: usageHistory}, CPUPercentile: 95, MemoryHeadroomPercent: 20,
				MinSamples: 60, MaxGap: metav1.Duration{Duration: 5 * time.Minute}, MinCPUMillicores: 10, MinMemoryMiB: 32,
			},
		},
	}
	if err := r.e.admin.Create(ctx, s); err != nil {
		return fmt.Errorf("failed to create the schedule: %w", err)
	}
	run := controllers.NewRun(s, time.Now(), true)
	run.OwnerReferences = []metav1.OwnerReference{{APIVersion: tendv1.GroupVersion.String(), Kind: "ImprovementSchedule", Name: s.Name, UID: s.UID}}
	if err := r.e.admin.Create(ctx, run); err != nil {
		return fmt.Errorf("failed to start the run: %w", err)
	}
	r.res.Improvement = &ImprovementResult{Run: run.Name}
	return nil
}

// usageOf is one sample of an app: its steady use, or its peak.
func usageOf(p *sim.Profile, peak bool, rng *rand.Rand) (cpu, mem int64) {
	cpu = idleCPU
	if p.WorkingSet != nil {
		mem = p.WorkingSet.Value()
	}
	if u := p.Usage; u != nil {
		cpu = u.CPU.MilliValue()
		if peak && u.PeakCPU != nil {
			cpu = u.PeakCPU.MilliValue()
		}
		if peak && u.PeakMemory != nil {
			mem = u.PeakMemory.Value()
		}
	}
	// A little noise below the level, never above the peak.
	cpu -= rng.Int64N(max(cpu/10, 1))
	mem -= rng.Int64N(max(mem/50, 1))
	return max(cpu, 1), max(mem, 1)
}

// profileOf returns the scenario's profile of an image (repository:tag).
func (r *runCtx) profileOf(image string) *sim.Profile {
	repo, _, _ := strings.Cut(image, ":")
	for i := range r.sc.Profiles {
		if r.sc.Profiles[i].Image == repo {
			return &r.sc.Profiles[i]
		}
	}
	return nil
}

// improvementOutcome records what the scenario's run did, at the end.
func (r *runCtx) improvementOutcome(ctx context.Context) {
	ir := r.res.Improvement
	if ir == nil {
		return
	}
	run := &tendv1.ImprovementRun{}
	if err := r.e.admin.Get(ctx, client.ObjectKey{Namespace: r.scope.Namespace, Name: ir.Run}, run); err != nil {
		return
	}
	ir.Phase = run.Status.Phase
	ir.SavedCPUMillicores, ir.SavedMemoryBytes = run.Status.Achieved.CPUMillicores, run.Status.Achieved.MemoryBytes
}
