package scalebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/localstack"
)

// The environment variable that makes the test binary the reference
// informer process, with the kubeconfig as its value.
const informerEnv = "TEND_SCALEBENCH_INFORMER"

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	if kc := os.Getenv(informerEnv); kc != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := runInformer(ctx, kc); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if built.exe != "" {
		_ = os.RemoveAll(filepath.Dir(built.exe))
	}
	os.Exit(code)
}

const (
	cluster = "scale"
	// Each namespace holds perNamespace Deployments, as a team's would.
	perNamespace = 10
	// appLabel marks the benchmark's workloads and their pods.
	appLabel       = "tend.dev/scale-app"
	podsPerNode    = 10
	replicas       = 10
	appImage       = "registry.tend.local/scale/app:1"
	crashImage     = "registry.tend.local/scale/app:2-crash"
	stormSize      = 50
	churnPerMinute = 0.01
	restWindow     = 30 * time.Second
	churnWindow    = 2 * time.Minute
)

// scaleFaults makes the crash image's containers crash-loop.
var scaleFaults = []localstack.Fault{{
	Name: "scale-crash", When: `.image == "` + crashImage + `"`, Reason: "Error", ExitCode: 1,
}}

// BenchmarkScale runs the scale benchmark at each size of TEND_SCALE_NODES
// (default 100,300,1000 nodes), once each: see the package documentation.
func BenchmarkScale(b *testing.B) {
	sizes := []int{100, 300, 1000}
	if v := os.Getenv("TEND_SCALE_NODES"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				b.Fatalf("TEND_SCALE_NODES: %q is not a node count", s)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				runScale(b, n)
			}
		})
	}
}

// component is a process the benchmark measures.
type component struct {
	name string
	cmd  *exec.Cmd
	out  *strings.Builder
	mu   sync.Mutex
}

func (c *component) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

type syncWriter struct{ c *component }

func (w syncWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.out.Write(p)
}

