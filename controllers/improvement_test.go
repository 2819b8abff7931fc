package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp/wire"
)

// runClock is a clock the test moves.
type runClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *runClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *runClock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *runClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// plan is a RunAnalyzer that recommends halving the CPU request of every
// workload in scope: the run's control flow is under test, not the analysis.
type plan struct{}

func (plan) Recommend(_ context.Context, _ []string, ws []tendv1.WorkloadRef, _ tendv1.RightsizingParams, _ time.Time) ([]tendv1.RunItem, error) {
	var out []tendv1.RunItem
	for _, w := range ws {
		out = append(out, tendv1.RunItem{Workload: w, Container: "app", Analyzer: "rightsizing", Action: "SetResources", Outcome: tendv1.ItemPlanned,
			Before: tendv1.Resources{CPURequestMillicores: 1000, Replicas: 2}, After: tendv1.Resources{CPURequestMillicores: 500, Replicas: 2}})
	}
	return out, nil
}

// proposalMaker creates the Proposal a propose tool would, as a real object.
type proposalMaker struct{ c client.Client }

func (p proposalMaker) ProposeItem(ctx context.Context, it tendv1.RunItem, fp string, notAfter time.Time) (wire.ProposeResult, error) {
	d := &appsv1.Deployment{}
	if err := p.c.Get(ctx, client.ObjectKey{Namespace: it.Workload.Namespace, Name: it.Workload.Name}, d); err != nil {
		return wire.ProposeResult{}, err
	}
	prop := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "improve-", Namespace: it.Workload.Namespace},
		Spec: tendv1.ProposalSpec{
			Action:      tendv1.ActionSetResources,
			Target:      tendv1.TargetRef{APIVersion: "apps/v1", Kind: it.Workload.Kind, Namespace: it.Workload.Namespace, Name: it.Workload.Name, UID: d.UID, ResourceVersion: d.ResourceVersion},
			Parameters:  tendv1.Parameters{Resources: &tendv1.ResourcesParameters{Container: it.Container, Requests: corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(it.After.CPURequestMillicores, resource.DecimalSI)}}},
			Proposer:    tendv1.Proposer{Username: "system:serviceaccount:tend-system:tend-agent", Agent: "improvement"},
			Fingerprint: fp,
		},
	}
	if !notAfter.IsZero() {
		prop.Spec.ExpiresAt = &metav1.Time{Time: notAfter}
	}
	if err := p.c.Create(ctx, prop); err != nil {
		return wire.ProposeResult{}, err
	}
	return wire.ProposeResult{Namespace: prop.Namespace, Name: prop.Name}, nil
}

func deployment(t *testing.T, ns, name string, labels map[string]string) *appsv1.Deployment {
	t.Helper()
	c := kube(t)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.tend.local/app:1"}}},
			},
		},
	}
	if err := c.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	setAvailable(t, d, 2)
	return d
}

// setAvailable writes the Deployment's available replicas, as the
// deployment controller would.
func setAvailable(t *testing.T, d *appsv1.Deployment, n int32) {
	t.Helper()
	c := kube(t)
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 2, n, n
	if err := c.Status().Update(t.Context(), d); err != nil {
		t.Fatal(err)
	}
}

func startImprovement(t *testing.T, clock *runClock, ns string, opts ...func(*controllers.ImprovementRunReconciler)) {
	t.Helper()
	startManager(t, []string{ns}, func(mgr ctrl.Manager) error {
		if err := (&controllers.ImprovementScheduleReconciler{Client: mgr.GetClient(), Analyzers: []string{"rightsizing", "idle"}, Now: clock.Now}).SetupWithManager(mgr); err != nil {
			return err
		}
		rr := &controllers.ImprovementRunReconciler{Client: mgr.GetClient(), Analyzer: plan{}, Proposer: proposalMaker{kube(t)}, Now: clock.Now, Poll: 100 * time.Millisecond}
		for _, o := range opts {
			o(rr)
		}
		return rr.SetupWithManager(mgr)
	})
}

