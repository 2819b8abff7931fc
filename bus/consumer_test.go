package bus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startBusWith is startBus with stream settings.
func startBusWith(t *testing.T, cfg StreamsConfig) jetstream.JetStream {
	t.Helper()
	_, js := startServerWith(t, cfg)
	return js
}

// startServerWith is startBusWith that also returns the server, for tests
// that connect more clients (replicas) to it.
func startServerWith(t *testing.T, cfg StreamsConfig) (*Embedded, jetstream.JetStream) {
	t.Helper()
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	js := connect(t, srv)
	if err := EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	return srv, js
}

// deadLetters returns the headers and data of every message on subject in
// the DEADLETTER stream.
func deadLetters(t *testing.T, js jetstream.JetStream, subject string) []map[string]string {
	t.Helper()
	s, err := js.Stream(t.Context(), StreamDeadLetter)
	if err != nil {
		t.Fatalf("stream %s: %v", StreamDeadLetter, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		if m.Subject != subject {
			continue
		}
		h := map[string]string{"data": string(m.Data)}
		for _, k := range []string{HeaderSubject, HeaderStream, HeaderConsumer, HeaderReason, HeaderDelivered} {
			h[k] = m.Header.Get(k)
		}
		out = append(out, h)
	}
	return out
}

func TestConsumerDeadLetters(t *testing.T) {
	_, js := startBus(t)
	const durable = "dead-letters"
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable, MaxDeliver: 2, Backoff: []time.Duration{time.Millisecond}},
		func(_ context.Context, d Delivery) error {
			switch d.Envelope.ID {
			case "permanent":
				return fmt.Errorf("no such workload: %w", ErrPermanent)
			case "exhausted":
				return fmt.Errorf("still failing")
			}
			return nil
		})

	garbage := `{"schemaVersion":1,"id":"x","verdict":"approve"}`
	if _, err := js.Publish(t.Context(), TelemetrySubject("prod", KindPod, "shop", "web"), []byte(garbage)); err != nil {
		t.Fatalf("publishing raw data: %v", err)
	}
	p := NewPublisher(js, "prod", "sensor")
	var last uint64
	for _, id := range []string{"permanent", "fine", "exhausted"} {
		e := nodeEnvelope()
		e.ID = id
		seq, err := p.Publish(t.Context(), e)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		last = seq
	}
	eventually(t, "all messages settled", settled(t.Context(), js, StreamTelemetry, durable, last))

	got := deadLetters(t, js, DeadLetterSubject(durable))
	// Data is compared by envelope ID only; the envelopes are checked by other tests.
	for _, h := range got {
		if env, err := Decode([]byte(h["data"])); err == nil {
			h["data"] = env.ID
		}
	}
	want := []map[string]string{
		{"data": garbage, HeaderSubject: storedSubject(t, js, KindPod, "shop", "web"),
			HeaderStream: StreamTelemetry, HeaderConsumer: durable, HeaderReason: ReasonMalformed, HeaderDelivered: "1"},
		{"data": "permanent", HeaderSubject: storedSubject(t, js, KindNode, "", "node-1"),
			HeaderStream: StreamTelemetry, HeaderConsumer: durable, HeaderReason: ReasonPermanent, HeaderDelivered: "1"},
		{"data": "exhausted", HeaderSubject: storedSubject(t, js, KindNode, "", "node-1"),
			HeaderStream: StreamTelemetry, HeaderConsumer: durable, HeaderReason: ReasonExhausted, HeaderDelivered: "2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	for reason, want := range map[string]float64{ReasonMalformed: 1, ReasonPermanent: 1, ReasonExhausted: 1} {
		if n := testutil.ToFloat64(deadLetteredTotal.WithLabelValues(durable, reason)); n != want {
			t.Errorf("deadlettered_total{reason=%s} = %v, want %v", reason, n, want)
		}
	}
}

// storedSubject returns the subject the TELEMETRY stream stored the last
// message about an object under, with its partition.
func storedSubject(t *testing.T, js jetstream.JetStream, kind Kind, namespace, name string) string {
	t.Helper()
	s, err := js.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	filter := StoredTelemetryFilter("prod", kind, namespace, name)
	m, err := s.GetLastMsgForSubject(t.Context(), filter)
	if err != nil {
		t.Fatalf("last message on %s: %v", filter, err)
	}
	if got, want := ObjectSubject(m.Subject), TelemetrySubject("prod", kind, namespace, name); got != want {
		t.Fatalf("stored as %s, published as %s, want %s", m.Subject, got, want)
	}
	return m.Subject
}

