package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tendops/tend/runtime-shim/critest"
)

// The node's pod network: a bridge on the host, its gateway the first
// address, where the DNS server listens too.
const (
	Bridge    = "tendbr0"
	PodSubnet = "10.244.99.0/24"
	Gateway   = "10.244.99.1"
	// ClusterDomain is the domain of Service names.
	ClusterDomain = "cluster.local"
)

// cniPlugins are the CNI plugins the node's network uses, from Debian's
// containernetworking-plugins.
var cniPlugins = []string{"bridge", "host-local", "loopback"}

// cniDir is where Debian installs the CNI plugins.
const cniDir = "/usr/lib/cni"

// Options configure a real node.
type Options struct {
	// Name is the node's name.
	Name string
	// BinDir holds kubelet and kube-proxy (`make tools`).
	BinDir string
	// KubeletKubeconfig authenticates the kubelet as the node
	// (system:node:<Name> in group system:nodes).
	KubeletKubeconfig string
	// ProxyKubeconfig authenticates kube-proxy (system:kube-proxy).
	ProxyKubeconfig string
	// Config reads the Services the DNS server answers for.
	Config *rest.Config
}

// Node is a real node running for one test.
type Node struct {
	Name string
	// Containerd is the node's container runtime; import images into it.
	Containerd *critest.Containerd
	// Dir is the node's temporary root.
	Dir string

	t      testing.TB
	binDir string
	dns    *dnsServer
	procs  []*process
}

// process is a kubelet or kube-proxy the node started.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// Start joins a real node to the cluster and waits until it is Ready. It
// stops everything and removes what it made when the test ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a kubelet on a real containerd; not a short test")
	}
	require(t, opts.BinDir)
	unlock := lock(t)
	dir, err := os.MkdirTemp("", "tend-node-")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: opts.Name, Dir: dir, t: t, binDir: opts.BinDir}
	had := hostState{kubeletDir: exists("/var/lib/kubelet"), cniDir: exists("/var/lib/cni"), firewall: firewallChains()}
	// Registered first, so it runs last: after the kubelet, kube-proxy and
	// containerd (with the pods' containers) have stopped.
	t.Cleanup(func() {
		n.removeLeftovers(had)
		unlock()
	})
	n.createBridge()
	n.dns = startDNS(t, net.JoinHostPort(Gateway, "53"), kubernetes.NewForConfigOrDie(opts.Config))

	n.Containerd = critest.Start(t)
	n.writeCNIConfig()

	kubeletPort, proxyHealth, proxyMetrics := freePort(t), freePort(t), freePort(t)
	n.write("resolv.conf", "")
	n.write("kubelet.yaml", fmt.Sprintf(kubeletConfig, n.Containerd.Endpoint, kubeletPort, Gateway, ClusterDomain,
		filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins")))
	n.start("kubelet", filepath.Join(opts.BinDir, "kubelet"), "--config", filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig", opts.KubeletKubeconfig, "--root-dir", filepath.Join(dir, "kubelet"),
		"--cert-dir", filepath.Join(dir, "kubelet-pki"), "--hostname-override", opts.Name, "-v", "1")
	n.write("kube-proxy.yaml", fmt.Sprintf(proxyConfig, opts.ProxyKubeconfig, PodSubnet, opts.Name,
		"127.0.0.1:"+strconv.Itoa(proxyMetrics), "127.0.0.1:"+strconv.Itoa(proxyHealth)))
	n.start("kube-proxy", filepath.Join(opts.BinDir, "kube-proxy"), "--config", filepath.Join(dir, "kube-proxy.yaml"), "-v", "1")
	n.waitReady(kubernetes.NewForConfigOrDie(opts.Config))
	return n
}

// kubeletConfig is the kubelet's configuration: cgroup v1 allowed (this
// VM has no cgroup v2), containerd's CRI, the DNS server, and everything it
// writes under the node's temporary root; no API of its own beyond
// loopback.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: %s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
clusterDNS: [%s]
clusterDomain: %s
resolvConf: %s
podLogsDir: %s
volumePluginDir: %s
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
evictionHard:
  memory.available: 10Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`

// proxyConfig is kube-proxy's: iptables, masquerading every Service
// connection so that a pod reaching a Service backed by a pod on the same
// bridge gets its replies through the host.
const proxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
metricsBindAddress: %s
healthzBindAddress: %s
nodePortAddresses: [primary]
iptables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
`

// require fails the test unless the machine has what a real node needs.
func require(t testing.TB, binDir string) {
	t.Helper()
	critest.Require(t)
	for _, b := range []string{"kubelet", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			t.Fatalf("%s is missing from %s: run `make tools`", b, binDir)
		}
	}
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(cniDir, p)); err != nil {
			t.Fatalf("the CNI plugin %s is missing: apt-get install -y containernetworking-plugins", p)
		}
	}
	for _, cmd := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is missing: apt-get install -y iproute2 iptables", cmd)
		}
	}
}

// lock holds the machine's one real node: the bridge, the pod subnet and
// kube-proxy's rules are the host's.
func lock(t testing.TB) func() {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tend-realnode.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}
}

