package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestEnsureStreams(t *testing.T) {
	_, js := startBus(t)
	cfg := StreamsConfig{TelemetryMaxAge: time.Hour, TelemetryMaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	for range 2 { // updating to the same config is a no-op
		if err := EnsureStreams(t.Context(), js, cfg); err != nil {
			t.Fatalf("EnsureStreams: %v", err)
		}
	}
	type limits struct {
		Subjects           []string
		MaxAge, Duplicates time.Duration
		MaxBytes           int64
		DenyDelete         bool
	}
	want := map[string]limits{
		StreamTelemetry: {Subjects: []string{"tend.telemetry.>"}, MaxAge: time.Hour, MaxBytes: 64 << 20, Duplicates: time.Minute},
		StreamProposals: {Subjects: []string{"tend.proposals.>"}, MaxAge: ProposalsMaxAge, MaxBytes: -1, Duplicates: time.Minute},
		// AUDIT is created once (by startBus, with the default window) and
		// never updated: no one changes the limits of the audit chain.
		StreamAudit:       {Subjects: []string{"tend.audit.>"}, MaxBytes: -1, Duplicates: DefaultDuplicateWindow, DenyDelete: true},
		StreamDeadLetter:  {Subjects: []string{"tend.deadletter.>"}, MaxAge: DeadLetterMaxAge, MaxBytes: 64 << 20, Duplicates: time.Minute},
		StreamTranscripts: {Subjects: []string{"tend.transcripts.>"}, MaxAge: TranscriptsMaxAge, MaxBytes: 64 << 20, Duplicates: time.Minute},
	}
	for name, w := range want {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		c := s.CachedInfo().Config
		got := limits{Subjects: c.Subjects, MaxAge: c.MaxAge, Duplicates: c.Duplicates, MaxBytes: c.MaxBytes, DenyDelete: c.DenyDelete}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("stream %s (-want +got):\n%s", name, diff)
		}
		if c.Storage.String() != "File" {
			t.Errorf("stream %s has %s storage, want file", name, c.Storage)
		}
	}
	if n, err := telemetryPartitions(t.Context(), js); err != nil || n != DefaultTelemetryPartitions {
		t.Errorf("TELEMETRY has %d partitions (%v), want %d", n, err, DefaultTelemetryPartitions)
	}
	// Changing the partitions updates the stream.
	cfg.TelemetryPartitions = 4
	if err := EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatalf("EnsureStreams with 4 partitions: %v", err)
	}
	if n, err := telemetryPartitions(t.Context(), js); err != nil || n != 4 {
		t.Errorf("TELEMETRY has %d partitions (%v), want 4", n, err)
	}
}

