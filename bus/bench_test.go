package bus

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The bus benchmarks measure telemetry end to end, from a publish to the
// handler that gets it, with JetStream file storage on loopback:
//
//   - BenchmarkBus: tend's path. bus.Publisher.PublishAsync encodes,
//     validates and publishes each envelope with its Nats-Msg-Id, as the
//     sensor does, and settles its acknowledgement; a
//     partitioned bus.Consumer (DefaultTelemetryPartitions partitions in one
//     share: one pinned durable consumer, as one agent runs it by default)
//     decodes and validates each message, hands it to the handler, and
//     acknowledges it.
//   - BenchmarkBusJetStream, the reference: the same payloads, already
//     encoded, published with jetstream.PublishAsync and the same Nats-Msg-Id,
//     and consumed by one plain pull consumer that acknowledges each message.
//
// load=max publishes as fast as benchPublishers concurrent publishers can
// and reports throughput; rate=N publishes N events/s, below saturation, and
// reports the latency from publish to handler.
const (
	benchPublishers = 4
	benchBatch      = 20000 // events per iteration at full load
	benchObjects    = 1000  // distinct objects the events are about
	benchRate       = 10000 // events/s of the paced runs
	benchPaced      = 10000 // events per iteration of the paced runs
)

// benchPartitions is the partition count of the benchmarks' stream.
const benchPartitions = DefaultTelemetryPartitions

func BenchmarkBus(b *testing.B) {
	benchBus(b, func(b *testing.B, js jetstream.JetStream, rec *recorder) (publishFunc, func()) {
		c, err := NewConsumer(js, ConsumerOptions{Stream: StreamTelemetry, Durable: "bench", Cluster: "prod", Partitions: benchPartitions},
			func(_ context.Context, d Delivery) error {
				rec.record(d.Envelope.ID, d.StreamSeq)
				return nil
			})
		if err != nil {
			b.Fatal(err)
		}
		stop := startConsumer(b, c)
		p := NewPublisher(js, "prod", "sensor")
		// The objects' states, built once, as the reference's payloads are
		// encoded once: what is measured is the bus, not building states.
		// Each event is a copy with its own ID, encoded and validated.
		states := make([]Envelope, benchObjects)
		for i := range states {
			states[i] = *benchEnvelope(i)
		}
		return func(ctx context.Context, i int) error {
				e := states[i%benchObjects]
				e.ID = benchID(i)
				rec.sent(i)
				return p.PublishAsync(ctx, &e, rec.acked)
			}, func() {
				if err := p.Close(context.Background()); err != nil {
					b.Error(err)
				}
				stop()
			}
	})
}

func BenchmarkBusJetStream(b *testing.B) {
	benchBus(b, func(b *testing.B, js jetstream.JetStream, rec *recorder) (publishFunc, func()) {
		cons, err := js.CreateOrUpdateConsumer(b.Context(), StreamTelemetry, jetstream.ConsumerConfig{
			Durable: "bench-raw", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubjects: []string{TelemetryFilter("prod")},
		})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			rec.record(m.Headers().Get(jetstream.MsgIDHeader), 0)
			_ = m.Ack()
		})
		if err != nil {
			b.Fatal(err)
		}
		// The payloads, encoded once: the reference does no encoding.
		payloads := make([][]byte, benchObjects)
		subjects := make([]string, benchObjects)
		for i := range payloads {
			e := benchEnvelope(i)
			e.SchemaVersion, e.Cluster, e.Source, e.Time = SchemaVersion, "prod", "sensor", time.Now().UTC()
			data, err := Encode(e)
			if err != nil {
				b.Fatal(err)
			}
			payloads[i] = data
			subjects[i] = TelemetrySubject("prod", e.Object.Kind, e.Object.Namespace, e.Object.Name)
		}
		// Acknowledgements are checked as tend's are: each one, in order, by
		// one goroutine.
		futures := make(chan jetstream.PubAckFuture, MaxPendingPublishes)
		settled := make(chan struct{})
		go func() {
			defer close(settled)
			for f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					rec.acked(0, err)
				}
			}
		}()
		return func(_ context.Context, i int) error {
				rec.sent(i)
				f, err := js.PublishAsync(subjects[i%benchObjects], payloads[i%benchObjects], jetstream.WithMsgID(benchID(i)),
					jetstream.WithExpectStream(StreamTelemetry), jetstream.WithStallWait(time.Minute))
				if err != nil {
					return err
				}
				futures <- f
				return nil
			}, func() {
				close(futures)
				<-settled
				cc.Drain()
				<-cc.Closed()
			}
	})
}

