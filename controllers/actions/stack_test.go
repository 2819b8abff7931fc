package actions_test

// The catalogue's tests run every action on the local stack: a real control
// plane (kube-apiserver, kube-controller-manager, kube-scheduler) with kwok
// nodes whose kubelet is simulated, tend's controller, gate and admission
// policies. Each action has its own test file; each test works in its own
// namespace (and its own nodes, for node actions), in parallel with the
// others, on one stack that TestMain stops. Proposals are made by a person
// ("sre") and approved, where the default bundle wants a human, by another
// ("lead", an approver). There is no agent in this stack: the tests are the
// only proposers.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/localstack"
)

// Timings of the test stack: short, so that a failing verification is
// undone within seconds.
const (
	stableWindow  = 3 * time.Second
	verifyTimeout = 25 * time.Second
	stuckPodGrace = 2 * time.Second
	fieldManager  = "tend-proposal-controller"
	testImage     = "registry.tend.local/test/app:1"
	jobImage      = "registry.tend.local/test/batch:job"
	configMapName = "app-config"
)

// testFaults are how the simulated kubelet fails a container because of
// its spec, or its pod because of what the spec refers to:
//   - a pod waits until the simulated kubelet resolved its environment, and
//     fails with CreateContainerConfigError when a ConfigMap key it needs is
//     missing (how a test breaks a workload's replacement pods without
//     touching its spec: it deletes the ConfigMap);
//   - a 16Mi memory limit is OOMKilled;
//   - a readiness probe on port 9999 never passes;
//   - a container whose MODE (from the ConfigMap) is "fail" exits 1; a
//     :job image completes.
var testFaults = []localstack.Fault{
	{Name: "env-wait", Pod: true, Kind: localstack.FaultWait,
		When: `[.status.conditions[]? | select(.type == "` + localstack.EnvConditionType + `")] | length == 0`},
	{Name: "env-error", Pod: true, Kind: localstack.FaultConfigError, EventReason: "Failed",
		When:    `any(.status.conditions[]?; .type == "` + localstack.EnvConditionType + `" and .status == "False")`,
		Message: "Error: CreateContainerConfigError: a ConfigMap key the container needs is missing"},
	{Name: "oom", When: `.resources.limits.memory == "16Mi"`, Reason: "OOMKilled", ExitCode: 137},
	{Name: "probe-port", Kind: localstack.FaultNotReady, When: `.readinessProbe.httpGet.port == 9999`},
	{Name: "job-fails", When: `($env.MODE // "") == "fail"`, Reason: "Error", ExitCode: 1},
	{Name: "job-completes", Kind: localstack.FaultComplete, Seconds: 2, When: `.image | endswith(":job")`},
}

var shared struct {
	once   sync.Once
	st     *localstack.Stack
	sim    *localstack.Simulator
	err    error
	stop   context.CancelFunc
	dir    string
	sre    client.Client
	lead   client.Client
	nodeMu sync.Mutex
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if shared.sim != nil {
		shared.sim.Stop()
	}
	if shared.st != nil {
		shared.st.Stop()
		shared.stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// env is one test's view of the shared stack.
type env struct {
	t  *testing.T
	g  *WithT
	st *localstack.Stack
	// ns is the test's own namespace.
	ns string
}

// newEnv returns the shared stack, starting it on first use, and a
// namespace of the test's own with the ConfigMap its workloads read.
func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("the catalogue's tests need the local control plane")
	}
	t.Parallel()
	bin := binDir(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		shared.stop = cancel
		if shared.dir, shared.err = os.MkdirTemp("", "tend-actions-"); shared.err != nil {
			return
		}
		shared.st, shared.err = localstack.Start(ctx, localstack.Options{
			BinDir: bin, WorkDir: shared.dir, ClusterName: "actions", Nodes: 3, Faults: testFaults, NoAgents: true,
			Proposal: controllers.ProposalOptions{StableWindow: stableWindow, VerifyTimeout: verifyTimeout, StuckPodGrace: stuckPodGrace},
		})
		if shared.err != nil {
			return
		}
		if shared.sim, shared.err = localstack.StartSimulator(ctx, shared.st.Config, localstack.SimulatorOptions{Faults: testFaults}); shared.err != nil {
			return
		}
		if shared.sre, shared.lead, shared.err = people(ctx, shared.st); shared.err != nil {
			return
		}
		shared.err = shared.st.Client.Create(ctx, testLimits())
	})
	if shared.err != nil {
		t.Fatalf("failed to start the local stack: %v", shared.err)
	}
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(2 * time.Minute)
	g.SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	e := &env{t: t, g: g, st: shared.st}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "act-"}}
	g.Expect(e.st.Client.Create(t.Context(), ns)).To(Succeed())
	e.ns = ns.Name
	t.Cleanup(func() { _ = e.st.Client.Delete(context.Background(), ns) })
	e.create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: configMapName}, Data: map[string]string{"mode": "serve"}})
	return e
}

