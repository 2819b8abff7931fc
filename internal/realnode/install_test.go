package realnode_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
	"github.com/tendops/tend/internal/images"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/internal/realnode"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/runtime-shim/critest"
)

// installNode is the real node the install test joins.
const installNode = "tend-node-0"

// TestInstallOnARealNode is the proof that the chart runs: `make images`
// (hack/images) builds tend's images twice, with the same digests; a real
// node (a kubelet on containerd and runc, internal/realnode) joins the
// local stack beside a kwok node; the images are imported into its
// containerd, and `helm install` runs the components there, the bundled
// NATS included, until they are Ready. A bad rollout of a real workload
// (its new release exits without DATABASE_URL) is then detected, proposed,
// decided, applied and verified by the in-cluster components, and `helm
// uninstall` leaves nothing of the release behind but the user's own
// GatePolicy and Proposals.
func TestInstallOnARealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the images and runs a kubelet on a real containerd")
	}
	g := NewWithT(t)
	ctx := t.Context()
	ctrllog.SetLogger(logr.Discard())
	bin := binDir(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	g.Expect(err).NotTo(HaveOccurred())

	// The images, twice: the same commit gives the same digests.
	start := time.Now()
	outA, outB := t.TempDir(), t.TempDir()
	digestsA, digestsB := makeImages(t, root, outA), makeImages(t, root, outB)
	g.Expect(digestsA).To(HaveLen(2), "hack/images prints one digest per image")
	g.Expect(digestsB).To(Equal(digestsA), "two builds of the same commit gave different digests")
	for _, name := range []string{"tend.oci.tar", "tend-shim.oci.tar"} {
		a, err := os.ReadFile(filepath.Join(outA, name))
		g.Expect(err).NotTo(HaveOccurred())
		b, err := os.ReadFile(filepath.Join(outB, name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(bytes.Equal(a, b)).To(BeTrue(), "two builds of %s differ", name)
	}
	t.Logf("Built the images twice in %s: %v", time.Since(start).Round(time.Second), digestsA)
	natsArchive := natsImage(t, root)

	// The local stack's cluster, with a kwok node and a real one. The kwok
	// node is tainted: every pod here runs for real.
	work := t.TempDir()
	cl, err := localstack.StartCluster(ctx, localstack.ClusterOptions{Name: "install", BinDir: bin, WorkDir: work, Nodes: 1, RealNodes: true, Progress: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := cl.Stop(context.Background()); err != nil {
			t.Errorf("failed to delete the cluster: %v", err)
		}
	})
	cfg, err := localstack.RESTConfig(cl.Kubeconfig())
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	var kwokNodes corev1.NodeList
	g.Expect(c.List(ctx, &kwokNodes)).To(Succeed())
	g.Expect(kwokNodes.Items).To(HaveLen(1))
	for i := range kwokNodes.Items {
		// kwok writes the node's status as it comes up: taint the latest
		// version, again on a conflict.
		key := client.ObjectKeyFromObject(&kwokNodes.Items[i])
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n := &corev1.Node{}
			if err := c.Get(ctx, key, n); err != nil {
				return err
			}
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "tend.dev/simulated", Value: "true", Effect: corev1.TaintEffectNoSchedule})
			return c.Update(ctx, n)
		})).To(Succeed())
	}
	kubeletKC, err := cl.UserKubeconfig("system:node:"+installNode, []string{"system:nodes"})
	g.Expect(err).NotTo(HaveOccurred())
	proxyKC, err := cl.UserKubeconfig("system:kube-proxy", nil)
	g.Expect(err).NotTo(HaveOccurred())
	start = time.Now()
	node := realnode.Start(t, realnode.Options{Name: installNode, BinDir: bin, KubeletKubeconfig: kubeletKC, ProxyKubeconfig: proxyKC, Config: cfg})
	t.Logf("Node %s joined and is Ready in %s", installNode, time.Since(start).Round(time.Second))

	tendRef := "ghcr.io/tendops/tend:" + wire.Version
	natsRef := critest.Registry + "/nats:install-test"
	importArchive(t, node.Containerd, filepath.Join(outA, "tend.oci.tar"))
	importArchive(t, node.Containerd, natsArchive)
	node.Containerd.ImageID(tendRef)
	node.Containerd.ImageID(natsRef)
	node.Containerd.ImportImage(critest.Registry+"/web:1.0", critest.ImageOptions{})
	node.Containerd.ImportImage(critest.Registry+"/web:2.0", critest.ImageOptions{Command: []string{"/bin/sh", "-c",
		`[ -n "$DATABASE_URL" ] || { echo "web 2.0: DATABASE_URL is not set" >&2; exit 1; }; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done`}})

	// The bundled NATS's volume: a directory of the node, bound to the
	// StatefulSet's claim.
	natsData, err := os.MkdirTemp("", "tend-install-nats-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(natsData) })
	g.Expect(os.Chown(natsData, 1000, 1000)).To(Succeed())
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "node-dir"}, Provisioner: "kubernetes.io/no-provisioner"}
	g.Expect(c.Create(ctx, sc)).To(Succeed())
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "install-nats"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
		AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		StorageClassName:              sc.Name,
		PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: natsData}},
	}}
	g.Expect(c.Create(ctx, pv)).To(Succeed())

	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "helm"), append(args, "--kubeconfig", cl.Kubeconfig())...)
		home := t.TempDir()
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s\nthe kubelet's log:\n%s\n%s", strings.Join(args, " "), err, out, node.Log("kubelet"), describePods(ctx, c))
		}
		return string(out)
	}
	start = time.Now()
	helm("install", localstack.HelmRelease, filepath.Join(root, "charts", "tend"), "--namespace", localstack.SystemNamespace, "--create-namespace",
		"--set", "nats.image.repository="+critest.Registry+"/nats,nats.image.tag=install-test,nats.storage.storageClassName="+sc.Name,
		"--wait", "--timeout", "5m")
	t.Logf("helm install: every component Ready in %s", time.Since(start).Round(time.Second))

	// Every component's pods run on the real node, Ready by their probes.
	for _, comp := range []string{"controller", "sensor", "mcp", "agent", "nats"} {
		var pods corev1.PodList
		g.Expect(c.List(ctx, &pods, client.InNamespace(localstack.SystemNamespace), client.MatchingLabels{"app.kubernetes.io/component": comp})).To(Succeed())
		g.Expect(pods.Items).NotTo(BeEmpty(), "no %s pod", comp)
		for _, p := range pods.Items {
			g.Expect(p.Spec.NodeName).To(Equal(installNode), "pod %s", p.Name)
			g.Expect(podReady(&p)).To(BeTrue(), "pod %s is not Ready", p.Name)
		}
	}

	// The demo's bad rollout, on the real node.
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}})).To(Succeed())
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: critest.Registry + "/web:1.0", ImagePullPolicy: corev1.PullNever,
					// Ready only once it has run for a moment: without a probe, web
					// 2.0's containers, which exit at once, count as ready for an
					// instant after each restart, and the rollout can show all
					// three of 2.0 ready together, which the agent takes for a
					// revision that ran healthy, and does not roll back.
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", "true"}}},
						InitialDelaySeconds: 2, PeriodSeconds: 1,
					},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
					}},
				}}},
			},
		},
	}
	g.Expect(c.Create(ctx, web)).To(Succeed())
	healthy := func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(web), d)).To(Succeed())
		s := d.Status
		g.Expect(s.ObservedGeneration).To(BeNumerically(">=", d.Generation))
		g.Expect([]int32{s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas}).To(Equal([]int32{3, 3, 3, 3}))
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(critest.Registry + "/web:1.0"))
	}
	g.Eventually(healthy).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	// The bad rollout comes after web 1.0 has run long enough for the
	// controller to record it ran healthy: that record is what lets the
	// default policy approve a rollback to it. A rollout seconds after 1.0
	// became ready races the record, and the gate rightly asks a human.
	g.Eventually(func(g Gomega) {
		var sets appsv1.ReplicaSetList
		g.Expect(c.List(ctx, &sets, client.InNamespace("demo"), client.MatchingLabels(labels))).To(Succeed())
		g.Expect(sets.Items).To(HaveLen(1))
		g.Expect(sets.Items[0].Annotations).To(HaveKey(workload.AnnotationRanHealthy))
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), "the controller did not record that web 1.0 ran healthy")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(web), web)).To(Succeed())
	web.Spec.Template.Spec.Containers[0].Image = critest.Registry + "/web:2.0"
	g.Expect(c.Update(ctx, web)).To(Succeed())
	t.Log("Rolled out web 2.0, which exits without DATABASE_URL")

	var proposal tendv1.Proposal
	g.Eventually(func(g Gomega) {
		var list tendv1.ProposalList
		g.Expect(c.List(ctx, &list, client.InNamespace("demo"))).To(Succeed())
		i := slices.IndexFunc(list.Items, func(p tendv1.Proposal) bool { return p.Spec.Action == tendv1.ActionRollbackWorkload })
		g.Expect(i).NotTo(Equal(-1), "no rollback proposed")
		proposal = list.Items[i]
		g.Expect(proposal.Status.Phase).To(Equal(tendv1.PhaseSucceeded), "proposal %s: %s%s", proposal.Name, proposal.Status.Message, decided(proposal.Status.Decision))
	}).WithTimeout(8*time.Minute).WithPolling(2*time.Second).Should(Succeed(), func() string {
		// Described when it fails, not before it starts.
		return "the in-cluster components did not heal the rollout:\n" + describePods(ctx, c)
	})
	g.Expect(proposal.Spec.Proposer.Username).To(Equal("system:serviceaccount:" + localstack.SystemNamespace + ":tend-agent"))
	g.Eventually(healthy).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	t.Logf("Healed: proposal %s by %s, %s", proposal.Name, proposal.Spec.Proposer.Username, proposal.Status.Message)

	// Uninstalling leaves the user's objects and nothing of the release.
	mine := &tendv1.GatePolicy{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: tendv1.GatePolicySpec{Rules: []tendv1.GateRule{{
		Name: "freeze", When: `proposal.namespace.name == "frozen"`, Outcome: tendv1.OutcomeDeny, Reason: "Frozen", Message: "frozen",
	}}}}
	g.Expect(c.Create(ctx, mine)).To(Succeed())
	helm("uninstall", localstack.HelmRelease, "--namespace", localstack.SystemNamespace, "--wait", "--timeout", "3m")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(mine), &tendv1.GatePolicy{})).To(Succeed(), "the user's GatePolicy did not survive the uninstall")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(&proposal), &tendv1.Proposal{})).To(Succeed(), "the Proposal did not survive the uninstall")
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "proposals.tend.dev"}, &apiextensionsv1.CustomResourceDefinition{})).To(Succeed())
	// What remains is the gate state, which the chart keeps on purpose: a
	// reinstall must not release a kill switch someone engaged.
	g.Eventually(func(g Gomega) {
		g.Expect(leftovers(ctx, t, cfg)).To(ConsistOf("configmaps/tend-gate"))
	}).WithTimeout(2*time.Minute).WithPolling(2*time.Second).Should(Succeed(), "uninstalling left objects behind")
	// The kubelet stopped the components' containers.
	g.Eventually(func(g Gomega) {
		var running []string
		for _, ct := range node.Containerd.ListContainers() {
			if ct.GetLabels()[critest.LabelPodNamespace] == localstack.SystemNamespace {
				running = append(running, ct.GetLabels()[critest.LabelPodName]+"/"+ct.GetMetadata().GetName())
			}
		}
		g.Expect(running).To(BeEmpty())
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), "the components' containers outlived the uninstall")
	var rb rbacv1.ClusterRole
	g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "tend:controller"}, &rb))).To(BeTrue())
}

