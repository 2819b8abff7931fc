package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// restartEvents is the number of events each restart test publishes.
const restartEvents = 2000

// ledger counts what a restart test published and what its consumers got.
type ledger struct {
	mu            sync.Mutex
	acked         map[string]bool // IDs JetStream acknowledged
	ackedBefore   int             // of which before the restart
	delivered     map[string]int  // deliveries per ID
	restarted     bool
	handledSignal chan struct{} // closed once half the events were handled
	handledAt     int
}

func newLedger(signalAt int) *ledger {
	return &ledger{acked: map[string]bool{}, delivered: map[string]int{}, handledSignal: make(chan struct{}), handledAt: signalAt}
}

func (l *ledger) handle(_ context.Context, d Delivery) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivered[d.Envelope.ID]++
	if len(l.delivered) == l.handledAt {
		close(l.handledSignal)
	}
	return nil
}

func (l *ledger) ack(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[id] = true
	if !l.restarted {
		l.ackedBefore++
	}
}

func (l *ledger) markRestarted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restarted = true
}

// lost returns the acknowledged IDs not delivered yet.
func (l *ledger) lost() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.acked {
		if l.delivered[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// report checks that every acknowledged event was delivered, and logs the counts.
func (l *ledger) report(t *testing.T, durable string) {
	t.Helper()
	eventually(t, "every acknowledged event delivered", func() (bool, error) {
		return len(l.lost()) == 0, nil
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	redelivered := 0
	for _, n := range l.delivered {
		redelivered += n - 1
	}
	t.Logf("published %d, acknowledged %d (%d before the restart), handled %d distinct, handled again %d, redelivered by the server %v, lost 0",
		restartEvents, len(l.acked), l.ackedBefore, len(l.delivered), redelivered, testutil.ToFloat64(redeliveredTotal.WithLabelValues(durable)))
	if len(l.acked) != restartEvents {
		t.Errorf("%d events acknowledged, want %d", len(l.acked), restartEvents)
	}
	for id := range l.delivered {
		if !l.acked[id] {
			t.Errorf("event %s delivered but never acknowledged to the publisher", id)
		}
	}
}

// publishAll publishes restartEvents events, retrying each until JetStream
// acknowledges it; a retry carries the same Nats-Msg-Id, so an event stored
// by an attempt whose acknowledgement was lost is not stored twice.
func publishAll(ctx context.Context, js jetstream.JetStream, l *ledger) error {
	p := NewPublisher(js, "prod", "sensor")
	for i := range restartEvents {
		e := podEnvelope()
		e.ID = fmt.Sprintf("event-%05d", i)
		e.Object.Name = fmt.Sprintf("pod-%d", i%50)
		for {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := p.Publish(actx, e)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("event %s never acknowledged: %w", e.ID, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		l.ack(e.ID)
	}
	return nil
}

// TestRestartServer restarts the NATS server while events stream through it:
// every event JetStream acknowledged to the publisher reaches the consumer.
func TestRestartServer(t *testing.T) {
	storeDir := t.TempDir()
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: storeDir})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	port := srv.Port()
	var restartedSrv *Embedded
	t.Cleanup(func() {
		if restartedSrv != nil {
			restartedSrv.Shutdown()
		}
	})
	pubJS := connect(t, srv)
	if err := EnsureStreams(t.Context(), pubJS, StreamsConfig{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	l := newLedger(restartEvents / 2)
	runConsumer(t, connect(t, srv), ConsumerOptions{Stream: StreamTelemetry, Durable: "restart-server", AckWait: 2 * time.Second}, l.handle)

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- publishAll(ctx, pubJS, l) }()

	// Mid-stream: half the events handled, the rest still being published.
	receive(t, l.handledSignal)
	l.markRestarted()
	srv.Shutdown()
	restartedSrv, err = StartEmbedded(EmbeddedOptions{StoreDir: storeDir, Port: port})
	if err != nil {
		t.Fatalf("restarting nats-server on port %d: %v", port, err)
	}

	if err := receive(t, published); err != nil {
		t.Fatalf("publishing: %v", err)
	}
	l.report(t, "restart-server")
}

// TestRestartConsumer crashes a consumer while it handles events and starts
// another: every acknowledged event is delivered, the ones the first
// consumer had in flight again.
func TestRestartConsumer(t *testing.T) {
	srv, js := startBus(t)
	l := newLedger(restartEvents / 4)
	opts := ConsumerOptions{Stream: StreamTelemetry, Durable: "restart-consumer", AckWait: time.Second}

	// The first consumer, on its own connection, which the test cuts.
	nc, firstJS, err := Connect(t.Context(), srv.URL(), "first")
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	// Once a quarter of the events are handled, the first consumer hangs in
	// its handler, holding a message it never finishes.
	holding := make(chan struct{})
	var holdOnce sync.Once
	first, err := NewConsumer(firstJS, opts, func(ctx context.Context, d Delivery) error {
		select {
		case <-l.handledSignal:
			holdOnce.Do(func() { close(holding) })
			<-ctx.Done()
			return ctx.Err()
		default:
			return l.handle(ctx, d)
		}
	})
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	firstCtx, stopFirst := context.WithCancel(t.Context())
	defer stopFirst()
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Start(firstCtx) }()

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- publishAll(ctx, js, l) }()

	// A crash mid-stream: the connection goes away with messages in flight.
	receive(t, l.handledSignal)
	receive(t, holding)
	l.markRestarted()
	nc.Close()
	if err := receive(t, firstDone); err == nil {
		t.Error("the first consumer's Start returned nil after its connection closed, want an error")
	}

	runConsumer(t, connect(t, srv), opts, l.handle)
	if err := receive(t, published); err != nil {
		t.Fatalf("publishing: %v", err)
	}
	l.report(t, "restart-consumer")
	if n := testutil.ToFloat64(redeliveredTotal.WithLabelValues(opts.Durable)); n < 1 {
		t.Errorf("redelivered_total = %v, want the message the first consumer held to be redelivered", n)
	}
}

// TestDeletedConsumerIsCreatedAgain deletes one partition's durable
// consumer while a partitioned consumer runs: the consumer reports it and
// creates it again, and what is published after is handled on every
// partition, the deleted one included; what was finished before is not
// handled again.
func TestDeletedConsumerIsCreatedAgain(t *testing.T) {
	srv, js := startBus(t)
	var mu sync.Mutex
	seen := map[string]int{}
	// deliveries records each delivery's stream sequence and count, to tell
	// a redelivery by the server from a consumer made again too early.
	deliveries := map[string][]string{}
	handle := func(_ context.Context, d Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen[d.Envelope.ID]++
		deliveries[d.Envelope.ID] = append(deliveries[d.Envelope.ID], fmt.Sprintf("%s seq %d delivery %d at %s",
			d.Subject, d.StreamSeq, d.NumDelivered, time.Now().Format("15:04:05.000")))
		return nil
	}
	count := func(ids ...string) (handled, twice int) {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if seen[id] > 0 {
				handled++
			}
			if seen[id] > 1 {
				twice++
				t.Logf("%s handled %d times: %v", id, seen[id], deliveries[id])
			}
		}
		return handled, twice
	}
	opts := ConsumerOptions{Stream: StreamTelemetry, Durable: "deletable", Partitions: 4, Shares: 4, Cluster: "prod"}
	deleted := ShareDurable("deletable", 2, 4)
	if err := EnsureStreams(t.Context(), js, StreamsConfig{TelemetryPartitions: 4}); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, connect(t, srv), opts, handle)
	p := NewPublisher(js, "prod", "sensor")
	publish := func(prefix string) []string {
		var ids []string
		for i := range 40 {
			e := podEnvelope()
			e.ID = fmt.Sprintf("%s-%02d", prefix, i)
			e.Object.Name = fmt.Sprintf("pod-%d", i)
			if _, err := p.Publish(t.Context(), e); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		return ids
	}
	before := publish("before")
	waitFor(t, func() bool { n, _ := count(before...); return n == len(before) })

	recreated := testutil.ToFloat64(consumerRecreatedTotal.WithLabelValues(deleted))
	t.Logf("deleting %s at %s", deleted, time.Now().Format("15:04:05.000"))
	if err := js.DeleteConsumer(t.Context(), StreamTelemetry, deleted); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	waitFor(t, func() bool {
		_, err := js.Consumer(t.Context(), StreamTelemetry, deleted)
		return err == nil && testutil.ToFloat64(consumerRecreatedTotal.WithLabelValues(deleted)) > recreated
	})
	after := publish("after")
	waitFor(t, func() bool { n, _ := count(after...); return n == len(after) })
	if _, twice := count(append(before, after...)...); twice > 0 {
		t.Errorf("%d messages were handled twice after the consumer was created again", twice)
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", waitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