func schedule(ns, name string, mutate func(*tendv1.ImprovementSchedule)) *tendv1.ImprovementSchedule {
	s := &tendv1.ImprovementSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: tendv1.ImprovementScheduleSpec{Schedule: "0 2 * * *", TimeZone: "Europe/Berlin", Agents: []string{"rightsizing"},
			Window: metav1.Duration{Duration: time.Hour}, CanaryPercent: 25, BatchSize: 2, Soak: metav1.Duration{Duration: 10 * time.Minute}},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func runsOf(g Gomega, ctx context.Context, ns, sched string) []tendv1.ImprovementRun {
	var runs tendv1.ImprovementRunList
	g.Expect(controlPlane.client.List(ctx, &runs, client.InNamespace(ns), client.MatchingLabels{tendv1.LabelSchedule: sched})).To(Succeed())
	return runs.Items
}

func TestImprovementScheduleBadInput(t *testing.T) {
	ns := newNamespace(t, nil)
	deployment(t, ns, "web", map[string]string{"tier": "web"})
	clock := &runClock{t: time.Now()}
	startImprovement(t, clock, ns)
	g := newG(t)
	c := kube(t)
	for _, tc := range []struct {
		name, reason string
		mutate       func(*tendv1.ImprovementSchedule)
	}{
		{"bad-cron", controllers.ReasonInvalidSchedule, func(s *tendv1.ImprovementSchedule) { s.Spec.Schedule = "61 * * * *" }},
		{"bad-tz", controllers.ReasonInvalidTimeZone, func(s *tendv1.ImprovementSchedule) { s.Spec.TimeZone = "Mars/Olympus" }},
		{"bad-agent", controllers.ReasonUnknownAnalyzer, func(s *tendv1.ImprovementSchedule) { s.Spec.Agents = []string{"rightsizing", "telepathy"} }},
		{"empty-scope", controllers.ReasonEmptyScope, func(s *tendv1.ImprovementSchedule) {
			s.Spec.Scope.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "nothing"}}
		}},
		{"bad-canary", controllers.ReasonInvalidCanary, func(s *tendv1.ImprovementSchedule) { s.Spec.CanaryPercent = 150 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := schedule(ns, tc.name, tc.mutate)
			// Due a minute ago, had it been valid.
			s.Spec.Schedule = strings.Replace(s.Spec.Schedule, "0 2 * * *", "* * * * *", 1)
			g.Expect(c.Create(t.Context(), s)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(s), s)).To(Succeed())
				cond := meta.FindStatusCondition(s.Status.Conditions, controllers.ConditionReady)
				g.Expect(cond).NotTo(BeNil())
				g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(cond.Reason).To(Equal(tc.reason))
				g.Expect(s.Status.NextRunTime).To(BeNil())
			}).Should(Succeed())
			clock.Add(3 * time.Minute)
			g.Eventually(func() error {
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(s), s); err != nil {
					return err
				}
				s.Annotations = map[string]string{"touch": "1"}
				return c.Update(t.Context(), s)
			}).Should(Succeed())
			g.Consistently(func() int { return len(runsOf(g, t.Context(), ns, s.Name)) }, 2*time.Second).Should(BeZero())
		})
	}
}

