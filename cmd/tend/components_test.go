package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tendops/tend/agents"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/components"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp/wire"
)

var built struct {
	once sync.Once
	exe  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.exe != "" {
		_ = os.RemoveAll(filepath.Dir(built.exe))
	}
	os.Exit(code)
}

// tendBinary builds the tend binary once for the package's tests that run
// it as a process of its own.
func tendBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "tend-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.exe = filepath.Join(dir, "tend")
		if out, err := exec.Command("go", "build", "-o", built.exe, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.exe
}

// componentNATS starts an embedded NATS server whose users are the given
// components, each with its documented permissions and an nkey whose seed
// is written to a file, and an administrator (admin, test-only) with every
// right. It returns the URL and the seed files by component.
func componentNATS(t *testing.T, cluster string, cs ...bus.Component) (string, map[bus.Component]string) {
	t.Helper()
	dir := t.TempDir()
	seeds := map[bus.Component]string{}
	var users []bus.EmbeddedNkeyUser
	for _, c := range cs {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		seeds[c] = filepath.Join(dir, string(c)+".nk")
		if err := os.WriteFile(seeds[c], seed, 0o600); err != nil {
			t.Fatal(err)
		}
		perms, err := bus.ComponentPermissions(c, cluster, "")
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, bus.EmbeddedNkeyUser{PublicKey: pub, Permissions: perms})
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir(), NkeyUsers: users,
		Users: []bus.EmbeddedUser{{Name: "admin", Password: "test-only"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.URL(), seeds
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// component is a server component running as a process of its own.
type component struct {
	cmd             *exec.Cmd
	out             *lockedBuffer
	health, metrics string
	done            chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startComponent(t *testing.T, args ...string) *component {
	t.Helper()
	c := &component{out: &lockedBuffer{}, health: freeAddr(t), metrics: freeAddr(t), done: make(chan error, 1)}
	if args[0] != "mcp" { // tend mcp serves health and metrics on --listen
		args = append(args, "--health-probe-bind-address", c.health, "--metrics-bind-address", c.metrics)
	}
	c.cmd = exec.Command(tendBinary(t), args...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// get returns the status and body of GET url, or 0 when nothing answers.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *component) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", c.cmd.Args[1], err, c.out)
		default:
		}
		if code, _ := get("http://" + c.health + "/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 2 minutes:\n%s", c.cmd.Args[1], c.out)
}

// waitHealthy waits until /healthz answers.
func (c *component) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			t.Fatalf("%s exited before it was healthy: %v\n%s", c.cmd.Args[1], err, c.out)
		default:
		}
		if code, _ := get("http://" + c.health + "/healthz"); code == http.StatusOK {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not healthy after 2 minutes:\n%s", c.cmd.Args[1], c.out)
}

// stop sends SIGTERM and requires a clean exit.
func (c *component) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", c.cmd.Args[1], err, c.out)
		}
	case <-time.After(45 * time.Second):
		t.Errorf("%s still running 45s after SIGTERM:\n%s", c.cmd.Args[1], c.out)
	}
}