// testLimits widens the guards' limits that count across tests, since
// they run in parallel on one cluster, and per target, since each test
// proposes to its target several times: rates, breakers, how many apply at
// once and how many nodes are out of service. Every other guard, and every
// rule of the default bundle, stays as installed.
func testLimits() *tendv1.GatePolicy {
	window := metav1.Duration{Duration: 10 * time.Minute}
	return &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-limits"},
		Spec: tendv1.GatePolicySpec{
			Rules: []tendv1.GateRule{{Name: "never", When: "false", Outcome: tendv1.OutcomeDeny, Reason: "Never"}},
			Guards: &tendv1.GuardLimits{
				MaxNodesDisrupted:     ptr.To[int32](20),
				MaxApplyingPerCluster: ptr.To[int32](100),
				RateLimits: []tendv1.RateLimit{
					{Action: "*", Per: tendv1.RateScopeCluster, Max: 1000, Window: window},
					{Action: "*", Per: tendv1.RateScopeProposer, Max: 1000, Window: window},
					{Action: "*", Per: tendv1.RateScopeTarget, Max: 100, Window: window},
				},
				CircuitBreaker: &tendv1.CircuitBreakerLimits{MaxFailures: ptr.To[int32](1000), MaxProposals: ptr.To[int32](1000),
					MaxFailuresPerProposer: ptr.To[int32](1000), MaxFailuresPerTarget: ptr.To[int32](10)},
			},
		},
	}
}

// binDir is where `make tools` puts the control plane.
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

// people makes the proposer sre (create on proposals, cluster-wide, and on
// proposals/cluster) and the approver lead (in tend's approvers group).
func people(ctx context.Context, st *localstack.Stack) (sre, lead client.Client, err error) {
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:proposer"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals", "proposals/cluster"}, Verbs: []string{"create", "get", "list", "watch"}},
		}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test:proposer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test:proposer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "sre"}}},
	} {
		if err := st.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, nil, err
		}
	}
	as := func(name string, groups ...string) (client.Client, error) {
		kc, err := st.Cluster.UserKubeconfig(name, groups)
		if err != nil {
			return nil, err
		}
		cfg, err := localstack.RESTConfig(kc)
		if err != nil {
			return nil, err
		}
		return client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	}
	if sre, err = as("sre"); err != nil {
		return nil, nil, err
	}
	lead, err = as("lead", localstack.ApproverGroup)
	return sre, lead, err
}

func (e *env) ctx() context.Context { return e.t.Context() }

func (e *env) create(o client.Object) {
	e.t.Helper()
	e.g.Expect(e.st.Client.Create(e.ctx(), o)).To(Succeed())
}

// get reads o again.
func (e *env) get(g Gomega, o client.Object) {
	g.Expect(e.st.Client.Get(context.Background(), client.ObjectKeyFromObject(o), o)).To(Succeed())
}

// podSpec is the test workloads' pod: one container that reads the
// namespace's ConfigMap, listens on 8080 with a readiness probe, and asks
// for 32Mi of memory with a 64Mi limit.
func podSpec() corev1.PodSpec {
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{{
			Name: "app", Image: testImage,
			Env: []corev1.EnvVar{{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: configMapName}, Key: "mode"}}}},
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080), Path: "/ready"}}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
			},
		}},
	}
}

// deployment creates Deployment name with replicas and waits until all are
// ready.
func (e *env) deployment(name string, replicas int32, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	e.t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
	for _, m := range mutate {
		m(d)
	}
	e.create(d)
	e.waitReady(d, replicas)
	return d
}

// waitReady waits until workload d has want ready replicas and a complete
// rollout.
func (e *env) waitReady(d *appsv1.Deployment, want int32) {
	e.t.Helper()
	e.g.Eventually(func(g Gomega) {
		e.get(g, d)
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.ReadyReplicas).To(Equal(want))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(want))
		g.Expect(d.Status.Replicas).To(Equal(want))
	}).Should(Succeed(), "deployment %s/%s never had %d ready replicas", d.Namespace, d.Name, want)
}

