package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

const (
	msgApproverIsCaller = "spec.approver must be the user creating the Approval"
	msgNeedsApproveVerb = "approving needs the verb approve on this proposal"
	msgApproverGroups   = "spec.approverGroups must be the groups the API server authenticated"
)

// admissionCluster is a real API server with Install applied, and users
// authenticated by client certificates.
type admissionCluster struct {
	env    *envtest.Environment
	cfg    *rest.Config
	scheme *k8sruntime.Scheme
	admin  client.Client
}

func startAdmissionCluster(t *testing.T, g *WithT) *admissionCluster {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "..", "bin"))
	g.Expect(err).NotTo(HaveOccurred())
	if _, err := os.Stat(filepath.Join(bin, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver is missing from %s: run make tools (%v)", bin, err)
	}
	scheme := Scheme()
	env := &envtest.Environment{BinaryAssetsDirectory: bin, Scheme: scheme}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start kube-apiserver and etcd from %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop the control plane: %v", err)
		}
	})
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(Install(t.Context(), admin)).To(Succeed())
	return &admissionCluster{env: env, cfg: cfg, scheme: scheme, admin: admin}
}

// user returns a client that authenticates as name in groups.
func (ac *admissionCluster) user(t *testing.T, g *WithT, name string, groups ...string) client.Client {
	t.Helper()
	u, err := ac.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(u.Config(), client.Options{Scheme: ac.scheme})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// allowApprovalsWithoutApproveVerb lets user create Approvals in ns without
// holding the verb approve: RBAC lets such a request through and the
// admission policy must stop it.
func (ac *admissionCluster) allowApprovalsWithoutApproveVerb(t *testing.T, g *WithT, ns, user string) {
	t.Helper()
	g.Expect(ac.admin.Create(t.Context(), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "approval-writer"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"approvals"}, Verbs: []string{"create", "get"},
		}},
	})).To(Succeed())
	g.Expect(ac.admin.Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "approval-writer-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "approval-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})).To(Succeed())
}

// whoami returns the caller's username and groups as the API server
// authenticates them, as `tend proposals approve` asks.
func whoami(t *testing.T, g *WithT, c client.Client) (string, []string) {
	t.Helper()
	ssr := &authnv1.SelfSubjectReview{}
	g.Expect(c.Create(t.Context(), ssr)).To(Succeed())
	return ssr.Status.UserInfo.Username, ssr.Status.UserInfo.Groups
}

// The API server, not tend, decides who may approve: Install's admission
// policy admits an Approval only from a user holding the verb approve on the
// proposal, only in that user's own name and with that user's own groups.
func TestApprovalAdmission(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	ctx := t.Context()
	ac := startAdmissionCluster(t, g)
	admin := ac.admin
	alice := ac.user(t, g, "alice", ApproverGroup)
	mallory := ac.user(t, g, "mallory")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	g.Expect(admin.Create(ctx, ns)).To(Succeed())
	// Mallory may create Approvals, but holds no approve verb on proposals.
	ac.allowApprovalsWithoutApproveVerb(t, g, ns.Name, "mallory")

	// The administrator relays the agent's proposal, as tend's MCP server
	// does, and so names itself as the relay.
	adminName, _ := whoami(t, g, admin)
	proposal := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "rollback-web"},
		Spec: tendv1.ProposalSpec{
			Action:   tendv1.ActionRollbackWorkload,
			Target:   tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns.Name, Name: "web", UID: "6f1d2c3b-0000-4000-8000-000000000002"},
			Proposer: tendv1.Proposer{Username: "system:serviceaccount:" + SystemNamespace + ":" + AgentAccount, Via: adminName},
		},
	}
	g.Expect(admin.Create(ctx, proposal)).To(Succeed())
	hash := proposal.Spec.Hash()
	approval := func(name, approver string) *tendv1.Approval {
		return &tendv1.Approval{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec: tendv1.ApprovalSpec{
				Proposal: proposal.Name, SpecHash: hash, Decision: tendv1.ApprovalApprove, Approver: approver,
			},
		}
	}

	// RBAC and the admission policy take effect once the API server's
	// informers saw them; a dry run asks without leaving anything behind.
	g.Eventually(func() error {
		return mallory.Create(context.Background(), approval("probe", "mallory"), client.DryRunAll)
	}).Should(MatchError(ContainSubstring(msgNeedsApproveVerb)))

	err := mallory.Create(ctx, approval("by-mallory", "mallory"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory's approval: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgNeedsApproveVerb))

	err = alice.Create(ctx, approval("alice-as-bob", "bob"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice claiming bob: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgApproverIsCaller))

	err = mallory.Create(ctx, approval("mallory-as-alice", "alice"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory claiming alice: %v", err)

	g.Expect(alice.Create(ctx, approval("by-alice", "alice"))).To(Succeed())

	// Groups, when recorded, are exactly the caller's own, in any order.
	_, groups := whoami(t, g, alice)
	g.Expect(groups).To(ConsistOf(ApproverGroup, "system:authenticated"))
	more := approval("alice-in-sre", "alice")
	more.Spec.ApproverGroups = append(slices.Clone(groups), "sre")
	err = alice.Create(ctx, more)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice claiming sre: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgApproverGroups))
	fewer := approval("alice-fewer-groups", "alice")
	fewer.Spec.ApproverGroups = []string{ApproverGroup}
	err = alice.Create(ctx, fewer)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice leaving out a group: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgApproverGroups))
	own := approval("by-alice-with-groups", "alice")
	own.Spec.ApproverGroups = slices.Clone(groups)
	slices.Reverse(own.Spec.ApproverGroups)
	g.Expect(alice.Create(ctx, own)).To(Succeed())

	var list tendv1.ApprovalList
	g.Expect(admin.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
	names := []string{}
	for _, a := range list.Items {
		names = append(names, a.Name+"/"+a.Spec.Approver)
	}
	g.Expect(names).To(Equal([]string{"by-alice/alice", "by-alice-with-groups/alice"}))
}