// TestControllerAndSensorRunOnTheirOwn runs `tend controller`, `tend
// sensor`, `tend mcp` and `tend agent` as their Deployments do: processes of their own, each with its
// own account on the API server (the sensor's may only read what it
// reports on) and its own identity on NATS (nkeys with the documented
// permissions, read from files). Both become ready, serve metrics, hold
// their leader Lease, do their work (the controller compiles a
// GatePolicy; the sensor publishes what a Deployment's pods show; the agent
// opens its MCP session with its token file and consumes every partition),
// and stop cleanly on SIGTERM, releasing the Leases. The controller, told
// its pod, makes the pod the owner of its Lease.
func TestControllerAndSensorRunOnTheirOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and the tend binary")
	}
	env, admin := startAPIServer(t)
	ctx := t.Context()
	if err := localstack.Install(ctx, admin); err != nil {
		t.Fatal(err)
	}
	const cluster = "prod"
	url, seeds := componentNATS(t, cluster, bus.ComponentController, bus.ComponentSensor, bus.ComponentMCP, bus.ComponentAgent)
	dir := t.TempDir()
	auditKey := filepath.Join(dir, "audit.key")
	if _, err := bus.LoadOrCreateAuditKey(auditKey); err != nil {
		t.Fatal(err)
	}
	account := func(name string) string {
		return userKubeconfig(t, env, envtest.User{Name: "system:serviceaccount:" + localstack.SystemNamespace + ":" + name,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + localstack.SystemNamespace}})
	}
	kc, sensorKC, mcpKC := account(localstack.ControllerAccount), account(localstack.SensorAccount), account(localstack.MCPAccount)

	// Bad input first: each is refused before anything starts.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"controller", "--kubeconfig", kc, "--nats-url", url, "--nats-nkey", seeds[bus.ComponentController]}, "--audit-key is required"},
		{[]string{"controller", "--kubeconfig", kc, "--audit-key", auditKey}, "--nats-url is required"},
		{[]string{"sensor", "--kubeconfig", kc, "--nats-url", url, "--nats-nkey", filepath.Join(dir, "missing.nk")}, "--nats-nkey"},
		{[]string{"sensor", "--kubeconfig", kc, "--nats-url", url, "--nats-nkey", seeds[bus.ComponentSensor], "--nats-creds", seeds[bus.ComponentSensor]}, "use one of"},
	} {
		out, err := exec.Command(tendBinary(t), tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("tend %s: err %v, output %q; want a failure naming %q", strings.Join(tc.args[:1], " "), err, out, tc.want)
		}
	}

	// The controller runs the improvement runs too: they propose through
	// the MCP server (started further down) with its own account's token.
	mcpAddr := freeAddr(t)
	tokenOf := func(account string) string {
		tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
		if err := admin.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Namespace: localstack.SystemNamespace, Name: account}}, tr); err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	ctlToken := tokenOf(localstack.ControllerAccount)
	ctlTokenFile := filepath.Join(dir, "controller.token")
	if err := os.WriteFile(ctlTokenFile, []byte(ctlToken), 0o600); err != nil {
		t.Fatal(err)
	}
	// The controller runs as if in a pod, which then owns the Lease while
	// it leads (the garbage collector removes the Lease with its last pod).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.SystemNamespace, Name: "tend-controller-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "ghcr.io/tendops/tend:test"}}}}
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	ctl := startComponent(t, "controller", "--kubeconfig", kc, "--cluster", cluster, "--nats-url", url,
		"--nats-nkey", seeds[bus.ComponentController], "--audit-key", auditKey, "--pod-name", pod.Name, "--pod-uid", string(pod.UID),
		"--mcp-url", "http://"+mcpAddr+"/mcp", "--token-file", ctlTokenFile)
	ctl.waitReady(t)
	if !strings.Contains(ctl.out.String(), `"improvementRuns":true`) {
		t.Errorf("the controller does not run improvement runs with --mcp-url:\n%s", ctl.out)
	}
	sensor := startComponent(t, "sensor", "--kubeconfig", sensorKC, "--cluster", cluster, "--nats-url", url,
		"--nats-nkey", seeds[bus.ComponentSensor])
	sensor.waitReady(t)

	if code, body := get("http://" + ctl.health + "/healthz"); code != http.StatusOK {
		t.Errorf("controller /healthz = %d %s", code, body)
	}
	if code, body := get("http://" + ctl.metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, "tend_gate_kill_switch_engaged") {
		t.Errorf("controller /metrics = %d, want tend's gate metrics:\n%.2000s", code, body)
	}
	if code, body := get("http://" + sensor.metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
		t.Errorf("sensor /metrics = %d:\n%.2000s", code, body)
	}
	holder := func(name string) string {
		var l coordinationv1.Lease
		if err := admin.Get(ctx, types.NamespacedName{Namespace: localstack.SystemNamespace, Name: name}, &l); err != nil {
			return ""
		}
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}
	eventually(t, "both hold their Lease", func() bool {
		return holder(components.ControllerLeaseName) != "" && holder(components.SensorLeaseName) != ""
	})
	eventually(t, "the controller's pod owns its Lease", func() bool {
		var l coordinationv1.Lease
		if err := admin.Get(ctx, types.NamespacedName{Namespace: localstack.SystemNamespace, Name: components.ControllerLeaseName}, &l); err != nil {
			return false
		}
		return len(l.OwnerReferences) == 1 && l.OwnerReferences[0].Kind == "Pod" && l.OwnerReferences[0].Name == pod.Name && l.OwnerReferences[0].UID == pod.UID
	})

	// The controller compiles a policy.
	gp := &tendv1.GatePolicy{ObjectMeta: metav1.ObjectMeta{Name: "freeze"}, Spec: tendv1.GatePolicySpec{Rules: []tendv1.GateRule{{
		Name: "freeze", When: `proposal.namespace.name == "frozen"`, Outcome: tendv1.OutcomeDeny, Reason: "Frozen", Message: "frozen",
	}}}}
	if err := admin.Create(ctx, gp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the controller compiles the GatePolicy", func() bool {
		var got tendv1.GatePolicy
		return admin.Get(ctx, client.ObjectKeyFromObject(gp), &got) == nil && got.Status.ObservedGeneration == got.Generation
	})

	// The sensor publishes what it sees of a Deployment.
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.tend.local/web:1"}}}},
	}}
	if err := admin.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	adminAuth, err := bus.Auth{User: "admin", Password: "test-only"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := bus.Connect(ctx, url, "test-admin", adminAuth...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	eventually(t, "the sensor publishes telemetry about the Deployment", func() bool {
		s, err := js.Stream(ctx, bus.StreamTelemetry)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.TelemetryFilter(cluster)))
		if err != nil {
			return false
		}
		for subject := range info.State.Subjects {
			if strings.HasSuffix(subject, ".deployment.default.web") {
				return true
			}
		}
		return false
	})

	if t.Failed() {
		t.Logf("sensor output:\n%s", sensor.out)
	}
	// The MCP server and the agent: the agent proposes through the server
	// with its service account's token, from a file as a pod mounts it.
	agentToken := tokenOf(localstack.AgentAccount)
	tokenFile := filepath.Join(dir, "agent.token")
	if err := os.WriteFile(tokenFile, []byte(agentToken), 0o600); err != nil {
		t.Fatal(err)
	}
	// The agent starts first, as it may in a rollout: it waits for the
	// MCP server, alive but not ready, instead of exiting.
	agent := startComponent(t, "agent", "--mcp-url", "http://"+mcpAddr+"/mcp", "--token-file", tokenFile, "--cluster", cluster,
		"--nats-url", url, "--nats-nkey", seeds[bus.ComponentAgent], "--brain", "deterministic")
	agent.waitHealthy(t)
	eventually(t, "the agent says it waits for the MCP server", func() bool { return strings.Contains(agent.out.String(), "Waiting for the MCP server") })
	if code, body := get("http://" + agent.health + "/readyz"); code == http.StatusOK {
		t.Errorf("the agent is ready with no MCP server: %d %s", code, body)
	}
	mcpProfiles := freeAddr(t)
	mcpSrv := startComponent(t, "mcp", "--listen", mcpAddr, "--kubeconfig", mcpKC, "--cluster", cluster, "--nats-url", url,
		"--nats-nkey", seeds[bus.ComponentMCP], "--pprof-bind-address", mcpProfiles)
	mcpSrv.health = mcpAddr // tend mcp serves /healthz beside /mcp
	mcpSrv.waitHealthy(t)
	if code, body := get("http://" + mcpProfiles + "/debug/pprof/heap"); code != http.StatusOK || body == "" {
		t.Errorf("tend mcp's heap profile = %d, %d bytes", code, len(body))
	}
	if code, _ := get("http://" + mcpAddr + "/debug/pprof/heap"); code == http.StatusOK {
		t.Error("tend mcp serves its profiles beside /mcp")
	}
	agent.waitReady(t)
	eventually(t, "the agent consumes the telemetry, in one share", func() bool {
		_, err := js.Consumer(ctx, bus.StreamTelemetry, bus.ShareDurable("agent-maintenance", 0, 1))
		return err == nil
	})
	if code, body := get("http://" + agent.metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, "tend_bus_") {
		t.Errorf("agent /metrics = %d:\n%.2000s", code, body)
	}
	// The server relays: the agent's account, which may only propose, is
	// offered the propose tools, and its proposal names the server as via.
	tools, err := agents.DialTools(ctx, "http://"+mcpAddr+"/mcp", "components-test", func(context.Context) (string, error) { return agentToken, nil })
	if err != nil {
		t.Fatal(err)
	}
	res, err := tools.ProposeRollback(ctx, wire.ProposeRollbackArgs{Namespace: "default", Name: "web", Common: wire.Common{Summary: "the relay test's rollback"}})
	_ = tools.Close()
	if err != nil {
		t.Fatalf("the agent's account cannot propose through tend mcp --listen: %v", err)
	}
	relayed := &tendv1.Proposal{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: res.Namespace, Name: res.Name}, relayed); err != nil {
		t.Fatal(err)
	}
	if want := "system:serviceaccount:" + localstack.SystemNamespace + ":"; relayed.Spec.Proposer.Username != want+localstack.AgentAccount || relayed.Spec.Proposer.Via != want+localstack.MCPAccount {
		t.Errorf("the relayed proposal's proposer = %+v, want the agent's account via the MCP server's", relayed.Spec.Proposer)
	}
	// The controller's account may propose what improvement runs change,
	// and nothing else.
	ctlTools, err := agents.DialTools(ctx, "http://"+mcpAddr+"/mcp", "components-test", func(context.Context) (string, error) { return ctlToken, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ctlTools.Close() }()
	if _, err := ctlTools.Propose(ctx, wire.ToolProposeScaleWorkload, &wire.ScaleWorkloadArgs{WorkloadArgs: wire.WorkloadArgs{Namespace: "default", Name: "web"},
		Replicas: ptr.To[int32](2), Common: wire.Common{Summary: "an improvement run's change"}}); err != nil {
		t.Errorf("the controller's account cannot propose an improvement run's change: %v", err)
	}
	if _, err := ctlTools.ProposeRollback(ctx, wire.ProposeRollbackArgs{Namespace: "default", Name: "web", Common: wire.Common{Summary: "not an improvement"}}); err == nil {
		t.Errorf("the controller's account may propose a rollback, which no improvement run makes")
	}
	agent.stop(t)
	mcpSrv.stop(t)

	// Its own account may read every kind it reports on.
	if strings.Contains(sensor.out.String(), "Not observing a kind") {
		t.Errorf("the sensor's account cannot read a kind it reports on:\n%s", sensor.out)
	}
	ctl.stop(t)
	sensor.stop(t)
	if h := holder(components.ControllerLeaseName); h != "" {
		t.Errorf("the controller's Lease is still held by %q after it stopped", h)
	}
	if h := holder(components.SensorLeaseName); h != "" {
		t.Errorf("the sensor's Lease is still held by %q after it stopped", h)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestComponentsWaitForNATS: a component started before its NATS server
// waits for it, saying so, and runs once it answers; one whose
// credentials the server refuses exits with the reason.
func TestComponentsWaitForNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server, NATS and the tend binary")
	}
	env, admin := startAPIServer(t)
	if err := localstack.Install(t.Context(), admin); err != nil {
		t.Fatal(err)
	}
	kc := userKubeconfig(t, env, envtest.User{Name: "system:serviceaccount:" + localstack.SystemNamespace + ":" + localstack.SensorAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + localstack.SystemNamespace}})

	// Refused credentials: an error at once, not a wait.
	url, _ := componentNATS(t, "prod", bus.ComponentSensor)
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := stranger.Seed()
	seedFile := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tendBinary(t), "sensor", "--kubeconfig", kc, "--cluster", "prod", "--nats-url", url, "--nats-nkey", seedFile,
		"--health-probe-bind-address", "0", "--metrics-bind-address", "0").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "authorization") {
		t.Errorf("a sensor with credentials NATS refuses: err %v, output %s; want it to exit naming the authorization failure", err, out)
	}

	// No server yet: the sensor waits, alive, and runs once one answers.
	addr := freeAddr(t)
	_, portText, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	sensor := startComponent(t, "sensor", "--kubeconfig", kc, "--cluster", "prod", "--nats-url", "nats://"+addr)
	eventually(t, "the sensor says it waits for NATS", func() bool { return strings.Contains(sensor.out.String(), "Waiting for NATS") })
	select {
	case err := <-sensor.done:
		t.Fatalf("the sensor exited while NATS was not up: %v\n%s", err, sensor.out)
	default:
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: port, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	sensor.waitReady(t)
	sensor.stop(t)
}

// TestCollectSooner: a component collects garbage at componentGCPercent
// unless GOGC says otherwise.
func TestCollectSooner(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	gogc, had := os.LookupEnv("GOGC")
	t.Cleanup(func() {
		if had {
			_ = os.Setenv("GOGC", gogc)
		} else {
			_ = os.Unsetenv("GOGC")
		}
	})

	_ = os.Unsetenv("GOGC")
	collectSooner()
	if got := debug.SetGCPercent(100); got != componentGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, componentGCPercent)
	}
	_ = os.Setenv("GOGC", "100")
	collectSooner()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100: GC percent %d, want GOGC's 100", got)
	}
}

// TestServeProbesProfiles: --pprof-bind-address serves Go's profiles on
// their own address, and nothing serves them when it is "0".
func TestServeProbesProfiles(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	health, pprofAddr := free(), free()
	var ready atomic.Bool
	stop, err := serveProbes(serveFlags{healthAddr: health, metricsAddr: "0", pprofAddr: pprofAddr}, prometheus.NewRegistry(), &ready)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Errorf("heap profile: HTTP %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, err = http.Get("http://" + health + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the health address serves profiles: HTTP %d", resp.StatusCode)
	}
}