// breakConfig deletes the namespace's ConfigMap: running pods keep going,
// new ones fail with CreateContainerConfigError.
func (e *env) breakConfig() {
	e.t.Helper()
	e.g.Expect(e.st.Client.Delete(e.ctx(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: configMapName}})).To(Succeed())
}

// proposal builds sre's proposal of action for target, pinned to the
// target as the API server has it now; proposals for cluster-scoped targets
// live in tend's namespace.
func (e *env) proposal(action tendv1.Action, target client.Object, params tendv1.Parameters) *tendv1.Proposal {
	e.t.Helper()
	e.g.Expect(e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(target), target)).To(Succeed())
	gvk, err := e.st.Client.GroupVersionKindFor(target)
	e.g.Expect(err).NotTo(HaveOccurred())
	ns := target.GetNamespace()
	if ns == "" {
		ns = localstack.SystemNamespace
	}
	return &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "test-"},
		Spec: tendv1.ProposalSpec{
			Action: action,
			Target: tendv1.TargetRef{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: target.GetNamespace(), Name: target.GetName(),
				UID: target.GetUID(), ResourceVersion: target.GetResourceVersion(), Generation: target.GetGeneration()},
			Parameters:  params,
			Evidence:    tendv1.Evidence{Summary: fmt.Sprintf("test of %s on %s", action, target.GetName())},
			Risk:        tendv1.RiskLow,
			Proposer:    tendv1.Proposer{Username: "sre"},
			Fingerprint: "test-" + rand.String(10),
		},
	}
}

// propose creates p as sre.
func (e *env) propose(p *tendv1.Proposal) *tendv1.Proposal {
	e.t.Helper()
	e.g.Expect(shared.sre.Create(e.ctx(), p)).To(Succeed())
	return p
}

// approve approves p as lead, once the gate asked for a human.
func (e *env) approve(p *tendv1.Proposal) {
	e.t.Helper()
	p = e.waitPhase(p, tendv1.PhaseAwaitingApproval)
	e.g.Expect(shared.lead.Create(e.ctx(), &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, GenerateName: "approve-"},
		Spec: tendv1.ApprovalSpec{Proposal: p.Name, SpecHash: p.Status.SpecHash, Decision: tendv1.ApprovalApprove,
			Approver: "lead", Reason: "test"},
	})).To(Succeed())
}