func TestPublishConsume(t *testing.T) {
	_, js := startBus(t)
	published := testutil.ToFloat64(publishedTotal.WithLabelValues(StreamTelemetry))

	got := make(chan Delivery, 1)
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: "round-trip", FilterSubjects: []string{TelemetryFilter("prod")}},
		func(_ context.Context, d Delivery) error {
			got <- d
			return nil
		})

	e := podEnvelope()
	e.Cluster, e.Source, e.SchemaVersion, e.Time = "", "", 0, time.Time{}
	seq, err := NewPublisher(js, "prod", "sensor").Publish(t.Context(), e)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if e.Cluster != "prod" || e.Source != "sensor" || e.SchemaVersion != SchemaVersion || e.Time.IsZero() {
		t.Errorf("Publish did not fill in the envelope: %+v", e)
	}

	d := receive(t, got)
	want := Delivery{Envelope: e, Subject: "tend.telemetry.prod.pod.shop.web-7d9f-abcde", StreamSeq: seq, NumDelivered: 1}
	if diff := cmp.Diff(want, d, cmp.AllowUnexported(Delivery{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".msg"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(publishedTotal.WithLabelValues(StreamTelemetry)) - published; n != 1 {
		t.Errorf("published_total grew by %v, want 1", n)
	}
	eventually(t, "message acked", settled(t.Context(), js, StreamTelemetry, "round-trip", seq))
	if n := testutil.ToFloat64(deliveredTotal.WithLabelValues("round-trip")); n != 1 {
		t.Errorf("delivered_total = %v, want 1", n)
	}
}

// TestPublishAsyncKeepsEachMessage publishes envelopes of different sizes
// from several goroutines, so that encoding buffers are recycled while
// other publishes are in flight, and checks that every stored message is
// the envelope published with its ID.
func TestPublishAsyncKeepsEachMessage(t *testing.T) {
	_, js := startBus(t)
	p := NewPublisher(js, "prod", "sensor")
	const n = 2000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				e := podEnvelope()
				e.Cluster, e.Source, e.SchemaVersion, e.Time = "", "", 0, time.Time{}
				e.ID = "async-" + strconv.Itoa(i)
				e.Object.Name = "pod-" + strings.Repeat("x", i%97) + "-" + strconv.Itoa(i)
				e.Pod.Containers[0].Message = strings.Repeat("m", i%301)
				if err := p.PublishAsync(t.Context(), e, func(_ uint64, err error) {
					if err != nil {
						failed.Add(1)
					}
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d publishes failed", f)
	}
	cons, err := js.CreateOrUpdateConsumer(t.Context(), StreamTelemetry, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, FilterSubjects: []string{TelemetryFilter("prod")}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(waitTimeout))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := Decode(m.Data())
			if err != nil {
				t.Fatalf("stored message %q: %v", m.Data(), err)
			}
			i, err := strconv.Atoi(strings.TrimPrefix(e.ID, "async-"))
			if err != nil {
				t.Fatalf("unexpected ID %q", e.ID)
			}
			if want := "pod-" + strings.Repeat("x", i%97) + "-" + strconv.Itoa(i); e.Object.Name != want || e.Pod.Containers[0].Message != strings.Repeat("m", i%301) {
				t.Fatalf("message %s carries another envelope: name %q", e.ID, e.Object.Name)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != e.ID {
				t.Fatalf("message %s stored with Nats-Msg-Id %q", e.ID, m.Headers().Get(jetstream.MsgIDHeader))
			}
			seen[e.ID] = true
		}
		if got == 0 {
			t.Fatalf("%d of %d messages stored", len(seen), n)
		}
	}
}

func TestPublishRejects(t *testing.T) {
	_, js := startBus(t)
	p := NewPublisher(js, "prod", "sensor")

	e := podEnvelope()
	e.Cluster = "staging"
	if _, err := p.Publish(t.Context(), e); err == nil {
		t.Error("Publish accepted an envelope of another cluster")
	}
	e = podEnvelope()
	e.Pod = nil
	if _, err := p.Publish(t.Context(), e); !errors.Is(err, ErrMalformed) {
		t.Errorf("Publish of an envelope without payload: got %v, want ErrMalformed", err)
	}
	s, err := js.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("stream holds %d messages, want 0", info.State.Msgs)
	}
}

func TestPublishDuplicate(t *testing.T) {
	_, js := startBus(t)
	p := NewPublisher(js, "prod", "sensor")
	published := testutil.ToFloat64(publishedTotal.WithLabelValues(StreamTelemetry))

	first, err := p.Publish(t.Context(), podEnvelope())
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	again, err := p.Publish(t.Context(), podEnvelope())
	if err != nil {
		t.Fatalf("Publish of a duplicate: %v", err)
	}
	if again != first {
		t.Errorf("duplicate got sequence %d, want the original %d", again, first)
	}
	s, err := js.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
	if n := testutil.ToFloat64(publishedTotal.WithLabelValues(StreamTelemetry)) - published; n != 1 {
		t.Errorf("published_total grew by %v, want 1", n)
	}
}

func TestConsumerTerminatesMalformed(t *testing.T) {
	_, js := startBus(t)
	const durable = "malformed"
	got := make(chan Delivery, 2)
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable}, func(_ context.Context, d Delivery) error {
		got <- d
		return nil
	})

	if _, err := js.Publish(t.Context(), TelemetrySubject("prod", KindPod, "shop", "web"), []byte(`{"schemaVersion":1,"id":"x","verdict":"approve"}`)); err != nil {
		t.Fatalf("publishing raw data: %v", err)
	}
	seq, err := NewPublisher(js, "prod", "sensor").Publish(t.Context(), nodeEnvelope())
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}

	if d := receive(t, got); d.Envelope.ID != nodeEnvelope().ID {
		t.Errorf("handler got %q, want the good message %q", d.Envelope.ID, nodeEnvelope().ID)
	}
	eventually(t, "both messages settled", settled(t.Context(), js, StreamTelemetry, durable, seq))
	if n := testutil.ToFloat64(terminatedTotal.WithLabelValues(durable, ReasonMalformed)); n != 1 {
		t.Errorf("terminated_total{reason=malformed} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(deliveredTotal.WithLabelValues(durable)); n != 2 {
		t.Errorf("delivered_total = %v, want 2", n)
	}
	if len(got) != 0 {
		t.Errorf("handler got %d more deliveries, want none", len(got))
	}
}