// publishFunc publishes the i-th event of a run.
type publishFunc func(ctx context.Context, i int) error

func benchBus(b *testing.B, setup func(*testing.B, jetstream.JetStream, *recorder) (publishFunc, func())) {
	b.Run("load=max", func(b *testing.B) {
		js, rec := benchStart(b)
		publish, stop := setup(b, js, rec)
		defer stop()
		next := warmUp(b, publish, rec)
		var (
			events  int
			elapsed time.Duration
		)
		for b.Loop() {
			start := time.Now()
			rec.expect(next + benchBatch)
			publishConcurrently(b, publish, next, benchBatch, nil)
			rec.wait(b)
			elapsed += time.Since(start)
			events += benchBatch
			next += benchBatch
		}
		b.ReportMetric(float64(events)/elapsed.Seconds(), "throughput-events/s")
		rec.reportOrder(b)
	})
	b.Run(fmt.Sprintf("rate=%d", benchRate), func(b *testing.B) {
		js, rec := benchStart(b)
		publish, stop := setup(b, js, rec)
		defer stop()
		next := warmUp(b, publish, rec)
		for b.Loop() {
			rec.expect(next + benchPaced)
			publishConcurrently(b, publish, next, benchPaced, pace(b.Context(), benchRate, benchPaced))
			rec.wait(b)
			next += benchPaced
		}
		p50, p99 := rec.percentiles()
		b.ReportMetric(float64(p50)/float64(time.Millisecond), "latency_p50-ms")
		b.ReportMetric(float64(p99)/float64(time.Millisecond), "latency_p99-ms")
		rec.reportOrder(b)
	})
}

// warmUp publishes and handles one full-load iteration's events before
// anything is measured: the server's store, the connections and the heap
// then start the measured iterations grown to their working size, as in a
// deployment that has run for a while, and start-up is not counted in the
// figures of either path. It returns the index of the first event to
// measure.
func warmUp(b *testing.B, publish publishFunc, rec *recorder) int {
	b.Helper()
	rec.expect(benchBatch)
	publishConcurrently(b, publish, 0, benchBatch, nil)
	rec.wait(b)
	rec.reset()
	return benchBatch
}

// benchStart starts a nats-server with file storage in a temporary directory
// and the tend streams.
func benchStart(b *testing.B) (jetstream.JetStream, *recorder) {
	b.Helper()
	// Each run starts from the same heap, whichever ran before it in this
	// process: on a virtual machine, memory touched for the first time
	// costs far more than memory reused, and a run after another would
	// otherwise inherit its grown heap.
	debug.FreeOSMemory()
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, js, err := Connect(b.Context(), srv.URL(), b.Name())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	if err := EnsureStreams(b.Context(), js, StreamsConfig{TelemetryPartitions: benchPartitions}); err != nil {
		b.Fatal(err)
	}
	return js, newRecorder()
}

