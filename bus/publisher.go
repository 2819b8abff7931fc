package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxPendingPublishes bounds the asynchronous publishes of one Publisher
// that JetStream has not acknowledged yet; PublishAsync blocks beyond it.
const MaxPendingPublishes = 4096

// ErrPublisherClosed is returned by PublishAsync after Close.
var ErrPublisherClosed = errors.New("bus: publisher closed")

// Publisher publishes telemetry envelopes of one cluster to the TELEMETRY stream.
type Publisher struct {
	js      jetstream.JetStream
	cluster string
	source  string

	// Asynchronous publishes: a slot is taken before sending and given back
	// once the acknowledgement is settled by the one settleAcks goroutine.
	slots     chan struct{}
	pending   chan pendingAck
	startOnce sync.Once
	mu        sync.RWMutex // held for reading while sending to pending
	closed    bool
	settled   chan struct{}
}

// pendingAck is an asynchronous publish waiting for its acknowledgement.
type pendingAck struct {
	future jetstream.PubAckFuture
	done   func(seq uint64, err error)
	buf    *bytes.Buffer // the encoded message, recycled once settled
}

// encodeBuffers recycles the buffers envelopes are encoded into. A buffer
// goes back once its publish is settled: JetStream keeps the message until
// then, to send it again, and the connection copies it when it is sent.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxRecycledBuffer bounds the buffers kept for reuse: a rare large
// envelope's buffer is left to the collector.
const maxRecycledBuffer = 64 << 10

func recycleBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxRecycledBuffer {
		encodeBuffers.Put(buf)
	}
}

// NewPublisher returns a Publisher that stamps envelopes with cluster and source.
func NewPublisher(js jetstream.JetStream, cluster, source string) *Publisher {
	return &Publisher{
		js: js, cluster: cluster, source: source,
		slots:   make(chan struct{}, MaxPendingPublishes),
		pending: make(chan pendingAck, MaxPendingPublishes),
		settled: make(chan struct{}),
	}
}

// Publish fills in e's schema version, cluster, source and time where they are
// empty, validates it by the rules Decode applies, and publishes it on the
// object's telemetry subject with e.ID as Nats-Msg-Id. It returns the stream
// sequence of the stored message; for a duplicate within the stream's
// duplicate window that is the sequence of the message stored first.
func (p *Publisher) Publish(ctx context.Context, e *Envelope) (uint64, error) {
	subject, buf, err := p.prepare(e)
	if err != nil {
		return 0, err
	}
	ack, err := p.js.Publish(ctx, subject, buf.Bytes(), jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(StreamTelemetry))
	recycleBuffer(buf)
	if err != nil {
		return 0, fmt.Errorf("failed to publish to %s: %w", subject, err)
	}
	if !ack.Duplicate {
		publishedTotal.WithLabelValues(ack.Stream).Inc()
	}
	return ack.Sequence, nil
}

// PublishAsync prepares and checks e as Publish does, and sends it without
// waiting for JetStream's acknowledgement. done, if not nil, is called with
// the stream sequence or the error once that is known, from the Publisher's
// own goroutine, in publish order; it must not block. PublishAsync blocks
// while MaxPendingPublishes are unacknowledged, so a slow or unreachable
// server holds the caller back instead of growing memory; it fails at once
// when e is invalid, ctx is done or the Publisher is closed.
func (p *Publisher) PublishAsync(ctx context.Context, e *Envelope, done func(seq uint64, err error)) error {
	subject, buf, err := p.prepare(e)
	if err != nil {
		return err
	}
	p.startOnce.Do(func() { go p.settleAcks() })
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		recycleBuffer(buf)
		return fmt.Errorf("failed to publish to %s: %w", subject, ctx.Err())
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		<-p.slots
		recycleBuffer(buf)
		return ErrPublisherClosed
	}
	f, err := p.js.PublishAsync(subject, buf.Bytes(), jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(StreamTelemetry))
	if err != nil {
		// Not recycled: whether JetStream still holds it is not known.
		<-p.slots
		return fmt.Errorf("failed to publish to %s: %w", subject, err)
	}
	// Never blocks: there are as many places as slots.
	p.pending <- pendingAck{future: f, done: done, buf: buf}
	return nil
}

// settleAcks waits for the acknowledgements of asynchronous publishes in
// the order they were sent.
func (p *Publisher) settleAcks() {
	defer close(p.settled)
	for pa := range p.pending {
		var (
			seq uint64
			err error
		)
		select {
		case ack := <-pa.future.Ok():
			seq = ack.Sequence
			if !ack.Duplicate {
				publishedTotal.WithLabelValues(ack.Stream).Inc()
			}
		case err = <-pa.future.Err():
			err = fmt.Errorf("failed to publish to %s: %w", pa.future.Msg().Subject, err)
		}
		recycleBuffer(pa.buf)
		<-p.slots
		if pa.done != nil {
			pa.done(seq, err)
		}
	}
}

// Close stops asynchronous publishing and waits until every publish already
// sent has been acknowledged or has failed, or ctx is done.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.pending)
	}
	p.mu.Unlock()
	p.startOnce.Do(func() { close(p.settled) })
	select {
	case <-p.settled:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to settle pending publishes: %w", ctx.Err())
	}
}

// prepare fills in and encodes e into a buffer of encodeBuffers, and
// returns its subject.
func (p *Publisher) prepare(e *Envelope) (string, *bytes.Buffer, error) {
	if e == nil {
		return "", nil, errors.New("bus: nil envelope")
	}
	if e.SchemaVersion == 0 {
		e.SchemaVersion = SchemaVersion
	}
	if e.Cluster == "" {
		e.Cluster = p.cluster
	}
	if e.Cluster != p.cluster {
		return "", nil, fmt.Errorf("bus: envelope is for cluster %q, publisher for %q", e.Cluster, p.cluster)
	}
	if e.Source == "" {
		e.Source = p.source
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	buf := encodeBuffers.Get().(*bytes.Buffer)
	if err := encodeTo(buf, e); err != nil {
		recycleBuffer(buf)
		return "", nil, err
	}
	return TelemetrySubject(e.Cluster, e.Object.Kind, e.Object.Namespace, e.Object.Name), buf, nil
}
