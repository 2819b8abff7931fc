package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
	env, admin := startAPIServer(t)
	ctx := t.Context()
	if err := localstack.Install(ctx, admin); err != nil {
		t.Fatalf("failed to install tend: %v", err)
	}
	kubeconfig := userKubeconfig(t, env, envtest.User{Name: "alice", Groups: []string{localstack.ApproverGroup, "oncall"}})

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