// publishConcurrently publishes events first..first+n-1 from benchPublishers
// goroutines, each taking a token from tokens first when it is not nil.
func publishConcurrently(b *testing.B, publish publishFunc, first, n int, tokens <-chan struct{}) {
	var (
		wg      sync.WaitGroup
		counter atomic.Int64
		failed  atomic.Pointer[error]
	)
	counter.Store(int64(first) - 1)
	for range benchPublishers {
		wg.Go(func() {
			for {
				i := int(counter.Add(1))
				if i >= first+n {
					return
				}
				if tokens != nil {
					<-tokens
				}
				if err := publish(b.Context(), i); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("publish: %v", *err)
	}
}

// pace returns a channel that yields n tokens at rate per second.
func pace(ctx context.Context, rate, n int) <-chan struct{} {
	tokens := make(chan struct{}, benchPublishers)
	go func() {
		defer close(tokens)
		start := time.Now()
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return tokens
}

func benchID(i int) string { return "bench-" + strconv.Itoa(i) }

// benchEnvelope is the i-th event: a pod state, ~0.5 KiB encoded.
func benchEnvelope(i int) *Envelope {
	e := podEnvelope()
	e.SchemaVersion, e.Cluster, e.Source, e.Time = 0, "", "", time.Time{}
	e.ID = benchID(i)
	e.Object.Name = "web-" + strconv.Itoa(i%benchObjects)
	e.Object.UID = "uid-" + strconv.Itoa(i%benchObjects)
	return e
}

// recorder keeps the send time of every event and its latency once
// handled. Its tables grow in expect, between iterations, so that recording
// an event allocates nothing: the harness adds no garbage to either path.
type recorder struct {
	mu        sync.Mutex
	sentAt    []int64 // UnixNano, by event index
	handled   []bool
	count     int
	latencies []time.Duration
	// lastSeq is the stream sequence last handled per object, when the
	// path reports it; outOfOrder counts the deliveries below it.
	lastSeq    [benchObjects]uint64
	outOfOrder int
	ordered    bool // the path reports stream sequences
	want       int
	done       chan struct{}
	pubErr     error
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) expect(total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := total - len(r.sentAt); n > 0 {
		r.sentAt = slices.Grow(r.sentAt, n)[:total]
		r.handled = slices.Grow(r.handled, n)[:total]
		r.latencies = slices.Grow(r.latencies, n)
	}
	r.want = total
	r.done = make(chan struct{})
	if r.count >= total {
		close(r.done)
	}
}

// reset forgets the latencies recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = r.latencies[:0]
}

func (r *recorder) sent(i int) {
	now := time.Now().UnixNano()
	r.mu.Lock()
	r.sentAt[i] = now
	r.mu.Unlock()
}

// record notes that the event with id was handled; seq is its stream
// sequence, or 0 when the path does not report it.
func (r *recorder) record(id string, seq uint64) {
	now := time.Now().UnixNano()
	i, err := strconv.Atoi(strings.TrimPrefix(id, "bench-"))
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.handled) || r.handled[i] {
		return
	}
	r.handled[i] = true
	r.count++
	r.latencies = append(r.latencies, time.Duration(now-r.sentAt[i]))
	if seq > 0 {
		r.ordered = true
		if seq < r.lastSeq[i%benchObjects] {
			r.outOfOrder++
		}
		r.lastSeq[i%benchObjects] = seq
	}
	if r.count == r.want {
		close(r.done)
	}
}

// reportOrder reports the deliveries that came before an earlier message of
// their object, for a path that reports stream sequences (tend's). None is
// lost: every run waits for all of its events.
func (r *recorder) reportOrder(b *testing.B) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ordered {
		b.ReportMetric(float64(r.outOfOrder), "out_of_order-events")
	}
}

// acked records a publish's acknowledgement; a failure fails the benchmark.
func (r *recorder) acked(_ uint64, err error) {
	if err != nil {
		r.mu.Lock()
		r.pubErr = err
		r.mu.Unlock()
	}
}

func (r *recorder) wait(b *testing.B) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.pubErr != nil {
			b.Fatalf("publish: %v", r.pubErr)
		}
	case <-time.After(time.Minute):
		r.mu.Lock()
		defer r.mu.Unlock()
		b.Fatalf("%d of %d events handled after a minute", r.count, r.want)
	}
}

func (r *recorder) percentiles() (p50, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	if len(l) == 0 {
		return 0, 0
	}
	return l[len(l)*50/100], l[len(l)*99/100]
}
