package usage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tendops/tend/bus"
)

// fetchBatch is how many messages one fetch asks for.
const fetchBatch = 1024

// JetStream reads the pod metrics samples the sensor publishes from the
// TELEMETRY stream. The history it can give is as long as the stream keeps
// telemetry (bus.StreamsConfig.TelemetryMaxAge).
type JetStream struct {
	JS      jetstream.JetStream
	Cluster string
}

var _ Source = (*JetStream)(nil)

// Name is "jetstream".
func (j *JetStream) Name() string { return "jetstream" }

// History reads every pod metrics sample of namespace in the stream with an
// ordered consumer and keeps those whose sample time is in [from, to]. A
// message that does not decode is skipped: it is not a sample.
func (j *JetStream) History(ctx context.Context, namespace string, from, to time.Time) (*History, error) {
	// Every pod of the namespace: the filter of one pod with its name token
	// made a wildcard (the bus escapes a "*" given as a name).
	one := bus.StoredTelemetryFilter(j.Cluster, bus.KindPodMetrics, namespace, "x")
	filter := strings.TrimSuffix(one, ".x") + ".*"
	h := NewHistory()
	stream, err := j.JS.Stream(ctx, bus.StreamTelemetry)
	if err != nil {
		return nil, fmt.Errorf("failed to read the usage of %s: %w", namespace, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("failed to read the usage of %s: %w", namespace, err)
	}
	if len(info.State.Subjects) == 0 {
		return h, nil
	}
	cons, err := j.JS.OrderedConsumer(ctx, bus.StreamTelemetry, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the usage of %s: %w", namespace, err)
	}
	// The messages stored now; later ones are not waited for.
	left := uint64(0)
	for _, n := range info.State.Subjects {
		left += n
	}
	for {
		batch, err := cons.Fetch(int(min(left, fetchBatch)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("failed to read the usage of %s: %w", namespace, err)
		}
		n, pending := 0, uint64(0)
		for msg := range batch.Messages() {
			n++
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
			env, err := bus.Decode(msg.Data())
			if err != nil || env.Usage == nil || env.Object.Kind != bus.KindPodMetrics {
				continue
			}
			t := env.Usage.Timestamp
			if t.Before(from) || t.After(to) {
				continue
			}
			for _, c := range env.Usage.Containers {
				h.Add(env.Object.Name, c.Name, Sample{Time: t, CPUMillicores: c.CPUMillicores, MemoryBytes: c.MemoryBytes})
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("failed to read the usage of %s: %w", namespace, err)
		}
		left -= min(left, uint64(n))
		if n == 0 || pending == 0 || left == 0 {
			return h, nil
		}
	}
}
