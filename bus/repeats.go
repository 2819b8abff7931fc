package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/validation"
)

// RepeatEvent is the event name of a repeated proposal on the PROPOSALS
// stream: tend.proposals.<cluster>.repeat.
const RepeatEvent = "repeat"

// ErrMalformedRepeat means a repeat message cannot be decoded or is invalid.
var ErrMalformedRepeat = errors.New("bus: malformed repeat")

// maxRepeatBytes bounds an encoded Repeat.
const maxRepeatBytes = 4096

// Repeat says that a caller proposed again what an open proposal already
// proposes (the same fingerprint). The MCP server publishes it instead of
// creating a second proposal; the proposal controller counts it on the open
// one. It carries no free text.
type Repeat struct {
	// ID is unique per repeated call and is the Nats-Msg-Id.
	ID string `json:"id"`
	// Namespace and Name of the open proposal.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Proposer is the authenticated caller who repeated it.
	Proposer string    `json:"proposer"`
	Time     time.Time `json:"time"`
}

// Validate checks a Repeat by the rules DecodeRepeat applies.
func (r *Repeat) Validate() error {
	var errs []error
	if r.ID == "" || len(r.ID) > 128 {
		errs = append(errs, errors.New("id: required, at most 128 bytes"))
	}
	if msgs := validation.IsDNS1123Label(r.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace: %v", msgs))
	}
	if msgs := validation.IsDNS1123Subdomain(r.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("name: %v", msgs))
	}
	if len(r.Proposer) > 512 {
		errs = append(errs, errors.New("proposer: at most 512 bytes"))
	}
	if r.Time.IsZero() {
		errs = append(errs, errors.New("time: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: repeat: %w", ErrMalformedRepeat, err)
	}
	return nil
}

// DecodeRepeat parses and validates one repeat message. Unknown fields,
// trailing data and oversized messages are errors wrapping ErrMalformedRepeat.
func DecodeRepeat(data []byte) (*Repeat, error) {
	if len(data) > maxRepeatBytes {
		return nil, fmt.Errorf("%w: repeat is %d bytes; at most %d", ErrMalformedRepeat, len(data), maxRepeatBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	r := &Repeat{}
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("%w: repeat: %w", ErrMalformedRepeat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: repeat: trailing data", ErrMalformedRepeat)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// RepeatPublisher publishes Repeats of one cluster to the PROPOSALS stream.
type RepeatPublisher struct {
	js      jetstream.JetStream
	cluster string
}

// NewRepeatPublisher returns a RepeatPublisher for cluster.
func NewRepeatPublisher(js jetstream.JetStream, cluster string) *RepeatPublisher {
	return &RepeatPublisher{js: js, cluster: cluster}
}

// PublishRepeat validates r and publishes it with r.ID as Nats-Msg-Id.
func (p *RepeatPublisher) PublishRepeat(ctx context.Context, r Repeat) error {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	if err := r.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failed to encode repeat: %w", err)
	}
	subject := ProposalsSubject(p.cluster, RepeatEvent)
	if _, err := p.js.Publish(ctx, subject, data, jetstream.WithMsgID(r.ID), jetstream.WithExpectStream(StreamProposals)); err != nil {
		return fmt.Errorf("failed to publish to %s: %w", subject, err)
	}
	return nil
}