// approveIfAsked approves p if the gate asks a human, and leaves it
// otherwise.
func (e *env) approveIfAsked(p *tendv1.Proposal) {
	e.t.Helper()
	got := &tendv1.Proposal{}
	e.g.Eventually(func(g Gomega) tendv1.Phase {
		g.Expect(e.st.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		return got.Status.Phase
	}).ShouldNot(Or(BeEmpty(), Equal(tendv1.PhasePending)))
	if got.Status.Phase == tendv1.PhaseAwaitingApproval {
		e.approve(p)
	}
}

// setMode sets the namespace's ConfigMap key mode.
func (e *env) setMode(mode string) {
	e.t.Helper()
	e.g.Eventually(func() error {
		cm := &corev1.ConfigMap{}
		if err := e.st.Client.Get(e.ctx(), client.ObjectKey{Namespace: e.ns, Name: configMapName}, cm); err != nil {
			return err
		}
		cm.Data["mode"] = mode
		return e.st.Client.Update(e.ctx(), cm)
	}).Should(Succeed())
}

// waitPhase waits until p reaches phase, and fails at once if it ends in
// another terminal phase.
func (e *env) waitPhase(p *tendv1.Proposal, phase tendv1.Phase) *tendv1.Proposal {
	e.t.Helper()
	got := &tendv1.Proposal{}
	e.g.Eventually(func(g Gomega) tendv1.Phase {
		g.Expect(e.st.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		if got.Status.Phase != phase && got.Status.Phase.Terminal() {
			e.t.Fatalf("proposal %s ended %s, want %s: %s%s", got.Name, got.Status.Phase, phase, got.Status.Message, reasons(got))
		}
		return got.Status.Phase
	}).WithTimeout(verifyTimeout+2*time.Minute).Should(Equal(phase), func() string {
		return fmt.Sprintf("proposal %s/%s: %s%s", got.Namespace, got.Name, got.Status.Message, reasons(got))
	})
	return got
}

// reasons lists a proposal's decision reasons, for messages.
func reasons(p *tendv1.Proposal) string {
	if p.Status.Decision == nil {
		return ""
	}
	b, _ := json.Marshal(p.Status.Decision.Reasons)
	return " " + string(b)
}

// codes are the reason codes of p's decision.
func codes(p *tendv1.Proposal) []string {
	var out []string
	if p.Status.Decision != nil {
		for _, r := range p.Status.Decision.Reasons {
			out = append(out, r.Code)
		}
	}
	return out
}

// writeTime is when tend's field manager last wrote o, to the second: a
// second write (after a second or more) moves it.
func writeTime(o client.Object) (time.Time, bool) {
	var last time.Time
	found := false
	for _, mf := range o.GetManagedFields() {
		if mf.Manager == fieldManager && mf.Time != nil && mf.Time.After(last) {
			last, found = mf.Time.Time, true
		}
	}
	return last, found
}

// noMoreWrites pokes the finished proposal p (an annotation: every change
// makes the controller reconcile it) twice, a second apart, and checks that
// neither the proposal's status nor target moves: tend wrote the target once.
// A nil target (a pod the action removed) checks the proposal alone.
func (e *env) noMoreWrites(p *tendv1.Proposal, target client.Object) {
	e.t.Helper()
	before := &tendv1.Proposal{}
	e.g.Eventually(func(g Gomega) {
		g.Expect(e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(p), before)).To(Succeed())
		g.Expect(before.Status.Phase.Terminal()).To(BeTrue(), "proposal %s is %s, not finished", before.Name, before.Status.Phase)
		g.Expect(before.Status.AuditOutbox).To(BeEmpty(), "the audit records are not published yet")
	}).Should(Succeed())
	var wrote time.Time
	var generation int64
	if target != nil {
		e.get(e.g, target)
		var ok bool
		wrote, ok = writeTime(target)
		e.g.Expect(ok).To(BeTrue(), "tend never wrote %s", target.GetName())
		generation = target.GetGeneration()
	}
	for i := range 2 {
		time.Sleep(1100 * time.Millisecond)
		poked := before.DeepCopy()
		e.g.Eventually(func() error {
			if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(p), poked); err != nil {
				return err
			}
			metav1.SetMetaDataAnnotation(&poked.ObjectMeta, "test.tend.dev/poke", fmt.Sprint(i))
			return e.st.Client.Update(e.ctx(), poked)
		}).Should(Succeed())
	}
	e.g.Consistently(func(g Gomega) {
		now := &tendv1.Proposal{}
		g.Expect(e.st.Client.Get(context.Background(), client.ObjectKeyFromObject(p), now)).To(Succeed())
		g.Expect(now.Status).To(Equal(before.Status), "the finished proposal's status moved")
		if target == nil {
			return
		}
		e.get(g, target)
		w, _ := writeTime(target)
		g.Expect(w).To(Equal(wrote), "tend wrote the target again")
		if generation != 0 {
			g.Expect(target.GetGeneration()).To(Equal(generation), "the target's spec changed")
		}
	}).WithTimeout(3 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// staleIsDecidedAgain proposes a change to target pinned to its state
// before change ran: the controller reads the live target, finds it is not
// what was proposed, and the gate's record says so (Denied, TargetChanged),
// with nothing written.
func (e *env) staleIsDecidedAgain(action tendv1.Action, target client.Object, params tendv1.Parameters, change func()) {
	e.t.Helper()
	p := e.proposal(action, target, params)
	change()
	e.get(e.g, target)
	wrote, _ := writeTime(target)
	e.propose(p)
	got := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(got)).To(ContainElement(controllers.ReasonStale), "decision %s", reasons(got))
	e.g.Expect(got.Status.Apply).To(BeNil())
	e.get(e.g, target)
	w, _ := writeTime(target)
	e.g.Expect(w).To(Equal(wrote), "a stale proposal wrote the target")
}

// bumpTemplate changes a Deployment's pod template (a label), as another
// writer would, and so its generation.
func (e *env) bumpTemplate(d *appsv1.Deployment) func() {
	return func() {
		e.t.Helper()
		e.g.Eventually(func() error {
			cur := &appsv1.Deployment{}
			if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(d), cur); err != nil {
				return err
			}
			cur.Spec.Template.Labels["touched"] = rand.String(5)
			return e.st.Client.Update(e.ctx(), cur)
		}).Should(Succeed())
	}
}

// jsonValue is v as a patch value.
func jsonValue(v any) *apiextensionsv1.JSON {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &apiextensionsv1.JSON{Raw: b}
}

// lostAnnotation marks a node whose kubelet is gone (kwok never makes it
// ready), and a pod on it whose deletion is never confirmed.
const lostAnnotation = "tend.dev/simulated-lost"

