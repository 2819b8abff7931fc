package critest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// Registry is the registry host of the images a Containerd builds; the
// names are fully qualified, as CRI normalizes them.
const Registry = "registry.tend.local"

// PauseImage is the sandbox image.
const PauseImage = Registry + "/pause:1"

// callTimeout bounds the test's own CRI calls.
const callTimeout = 30 * time.Second

// TB is what critest needs of a test or benchmark; testing.TB has it. A
// benchmark fixture shared by several benchmarks provides its own.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
}

var _ TB = testing.TB(nil)

// Containerd is a containerd running for one test.
type Containerd struct {
	// Dir is its temporary root.
	Dir string
	// Socket is the path of its CRI socket, Endpoint the CRI endpoint.
	Socket, Endpoint string
	// LogRoot is where its pods' logs go, as /var/log/pods on a node.
	LogRoot string
	// PauseArchive is the sandbox image's archive, to import it again.
	PauseArchive string
	// Runtime and Images are the test's own CRI clients.
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService

	t      TB
	cmd    *exec.Cmd
	exited chan struct{}
	base   string // the OCI layout of the busybox base image
	n      int    // images built
}

const configTemplate = `version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{{.Dir}}/containerd.sock"
[ttrpc]
  address = "{{.Dir}}/containerd.sock.ttrpc"
[debug]
  address = "{{.Dir}}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.Pause}}"
  # This VM refuses a lower oom_score_adj than containerd's own.
  restrict_oom_score_adj = true
  # Measure snapshot usage (ImageFsInfo) every second.
  stats_collect_period = 1
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.Dir}}/cni/bin"
    conf_dir = "{{.Dir}}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`

// Start starts containerd in a temporary root, with the pause image
// imported, and stops it and removes everything when the test ends.
func Start(t TB) *Containerd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real containerd; not a short test")
	}
	Require(t)
	sweep(t)
	dir, err := os.MkdirTemp("", "tend-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		t: t, Dir: dir, Socket: filepath.Join(dir, "containerd.sock"),
		LogRoot: filepath.Join(dir, "pods"), exited: make(chan struct{}),
	}
	c.Endpoint = "unix://" + c.Socket
	t.Cleanup(c.stop)
	for _, d := range []string{"root", "state", "opt", "cni/bin", "cni/conf", "pods", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var cfg strings.Builder
	if err := template.Must(template.New("config").Parse(configTemplate)).Execute(&cfg, map[string]string{"Dir": dir, "Pause": PauseImage}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// Its own process group, so that a signal to the test's group does not
	// reach it; killed if the test's process dies before its cleanup
	// (a test timeout), though its runtime shims and containers then stay.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := StartLocked(c.cmd, c.exited); err != nil {
		t.Fatalf("failed to start containerd: %v", err)
	}
	c.connect()
	c.buildBase()
	c.PauseArchive = c.BuildImage(PauseImage, ImageOptions{Command: []string{"/bin/sleep", "2147483647"}})
	c.ImportArchive(PauseImage, c.PauseArchive)
	return c
}

// StartLocked starts cmd from a goroutine locked to its OS thread until cmd
// exits, then closes exited. The kernel sends a command's Pdeathsig when
// the thread that started it ends, and the Go runtime may end threads: this
// one lives exactly as long as cmd, or as the test's process.
func StartLocked(cmd *exec.Cmd, exited chan<- struct{}) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	return <-started
}

// Require fails the test unless the machine can run containerd: root, and
// the containerd, runc, umoci and ctr commands and /bin/busybox.
func Require(t TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a real containerd needs root (CI runs as root); run `go test -short` to leave these tests out")
	}
	for _, cmd := range []string{"containerd", "runc", "umoci", "ctr"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is missing: apt-get install -y containerd runc umoci busybox-static (.ci/run does)", cmd)
		}
	}
	// The images hold /bin/busybox and nothing else: it must be static.
	bb, err := elf.Open("/bin/busybox")
	if err != nil {
		t.Fatalf("/bin/busybox: %v: apt-get install -y busybox-static", err)
	}
	defer bb.Close()
	for _, p := range bb.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("/bin/busybox is dynamically linked: apt-get install -y busybox-static")
		}
	}
}