func TestConsumerWithoutDeadLetter(t *testing.T) {
	_, js := startBus(t)
	const durable = "no-dead-letters"
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable, NoDeadLetter: true},
		func(context.Context, Delivery) error { return fmt.Errorf("bad: %w", ErrPermanent) })
	seq, err := NewPublisher(js, "prod", "sensor").Publish(t.Context(), nodeEnvelope())
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	eventually(t, "message settled", settled(t.Context(), js, StreamTelemetry, durable, seq))
	if got := deadLetters(t, js, DeadLetterSubject(durable)); len(got) != 0 {
		t.Errorf("dead letters: %v, want none", got)
	}
	if n := testutil.ToFloat64(terminatedTotal.WithLabelValues(durable, ReasonPermanent)); n != 1 {
		t.Errorf("terminated_total{reason=permanent} = %v, want 1", n)
	}
}

func TestConsumerLag(t *testing.T) {
	_, js := startBus(t)
	const durable = "lag"
	p := NewPublisher(js, "prod", "sensor")
	for i := range 5 {
		e := nodeEnvelope()
		e.ID = fmt.Sprintf("lag-%d", i)
		if _, err := p.Publish(t.Context(), e); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	release := make(chan struct{})
	// One message at a time: while the handler holds the first, four wait.
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable, MaxAckPending: 1, LagInterval: 20 * time.Millisecond},
		func(ctx context.Context, _ Delivery) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	gauge := func(want float64) func() (bool, error) {
		return func() (bool, error) {
			return testutil.ToFloat64(consumerLag.WithLabelValues(durable)) == want &&
				testutil.ToFloat64(consumerAckPending.WithLabelValues(durable)) == min(want, 1), nil
		}
	}
	eventually(t, "lag of 4 with one message in the handler", gauge(4))
	close(release)
	eventually(t, "lag of 0 once all are handled", gauge(0))
}

func TestPartitionedConsumerMismatch(t *testing.T) {
	js := startBusWith(t, StreamsConfig{TelemetryPartitions: 4})
	c, err := NewConsumer(js, ConsumerOptions{Stream: StreamTelemetry, Durable: "wrong", Cluster: "prod", Partitions: 8},
		func(context.Context, Delivery) error { return nil })
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	if err := c.Start(t.Context()); err == nil {
		t.Error("Start of a consumer with 8 partitions on a stream with 4 succeeded")
	}
}

// TestPartitionedConsumerScaleOut runs two replicas of a partitioned
// consumer, with the partitions in one share (one replica works, the other
// stands by), in two and in one per partition, and checks that every object
// is handled by one replica, one message at a time, in the order its states
// were published.
func TestPartitionedConsumerScaleOut(t *testing.T) {
	for _, shares := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("shares=%d", shares), func(t *testing.T) { testScaleOut(t, shares) })
	}
}