func start(b *testing.B, name string, cmd *exec.Cmd) *component {
	b.Helper()
	c := &component{name: name, cmd: cmd, out: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = syncWriter{c}, syncWriter{c}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", name, err)
	}
	b.Cleanup(func() {
		// TEND_SCALE_LOGS names a directory for each component's whole
		// output, to debug a run.
		if dir := os.Getenv("TEND_SCALE_LOGS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, name+".log"), []byte(c.output()), 0o644)
		}
		if b.Failed() {
			out := c.output()
			if len(out) > 4000 {
				out = "…" + out[len(out)-4000:]
			}
			b.Logf("%s's output:\n%s", name, out)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return c
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(b *testing.B, what string, timeout time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func runScale(b *testing.B, nodes int) {
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, _ = filepath.Abs(bin)
	ctx := b.Context()
	work := b.TempDir()
	began := time.Now()
	cl, err := localstack.StartCluster(ctx, localstack.ClusterOptions{
		Name: fmt.Sprintf("tend-scale-%d", nodes), BinDir: bin, WorkDir: work, Nodes: nodes, Faults: scaleFaults,
		ControlPlaneQPS: 400,
		Progress:        func(f string, a ...any) { b.Logf(f, a...) },
	})
	if errors.Is(err, localstack.ErrMissingBinary) {
		b.Fatalf("the scale benchmark needs the control plane `make tools` builds: %v", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop(context.Background()) })
	cfg, err := localstack.RESTConfig(cl.Kubeconfig())
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	admin, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	if err := localstack.Install(ctx, admin); err != nil {
		b.Fatal(err)
	}
	deployments := nodes * podsPerNode / replicas
	createWorkloads(b, admin, deployments)
	waitFor(b, "every pod runs", 15*time.Minute, func() bool { return runningPods(b, admin) >= deployments*replicas })
	b.Logf("%d nodes, %d pods over %d Deployments running after %s", nodes, deployments*replicas, deployments, time.Since(began).Round(time.Second))

	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, js, err := bus.Connect(ctx, srv.URL(), "scale-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{}); err != nil {
		b.Fatal(err)
	}
	tend := buildTend(b)
	auditKey := filepath.Join(work, "audit.key")
	if _, err := bus.LoadOrCreateAuditKey(auditKey); err != nil {
		b.Fatal(err)
	}
	health := map[string]string{"sensor": freeAddr(b), "controller": freeAddr(b), "agent": freeAddr(b)}
	mcpAddr := freeAddr(b)
	// Each component acts as its own service account, as in a cluster.
	common := func(account string) []string {
		return []string{"--kubeconfig", accountKubeconfig(b, cl.Kubeconfig(), account), "--nats-url", srv.URL(), "--cluster", cluster}
	}
	leader := []string{"--leader-elect=false", "--metrics-bind-address", "0"}
	// TEND_SCALE_PROFILES names a directory for the heap profiles and
	// memory maps of tend's processes, at rest and after the storm, to see
	// where their memory goes.
	profileDir := os.Getenv("TEND_SCALE_PROFILES")
	pprofAddr := map[string]string{}
	profiled := func(name string) []string {
		if profileDir == "" {
			return nil
		}
		pprofAddr[name] = freeAddr(b)
		return []string{"--pprof-bind-address", pprofAddr[name]}
	}
	sensor := start(b, "sensor", exec.Command(tend, slices.Concat([]string{"sensor", "--health-probe-bind-address", health["sensor"]}, common(localstack.SensorAccount), leader, profiled("sensor"))...))
	controller := start(b, "controller", exec.Command(tend, slices.Concat([]string{"controller", "--health-probe-bind-address", health["controller"], "--audit-key", auditKey}, common(localstack.ControllerAccount), leader, profiled("controller"))...))
	mcpSrv := start(b, "mcp", exec.Command(tend, slices.Concat([]string{"mcp", "--listen", mcpAddr}, common(localstack.MCPAccount), profiled("mcp"))...))
	agent := start(b, "agent", exec.Command(tend, slices.Concat([]string{"agent", "--mcp-url", "http://" + mcpAddr + "/mcp", "--token-file", agentToken(b, admin, work),
		"--nats-url", srv.URL(), "--cluster", cluster, "--brain", "deterministic", "--health-probe-bind-address", health["agent"], "--metrics-bind-address", "0"}, profiled("agent"))...))
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	informerCmd := exec.Command(self)
	informerCmd.Env = append(os.Environ(), informerEnv+"="+cl.Kubeconfig())
	informer := start(b, "informer", informerCmd)
	procs := []*component{sensor, controller, mcpSrv, agent, informer}
	health["mcp"] = mcpAddr // tend mcp serves /healthz beside /mcp
	for name, addr := range health {
		path := "/readyz"
		if name == "mcp" {
			path = "/healthz"
		}
		waitFor(b, name+" is ready", 5*time.Minute, func() bool {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
	waitFor(b, "the informer synced", 5*time.Minute, func() bool { return strings.Contains(informer.output(), "synced") })
	// The sensor has published the cluster once it goes quiet.
	waitQuiet(b, js)
	b.Logf("components ready and the first telemetry published after %s", time.Since(began).Round(time.Second))

	rest := measure(b, procs, restWindow)
	report(b, rest, "rest")
	dumpProfiles(b, profileDir, "rest", pprofAddr, procs)

	// Churn: 1% of the pods replaced per minute, from now to the end.
	churnCtx, stopChurn := context.WithCancel(ctx)
	churnDone := make(chan struct{})
	go func() { defer close(churnDone); churn(churnCtx, admin, deployments*replicas) }()

	// The storm: stormSize Deployments broken at once, then one.
	watch := watchCrashes(b, js)
	watch.watchAPI(b, cfg)
	props := watchProposals(b, cfg)
	props.watchFindings(b, js)
	broken := make([]string, 0, stormSize+1)
	for i := range min(stormSize, deployments-1) {
		broken = append(broken, appName(i))
	}
	stormStart := time.Now()
	var stormUsage map[string]usage
	var stormWG sync.WaitGroup
	stormWG.Go(func() { stormUsage = measurePeak(b, procs, churnWindow) })
	breakAll(b, admin, broken, watch)
	latencies := watch.wait(b, broken, 5*time.Minute)
	answered := props.waitActed(b, watch.brokenTime, broken, 5*time.Minute)
	b.Logf("storm of %d faults detected and answered in %s", len(broken), time.Since(stormStart).Round(time.Second))
	one := appName(deployments - 1)
	breakAll(b, admin, []string{one}, watch)
	single := watch.wait(b, []string{one}, 2*time.Minute)
	answeredOne := props.waitActed(b, watch.brokenTime, []string{one}, 2*time.Minute)
	props.waitDecided(b, 5*time.Minute)
	stormWG.Wait()
	stopChurn()
	<-churnDone
	report(b, stormUsage, "storm")
	dumpProfiles(b, profileDir, "storm", pprofAddr, procs)

	figures := props.figures()
	b.Logf("storm: %s", figures)
	if len(figures.appliedTwice) > 0 {
		b.Errorf("more than one proposal was applied to %s", strings.Join(figures.appliedTwice, ", "))
	}
	brokenSet := map[string]bool{one: true}
	for _, n := range broken {
		brokenSet[n] = true
	}
	falsePositives := 0
	for _, t := range props.snapshot() {
		if !brokenSet[t.target] {
			falsePositives++
		}
	}
	var answers []time.Duration
	proposedFor := 0
	for _, a := range answered {
		answers = append(answers, a.after)
		if a.proposed {
			proposedFor++
		}
	}
	slices.Sort(answers)
	b.ReportMetric(percentile(answers, 0.50).Seconds(), "answer_storm_p50-s")
	b.ReportMetric(percentile(answers, 0.99).Seconds(), "answer_storm_p99-s")
	b.ReportMetric(answeredOne[0].after.Seconds(), "answer_single-s")
	b.ReportMetric(float64(proposedFor), "storm_proposed_for-count")
	b.ReportMetric(float64(len(answered)-proposedFor), "storm_escalated-count")
	b.ReportMetric(figures.decisionsPerSecond, "gate_decisions-per-s")
	b.ReportMetric(float64(figures.backlogPeak), "proposal_backlog_peak-count")
	b.ReportMetric(float64(figures.proposals), "proposals-count")
	b.ReportMetric(float64(figures.applied), "proposals_applied-count")
	b.ReportMetric(float64(figures.held), "proposals_held-count")
	b.ReportMetric(float64(figures.denied), "proposals_denied-count")
	b.ReportMetric(float64(len(figures.appliedTwice)), "applied_twice-count")
	b.ReportMetric(float64(falsePositives), "proposals_not_for_a_fault-count")

	for _, part := range []struct {
		name string
		of   func(detection) time.Duration
	}{
		{"detect", func(d detection) time.Duration { return d.total }},
		{"detect_cluster", func(d detection) time.Duration { return d.api }},
		{"detect_sensor", func(d detection) time.Duration { return d.sensor }},
	} {
		ds := make([]time.Duration, len(latencies))
		for i, d := range latencies {
			ds[i] = part.of(d)
		}
		slices.Sort(ds)
		b.ReportMetric(percentile(ds, 0.50).Seconds(), part.name+"_storm_p50-s")
		b.ReportMetric(percentile(ds, 0.99).Seconds(), part.name+"_storm_p99-s")
		b.ReportMetric(part.of(single[0]).Seconds(), part.name+"_single-s")
	}
	b.ReportMetric(float64(rest["sensor"].RSSBytes)/float64(rest["informer"].RSSBytes), "sensor_to_informer_rss-ratio")
	b.ReportMetric(float64(deployments*replicas), "pods-count")
}

// measure samples the processes over window: RSS at the end, CPU cores used
// on average.
func measure(b *testing.B, procs []*component, window time.Duration) map[string]usage {
	b.Helper()
	before := map[string]usage{}
	for _, p := range procs {
		u, err := readUsage(p.cmd.Process.Pid)
		if err != nil {
			b.Fatalf("%s: %v\n%s", p.name, err, p.output())
		}
		before[p.name] = u
	}
	time.Sleep(window)
	out := map[string]usage{}
	for _, p := range procs {
		u, err := readUsage(p.cmd.Process.Pid)
		if err != nil {
			b.Fatalf("%s: %v\n%s", p.name, err, p.output())
		}
		u.CPUSeconds = (u.CPUSeconds - before[p.name].CPUSeconds) / window.Seconds()
		out[p.name] = u
	}
	return out
}

// measurePeak is measure with the peak RSS over the window.
func measurePeak(b *testing.B, procs []*component, window time.Duration) map[string]usage {
	b.Helper()
	before := map[string]usage{}
	peak := map[string]usage{}
	for _, p := range procs {
		u, _ := readUsage(p.cmd.Process.Pid)
		before[p.name] = u
	}
	end := time.Now().Add(window)
	var last map[string]usage
	for time.Now().Before(end) {
		last = map[string]usage{}
		for _, p := range procs {
			u, err := readUsage(p.cmd.Process.Pid)
			if err != nil {
				continue
			}
			last[p.name] = u
			if u.RSSBytes > peak[p.name].RSSBytes {
				peak[p.name] = u
			}
		}
		time.Sleep(time.Second)
	}
	out := map[string]usage{}
	for name, u := range last {
		p := peak[name]
		p.CPUSeconds = (u.CPUSeconds - before[name].CPUSeconds) / window.Seconds()
		out[name] = p
	}
	return out
}

// dumpProfiles writes, into dir, each profiled process's heap profile and
// memory map summary (smaps_rollup), named for it and phase. Nothing
// happens when dir is "".
func dumpProfiles(b *testing.B, dir, phase string, addrs map[string]string, procs []*component) {
	b.Helper()
	if dir == "" {
		return
	}
	for _, p := range procs {
		addr, ok := addrs[p.name]
		if !ok {
			continue
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
		if err != nil {
			b.Errorf("%s's heap profile: %v", p.name, err)
			continue
		}
		heap, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Errorf("%s's heap profile: %v (HTTP %d)", p.name, err, resp.StatusCode)
			continue
		}
		smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.cmd.Process.Pid))
		if err != nil {
			b.Errorf("%s's memory map: %v", p.name, err)
		}
		base := filepath.Join(dir, p.name+"-"+phase)
		if err := errors.Join(os.WriteFile(base+".heap", heap, 0o644), os.WriteFile(base+".smaps", smaps, 0o644)); err != nil {
			b.Error(err)
		}
	}
	b.Logf("heap profiles and memory maps (%s) written to %s", phase, dir)
}

func report(b *testing.B, us map[string]usage, phase string) {
	var tendRSS, coreRSS, corePSS int64
	for name, u := range us {
		b.ReportMetric(float64(u.PSSBytes)/(1<<20), fmt.Sprintf("%s_pss_%s-MiB", name, phase))
		if name == "sensor" || name == "controller" || name == "agent" {
			coreRSS += u.RSSBytes
			corePSS += u.PSSBytes
		}
		b.ReportMetric(float64(u.RSSBytes)/(1<<20), fmt.Sprintf("%s_rss_%s-MiB", name, phase))
		b.ReportMetric(float64(u.AnonBytes)/(1<<20), fmt.Sprintf("%s_rss_anon_%s-MiB", name, phase))
		b.ReportMetric(float64(u.FileBytes)/(1<<20), fmt.Sprintf("%s_rss_file_%s-MiB", name, phase))
		b.ReportMetric(u.CPUSeconds, fmt.Sprintf("%s_cpu_%s-cores", name, phase))
		if name != "informer" {
			tendRSS += u.RSSBytes
		}
	}
	b.ReportMetric(float64(tendRSS)/(1<<20), fmt.Sprintf("tend_rss_%s-MiB", phase))
	// The sensor, controller and agent together: the sum of their resident
	// sets counts the binary's pages three times, the sum of their
	// proportional sets once (shared with tend mcp, which maps it too).
	b.ReportMetric(float64(coreRSS)/(1<<20), fmt.Sprintf("core_rss_%s-MiB", phase))
	b.ReportMetric(float64(corePSS)/(1<<20), fmt.Sprintf("core_pss_%s-MiB", phase))
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func appName(i int) string { return fmt.Sprintf("app-%04d", i) }

// namespaceOf is the namespace of Deployment i.
func namespaceOf(i int) string { return fmt.Sprintf("scale-%03d", i/perNamespace) }

// appNamespace is the namespace of the Deployment named name.
func appNamespace(name string) string {
	i, _ := strconv.Atoi(strings.TrimPrefix(name, "app-"))
	return namespaceOf(i)
}

func createWorkloads(b *testing.B, c client.Client, n int) {
	b.Helper()
	ctx := b.Context()
	for i := 0; i < n; i += perNamespace {
		ns := namespaceOf(i)
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				labels := map[string]string{"app": appName(i), appLabel: "true"}
				d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespaceOf(i), Name: appName(i), Labels: labels},
					Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
						Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
							Containers:  []corev1.Container{{Name: "app", Image: appImage}},
							Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
						}}}}
				if err := c.Create(ctx, d); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

func runningPods(b *testing.B, c client.Client) int {
	var list corev1.PodList
	if err := c.List(b.Context(), &list, client.HasLabels{appLabel}); err != nil {
		return 0
	}
	n := 0
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

// waitQuiet waits until the TELEMETRY stream stops growing for 5 seconds.
func waitQuiet(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	var last uint64
	quietSince := time.Now()
	waitFor(b, "the sensor's first publish of the cluster", 10*time.Minute, func() bool {
		s, err := js.Stream(b.Context(), bus.StreamTelemetry)
		if err != nil {
			return false
		}
		info, err := s.Info(b.Context())
		if err != nil {
			return false
		}
		if info.State.Msgs != last || last == 0 {
			last, quietSince = info.State.Msgs, time.Now()
			return false
		}
		return time.Since(quietSince) > 5*time.Second
	})
}

// churn deletes a share of the pods every minute, spread over the minute;
// their ReplicaSets replace them.
func churn(ctx context.Context, c client.Client, pods int) {
	perMinute := max(1, int(float64(pods)*churnPerMinute))
	tick := time.NewTicker(time.Minute / time.Duration(perMinute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var list corev1.PodList
		if err := c.List(ctx, &list, client.HasLabels{appLabel}, client.Limit(50)); err != nil || len(list.Items) == 0 {
			continue
		}
		p := list.Items[time.Now().UnixNano()%int64(len(list.Items))]
		_ = c.Delete(ctx, &p)
	}
}

// crashWatch records when telemetry first shows a crash-looping pod of
// each broken Deployment.
type crashWatch struct {
	mu       sync.Mutex
	brokenAt map[string]time.Time
	// seenAt is when the bus showed the Deployment's pod crash-looping,
	// apiSeenAt when the API server did (the bench's own watch).
	seenAt, apiSeenAt map[string]time.Time
	changed           chan struct{}
}

// deploymentOf is the Deployment of a pod owned by one of its ReplicaSets:
// the ReplicaSet's name without the template hash.
func deploymentOf(kind, name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 && kind == "ReplicaSet" {
		return name[:i]
	}
	return name
}

// watchAPI records when the API server first shows a crash-looping pod of
// each broken Deployment, with a watch of the bench's own.
func (w *crashWatch) watchAPI(b *testing.B, cfg *rest.Config) {
	b.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// An informer, not one watch: at 1,000 nodes a single watch of the
	// benchmark's pods was seen to end early without a word (the bus then
	// showed all 50 faults and the watch none), and an informer watches
	// again where it left off.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = appLabel
	}))
	pods := factory.Core().V1().Pods().Informer()
	seen := func(obj any) {
		now := time.Now()
		pod, ok := obj.(*corev1.Pod)
		if !ok || len(pod.OwnerReferences) == 0 {
			return
		}
		crashing := slices.ContainsFunc(pod.Status.ContainerStatuses, func(c corev1.ContainerStatus) bool {
			return c.Image == crashImage && (c.RestartCount > 0 || c.LastTerminationState.Terminated != nil ||
				c.State.Waiting != nil && c.State.Waiting.Reason == "CrashLoopBackOff")
		})
		if !crashing {
			return
		}
		dep := deploymentOf(pod.OwnerReferences[0].Kind, pod.OwnerReferences[0].Name)
		w.mu.Lock()
		if _, ok := w.brokenAt[dep]; ok {
			if _, seen := w.apiSeenAt[dep]; !seen {
				w.apiSeenAt[dep] = now
			}
		}
		w.mu.Unlock()
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	b.Cleanup(func() { close(stop) })
	factory.Start(stop)
	if !cache.WaitForCacheSync(b.Context().Done(), pods.HasSynced) {
		b.Fatal("the benchmark's own pod informer did not sync")
	}
}

func watchCrashes(b *testing.B, js jetstream.JetStream) *crashWatch {
	b.Helper()
	w := &crashWatch{brokenAt: map[string]time.Time{}, seenAt: map[string]time.Time{}, apiSeenAt: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	cons, err := js.OrderedConsumer(b.Context(), bus.StreamTelemetry, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.TelemetryFilter(cluster)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		e, err := bus.Decode(m.Data())
		if err != nil || e.Pod == nil || e.Pod.Workload == nil {
			return
		}
		crashing := slices.ContainsFunc(e.Pod.Containers, func(c bus.ContainerState) bool {
			return c.Image == crashImage && (c.RestartCount > 0 || c.LastExitCode != 0 || c.Reason == "CrashLoopBackOff")
		})
		if !crashing {
			return
		}
		dep := deploymentOf(e.Pod.Workload.Kind, e.Pod.Workload.Name)
		w.mu.Lock()
		if _, ok := w.brokenAt[dep]; ok {
			if _, seen := w.seenAt[dep]; !seen {
				w.seenAt[dep] = now
				select {
				case w.changed <- struct{}{}:
				default:
				}
			}
		}
		w.mu.Unlock()
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return w
}

// brokenTime is when name was broken.
func (w *crashWatch) brokenTime(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.brokenAt[name]
}

func breakAll(b *testing.B, c client.Client, names []string, w *crashWatch) {
	b.Helper()
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + crashImage + `"}]}}}}`)
	for _, name := range names {
		w.mu.Lock()
		w.brokenAt[name] = time.Now()
		w.mu.Unlock()
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace(name), Name: name}}
		if err := c.Patch(b.Context(), d, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
			b.Fatal(err)
		}
	}
}

// detection is how long one fault took to show.
type detection struct {
	// total is from the break to the bus; api from the break to the API
	// server (the cluster's own time: rollout, scheduling, the simulated
	// crash); sensor from the API server to the bus (tend's).
	total, api, sensor time.Duration
}

// wait returns, for each of names, how long from its break until the API
// server and the bus showed it crash-looping.
func (w *crashWatch) wait(b *testing.B, names []string, timeout time.Duration) []detection {
	b.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		var out []detection
		for _, n := range names {
			bus, ok := w.seenAt[n]
			api, apiOK := w.apiSeenAt[n]
			if ok && apiOK {
				// Watch delivery and bus delivery race: a bus time before
				// the API watch saw it counts as zero sensor time.
				out = append(out, detection{total: bus.Sub(w.brokenAt[n]), api: api.Sub(w.brokenAt[n]), sensor: max(0, bus.Sub(api))})
			}
		}
		w.mu.Unlock()
		if len(out) == len(names) {
			return out
		}
		select {
		case <-w.changed:
		case <-time.After(time.Second):
		case <-deadline:
			w.mu.Lock()
			var api, onBus int
			for _, n := range names {
				if _, ok := w.apiSeenAt[n]; ok {
					api++
				}
				if _, ok := w.seenAt[n]; ok {
					onBus++
				}
			}
			w.mu.Unlock()
			b.Fatalf("%d of %d faults reached the bus within %s (the API server showed %d crash-looping, the bus %d)", len(out), len(names), timeout, api, onBus)
		}
	}
}

var built struct {
	once sync.Once
	exe  string
	err  error
}

// buildTend builds the tend binary once per run.
func buildTend(b *testing.B) string {
	b.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "tend-scale-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.exe = filepath.Join(dir, "tend")
		cmd := exec.Command("go", "build", "-o", built.exe, "../../cmd/tend")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		b.Fatal(built.err)
	}
	return built.exe
}
