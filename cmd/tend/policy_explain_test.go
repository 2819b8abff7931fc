package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/api/crds"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/policies"
)

// explainCluster is a real API server with tend's CRDs and two kubeconfigs:
// an administrator's and that of a user who may only read proposals.
type explainCluster struct {
	admin                   client.Client
	adminConfig, readerConf string
}

func startExplainCluster(t *testing.T) *explainCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	ctrllog.SetLogger(logr.Discard())
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("control plane binary %s missing from %s: run make tools (%v)", b, bin, err)
		}
	}
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin, CRDs: all, Scheme: localstack.Scheme()}
	if _, err := env.Start(); err != nil {
		t.Fatalf("failed to start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop envtest: %v", err)
		}
	})
	ec := &explainCluster{}
	dir := t.TempDir()
	for _, u := range []struct {
		user envtest.User
		path *string
	}{
		{envtest.User{Name: "admin", Groups: []string{"system:masters"}}, &ec.adminConfig},
		{envtest.User{Name: "reader"}, &ec.readerConf},
	} {
		au, err := env.AddUser(u.user, nil)
		if err != nil {
			t.Fatalf("AddUser %s: %v", u.user.Name, err)
		}
		kc, err := au.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		*u.path = filepath.Join(dir, u.user.Name+".kubeconfig")
		if err := os.WriteFile(*u.path, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		if u.user.Name == "admin" {
			if ec.admin, err = client.New(au.Config(), client.Options{Scheme: localstack.Scheme()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ec
}

func (ec *explainCluster) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := ec.admin.Create(t.Context(), obj); err != nil {
		t.Fatalf("failed to create %T %s: %v", obj, obj.GetName(), err)
	}
}

// TestPolicyExplain runs `tend policy explain` against a real API server: a
// proposal decided under the default bundle, then the same proposal after
// its spec, its namespace and the policies changed.
func TestPolicyExplain(t *testing.T) {
	ec := startExplainCluster(t)
	ctx := t.Context()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"tend.dev/protected": "true"}}}
	ec.create(t, ns)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/web:2"}}},
			},
		},
	}
	ec.create(t, dep)
	bundle, err := policies.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	for i := range bundle {
		ec.create(t, &bundle[i])
	}

	// The proposal, decided as the controller would have: with the default
	// bundle and the facts of the protected namespace, then approved once.
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "rollback-web"},
		Spec: tendv1.ProposalSpec{
			Action:     tendv1.ActionRollbackWorkload,
			Target:     tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web", UID: dep.UID},
			Parameters: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2, ToRevision: 1}},
			Proposer:   tendv1.Proposer{Username: "system:serviceaccount:tend-system:tend-agent"},
		},
	}
	ec.create(t, p)
	g, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Load(bundle)
	decidedAt := time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC)
	facts := &tendv1.Facts{
		TargetExists: true, Replicas: 3, ReadyReplicas: 2,
		Revision:   &tendv1.RevisionFacts{Current: 2, To: 1, ToHealthy: true, Evidence: "revision 1 ran healthy (recorded at 2026-03-14T10:00:00Z)"},
		Disruption: &tendv1.DisruptionFacts{PodsAffected: 0, Percent: 0},
	}
	res := g.Decide(policies.NewInput(p, policies.TargetFacts{Exists: true, Labels: map[string]string{"app": "web"}, Replicas: 3, Facts: facts},
		policies.NamespaceFacts{Exists: true, Labels: ns.Labels}), decidedAt)
	d := res.Decision(p.Spec.Hash(), "", decidedAt)
	d.Facts = facts
	p.Status = tendv1.ProposalStatus{
		Phase:       tendv1.PhaseAwaitingApproval,
		SpecHash:    p.Spec.Hash(),
		DecidedSpec: p.Spec.DeepCopy(),
		Decision:    &d,
		Approvals: []tendv1.ApprovalRecord{{
			Approval: "rollback-web-x1", Approver: "alice", Decision: tendv1.ApprovalApprove, Reason: "looks right",
			Time: metav1.NewTime(decidedAt.Add(time.Minute)),
		}},
	}
	if err := ec.admin.Status().Update(ctx, p); err != nil {
		t.Fatalf("failed to write the proposal's status: %v", err)
	}

	stdout, stderr, err := runTend(t, "policy", "explain", "rollback-web", "-n", "shop", "--kubeconfig", ec.adminConfig)
	if err != nil {
		t.Fatalf("tend policy explain: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	hash := p.Spec.Hash()[:12]
	for _, want := range []string{
		"Proposal:    shop/rollback-web: RollbackWorkload of Deployment shop/web\n",
		"Phase:       AwaitingApproval\n",
		"Decision:    RequireApproval at 2026-03-14T11:00:00Z\n",
		"Decided by:  policy tend-default, rule rollback-protected-namespace\n",
		"             - ProtectedNamespace [policy tend-default, rule rollback-protected-namespace]: The target's namespace is labelled",
		"             - ProtectedNamespace [guard ProtectedResource]: namespace \"shop\" is labelled tend.dev/protected=true",
		"             - SafeRollback [policy tend-default, rule rollback-auto]: Returning a workload",
		"Approvals:   1 approval required; 1 counted\n",
		"             - Approve by alice at 2026-03-14T11:01:00Z: looks right\n",
		"Spec hash:   " + hash + ", the decision's, matches the current spec\n",
		"             - tend-default (generation 1)\n",
		"Target:      Deployment shop/web: found, labels app=web, 3 replicas\n",
		"Namespace:   shop: found, labels kubernetes.io/metadata.name=shop, tend.dev/protected=true\n",
		"Facts:       as the controller read them when it decided; 2 of 3 replicas ready; revision 2 → 1, which ran healthy (revision 1 ran healthy (recorded at 2026-03-14T10:00:00Z)); takes down 0 pods at once (0%)\n",
		"Note:        the kill switch is unknown here and taken as released",
		"Would now decide: RequireApproval by policy tend-default, rule rollback-protected-namespace (1 approval)\n",
		"Compared:    the same decision as recorded\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("explain output does not contain %q:\n%s", want, stdout)
		}
	}

	// Change the world: the spec (the API server refuses: a decided spec is
	// immutable), the namespace (no longer protected) and the policies (a
	// new one denies rollbacks of web).
	p.Spec.Rationale = "revision 2 crashes on start"
	if err := ec.admin.Update(ctx, p); !apierrors.IsInvalid(err) {
		t.Fatalf("updating the spec of a decided proposal = %v, want Invalid", err)
	}
	delete(ns.Labels, "tend.dev/protected")
	if err := ec.admin.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ec.create(t, &tendv1.GatePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-web"},
		Spec: tendv1.GatePolicySpec{Rules: []tendv1.GateRule{{
			Name: "no-web", When: `proposal.target.name == "web"`, Outcome: tendv1.OutcomeDeny, Reason: "WebFrozen", Message: "web is frozen",
		}}},
	})
	stdout, _, err = runTend(t, "policy", "explain", "rollback-web", "-n", "shop", "--kubeconfig", ec.adminConfig)
	if err != nil {
		t.Fatalf("tend policy explain after the changes: %v\n%s", err, stdout)
	}
	for _, want := range []string{
		"Spec hash:   " + hash + ", the decision's, matches the current spec\n",
		"             - freeze-web (generation 1)\n             - tend-default (generation 1)\n",
		"Namespace:   shop: found, labels kubernetes.io/metadata.name=shop\n",
		"Would now decide: Deny by policy freeze-web, rule no-web\n             - WebFrozen [policy freeze-web, rule no-web]: web is frozen\n             - SafeRollback",
		"Compared:    differs from the recorded decision: outcome RequireApproval → Deny; decided by policy tend-default, rule rollback-protected-namespace → policy freeze-web, rule no-web\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("explain output after the changes does not contain %q:\n%s", want, stdout)
		}
	}

	stdout, _, err = runTend(t, "policy", "explain", "rollback-web", "-n", "shop", "--kubeconfig", ec.adminConfig, "--reevaluate=false")
	if err != nil {
		t.Fatalf("tend policy explain --reevaluate=false: %v", err)
	}
	if strings.Contains(stdout, "Would now decide") || !strings.Contains(stdout, "Decided by:  policy tend-default") {
		t.Errorf("--reevaluate=false output:\n%s\nwant the recorded decision only", stdout)
	}

	if _, _, err := runTend(t, "policy", "explain", "nope", "-n", "shop", "--kubeconfig", ec.adminConfig); err == nil || !strings.Contains(err.Error(), "failed to get proposal shop/nope") {
		t.Errorf("explain of a missing proposal: error = %v, want one naming shop/nope", err)
	}

	// A user who may read proposals but not list policies gets the record
	// and a clear error for the rest.
	ec.create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "proposal-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals"}, Verbs: []string{"get"}}},
	})
	ec.create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "proposal-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "reader"}},
	})
	stdout, _, err = runTend(t, "policy", "explain", "rollback-web", "-n", "shop", "--kubeconfig", ec.readerConf)
	if err == nil || !strings.Contains(err.Error(), "cannot re-evaluate (--reevaluate=false skips it): failed to list GatePolicies") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("explain as a reader: error = %v, want a forbidden list of GatePolicies", err)
	}
	if !strings.Contains(stdout, "Decision:    RequireApproval") {
		t.Errorf("explain as a reader printed no recorded decision:\n%s", stdout)
	}
}