// startControllers runs tend's proposal and approval controllers against the
// cluster as tend's controller service account, with its RBAC only, until
// the test ends. The gate holds the cluster's GatePolicies as they are now.
func (ac *admissionCluster) startControllers(t *testing.T, g *WithT) {
	t.Helper()
	ctrllog.SetLogger(logr.Discard()) // the manager logs through its own logger
	gate, err := policies.New(policies.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	var gps tendv1.GatePolicyList
	g.Expect(ac.admin.List(t.Context(), &gps)).To(Succeed())
	for _, r := range gate.Load(gps.Items) {
		g.Expect(r.Valid).To(BeTrue(), "policy %s: %v", r.Name, r.Err)
	}
	cfg := rest.CopyConfig(ac.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + SystemNamespace + ":" + ControllerAccount}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: ac.scheme,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{SystemNamespace: {}}},
		}},
		Logger:                 testr.NewWithOptions(t, testr.Options{LogTimestamp: true}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The end-to-end test of this package runs the same controllers in
		// the same process; their names must not clash.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&controllers.ProposalReconciler{
		Client: mgr.GetClient(), Gate: gate, Recorder: mgr.GetEventRecorder("tend-proposal-controller"),
		Options: controllers.ProposalOptions{SystemNamespace: SystemNamespace},
	}).SetupWithManager(mgr)).To(Succeed())
	g.Expect((&controllers.ApprovalReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-approval-controller"),
	}).SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with an error: %v", err)
		}
	})
}

