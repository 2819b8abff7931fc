package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrPermanent is wrapped by a handler's error to terminate the message
// instead of retrying it.
var ErrPermanent = errors.New("bus: permanent failure")

// Consumer defaults.
const (
	DefaultMaxDeliver = 10
	DefaultAckWait    = 30 * time.Second
)

// DefaultBackoff is the delay before each redelivery after a transient
// failure; the last entry repeats.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

const (
	// pullBatch is how many messages one pull asks for; the client asks
	// again when half are handled. With one share carrying every object, a
	// small batch starves it: at 16, a share took at most about 18,000
	// messages/s on the benchmark machine, at 256 about 26,000 (one plain
	// JetStream consumer about 30,000). Handlers must stay quick (the
	// agent's folds a message into its model and judges elsewhere), so
	// that a buffered message is handled well within AckWait.
	pullBatch = 256
	// maxTermReason bounds the reason sent with a terminated message.
	maxTermReason = 256
)

// Delivery is one decoded telemetry message handed to a Handler.
type Delivery struct {
	Envelope     *Envelope
	Subject      string
	StreamSeq    uint64
	NumDelivered uint64

	msg jetstream.Msg
}

// InProgress tells the server that the handler is still working on the
// delivery, resetting its ack timer. Long handlers call it periodically.
func (d Delivery) InProgress() error {
	if d.msg == nil {
		return nil
	}
	return d.msg.InProgress()
}

// Handler handles one delivery. It returns nil when done, an error wrapping
// ErrPermanent when the message can never succeed, and any other error to
// have the message redelivered after a backoff. Its context expires after
// AckWait, when the server would redeliver the message anyway.
type Handler func(ctx context.Context, d Delivery) error

// ConsumerOptions configures a durable pull consumer.
type ConsumerOptions struct {
	// Stream and Durable name the stream and the durable consumer. Required.
	Stream, Durable string
	// FilterSubjects restricts the consumer to these subjects; empty means
	// all. Not used with Partitions.
	FilterSubjects []string
	// Partitions, when set, makes the consumer ordered by object and able to
	// scale out by object: it must be the TELEMETRY stream's partition count
	// (StreamsConfig.TelemetryPartitions), and Cluster names the cluster.
	// The partitions are dealt among Shares durable consumers,
	// <Durable>-s<j>-of-<Shares>: partition i goes to share i mod Shares.
	// Each share is pinned to one running replica at a time and handled in
	// stream order, so one object is handled by one replica at a time, in
	// order. Zero is one durable consumer whose messages any replica may
	// handle, in any order.
	Partitions int
	// Shares is how many replicas can share a partitioned consumer's work,
	// from 1 to Partitions. Default 1: one replica handles every partition
	// and the others stand by. Each share is one more durable consumer, and
	// more of them cost latency per message (docs/performance.md), so it is
	// worth as many shares as replicas actually run.
	Shares int
	// Cluster is the cluster whose telemetry a partitioned consumer reads.
	Cluster string
	// CurrentState makes a durable consumer, when it is first created,
	// start at the last message of each subject, the current state of each
	// object, instead of everything the stream holds: a telemetry stream
	// keeps up to a day, and a new consumer would otherwise read a day of
	// past states, of objects that may have changed since or of a cluster
	// that is gone, before the present. A durable that exists keeps its
	// place; one deleted and created again resumes after the last message
	// it finished.
	CurrentState bool
	// PinnedTTL is how long a share stays pinned to a replica that stopped
	// pulling before another replica takes it over. Default 15s.
	PinnedTTL time.Duration
	// MaxDeliver bounds deliveries of one message. Default 10; -1 is unlimited.
	MaxDeliver int
	// Backoff is the delay before the n-th redelivery after a handler error;
	// the last entry repeats. Default DefaultBackoff.
	Backoff []time.Duration
	// AckWait is how long the server waits for an ack before redelivering. Default 30s.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages; 0 is the server default.
	MaxAckPending int
	// DeadLetter is the subject terminated messages are copied to, with why.
	// Default DeadLetterSubject(Durable), kept by the DEADLETTER stream.
	DeadLetter string
	// NoDeadLetter turns the copy to DeadLetter off.
	NoDeadLetter bool
	// LagInterval is how often the consumer lag gauge is refreshed from the
	// server while no messages arrive. Default 15s.
	LagInterval time.Duration
}

