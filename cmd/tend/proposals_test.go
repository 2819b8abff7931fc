package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp"
)

// TestProposalsApproveRecordsAuthenticatedGroups runs `tend proposals
// approve` as alice against a real API server with tend's admission policy:
// the Approval records her name and the groups the API server authenticated,
// and the policy admits it.
func TestProposalsApproveRecordsAuthenticatedGroups(t *testing.T) {
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
	if _, err := os.Stat(filepath.Join(bin, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver is missing from %s: run make tools (%v)", bin, err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin, Scheme: localstack.Scheme()}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop envtest: %v", err)
		}
	})
	ctx := t.Context()
	admin, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := localstack.Install(ctx, admin); err != nil {
		t.Fatalf("failed to install tend: %v", err)
	}
	alice, err := env.AddUser(envtest.User{Name: "alice", Groups: []string{localstack.ApproverGroup, "oncall"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := alice.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "alice.kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	// The administrator relays the agent's proposal, as tend's MCP server
	// would; the admission policy wants the relay named.
	self, err := mcp.Self(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	p := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "rollback-web"},
		Spec: tendv1.ProposalSpec{
			Action:   tendv1.ActionRollbackWorkload,
			Target:   tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web", UID: "6f1d2c3b-0000-4000-8000-000000000001"},
			Proposer: tendv1.Proposer{Username: "system:serviceaccount:tend-system:tend-agent", Via: self.Username},
		},
	}
	if err := admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = tendv1.ProposalStatus{Phase: tendv1.PhaseAwaitingApproval, SpecHash: p.Spec.Hash()}
	if err := admin.Status().Update(ctx, p); err != nil {
		t.Fatalf("failed to write the proposal's status: %v", err)
	}

	stdout, stderr, err := runTend(t, "proposals", "approve", "rollback-web", "-n", "shop", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("tend proposals approve: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "Approved proposal shop/rollback-web as alice") {
		t.Errorf("unexpected output:\n%s", stdout)
	}
	var list tendv1.ApprovalList
	if err := admin.List(ctx, &list, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("got %d approvals, want 1", len(list.Items))
	}
	got := list.Items[0].Spec
	slices.Sort(got.ApproverGroups)
	want := tendv1.ApprovalSpec{
		Proposal: "rollback-web", SpecHash: p.Spec.Hash(), Decision: tendv1.ApprovalApprove, Approver: "alice",
		ApproverGroups: []string{"oncall", "system:authenticated", localstack.ApproverGroup},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("approval spec (-want +got):\n%s", diff)
	}
}