func testScaleOut(t *testing.T, shares int) {
	const (
		partitions = 4
		objects    = 40
		states     = 25
		durable    = "agents"
	)
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	js := connect(t, srv)
	if err := EnsureStreams(t.Context(), js, StreamsConfig{TelemetryPartitions: partitions}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}

	type object = string
	var (
		mu       sync.Mutex
		inFlight = map[object]int{}     // replica handling the object now, or absent
		handled  = map[object][]int32{} // states handled, in order
		replicas = map[object]map[int]bool{}
		overlaps []string
	)
	replica := func(id int) Handler {
		return func(_ context.Context, d Delivery) error {
			key := d.Envelope.Object.Name
			mu.Lock()
			if other, busy := inFlight[key]; busy {
				overlaps = append(overlaps, fmt.Sprintf("%s in replica %d while in replica %d", key, id, other))
			}
			inFlight[key] = id
			mu.Unlock()
			// The handler works with the object while it holds it.
			state := d.Envelope.Pod.Containers[0].RestartCount
			mu.Lock()
			delete(inFlight, key)
			handled[key] = append(handled[key], state)
			if replicas[key] == nil {
				replicas[key] = map[int]bool{}
			}
			replicas[key][id] = true
			mu.Unlock()
			return nil
		}
	}
	opts := ConsumerOptions{Stream: StreamTelemetry, Durable: durable, Cluster: "prod", Partitions: partitions, Shares: shares}
	runConsumer(t, connect(t, srv), opts, replica(1))
	runConsumer(t, connect(t, srv), opts, replica(2))

	p := NewPublisher(js, "prod", "sensor")
	for s := range states {
		for o := range objects {
			e := podEnvelope()
			e.Object.Name = fmt.Sprintf("pod-%d", o)
			e.ID = fmt.Sprintf("%s/%d", e.Object.Name, s)
			e.Pod.Containers[0].RestartCount = int32(s)
			if _, err := p.Publish(t.Context(), e); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
	}
	eventually(t, "every state handled", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range handled {
			n += len(h)
		}
		return n >= objects*states, nil
	})

	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("objects handled by two replicas at once: %v", overlaps)
	}
	want := make([]int32, states)
	for i := range want {
		want[i] = int32(i)
	}
	for o := range objects {
		key := fmt.Sprintf("pod-%d", o)
		if diff := cmp.Diff(want, handled[key]); diff != "" {
			t.Errorf("states of %s handled (-want +got):\n%s", key, diff)
		}
		if len(replicas[key]) != 1 {
			t.Errorf("%s handled by replicas %v, want one", key, replicas[key])
		}
	}
	workers := map[int]bool{}
	for _, r := range replicas {
		for id := range r {
			workers[id] = true
		}
	}
	if shares == 1 && len(workers) != 1 {
		t.Errorf("with one share, replicas %v handled messages, want one", workers)
	}
	var names []string
	stream, err := js.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	lister := stream.ConsumerNames(t.Context())
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	var durables []string
	for j := range shares {
		durables = append(durables, ShareDurable(durable, j, shares))
	}
	slices.Sort(names)
	if !slices.Equal(names, durables) {
		t.Errorf("durable consumers %v, want %v", names, durables)
	}
}

// TestConsumerTerminatesOversized publishes a message the stream stores but
// Decode refuses for its size: the consumer terminates and dead-letters it.
func TestConsumerTerminatesOversized(t *testing.T) {
	_, js := startBus(t)
	const durable = "oversized"
	got := make(chan Delivery, 1)
	runConsumer(t, js, ConsumerOptions{Stream: StreamTelemetry, Durable: durable}, func(_ context.Context, d Delivery) error {
		got <- d
		return nil
	})
	big := append([]byte(`{"schemaVersion":1,"id":"`), make([]byte, MaxMessageSize)...)
	for i := 25; i < len(big); i++ {
		big[i] = 'a'
	}
	ack, err := js.Publish(t.Context(), TelemetrySubject("prod", KindPod, "shop", "big"), big)
	if err != nil {
		t.Fatalf("publishing %d bytes: %v", len(big), err)
	}
	eventually(t, "message settled", settled(t.Context(), js, StreamTelemetry, durable, ack.Sequence))
	if n := testutil.ToFloat64(terminatedTotal.WithLabelValues(durable, ReasonMalformed)); n != 1 {
		t.Errorf("terminated_total{reason=malformed} = %v, want 1", n)
	}
	if dl := deadLetters(t, js, DeadLetterSubject(durable)); len(dl) != 1 || len(dl[0]["data"]) != len(big) {
		t.Errorf("dead letters: %d, want the one oversized message", len(dl))
	}
	if len(got) != 0 {
		t.Error("the handler saw the oversized message")
	}
}

