package localstack

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp/wire"
)

// A forged audit record: someone holding the controller's NATS key, but not
// its audit key, appends a record to the chain, linked and hashed like the
// real ones, claiming a proposal succeeded. The chain as `tend audit verify`
// reads it (the records, the public key and the checkpoint the controller
// publishes) fails at that record; before it, the chain and its checkpoint
// verify.
func TestAttackForgedAuditRecord(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	// A transition of the controller's own, so that the chain and its
	// checkpoint hold something.
	ns := attackNamespace(t, st, map[string]string{"tend.dev/protected": "true"})
	web := demoDeployment(t, g, st, ns, "web", "1.0", 1)
	waitHealthy(g, st, web)
	var res wire.ProposeResult
	g.Expect(agentTools(t, st).Call(ctx, wire.ToolProposeRollback, wire.ProposeRollbackArgs{
		Namespace: ns, Name: "web", Common: wire.Common{Summary: "a rollback a human must look at"},
	}, &res)).To(Succeed())
	p := waitPhase(g, st, ns, res.Name, tendv1.PhaseAwaitingApproval)
	g.Eventually(func(g Gomega) []tendv1.PendingAudit {
		return proposal(g, st, ns, p.Name).Status.AuditOutbox
	}).Should(BeEmpty())

	verify := func() (int, error) {
		trust, err := controllers.ReadAuditTrust(ctx, st.Client, SystemNamespace)
		if err != nil {
			return 0, err
		}
		recs, seqs, err := bus.NewAuditLog(st.JetStream, st.ClusterName).RecordsSeq(ctx)
		if err != nil {
			return 0, err
		}
		if err := bus.VerifyChain(recs, trust.PublicKey); err != nil {
			return len(recs), err
		}
		if trust.Checkpoint == nil {
			return len(recs), errors.New("no checkpoint")
		}
		return len(recs), bus.VerifyCheckpoint(recs, seqs, *trust.Checkpoint, trust.PublicKey)
	}
	var n int
	g.Eventually(func() error {
		var err error
		n, err = verify()
		return err
	}).Should(Succeed())
	g.Expect(n).To(BeNumerically(">", 0))

	// The forgery, with the controller's NATS key and a signing key of the
	// forger's own.
	_, forgerKey, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	nc, js, err := st.nats.connect(ctx, bus.ComponentController)
	g.Expect(err).NotTo(HaveOccurred())
	defer nc.Close()
	_, err = bus.NewAuditLog(js, st.ClusterName).WithKey(forgerKey).Append(ctx, bus.AuditRecord{
		Time: time.Now(), Object: bus.ObjectRef{Kind: bus.KindProposal, Namespace: ns, Name: p.Name, UID: string(p.UID)},
		From: "Verifying", To: "Succeeded", Reason: "Verified", Actor: "tend-proposal-controller",
	})
	g.Expect(err).NotTo(HaveOccurred(), "the forger could not even publish (the test proves nothing)")

	_, err = verify()
	chainErr, ok := errors.AsType[*bus.ChainError](err)
	g.Expect(ok).To(BeTrue(), "verify after the forgery = %v, want a broken chain", err)
	g.Expect(chainErr.Index).To(BeNumerically(">=", n))
	g.Expect(chainErr.Reason).To(ContainSubstring("key"))
}