func TestImprovementScheduleRunsOncePerTime(t *testing.T) {
	ns := newNamespace(t, nil)
	deployment(t, ns, "web", nil)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// The schedule is created now (real time); the clock starts now.
	clock := &runClock{t: time.Now()}
	startImprovement(t, clock, ns)
	g := newG(t)
	c := kube(t)
	s := schedule(ns, "nightly", func(s *tendv1.ImprovementSchedule) { s.Spec.ReportOnly = true })
	g.Expect(c.Create(t.Context(), s)).To(Succeed())
	touch := func() {
		t.Helper()
		g.Eventually(func() error {
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
			s.Annotations = map[string]string{"touch": clock.Now().String()}
			return c.Update(t.Context(), s)
		}).Should(Succeed())
	}
	// The next 02:00 in Berlin: today's if it is still ahead, else tomorrow's.
	local := clock.Now().In(berlin)
	first := time.Date(local.Year(), local.Month(), local.Day(), 2, 0, 0, 0, berlin)
	if !first.After(local) {
		first = time.Date(local.Year(), local.Month(), local.Day()+1, 2, 0, 0, 0, berlin)
	}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(s), s)).To(Succeed())
		g.Expect(s.Status.NextRunTime).NotTo(BeNil())
		g.Expect(s.Status.NextRunTime.Time.Equal(first)).To(BeTrue(), "next run %s, want %s", s.Status.NextRunTime, first)
	}).Should(Succeed())
	g.Expect(runsOf(g, t.Context(), ns, "nightly")).To(BeEmpty())

	// Due: one run, for 02:00 Berlin time, however often it is reconciled.
	clock.Set(first.Add(30 * time.Second))
	touch()
	g.Eventually(func() int { return len(runsOf(g, t.Context(), ns, "nightly")) }).Should(Equal(1))
	touch()
	g.Consistently(func() int { return len(runsOf(g, t.Context(), ns, "nightly")) }, 2*time.Second).Should(Equal(1))
	run := runsOf(g, t.Context(), ns, "nightly")[0]
	g.Expect(run.Spec.ScheduledTime.Time.Equal(first)).To(BeTrue())
	g.Expect(run.Spec.WindowEnd.Time.Equal(first.Add(time.Hour))).To(BeTrue())

	// The controller was down for two nights and comes back inside the
	// third's window: one run, for the third night only.
	third := first.AddDate(0, 0, 3)
	clock.Set(third.Add(20 * time.Minute))
	touch()
	g.Eventually(func() int { return len(runsOf(g, t.Context(), ns, "nightly")) }).Should(Equal(2))
	g.Consistently(func() int { return len(runsOf(g, t.Context(), ns, "nightly")) }, 2*time.Second).Should(Equal(2))
	var times []time.Time
	for _, r := range runsOf(g, t.Context(), ns, "nightly") {
		times = append(times, r.Spec.ScheduledTime.Time.UTC())
	}
	g.Expect(times).To(ConsistOf(first.UTC(), third.UTC()))

	// Back after the window: no run for the missed night.
	clock.Set(third.AddDate(0, 0, 1).Add(90 * time.Minute))
	touch()
	g.Consistently(func() int { return len(runsOf(g, t.Context(), ns, "nightly")) }, 2*time.Second).Should(Equal(2))
	g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(s), s)).To(Succeed())
	g.Expect(s.Status.Runs).To(HaveLen(2))
}

// proposalsOf returns the run's proposals by fingerprint.
func proposalsOf(g Gomega, ctx context.Context, ns string) map[string][]tendv1.Proposal {
	var ps tendv1.ProposalList
	g.Expect(controlPlane.client.List(ctx, &ps, client.InNamespace(ns))).To(Succeed())
	out := map[string][]tendv1.Proposal{}
	for _, p := range ps.Items {
		out[p.Spec.Fingerprint] = append(out[p.Spec.Fingerprint], p)
	}
	return out
}

// succeed plays the proposal controller: the proposal applied and verified.
func succeed(t *testing.T, g Gomega, p tendv1.Proposal) {
	t.Helper()
	g.Eventually(func() error {
		if err := kube(t).Get(t.Context(), client.ObjectKeyFromObject(&p), &p); err != nil {
			return err
		}
		p.Status.Phase = tendv1.PhaseSucceeded
		return kube(t).Status().Update(t.Context(), &p)
	}).Should(Succeed())
}

func startRun(t *testing.T, g Gomega, ns string, now time.Time) *tendv1.ImprovementRun {
	t.Helper()
	s := schedule(ns, "nightly", nil)
	run := controllers.NewRun(s, now, true)
	g.Expect(kube(t).Create(t.Context(), run)).To(Succeed())
	return run
}

func getRun(g Gomega, ctx context.Context, run *tendv1.ImprovementRun) *tendv1.ImprovementRun {
	out := &tendv1.ImprovementRun{}
	g.Expect(controlPlane.client.Get(ctx, client.ObjectKeyFromObject(run), out)).To(Succeed())
	return out
}

