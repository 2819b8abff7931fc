package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/controllers/actions"
	"github.com/tendops/tend/policies"
)

const (
	envCrashKubeconfig = "TEND_CRASH_CHILD_KUBECONFIG"
	envCrashNamespace  = "TEND_CRASH_CHILD_NAMESPACE"
)

// TestCrashChild is not a test: it is the controller process that
// TestCrashDuringApplyNeverAppliesTwice starts and kills. It runs only when
// that test sets its environment.
func TestCrashChild(t *testing.T) {
	kc, ns := os.Getenv(envCrashKubeconfig), os.Getenv(envCrashNamespace)
	if kc == "" {
		t.Skip("runs only as the child process of TestCrashDuringApplyNeverAppliesTwice")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	scheme := controlPlaneScheme(t)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Logger: zap.New(zap.WriteTo(os.Stderr)), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: ctrlcache.Options{DefaultNamespaces: map[string]ctrlcache.Config{ns: {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	// Fifty proposals in a minute are this test's design, not a storm.
	bundle = append(bundle, tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "crash-test-limits"},
		Spec: tendv1.GatePolicySpec{
			Rules: []tendv1.GateRule{{Name: "none", When: "false", Outcome: tendv1.OutcomeDeny, Reason: "Never"}},
			Guards: &tendv1.GuardLimits{
				RateLimits: []tendv1.RateLimit{
					{Action: "*", Max: 1000, Window: metav1.Duration{Duration: time.Minute}},
					{Action: "*", Per: tendv1.RateScopeProposer, Max: 1000, Window: metav1.Duration{Duration: time.Minute}},
				},
				CircuitBreaker: &tendv1.CircuitBreakerLimits{MaxProposals: ptr.To[int32](1000)},
				// Earlier trials stay Verifying (the stable window is an hour),
				// and their drained nodes cordoned.
				MaxApplyingPerNamespace: ptr.To[int32](1000),
				MaxApplyingPerCluster:   ptr.To[int32](1000),
				MaxNodesDisrupted:       ptr.To[int32](1000),
			},
		},
	})
	for _, r := range gate.Load(bundle) {
		if !r.Valid {
			t.Fatalf("policy %s: %v", r.Name, r.Err)
		}
	}
	if err := (&controllers.ProposalReconciler{
		Client: mgr.GetClient(), Gate: gate,
		Options: controllers.ProposalOptions{SystemNamespace: ns, StableWindow: time.Hour, VerifyTimeout: 2 * time.Hour},
	}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	// Runs until the parent kills the process; says when it is ready.
	done := make(chan error, 1)
	go func() { done <- mgr.Start(context.Background()) }()
	// Start every informer the reconciler reads, so its first reconcile is as
	// fast as any later one and the kills land in the apply.
	for _, obj := range []client.Object{&tendv1.Proposal{}, &tendv1.Approval{}, &appsv1.Deployment{}, &appsv1.ReplicaSet{}, &corev1.Pod{}, &corev1.Node{}, &corev1.ConfigMap{}, &corev1.Namespace{}, &policyv1.PodDisruptionBudget{}, &autoscalingv2.HorizontalPodAutoscaler{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
	if !mgr.GetCache().WaitForCacheSync(context.Background()) {
		t.Fatal("caches did not sync")
	}
	fmt.Println(crashChildReady)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

const crashChildReady = "TEND-CRASH-CHILD-READY"

// TestCrashDuringApplyNeverAppliesTwice kills the controller process with
// SIGKILL at random moments around an apply, restarts it, and checks after
// every trial that the change was made exactly once. The trials take turns
// over three actions: a rollback and a scale (one write each) and a drain
// (a cordon, then one eviction per pod, each recorded before and after).
// For a drain, a stand-in for a StatefulSet controller starts every evicted
// pod again at once under its name on another node: a second eviction of a
// name would remove that replacement, and is counted.
func TestCrashDuringApplyNeverAppliesTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a controller process 60 times")
	}
	const trials = 60
	g := newG(t)
	c := kube(t)
	ns := newNamespace(t, nil)
	kc := writeKubeconfig(t)

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashKubeconfig+"="+kc, envCrashNamespace+"="+ns)
		// TEND_CRASH_CHILD_LOG names a file for the children's logs, to
		// debug a failing run.
		var rest io.Writer = io.Discard
		if f := os.Getenv("TEND_CRASH_CHILD_LOG"); f != "" {
			logf, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = logf.Close() })
			cmd.Stderr, rest = logf, logf
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the controller runs, so the kill lands in its work.
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == crashChildReady {
					close(ready)
					break
				}
			}
			_, _ = io.Copy(rest, out)
		}()
		select {
		case <-ready:
		case <-time.After(time.Minute):
			t.Fatal("the controller process did not start within a minute")
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	child := start()
	t.Cleanup(func() { kill(child) })
	evictions := replacePods(t, c, ns)

	// Where the kills landed, judged from the state they left behind.
	landed := map[string]int{}
	counts := map[tendv1.Action]int{}
	var p *tendv1.Proposal
	for i := range trials {
		var tr crashTrial
		switch i % 3 {
		case 0:
			tr = rollbackTrial(t, c, ns, i)
		case 1:
			tr = scaleTrial(t, c, ns, i)
		default:
			tr = drainTrial(t, c, ns, i)
		}
		p = createProposal(t, c, tr.proposal)
		window := 60 * time.Millisecond
		if tr.approve {
			// A drain needs a human: approve, then kill somewhere in its
			// steps (a cordon and one eviction per pod, ~100ms apart).
			p = waitPhase(t, g, c, p, tendv1.PhaseAwaitingApproval)
			approve(t, c, p, "lead", p.Status.SpecHash, tendv1.ApprovalApprove)
			window = time.Second
		}
		// Kill somewhere in the proposal's first moments, where the
		// decision, the dry run, the Applying commit, the writes and the
		// Verifying commit happen.
		time.Sleep(time.Duration(rand.Int64N(int64(window))))
		kill(child)

		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		written := tr.written()
		switch {
		case p.Status.Phase == tendv1.PhaseApplying && written:
			landed["after a write, before the apply was done"]++
		case p.Status.Phase == tendv1.PhaseApplying:
			landed["after committing Applying, before the write"]++
		case p.Status.Phase == tendv1.PhaseVerifying || p.Status.Phase == tendv1.PhaseSucceeded:
			landed["after the apply was recorded"]++
		default:
			landed["before the apply started"]++
		}

		child = start()
		p = waitPhase(t, g, c, p, tendv1.PhaseVerifying)
		tr.check(g, p, i)
		counts[p.Spec.Action]++
	}
	// A proposal waiting out its stable window writes nothing while
	// nothing changes: its polls would otherwise crowd out new work.
	last := &tendv1.Proposal{}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(p), last)).To(Succeed())
		g.Expect(last.Status.Verify).NotTo(BeNil())
		g.Expect(last.Status.Verify.StableSince).NotTo(BeNil(), "checks: %+v", last.Status.Verify.Checks)
	}).Should(Succeed())
	g.Consistently(func(g Gomega) string {
		now := &tendv1.Proposal{}
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(p), now)).To(Succeed())
		return now.ResourceVersion
	}).WithTimeout(5*time.Second).WithPolling(500*time.Millisecond).Should(Equal(last.ResourceVersion), "a Verifying proposal was written with nothing new")
	for name, n := range evictions.counts() {
		g.Expect(n).To(Equal(1), "pod %s was evicted %d times", name, n)
	}
	t.Logf("%d trials (%v), zero double applies, %d pods evicted once each; kills landed: %v", trials, counts, len(evictions.counts()), landed)
}