// makeImages runs `make images`' command into out and returns the digests
// it printed, by image.
func makeImages(t *testing.T, root, out string) map[string]string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "run", "./hack/images", "--out", out)
	cmd.Dir = root
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("hack/images: %v\n%s%s", err, stdout, stderr)
	}
	digests := map[string]string{}
	// ref@digest  archive  (size, time)
	re := regexp.MustCompile(`^\S+@(sha256:[0-9a-f]{64})\s+(\S+\.oci\.tar)\s`)
	for line := range strings.SplitSeq(string(stdout), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			digests[filepath.Base(m[2])] = m[1]
		}
	}
	if len(digests) == 0 {
		t.Fatalf("hack/images printed no digests:\n%s", stdout)
	}
	return digests
}

// natsImage builds the bundled NATS's image the way `make images` builds
// tend's: nats-server, at the version tend's go.mod pins, static on an
// empty root. The chart's default (the upstream nats image) is not
// reachable from here.
func natsImage(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("failed to build nats-server: %v\n%s", err, out)
	}
	img, err := images.Build(images.Spec{Name: "nats-server", Binary: bin, CABundle: "/etc/ssl/certs/ca-certificates.crt", Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "nats.oci.tar")
	if err := images.WriteArchive(archive, map[string]v1.Image{critest.Registry + "/nats:install-test": img}); err != nil {
		t.Fatal(err)
	}
	return archive
}