// connect waits for containerd's CRI socket and connects the test's clients.
func (c *Containerd) connect() {
	t := c.t
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.exited:
			t.Fatalf("containerd exited at start; its log:\n%s", c.Log())
		default:
		}
		if _, err := os.Stat(c.Socket); err == nil {
			rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(c.Endpoint).WithConnectionTimeout(callTimeout).WithTracerProvider(nil).Build(context.Background())
			if err == nil {
				img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(c.Endpoint).WithConnectionTimeout(callTimeout).WithTracerProvider(nil).Build(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				c.Runtime, c.Images = rt, img
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd's CRI did not come up in 30s; its log:\n%s", c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns containerd's log.
func (c *Containerd) Log() string {
	data, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(data)
}

// PID is containerd's process ID.
func (c *Containerd) PID() int { return c.cmd.Process.Pid }

// stop removes every pod, stops containerd and whatever it started, unmounts
// what is left and removes the temporary root.
func (c *Containerd) stop() {
	t := c.t
	if c.cmd != nil && c.cmd.Process != nil {
		// Continue it, in case a test stopped it (Pause) and failed.
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
	}
	if c.Runtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pods, err := c.Runtime.ListPodSandbox(ctx, nil)
		if err != nil {
			t.Logf("critest: failed to list pods at cleanup: %v", err)
		}
		for _, p := range pods {
			if err := c.Runtime.StopPodSandbox(ctx, p.Id); err != nil {
				t.Logf("critest: failed to stop pod %s: %v", p.Id, err)
			}
			if err := c.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
				t.Logf("critest: failed to remove pod %s: %v", p.Id, err)
			}
		}
		cancel()
		_ = c.Runtime.Close(context.Background())
		_ = c.Images.Close(context.Background())
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	removeRoot(t, c.Dir)
}

// removeRoot kills what is left of a containerd root: the runtime shims
// (containerd-shim-runc-v2), which outlive containerd, found by their
// command line, with their containers; then it unmounts and removes it.
func removeRoot(t TB, dir string) {
	for _, pid := range processesMentioning(dir + "/") {
		killTree(pid)
	}
	unmountUnder(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("critest: failed to remove %s: %v", dir, err)
	}
}

// sweep removes the roots that test processes which died before their
// cleanup (a test timeout) left behind: those whose containerd no longer
// runs.
func sweep(t TB) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "tend-ctrd-*"))
	for _, dir := range dirs {
		if len(processesMentioning(filepath.Join(dir, "config.toml"))) > 0 {
			continue // a live containerd, maybe another test's
		}
		if info, err := os.Stat(dir); err != nil || time.Since(info.ModTime()) < 2*time.Minute {
			continue // gone, or another test is starting its containerd there
		}
		t.Logf("critest: removing %s, left by a test that did not clean up", dir)
		removeRoot(t, dir)
	}
}

// killTree kills a process and its children.
func killTree(pid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: the fields after the command name.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			killTree(child)
		}
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// processesMentioning returns the processes whose command line mentions s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount under dir, deepest first.
func unmountUnder(t TB, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("critest: %v", err)
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("critest: failed to unmount %s: %v", m, err)
		}
	}
}

// ctx returns a context for one of the test's CRI calls.
func (c *Containerd) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// Pause stops containerd (SIGSTOP), so that its CRI socket accepts
// connections and answers nothing, until Resume.
func (c *Containerd) Pause() {
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
}

// Resume continues a paused containerd.
func (c *Containerd) Resume() {
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatal(err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// commandTimeout bounds the commands critest runs (umoci, ctr, tar).
const commandTimeout = 2 * time.Minute

func run(t TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ListContainers lists the runtime's containers.
func (c *Containerd) ListContainers() []*runtimeapi.Container {
	ctx, cancel := c.ctx()
	defer cancel()
	cs, err := c.Runtime.ListContainers(ctx, nil)
	if err != nil {
		c.t.Fatalf("failed to list containers: %v", err)
	}
	return cs
}

// ContainerStatus returns a container's status.
func (c *Containerd) ContainerStatus(id string) *runtimeapi.ContainerStatus {
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.Runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		c.t.Fatalf("failed to read container %s: %v", id, err)
	}
	return st.GetStatus()
}

// StopContainer stops a container, giving it 10 seconds.
func (c *Containerd) StopContainer(id string) {
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.Runtime.StopContainer(ctx, id, 10); err != nil {
		c.t.Fatalf("failed to stop container %s: %v", id, err)
	}
}

// RemoveContainer removes a stopped container, as the kubelet's garbage
// collection does.
func (c *Containerd) RemoveContainer(id string) {
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.Runtime.RemoveContainer(ctx, id); err != nil {
		c.t.Fatalf("failed to remove container %s: %v", id, err)
	}
}

// ImageIDs returns the IDs of the runtime's images.
func (c *Containerd) ImageIDs() []string {
	ctx, cancel := c.ctx()
	defer cancel()
	imgs, err := c.Images.ListImages(ctx, nil)
	if err != nil {
		c.t.Fatalf("failed to list images: %v", err)
	}
	var ids []string
	for _, img := range imgs {
		ids = append(ids, img.GetId())
	}
	slices.Sort(ids)
	return ids
}

// ImageFSUsed returns the image filesystem usage containerd measured last.
func (c *Containerd) ImageFSUsed() uint64 {
	ctx, cancel := c.ctx()
	defer cancel()
	info, err := c.Images.ImageFsInfo(ctx)
	if err != nil || len(info.GetImageFilesystems()) == 0 {
		c.t.Fatalf("failed to read the image filesystem: %v", err)
	}
	return info.GetImageFilesystems()[0].GetUsedBytes().GetValue()
}

// SettledImageFSUsed waits until containerd's measure of its image
// filesystem usage (taken every second) stays the same for two seconds, and
// returns it.
func (c *Containerd) SettledImageFSUsed() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, same := c.ImageFSUsed(), 0
	for same < 4 {
		if time.Now().After(deadline) {
			c.t.Fatal("the image filesystem usage did not settle in 30s")
		}
		time.Sleep(500 * time.Millisecond)
		now := c.ImageFSUsed()
		if now == last {
			same++
		} else {
			last, same = now, 0
		}
	}
	return last
}
