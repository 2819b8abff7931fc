package shim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// The shim benchmarks run the tend-shim binary as a node runs it, on a real
// containerd, connected with its own nkey to an embedded NATS server with
// authentication on, and compare it with crictl on the same containerd in
// the same run (make bench BENCH=shim):
//
//   - BenchmarkShim/action=<verb>: the latency of each action through the
//     shim: the controller's client signs the request and sends it over
//     NATS; the shim checks it, records the attempt in its ledger, acts
//     through CRI and replies.
//   - BenchmarkShimCrictl/action=<verb>, the reference: crictl doing the
//     same, as an operator would on the node: find the container by its
//     pod's labels, then stop it (restart-container); remove every image no
//     container uses (prune-images: `crictl rmi --prune`); inspect, log
//     tail and stats of the pod's container (collect-diagnostics).
//   - BenchmarkShimRest/pods=N: the shim process's resident memory and CPU
//     while idle on a node with N pods, after the actions ran (and its
//     peak), and the binary's size.
//
// All three share one containerd, NATS server and shim process (a fixture
// that TestMain stops).
const (
	benchPods = 20
	benchNode = "node-1"
	// restWindow is how long the idle shim's CPU is measured.
	restWindow = 30 * time.Second
)

func TestMain(m *testing.M) {
	// `make bench` pipes the output to benchjson, which stops reading at
	// the first failure: the fixture must still be cleaned up then.
	signal.Ignore(syscall.SIGPIPE)
	code := m.Run()
	if benchFix.f != nil {
		benchFix.f.tb.close()
	}
	os.Exit(code)
}

func BenchmarkShim(b *testing.B) {
	f := fixture(b)
	b.Run("action=restart-container", func(b *testing.B) {
		target := f.targets["restart-shim"]
		f.benchRestart(b, target, func(ctx context.Context) error {
			_, err := f.client.RestartContainer(ctx, benchNode, f.attempt(), bus.RestartContainerParams{
				Target: bus.ContainerTarget{Namespace: target.Namespace, Pod: target.Name, Container: "app"}, GracePeriodSeconds: 10,
			})
			return err
		})
	})
	b.Run("action=prune-images", func(b *testing.B) {
		f.benchPrune(b, func(ctx context.Context) error {
			_, err := f.client.PruneImages(ctx, benchNode, f.attempt(), bus.PruneImagesParams{All: true})
			return err
		})
	})
	b.Run("action=collect-diagnostics", func(b *testing.B) {
		target := f.targets["diag-shim"]
		f.benchDiagnostics(b, func(ctx context.Context) error {
			_, err := f.client.CollectDiagnostics(ctx, benchNode, f.attempt(), bus.CollectDiagnosticsParams{
				Namespace: target.Namespace, Pod: target.Name, TailLines: 200,
			})
			return err
		})
	})
}