// crashTrial is one trial of the crash test: a proposal, and how to tell
// that its change was made, and made once.
type crashTrial struct {
	proposal *tendv1.Proposal
	approve  bool
	written  func() bool
	check    func(g *WithT, p *tendv1.Proposal, trial int)
}

func rollbackTrial(t *testing.T, c client.Client, ns string, i int) crashTrial {
	w := newFailingRollout(t, c, ns, fmt.Sprintf("web-%02d", i))
	before := w.Deployment()
	return crashTrial{
		proposal: rollbackProposal(before),
		written:  func() bool { return w.Deployment().Annotations[actions.AnnotationApplied] != "" },
		check: func(g *WithT, p *tendv1.Proposal, i int) {
			dep := w.Deployment()
			g.Expect(dep.Generation).To(Equal(before.Generation+1), "trial %d: the template was written %d times", i, dep.Generation-before.Generation)
			g.Expect(dep.Spec.Template).To(Equal(w.Template("v1")), "trial %d", i)
			g.Expect(dep.Annotations[actions.AnnotationApplied]).To(Equal(string(p.UID)+"/"+p.Status.Apply.Attempt), "trial %d", i)
		},
	}
}

func scaleTrial(t *testing.T, c client.Client, ns string, i int) crashTrial {
	w := newUnrolled(t, c, ns, fmt.Sprintf("api-%02d", i))
	before := w.Deployment()
	p := rollbackProposal(before)
	p.GenerateName = "scale-" + before.Name + "-"
	p.Spec.Action = tendv1.ActionScaleWorkload
	p.Spec.Parameters = tendv1.Parameters{Scale: &tendv1.ScaleParameters{Replicas: 2}}
	return crashTrial{
		proposal: p,
		written:  func() bool { return w.Deployment().Annotations[actions.AnnotationApplied] != "" },
		check: func(g *WithT, p *tendv1.Proposal, i int) {
			dep := w.Deployment()
			g.Expect(dep.Generation).To(Equal(before.Generation+1), "trial %d: the replicas were written %d times", i, dep.Generation-before.Generation)
			g.Expect(*dep.Spec.Replicas).To(Equal(int32(2)), "trial %d", i)
			g.Expect(dep.Annotations[actions.AnnotationApplied]).To(Equal(string(p.UID)+"/"+p.Status.Apply.Attempt), "trial %d", i)
		},
	}
}

