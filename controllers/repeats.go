package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
)

// RepeatCounter counts repeated proposals on the open proposal they repeat.
// The MCP server publishes a bus.Repeat instead of creating a duplicate
// (it may create Proposals, never update them); this runnable, with the
// controller's identity, folds each into status.repeats. Delivery is
// at-least-once: a repeat is counted only if its stream sequence is past the
// proposal's status.repeatSequence, and the consumer hands out one message
// at a time so sequences arrive in order.
type RepeatCounter struct {
	Client  client.Client
	JS      jetstream.JetStream
	Cluster string
	// Durable names the consumer; "tend-proposal-repeats" when empty.
	Durable string
}

var (
	_ manager.Runnable               = (*RepeatCounter)(nil)
	_ manager.LeaderElectionRunnable = (*RepeatCounter)(nil)
)

// NeedLeaderElection is false: replicas share the durable consumer.
func (c *RepeatCounter) NeedLeaderElection() bool { return false }

// Start consumes repeats until ctx is done.
func (c *RepeatCounter) Start(ctx context.Context) error {
	durable := c.Durable
	if durable == "" {
		durable = "tend-proposal-repeats"
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("consumer", durable)
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, bus.StreamProposals, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: bus.ProposalsSubject(c.Cluster, bus.RepeatEvent),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    20,
		MaxAckPending: 1,
	})
	if err != nil {
		return fmt.Errorf("failed to create or update consumer %s: %w", durable, err)
	}
	return consumeUntilDone(ctx, log, cons, durable, c.handle, jetstream.PullMaxMessages(1))
}

func (c *RepeatCounter) handle(ctx context.Context, msg jetstream.Msg) {
	log := logr.FromContextOrDiscard(ctx)
	settle := func(err error) {
		if err != nil {
			log.Error(err, "Failed to settle repeat message")
		}
	}
	meta, err := msg.Metadata()
	if err != nil {
		settle(msg.TermWithReason("no JetStream metadata"))
		return
	}
	r, err := bus.DecodeRepeat(msg.Data())
	if err != nil {
		log.V(1).Info("Terminating malformed repeat", "error", err.Error())
		settle(msg.TermWithReason(truncate(err.Error(), 256)))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := c.count(ctx, r, meta.Sequence.Stream); {
	case err == nil:
		settle(msg.Ack())
	case errors.Is(err, errNothingToCount):
		settle(msg.Ack())
	default:
		log.V(1).Info("Counting a repeat failed, retrying", "error", err.Error())
		settle(msg.NakWithDelay(time.Duration(min(meta.NumDelivered, 10)) * 200 * time.Millisecond))
	}
}

var errNothingToCount = errors.New("nothing to count")

// count adds one repeat to the proposal, unless the message was counted
// already or the proposal is gone or closed.
func (c *RepeatCounter) count(ctx context.Context, r *bus.Repeat, seq uint64) error {
	p := &tendv1.Proposal{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return errNothingToCount
		}
		return fmt.Errorf("failed to get proposal: %w", err)
	}
	if p.Status.Phase.Terminal() || seq <= p.Status.RepeatSequence {
		return errNothingToCount
	}
	p.Status.Repeats++
	p.Status.RepeatSequence = seq
	at := metav1.NewTime(r.Time)
	p.Status.LastRepeat = &at
	if err := c.Client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("failed to count a repeat on %s: %w", klog.KObj(p), err)
	}
	return nil
}

// consumeUntilDone hands each message of cons to handle, with log in its
// context, until ctx ends (then it drains) or the consumer stops on its own
// (an error). Handlers see a context that outlives ctx, so a message in
// hand is settled during the drain.
func consumeUntilDone(ctx context.Context, log logr.Logger, cons jetstream.Consumer, durable string, handle func(context.Context, jetstream.Msg), opts ...jetstream.PullConsumeOpt) error {
	hctx := logr.NewContext(context.WithoutCancel(ctx), log)
	cc, err := cons.Consume(func(msg jetstream.Msg) { handle(hctx, msg) }, opts...)
	if err != nil {
		return fmt.Errorf("failed to consume %s: %w", durable, err)
	}
	select {
	case <-ctx.Done():
		cc.Drain()
		<-cc.Closed()
		return nil
	case <-cc.Closed():
		return fmt.Errorf("consumer %s stopped unexpectedly", durable)
	}
}
