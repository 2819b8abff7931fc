package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

func TestRepeatsAreCountedOnceOnTheOpenProposal(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	js := startNATS(t)
	c := kube(t)
	startManager(t, []string{ns}, func(mgr ctrl.Manager) error {
		return mgr.Add(&controllers.RepeatCounter{Client: mgr.GetClient(), JS: js, Cluster: auditCluster})
	})
	// No proposal controller runs: the proposal stays open (no phase yet),
	// and the closed one is closed by hand.
	open := createProposal(t, c, &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "open"},
		Spec: tendv1.ProposalSpec{
			Action:   tendv1.ActionRollbackWorkload,
			Target:   tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web", UID: "web-uid"},
			Evidence: tendv1.Evidence{Summary: "crash loop"}, Risk: tendv1.RiskLow,
			Proposer: tendv1.Proposer{Username: agentUser},
		},
	})
	closed := createProposal(t, c, &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "closed"},
		Spec:       open.Spec,
	})
	closed.Status.Phase = tendv1.PhaseDenied
	g.Expect(c.Status().Update(t.Context(), closed)).To(Succeed())

	pub := bus.NewRepeatPublisher(js, auditCluster)
	repeat := func(id, name string) {
		t.Helper()
		g.Expect(pub.PublishRepeat(t.Context(), bus.Repeat{ID: id, Namespace: ns, Name: name, Proposer: agentUser})).To(Succeed())
	}
	repeat("r1", "open")
	repeat("r1", "open") // the same call published twice: NATS keeps one
	// Malformed and invalid messages are terminated; the counter goes on.
	for _, bad := range []string{`{"id":`, `{"id":"x","namespace":"Not A Name","name":"open","time":"2026-01-01T00:00:00Z"}`, `{"id":"x","extra":1}`} {
		_, err := js.Publish(t.Context(), bus.ProposalsSubject(auditCluster, bus.RepeatEvent), []byte(bad))
		g.Expect(err).NotTo(HaveOccurred())
	}
	repeat("r2", "closed")  // closed proposals count nothing
	repeat("r3", "missing") // nor do missing ones
	repeat("r4", "open")

	got := &tendv1.Proposal{}
	g.Eventually(func(g Gomega) int32 {
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(open), got)).To(Succeed())
		return got.Status.Repeats
	}).Should(Equal(int32(2)))
	g.Expect(got.Status.LastRepeat).NotTo(BeNil())

	// Every message is settled, so nothing more will be counted.
	g.Eventually(func(g Gomega) uint64 {
		info, err := js.Consumer(t.Context(), bus.StreamProposals, "tend-proposal-repeats")
		g.Expect(err).NotTo(HaveOccurred())
		ci, err := info.Info(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		return ci.NumPending + uint64(ci.NumAckPending)
	}).Should(BeZero())
	g.Consistently(func(g Gomega) int32 {
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(open), got)).To(Succeed())
		return got.Status.Repeats
	}, 2*time.Second).Should(Equal(int32(2)))
	g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(closed), closed)).To(Succeed())
	g.Expect(closed.Status.Repeats).To(BeZero())
}
