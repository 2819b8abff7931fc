package localstack

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/agents"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/controllers/actions"
	"github.com/tendops/tend/mcp/wire"
	shim "github.com/tendops/tend/runtime-shim"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// shimNode is the node the real containerd plays, beside the kwok nodes.
const shimNode = "ctrd-node"

// TestNodeActionsEndToEnd runs the runtime shim's actions through the
// whole loop: a kwok cluster and a real containerd, whose node's runtime
// shim publishes telemetry and serves requests as its own NATS user. As an
// agent would, the test reads the node's telemetry and proposes through the
// MCP server; the gate decides, a human approves where it asks one, and the
// controller applies through the shim and verifies through it.
//
//   - Disk pressure: the image filesystem is full of unused images. The
//     agent sees it in the imagefs telemetry and proposes PruneImages down to
//     a target, keeping one image by name; a human approves; the shim
//     prunes oldest first; the proposal succeeds once the measured usage is
//     below the target, and the image a running container uses, the
//     allow-listed ones and the sandbox image are all still there.
//   - PruneImages of a kwok node, which no shim serves: denied NoRuntimeShim
//     when decided, nothing applied.
//   - CollectDiagnostics of a pod, automatic: the bundle is stored and read
//     back with its digest.
//   - RestartContainer of that pod's container, approved: the container is
//     stopped, started again (the test plays the kubelet), and verified
//     running with a new start.
//
// PruneImages and RestartContainer are then applied again with the same
// attempt, as a controller restarted before it recorded the result would:
// the shim's ledger replays the result and nothing is done twice.
func TestNodeActionsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test needs the local control plane and a real containerd")
	}
	g := NewWithT(t)
	ctrd := critest.Start(t)
	ctx := t.Context()
	workDir := t.TempDir()
	st, err := Start(ctx, Options{
		BinDir: binDir(t), WorkDir: workDir, ClusterName: "shim-e2e", Nodes: 1, NoAgents: true,
		ShimNodes: []string{shimNode},
		Proposal:  controllers.ProposalOptions{StableWindow: 3 * time.Second, VerifyTimeout: 90 * time.Second},
		Progress:  t.Logf,
		// Other stacks of this package may run in this process too.
		SkipControllerNameValidation: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(st.Stop)
	c := st.Client
	g.Expect(c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: shimNode, Labels: map[string]string{corev1.LabelHostname: shimNode}}})).To(Succeed())

	// The node: a running web container, an allow-listed agent image, a
	// tools image the proposal keeps, and old images nothing uses.
	r := critest.Registry
	web := ctrd.ImportImage(r+"/web:1", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-90 * 24 * time.Hour)})
	agent := ctrd.ImportImage(r+"/base/agent:7", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-80 * 24 * time.Hour)})
	tools := ctrd.ImportImage(r+"/tools:2", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-70 * 24 * time.Hour)})
	var unused []string
	for i, tag := range []string{"report:1", "report:2", "report:3"} {
		unused = append(unused, ctrd.ImportImage(r+"/"+tag, critest.ImageOptions{ExtraBytes: (3 + i) << 20, Created: time.Now().Add(-time.Duration(60-10*i) * 24 * time.Hour)}))
	}
	imagesBefore := ctrd.ImageIDs()

	// The pod the API server holds, one of a ReplicaSet's three, and its
	// sandbox and container on the containerd node as the kubelet would run
	// them. The ReplicaSet's own pods can run nowhere (its template selects
	// no node), so that of the pods it counts, its scale-down removes one
	// of those, never the one on the containerd node.
	ns := "shop"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{NodeSelector: map[string]string{"tend.dev/test": "nowhere"}, Containers: []corev1.Container{{Name: "web", Image: r + "/web:1"}}}}},
	}
	g.Expect(c.Create(ctx, rs)).To(Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-ctrd", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: shimNode, Containers: []corev1.Container{{Name: "web", Image: r + "/web:1"}}},
	}
	g.Expect(c.Create(ctx, pod)).To(Succeed())
	cri := ctrd.RunPodUID(ns, pod.Name, string(pod.UID))
	cri.Start("web", r+"/web:1", 0)

	// The node's runtime shim, as its own NATS user, trusting the
	// controller's key, with its own allow-list.
	nc, js, err := st.ConnectShim(ctx, shimNode)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(nc.Close)
	sh, err := shim.New(shim.Options{
		Cluster: st.ClusterName, Node: shimNode, Runtime: shim.NewCRI(ctrd.Endpoint, 10*time.Second), Conn: nc, JS: js,
		TrustedKeys: []string{st.ShimControllerKey}, KeepImages: []string{r + "/base/*"}, PodLogRoot: ctrd.LogRoot,
		StateInterval: time.Second, StatsInterval: -1, ImageInterval: time.Second,
	})
	g.Expect(err).NotTo(HaveOccurred())
	shimCtx, stopShim := context.WithCancel(context.Background())
	shimDone := make(chan error, 1)
	go func() { shimDone <- sh.Start(logr.NewContext(shimCtx, testr.New(t))) }()
	t.Cleanup(func() {
		stopShim()
		if err := <-shimDone; err != nil {
			t.Errorf("shim: %v", err)
		}
	})

	// The agent's view: MCP with its own service account token.
	mcpc, err := agents.DialTools(ctx, st.MCPURL, "test-agent", serviceAccountToken(c, SystemNamespace, AgentAccount))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = mcpc.Close() })
	lead := approver(t, st)
	// The actions as the controller calls them, with its NATS identity and
	// key: to send an apply again, as a controller restarted before it
	// recorded the result would.
	retry := controllerActions(t, st, workDir)

	t.Run("disk pressure healed by PruneImages", func(t *testing.T) {
		g := NewWithT(t)
		used := int64(ctrd.SettledImageFSUsed())
		// Down by more than the oldest unused image frees (3 MiB of its own)
		// and less than the two oldest do (7 MiB).
		target := used - 6<<20
		var seen wire.TelemetryMessage
		g.Eventually(func(g Gomega) {
			var tel wire.Telemetry
			g.Expect(mcpc.Call(ctx, wire.ToolGetTelemetry, wire.GetTelemetryArgs{Kind: string(bus.KindImageFS), Name: shimNode, Since: "5m"}, &tel)).To(Succeed())
			g.Expect(tel.Messages).NotTo(BeEmpty())
			seen = tel.Messages[len(tel.Messages)-1]
			g.Expect(seen.Envelope.ImageFS).NotTo(BeNil())
			g.Expect(seen.Envelope.ImageFS.UsedBytes).To(Equal(used), "the agent sees the usage the runtime measured")
		}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
		g.Expect(seen.Subject).To(Equal(bus.TelemetrySubject(st.ClusterName, bus.KindImageFS, "", shimNode)))

		var res wire.ProposeResult
		g.Expect(mcpc.Call(ctx, wire.ToolProposePruneImages, wire.PruneImagesArgs{
			NodeArgs: wire.NodeArgs{Node: shimNode}, TargetUsedBytes: ptr.To(target), Keep: []string{r + "/tools:2"},
			Common: wire.Common{Summary: "the image filesystem is full of images nothing uses", Agent: "test-agent",
				Telemetry: []wire.TelemetryRef{{Subject: seen.Subject, Sequence: seen.Sequence, ID: seen.Envelope.ID}}},
		}, &res)).To(Succeed())
		g.Expect(res.Namespace).To(Equal(SystemNamespace))
		p := &tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Namespace: res.Namespace, Name: res.Name}}
		p = waitForPhase(t, c, p, tendv1.PhaseAwaitingApproval)
		g.Expect(p.Spec.Parameters.Prune).To(Equal(&tendv1.PruneParameters{TargetUsedBytes: ptr.To(target), Keep: []string{r + "/tools:2"}}))
		g.Expect(p.Status.Decision.Rule).To(Equal("runtime-writes"))
		g.Expect(p.Status.Decision.Facts.ImageFS).NotTo(BeNil())
		g.Expect(p.Status.Decision.Facts.ImageFS.UsedBytes).To(Equal(used), "the gate decided on the usage the controller read from the shim")
		approve(t, lead, p)
		p = waitForPhase(t, c, p, tendv1.PhaseSucceeded)

		rec := p.Status.Apply.Shim
		g.Expect(rec).NotTo(BeNil())
		g.Expect(rec.Node).To(Equal(shimNode))
		g.Expect(rec.AttemptID).To(Equal(string(p.UID) + "/apply/" + p.Status.Apply.Attempt))
		g.Expect(rec.Prune.TargetUsedBytes).To(Equal(target))
		g.Expect(rec.Prune.UsedBytesBefore).To(Equal(used))
		g.Expect(rec.Prune.TargetReached).To(BeTrue())
		g.Expect(rec.Prune.RemovedImages).To(BeEquivalentTo(2))
		g.Expect(rec.Prune.KeptRunning).To(Equal(int32(1)))
		g.Expect(rec.Prune.KeptAllowListed).To(Equal(int32(2)))
		g.Expect(p.Status.Verify.Checks).To(ContainElement(HaveField("Name", "ImageFSBelowTarget")))
		for _, check := range p.Status.Verify.Checks {
			g.Expect(check.Passed).To(BeTrue(), "check %s: %s", check.Name, check.Message)
		}

		// The world: usage below the target; the oldest unused images gone,
		// everything in use, allow-listed or kept by the proposal still there.
		g.Expect(int64(ctrd.SettledImageFSUsed())).To(BeNumerically("<=", target))
		left := ctrd.ImageIDs()
		for _, id := range []string{web, agent, tools, unused[2]} {
			g.Expect(left).To(ContainElement(id))
		}
		g.Expect(left).NotTo(ContainElements(unused[0], unused[1]))
		g.Expect(left).To(HaveLen(len(imagesBefore) - 2))

		// The same apply again: the shim's ledger replays the result, and
		// nothing more is removed.
		again, err := retry[tendv1.ActionPruneImages].Apply(ctx, p, p.Status.Apply.Attempt, false)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(again.Shim).To(Equal(rec))
		g.Expect(ctrd.ImageIDs()).To(Equal(left))
		expectTrail(t, st, p, "Pending>AwaitingApproval", "AwaitingApproval>Approved", "Approved>Applying", "Applying>Verifying", "Verifying>Succeeded")
	})

	t.Run("a node no shim serves is denied at once", func(t *testing.T) {
		g := NewWithT(t)
		var nodes corev1.NodeList
		g.Expect(c.List(ctx, &nodes)).To(Succeed())
		kwokNode := ""
		for _, n := range nodes.Items {
			if n.Name != shimNode {
				kwokNode = n.Name
			}
		}
		g.Expect(kwokNode).NotTo(BeEmpty())
		var res wire.ProposeResult
		g.Expect(mcpc.Call(ctx, wire.ToolProposePruneImages, wire.PruneImagesArgs{
			NodeArgs: wire.NodeArgs{Node: kwokNode}, TargetUsedPercent: ptr.To[int32](70), Common: wire.Common{Summary: "prune a simulated node"},
		}, &res)).To(Succeed())
		p := waitForPhase(t, c, &tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Namespace: res.Namespace, Name: res.Name}}, tendv1.PhaseDenied)
		g.Expect(p.Status.Decision.Reasons).To(ContainElement(And(HaveField("Code", "NoRuntimeShim"), HaveField("Message", ContainSubstring(kwokNode)))))
		g.Expect(p.Status.Apply).To(BeNil())
	})

	t.Run("CollectDiagnostics of a pod, automatic", func(t *testing.T) {
		g := NewWithT(t)
		var res wire.ProposeResult
		g.Expect(mcpc.Call(ctx, wire.ToolProposeCollectDiagnostics, wire.CollectDiagnosticsArgs{
			Namespace: ns, Pod: pod.Name, Common: wire.Common{Summary: "web restarts; collect its state before acting"},
		}, &res)).To(Succeed())
		p := waitForPhase(t, c, &tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Namespace: res.Namespace, Name: res.Name}}, tendv1.PhaseSucceeded)
		g.Expect(p.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
		d := p.Status.Apply.Shim.Diagnostics
		g.Expect(d).NotTo(BeNil())
		g.Expect(d.Bucket).To(Equal(bus.DiagnosticsBucket))
		g.Expect(d.Object).To(Equal(bus.DiagnosticsObject(st.ClusterName, shimNode, p.Status.Apply.Shim.AttemptID)))
		g.Expect(d.Containers).To(BeEquivalentTo(1))
		g.Expect(p.Status.Verify.Checks).To(ContainElement(And(HaveField("Name", "DiagnosticsStored"), HaveField("Passed", true))))
	})

	t.Run("RestartContainer, approved", func(t *testing.T) {
		g := NewWithT(t)
		first := cri.Containers("web")[0]
		var res wire.ProposeResult
		g.Expect(mcpc.Call(ctx, wire.ToolProposeRestartContainer, wire.RestartContainerArgs{
			PodArgs: wire.PodArgs{Namespace: ns, Pod: pod.Name}, Container: "web", Common: wire.Common{Summary: "web leaks memory; restart it in place"},
		}, &res)).To(Succeed())
		p := waitForPhase(t, c, &tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Namespace: res.Namespace, Name: res.Name}}, tendv1.PhaseAwaitingApproval)
		g.Expect(p.Status.Decision.Facts.Disruption.Percent).To(BeEquivalentTo(33))
		approve(t, lead, p)
		// The kubelet's part: start the next container once the shim stopped it.
		g.Eventually(func() bool {
			cs := cri.Containers("web")
			return len(cs) > 0 && cs[0].GetId() == first.GetId() && ctrd.ContainerStatus(first.GetId()).GetState() == runtimeapi.ContainerState_CONTAINER_EXITED
		}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(BeTrue())
		next := cri.Restart("web")
		p = waitForPhase(t, c, p, tendv1.PhaseSucceeded)
		stopped := p.Status.Apply.Shim.Container
		g.Expect(stopped.ID).To(Equal(first.GetId()))
		g.Expect(p.Status.Verify.Checks).To(ContainElement(And(HaveField("Name", "ContainerRestarted"), HaveField("Message", ContainSubstring(next[:12])))))
		g.Expect(cri.Containers("web")).To(HaveLen(2), "one stop, one new container")

		// The same apply again stops nothing: the ledger replays the stop
		// of the first container, and the kubelet's new one keeps running.
		again, err := retry[tendv1.ActionRestartContainer].Apply(ctx, p, p.Status.Apply.Attempt, false)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(again.Shim.Container.ID).To(Equal(first.GetId()))
		g.Expect(ctrd.ContainerStatus(next).GetState()).To(Equal(runtimeapi.ContainerState_CONTAINER_RUNNING))
		g.Expect(cri.Containers("web")).To(HaveLen(2))
	})
}

