package localstack

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	. "github.com/onsi/gomega"

	"github.com/tendops/tend/bus"
)

// The bus is authenticated: a client without a component's key, or with a
// key of its own making, cannot connect to the local stack's NATS server;
// so it cannot feed the agent fake telemetry. A healthy workload next to
// the attempt gets no proposal.
func TestAttackAnonymousBus(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ns := attackNamespace(t, st, nil)
	web := demoDeployment(t, g, st, ns, "web", "1.0", 2)
	waitHealthy(g, st, web)
	before := deployment(g, st, web)

	_, err := nats.Connect(st.NATSURL, nats.Timeout(5*time.Second))
	g.Expect(err).To(HaveOccurred(), "an anonymous client connected")
	g.Expect(err.Error()).To(ContainSubstring("Authorization Violation"))
	stranger, err := nkeys.CreateUser()
	g.Expect(err).NotTo(HaveOccurred())
	pub, err := stranger.PublicKey()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = nats.Connect(st.NATSURL, nats.Timeout(5*time.Second), nats.Nkey(pub, stranger.Sign))
	g.Expect(err).To(HaveOccurred(), "a client with a key of its own connected")

	// What an anonymous publisher would have sent: a crash-looping pod of
	// web. Nobody can publish it, and nothing is proposed for web.
	g.Consistently(func(g Gomega) {
		g.Expect(proposalsIn(g, st, ns)).To(BeEmpty())
		g.Expect(deployment(g, st, web).Generation).To(Equal(before.Generation))
	}).Should(Succeed())
}

// Each component's key can do only its job: the agent and the MCP server
// cannot publish telemetry, audit records or shim requests, and no
// component can delete or purge the AUDIT stream or change its limits.
func TestAttackComponentKeysAreLimited(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	for _, c := range []bus.Component{bus.ComponentAgent, bus.ComponentMCP, bus.ComponentIngest, bus.ComponentAuditReader} {
		nc, js, err := st.nats.connect(ctx, c)
		g.Expect(err).NotTo(HaveOccurred(), string(c))
		for _, subject := range []string{
			bus.TelemetrySubject(st.ClusterName, bus.KindPod, "shop", "web-1"),
			bus.AuditSubject(st.ClusterName),
			bus.ShimSubject(st.ClusterName, "node-1", "restart"),
		} {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, subject, []byte("{}"))
			cancel()
			g.Expect(err).To(HaveOccurred(), "%s published on %s", c, subject)
		}
		nc.Close()
	}
	for _, c := range localComponents {
		nc, js, err := st.nats.connect(ctx, c)
		g.Expect(err).NotTo(HaveOccurred(), string(c))
		g.Expect(js.DeleteStream(ctx, bus.StreamAudit)).NotTo(Succeed(), "%s deleted the AUDIT stream", c)
		if s, err := js.Stream(ctx, bus.StreamAudit); err == nil {
			g.Expect(s.Purge(ctx)).NotTo(Succeed(), "%s purged the AUDIT stream", c)
			cfg := s.CachedInfo().Config
			cfg.MaxMsgs, cfg.DenyPurge = 1, false
			_, err := js.UpdateStream(ctx, cfg)
			g.Expect(err).To(HaveOccurred(), "%s changed the AUDIT stream's limits", c)
		}
		nc.Close()
	}
	// The AUDIT stream is there, with its protections.
	nc, js, err := st.nats.connect(ctx, bus.ComponentAuditReader)
	g.Expect(err).NotTo(HaveOccurred())
	defer nc.Close()
	s, err := js.Stream(ctx, bus.StreamAudit)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.CachedInfo().Config.DenyDelete).To(BeTrue())
	g.Expect(s.CachedInfo().Config.DenyPurge).To(BeTrue())
}

// A deleted consumer stops nothing: the controller's key may delete
// consumers; when the agent's consumer of the telemetry is deleted, the
// agent reports it and creates it again, and every component goes on.
func TestAttackDeletedConsumerStopsNothing(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	nc, js, err := st.nats.connect(ctx, bus.ComponentController)
	g.Expect(err).NotTo(HaveOccurred())
	defer nc.Close()
	durable := bus.ShareDurable("agent-maintenance", 0, 1)
	g.Expect(js.DeleteConsumer(ctx, bus.StreamTelemetry, durable)).To(Succeed())
	g.Eventually(func() error {
		_, err := js.Consumer(ctx, bus.StreamTelemetry, durable)
		return err
	}).Should(Succeed(), "the agent did not create its consumer again")
	select {
	case <-st.Done():
		t.Fatalf("the stack's components stopped: %v", st.Err())
	default:
	}
	// And the loop still heals.
	ns := attackNamespace(t, st, nil)
	web := demoDeployment(t, g, st, ns, "web", "1.0", 2)
	waitHealthy(g, st, web)
	setImage(t, g, st, web, "2.0")
	g.Eventually(func(g Gomega) string {
		return deployment(g, st, web).Spec.Template.Spec.Containers[0].Image
	}).Should(Equal(DemoImage + ":1.0"))
}