// drainPods is how many pods each drain trial's node runs.
const drainPods = 3

func drainTrial(t *testing.T, c client.Client, ns string, i int) crashTrial {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-node-%02d", ns, i)}}
	if err := c.Create(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), node) })
	uids := map[string]string{}
	for j := range drainPods {
		pod := drainPod(ns, fmt.Sprintf("db-%02d-%d", i, j), node.Name)
		if err := c.Create(t.Context(), pod); err != nil {
			t.Fatal(err)
		}
		uids[pod.Name] = string(pod.UID)
	}
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "drain-" + node.Name + "-"},
		Spec: tendv1.ProposalSpec{
			Action:   tendv1.ActionDrainNode,
			Target:   tendv1.TargetRef{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, ResourceVersion: node.ResourceVersion},
			Evidence: tendv1.Evidence{Summary: "node lost its disk"},
			Risk:     tendv1.RiskMedium,
			Proposer: tendv1.Proposer{Username: agentUser, Agent: "maintenance"},
		},
	}
	current := func() *corev1.Node {
		n := &corev1.Node{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(node), n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return crashTrial{
		proposal: p,
		approve:  true,
		written:  func() bool { return current().Annotations[actions.AnnotationApplied] != "" },
		check: func(g *WithT, p *tendv1.Proposal, i int) {
			n := current()
			g.Expect(n.Spec.Unschedulable).To(BeTrue(), "trial %d", i)
			g.Expect(n.Annotations[actions.AnnotationApplied]).To(Equal(string(p.UID)+"/"+p.Status.Apply.Attempt), "trial %d", i)
			g.Expect(p.Status.Apply.Steps).To(HaveLen(drainPods), "trial %d: steps %+v", i, p.Status.Apply.Steps)
			for _, s := range p.Status.Apply.Steps {
				g.Expect(s.State).To(Equal(tendv1.StepDone), "trial %d: step %+v", i, s)
				_, name, _ := strings.Cut(s.Object, "/")
				g.Expect(s.UID).To(Equal(uids[name]), "trial %d: step %+v names a pod it was not given", i, s)
			}
			// Each pod was started again elsewhere, once, and is still there.
			for name := range uids {
				g.Eventually(func(g Gomega) {
					pod := &corev1.Pod{}
					g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod)).To(Succeed())
					g.Expect(string(pod.UID)).NotTo(Equal(uids[name]))
					g.Expect(pod.Spec.NodeName).To(Equal(elsewhere))
				}).Should(Succeed(), "trial %d: pod %s", i, name)
			}
		},
	}
}

// elsewhere is the node replacements run on.
const elsewhere = "elsewhere"

// drainPod is a pod of a drain trial: no grace period, so an eviction
// removes it at once, with no kubelet to confirm.
func drainPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"crash-test": "drain"}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "db", Image: "registry.example.com/db:1"}},
		},
	}
}

// evictionCounter counts, per pod name, how many pods of that name were
// removed.
type evictionCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *evictionCounter) counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.n)
}

// replacePods stands in for a StatefulSet controller: it watches the drain
// trials' pods and, when one is removed, counts it and starts it again at
// once under its name on another node. The watch resumes where it left off
// when the API server ends it, so no removal is missed.
func replacePods(t *testing.T, c client.Client, ns string) *evictionCounter {
	t.Helper()
	cs, err := kubernetes.NewForConfig(controlPlane.cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.ListOptions{LabelSelector: "crash-test=drain"}
	list, err := cs.CoreV1().Pods(ns).List(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(t.Context(), list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = opts.LabelSelector
			return cs.CoreV1().Pods(ns).Watch(ctx, o)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ec := &evictionCounter{n: map[string]int{}}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				t.Errorf("the drain pods' watch failed: %v", apierrors.FromObject(ev.Object))
				return
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Deleted {
				continue
			}
			ec.mu.Lock()
			ec.n[pod.Name]++
			ec.mu.Unlock()
			again := drainPod(ns, pod.Name, elsewhere)
			if err := c.Create(context.Background(), again); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("failed to start pod %s again: %v", pod.Name, err)
			}
		}
	}()
	return ec
}

func controlPlaneScheme(t *testing.T) *k8sruntime.Scheme {
	t.Helper()
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeKubeconfig writes the shared control plane's admin credentials for a
// child process.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	kube(t)
	cfg := controlPlane.cfg
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
