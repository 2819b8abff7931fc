package localstack

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// regressionImage is an app that the simulator OOM-kills under a 120Mi
// memory limit: the history says it peaks at 100Mi, but this release needs
// more, which only the canary shows.
const regressionImage = DemoImage + ":1.9"

// TestImprovementRunsEndToEnd runs scheduled improvement runs on the local
// stack: a schedule falls due on the injected clock, its run analyses the
// usage history on the bus, and its proposals go through MCP, the gate and
// the proposal controller. In one namespace every underprovisioned workload
// gets more memory, canary first, then in batches; in the other the canary
// regresses, and the run stops with the canary undone and nothing else
// changed.
func TestImprovementRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test needs the local control plane")
	}
	g := NewWithT(t)
	ctx := t.Context()
	clock := &testClock{t: time.Now()}
	st, err := Start(ctx, Options{
		BinDir: binDir(t), WorkDir: t.TempDir(), ClusterName: "improve", Nodes: 2,
		Proposal: controllers.ProposalOptions{StableWindow: 5 * time.Second, VerifyTimeout: time.Minute},
		Faults: append([]Fault{{
			Name:     "release-1-9-oom-at-120mi",
			When:     `(.image == "` + regressionImage + `") and ((.resources.limits.memory // "") == "120Mi")`,
			Reason:   "OOMKilled",
			ExitCode: 137,
		}}, DemoFaults...),
		ImprovementNow:               clock.Now,
		Progress:                     t.Logf,
		SkipControllerNameValidation: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(st.Stop)
	c := st.Client

	deploy := func(ns, name, image string, res corev1.ResourceRequirements) {
		labels := map[string]string{"app": name}
		g.Expect(c.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, Resources: res}}},
				},
			},
		})).To(Succeed())
	}
	small := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	// hot: a CPU request of 200m, ten times what the history shows, under
	// a CPU limit of 200m; memory already right at 120Mi.
	hot := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("120Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("120Mi")},
	}
	namespaces := []string{"shop", "lab", "hot"}
	for _, ns := range namespaces {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		n := 4
		if ns == "hot" {
			n = 2
		}
		for i := range n {
			image, res := DemoImage+":1.4", small
			switch {
			case ns == "lab" && i == 0:
				image = regressionImage
			case ns == "hot":
				res = hot
			}
			deploy(ns, fmt.Sprintf("w%d", i), image, res)
		}
	}
	ready := func(g Gomega, ns string) {
		var ds appsv1.DeploymentList
		g.Expect(c.List(ctx, &ds, client.InNamespace(ns))).To(Succeed())
		for _, d := range ds.Items {
			g.Expect(d.Status.ObservedGeneration).To(BeNumerically(">=", d.Generation))
			g.Expect(d.Status.ReadyReplicas).To(Equal(int32(2)), d.Name)
			g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)), d.Name)
		}
	}
	g.Eventually(func(g Gomega) {
		for _, ns := range namespaces {
			ready(g, ns)
		}
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	// The schedules fall due at the next full hour of the injected clock.
	due := clock.Now().Truncate(time.Hour).Add(time.Hour)

	// Three hours of 1-minute usage samples per pod up to then, as the sensor would
	// publish them from metrics.k8s.io: about 20m of CPU, memory from 80Mi
	// to a 100Mi peak, above the 64Mi the workloads have.
	js, err := st.ConnectSensor(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	pub := bus.NewPublisher(js, st.ClusterName, "sensor")
	var pods corev1.PodList
	g.Expect(c.List(ctx, &pods)).To(Succeed())
	for _, p := range pods.Items {
		if !slices.Contains(namespaces, p.Namespace) {
			continue
		}
		for i := 0; i <= 180; i++ {
			at := due.Add(time.Duration(i-180) * time.Minute)
			mem := int64(80+i%21) << 20
			env := &bus.Envelope{
				ID:     fmt.Sprintf("pm-%s-%s-%d", p.Namespace, p.Name, at.Unix()),
				Object: bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: p.Namespace, Name: p.Name},
				Time:   at,
				Usage:  &bus.UsageSample{Timestamp: at, CPUMillicores: 20, MemoryBytes: mem, Containers: []bus.ContainerUsage{{Name: "app", CPUMillicores: 20, MemoryBytes: mem}}},
			}
			g.Expect(pub.PublishAsync(ctx, env, nil)).To(Succeed())
		}
	}
	g.Expect(pub.Close(ctx)).To(Succeed())

	// A nightly schedule in each namespace.
	for _, ns := range namespaces {
		g.Expect(c.Create(ctx, &tendv1.ImprovementSchedule{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"},
			Spec: tendv1.ImprovementScheduleSpec{
				Schedule: fmt.Sprintf("%d %d * * *", due.UTC().Minute(), due.UTC().Hour()), TimeZone: "UTC", Agents: []string{"rightsizing"},
				Window: metav1.Duration{Duration: time.Hour}, CanaryPercent: 25, BatchSize: 2, Soak: metav1.Duration{Duration: 5 * time.Minute},
				Rightsizing: tendv1.RightsizingParams{History: metav1.Duration{Duration: 3 * time.Hour}, MinSamples: 60, MaxGap: metav1.Duration{Duration: 5 * time.Minute}, MemoryHeadroomPercent: 20, CPUPercentile: 95},
			},
		})).To(Succeed())
	}
	schedule := func(g Gomega, ns string) *tendv1.ImprovementSchedule {
		s := &tendv1.ImprovementSchedule{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly"}, s)).To(Succeed())
		return s
	}
	g.Eventually(func(g Gomega) {
		for _, ns := range namespaces {
			s := schedule(g, ns)
			g.Expect(s.Status.NextRunTime).NotTo(BeNil())
			g.Expect(s.Status.NextRunTime.Time.Equal(due)).To(BeTrue(), "next run %s, want %s", s.Status.NextRunTime, due)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	runs := func(g Gomega, ns string) []tendv1.ImprovementRun {
		var l tendv1.ImprovementRunList
		g.Expect(c.List(ctx, &l, client.InNamespace(ns))).To(Succeed())
		return l.Items
	}
	g.Expect(runs(g, "shop")).To(BeEmpty())

	// The clock reaches the scheduled time; the schedules are looked at.
	clock.Set(due.Add(10 * time.Second))
	for _, ns := range namespaces {
		g.Eventually(func() error {
			s := schedule(g, ns)
			s.Annotations = map[string]string{"test/touch": "1"}
			return c.Update(ctx, s)
		}).Should(Succeed())
	}
	run := func(g Gomega, ns string) *tendv1.ImprovementRun {
		rs := runs(g, ns)
		g.Expect(rs).To(HaveLen(1))
		return &rs[0]
	}
	cpuRequest := func(g Gomega, ns, name string) string {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		q := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		return q.String()
	}
	limit := func(g Gomega, ns, name string) string {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		q := d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
		return q.String()
	}

	// Analysis: every workload's peak is 100Mi; 120Mi with 20% headroom.
	// hot's CPU request comes down to its 20m.
	g.Eventually(func(g Gomega) {
		for _, ns := range namespaces {
			r := run(g, ns)
			n := 4
			if ns == "hot" {
				n = 2
			}
			g.Expect(r.Status.Items).To(HaveLen(n), "run %s: %+v", r.Name, r.Status.Conditions)
			for _, it := range r.Status.Items {
				g.Expect(it.Outcome).NotTo(Equal(tendv1.ItemNotEnoughData), it.Message)
				g.Expect(it.After.MemoryLimitBytes).To(Equal(int64(120 << 20)))
				g.Expect(it.Evidence.Samples).To(BeNumerically(">=", 2*180))
				if ns == "hot" {
					g.Expect(it.After.CPURequestMillicores).To(Equal(int64(20)))
				}
			}
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// lab: the canary (w0) OOMs at its new limit. Either the proposal
	// controller's verification rolls it back, or the maintenance agent's
	// OOM fix overtakes it first; either way the run stops at the canary,
	// nothing else is changed, and w0 ends healthy without the bad limit.
	g.Eventually(func(g Gomega) {
		r := run(g, "lab")
		g.Expect(r.Status.Phase).To(Equal(tendv1.RunStopped), "items %+v", r.Status.Items)
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	r := run(g, "lab")
	g.Expect(r.Status.Conditions).To(ContainElement(HaveField("Reason", controllers.ReasonCanaryFailed)))
	for _, it := range r.Status.Items {
		if it.Workload.Name == "w0" {
			g.Expect(it.Outcome).To(BeElementOf(tendv1.ItemUndone, tendv1.ItemFailed), it.Message)
			t.Logf("lab canary: %s: %s", it.Outcome, it.Message)
		} else {
			g.Expect(it.Outcome).To(Equal(tendv1.ItemSkipped))
		}
	}
	g.Eventually(func(g Gomega) {
		g.Expect(limit(g, "lab", "w0")).NotTo(Equal("120Mi"))
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "lab", Name: "w0"}, d)).To(Succeed())
		g.Expect(d.Status.ReadyReplicas).To(Equal(int32(2)))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	for _, w := range []string{"w1", "w2", "w3"} {
		g.Expect(limit(g, "lab", w)).To(Equal("64Mi"), w)
	}
	var labProps tendv1.ProposalList
	g.Expect(c.List(ctx, &labProps, client.InNamespace("lab"))).To(Succeed())
	for _, p := range labProps.Items {
		g.Expect(p.Spec.Target.Name).To(Equal("w0"), "only the canary's workload saw proposals")
	}

	// shop: the canary applies and is verified first; nothing else is
	// proposed during its soak.
	g.Eventually(func(g Gomega) {
		r := run(g, "shop")
		g.Expect(r.Status.Items[0].Outcome).To(Equal(tendv1.ItemApplied), "items %+v", r.Status.Items)
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	var props tendv1.ProposalList
	g.Expect(c.List(ctx, &props, client.InNamespace("shop"))).To(Succeed())
	g.Expect(props.Items).To(HaveLen(1))
	g.Expect(limit(g, "shop", "w0")).To(Equal("120Mi"))
	g.Expect(limit(g, "shop", "w1")).To(Equal("64Mi"))
	// hot: the canary (w0) applies and is verified by the proposal
	// controller; during its soak the container sits at its CPU limit, a
	// regression no maintenance runbook claims. The run itself must see it
	// at the soak's end, undo the canary and stop.
	var hotCanary tendv1.RunItem
	g.Eventually(func(g Gomega) {
		r := run(g, "hot")
		g.Expect(r.Status.Items[0].Outcome).To(Equal(tendv1.ItemApplied), "items %+v", r.Status.Items)
		hotCanary = r.Status.Items[0]
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Expect(cpuRequest(g, "hot", hotCanary.Workload.Name)).To(Equal("20m"))
	g.Expect(run(g, "hot").Status.Items[1].Outcome).To(Equal(tendv1.ItemPlanned))
	hotPods := &corev1.PodList{}
	g.Expect(c.List(ctx, hotPods, client.InNamespace("hot"), client.MatchingLabels{"app": hotCanary.Workload.Name})).To(Succeed())
	g.Expect(hotPods.Items).NotTo(BeEmpty())
	pub = bus.NewPublisher(js, st.ClusterName, "sensor")
	for _, p := range hotPods.Items {
		for i := 1; i <= 9; i++ {
			at := hotCanary.AppliedAt.Add(time.Duration(i) * 30 * time.Second)
			env := &bus.Envelope{
				ID:     fmt.Sprintf("pm-hot-%s-%d", p.Name, at.Unix()),
				Object: bus.ObjectRef{Kind: bus.KindPodMetrics, Namespace: p.Namespace, Name: p.Name},
				Time:   at,
				Usage:  &bus.UsageSample{Timestamp: at, CPUMillicores: 200, MemoryBytes: 90 << 20, Containers: []bus.ContainerUsage{{Name: "app", CPUMillicores: 200, MemoryBytes: 90 << 20}}},
			}
			g.Expect(pub.PublishAsync(ctx, env, nil)).To(Succeed())
		}
	}
	g.Expect(pub.Close(ctx)).To(Succeed())

	// Then the batches: each starts once the one before has soaked on the
	// injected clock, and is applied before the clock moves on.
	for range 3 {
		before := run(g, "shop").Status.Batch
		clock.Add(6 * time.Minute)
		g.Eventually(func(g Gomega) {
			r := run(g, "shop")
			if r.Status.Phase == tendv1.RunSucceeded {
				return
			}
			g.Expect(r.Status.Batch).To(BeNumerically(">", before))
			for _, it := range r.Status.Items {
				switch {
				case it.Batch < r.Status.Batch:
					g.Expect(it.Outcome).To(Equal(tendv1.ItemVerified))
				case it.Batch == r.Status.Batch:
					g.Expect(it.Outcome).To(Equal(tendv1.ItemApplied))
				default:
					g.Expect(it.Outcome).To(Equal(tendv1.ItemPlanned), "a later batch started early")
				}
			}
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(run(g, "shop").Status.Phase).To(Equal(tendv1.RunSucceeded))
	}).WithTimeout(time.Minute).Should(Succeed())
	for _, w := range []string{"w0", "w1", "w2", "w3"} {
		g.Expect(limit(g, "shop", w)).To(Equal("120Mi"), w)
	}
	g.Expect(c.List(ctx, &props, client.InNamespace("shop"))).To(Succeed())
	g.Expect(props.Items).To(HaveLen(4), "one proposal per workload, none repeated")
	for _, p := range props.Items {
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseSucceeded))
		g.Expect(p.Spec.Proposer.Agent).To(Equal("improvement"))
	}

	// hot: the run stopped at the canary and undid it itself: its undo
	// went through the gate and the proposal controller, and w0 has its
	// 200m back; w1 was never touched.
	g.Eventually(func(g Gomega) {
		r := run(g, "hot")
		g.Expect(r.Status.Phase).To(Equal(tendv1.RunStopped), "items %+v", r.Status.Items)
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	r = run(g, "hot")
	g.Expect(r.Status.Conditions).To(ContainElement(HaveField("Reason", controllers.ReasonCanaryFailed)))
	g.Expect(r.Status.Items[0].Outcome).To(Equal(tendv1.ItemUndone))
	g.Expect(r.Status.Items[0].Message).To(ContainSubstring("CPU-throttled"))
	t.Logf("hot canary: %s: %s", r.Status.Items[0].Outcome, r.Status.Items[0].Message)
	g.Expect(r.Status.Items[1].Outcome).To(Equal(tendv1.ItemSkipped))
	undo := &tendv1.Proposal{}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "hot", Name: r.Status.Items[0].UndoProposal}, undo)).To(Succeed())
		g.Expect(undo.Status.Phase).To(Equal(tendv1.PhaseSucceeded), undo.Status.Message)
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Expect(undo.Spec.Proposer.Agent).To(Equal("improvement"))
	g.Expect(undo.Status.Decision.Facts.Run).NotTo(BeNil())
	g.Expect(undo.Status.Decision.Facts.Run.Undo).To(BeTrue())
	g.Expect(cpuRequest(g, "hot", hotCanary.Workload.Name)).To(Equal("200m"))
	g.Expect(cpuRequest(g, "hot", r.Status.Items[1].Workload.Name)).To(Equal("200m"))
	var hotProps tendv1.ProposalList
	g.Expect(c.List(ctx, &hotProps, client.InNamespace("hot"))).To(Succeed())
	g.Expect(hotProps.Items).To(HaveLen(2), "the canary and its undo")
	for _, p := range hotProps.Items {
		g.Expect(p.Status.Decision.Facts.Run.Member).To(BeTrue(), p.Name)
	}
}
