package bus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamTelemetry = "TELEMETRY"
	StreamProposals = "PROPOSALS"
	StreamAudit     = "AUDIT"
	// StreamDeadLetter keeps the messages consumers gave up on.
	StreamDeadLetter = "DEADLETTER"
)

// Stream defaults.
const (
	DefaultTelemetryMaxAge   = 24 * time.Hour
	DefaultTelemetryMaxBytes = 1 << 30
	DefaultDuplicateWindow   = 2 * time.Minute
	ProposalsMaxAge          = 7 * 24 * time.Hour
	DeadLetterMaxAge         = 7 * 24 * time.Hour
	// DefaultTelemetryPartitions is the number of partitions telemetry is
	// stored in; a partitioned consumer has one durable consumer per partition.
	DefaultTelemetryPartitions = 16
	// maxTelemetryPartitions bounds the partitions, and so the durable
	// consumers a partitioned consumer creates.
	maxTelemetryPartitions = 1024
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
	// TelemetryPartitions is the number of partitions of the TELEMETRY
	// stream. Default DefaultTelemetryPartitions. Partitioned consumers must
	// use the same number.
	TelemetryPartitions int
}

func (c StreamsConfig) withDefaults() (StreamsConfig, error) {
	if c.TelemetryMaxAge < 0 || c.TelemetryMaxBytes < 0 || c.Replicas < 0 || c.DuplicateWindow < 0 || c.TelemetryPartitions < 0 {
		return c, errors.New("bus: stream limits must not be negative")
	}
	if c.TelemetryPartitions > maxTelemetryPartitions {
		return c, fmt.Errorf("bus: at most %d telemetry partitions", maxTelemetryPartitions)
	}
	if c.TelemetryPartitions == 0 {
		c.TelemetryPartitions = DefaultTelemetryPartitions
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

// telemetryTransform puts an object's partition into every telemetry
// subject the TELEMETRY stream stores, after the cluster:
// tend.telemetry.<cluster>.<partition>.<kind>.<namespace>.<name>. The
// partition is the server's deterministic partition function, a hash of
// the cluster, kind, namespace and name tokens modulo n. Putting it before
// the object keeps a partition's filter a prefix, which the server matches
// cheaply.
func telemetryTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      telemetryRoot + ".*.*.*.*",
		Destination: fmt.Sprintf("%s.{{wildcard(1)}}.{{partition(%d,1,2,3,4)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}", telemetryRoot, n),
	}
}

// partitionsPattern reads the partition count back from a stream's transform.
var partitionsPattern = regexp.MustCompile(`\{\{partition\((\d+),`)

// telemetryPartitions returns the number of partitions of the TELEMETRY
// stream, 0 if it is not partitioned.
func telemetryPartitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		return 0, fmt.Errorf("failed to look up stream %s: %w", StreamTelemetry, err)
	}
	tr := s.CachedInfo().Config.SubjectTransform
	if tr == nil {
		return 0, nil
	}
	m := partitionsPattern.FindStringSubmatch(tr.Destination)
	if m == nil {
		return 0, nil
	}
	return strconv.Atoi(m[1])
}

// EnsureStreams creates the TELEMETRY, PROPOSALS, AUDIT, FINDINGS,
// DEADLETTER and TRANSCRIPTS streams, or updates them to cfg, and the
// runtime shim's stores (EnsureShimStores). It is idempotent.
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
		MaxMsgSize:  MaxMessageSize + maxHeaderBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		// Partitions give every object one partition, so that a partitioned
		// consumer hands all of an object's messages to one agent.
		SubjectTransform: telemetryTransform(cfg.TelemetryPartitions),
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
	}, {
		// Diagnoses of faults no runbook could fix, for a human.
		Name:        StreamFindings,
		Description: "tend agents' findings",
		Subjects:    []string{findingsRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      FindingsMaxAge,
		MaxBytes:    cfg.TelemetryMaxBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, {
		// Messages consumers gave up on, with the reason, for an operator to
		// inspect or replay.
		Name:        StreamDeadLetter,
		Description: "tend messages consumers terminated",
		Subjects:    []string{deadRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      DeadLetterMaxAge,
		MaxBytes:    cfg.TelemetryMaxBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, {
		// What agents' LLM planner runs saw and did, for reviewers.
		Name:        StreamTranscripts,
		Description: "tend agents' planner transcripts",
		Subjects:    []string{transcriptsRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      TranscriptsMaxAge,
		MaxBytes:    cfg.TelemetryMaxBytes,
		MaxMsgSize:  MaxTranscriptSize + maxHeaderBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}}
	for _, sc := range streams {
		if sc.Name == StreamAudit {
			if err := ensureAudit(ctx, js, sc); err != nil {
				return err
			}
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("failed to create or update stream %s: %w", sc.Name, err)
		}
	}
	return EnsureShimStores(ctx, js, cfg.Replicas)
}

// ensureAudit creates the AUDIT stream, or checks the one there: it is
// never updated (no component may change its limits, which could discard
// records), and one that allows deleting or purging records, or discards
// them by age, count or size, is an error.
func ensureAudit(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return fmt.Errorf("failed to create stream %s: %w", sc.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to look up stream %s: %w", sc.Name, err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.DenyDelete || !cfg.DenyPurge || cfg.MaxAge != 0 || cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0 {
		return fmt.Errorf("bus: stream %s does not keep the audit chain whole (deny delete %v, deny purge %v, max age %s, max msgs %d, max bytes %d, max per subject %d); recreate it with tend's settings",
			sc.Name, cfg.DenyDelete, cfg.DenyPurge, cfg.MaxAge, cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject)
	}
	return nil
}
