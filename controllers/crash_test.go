package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
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
				// Earlier trials stay Verifying (the stable window is an hour).
				MaxApplyingPerNamespace: ptr.To[int32](1000),
				MaxApplyingPerCluster:   ptr.To[int32](1000),
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
	for _, obj := range []client.Object{&tendv1.Proposal{}, &tendv1.Approval{}, &appsv1.Deployment{}, &appsv1.ReplicaSet{}, &corev1.Pod{}, &corev1.Node{}, &corev1.ConfigMap{}, &corev1.Namespace{}} {
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
// every trial that the change was written to the Deployment exactly once.
func TestCrashDuringApplyNeverAppliesTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a controller process 50 times")
	}
	const trials = 50
	g := newG(t)
	c := kube(t)
	ns := newNamespace(t, nil)
	kc := writeKubeconfig(t)

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashKubeconfig+"="+kc, envCrashNamespace+"="+ns)
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
			_, _ = io.Copy(io.Discard, out)
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

	// Where the kills landed, judged from the state they left behind.
	landed := map[string]int{}
	for i := range trials {
		w := newFailingRollout(t, c, ns, fmt.Sprintf("web-%02d", i))
		before := w.Deployment()
		p := createProposal(t, c, rollbackProposal(before))

		// Kill somewhere in the first ~60ms of the proposal's life, where the
		// decision, the dry run, the Applying commit, the write and the
		// Verifying commit happen.
		time.Sleep(time.Duration(rand.IntN(60_000)) * time.Microsecond)
		kill(child)

		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		dep := w.Deployment()
		written := dep.Annotations[actions.AnnotationApplied] != ""
		switch {
		case p.Status.Phase == tendv1.PhaseApplying && written:
			landed["after the write, before recording it"]++
		case p.Status.Phase == tendv1.PhaseApplying:
			landed["after committing Applying, before the write"]++
		case p.Status.Phase == tendv1.PhaseVerifying || p.Status.Phase == tendv1.PhaseSucceeded:
			landed["after the apply was recorded"]++
		default:
			landed["before the apply started"]++
		}

		child = start()
		p = waitPhase(t, g, c, p, tendv1.PhaseVerifying)
		dep = w.Deployment()
		g.Expect(dep.Generation).To(Equal(before.Generation+1), "trial %d: the template was written %d times", i, dep.Generation-before.Generation)
		g.Expect(dep.Spec.Template).To(Equal(w.Template("v1")), "trial %d", i)
		g.Expect(dep.Annotations[actions.AnnotationApplied]).To(Equal(string(p.UID)+"/"+p.Status.Apply.Attempt), "trial %d", i)
	}
	t.Logf("%d trials, zero double applies; kills landed: %v", trials, landed)
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
