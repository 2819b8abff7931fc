package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamFindings keeps the agents' findings: diagnoses of faults no
// runbook had a safe fix for, for a human.
const StreamFindings = "FINDINGS"

// FindingsMaxAge is how long findings are kept.
const FindingsMaxAge = 7 * 24 * time.Hour

// Bounds of a finding's text.
const (
	maxFindingText     = 4 << 10
	maxFindingEvidence = 32
)

// FindingsSubject is the subject an agent publishes its findings of one
// cluster on: tend.findings.<cluster>.
func FindingsSubject(cluster string) string { return join(findingsRoot, cluster) }

// Finding is an agent's diagnosis of a fault it has no safe fix for: what is
// wrong with which object, the telemetry that shows it, and what a human
// could do. Agents build Fault and Advice from typed facts and validated
// names only; readers still treat them as text from an agent.
type Finding struct {
	SchemaVersion int `json:"schemaVersion"`
	// ID identifies the finding (the same fault of the same object is the
	// same ID) and is sent as Nats-Msg-Id.
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Agent   string    `json:"agent,omitempty"`
	Runbook string    `json:"runbook,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Object is the object at fault; its Kind is the Kubernetes kind
	// (Deployment, Node, ...).
	Object   ObjectRef     `json:"object"`
	Fault    string        `json:"fault"`
	Advice   string        `json:"advice,omitempty"`
	Evidence []EvidenceRef `json:"evidence,omitempty"`
}

// EvidenceRef cites one telemetry message.
type EvidenceRef struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"sequence,omitempty"`
}

// Validate checks f by the rules DecodeFinding applies.
func (f *Finding) Validate() error {
	if f.SchemaVersion != SchemaVersion {
		return unsupportedVersion(f.SchemaVersion)
	}
	var c checker
	c.id("id", f.ID)
	c.name("cluster", f.Cluster, true)
	c.name("agent", f.Agent, false)
	c.name("runbook", f.Runbook, false)
	c.ref("object", f.Object)
	if f.Fault == "" {
		c.failf("fault", "required")
	}
	if len(f.Fault) > maxFindingText || len(f.Advice) > maxFindingText {
		c.failf("fault", "fault and advice must have at most %d bytes", maxFindingText)
	}
	c.list("evidence", len(f.Evidence), maxFindingEvidence)
	for i, e := range f.Evidence {
		c.name(fmt.Sprintf("evidence[%d].subject", i), e.Subject, true)
	}
	return c.err
}

// DecodeFinding parses and validates a finding read from the bus.
func DecodeFinding(data []byte) (*Finding, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: size %d exceeds %d bytes", ErrMalformed, len(data), MaxMessageSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Finding
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the finding", ErrMalformed)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// FindingPublisher publishes findings of one cluster.
type FindingPublisher struct {
	js      jetstream.JetStream
	cluster string
}

// NewFindingPublisher returns a publisher of cluster's findings.
func NewFindingPublisher(js jetstream.JetStream, cluster string) *FindingPublisher {
	return &FindingPublisher{js: js, cluster: cluster}
}

// Publish stamps f with the schema version, the cluster and the time where
// they are empty, validates it and publishes it with f.ID as Nats-Msg-Id.
func (p *FindingPublisher) Publish(ctx context.Context, f *Finding) (uint64, error) {
	if f.SchemaVersion == 0 {
		f.SchemaVersion = SchemaVersion
	}
	if f.Cluster == "" {
		f.Cluster = p.cluster
	}
	if f.Time.IsZero() {
		f.Time = time.Now().UTC()
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	data, err := marshal(f)
	if err != nil {
		return 0, fmt.Errorf("failed to encode finding: %w", err)
	}
	ack, err := p.js.Publish(ctx, FindingsSubject(p.cluster), data, jetstream.WithMsgID(f.ID))
	if err != nil {
		return 0, fmt.Errorf("failed to publish finding: %w", err)
	}
	return ack.Sequence, nil
}

// ReadFindings returns the findings of cluster kept on the stream, oldest
// first, at most limit of the most recent (all when limit is 0). Messages
// that do not decode are skipped and counted.
func ReadFindings(ctx context.Context, js jetstream.JetStream, cluster string, limit int) ([]Finding, int, error) {
	s, err := js.Stream(ctx, StreamFindings)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to look up stream %s: %w", StreamFindings, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(FindingsSubject(cluster)))
	if err != nil {
		return nil, 0, fmt.Errorf("failed to read stream %s: %w", StreamFindings, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, 0, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{FindingsSubject(cluster)}}
	if limit > 0 && total > uint64(limit) {
		// Start at the limit-th most recent: the stream holds only findings,
		// so the sequence is close enough and the extra are dropped below.
		start := info.State.LastSeq - uint64(limit) + 1
		if start < info.State.FirstSeq {
			start = info.State.FirstSeq
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to read stream %s: %w", StreamFindings, err)
	}
	var out []Finding
	bad := 0
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				break
			}
			return out, bad, fmt.Errorf("failed to read stream %s: %w", StreamFindings, err)
		}
		f, err := DecodeFinding(msg.Data())
		if err != nil {
			bad++
		} else {
			out = append(out, *f)
		}
		meta, err := msg.Metadata()
		if err != nil || meta.NumPending == 0 {
			break
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, bad, nil
}