func TestImprovementRunCanaryThenBatches(t *testing.T) {
	ns := newNamespace(t, nil)
	for i := range 5 {
		deployment(t, ns, fmt.Sprintf("app%d", i), nil)
	}
	clock := &runClock{t: time.Now()}
	startImprovement(t, clock, ns)
	g := newG(t)
	run := startRun(t, g, ns, clock.Now())

	// 25% of 5 changes: a canary of 2, then batches of 2 and 1.
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(2))
	r := getRun(g, t.Context(), run)
	g.Expect(r.Status.Phase).To(Equal(tendv1.RunCanary))
	g.Expect(r.Status.Batches).To(Equal(int32(3)))
	g.Expect(r.Status.Projected.CPUMillicores).To(Equal(int64(5 * 500 * 2)))
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		succeed(t, g, ps[0])
	}
	// Applied, soaking: nothing more is proposed until the soak ends.
	g.Eventually(func() []tendv1.ItemOutcome {
		var out []tendv1.ItemOutcome
		for _, it := range getRun(g, t.Context(), run).Status.Items {
			if it.Batch == 0 {
				out = append(out, it.Outcome)
			}
		}
		return out
	}).Should(Equal([]tendv1.ItemOutcome{tendv1.ItemApplied, tendv1.ItemApplied}))
	g.Consistently(func() int { return len(proposalsOf(g, t.Context(), ns)) }, time.Second).Should(Equal(2))
	clock.Add(11 * time.Minute)
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(4))
	g.Expect(getRun(g, t.Context(), run).Status.Phase).To(Equal(tendv1.RunRolling))
	g.Expect(getRun(g, t.Context(), run).Status.Achieved.CPUMillicores).To(Equal(int64(2 * 500 * 2)))

	for _, ps := range proposalsOf(g, t.Context(), ns) {
		if ps[0].Status.Phase == "" {
			succeed(t, g, ps[0])
		}
	}
	g.Eventually(func() int32 { return getRun(g, t.Context(), run).Status.Batch }).Should(Equal(int32(1)))
	g.Eventually(func() int {
		n := 0
		for _, it := range getRun(g, t.Context(), run).Status.Items {
			if it.Outcome == tendv1.ItemApplied {
				n++
			}
		}
		return n
	}).Should(Equal(2))
	clock.Add(11 * time.Minute)
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(5))
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		if ps[0].Status.Phase == "" {
			succeed(t, g, ps[0])
		}
	}
	g.Eventually(func() int {
		for _, it := range getRun(g, t.Context(), run).Status.Items {
			if it.Outcome == tendv1.ItemApplied {
				return 1
			}
		}
		return 0
	}).Should(Equal(1))
	clock.Add(11 * time.Minute)
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunSucceeded))
	r = getRun(g, t.Context(), run)
	g.Expect(r.Status.Achieved.CPUMillicores).To(Equal(int64(5 * 500 * 2)))
	for fp, ps := range proposalsOf(g, t.Context(), ns) {
		g.Expect(ps).To(HaveLen(1), "proposals with fingerprint %s", fp)
	}
}

func TestImprovementRunCanaryRegressionStopsAndUndoes(t *testing.T) {
	ns := newNamespace(t, nil)
	var ds []*appsv1.Deployment
	for i := range 4 {
		ds = append(ds, deployment(t, ns, fmt.Sprintf("app%d", i), nil))
	}
	clock := &runClock{t: time.Now()}
	hook := newSink(t, nil)
	n := newNotifier(t, controllers.NotifierOptions{URL: hook.URL()})
	startNotifier(t, t.Context(), n)
	startImprovement(t, clock, ns, func(r *controllers.ImprovementRunReconciler) { r.Notifier, r.Cluster = n, "envtest" })
	g := newG(t)
	run := startRun(t, g, ns, clock.Now())
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(1))
	var canary tendv1.Proposal
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		canary = ps[0]
	}
	succeed(t, g, canary)
	g.Eventually(func() tendv1.ItemOutcome { return getRun(g, t.Context(), run).Status.Items[0].Outcome }).Should(Equal(tendv1.ItemApplied))

	// The regression: the canary's workload loses a replica during the soak.
	for _, d := range ds {
		if d.Name == canary.Spec.Target.Name {
			setAvailable(t, d, 1)
		}
	}
	clock.Add(time.Minute)
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunStopped))
	r := getRun(g, t.Context(), run)
	g.Expect(meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionProgressing).Reason).To(Equal(controllers.ReasonCanaryFailed))
	ps := proposalsOf(g, t.Context(), ns)
	g.Expect(ps).To(HaveLen(2), "the canary and its undo, nothing for the other workloads")
	var undo *tendv1.Proposal
	for fp, p := range ps {
		if strings.HasSuffix(fp, "/undo") {
			undo = &p[0]
		}
	}
	g.Expect(undo).NotTo(BeNil())
	g.Expect(undo.Spec.Target.Name).To(Equal(canary.Spec.Target.Name))
	g.Expect(undo.Spec.Parameters.Resources.Requests.Cpu().MilliValue()).To(Equal(int64(1000)), "the undo puts the old request back")
	for _, it := range r.Status.Items {
		if it.Batch > 0 {
			g.Expect(it.Outcome).To(Equal(tendv1.ItemSkipped))
		}
	}
	g.Expect(r.Status.Achieved.CPUMillicores).To(BeZero())

	// The webhook hears the run's end once.
	reqs := hook.wait(t, 1)
	g.Consistently(func() int { return len(hook.requests()) }, time.Second).Should(Equal(1))
	for _, want := range []string{run.Name, "stopped", controllers.ReasonCanaryFailed, "1 Undone", "3 Skipped", "0.00 CPU cores", "tend runs show"} {
		g.Expect(reqs[0].Body).To(ContainSubstring(want))
	}
}