// Consumer defaults of the options above.
const (
	DefaultPinnedTTL   = 15 * time.Second
	DefaultLagInterval = 15 * time.Second
	// pinnedPullExpiry is how long a pull request of a pinned consumer
	// waits; it is well within PinnedTTL so that a live replica keeps its pin.
	pinnedPullExpiry = 5 * time.Second
	// pinnedHeartbeats is how many idle heartbeats the server sends per
	// pull request of a pinned consumer.
	pinnedHeartbeats = 5
	// minHeartbeat is the shortest idle heartbeat the client accepts.
	minHeartbeat = 500 * time.Millisecond
	// priorityGroup is the one priority group of a share.
	priorityGroup = "tend"
	// pinIDHeader carries, on each message of a pinned share, the ID of the
	// pin the server delivered it under.
	pinIDHeader = "Nats-Pin-Id"
	// unpinTimeout bounds giving a share's pin back on shutdown.
	unpinTimeout = 5 * time.Second
	// deadLetterTimeout bounds copying one message to the dead-letter subject.
	deadLetterTimeout = 10 * time.Second
)

// Headers of a dead-lettered message; its data is the original message's.
const (
	HeaderSubject   = "Tend-Subject"
	HeaderStream    = "Tend-Stream"
	HeaderStreamSeq = "Tend-Stream-Seq"
	HeaderConsumer  = "Tend-Consumer"
	HeaderDelivered = "Tend-Delivered"
	HeaderReason    = "Tend-Reason"
	HeaderError     = "Tend-Error"
)

// Consumer runs a Handler over a durable JetStream pull consumer, or over
// one per partition. It is a controller-runtime manager.Runnable and
// LeaderElectionRunnable.
type Consumer struct {
	js      jetstream.JetStream
	opts    ConsumerOptions
	handler Handler
}

// NewConsumer checks opts, applies defaults and returns a Consumer. The
// durable consumers are created or updated by Start.
func NewConsumer(js jetstream.JetStream, opts ConsumerOptions, h Handler) (*Consumer, error) {
	switch {
	case js == nil:
		return nil, errors.New("bus: consumer needs a JetStream client")
	case h == nil:
		return nil, errors.New("bus: consumer needs a handler")
	case opts.Stream == "" || opts.Durable == "":
		return nil, errors.New("bus: consumer needs a stream and a durable name")
	case strings.ContainsAny(opts.Durable, ".*> \t\r\n"):
		return nil, fmt.Errorf("bus: invalid durable name %q", opts.Durable)
	case opts.MaxDeliver < -1 || opts.AckWait < 0 || opts.MaxAckPending < 0 || opts.Partitions < 0 || opts.Shares < 0 || opts.PinnedTTL < 0 || opts.LagInterval < 0:
		return nil, errors.New("bus: consumer limits must not be negative")
	case opts.Partitions > maxTelemetryPartitions:
		return nil, fmt.Errorf("bus: at most %d partitions", maxTelemetryPartitions)
	case opts.Partitions > 0 && opts.Stream != StreamTelemetry:
		return nil, fmt.Errorf("bus: only stream %s is partitioned", StreamTelemetry)
	case opts.Partitions > 0 && opts.Cluster == "":
		return nil, errors.New("bus: a partitioned consumer needs a cluster")
	case opts.Partitions > 0 && len(opts.FilterSubjects) > 0:
		return nil, errors.New("bus: a partitioned consumer takes no filter subjects")
	case opts.Shares > 0 && opts.Partitions == 0:
		return nil, errors.New("bus: only a partitioned consumer has shares")
	case opts.Shares > opts.Partitions:
		return nil, fmt.Errorf("bus: %d shares of %d partitions: at most one share per partition", opts.Shares, opts.Partitions)
	case opts.DeadLetter != "" && (strings.ContainsAny(opts.DeadLetter, "*> \t\r\n") || !strings.HasPrefix(opts.DeadLetter, deadRoot+".")):
		return nil, fmt.Errorf("bus: invalid dead-letter subject %q, want one under %s", opts.DeadLetter, deadRoot)
	}
	for _, d := range opts.Backoff {
		if d <= 0 {
			return nil, errors.New("bus: backoff delays must be positive")
		}
	}
	if opts.MaxDeliver == 0 {
		opts.MaxDeliver = DefaultMaxDeliver
	}
	if opts.Partitions > 0 && opts.Shares == 0 {
		opts.Shares = 1
	}
	if len(opts.Backoff) == 0 {
		opts.Backoff = DefaultBackoff
	}
	opts.Backoff = append([]time.Duration(nil), opts.Backoff...)
	opts.FilterSubjects = append([]string(nil), opts.FilterSubjects...)
	if opts.AckWait == 0 {
		opts.AckWait = DefaultAckWait
	}
	if opts.PinnedTTL == 0 {
		opts.PinnedTTL = DefaultPinnedTTL
	}
	if opts.LagInterval == 0 {
		opts.LagInterval = DefaultLagInterval
	}
	switch {
	case opts.NoDeadLetter:
		opts.DeadLetter = ""
	case opts.DeadLetter == "":
		opts.DeadLetter = DeadLetterSubject(opts.Durable)
	}
	return &Consumer{js: js, opts: opts, handler: h}, nil
}