func BenchmarkShimCrictl(b *testing.B) {
	f := fixture(b)
	b.Run("action=restart-container", func(b *testing.B) {
		target := f.targets["restart-crictl"]
		f.benchRestart(b, target, func(ctx context.Context) error {
			id, err := f.crictl(ctx, "ps", "-q", "--state", "running", "--label", critest.LabelPodUID+"="+target.UID, "--label", critest.LabelContainerName+"=app")
			if err != nil {
				return err
			}
			_, err = f.crictl(ctx, "stop", "--timeout", "10", strings.TrimSpace(id))
			return err
		})
	})
	b.Run("action=prune-images", func(b *testing.B) {
		f.benchPrune(b, func(ctx context.Context) error {
			_, err := f.crictl(ctx, "rmi", "--prune")
			return err
		})
	})
	b.Run("action=collect-diagnostics", func(b *testing.B) {
		target := f.targets["diag-crictl"]
		f.benchDiagnostics(b, func(ctx context.Context) error {
			out, err := f.crictl(ctx, "ps", "-q", "--label", critest.LabelPodUID+"="+target.UID)
			if err != nil {
				return err
			}
			for _, id := range strings.Fields(out) {
				for _, args := range [][]string{{"inspect", id}, {"logs", "--tail", "200", id}, {"stats", "-o", "json", id}} {
					if _, err := f.crictl(ctx, args...); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
}

func BenchmarkShimRest(b *testing.B) {
	f := fixture(b)
	b.Run("pods="+strconv.Itoa(benchPods), func(b *testing.B) {
		// Idle: the actions are over; let whatever they left settle.
		time.Sleep(5 * time.Second)
		cpu0, at0 := f.shimCPU(b), time.Now()
		time.Sleep(restWindow)
		cpu := f.shimCPU(b) - cpu0
		elapsed := time.Since(at0)
		var rss, peak uint64
		for b.Loop() {
			rss, peak = f.shimMemory(b)
		}
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(peak)/(1<<20), "rss_peak-MiB")
		b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu_at_rest-percent")
		b.ReportMetric(float64(f.binarySize)/(1<<20), "binary_size-MiB")
		b.Logf("idle %s: %s of CPU; RSS %.1f MiB, peak %.1f MiB; binary %.1f MiB", elapsed.Round(time.Second), cpu,
			float64(rss)/(1<<20), float64(peak)/(1<<20), float64(f.binarySize)/(1<<20))
	})
}

// benchRestart times op, which restarts target's container "app", while
// the kubelet (played by the fixture, untimed) starts the next container
// after each stop and removes the older ones.
func (f *benchFixture) benchRestart(b *testing.B, target *critest.Pod, op func(context.Context) error) {
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		cs := target.Containers("app")
		if cs[0].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			target.Restart("app")
			cs = target.Containers("app")
		}
		for _, old := range cs[1:] {
			f.ctrd.RemoveContainer(old.GetId())
		}
		running := cs[0].GetId()
		// Until then, its first process ignores SIGTERM.
		waitForLog(b, f.ctrd, running, "started")
		b.StartTimer()
		start := time.Now()
		if err := op(b.Context()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if st := f.ctrd.ContainerStatus(running); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			b.Fatalf("container %s is %s after the restart, want exited", running, st.GetState())
		}
		b.StartTimer()
	}
	reportLatency(b, lat)
}

// benchPrune times op, which removes the images no container uses, after
// importing three such images (untimed) before each run.
func (f *benchFixture) benchPrune(b *testing.B, op func(context.Context) error) {
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		var ids []string
		for i, archive := range f.pruneArchives {
			ids = append(ids, f.ctrd.ImportArchive(fmt.Sprintf("%s/prune-%d:1", critest.Registry, i), archive))
		}
		b.StartTimer()
		start := time.Now()
		if err := op(b.Context()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		left := f.ctrd.ImageIDs()
		for _, id := range ids {
			if slices.Contains(left, id) {
				b.Fatalf("image %s is still there after pruning", id)
			}
		}
		for _, id := range f.keptImages {
			if !slices.Contains(left, id) {
				b.Fatalf("image %s, which containers use, was pruned", id)
			}
		}
		b.StartTimer()
	}
	reportLatency(b, lat)
}

// benchDiagnostics times op, which collects the diagnostics of a pod.
func (f *benchFixture) benchDiagnostics(b *testing.B, op func(context.Context) error) {
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(b.Context()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "latency_p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*9)/10]), "latency_p90-ms")
}

// benchFixture is the containerd, NATS server and shim process the shim
// benchmarks share.
type benchFixture struct {
	tb            *fixtureTB
	ctrd          *critest.Containerd
	client        *shimclient.Client
	shim          *exec.Cmd
	shimLog       string
	binarySize    int64
	crictlPath    string
	pruneArchives []string
	keptImages    []string
	targets       map[string]*critest.Pod
	mu            sync.Mutex
	n             int
}

var benchFix struct {
	once sync.Once
	f    *benchFixture
	err  error
}

func fixture(b *testing.B) *benchFixture {
	b.Helper()
	benchFix.once.Do(func() { benchFix.f, benchFix.err = newBenchFixture() })
	if benchFix.err != nil {
		b.Fatal(benchFix.err)
	}
	return benchFix.f
}

func newBenchFixture() (f *benchFixture, err error) {
	tb := &fixtureTB{}
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fixtureError)
			if !ok {
				panic(r)
			}
			tb.close()
			f, err = nil, fmt.Errorf("%s\n%s", fe, tb.log.String())
		}
	}()
	f = &benchFixture{tb: tb}
	binDir := os.Getenv("TEND_BIN_DIR")
	if binDir == "" {
		binDir = filepath.Join("..", "bin")
	}
	f.crictlPath = filepath.Join(binDir, "crictl")
	if _, err := os.Stat(f.crictlPath); err != nil {
		return nil, fmt.Errorf("crictl, the reference, is not in %s: run hack/tools.sh crictl (make bench BENCH=shim does): %w", binDir, err)
	}
	dir, err := os.MkdirTemp("", "tend-shim-bench-")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	binary := filepath.Join(dir, "tend-shim")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", binary, "../cmd/tend-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("failed to build tend-shim: %w\n%s", err, out)
	}
	st, err := os.Stat(binary)
	if err != nil {
		return nil, err
	}
	f.binarySize = st.Size()

	f.ctrd = critest.Start(tb)
	web := f.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	chatty := f.ctrd.ImportImage(critest.Registry+"/chatty:1", critest.ImageOptions{Command: []string{"/bin/sh", "-c",
		`i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done`}})
	for i := range 3 {
		f.pruneArchives = append(f.pruneArchives, f.ctrd.BuildImage(fmt.Sprintf("%s/prune-%d:1", critest.Registry, i), critest.ImageOptions{ExtraBytes: 1 << 20}))
	}
	f.keptImages = []string{web, chatty, f.ctrd.ImageID(critest.PauseImage)}
	// crictl's prune keeps only the images of containers (this containerd
	// does not pin its sandbox image): a container of the sandbox image
	// keeps it for both.
	f.ctrd.RunPod("kube-system", "keeper").Start("pause", critest.PauseImage, 0)
	for i := range benchPods {
		f.ctrd.RunPod("idle", "web-"+strconv.Itoa(i)).Start("app", critest.Registry+"/web:1", 0)
	}
	// The benchmarks' targets, up front: their images are in use when
	// images are pruned.
	f.targets = map[string]*critest.Pod{}
	for name, image := range map[string]string{"restart-shim": "web", "restart-crictl": "web", "diag-shim": "chatty", "diag-crictl": "chatty"} {
		pod := f.ctrd.RunPod("bench", name)
		pod.Start("app", critest.Registry+"/"+image+":1", 0)
		f.targets[name] = pod
	}

	shimKey, _ := nkeys.CreateUser()
	shimPub, _ := shimKey.PublicKey()
	seed, _ := shimKey.Seed()
	seedFile := filepath.Join(dir, "shim.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		return nil, err
	}
	shimPerms, err := bus.ComponentPermissions(bus.ComponentShim, "bench", benchNode)
	if err != nil {
		return nil, err
	}
	ctrlPerms, err := bus.ComponentPermissions(bus.ComponentController, "bench", "")
	if err != nil {
		return nil, err
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{
		StoreDir:  filepath.Join(dir, "nats"),
		Users:     []bus.EmbeddedUser{{Name: "controller", Password: "pw", Permissions: ctrlPerms}},
		NkeyUsers: []bus.EmbeddedNkeyUser{{PublicKey: shimPub, Permissions: shimPerms}},
	})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(srv.Shutdown)
	auth, _ := bus.Auth{User: "controller", Password: "pw"}.Options()
	nc, js, err := bus.Connect(context.Background(), srv.URL(), "controller", auth...)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(nc.Close)
	if err := bus.EnsureStreams(context.Background(), js, bus.StreamsConfig{}); err != nil {
		return nil, err
	}
	signer, _ := nkeys.CreateUser()
	signerPub, _ := signer.PublicKey()
	if f.client, err = shimclient.New(shimclient.Options{Cluster: "bench", Conn: nc, JS: js, Signer: signer}); err != nil {
		return nil, err
	}

	f.shimLog = filepath.Join(dir, "tend-shim.log")
	logf, err := os.Create(f.shimLog)
	if err != nil {
		return nil, err
	}
	f.shim = exec.Command(binary, "--cluster", "bench", "--node", benchNode, "--nats-url", srv.URL(), "--nats-nkey-seed", seedFile,
		"--cri-endpoint", f.ctrd.Endpoint, "--controller-key", signerPub, "--pod-log-root", f.ctrd.LogRoot)
	f.shim.Stdout, f.shim.Stderr = logf, logf
	// Its own process group, and killed with the benchmark's process if
	// that dies before its cleanup.
	f.shim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	exited := make(chan struct{})
	if err := critest.StartLocked(f.shim, exited); err != nil {
		return nil, fmt.Errorf("failed to start tend-shim: %w", err)
	}
	tb.Cleanup(func() { _ = logf.Close() })
	tb.Cleanup(func() {
		_ = f.shim.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = f.shim.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := f.client.Status(context.Background(), benchNode, bus.StatusParams{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(f.shimLog)
			return nil, fmt.Errorf("tend-shim does not answer: %w\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f, nil
}

// attempt is a new attempt.
func (f *benchFixture) attempt() shimclient.Attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return shimclient.Attempt{ID: "bench/" + strconv.Itoa(f.n)}
}

// crictl runs crictl on the fixture's containerd.
func (f *benchFixture) crictl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, f.crictlPath, append([]string{"--runtime-endpoint", f.ctrd.Endpoint, "--image-endpoint", f.ctrd.Endpoint, "--timeout", "10s"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("crictl %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// shimCPU is the CPU time the shim process used so far.
func (f *benchFixture) shimCPU(b *testing.B) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", f.shim.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// shimMemory is the shim process's resident set and its peak.
func (f *benchFixture) shimMemory(b *testing.B) (rss, peak uint64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.shim.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak
}

// fixtureTB is the critest.TB of the shared fixture: it outlives any one
// benchmark, fails by panicking (newBenchFixture recovers), and runs its
// cleanups when TestMain closes it.
type fixtureTB struct {
	mu       sync.Mutex
	log      bytes.Buffer
	cleanups []func()
}

type fixtureError string

func (e fixtureError) Error() string { return string(e) }

var _ critest.TB = (*fixtureTB)(nil)

func (t *fixtureTB) Helper()                        {}
func (t *fixtureTB) Fatal(args ...any)              { panic(fixtureError(fmt.Sprint(args...))) }
func (t *fixtureTB) Fatalf(format string, a ...any) { panic(fixtureError(fmt.Sprintf(format, a...))) }
func (t *fixtureTB) Skip(args ...any)               { t.Fatal(args...) }
func (t *fixtureTB) Errorf(format string, a ...any) { t.Logf("error: "+format, a...) }
func (t *fixtureTB) Logf(format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(&t.log, format+"\n", a...)
}

func (t *fixtureTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// close runs the cleanups, the last registered first.
func (t *fixtureTB) close() {
	t.mu.Lock()
	cleanups := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintln(os.Stderr, "shim benchmark cleanup:", r)
				}
			}()
			cleanups[i]()
		}()
	}
}
