package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamTranscripts keeps the transcripts of agents' LLM planner runs: what
// the model was shown, what it answered, which tools it called and why the
// run stopped, so that a reviewer of a proposal sees why it was made.
const StreamTranscripts = "TRANSCRIPTS"

// Transcript limits.
const (
	TranscriptsMaxAge = 30 * 24 * time.Hour
	// MaxTranscriptSize bounds one transcript.
	MaxTranscriptSize = 4 << 20
)

// TranscriptSubject is where the transcript of an agent's run on one
// incident is published: tend.transcripts.<cluster>.<agent>.<incident>.
func TranscriptSubject(cluster, agent, incident string) string {
	return join(transcriptsRoot, cluster, agent, incident)
}

// TranscriptRef locates a stored transcript.
type TranscriptRef struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"sequence"`
}

// TranscriptPublisher stores transcripts on the TRANSCRIPTS stream.
type TranscriptPublisher struct {
	js      jetstream.JetStream
	cluster string
}

// NewTranscriptPublisher publishes the transcripts of cluster's agents.
func NewTranscriptPublisher(js jetstream.JetStream, cluster string) *TranscriptPublisher {
	return &TranscriptPublisher{js: js, cluster: cluster}
}

// PublishTranscript stores one run's transcript (JSON) and returns where.
// Publishing the same transcript again stores it once.
func (p *TranscriptPublisher) PublishTranscript(ctx context.Context, agent, incident string, transcript []byte) (TranscriptRef, error) {
	if len(transcript) > MaxTranscriptSize {
		return TranscriptRef{}, fmt.Errorf("bus: a transcript of %d bytes; at most %d", len(transcript), MaxTranscriptSize)
	}
	sum := sha256.Sum256(transcript)
	msg := &nats.Msg{Subject: TranscriptSubject(p.cluster, agent, incident), Data: transcript, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "transcript-"+hex.EncodeToString(sum[:16]))
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return TranscriptRef{}, fmt.Errorf("failed to publish transcript: %w", err)
	}
	return TranscriptRef{Subject: msg.Subject, Sequence: ack.Sequence}, nil
}

// ErrNoTranscript means no transcript is kept for an incident.
var ErrNoTranscript = errors.New("bus: no transcript")

// ReadTranscript returns the last transcript kept for agent's run on
// incident, and where it is.
func ReadTranscript(ctx context.Context, js jetstream.JetStream, cluster, agent, incident string) ([]byte, TranscriptRef, error) {
	s, err := js.Stream(ctx, StreamTranscripts)
	if err != nil {
		return nil, TranscriptRef{}, fmt.Errorf("failed to open the %s stream: %w", StreamTranscripts, err)
	}
	subject := TranscriptSubject(cluster, agent, incident)
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, TranscriptRef{}, fmt.Errorf("%w of agent %s for incident %s in cluster %s", ErrNoTranscript, agent, incident, cluster)
	}
	if err != nil {
		return nil, TranscriptRef{}, fmt.Errorf("failed to read transcript %s: %w", subject, err)
	}
	return msg.Data, TranscriptRef{Subject: msg.Subject, Sequence: msg.Sequence}, nil
}
