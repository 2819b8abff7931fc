package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Publisher publishes telemetry envelopes of one cluster to the TELEMETRY stream.
type Publisher struct {
	js      jetstream.JetStream
	cluster string
	source  string
}

// NewPublisher returns a Publisher that stamps envelopes with cluster and source.
func NewPublisher(js jetstream.JetStream, cluster, source string) *Publisher {
	return &Publisher{js: js, cluster: cluster, source: source}
}

// Publish fills in e's schema version, cluster, source and time where they are
// empty, validates it by the rules Decode applies, and publishes it on the
// object's telemetry subject with e.ID as Nats-Msg-Id. It returns the stream
// sequence of the stored message; for a duplicate within the stream's
// duplicate window that is the sequence of the message stored first.
func (p *Publisher) Publish(ctx context.Context, e *Envelope) (uint64, error) {
	if e == nil {
		return 0, errors.New("bus: nil envelope")
	}
	if e.SchemaVersion == 0 {
		e.SchemaVersion = SchemaVersion
	}
	if e.Cluster == "" {
		e.Cluster = p.cluster
	}
	if e.Cluster != p.cluster {
		return 0, fmt.Errorf("bus: envelope is for cluster %q, publisher for %q", e.Cluster, p.cluster)
	}
	if e.Source == "" {
		e.Source = p.source
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	data, err := Encode(e)
	if err != nil {
		return 0, err
	}
	subject := TelemetrySubject(e.Cluster, e.Object.Kind, e.Object.Namespace, e.Object.Name)
	ack, err := p.js.Publish(ctx, subject, data, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(StreamTelemetry))
	if err != nil {
		return 0, fmt.Errorf("failed to publish to %s: %w", subject, err)
	}
	if !ack.Duplicate {
		publishedTotal.WithLabelValues(ack.Stream).Inc()
	}
	return ack.Sequence, nil
}