// controllerActions are the catalogue's actions with the controller's own
// NATS identity and shim signing key.
func controllerActions(t *testing.T, st *Stack, workDir string) map[tendv1.Action]actions.Action {
	t.Helper()
	js, err := st.connect(t.Context(), bus.ComponentController)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := loadOrCreateShimSigner(filepath.Join(workDir, "shim-controller.nk"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := shimclient.New(shimclient.Options{Cluster: st.ClusterName, Conn: js.Conn(), JS: js, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	out := map[tendv1.Action]actions.Action{}
	for _, a := range actions.Catalogue(actions.Options{Client: st.Client, APIReader: st.Client, Shim: sc, Now: time.Now, FieldManager: "tend-proposal-controller"}) {
		out[a.Info().Action] = a
	}
	return out
}

// approver is a person in the approvers' group.
func approver(t *testing.T, st *Stack) client.Client {
	t.Helper()
	kc, err := st.Cluster.UserKubeconfig("lead", []string{ApproverGroup})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := RESTConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// approve approves p as lead.
func approve(t *testing.T, lead client.Client, p *tendv1.Proposal) {
	t.Helper()
	if err := lead.Create(t.Context(), &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, GenerateName: "approve-"},
		Spec:       tendv1.ApprovalSpec{Proposal: p.Name, SpecHash: p.Status.SpecHash, Decision: tendv1.ApprovalApprove, Approver: "lead", Reason: "checked the node"},
	}); err != nil {
		t.Fatal(err)
	}
}

// waitForPhase waits until p reaches phase, failing at once if it ends in
// another terminal phase.
func waitForPhase(t *testing.T, c client.Client, p *tendv1.Proposal, phase tendv1.Phase) *tendv1.Proposal {
	t.Helper()
	got := &tendv1.Proposal{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		if got.Status.Phase.Terminal() && got.Status.Phase != phase {
			StopTrying("proposal " + got.Name + " ended " + string(got.Status.Phase) + ": " + got.Status.Message).Now()
		}
		g.Expect(got.Status.Phase).To(Equal(phase), "proposal %s: %s", got.Name, got.Status.Message)
	}).WithTimeout(3 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	return got
}

// expectTrail checks p's transitions in the audit chain.
func expectTrail(t *testing.T, st *Stack, p *tendv1.Proposal, want ...string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		recs, err := bus.NewAuditLog(st.JetStream, st.ClusterName).Records(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(bus.VerifyChain(recs, st.AuditPublicKey)).To(Succeed())
		var path []string
		for _, r := range recs {
			if r.Object.Name == p.Name {
				path = append(path, r.From+">"+r.To)
			}
		}
		g.Expect(slices.Equal(path, want)).To(BeTrue(), "trail %v, want %v", path, want)
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
