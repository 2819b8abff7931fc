package controllers_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tendops/tend/api/crds"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

// auditCluster names the cluster in every audit record the tests write.
const auditCluster = "envtest"

// The control plane (etcd and kube-apiserver from bin/, built by `make
// tools`) is shared by every test of the package and started by the first
// test that needs it; each test works in namespaces of its own and runs its
// own manager, gate and NATS server against it.
var controlPlane struct {
	once   sync.Once
	env    *envtest.Environment
	cfg    *rest.Config
	scheme *k8sruntime.Scheme
	client client.Client
	err    error
}

func TestMain(m *testing.M) {
	// The managers log through their own per-test loggers; this only keeps
	// controller-runtime from complaining about an unset global logger.
	logf.SetLogger(logr.Discard())
	code := m.Run()
	if controlPlane.env != nil {
		if err := controlPlane.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to stop the envtest control plane: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// binDir is the repository's bin/ directory, where `make tools` puts etcd and
// kube-apiserver.
func binDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the test source file")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", "bin"))
}

// kube returns a client with full rights on the shared control plane,
// starting it on first use.
func kube(t *testing.T) client.Client {
	t.Helper()
	controlPlane.once.Do(func() { controlPlane.err = startControlPlane() })
	if controlPlane.err != nil {
		t.Fatalf("envtest control plane: %v", controlPlane.err)
	}
	return controlPlane.client
}

func startControlPlane() error {
	bin, err := binDir()
	if err != nil {
		return err
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run make tools (%w)", b, bin, err)
		}
	}
	all, err := crds.All()
	if err != nil {
		return err
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := tendv1.AddToScheme(scheme); err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: all, Scheme: scheme},
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("failed to start kube-apiserver and etcd from %s: %w", bin, err)
	}
	controlPlane.env, controlPlane.cfg, controlPlane.scheme = env, cfg, scheme
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	controlPlane.client = c
	// The default policies live in the cluster, as `tend up` installs them,
	// so every GatePolicy reconcile loads them together with any test policy.
	bundle, err := policies.DefaultBundle()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range bundle {
		if err := c.Create(ctx, &bundle[i]); err != nil {
			return fmt.Errorf("failed to create GatePolicy %s: %w", bundle[i].Name, err)
		}
	}
	return nil
}

// harness is one test's view of its running tend controllers: a manager
// whose cache covers the test's namespaces runs the proposal, approval and
// GatePolicy reconcilers with a gate loaded with the default bundle and an
// audit log on a NATS server of the test's own.
type harness struct {
	Client   client.Client // the administrator's, uncached
	Audit    *bus.AuditLog
	AuditKey ed25519.PublicKey
	Gate     *policies.Gate
	// System is the test's stand-in for tend's namespace, holding the gate
	// state ConfigMap.
	System string
}