// TestNewConsumerRefuses checks that options which cannot work are refused
// before anything is created on the server.
func TestNewConsumerRefuses(t *testing.T) {
	_, js := startBus(t)
	nop := func(context.Context, Delivery) error { return nil }
	part := ConsumerOptions{Stream: StreamTelemetry, Durable: "d", Cluster: "prod", Partitions: 4}
	with := func(mutate func(*ConsumerOptions)) ConsumerOptions {
		o := part
		mutate(&o)
		return o
	}
	for name, tc := range map[string]struct {
		opts ConsumerOptions
		want string
	}{
		"more shares than partitions": {with(func(o *ConsumerOptions) { o.Shares = 5 }), "5 shares of 4 partitions"},
		"negative shares":             {with(func(o *ConsumerOptions) { o.Shares = -1 }), "must not be negative"},
		"shares unpartitioned":        {ConsumerOptions{Stream: StreamTelemetry, Durable: "d", Shares: 2}, "only a partitioned consumer has shares"},
		"partitions without cluster":  {with(func(o *ConsumerOptions) { o.Cluster = "" }), "needs a cluster"},
		"partitions with filters":     {with(func(o *ConsumerOptions) { o.FilterSubjects = []string{"x"} }), "takes no filter subjects"},
		"durable with a dot":          {with(func(o *ConsumerOptions) { o.Durable = "a.b" }), "invalid durable name"},
	} {
		if _, err := NewConsumer(js, tc.opts, nop); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewConsumer() error %v, want one containing %q", name, err, tc.want)
		}
	}
}