// NeedLeaderElection is false: every replica consumes from the shared durable
// consumers, and the server hands each message to one of them.
func (c *Consumer) NeedLeaderElection() bool { return false }

// part is one durable consumer of a Consumer.
type part struct {
	durable string
	filter  []string
	pinned  bool
	// done is the highest stream sequence the part finished (acked or
	// terminated), where a consumer created again resumes.
	done *atomic.Uint64
}

func (c *Consumer) parts() []part {
	if c.opts.Partitions == 0 {
		return []part{{durable: c.opts.Durable, filter: c.opts.FilterSubjects, done: new(atomic.Uint64)}}
	}
	ps := make([]part, c.opts.Shares)
	for j := range ps {
		ps[j] = part{
			durable: ShareDurable(c.opts.Durable, j, c.opts.Shares),
			pinned:  true,
			done:    new(atomic.Uint64),
		}
	}
	if c.opts.Shares == 1 {
		// One filter rather than one per partition: the server matches it
		// as cheaply as a plain consumer's.
		ps[0].filter = []string{TelemetryFilter(c.opts.Cluster)}
		return ps
	}
	for i := range c.opts.Partitions {
		j := i % c.opts.Shares
		ps[j].filter = append(ps[j].filter, TelemetryPartitionFilter(c.opts.Cluster, i))
	}
	return ps
}

// ShareDurable is the durable consumer of share j of a partitioned consumer
// with the given number of shares. The number is in the name, so that
// replicas run with another number never change this one's filter.
func ShareDurable(durable string, j, shares int) string {
	return fmt.Sprintf("%s-s%d-of-%d", durable, j, shares)
}

