package localstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ErrMissingBinary means a tool `make tools` builds is not in the bin dir.
var ErrMissingBinary = errors.New("localstack: missing binary (run `make tools`)")

// ClusterOptions configure a kwok cluster.
type ClusterOptions struct {
	// Name of the cluster; "tend" when empty.
	Name string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kwok and kwokctl.
	BinDir string
	// WorkDir is KWOK_WORKDIR; the cluster lives under it.
	WorkDir string
	// Nodes is the number of simulated nodes; 3 when zero.
	Nodes int
	// Faults are the app profiles that make pods crash-loop.
	Faults []Fault
	// RealisticHeartbeats runs node heartbeats close to upstream defaults
	// (a 40s lease, and a 40s node-monitor grace period in the controller
	// manager) instead of kwokctl's five-times-slower ones, so that a node
	// whose heartbeats stop goes NotReady in under a minute.
	RealisticHeartbeats bool
	// ControlPlaneQPS, when set, is the API request rate the controller
	// manager and the scheduler may use (kwokctl leaves them at their
	// defaults, 20 per second, which take minutes to create thousands of
	// pods): for the scale benchmark.
	ControlPlaneQPS int
	// RealNodes prepares the cluster for real nodes beside the simulated
	// ones (internal/realnode: a kubelet on containerd): kwok manages only
	// the nodes it made (annotated kwok.x-k8s.io/node=fake) instead of
	// every node, and the API server's certificate also names the
	// `kubernetes` Service's cluster IP, which pods reach it through.
	RealNodes bool
	// Progress receives one line per step; may be nil.
	Progress func(format string, args ...any)
}

// Cluster is a running kwok cluster with a real control plane.
type Cluster struct {
	opts       ClusterOptions
	kubeconfig string
}

var clusterBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwokctl"}

// StartCluster creates and starts a kwok cluster with the binary runtime,
// deleting a leftover cluster of the same name first, and adds the nodes.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = "tend"
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Progress == nil {
		opts.Progress = func(string, ...any) {}
	}
	for _, b := range clusterBinaries {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s in %s", ErrMissingBinary, b, opts.BinDir)
		}
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create work dir: %w", err)
	}
	c := &Cluster{opts: opts, kubeconfig: filepath.Join(opts.WorkDir, "clusters", opts.Name, "kubeconfig.yaml")}
	if _, err := os.Stat(filepath.Join(opts.WorkDir, "clusters", opts.Name)); err == nil {
		opts.Progress("Deleting leftover cluster %q", opts.Name)
		if err := c.kwokctl(ctx, "delete", "cluster", "--name", opts.Name, "--kubeconfig", c.contexts()); err != nil {
			return nil, err
		}
	}
	stages, err := StagesYAML(opts.Faults)
	if err != nil {
		return nil, err
	}
	stages = append(stages, kwokctlConfig(opts)...)
	stagesFile := filepath.Join(opts.WorkDir, opts.Name+"-stages.yaml")
	if err := os.WriteFile(stagesFile, stages, 0o644); err != nil {
		return nil, fmt.Errorf("failed to write stages: %w", err)
	}
	bin := func(n string) string { return filepath.Join(opts.BinDir, n) }
	// kwokctl picks free ports when it creates a cluster and binds them only
	// when it starts it: two creations at once may pick the same ports.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "tend-kwokctl-create.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	opts.Progress("Starting control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)")
	start := time.Now()
	args := []string{"create", "cluster", "--name", opts.Name, "--runtime", "binary",
		"--etcd-binary", bin("etcd"), "--kube-apiserver-binary", bin("kube-apiserver"),
		"--kube-controller-manager-binary", bin("kube-controller-manager"),
		"--kube-scheduler-binary", bin("kube-scheduler"), "--kwok-controller-binary", bin("kwok"),
		"--config", stagesFile, "--wait", "90s",
		// kwokctl adds every cluster it makes to a kubeconfig: one in
		// the work dir, so that the user's ~/.kube/config is left as it is.
		"--kubeconfig", c.contexts()}
	if opts.RealisticHeartbeats {
		args = append(args, "--heartbeat-factor", "1")
	}
	if err := c.kwokctl(ctx, args...); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	opts.Progress("Control plane ready in %s; adding %d simulated nodes", time.Since(start).Round(100*time.Millisecond), opts.Nodes)
	if err := c.kwokctl(ctx, "scale", "node", "--name", opts.Name, "--replicas", strconv.Itoa(opts.Nodes)); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// KubernetesServiceIP is the cluster IP of the `kubernetes` Service: the