// importArchive imports an OCI archive under the names its index gives.
func importArchive(t *testing.T, c *critest.Containerd, archive string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ctr", "--address", c.Socket, "--namespace", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import %s: %v\n%s", archive, err, out)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describePods summarizes the pods of tend-system and demo, for a failure.
func describePods(ctx context.Context, c client.Client) string {
	var b strings.Builder
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err == nil {
		for _, n := range nodes.Items {
			b.WriteString("node " + n.Name + ":")
			for _, cond := range n.Status.Conditions {
				b.WriteString(" " + string(cond.Type) + "=" + string(cond.Status))
			}
			for _, t := range n.Spec.Taints {
				b.WriteString(" taint " + t.Key + ":" + string(t.Effect))
			}
			b.WriteString("\n")
		}
	}
	for _, ns := range []string{localstack.SystemNamespace, "demo"} {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err.Error()
		}
		for _, p := range pods.Items {
			b.WriteString(p.Namespace + "/" + p.Name + " on " + p.Spec.NodeName + ": " + string(p.Status.Phase))
			for _, s := range p.Status.ContainerStatuses {
				b.WriteString(" " + s.Name)
				if w := s.State.Waiting; w != nil {
					b.WriteString(" waiting " + w.Reason + " " + w.Message)
				}
				if s.LastTerminationState.Terminated != nil {
					b.WriteString(" last exit " + s.LastTerminationState.Terminated.Reason + " " + s.LastTerminationState.Terminated.Message)
				}
				b.WriteString(" ready=" + map[bool]string{true: "true", false: "false"}[s.Ready])
			}
			b.WriteString("\n")
			if p.Status.Phase == corev1.PodPending {
				b.WriteString(podEvents(ctx, c, &p))
			}
		}
	}
	return b.String()
}