// Start creates or updates the durable consumers and handles messages until
// ctx is done, then drains: messages already received are still handled.
// It returns an error if a consumer cannot be set up at start, unless ctx
// ended first (a shutdown while it was setting up). A consumer
// that stops later on its own, for example because someone deleted it, is
// reported (a log line and tend_bus_consumer_recreated_total) and created
// again, with a growing delay, while the others go on.
func (c *Consumer) Start(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("stream", c.opts.Stream, "consumer", c.opts.Durable)
	if c.opts.Partitions > 0 {
		n, err := telemetryPartitions(ctx, c.js)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped before it started
			}
			return err
		}
		if n != c.opts.Partitions {
			return fmt.Errorf("bus: consumer %s wants %d partitions, stream %s has %d", c.opts.Durable, c.opts.Partitions, c.opts.Stream, n)
		}
	}
	// Handlers keep running while the consumer drains, so they do not
	// inherit ctx's cancellation; each is bounded by AckWait instead.
	handlerCtx := logr.NewContext(context.WithoutCancel(ctx), log)

	parts := c.parts()
	runs := make([]*run, len(parts))
	stopAll := func() {
		for _, r := range runs {
			if r != nil {
				r.stop()
			}
		}
		for _, r := range runs {
			if r != nil {
				<-r.cc.Closed()
				c.unpin(handlerCtx, log, r)
			}
		}
	}
	// stopped receives the index of a part whose consumer stopped on its own.
	stopped := make(chan int, len(parts))
	watch := func(i int, r *run) {
		go func() {
			<-r.cc.Closed()
			if !r.stopping() {
				stopped <- i
			}
		}()
		go r.watchLag(c.opts.LagInterval)
	}
	for i, p := range parts {
		r, err := c.consume(ctx, handlerCtx, log, p, false)
		if err != nil {
			stopAll()
			if ctx.Err() != nil {
				// Stopped while it was setting up: a shutdown, not a failure.
				return nil
			}
			return err
		}
		runs[i] = r
		watch(i, r)
	}

	for {
		select {
		case <-ctx.Done():
			stopAll()
			return nil
		case i := <-stopped:
			old := runs[i]
			old.stopLag()
			log.Error(old.err(c.opts.Stream), "Consumer stopped; creating it again", "durable", old.durable)
			consumerRecreatedTotal.WithLabelValues(old.durable).Inc()
			r, err := c.recreate(ctx, handlerCtx, log, parts[i])
			if err != nil {
				runs[i] = nil
				stopAll()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer %s on stream %s stopped and cannot be created again: %w", old.durable, c.opts.Stream, errors.Join(old.err(c.opts.Stream), err))
			}
			runs[i] = r
			watch(i, r)
		}
	}
}

// recreate creates and consumes p again, retrying with a growing delay until
// it works or ctx is done.
func (c *Consumer) recreate(ctx context.Context, handlerCtx context.Context, log logr.Logger, p part) (*run, error) {
	delay := recreateDelay
	for {
		if c.js.Conn().IsClosed() {
			// Nothing to create it again on: the connection is gone for good.
			return nil, nats.ErrConnectionClosed
		}
		r, err := c.consume(ctx, handlerCtx, log, p, true)
		if err == nil {
			log.Info("Consumer created again", "durable", p.durable)
			return r, nil
		}
		log.Error(err, "Failed to create the consumer again; retrying", "durable", p.durable, "delay", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRecreateDelay)
	}
}

// Delays between attempts to create a stopped consumer again.
const (
	recreateDelay    = 500 * time.Millisecond
	maxRecreateDelay = 30 * time.Second
)

// run is one durable consumer being consumed.
type run struct {
	durable string
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	// lagCtx ends the lag watch of this run.
	lagCtx  context.Context
	stopLag context.CancelFunc
	// pin is the last pin ID the server gave this run's share with a
	// message (the Nats-Pin-Id header); nil when it is not pinned or got
	// nothing yet.
	pin atomic.Pointer[string]

	mu       sync.Mutex
	lastErr  error
	draining bool
}

// stop drains the run on purpose.
func (r *run) stop() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	r.stopLag()
	r.cc.Drain()
}

// stopping reports whether the run was stopped on purpose.
func (r *run) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.draining
}

func (r *run) err(stream string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr == nil {
		return fmt.Errorf("bus: consumer %s on stream %s stopped unexpectedly", r.durable, stream)
	}
	return fmt.Errorf("consumer %s on stream %s stopped: %w", r.durable, stream, r.lastErr)
}