// startTend starts tend's proposal, approval and GatePolicy controllers for
// the given namespaces and stops them when the test ends.
func startTend(t *testing.T, opts controllers.ProposalOptions, namespaces ...string) *harness {
	t.Helper()
	js := startNATS(t)
	gate, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatalf("failed to create gate: %v", err)
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		t.Fatalf("failed to load the default bundle: %v", err)
	}
	for _, r := range gate.Load(bundle) {
		if !r.Valid {
			t.Fatalf("default policy %s does not compile: %v", r.Name, r.Err)
		}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	audit := bus.NewAuditLog(js, auditCluster).WithKey(key)
	opts.Cluster = auditCluster
	system := opts.SystemNamespace
	if system == "" {
		system = newNamespace(t, nil)
		opts.SystemNamespace = system
	}
	// As tend's install does: the gate state, switch released, and the audit
	// key's public half.
	if err := controllers.EnsureGateState(t.Context(), kube(t), system); err != nil {
		t.Fatal(err)
	}
	if err := controllers.PublishAuditKey(t.Context(), kube(t), system, key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	// As tend does at start: the persisted kill switch is in force before any
	// proposal is reconciled.
	cm := &corev1.ConfigMap{}
	if err := kube(t).Get(t.Context(), client.ObjectKey{Namespace: system, Name: controllers.GateStateName}, cm); err != nil {
		cm = nil
	}
	gate.SetKillSwitch(controllers.ParseGateState(cm).KillSwitch)
	namespaces = append(namespaces, system)
	startManager(t, namespaces, func(mgr ctrl.Manager) error {
		if err := (&controllers.GateStateReconciler{Client: mgr.GetClient(), Gate: gate, Namespace: system}).SetupWithManager(mgr); err != nil {
			return err
		}
		if err := (&controllers.ProposalReconciler{
			Client:   mgr.GetClient(),
			Gate:     gate,
			Audit:    audit,
			Recorder: mgr.GetEventRecorder("tend-proposal-controller"),
			Options:  opts,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		if err := (&controllers.ApprovalReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-approval-controller")}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&controllers.GatePolicyReconciler{Client: mgr.GetClient(), Gate: gate}).SetupWithManager(mgr)
	})
	return &harness{Client: kube(t), Audit: audit, AuditKey: key.Public().(ed25519.PublicKey), Gate: gate, System: system}
}

// startNATS starts a NATS server with JetStream and tend's streams for the
// test and returns a JetStream client of it.
func startNATS(t *testing.T) jetstream.JetStream {
	t.Helper()
	nats, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("failed to start NATS: %v", err)
	}
	t.Cleanup(nats.Shutdown)
	nc, js, err := bus.Connect(t.Context(), nats.URL(), t.Name())
	if err != nil {
		t.Fatalf("failed to connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
		t.Fatalf("failed to create streams: %v", err)
	}
	return js
}

// startManager runs a manager with the controllers setup registers, its
// cache limited to namespaces (and cluster-scoped objects), until the test
// ends.
func startManager(t *testing.T, namespaces []string, setup func(ctrl.Manager) error) {
	t.Helper()
	startManagerTransforming(t, namespaces, nil, setup)
}

// startManagerTransforming is startManager with transform applied to every
// object its cache keeps, as a component's own manager does (the sensor's:
// controllers.SensorCacheTransform).
func startManagerTransforming(t *testing.T, namespaces []string, transform toolscache.TransformFunc, setup func(ctrl.Manager) error) {
	t.Helper()
	kube(t)
	cacheNamespaces := map[string]cache.Config{}
	for _, ns := range namespaces {
		cacheNamespaces[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(controlPlane.cfg, ctrl.Options{
		Scheme:                 controlPlane.scheme,
		Logger:                 testr.NewWithOptions(t, testr.Options{LogTimestamp: true}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: cacheNamespaces, DefaultTransform: transform},
		// Every test registers the same controllers in a manager of its own.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("failed to create manager: %v", err)
	}
	if err := setup(mgr); err != nil {
		t.Fatalf("failed to set up controllers: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with an error: %v", err)
		}
	})
	syncCtx, cancelSync := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("manager caches did not sync")
	}
}

// newNamespace creates a namespace with the given labels and deletes it when
// the test ends. (envtest runs no namespace controller, so what it holds
// stays in etcd; nothing watches it once the test's manager stopped.)
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	c := kube(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tend-test-", Labels: labels}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), ns); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// createGatePolicy creates a cluster-wide GatePolicy and deletes it when the
// test ends.
func createGatePolicy(t *testing.T, gp *tendv1.GatePolicy) {
	t.Helper()
	c := kube(t)
	if err := c.Create(t.Context(), gp); err != nil {
		t.Fatalf("failed to create GatePolicy %s: %v", gp.Name, err)
	}
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), gp); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to delete GatePolicy %s: %v", gp.Name, err)
		}
	})
}

// newG returns a Gomega whose Eventually waits long enough for a loaded
// 2-core machine.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	return g
}

// auditTrail returns the transitions the audit log holds for the object with
// uid, as "From→To", after checking the whole chain.
func auditTrail(g Gomega, ctx context.Context, log *bus.AuditLog, key ed25519.PublicKey, uid string) []string {
	recs, err := log.Records(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bus.VerifyChain(recs, key)).To(Succeed())
	var out []string
	for _, r := range recs {
		if r.Object.UID == uid {
			g.Expect(r.Object.Kind).To(Equal(bus.KindProposal))
			g.Expect(r.Cluster).To(Equal(auditCluster))
			out = append(out, r.From+"→"+r.To)
		}
	}
	return out
}