// Every approval that must not count is rejected at admission or recorded
// as not counted, with its reason: one from a user without the verb
// approve, one claiming a group its author is not in, one for a proposal
// that does not exist, one for a stale spec hash, one from the proposer and
// one from an approver outside the rule's groups. Only a member of the
// rule's group counts. Real users, RBAC, admission policy and controllers.
func TestApprovalsRejectedAtAdmissionOrNeverCounted(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	ctx := t.Context()
	ac := startAdmissionCluster(t, g)
	admin := ac.admin

	// Alice and bob may approve, and bob is in sre. The agent proposes; it
	// was given the verb approve as well, a mistake tend must survive.
	// Mallory may create Approvals but not approve.
	alice := ac.user(t, g, "alice", ApproverGroup)
	bob := ac.user(t, g, "bob", ApproverGroup, "sre")
	agent := ac.user(t, g, "agent", ApproverGroup)
	mallory := ac.user(t, g, "mallory")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"tend.test/approvers": "sre"}}}
	g.Expect(admin.Create(ctx, ns)).To(Succeed())
	ac.allowApprovalsWithoutApproveVerb(t, g, ns.Name, "mallory")
	g.Expect(admin.Create(ctx, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-approvers"},
		Spec: tendv1.GatePolicySpec{
			Actions: []tendv1.Action{tendv1.ActionRollbackWorkload},
			Rules: []tendv1.GateRule{{
				Name:      "sre-approvers",
				When:      `proposal.namespace.labels[?"tend.test/approvers"].orValue("") == "sre"`,
				Outcome:   tendv1.OutcomeRequireApproval,
				Approvals: &tendv1.ApprovalRequirement{Count: 1, Groups: []string{"sre"}},
				Reason:    "SREApproval",
			}},
		},
	})).To(Succeed())
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/web:2"}}},
			},
		},
	}
	g.Expect(admin.Create(ctx, web)).To(Succeed())
	ac.startControllers(t, g)
	adminName, _ := whoami(t, g, admin)

	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "rollback-web"},
		Spec: tendv1.ProposalSpec{
			Action: tendv1.ActionRollbackWorkload,
			Target: tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns.Name, Name: web.Name,
				UID: web.UID, ResourceVersion: web.ResourceVersion, Generation: web.Generation},
			Parameters: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2}},
			Rationale:  "Revision 1 ran healthy; revision 2 crash-loops since its rollout.",
			Risk:       tendv1.RiskLow,
			Proposer:   tendv1.Proposer{Username: "agent", Agent: "maintenance", Via: adminName},
		},
	}
	g.Expect(admin.Create(ctx, p)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval), p.Status.Message)
	}).Should(Succeed())
	g.Expect(p.Status.Decision.ApproverGroups).To(Equal([]string{"sre"}))
	hash := p.Status.SpecHash
	other := p.Spec.DeepCopy()
	other.Rationale = "something else"

	// approval is what `tend proposals approve` creates: the caller's name
	// and groups as the API server authenticated them.
	n := 0
	approval := func(c client.Client, proposal, specHash string, extraGroups ...string) *tendv1.Approval {
		t.Helper()
		name, groups := whoami(t, g, c)
		n++
		return &tendv1.Approval{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("%s-%d", name, n)},
			Spec: tendv1.ApprovalSpec{Proposal: proposal, SpecHash: specHash, Decision: tendv1.ApprovalApprove,
				Approver: name, ApproverGroups: append(groups, extraGroups...)},
		}
	}
	approve := func(c client.Client, proposal, specHash string) *tendv1.Approval {
		t.Helper()
		a := approval(c, proposal, specHash)
		g.Expect(c.Create(ctx, a)).To(Succeed(), "approval by %s", a.Spec.Approver)
		return a
	}
	status := func(a *tendv1.Approval, counted bool, msg string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			got := &tendv1.Approval{}
			g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(a), got)).To(Succeed())
			g.Expect(got.Status.Message).To(ContainSubstring(msg))
			g.Expect(got.Status.Counted).To(Equal(counted))
		}).Should(Succeed(), "approval %s", a.Name)
	}

	// Rejected at admission. RBAC and the policy take effect once the API
	// server's informers saw them; a dry run asks without leaving anything
	// behind.
	g.Eventually(func() error {
		return mallory.Create(context.Background(), approval(mallory, p.Name, hash), client.DryRunAll)
	}).Should(MatchError(ContainSubstring(msgNeedsApproveVerb)))
	err := mallory.Create(ctx, approval(mallory, p.Name, hash))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory's approval: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgNeedsApproveVerb))
	err = alice.Create(ctx, approval(alice, p.Name, hash, "sre"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice claiming sre: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgApproverGroups))

	// Admitted, recorded, never counted.
	ghost := approve(alice, "ghost", hash)
	stale := approve(bob, p.Name, other.Hash())
	self := approve(agent, p.Name, hash)
	outside := approve(alice, p.Name, hash)
	status(ghost, false, "Proposal ghost does not exist")
	status(stale, false, "Spec hash is stale: the proposal's current hash is "+hash)
	status(self, false, "The approver is the proposer (agent)")
	status(outside, false, "Approver alice is not in the required groups (sre); the approval's groups: "+ApproverGroup+", system:authenticated")
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(tendv1.PhaseAwaitingApproval))
		g.Expect(p.Status.Message).To(Equal("Awaiting approval: 0 of 1"))
		g.Expect(p.Status.Approvals).To(BeEmpty())
	}).Should(Succeed())

	// Bob, of sre, approves: his is the one approval on record. Had any
	// other counted, the proposal would have left AwaitingApproval with it
	// on record before bob's existed.
	byBob := approve(bob, p.Name, hash)
	status(byBob, true, "Counts for proposal "+p.Name)
	g.Eventually(func(g Gomega) []string {
		g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).NotTo(Equal(tendv1.PhaseAwaitingApproval))
		var who []string
		for _, a := range p.Status.Approvals {
			who = append(who, a.Approval+"/"+a.Approver)
		}
		return who
	}).Should(Equal([]string{byBob.Name + "/bob"}))
	status(self, false, "The approver is the proposer")
	status(stale, false, "Spec hash is stale")

	var list tendv1.ApprovalList
	g.Expect(admin.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
	var stored []string
	for _, a := range list.Items {
		stored = append(stored, a.Name)
	}
	g.Expect(stored).To(ConsistOf(ghost.Name, stale.Name, self.Name, outside.Name, byBob.Name))
}
