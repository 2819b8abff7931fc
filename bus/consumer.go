package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
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
	// pullBatch bounds the messages buffered in the client, so that a
	// buffered message is handled well within AckWait.
	pullBatch = 16
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
	// FilterSubjects restricts the consumer to these subjects; empty means all.
	FilterSubjects []string
	// MaxDeliver bounds deliveries of one message. Default 10; -1 is unlimited.
	MaxDeliver int
	// Backoff is the delay before the n-th redelivery after a handler error;
	// the last entry repeats. Default DefaultBackoff.
	Backoff []time.Duration
	// AckWait is how long the server waits for an ack before redelivering. Default 30s.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages; 0 is the server default.
	MaxAckPending int
}

// Consumer runs a Handler over a durable JetStream pull consumer. It is a
// controller-runtime manager.Runnable and LeaderElectionRunnable.
type Consumer struct {
	js      jetstream.JetStream
	opts    ConsumerOptions
	handler Handler
}

// NewConsumer checks opts, applies defaults and returns a Consumer. The
// durable consumer is created or updated by Start.
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
	case opts.MaxDeliver < -1 || opts.AckWait < 0 || opts.MaxAckPending < 0:
		return nil, errors.New("bus: consumer limits must not be negative")
	}
	for _, d := range opts.Backoff {
		if d <= 0 {
			return nil, errors.New("bus: backoff delays must be positive")
		}
	}
	if opts.MaxDeliver == 0 {
		opts.MaxDeliver = DefaultMaxDeliver
	}
	if len(opts.Backoff) == 0 {
		opts.Backoff = DefaultBackoff
	}
	opts.Backoff = append([]time.Duration(nil), opts.Backoff...)
	opts.FilterSubjects = append([]string(nil), opts.FilterSubjects...)
	if opts.AckWait == 0 {
		opts.AckWait = DefaultAckWait
	}
	return &Consumer{js: js, opts: opts, handler: h}, nil
}

// NeedLeaderElection is false: every replica consumes from the shared durable
// consumer, and the server hands each message to one of them.
func (c *Consumer) NeedLeaderElection() bool { return false }

// Start creates or updates the durable consumer and handles messages until
// ctx is done, then drains: messages already received are still handled.
// It returns an error if the consumer cannot be set up or stops on its own,
// for example because it was deleted.
func (c *Consumer) Start(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("stream", c.opts.Stream, "consumer", c.opts.Durable)
	// The server's own BackOff would also replace AckWait with its first
	// entry, so backoff is applied per message with NakWithDelay instead.
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.opts.Stream, jetstream.ConsumerConfig{
		Durable:        c.opts.Durable,
		FilterSubjects: c.opts.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        c.opts.AckWait,
		MaxDeliver:     c.opts.MaxDeliver,
		MaxAckPending:  c.opts.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("failed to create or update consumer %s on stream %s: %w", c.opts.Durable, c.opts.Stream, err)
	}

	var (
		mu      sync.Mutex
		lastErr error
	)
	// Handlers keep running while the consumer drains, so they do not
	// inherit ctx's cancellation; each is bounded by AckWait instead.
	handlerCtx := logr.NewContext(context.WithoutCancel(ctx), log)
	cc, err := cons.Consume(
		func(msg jetstream.Msg) { c.handle(handlerCtx, log, msg) },
		jetstream.PullMaxMessages(pullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			log.Error(err, "Consuming failed")
			mu.Lock()
			lastErr = err
			mu.Unlock()
		}),
	)
	if err != nil {
		return fmt.Errorf("failed to consume %s on stream %s: %w", c.opts.Durable, c.opts.Stream, err)
	}

	closed := cc.Closed()
	select {
	case <-ctx.Done():
		cc.Drain()
		<-closed
		return nil
	case <-closed:
		mu.Lock()
		defer mu.Unlock()
		if lastErr == nil {
			return fmt.Errorf("bus: consumer %s on stream %s stopped unexpectedly", c.opts.Durable, c.opts.Stream)
		}
		return fmt.Errorf("consumer %s on stream %s stopped: %w", c.opts.Durable, c.opts.Stream, lastErr)
	}
}

// handle settles one message: malformed and permanently failing messages
// are terminated, transient failures are redelivered after a backoff.
func (c *Consumer) handle(ctx context.Context, log logr.Logger, msg jetstream.Msg) {
	name := c.opts.Durable
	deliveredTotal.WithLabelValues(name).Inc()
	meta, err := msg.Metadata()
	if err != nil {
		c.terminate(log, msg, ReasonMalformed, fmt.Errorf("no JetStream metadata: %w", err))
		return
	}
	if meta.NumDelivered > 1 {
		redeliveredTotal.WithLabelValues(name).Inc()
	}
	log = log.WithValues("subject", msg.Subject(), "streamSeq", meta.Sequence.Stream, "numDelivered", meta.NumDelivered)

	env, err := Decode(msg.Data())
	if err != nil {
		c.terminate(log, msg, ReasonMalformed, err)
		return
	}
	err = c.call(ctx, Delivery{
		Envelope:     env,
		Subject:      msg.Subject(),
		StreamSeq:    meta.Sequence.Stream,
		NumDelivered: meta.NumDelivered,
		msg:          msg,
	})
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			log.Error(err, "Failed to ack message")
		}
	case errors.Is(err, ErrPermanent):
		c.terminate(log, msg, ReasonPermanent, err)
	case c.opts.MaxDeliver > 0 && meta.NumDelivered >= uint64(c.opts.MaxDeliver):
		c.terminate(log, msg, ReasonExhausted, err)
	default:
		delay := c.backoff(meta.NumDelivered)
		log.V(1).Info("Handler failed, retrying later", "error", err.Error(), "delay", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Error(err, "Failed to nak message")
		}
	}
}

// call runs the handler, turning a panic into a transient error.
func (c *Consumer) call(ctx context.Context, d Delivery) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.AckWait)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bus: handler panicked: %v", r)
		}
	}()
	return c.handler(ctx, d)
}

func (c *Consumer) terminate(log logr.Logger, msg jetstream.Msg, reason string, cause error) {
	terminatedTotal.WithLabelValues(c.opts.Durable, reason).Inc()
	log.V(1).Info("Terminating message", "reason", reason, "error", cause.Error())
	text := reason + ": " + cause.Error()
	if len(text) > maxTermReason {
		text = strings.ToValidUTF8(text[:maxTermReason], "")
	}
	if err := msg.TermWithReason(text); err != nil {
		log.Error(err, "Failed to terminate message")
	}
}

// backoff is the delay before redelivering a message delivered n times.
func (c *Consumer) backoff(n uint64) time.Duration {
	i := min(max(n, 1)-1, uint64(len(c.opts.Backoff)-1))
	return c.opts.Backoff[i]
}
