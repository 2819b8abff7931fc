package localstack

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

const (
	msgApproverIsCaller = "spec.approver must be the user creating the Approval"
	msgNeedsApproveVerb = "approving needs the verb approve on this proposal"
)

// The API server, not tend, decides who may approve: Install's admission
// policy admits an Approval only from a user holding the verb approve on the
// proposal, and only in that user's own name.
func TestApprovalAdmission(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	ctx := t.Context()

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
	g.Expect(Install(ctx, admin)).To(Succeed())

	userClient := func(name string, groups ...string) client.Client {
		t.Helper()
		u, err := env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
		g.Expect(err).NotTo(HaveOccurred())
		c, err := client.New(u.Config(), client.Options{Scheme: scheme})
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	alice := userClient("alice", ApproverGroup)
	mallory := userClient("mallory")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	g.Expect(admin.Create(ctx, ns)).To(Succeed())
	// Mallory may create Approvals, but holds no approve verb on proposals:
	// RBAC lets her request through and the admission policy must stop it.
	g.Expect(admin.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "approval-writer"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"approvals"}, Verbs: []string{"create", "get"},
		}},
	})).To(Succeed())
	g.Expect(admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "approval-writer-mallory"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "approval-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
	})).To(Succeed())

	proposal := &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "rollback-web"},
		Spec: tendv1.ProposalSpec{
			Action:   tendv1.ActionRollbackWorkload,
			Target:   tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns.Name, Name: "web"},
			Proposer: tendv1.Proposer{Username: "system:serviceaccount:" + SystemNamespace + ":" + AgentAccount},
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

	err = mallory.Create(ctx, approval("by-mallory", "mallory"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory's approval: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgNeedsApproveVerb))

	err = alice.Create(ctx, approval("alice-as-bob", "bob"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice claiming bob: %v", err)
	g.Expect(err.Error()).To(ContainSubstring(msgApproverIsCaller))

	err = mallory.Create(ctx, approval("mallory-as-alice", "alice"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "mallory claiming alice: %v", err)

	g.Expect(alice.Create(ctx, approval("by-alice", "alice"))).To(Succeed())

	var list tendv1.ApprovalList
	g.Expect(admin.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
	names := []string{}
	for _, a := range list.Items {
		names = append(names, a.Name+"/"+a.Spec.Approver)
	}
	g.Expect(names).To(Equal([]string{"by-alice/alice"}))
}