// leftovers lists what remains of the release: every object in the
// release's namespace but the ones Kubernetes makes in each namespace
// (the default ServiceAccount, kube-root-ca.crt), events, and Proposals and
// Approvals, which are the users' and outlive the release; and every
// cluster-scoped object labelled with the release, but tend's CRDs.
func leftovers(ctx context.Context, t *testing.T, cfg *rest.Config) []string {
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Logf("discovery: %v", err)
	}
	var left []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			if r.Name == "events" || (gv.Group == tendv1.GroupVersion.Group && (r.Name == "proposals" || r.Name == "approvals")) {
				continue
			}
			res := dyn.Resource(gv.WithResource(r.Name))
			var items []unstructured.Unstructured
			if r.Namespaced {
				list, err := res.Namespace(localstack.SystemNamespace).List(ctx, metav1.ListOptions{})
				if err != nil {
					continue
				}
				items = list.Items
			} else {
				list, err := res.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + localstack.HelmRelease})
				if err != nil {
					continue
				}
				items = list.Items
			}
			for _, it := range items {
				name := it.GetName()
				switch {
				case r.Name == "serviceaccounts" && name == "default",
					r.Name == "configmaps" && name == "kube-root-ca.crt",
					r.Name == "customresourcedefinitions":
					continue
				}
				left = append(left, r.Name+"/"+name)
			}
		}
	}
	return left
}

// binDir is where `make tools` put the control plane and the node's
// binaries: TEND_BIN_DIR, or the repository's bin.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEND_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "kwokctl")); err != nil {
		t.Fatalf("control-plane binaries not found in %s (run `make tools`): %v", abs, err)
	}
	return abs
}

// decided describes the gate's decision on a proposal, for a failure.
func decided(d *tendv1.Decision) string {
	if d == nil {
		return " (not decided)"
	}
	out := fmt.Sprintf(" (decided %s by policy %q, rule %q", d.Outcome, d.Policy, d.Rule)
	for _, r := range d.Reasons {
		out += fmt.Sprintf("; %s: %s", r.Code, r.Message)
	}
	if d.Facts != nil && d.Facts.Revision != nil {
		rf := d.Facts.Revision
		out += fmt.Sprintf("; revision %d to %d, healthy %t: %s", rf.Current, rf.To, rf.ToHealthy, rf.Evidence)
	}
	return out + ")"
}

// podEvents lists the last Events about a pod that is not running, which
// say what the scheduler or the kubelet is waiting for.
func podEvents(ctx context.Context, c client.Client, pod *corev1.Pod) string {
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(pod.Namespace)); err != nil {
		return "  events: " + err.Error() + "\n"
	}
	var b strings.Builder
	n := 0
	for i := len(events.Items) - 1; i >= 0 && n < 8; i-- {
		ev := events.Items[i]
		if ev.InvolvedObject.Name != pod.Name {
			continue
		}
		n++
		b.WriteString(fmt.Sprintf("  event %s %s (x%d): %s\n", ev.Type, ev.Reason, ev.Count, ev.Message))
	}
	if n == 0 {
		b.WriteString("  no events about it\n")
	}
	return b.String()
}
