package localstack_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/components"
	"github.com/tendops/tend/internal/localstack"
)

// sensorPods is the number of pods BenchmarkSensorMemory observes.
const (
	sensorPods     = 10000
	sensorNodes    = 20
	sensorCreators = 16
)

// BenchmarkSensorMemory measures the memory of the sensor as `tend sensor`
// runs it (components.NewSensor, with its slimmed cache) with sensorPods
// pods on a kwok cluster: the heap in use (after a GC) that the running sensor adds
// to the process, once its informers synced and every pod's state was
// published, and the process's resident set size then. The process also
// runs the embedded nats-server the sensor publishes to; its share is in
// the RSS and, for what it holds of the stream, in the heap. It needs the
// control plane `make tools` builds (TEND_BIN_DIR, default bin/) and skips
// without it.
func BenchmarkSensorMemory(b *testing.B) {
	b.Run("pods="+strconv.Itoa(sensorPods), benchSensorMemory)
}

func benchSensorMemory(b *testing.B) {
	binDir := os.Getenv("TEND_BIN_DIR")
	if binDir == "" {
		binDir = filepath.Join("..", "..", "bin")
	}
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, tool := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwokctl"} {
		if _, err := os.Stat(filepath.Join(binDir, tool)); err != nil {
			b.Skipf("the kwok cluster's binaries are not in %s (run `make tools`): %v", binDir, err)
		}
	}
	ctx := b.Context()
	work := b.TempDir()
	cl, err := localstack.StartCluster(ctx, localstack.ClusterOptions{
		Name: "tend-sensor-bench", BinDir: binDir, WorkDir: work, Nodes: sensorNodes,
	})
	if errors.Is(err, localstack.ErrMissingBinary) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatalf("StartCluster: %v", err)
	}
	b.Cleanup(func() {
		if err := cl.Stop(context.Background()); err != nil {
			b.Errorf("stopping the cluster: %v", err)
		}
	})
	cfg, err := localstack.RESTConfig(cl.Kubeconfig())
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	scheme := clientgoscheme.Scheme
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	createPods(b, c)
	b.Logf("created %d pods on %d kwok nodes in %s", sensorPods, sensorNodes, time.Since(start).Round(time.Second))

	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, js, err := bus.Connect(ctx, srv.URL(), "sensor-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{}); err != nil {
		b.Fatal(err)
	}

	before := heapInUse()
	// The sensor as `tend sensor` runs it, with its own manager and cache.
	mgr, err := components.NewSensor(components.SensorOptions{
		Config: cfg, Scheme: scheme, SystemNamespace: "tend-system", Cluster: "bench", JS: js, SkipNameValidation: true,
		// Without a logger, controller-runtime prints a stack on first use.
		Logger: logr.Discard(),
	})
	if err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("manager: %v", err)
		}
	})
	start = time.Now()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("caches did not sync")
	}
	// Every pod published at least once.
	stream, err := js.Stream(ctx, bus.StreamTelemetry)
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(bus.TelemetryFilter("bench")))
		if err != nil {
			b.Fatal(err)
		}
		pods := 0
		for subject := range info.State.Subjects {
			if strings.Contains(bus.ObjectSubject(subject), "."+string(bus.KindPod)+".") {
				pods++
			}
		}
		if pods >= sensorPods {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%d of %d pods published after 5 minutes", pods, sensorPods)
		}
		time.Sleep(time.Second)
	}
	b.Logf("informers synced and every pod published in %s", time.Since(start).Round(time.Second))

	var heap, rss uint64
	for b.Loop() {
		h := heapInUse()
		heap = h - min(before, h)
		rss = residentSet(b)
	}
	b.ReportMetric(float64(heap)/(1<<20), "sensor_heap_inuse-MiB")
	b.ReportMetric(float64(rss)/(1<<20), "process_rss-MiB")
}

// createPods creates sensorPods pods bound to the kwok nodes from
// sensorCreators goroutines.
func createPods(b *testing.B, c client.Client) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sensor-bench"}}
	if err := c.Create(b.Context(), ns); err != nil {
		b.Fatal(err)
	}
	// Pods need the namespace's default service account, which a controller
	// creates shortly after the namespace; creating it first avoids the race.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}
	if err := c.Create(b.Context(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	var nodes corev1.NodeList
	if err := c.List(b.Context(), &nodes); err != nil || len(nodes.Items) == 0 {
		b.Fatalf("listing the kwok nodes: %d, %v", len(nodes.Items), err)
	}
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Pointer[error]
	)
	for range sensorCreators {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= sensorPods || failed.Load() != nil {
					return
				}
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("pod-%05d", i),
						Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}},
					Spec: corev1.PodSpec{
						NodeName:    nodes.Items[i%len(nodes.Items)].Name,
						Containers:  []corev1.Container{{Name: "app", Image: "registry.example.com/app:1.0"}},
						Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					},
				}
				if err := c.Create(b.Context(), pod); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("creating pods: %v", *err)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// residentSet is the process's resident set size, from /proc/self/status.
func residentSet(b *testing.B) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
