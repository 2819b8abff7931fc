package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamTelemetry = "TELEMETRY"
	StreamProposals = "PROPOSALS"
	StreamAudit     = "AUDIT"
)

// Stream defaults.
const (
	DefaultTelemetryMaxAge   = 24 * time.Hour
	DefaultTelemetryMaxBytes = 1 << 30
	DefaultDuplicateWindow   = 2 * time.Minute
	ProposalsMaxAge          = 7 * 24 * time.Hour
)

// maxHeaderBytes is the room a telemetry message has for headers on top of
// MaxMessageSize; JetStream counts headers against the stream's MaxMsgSize.
const maxHeaderBytes = 4 << 10

// StreamsConfig sizes the streams EnsureStreams manages. Zero values take the defaults.
type StreamsConfig struct {
	// TelemetryMaxAge bounds how long telemetry is kept. Default 24h.
	TelemetryMaxAge time.Duration
	// TelemetryMaxBytes bounds the telemetry stream; the oldest messages go first. Default 1 GiB.
	TelemetryMaxBytes int64
	// Replicas is the replication factor of every stream. Default 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values. Default 2m.
	DuplicateWindow time.Duration
}

func (c StreamsConfig) withDefaults() (StreamsConfig, error) {
	if c.TelemetryMaxAge < 0 || c.TelemetryMaxBytes < 0 || c.Replicas < 0 || c.DuplicateWindow < 0 {
		return c, errors.New("bus: stream limits must not be negative")
	}
	if c.TelemetryMaxAge == 0 {
		c.TelemetryMaxAge = DefaultTelemetryMaxAge
	}
	if c.TelemetryMaxBytes == 0 {
		c.TelemetryMaxBytes = DefaultTelemetryMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	return c, nil
}

// EnsureStreams creates the TELEMETRY, PROPOSALS and AUDIT streams, or updates
// them to cfg. It is idempotent.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	streams := []jetstream.StreamConfig{{
		Name:        StreamTelemetry,
		Description: "tend cluster telemetry",
		Subjects:    []string{telemetryRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.TelemetryMaxAge,
		MaxBytes:    cfg.TelemetryMaxBytes,
		MaxMsgSize:  MaxMessageSize,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, {
		Name:        StreamProposals,
		Description: "tend proposal lifecycle events",
		Subjects:    []string{proposalsRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      ProposalsMaxAge,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, {
		// The audit chain is kept forever and cannot be edited through the API.
		Name:        StreamAudit,
		Description: "tend hash-chained audit log",
		Subjects:    []string{auditRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
	}}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("failed to create or update stream %s: %w", sc.Name, err)
		}
	}
	return nil
}