func TestConsumerRetries(t *testing.T) {
	_, js := startBus(t)
	const durable = "retries"
	var (
		mu         sync.Mutex
		deliveries = map[string][]uint64{} // envelope ID → NumDelivered of each delivery
	)
	handler := func(_ context.Context, d Delivery) error {
		mu.Lock()
		deliveries[d.Envelope.ID] = append(deliveries[d.Envelope.ID], d.NumDelivered)
		mu.Unlock()
		switch d.Envelope.ID {
		case "transient":
			if d.NumDelivered == 1 {
				return errors.New("API server unavailable")
			}
			return nil
		case "permanent":
			return fmt.Errorf("no such workload: %w", ErrPermanent)
		default: // "exhausted"
			return errors.New("still failing")
		}
	}
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable, MaxDeliver: 3, Backoff: []time.Duration{time.Millisecond}}, handler)

	p := NewPublisher(js, "prod", "sensor")
	var last uint64
	for _, id := range []string{"transient", "permanent", "exhausted"} {
		e := nodeEnvelope()
		e.ID = id
		seq, err := p.Publish(t.Context(), e)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		last = seq
	}
	eventually(t, "all messages settled", settled(t.Context(), js, StreamTelemetry, durable, last))

	mu.Lock()
	defer mu.Unlock()
	want := map[string][]uint64{"transient": {1, 2}, "permanent": {1}, "exhausted": {1, 2, 3}}
	if diff := cmp.Diff(want, deliveries); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	for reason, want := range map[string]float64{ReasonPermanent: 1, ReasonExhausted: 1, ReasonMalformed: 0} {
		if n := testutil.ToFloat64(terminatedTotal.WithLabelValues(durable, reason)); n != want {
			t.Errorf("terminated_total{reason=%s} = %v, want %v", reason, n, want)
		}
	}
	if n := testutil.ToFloat64(redeliveredTotal.WithLabelValues(durable)); n != 3 {
		t.Errorf("redelivered_total = %v, want 3", n)
	}
}

func TestNewConsumerRejects(t *testing.T) {
	_, js := startBus(t)
	ok := func(context.Context, Delivery) error { return nil }
	for name, opts := range map[string]ConsumerOptions{
		"no stream":        {Durable: "d"},
		"no durable":       {Stream: StreamTelemetry},
		"dotted durable":   {Stream: StreamTelemetry, Durable: "a.b"},
		"negative backoff": {Stream: StreamTelemetry, Durable: "d", Backoff: []time.Duration{-time.Second}},
	} {
		if _, err := NewConsumer(js, opts, ok); err == nil {
			t.Errorf("%s: NewConsumer accepted %+v", name, opts)
		}
	}
	if _, err := NewConsumer(js, ConsumerOptions{Stream: StreamTelemetry, Durable: "d"}, nil); err == nil {
		t.Error("NewConsumer accepted a nil handler")
	}
}

func TestRegister(t *testing.T) {
	r := prometheus.NewRegistry()
	for range 2 {
		if err := Register(r); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	publishedTotal.WithLabelValues("TEST").Inc()
	t.Cleanup(func() { publishedTotal.DeleteLabelValues("TEST") })
	if n, err := testutil.GatherAndCount(r, "tend_bus_published_total"); err != nil || n == 0 {
		t.Errorf("tend_bus_published_total not gathered: %d series, %v", n, err)
	}
}

// An AUDIT stream that would let records go (purge allowed, or a limit
// that discards them) is refused, not "fixed" by an update.
func TestEnsureStreamsRefusesAnUnprotectedAudit(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	js := connect(t, srv)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: StreamAudit, Subjects: []string{"tend.audit.>"}, MaxMsgs: 10}); err != nil {
		t.Fatal(err)
	}
	err = EnsureStreams(t.Context(), js, StreamsConfig{})
	if err == nil || !strings.Contains(err.Error(), "does not keep the audit chain whole") {
		t.Fatalf("EnsureStreams over an unprotected AUDIT = %v, want a refusal", err)
	}
}