func TestImprovementRunResumesWithoutReproposing(t *testing.T) {
	ns := newNamespace(t, nil)
	for i := range 2 {
		deployment(t, ns, fmt.Sprintf("app%d", i), nil)
	}
	clock := &runClock{t: time.Now()}
	g := newG(t)
	run := startRun(t, g, ns, clock.Now())
	// A controller proposed the canary and crashed before it recorded the
	// proposal in the run's status: the proposal exists, the run says Planned.
	var r *tendv1.ImprovementRun
	{
		mgrCtx, stop := context.WithCancel(t.Context())
		_ = mgrCtx
		rec := &controllers.ImprovementRunReconciler{Client: kube(t), Analyzer: plan{}, Proposer: proposalMaker{kube(t)}, Now: clock.Now}
		_, err := rec.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(run)})
		g.Expect(err).NotTo(HaveOccurred())
		stop()
		r = getRun(g, t.Context(), run)
		g.Expect(r.Status.Phase).To(Equal(tendv1.RunCanary))
		g.Expect(r.Status.Items[0].Outcome).To(Equal(tendv1.ItemPlanned))
		_, err = proposalMaker{kube(t)}.ProposeItem(t.Context(), r.Status.Items[0], fmt.Sprintf("improve/%s/%s/0", ns, run.Name), r.Spec.WindowEnd.Time)
		g.Expect(err).NotTo(HaveOccurred())
	}
	// The controller starts again.
	startImprovement(t, clock, ns)
	g.Eventually(func() tendv1.ItemOutcome { return getRun(g, t.Context(), run).Status.Items[0].Outcome }).Should(Equal(tendv1.ItemProposed))
	g.Consistently(func() int { return len(proposalsOf(g, t.Context(), ns)) }, time.Second).Should(Equal(1))
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		succeed(t, g, ps[0])
	}
	g.Eventually(func() tendv1.ItemOutcome { return getRun(g, t.Context(), run).Status.Items[0].Outcome }).Should(Equal(tendv1.ItemApplied))
	clock.Add(11 * time.Minute)
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(2))
	for fp, ps := range proposalsOf(g, t.Context(), ns) {
		g.Expect(ps).To(HaveLen(1), "proposals with fingerprint %s", fp)
	}
}

