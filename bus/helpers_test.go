package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumer is run by a controller-runtime manager, whose interfaces it satisfies
// without importing them.
var _ interface {
	Start(context.Context) error
	NeedLeaderElection() bool
} = (*Consumer)(nil)

// waitTimeout bounds every wait for a condition; tests never wait for time itself.
const waitTimeout = 20 * time.Second

// startBus starts an embedded nats-server with the tend streams and returns a
// connected JetStream client; everything is shut down when the test ends.
func startBus(t *testing.T) (*Embedded, jetstream.JetStream) {
	t.Helper()
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	js := connect(t, srv)
	if err := EnsureStreams(t.Context(), js, StreamsConfig{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	return srv, js
}

func connect(t *testing.T, srv *Embedded) jetstream.JetStream {
	t.Helper()
	nc, js, err := Connect(t.Context(), srv.URL(), t.Name())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return js
}

// runConsumer runs a consumer until the test ends and checks that it stopped cleanly.
func runConsumer(t *testing.T, js jetstream.JetStream, opts ConsumerOptions, h Handler) {
	t.Helper()
	c, err := NewConsumer(js, opts, h)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(startConsumer(t, c))
}

// startConsumer starts c and returns what stops it and checks that it
// stopped cleanly.
func startConsumer(tb testing.TB, c *Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Start: %v", err)
		}
	}
}

// receive waits for the next value on ch.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("nothing received within %s", waitTimeout)
		var zero T
		return zero
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled reports whether the consumer has handled every message up to seq
// and has nothing pending: nothing will be redelivered.
func settled(ctx context.Context, js jetstream.JetStream, stream, durable string, seq uint64) func() (bool, error) {
	return func() (bool, error) {
		c, err := js.Consumer(ctx, stream, durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.AckFloor.Stream >= seq && info.NumAckPending == 0 && info.NumPending == 0, nil
	}
}