// watchLag refreshes the lag gauges from the server every interval, so they
// stay true while no messages arrive.
func (r *run) watchLag(interval time.Duration) {
	ctx := r.lagCtx
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if info, err := r.cons.Info(ctx); err == nil {
			consumerLag.WithLabelValues(r.durable).Set(float64(info.NumPending))
			consumerAckPending.WithLabelValues(r.durable).Set(float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// unpin gives the pin of r's share back to the server once r has drained,
// so that a standby replica takes the share over at once rather than after
// PinnedTTL (a rolling restart would otherwise leave the share unread that
// long). It unpins only the pin r was last given, and only while the server
// still holds it: a replica that was standing by leaves the pin where it is.
// A failure costs nothing but the wait, so it is only logged.
func (c *Consumer) unpin(ctx context.Context, log logr.Logger, r *run) {
	id := r.pin.Load()
	if id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, unpinTimeout)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		log.V(1).Info("Could not read the share's pin to give it back; a standby takes over after the pin's TTL", "durable", r.durable, "error", err.Error())
		return
	}
	held := false
	for _, g := range info.PriorityGroups {
		held = held || (g.Group == priorityGroup && g.PinnedClientID == *id)
	}
	if !held {
		return
	}
	st, err := c.js.Stream(ctx, c.opts.Stream)
	if err == nil {
		err = st.UnpinConsumer(ctx, r.durable, priorityGroup)
	}
	if err != nil {
		log.V(1).Info("Could not give the share's pin back; a standby takes over after the pin's TTL", "durable", r.durable, "error", err.Error())
		return
	}
	log.V(1).Info("Gave the share's pin back", "durable", r.durable)
}

// consume creates or updates p's durable consumer and consumes it. With
// again, the consumer stopped before: one that exists (another replica made
// it again) is consumed as it is, and a new one resumes after the last
// message p finished rather than from the start of the stream.
func (c *Consumer) consume(ctx, handlerCtx context.Context, log logr.Logger, p part, again bool) (*run, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:        p.durable,
		FilterSubjects: p.filter,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		// The server's own BackOff would also replace AckWait with its first
		// entry, so backoff is applied per message with NakWithDelay instead.
		AckWait:       c.opts.AckWait,
		MaxDeliver:    c.opts.MaxDeliver,
		MaxAckPending: c.opts.MaxAckPending,
	}
	consumeOpts := []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(pullBatch)}
	if p.pinned {
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{priorityGroup}
		cfg.PinnedTTL = c.opts.PinnedTTL
		expiry := min(pinnedPullExpiry, c.opts.PinnedTTL/2)
		// A pull request the server no longer serves shows as missing
		// heartbeats; the client then pulls again. Under load a busy share
		// was seen stalled for a whole expiry (5 s) before that; heartbeats
		// at a fifth of it bound such a stall to about 2 s.
		consumeOpts = append(consumeOpts, jetstream.PullPriorityGroup(priorityGroup), jetstream.PullExpiry(expiry))
		if hb := max(expiry/pinnedHeartbeats, minHeartbeat); hb <= expiry/2 {
			consumeOpts = append(consumeOpts, jetstream.PullHeartbeat(hb))
		}
	}
	if c.opts.CurrentState {
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	}
	var cons jetstream.Consumer
	var err error
	// floor is the last stream sequence a consumer created again must not
	// hand to the handler: everything up to it was finished before.
	var floor uint64
	if again {
		cons, err = c.js.Consumer(ctx, c.opts.Stream, p.durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			if done := p.done.Load(); done > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, done+1
				floor = done
			}
			cons, err = c.js.CreateConsumer(ctx, c.opts.Stream, cfg)
		}
	} else {
		if c.opts.CurrentState {
			// Where a durable starts cannot be changed once it exists.
			if existing, lerr := c.js.Consumer(ctx, c.opts.Stream, p.durable); lerr == nil {
				ec := existing.CachedInfo().Config
				cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = ec.DeliverPolicy, ec.OptStartSeq, ec.OptStartTime
			} else if !errors.Is(lerr, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Errorf("failed to look up consumer %s on stream %s: %w", p.durable, c.opts.Stream, lerr)
			}
		}
		cons, err = c.js.CreateOrUpdateConsumer(ctx, c.opts.Stream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to create or update consumer %s on stream %s: %w", p.durable, c.opts.Stream, err)
	}
	r := &run{durable: p.durable, cons: cons}
	r.lagCtx, r.stopLag = context.WithCancel(ctx)
	plog := log.WithValues("durable", p.durable)
	s := &settler{c: c, durable: p.durable, done: p.done, lag: consumerLag.WithLabelValues(p.durable),
		pinned: p.pinned, pin: &r.pin, floor: floor,
		delivered: deliveredTotal.WithLabelValues(p.durable), redelivered: redeliveredTotal.WithLabelValues(p.durable)}
	consumeOpts = append(consumeOpts, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		plog.Error(err, "Consuming failed")
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
	}))
	r.cc, err = cons.Consume(func(msg jetstream.Msg) { s.handle(handlerCtx, plog, msg) }, consumeOpts...)
	if err != nil {
		return nil, fmt.Errorf("failed to consume %s on stream %s: %w", p.durable, c.opts.Stream, err)
	}
	return r, nil
}