// first address of kube-apiserver's default service range, as kwokctl
// starts it.
const KubernetesServiceIP = "10.0.0.1"

// kwokctlConfig is the kwokctl configuration document opts need, if any:
// the controller manager's and the scheduler's API rate limits raised to
// ControlPlaneQPS, and for RealNodes, kwok limited to its own nodes and the
// API server's certificate naming KubernetesServiceIP.
func kwokctlConfig(opts ClusterOptions) []byte {
	if opts.ControlPlaneQPS == 0 && !opts.RealNodes {
		return nil
	}
	var b strings.Builder
	b.WriteString("---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\n")
	if opts.RealNodes {
		fmt.Fprintf(&b, "options:\n  kubeApiserverCertSANs: [%q]\n", KubernetesServiceIP)
	}
	b.WriteString("componentsPatches:\n")
	if opts.ControlPlaneQPS > 0 {
		qps := opts.ControlPlaneQPS
		for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
			fmt.Fprintf(&b, "- name: %s\n  extraArgs:\n  - key: kube-api-qps\n    value: %q\n  - key: kube-api-burst\n    value: %q\n", c, strconv.Itoa(qps), strconv.Itoa(2*qps))
		}
	}
	if opts.RealNodes {
		// kwokctl's binary runtime passes --manage-all-nodes=true; the
		// flags given later win.
		b.WriteString("- name: kwok-controller\n  extraArgs:\n  - key: manage-all-nodes\n    value: \"false\"\n  - key: manage-nodes-with-annotation-selector\n    value: kwok.x-k8s.io/node=fake\n")
	}
	return []byte(b.String())
}

// contexts is the kubeconfig kwokctl adds the cluster's context to (and
// removes it from), in the work dir: never the user's.
func (c *Cluster) contexts() string { return filepath.Join(c.opts.WorkDir, "kwokctl-contexts.yaml") }

// Kubeconfig is the path of the cluster's admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// Dir is the cluster's directory, with its pki, logs and pids.
func (c *Cluster) Dir() string { return filepath.Join(c.opts.WorkDir, "clusters", c.opts.Name) }

// Stop deletes the cluster; kwokctl stops every process it started.
func (c *Cluster) Stop(ctx context.Context) error {
	return c.kwokctl(ctx, "delete", "cluster", "--name", c.opts.Name, "--kubeconfig", c.contexts())
}

func (c *Cluster) kwokctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.BinDir, "kwokctl"), args...)
	cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+c.opts.WorkDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kwokctl %s failed: %w\n%s", args[0]+" "+args[1], err, tail(out.String(), 2000))
	}
	return nil
}

// UserKubeconfig writes a kubeconfig for a user authenticated by a client
// certificate the cluster's CA signs, and returns its path. The API server
// authenticates the user as name with the given groups.
func (c *Cluster) UserKubeconfig(name string, groups []string) (string, error) {
	pki := filepath.Join(c.Dir(), "pki")
	ca, err := tls.LoadX509KeyPair(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "ca.key"))
	if err != nil {
		return "", fmt.Errorf("failed to load cluster CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("failed to parse cluster CA: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("failed to generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", fmt.Errorf("failed to generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: groups},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return "", fmt.Errorf("failed to sign client certificate: %w", err)
	}
	admin, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		return "", fmt.Errorf("failed to read kubeconfig: %w", err)
	}
	ctxName := admin.CurrentContext
	cluster := admin.Contexts[ctxName].Cluster
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = admin.Clusters[cluster]
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ClientKeyData:         pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(c.Dir(), "kubeconfig-"+name+".yaml")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	return path, nil
}

// RESTConfig loads a kubeconfig file.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// lockFile takes an exclusive advisory lock shared by every process on the
// machine, and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
