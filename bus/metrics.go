package bus

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a consumer terminates a message, the values of the reason label of
// tend_bus_terminated_total.
const (
	ReasonMalformed = "malformed" // the message did not decode
	ReasonPermanent = "permanent" // the handler returned an error wrapping ErrPermanent
	ReasonExhausted = "exhausted" // the last allowed delivery failed
)

var (
	publishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_published_total",
		Help: "Messages stored by JetStream, per stream; duplicates are not counted.",
	}, []string{"stream"})
	deliveredTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_delivered_total",
		Help: "Messages delivered to a consumer, redeliveries included.",
	}, []string{"consumer"})
	redeliveredTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_redelivered_total",
		Help: "Deliveries of a message that had been delivered before.",
	}, []string{"consumer"})
	terminatedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_terminated_total",
		Help: "Messages a consumer terminated instead of retrying, by reason.",
	}, []string{"consumer", "reason"})
	deadLetteredTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_deadlettered_total",
		Help: "Terminated messages copied to the consumer's dead-letter subject, by reason.",
	}, []string{"consumer", "reason"})
	deadLetterFailedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_deadletter_failed_total",
		Help: "Failed attempts to copy a message to the dead-letter subject.",
	}, []string{"consumer"})
	consumerLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tend_bus_consumer_lag",
		Help: "Messages in the stream that the durable consumer has not delivered yet (num_pending).",
	}, []string{"consumer"})
	consumerRecreatedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_consumer_recreated_total",
		Help: "Durable consumers that stopped on their own (deleted, say) and were created again.",
	}, []string{"consumer"})
	consumerAckPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tend_bus_consumer_ack_pending",
		Help: "Messages delivered to the durable consumer and not yet acknowledged.",
	}, []string{"consumer"})
	alertsReceivedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_bus_alerts_received_total",
		Help: "Alertmanager webhook requests, by result (published, rejected, failed).",
	}, []string{"result"})
)

// Register adds the bus metrics to r. Registering them again is not an error.
func Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		publishedTotal, deliveredTotal, redeliveredTotal, terminatedTotal,
		deadLetteredTotal, deadLetterFailedTotal, consumerLag, consumerAckPending, consumerRecreatedTotal, alertsReceivedTotal,
	} {
		if err := r.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("failed to register bus metrics: %w", err)
		}
	}
	return nil
}