// settler handles and settles the messages of one durable consumer; the
// metrics it updates are looked up once.
type settler struct {
	c       *Consumer
	durable string
	// done is the part's highest finished stream sequence.
	done                   *atomic.Uint64
	lag                    prometheus.Gauge
	delivered, redelivered prometheus.Counter
	// pinned shares record the pin each message came with in pin.
	pinned bool
	pin    *atomic.Pointer[string]
	// floor: messages at or below this stream sequence were finished
	// before the consumer was created again; they are acked, not handled.
	floor uint64
}

// handle settles one message: malformed and permanently failing messages
// are terminated and dead-lettered, transient failures are redelivered
// after a backoff.
func (s *settler) handle(ctx context.Context, log logr.Logger, msg jetstream.Msg) {
	s.delivered.Inc()
	if s.pinned {
		if id := msg.Headers().Get(pinIDHeader); id != "" {
			if cur := s.pin.Load(); cur == nil || *cur != id {
				// A copy, so that only a new pin is moved to the heap,
				// not every message's.
				pin := id
				s.pin.Store(&pin)
			}
		}
	}
	meta, err := msg.Metadata()
	if err != nil {
		s.terminate(ctx, log, msg, nil, ReasonMalformed, fmt.Errorf("no JetStream metadata: %w", err))
		return
	}
	s.lag.Set(float64(meta.NumPending))
	if meta.Sequence.Stream <= s.floor {
		// A durable deleted and at once created again can come back with
		// the deleted one's state from the server's store, which lags its
		// acks, instead of the start it was created with (seen with
		// nats-server 2.15): what the part finished is not handled twice.
		if err := msg.Ack(); err != nil {
			log.Error(err, "Failed to ack message")
		}
		return
	}
	if meta.NumDelivered > 1 {
		s.redelivered.Inc()
	}

	env, err := Decode(msg.Data())
	if err != nil {
		s.terminate(ctx, msgLog(log, msg, meta), msg, meta, ReasonMalformed, err)
		s.finished(meta)
		return
	}
	err = s.c.call(ctx, Delivery{
		Envelope:     env,
		Subject:      ObjectSubject(msg.Subject()),
		StreamSeq:    meta.Sequence.Stream,
		NumDelivered: meta.NumDelivered,
		msg:          msg,
	})
	if err != nil {
		log = msgLog(log, msg, meta)
	}
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			log.Error(err, "Failed to ack message")
		}
		s.finished(meta)
	case errors.Is(err, ErrPermanent):
		s.terminate(ctx, log, msg, meta, ReasonPermanent, err)
		s.finished(meta)
	case s.lastDelivery(meta):
		s.terminate(ctx, log, msg, meta, ReasonExhausted, err)
		s.finished(meta)
	default:
		delay := s.c.backoff(meta.NumDelivered)
		log.V(1).Info("Handler failed, retrying later", "error", err.Error(), "delay", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Error(err, "Failed to nak message")
		}
	}
}