// TestImprovementRunAdoptsOnlyItsOwnProposals: a proposal someone else
// made with the fingerprint of a run's item, for another action, is not
// taken for the run's: the run proposes its own change.
func TestImprovementRunAdoptsOnlyItsOwnProposals(t *testing.T) {
	ns := newNamespace(t, nil)
	for i := range 2 {
		deployment(t, ns, fmt.Sprintf("app%d", i), nil)
	}
	clock := &runClock{t: time.Now()}
	g := newG(t)
	run := startRun(t, g, ns, clock.Now())
	r := getRun(g, t.Context(), run)
	// The run is named and its items are known before it proposes; make
	// the planned items of both Deployments someone else's first.
	foreign := map[string]bool{}
	for i := range 2 {
		d := &appsv1.Deployment{}
		g.Expect(kube(t).Get(t.Context(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("app%d", i)}, d)).To(Succeed())
		p := &tendv1.Proposal{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "squat-", Namespace: ns},
			Spec: tendv1.ProposalSpec{
				Action:      tendv1.ActionScaleWorkload,
				Target:      tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: d.Name, UID: d.UID, ResourceVersion: d.ResourceVersion},
				Parameters:  tendv1.Parameters{Scale: &tendv1.ScaleParameters{Replicas: 0}},
				Proposer:    tendv1.Proposer{Username: "mallory", Agent: "improvement"},
				Fingerprint: fmt.Sprintf("improve/%s/%s/%d", ns, r.Name, i),
			},
		}
		g.Expect(kube(t).Create(t.Context(), p)).To(Succeed())
		foreign[p.Name] = true
	}
	startImprovement(t, clock, ns, func(rr *controllers.ImprovementRunReconciler) {
		rr.ProposerUsername = "system:serviceaccount:tend-system:tend-agent"
	})
	g.Eventually(func(g Gomega) {
		items := getRun(g, t.Context(), run).Status.Items
		g.Expect(items).NotTo(BeEmpty())
		it := items[0]
		g.Expect(it.Outcome).To(Equal(tendv1.ItemProposed))
		g.Expect(foreign).NotTo(HaveKey(it.Proposal), "the run took another's proposal for its own")
	}).Should(Succeed())
	for fp, ps := range proposalsOf(g, t.Context(), ns) {
		if strings.HasSuffix(fp, "/0") {
			g.Expect(ps).To(HaveLen(2), "proposals with fingerprint %s", fp)
		}
	}
}

func TestImprovementRunStopsAtWindowEndOrOnRequest(t *testing.T) {
	ns := newNamespace(t, nil)
	for i := range 4 {
		deployment(t, ns, fmt.Sprintf("app%d", i), nil)
	}
	clock := &runClock{t: time.Now()}
	startImprovement(t, clock, ns)
	g := newG(t)
	c := kube(t)
	run := startRun(t, g, ns, clock.Now())
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(1))
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		g.Expect(ps[0].Spec.ExpiresAt).NotTo(BeNil())
		g.Expect(ps[0].Spec.ExpiresAt.Time.Equal(run.Spec.WindowEnd.Time)).To(BeTrue(), "the change expires unapplied when the window closes")
	}
	// The canary waits for a human past the window: the run stops, and
	// proposes nothing more.
	clock.Set(run.Spec.WindowEnd.Add(time.Second))
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunStopped))
	r := getRun(g, t.Context(), run)
	g.Expect(meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionProgressing).Reason).To(Equal(controllers.ReasonWindowClosed))
	g.Consistently(func() int { return len(proposalsOf(g, t.Context(), ns)) }, time.Second).Should(Equal(1))

	// A second run, stopped on request before its canary is verified.
	clock.Set(time.Now())
	s := schedule(ns, "nightly", nil)
	run2 := controllers.NewRun(s, clock.Now().Add(time.Minute), false)
	g.Expect(c.Create(t.Context(), run2)).To(Succeed())
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(2))
	g.Eventually(func() error {
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(run2), run2); err != nil {
			return err
		}
		run2.Spec.Stop = true
		return c.Update(t.Context(), run2)
	}).Should(Succeed())
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run2).Status.Phase }).Should(Equal(tendv1.RunStopped))
	r = getRun(g, t.Context(), run2)
	g.Expect(meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionProgressing).Reason).To(Equal(controllers.ReasonStopRequested))
	skipped := 0
	for _, it := range r.Status.Items {
		if it.Outcome == tendv1.ItemSkipped {
			skipped++
		}
	}
	g.Expect(skipped).To(Equal(3))
}

// flaky fails its first analysis, as when the bus is briefly unreachable.
type flaky struct {
	mu    sync.Mutex
	calls int
}

