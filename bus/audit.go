package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxAppendAttempts bounds how often Append retries after another appender
// extended the chain first. Every lost attempt means another append succeeded.
const maxAppendAttempts = 16

// ErrAppendConflict is returned when Append kept losing the race to extend the chain.
var ErrAppendConflict = errors.New("bus: audit chain kept changing")

// AuditRecord is one entry of a cluster's audit chain: a proposal moving
// from one phase to another.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Object is the proposal the record is about, of kind KindProposal.
	Object   ObjectRef `json:"object"`
	From     string    `json:"from,omitempty"`
	To       string    `json:"to"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	PrevHash string    `json:"prevHash"`
	Hash     string    `json:"hash"`
}

// hash is the hex SHA-256 of PrevHash followed by the canonical JSON of r with Hash empty.
func (r AuditRecord) hash() (string, error) {
	r.Hash = ""
	canonical, err := marshal(r)
	if err != nil {
		return "", fmt.Errorf("failed to encode audit record: %w", err)
	}
	sum := sha256.Sum256(append([]byte(r.PrevHash), canonical...))
	return hex.EncodeToString(sum[:]), nil
}

// ChainError names the first record at which an audit chain is broken.
type ChainError struct {
	Index  int
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("bus: audit chain broken at record %d: %s", e.Index, e.Reason)
}

// VerifyChain checks that recs is an unbroken chain from its first record:
// each record's hash matches its content and each links to the one before.
// It returns a *ChainError naming the first break. A chain cut short at its
// end is still a valid chain; compare its length with the stream to see that.
func VerifyChain(recs []AuditRecord) error {
	prev := ""
	for i, r := range recs {
		if r.PrevHash != prev {
			if i == 0 {
				return &ChainError{Index: i, Reason: "the first record links to an earlier one"}
			}
			return &ChainError{Index: i, Reason: "prevHash does not match the hash of the record before"}
		}
		want, err := r.hash()
		if err != nil {
			return &ChainError{Index: i, Reason: err.Error()}
		}
		if r.Hash != want {
			return &ChainError{Index: i, Reason: "hash does not match the record's content"}
		}
		prev = r.Hash
	}
	return nil
}

// AuditLog appends to and reads one cluster's audit chain on the AUDIT
// stream. Several AuditLogs, in any number of processes, may append to the
// same chain.
type AuditLog struct {
	js      jetstream.JetStream
	cluster string
	subject string

	mu     sync.Mutex
	stream jetstream.Stream
}

// NewAuditLog returns the audit log of cluster.
func NewAuditLog(js jetstream.JetStream, cluster string) *AuditLog {
	return &AuditLog{js: js, cluster: cluster, subject: AuditSubject(cluster)}
}

// Append links rec to the end of the chain and publishes it. It fills in the
// cluster and, if zero, the time, and sets PrevHash and Hash. It returns the
// record as stored.
func (a *AuditLog) Append(ctx context.Context, rec AuditRecord) (AuditRecord, error) {
	if rec.Cluster == "" {
		rec.Cluster = a.cluster
	}
	switch {
	case rec.Cluster != a.cluster:
		return AuditRecord{}, fmt.Errorf("bus: audit record is for cluster %q, log for %q", rec.Cluster, a.cluster)
	case rec.Object.Kind == "" || rec.Object.Name == "":
		return AuditRecord{}, errors.New("bus: audit record needs an object kind and name")
	case rec.To == "":
		return AuditRecord{}, errors.New("bus: audit record needs the phase it moves to")
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()

	stream, err := a.auditStream(ctx)
	if err != nil {
		return AuditRecord{}, err
	}
	for range maxAppendAttempts {
		prev, lastSeq, err := a.last(ctx, stream)
		if err != nil {
			return AuditRecord{}, err
		}
		rec.PrevHash = prev
		if rec.Hash, err = rec.hash(); err != nil {
			return AuditRecord{}, err
		}
		data, err := marshal(rec)
		if err != nil {
			return AuditRecord{}, fmt.Errorf("failed to encode audit record: %w", err)
		}
		// Expecting the last sequence we read makes the append a
		// compare-and-swap: a concurrent append makes it fail, and we relink.
		ack, err := a.js.Publish(ctx, a.subject, data,
			jetstream.WithExpectLastSequencePerSubject(lastSeq),
			jetstream.WithExpectStream(StreamAudit),
			jetstream.WithMsgID(rec.Hash))
		if isWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return AuditRecord{}, fmt.Errorf("failed to publish audit record: %w", err)
		}
		if !ack.Duplicate {
			publishedTotal.WithLabelValues(ack.Stream).Inc()
		}
		// Return what was stored, as a reader will decode it.
		return decodeAuditRecord(data)
	}
	return AuditRecord{}, fmt.Errorf("failed to append audit record after %d attempts: %w", maxAppendAttempts, ErrAppendConflict)
}

// Records reads the whole chain of the cluster, oldest first, up to the last
// record present when it was called. It does not verify it; see VerifyChain.
func (a *AuditLog) Records(ctx context.Context) ([]AuditRecord, error) {
	stream, err := a.auditStream(ctx)
	if err != nil {
		return nil, err
	}
	last, err := stream.GetLastMsgForSubject(ctx, a.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the last audit record: %w", err)
	}
	var recs []AuditRecord
	for seq := uint64(1); seq <= last.Sequence; {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(a.subject))
		if err != nil {
			return nil, fmt.Errorf("failed to read audit record at or after sequence %d: %w", seq, err)
		}
		rec, err := decodeAuditRecord(msg.Data)
		if err != nil {
			return nil, fmt.Errorf("audit record at sequence %d: %w", msg.Sequence, err)
		}
		recs = append(recs, rec)
		seq = msg.Sequence + 1
	}
	return recs, nil
}

// last returns the hash and stream sequence of the last record of the chain,
// or "" and 0 if the chain is empty.
func (a *AuditLog) last(ctx context.Context, stream jetstream.Stream) (string, uint64, error) {
	msg, err := stream.GetLastMsgForSubject(ctx, a.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("failed to read the last audit record: %w", err)
	}
	rec, err := decodeAuditRecord(msg.Data)
	if err != nil {
		return "", 0, fmt.Errorf("audit record at sequence %d: %w", msg.Sequence, err)
	}
	return rec.Hash, msg.Sequence, nil
}

func (a *AuditLog) auditStream(ctx context.Context) (jetstream.Stream, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stream == nil {
		s, err := a.js.Stream(ctx, StreamAudit)
		if err != nil {
			return nil, fmt.Errorf("failed to look up stream %s: %w", StreamAudit, err)
		}
		a.stream = s
	}
	return a.stream, nil
}

func decodeAuditRecord(data []byte) (AuditRecord, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rec AuditRecord
	if err := dec.Decode(&rec); err != nil {
		return AuditRecord{}, fmt.Errorf("failed to decode audit record: %w", err)
	}
	return rec, nil
}

// isWrongLastSequence reports whether err is JetStream refusing a publish
// because the subject's last sequence was not the expected one. Replicated
// streams report it with a different code.
func isWrongLastSequence(err error) bool {
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Follow calls fn with every record appended to the chain from now on, in
// order, until ctx ends or fn returns an error.
func (a *AuditLog) Follow(ctx context.Context, fn func(AuditRecord) error) error {
	c, err := a.js.OrderedConsumer(ctx, StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{a.subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("failed to follow the audit log: %w", err)
	}
	for {
		msg, err := c.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("failed to read the audit log: %w", err)
		}
		rec, err := decodeAuditRecord(msg.Data())
		if err != nil {
			return fmt.Errorf("audit record: %w", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