func (n *Node) write(name, content string) {
	if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(content), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// createBridge creates the pod bridge with the gateway address, so that
// the DNS server can listen there before the first pod runs. The CNI
// bridge plugin takes it as it is.
func (n *Node) createBridge() {
	t := n.t
	_ = exec.Command("ip", "link", "del", Bridge).Run() // left by a test that died
	for _, args := range [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", Gateway + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// writeCNIConfig gives containerd the bridge network, with the IP
// allocations kept in the node's root.
func (n *Node) writeCNIConfig() {
	t, c := n.t, n.Containerd
	for _, p := range cniPlugins {
		if err := os.Symlink(filepath.Join(cniDir, p), filepath.Join(c.Dir, "cni", "bin", p)); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "tend-node", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}
]}`, Bridge, filepath.Join(n.Dir, "ipam"), PodSubnet, Gateway)
	if err := os.WriteFile(filepath.Join(c.Dir, "cni", "conf", "10-tend-node.conflist"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start starts a process in its own process group, killed if the test's
// process dies first, and stops it with SIGTERM when the test ends.
func (n *Node) start(name, path string, args ...string) {
	t := n.t
	p := &process{name: name, exited: make(chan struct{}), log: filepath.Join(n.Dir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := critest.StartLocked(p.cmd, p.exited); err != nil {
		t.Fatalf("failed to start %s: %v", name, err)
	}
	n.procs = append(n.procs, p)
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// Log returns the last lines of the kubelet's or kube-proxy's log.
func (n *Node) Log(name string) string {
	for _, p := range n.procs {
		if p.name == name {
			data, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			return strings.Join(lines, "\n")
		}
	}
	return ""
}

// waitReady waits for the node to register and report Ready.
func (n *Node) waitReady(cs kubernetes.Interface) {
	t := n.t
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		for _, p := range n.procs {
			select {
			case <-p.exited:
				t.Fatalf("%s exited; its log:\n%s", p.name, n.Log(p.name))
			default:
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		cancel()
		if err == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						return
					}
					last = c.Reason + ": " + c.Message
				}
			}
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("node %s is not Ready after 2m (%s); the kubelet's log:\n%s", n.Name, last, n.Log("kubelet"))
}

// hostState is what the machine had before the node started, of what the
// node's processes make outside its root.
type hostState struct {
	// kubeletDir: /var/lib/kubelet, where the kubelet serves device
	// plugins whatever its root directory.
	kubeletDir bool
	// cniDir: /var/lib/cni, libcni's cache of results, in containerd.
	cniDir bool
	// firewall: the iptables commands that had the chain KUBE-FIREWALL,
	// which the kubelet adds to INPUT and OUTPUT (dropping connections to
	// 127.0.0.0/8 from elsewhere) whatever makeIPTablesUtilChains says.
	firewall map[string]bool
}

// firewallChains returns which of iptables and ip6tables have the chain
// KUBE-FIREWALL.
func firewallChains() map[string]bool {
	has := map[string]bool{}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		has[cmd] = exec.Command(cmd, "-S", "KUBE-FIREWALL").Run() == nil
	}
	return has
}

// removeLeftovers removes what outlives the processes: kube-proxy's rules,
// the kubelet's firewall chain, the pods' cgroups, the bridge, the
// kubelet's mounts and files.
func (n *Node) removeLeftovers(had hostState) {
	t := n.t
	if n.dns != nil {
		n.dns.close()
	}
	if n.started("kube-proxy") {
		if out, err := exec.Command(filepath.Join(n.binDir, "kube-proxy"), "--cleanup").CombinedOutput(); err != nil {
			t.Errorf("realnode: kube-proxy --cleanup: %v\n%s", err, out)
		}
	}
	removeCgroups(t, "kubepods")
	if out, err := exec.Command("ip", "link", "del", Bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Errorf("realnode: failed to delete the bridge: %v\n%s", err, out)
	}
	unmountUnder(t, n.Dir)
	if err := os.RemoveAll(n.Dir); err != nil {
		t.Errorf("realnode: failed to remove %s: %v", n.Dir, err)
	}
	for cmd, hadChain := range had.firewall {
		if hadChain || exec.Command(cmd, "-S", "KUBE-FIREWALL").Run() != nil {
			continue
		}
		for _, args := range [][]string{{"-D", "INPUT", "-j", "KUBE-FIREWALL"}, {"-D", "OUTPUT", "-j", "KUBE-FIREWALL"}, {"-F", "KUBE-FIREWALL"}, {"-X", "KUBE-FIREWALL"}} {
			if out, err := exec.Command(cmd, args...).CombinedOutput(); err != nil {
				t.Errorf("realnode: %s %s: %v\n%s", cmd, strings.Join(args, " "), err, out)
			}
		}
	}
	for dir, hadDir := range map[string]bool{"/var/lib/kubelet": had.kubeletDir, "/var/lib/cni": had.cniDir} {
		if !hadDir {
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("realnode: %v", err)
			}
		}
	}
}

func (n *Node) started(name string) bool {
	return slices.ContainsFunc(n.procs, func(p *process) bool { return p.name == name })
}

// removeCgroups removes a cgroup and its children from every cgroup v1
// hierarchy, deepest first.
func removeCgroups(t testing.TB, name string) {
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Errorf("realnode: failed to remove cgroup %s: %v", d, err)
			}
		}
	}
}

// unmountUnder detaches every mount under dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("realnode: %v", err)
		return
	}
	var mounts []string
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("realnode: failed to unmount %s: %v", m, err)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// freePort returns a TCP port free on loopback now.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