func (f *flaky) Recommend(ctx context.Context, a []string, ws []tendv1.WorkloadRef, p tendv1.RightsizingParams, now time.Time) ([]tendv1.RunItem, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if n == 1 {
		return nil, fmt.Errorf("nats: timeout")
	}
	return plan{}.Recommend(ctx, a, ws, p, now)
}

func TestImprovementRunRetriesAFailedAnalysis(t *testing.T) {
	ns := newNamespace(t, nil)
	deployment(t, ns, "app0", nil)
	clock := &runClock{t: time.Now()}
	f := &flaky{}
	startImprovement(t, clock, ns, func(r *controllers.ImprovementRunReconciler) { r.Analyzer = f })
	g := newG(t)
	run := startRun(t, g, ns, clock.Now())
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunCanary))
	r := getRun(g, t.Context(), run)
	cond := meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionAnalyzed)
	g.Expect(cond).NotTo(BeNil())
	g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
	// The failed analysis was tried again. A reconcile from a copy the
	// cache had not updated yet may analyse once more; its status write
	// conflicts and the run keeps the first result.
	f.mu.Lock()
	g.Expect(f.calls).To(BeNumerically(">=", 2), "one failed analysis, then one that succeeded")
	f.mu.Unlock()
	g.Expect(r.Status.Items).NotTo(BeEmpty())
}

// cpuSamples is a SoakUsage with the samples the test gives each workload.
type cpuSamples struct {
	mu sync.Mutex
	by map[string][]int64
}

func (u *cpuSamples) set(workload string, v ...int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.by[workload] = v
}

func (u *cpuSamples) CPUUsage(_ context.Context, w tendv1.WorkloadRef, container string, _, _ time.Time) ([]int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if container != "app" {
		return nil, nil
	}
	return u.by[w.Name], nil
}

// limitCPU gives the Deployment's container a CPU limit.
func limitCPU(t *testing.T, d *appsv1.Deployment, q string) {
	t.Helper()
	c := kube(t)
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
	if err := c.Update(t.Context(), d); err != nil {
		t.Fatal(err)
	}
}

// TestImprovementRunSoakWatchesThrottling: a canary whose container sat at
// its CPU limit for most of the soak is undone by the run; one that
// touched the limit now and then is verified.
func TestImprovementRunSoakWatchesThrottling(t *testing.T) {
	for _, tc := range []struct {
		name      string
		samples   []int64
		throttled bool
	}{
		{"at the limit for most of the soak", []int64{200, 198, 120, 191, 200}, true},
		{"at the limit now and then", []int64{200, 60, 40, 195, 50}, false},
		{"too few samples to tell", []int64{200, 200}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, nil)
			for i := range 2 {
				limitCPU(t, deployment(t, ns, fmt.Sprintf("app%d", i), nil), "200m")
			}
			clock := &runClock{t: time.Now()}
			u := &cpuSamples{by: map[string][]int64{}}
			startImprovement(t, clock, ns, func(r *controllers.ImprovementRunReconciler) { r.Usage = u })
			g := newG(t)
			run := startRun(t, g, ns, clock.Now())
			g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(1))
			var canary tendv1.Proposal
			for _, ps := range proposalsOf(g, t.Context(), ns) {
				canary = ps[0]
			}
			u.set(canary.Spec.Target.Name, tc.samples...)
			succeed(t, g, canary)
			g.Eventually(func() tendv1.ItemOutcome { return getRun(g, t.Context(), run).Status.Items[0].Outcome }).Should(Equal(tendv1.ItemApplied))
			clock.Add(11 * time.Minute)
			if !tc.throttled {
				g.Eventually(func() tendv1.ItemOutcome { return getRun(g, t.Context(), run).Status.Items[0].Outcome }).Should(Equal(tendv1.ItemVerified))
				g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(2), "the next batch")
				return
			}
			g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunStopped))
			r := getRun(g, t.Context(), run)
			g.Expect(meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionProgressing).Reason).To(Equal(controllers.ReasonCanaryFailed))
			it := r.Status.Items[0]
			g.Expect(it.Outcome).To(Equal(tendv1.ItemUndone))
			g.Expect(it.Message).To(ContainSubstring("CPU-throttled"))
			g.Expect(it.Message).To(ContainSubstring("4 of 5 samples"))
			g.Expect(it.UndoProposal).NotTo(BeEmpty())
			ps := proposalsOf(g, t.Context(), ns)
			g.Expect(ps).To(HaveLen(2), "the canary and its undo")
			undo := ps[fmt.Sprintf("improve/%s/%s/0/undo", ns, run.Name)]
			g.Expect(undo).To(HaveLen(1))
			g.Expect(undo[0].Spec.Parameters.Resources.Requests.Cpu().MilliValue()).To(Equal(int64(1000)), "the undo puts the old request back")
		})
	}
}