// TestOneShareFailsOver runs replicas on one share: the first holds the pin
// and handles everything while it runs; a standby that stops leaves the pin
// alone; once the first stops, it gives the pin back and the standby takes
// over at once, long before the pin's TTL.
func TestOneShareFailsOver(t *testing.T) {
	// The agents' own identity, so that giving the pin back is checked
	// against their permissions; a pin that would outlive the test, so that
	// only a pin given back lets the standby in.
	srv := startSecuredBus(t)
	_, controllerJS, _ := connectAs(t, srv, ComponentController)
	if err := EnsureStreams(t.Context(), controllerJS, StreamsConfig{TelemetryPartitions: 4}); err != nil {
		t.Fatal(err)
	}
	opts := ConsumerOptions{Stream: StreamTelemetry, Durable: "standby", Cluster: "prod", Partitions: 4, PinnedTTL: 10 * time.Minute}
	got := make(chan int, 16)
	replica := func(id int) Handler {
		return func(context.Context, Delivery) error {
			got <- id
			return nil
		}
	}
	_, sensorJS, _ := connectAs(t, srv, ComponentSensor)
	p := NewPublisher(sensorJS, "prod", "sensor")
	publish := func(i int) {
		e := podEnvelope()
		e.ID = fmt.Sprintf("standby-%d", i)
		e.Object.Name = fmt.Sprintf("pod-%d", i)
		if _, err := p.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	pin := func() string {
		t.Helper()
		cons, err := controllerJS.Consumer(t.Context(), StreamTelemetry, ShareDurable(opts.Durable, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range cons.CachedInfo().PriorityGroups {
			if g.Group == priorityGroup {
				return g.PinnedClientID
			}
		}
		return ""
	}
	var agentErrs []<-chan error
	start := func(id int) (stop func()) {
		t.Helper()
		_, js, errs := connectAs(t, srv, ComponentAgent)
		agentErrs = append(agentErrs, errs)
		c, err := NewConsumer(js, opts, replica(id))
		if err != nil {
			t.Fatal(err)
		}
		return startConsumer(t, c)
	}

	stopFirst := start(1)
	defer func() { stopFirst() }()
	publish(0)
	if id := receive(t, got); id != 1 {
		t.Fatalf("the first message went to replica %d, want 1, the only one running", id)
	}
	held := pin()
	if held == "" {
		t.Fatal("replica 1 got a message of its share, and the share shows no pin")
	}
	waiting := func(n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d replicas pull the share", n), func() (bool, error) {
			cons, err := controllerJS.Consumer(t.Context(), StreamTelemetry, ShareDurable(opts.Durable, 0, 1))
			if err != nil {
				return false, err
			}
			return cons.CachedInfo().NumWaiting >= n, nil
		})
	}
	defer start(2)()
	waiting(2)
	// A standby that stops leaves the pin where it is.
	stopThird := start(3)
	waiting(3)
	stopThird()
	if now := pin(); now != held {
		t.Fatalf("a standby stopped and the share's pin went from %q to %q", held, now)
	}
	for i := 1; i <= 5; i++ {
		publish(i)
		if id := receive(t, got); id != 1 {
			t.Fatalf("message %d went to replica %d while replica 1 holds the share", i, id)
		}
	}
	stopFirst()
	stopFirst = func() {}
	publish(6)
	if id := receive(t, got); id != 2 {
		t.Fatalf("after replica 1 stopped, a message went to replica %d, want the standby, 2", id)
	}
	for _, errs := range agentErrs {
		select {
		case err := <-errs:
			t.Errorf("an agent's connection reported %v", err)
		default:
		}
	}
}

// TestCurrentStateStartsAtEachObjectsLastState checks that a new durable
// consumer with CurrentState gets the last message of each object, not the
// stream's history; that it then keeps its place across restarts; and that
// a durable created before, from the start of the stream, is left as it is.
func TestCurrentStateStartsAtEachObjectsLastState(t *testing.T) {
	srv, js := startServerWith(t, StreamsConfig{TelemetryPartitions: 4})
	p := NewPublisher(js, "prod", "sensor")
	n := 0
	publish := func(object string) string {
		n++
		e := podEnvelope()
		e.ID = fmt.Sprintf("state-%d", n)
		e.Object.Name = object
		if _, err := p.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	var last []string
	for _, object := range []string{"a", "b", "c"} {
		for range 3 {
			publish(object)
		}
		last = append(last, fmt.Sprintf("state-%d", n))
	}
	old := ConsumerOptions{Stream: StreamTelemetry, Durable: "history", Cluster: "prod", Partitions: 4, PinnedTTL: 2 * time.Second}
	runOnce := func(opts ConsumerOptions, want int, during func()) []string {
		t.Helper()
		got := make(chan string, 32)
		c, err := NewConsumer(connect(t, srv), opts, func(_ context.Context, d Delivery) error {
			got <- d.Envelope.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := startConsumer(t, c)
		if during != nil {
			during()
		}
		var ids []string
		for range want {
			ids = append(ids, receive(t, got))
		}
		select {
		case id := <-got:
			t.Errorf("%s got %s beyond the %d messages expected", opts.Durable, id, want)
		case <-time.After(500 * time.Millisecond):
		}
		stop()
		return ids
	}

	// A durable from before CurrentState read the whole stream, and keeps
	// doing so under it.
	if ids := runOnce(old, 9, nil); len(ids) != 9 {
		t.Fatalf("the durable from before got %v", ids)
	}
	old.CurrentState = true
	if ids := runOnce(old, 1, func() { publish("a") }); ids[0] != fmt.Sprintf("state-%d", n) {
		t.Fatalf("the durable from before got %v after a restart under CurrentState, want only the new message", ids)
	}

	current := ConsumerOptions{Stream: StreamTelemetry, Durable: "current", Cluster: "prod", Partitions: 4, PinnedTTL: 2 * time.Second, CurrentState: true}
	last[0] = fmt.Sprintf("state-%d", n) // object a's newest
	ids := runOnce(current, 3, nil)
	slices.Sort(ids)
	slices.Sort(last)
	if !slices.Equal(ids, last) {
		t.Fatalf("a new durable with CurrentState got %v, want each object's last state %v", ids, last)
	}
	// Restarted, it resumes where it was: only what came since.
	if ids := runOnce(current, 1, func() { publish("b") }); ids[0] != fmt.Sprintf("state-%d", n) {
		t.Fatalf("after a restart the durable got %v, want only the new message", ids)
	}
}

// TestStartStoppedBeforeItStarts checks that a consumer stopped while it
// sets up reports a shutdown, not a failure.
func TestStartStoppedBeforeItStarts(t *testing.T) {
	_, js := startServerWith(t, StreamsConfig{TelemetryPartitions: 4})
	for _, partitions := range []int{0, 4} {
		opts := ConsumerOptions{Stream: StreamTelemetry, Durable: fmt.Sprintf("early-%d", partitions), Cluster: "prod", Partitions: partitions}
		if partitions == 0 {
			opts.FilterSubjects = []string{TelemetryFilter("prod")}
		}
		c, err := NewConsumer(js, opts, func(context.Context, Delivery) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := c.Start(ctx); err != nil {
			t.Errorf("partitions %d: Start with its context already ended returned %v, want nil", partitions, err)
		}
	}
}
