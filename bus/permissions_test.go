package bus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startSecuredBus starts an embedded server whose users are the components,
// each limited to ComponentPermissions, with the password "pw-<component>".
func startSecuredBus(t *testing.T) *Embedded {
	t.Helper()
	var users []EmbeddedUser
	for _, c := range Components {
		p, err := ComponentPermissions(c, "prod", "node-1")
		if err != nil {
			t.Fatalf("ComponentPermissions(%s): %v", c, err)
		}
		users = append(users, EmbeddedUser{Name: string(c), Password: "pw-" + string(c), Permissions: p})
	}
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connectAs connects as a component and returns the connection, its
// JetStream client and the asynchronous errors the server sends it.
func connectAs(t *testing.T, srv *Embedded, c Component) (*nats.Conn, jetstream.JetStream, <-chan error) {
	t.Helper()
	auth, err := Auth{User: string(c), Password: "pw-" + string(c)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, js, err := Connect(t.Context(), srv.URL(), string(c), append(auth, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))...)
	if err != nil {
		t.Fatalf("Connect as %s: %v", c, err)
	}
	t.Cleanup(nc.Close)
	return nc, js, errs
}

// TestComponentPermissions runs the controller, an agent and the ingest
// with their documented permissions: each can do its job, and an agent
// cannot publish to shim subjects, or anywhere tend acts or records.
func TestComponentPermissions(t *testing.T) {
	srv := startSecuredBus(t)
	_, controllerJS, _ := connectAs(t, srv, ComponentController)
	if err := EnsureStreams(t.Context(), controllerJS, StreamsConfig{}); err != nil {
		t.Fatalf("the controller cannot set up the streams: %v", err)
	}

	agentNC, agentJS, agentErrs := connectAs(t, srv, ComponentAgent)
	got := make(chan Delivery, 4)
	runConsumer(t, agentJS, ConsumerOptions{Stream: StreamTelemetry, Durable: "agent-maintenance", Cluster: "prod", Partitions: DefaultTelemetryPartitions},
		func(_ context.Context, d Delivery) error {
			got <- d
			if d.Envelope.ID == "give-up" {
				return ErrPermanent
			}
			return nil
		})
	sensorNC, sensorJS, sensorErrs := connectAs(t, srv, ComponentSensor)
	p := NewPublisher(sensorJS, "prod", "sensor")
	if _, err := p.Publish(t.Context(), podEnvelope()); err != nil {
		t.Fatalf("the sensor cannot publish telemetry: %v", err)
	}
	if d := receive(t, got); d.Envelope.ID != podEnvelope().ID {
		t.Errorf("the agent got %q", d.Envelope.ID)
	}
	// The agent dead-letters what it gives up on.
	e := nodeEnvelope()
	e.ID = "give-up"
	if _, err := p.Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	receive(t, got)
	eventually(t, "the message is dead-lettered", func() (bool, error) {
		s, err := controllerJS.Stream(t.Context(), StreamDeadLetter)
		if err != nil {
			return false, err
		}
		info, err := s.Info(t.Context())
		return err == nil && info.State.Msgs == 1, err
	})

	// It stores its planner's transcripts, in its own cluster only.
	ref, err := NewTranscriptPublisher(agentJS, "prod").PublishTranscript(t.Context(), "maintenance", "inc-1", []byte(`{"incident":"inc-1"}`))
	if err != nil || ref.Subject != TranscriptSubject("prod", "maintenance", "inc-1") || ref.Sequence == 0 {
		t.Errorf("the agent stores a transcript: %+v, %v", ref, err)
	}

	// What an agent must never do.
	for _, subject := range []string{
		TranscriptSubject("staging", "maintenance", "inc-1"),
		ShimSubject("prod", "node-1", "restart-container"),
		TelemetrySubject("prod", KindPod, "shop", "web"),
		AuditSubject("prod"),
		ProposalsSubject("prod", "applied"),
		"$JS.API.STREAM.DELETE." + StreamTelemetry,
		"$JS.API.STREAM.PURGE." + StreamAudit,
	} {
		if err := agentNC.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
		if err := agentNC.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		err := receive(t, agentErrs)
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Errorf("agent publishing to %s: got %v, want a permissions violation", subject, err)
		}
	}
	if _, err := agentNC.SubscribeSync(ShimSubject("prod", "node-1", ">")); err == nil {
		if err := agentNC.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, agentErrs); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("agent subscribing to shim requests: got %v, want a permissions violation", err)
		}
	}

	// The sensor publishes telemetry and nothing else.
	for _, subject := range []string{
		ShimSubject("prod", "node-1", "restart-container"),
		AuditSubject("prod"),
		ProposalsSubject("prod", "applied"),
		"$JS.API.STREAM.PURGE." + StreamTelemetry,
	} {
		if err := sensorNC.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
		if err := sensorNC.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if err := receive(t, sensorErrs); !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Errorf("sensor publishing to %s: got %v, want a permissions violation", subject, err)
		}
	}

	// The ingest publishes alerts and nothing else.
	_, ingestJS, _ := connectAs(t, srv, ComponentIngest)
	ingest := NewPublisher(ingestJS, "prod", "ingest")
	if _, err := ingest.Publish(t.Context(), alertEnvelope()); err != nil {
		t.Errorf("the ingest cannot publish an alert: %v", err)
	}
	// A denied publish gets no acknowledgement; it fails when ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := ingest.Publish(ctx, podEnvelope()); err == nil {
		t.Error("the ingest published pod telemetry")
	}
	s, err := controllerJS.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLastMsgForSubject(t.Context(), StoredTelemetryFilter("prod", KindPod, "shop", podEnvelope().Object.Name)); err != nil {
		t.Fatalf("the controller's pod telemetry: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Errorf("TELEMETRY holds %d messages, want 3: two from the controller, one alert", info.State.Msgs)
	}

	// The MCP server publishes repeats and reads an object's telemetry the
	// way get_telemetry does, with a short-lived consumer; nothing else.
	mcpNC, mcpJS, mcpErrs := connectAs(t, srv, ComponentMCP)
	if err := NewRepeatPublisher(mcpJS, "prod").PublishRepeat(t.Context(), Repeat{ID: "r1", Namespace: "shop", Name: "rollback-web-1", Proposer: "agent"}); err != nil {
		t.Errorf("the MCP server cannot publish a repeat: %v", err)
	}
	cons, err := mcpJS.CreateConsumer(t.Context(), StreamTelemetry, jetstream.ConsumerConfig{
		FilterSubjects:    []string{StoredTelemetryFilter("prod", KindPod, "shop", podEnvelope().Object.Name)},
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("the MCP server cannot read telemetry: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 1 {
		t.Errorf("the MCP server read %d pod messages, want 1 (%v)", n, batch.Error())
	}
	for _, subject := range []string{
		ShimSubject("prod", "node-1", "restart-container"),
		TelemetrySubject("prod", KindPod, "shop", "web"),
		ProposalsSubject("prod", "applied"),
		"$JS.API.CONSUMER.DELETE." + StreamTelemetry + ".agent-maintenance-s0-of-1",
	} {
		if err := mcpNC.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
		if err := mcpNC.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if err := receive(t, mcpErrs); !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Errorf("MCP server publishing to %s: got %v, want a permissions violation", subject, err)
		}
	}
}

func TestComponentPermissionsRejects(t *testing.T) {
	if _, err := ComponentPermissions("llm", "prod", ""); err == nil {
		t.Error("unknown component accepted")
	}
	if _, err := ComponentPermissions(ComponentShim, "prod", ""); err == nil {
		t.Error("shim without a node accepted")
	}
}

func TestAuthOptions(t *testing.T) {
	for name, a := range map[string]Auth{
		"creds and nkey":    {CredsFile: "a.creds", NKeySeedFile: "a.nk"},
		"creds and user":    {CredsFile: "a.creds", User: "u"},
		"cert without key":  {CertFile: "c.pem"},
		"password, no user": {Password: "p"},
		"missing nkey seed": {NKeySeedFile: "/nonexistent/seed.nk"},
	} {
		if _, err := a.Options(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, a := range map[string]Auth{
		"none":        {},
		"creds + TLS": {CredsFile: "a.creds", CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"},
		"user":        {User: "u", Password: "p"},
	} {
		if _, err := a.Options(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestPermissionsDocumented checks that docs/nats-permissions.md lists every
// subject of every component's permissions.
func TestPermissionsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "nats-permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, c := range Components {
		p, err := ComponentPermissions(c, "CLUSTER", "NODE")
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(doc, "\n## "+string(c)+"\n")
		if !ok {
			t.Errorf("no section for %s", c)
			continue
		}
		section, _, _ = strings.Cut(section, "\n## ")
		for _, list := range [][]string{p.PublishAllow, p.PublishDeny, p.SubscribeAllow, p.SubscribeDeny} {
			for _, s := range list {
				s = strings.NewReplacer("CLUSTER", "<cluster>", "NODE", "<node>").Replace(s)
				if !strings.Contains(section, "`"+s+"`") {
					t.Errorf("%s: %s is not documented", c, s)
				}
			}
		}
	}
}