// testTaint keeps other tests' pods off a test's own nodes.
func (e *env) testTaint() corev1.Taint {
	return corev1.Taint{Key: "tend.dev/test", Value: e.ns, Effect: corev1.TaintEffectNoSchedule}
}

// node creates a node of the test's own, tainted for it, that kwok runs
// (managed) or that nothing runs (a lost node: no kubelet, never ready),
// and waits for a managed one to be ready.
func (e *env) node(suffix string, managed bool) *corev1.Node {
	e.t.Helper()
	name := e.ns + "-" + suffix
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, "tend.dev/test": e.ns}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{e.testTaint()}},
	}
	if !managed {
		n.Annotations = map[string]string{lostAnnotation: "true"}
	}
	e.create(n)
	e.t.Cleanup(func() {
		_ = e.st.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	if managed {
		e.g.Eventually(func(g Gomega) bool {
			e.get(g, n)
			return isReady(n)
		}).Should(BeTrue(), "node %s never became ready", name)
	}
	return n
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// onTestNodes makes a pod template run on the test's own nodes only.
func (e *env) onTestNodes(spec *corev1.PodSpec) {
	spec.NodeSelector = map[string]string{"tend.dev/test": e.ns}
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: "tend.dev/test", Operator: corev1.TolerationOpEqual, Value: e.ns, Effect: corev1.TaintEffectNoSchedule})
}

// podsOf lists the pods of a workload's selector in the test's namespace.
func (e *env) podsOf(g Gomega, app string) []corev1.Pod {
	var list corev1.PodList
	g.Expect(e.st.Client.List(context.Background(), &list, client.InNamespace(e.ns), client.MatchingLabels{"app": app})).To(Succeed())
	return list.Items
}

// statefulSet creates StatefulSet name with replicas (pods started in
// parallel) and waits until all are ready.
func (e *env) statefulSet(name string, replicas int32, mutate ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	e.t.Helper()
	labels := map[string]string{"app": name}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template:            corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	e.create(s)
	e.waitStatefulSet(s, replicas)
	return s
}

// waitStatefulSet waits until s has want ready replicas.
func (e *env) waitStatefulSet(s *appsv1.StatefulSet, want int32) {
	e.t.Helper()
	e.g.Eventually(func(g Gomega) {
		e.get(g, s)
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(s.Status.ReadyReplicas).To(Equal(want))
	}).Should(Succeed(), "statefulset %s/%s never had %d ready replicas", s.Namespace, s.Name, want)
}

// pod reads pod name of the test's namespace.
func (e *env) pod(g Gomega, name string) *corev1.Pod {
	p := &corev1.Pod{}
	g.Expect(e.st.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, p)).To(Succeed())
	return p
}

// replaced waits until pod name exists again with another UID than old.
func (e *env) replaced(name string, old types.UID) *corev1.Pod {
	e.t.Helper()
	var p *corev1.Pod
	e.g.Eventually(func(g Gomega) types.UID {
		p = e.pod(g, name)
		return p.UID
	}).ShouldNot(Equal(old))
	return p
}

// setUnschedulable cordons or uncordons node n as another writer would.
func (e *env) setUnschedulable(n *corev1.Node, v bool) {
	e.t.Helper()
	e.g.Eventually(func() error {
		cur := &corev1.Node{}
		if err := e.st.Client.Get(e.ctx(), client.ObjectKeyFromObject(n), cur); err != nil {
			return err
		}
		cur.Spec.Unschedulable = v
		return e.st.Client.Update(e.ctx(), cur)
	}).Should(Succeed())
}

// recreateNode deletes node n and creates it again under its name, as a
// replaced machine would be: another UID.
func (e *env) recreateNode(n *corev1.Node) func() {
	return func() {
		e.t.Helper()
		old := n.UID
		e.g.Expect(e.st.Client.Delete(e.ctx(), n)).To(Succeed())
		e.g.Eventually(func() error {
			fresh := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}, Spec: corev1.NodeSpec{Taints: n.Spec.Taints}}
			return e.st.Client.Create(e.ctx(), fresh)
		}).Should(Succeed())
		e.g.Eventually(func(g Gomega) types.UID {
			e.get(g, n)
			return n.UID
		}).ShouldNot(Equal(old))
	}
}

// pinnedTo makes a pod template run only on node name (by its hostname).
func (e *env) pinnedTo(name string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		e.onTestNodes(&d.Spec.Template.Spec)
		d.Spec.Template.Spec.NodeSelector[corev1.LabelHostname] = name
	}
}