// TestImprovementRunUndoesAFailingBatchsChangesInFlight: when one change
// of the canary regresses while another is still being verified by the
// proposal controller, the run undoes both: once it has stopped, nobody
// would follow the other.
func TestImprovementRunUndoesAFailingBatchsChangesInFlight(t *testing.T) {
	ns := newNamespace(t, nil)
	ds := map[string]*appsv1.Deployment{}
	for i := range 4 {
		d := deployment(t, ns, fmt.Sprintf("app%d", i), nil)
		ds[d.Name] = d
	}
	clock := &runClock{t: time.Now()}
	startImprovement(t, clock, ns)
	g := newG(t)
	run := controllers.NewRun(schedule(ns, "nightly", func(s *tendv1.ImprovementSchedule) { s.Spec.CanaryPercent = 50 }), clock.Now(), true)
	g.Expect(kube(t).Create(t.Context(), run)).To(Succeed())
	g.Eventually(func() int { return len(proposalsOf(g, t.Context(), ns)) }).Should(Equal(2))
	var canary []tendv1.Proposal
	for _, ps := range proposalsOf(g, t.Context(), ns) {
		canary = append(canary, ps[0])
	}
	// One is verified; the other is still verifying.
	succeed(t, g, canary[0])
	verifying := canary[1]
	g.Eventually(func() error {
		if err := kube(t).Get(t.Context(), client.ObjectKeyFromObject(&verifying), &verifying); err != nil {
			return err
		}
		verifying.Status.Phase = tendv1.PhaseVerifying
		return kube(t).Status().Update(t.Context(), &verifying)
	}).Should(Succeed())
	g.Eventually(func() []tendv1.ItemOutcome {
		var out []tendv1.ItemOutcome
		for _, it := range getRun(g, t.Context(), run).Status.Items {
			if it.Batch == 0 {
				out = append(out, it.Outcome)
			}
		}
		return out
	}).Should(ConsistOf(tendv1.ItemApplied, tendv1.ItemProposed))

	// The verified one regresses during its soak.
	setAvailable(t, ds[canary[0].Spec.Target.Name], 1)
	clock.Add(time.Minute)
	g.Eventually(func() tendv1.RunPhase { return getRun(g, t.Context(), run).Status.Phase }).Should(Equal(tendv1.RunStopped))
	r := getRun(g, t.Context(), run)
	g.Expect(meta.FindStatusCondition(r.Status.Conditions, controllers.ConditionProgressing).Reason).To(Equal(controllers.ReasonCanaryFailed))
	undone := map[string]string{}
	for _, it := range r.Status.Items {
		if it.Batch == 0 {
			g.Expect(it.Outcome).To(Equal(tendv1.ItemUndone), it.Workload.Name)
			g.Expect(it.UndoProposal).NotTo(BeEmpty(), it.Workload.Name)
			undone[it.Workload.Name] = it.Message
		} else {
			g.Expect(it.Outcome).To(Equal(tendv1.ItemSkipped))
		}
	}
	g.Expect(undone).To(HaveKeyWithValue(verifying.Spec.Target.Name, "its batch failed"))
	ps := proposalsOf(g, t.Context(), ns)
	g.Expect(ps).To(HaveLen(4), "the two canary changes and their undos")
	for _, p := range canary {
		undo := ps[fmt.Sprintf("%s/undo", p.Spec.Fingerprint)]
		g.Expect(undo).To(HaveLen(1), p.Spec.Fingerprint)
		g.Expect(undo[0].Spec.Target.Name).To(Equal(p.Spec.Target.Name))
	}
}