// msgLog adds a message's identity to log; it is only built when there is
// something to log, to keep the message path free of allocations.
// finished records that the message at meta's stream sequence is done with.
func (s *settler) finished(meta *jetstream.MsgMetadata) {
	for seq := meta.Sequence.Stream; ; {
		cur := s.done.Load()
		if cur >= seq || s.done.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func msgLog(log logr.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata) logr.Logger {
	return log.WithValues("subject", msg.Subject(), "streamSeq", meta.Sequence.Stream, "numDelivered", meta.NumDelivered)
}

// lastDelivery reports whether the server will not deliver the message again.
func (s *settler) lastDelivery(meta *jetstream.MsgMetadata) bool {
	return s.c.opts.MaxDeliver > 0 && meta.NumDelivered >= uint64(s.c.opts.MaxDeliver)
}

// call runs the handler, turning a panic into a transient error.
func (c *Consumer) call(ctx context.Context, d Delivery) (err error) {
	cctx := newCallContext(ctx, c.opts.AckWait)
	defer cctx.end()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bus: handler panicked: %v", r)
		}
	}()
	return c.handler(cctx, d)
}

// terminate copies msg to the dead-letter subject and terminates it. When
// the copy fails and the server would deliver msg again, it is redelivered
// after a backoff instead, so that it is not lost; on its last delivery it
// is terminated anyway.
func (s *settler) terminate(ctx context.Context, log logr.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string, cause error) {
	text := reason + ": " + cause.Error()
	if len(text) > maxTermReason {
		text = strings.ToValidUTF8(text[:maxTermReason], "")
	}
	if s.c.opts.DeadLetter != "" {
		if err := s.deadLetter(ctx, msg, meta, reason, text); err != nil {
			deadLetterFailedTotal.WithLabelValues(s.durable).Inc()
			if meta != nil && !s.lastDelivery(meta) {
				log.Error(err, "Failed to dead-letter message, retrying later", "reason", reason)
				if err := msg.NakWithDelay(s.c.backoff(meta.NumDelivered)); err != nil {
					log.Error(err, "Failed to nak message")
				}
				return
			}
			log.Error(err, "Failed to dead-letter message on its last delivery", "reason", reason)
		} else {
			deadLetteredTotal.WithLabelValues(s.durable, reason).Inc()
		}
	}
	terminatedTotal.WithLabelValues(s.durable, reason).Inc()
	log.V(1).Info("Terminating message", "reason", reason, "error", cause.Error())
	if err := msg.TermWithReason(text); err != nil {
		log.Error(err, "Failed to terminate message")
	}
}

// deadLetter publishes a copy of msg, with where it came from and why it
// was terminated, to the dead-letter subject. Its message ID makes a
// repeated copy of the same stored message a no-op.
func (s *settler) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason, text string) error {
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	dl := nats.NewMsg(s.c.opts.DeadLetter)
	dl.Data = msg.Data()
	dl.Header.Set(HeaderSubject, msg.Subject())
	dl.Header.Set(HeaderConsumer, s.durable)
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderError, headerText(text))
	var opts []jetstream.PublishOpt
	if meta != nil {
		dl.Header.Set(HeaderStream, meta.Stream)
		dl.Header.Set(HeaderStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		dl.Header.Set(HeaderDelivered, strconv.FormatUint(meta.NumDelivered, 10))
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("%s-%s-%d", meta.Stream, s.durable, meta.Sequence.Stream)))
	}
	if _, err := s.c.js.PublishMsg(ctx, dl, append(opts, jetstream.WithExpectStream(StreamDeadLetter))...); err != nil {
		return fmt.Errorf("failed to publish to %s: %w", s.c.opts.DeadLetter, err)
	}
	return nil
}

// headerText makes text safe as a header value: one line of printable ASCII.
func headerText(text string) string {
	b := []byte(text)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}

// backoff is the delay before redelivering a message delivered n times.
func (c *Consumer) backoff(n uint64) time.Duration {
	i := min(max(n, 1)-1, uint64(len(c.opts.Backoff)-1))
	return c.opts.Backoff[i]
}
