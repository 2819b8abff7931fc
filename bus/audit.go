package bus

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
// from one phase to another. Each record carries the hash of the one before
// it and is signed with the controller's audit key, so that a record
// appended, altered or removed by anyone without the key is found out.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Object is the proposal the record is about, of kind KindProposal.
	Object ObjectRef `json:"object"`
	// Seq numbers the transitions of the object from 1; with the object's
	// UID it identifies the record, so that a retried append is stored once.
	Seq     int64  `json:"seq,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Actor   string `json:"actor,omitempty"`
	// KeyID names the key that signed the record (AuditKeyID).
	KeyID    string `json:"keyId"`
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
	// Signature is the base64 ed25519 signature of Hash by the audit key.
	Signature string `json:"signature"`
}

// hash is the hex SHA-256 of PrevHash followed by the canonical JSON of r
// with Hash and Signature empty.
func (r AuditRecord) hash() (string, error) {
	r.Hash, r.Signature = "", ""
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

// VerifyChain checks that recs is an unbroken chain from its first record,
// signed by key: each record's hash matches its content, each links to the
// one before, and each carries a valid signature of its hash by key. It
// returns a *ChainError naming the first break. A chain cut short at its
// end is still a valid chain; compare its head with a checkpoint
// (VerifyCheckpoint) to see that.
func VerifyChain(recs []AuditRecord, key ed25519.PublicKey) error {
	if len(key) != ed25519.PublicKeySize {
		return errors.New("bus: verifying the audit chain needs the audit key's public half")
	}
	keyID := AuditKeyID(key)
	prev := ""
	for i, r := range recs {
		if r.PrevHash != prev {
			if i == 0 {
				return &ChainError{Index: i, Reason: "the first record links to an earlier one: records were removed from the start"}
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
		if r.KeyID != keyID {
			return &ChainError{Index: i, Reason: fmt.Sprintf("signed with key %q, not the audit key %s", r.KeyID, keyID)}
		}
		sig, err := base64.StdEncoding.DecodeString(r.Signature)
		if err != nil || !ed25519.Verify(key, []byte(r.Hash), sig) {
			return &ChainError{Index: i, Reason: "the signature is not the audit key's: the record was not written by the controller"}
		}
		prev = r.Hash
	}
	return nil
}

// AuditKeyID names an audit key: the first 16 hex digits of the SHA-256 of
// its public half.
func AuditKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// EncodeAuditPublicKey and DecodeAuditPublicKey are how the audit key's
// public half is written down: standard base64 of its 32 bytes.
func EncodeAuditPublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// DecodeAuditPublicKey reads a public key EncodeAuditPublicKey wrote.
func DecodeAuditPublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace([]byte(s))))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("bus: an audit public key is the base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// Checkpoint is the head of the audit chain as its writer last saw it,
// signed with the audit key. Kept apart from the stream (tend keeps it in
// the system namespace), it shows a chain cut short at its end, or a stream
// deleted and created anew.
type Checkpoint struct {
	// Sequence is the stream sequence of the head record.
	Sequence uint64 `json:"sequence"`
	// Hash of the head record.
	Hash string `json:"hash"`
	// Time the head record was appended.
	Time time.Time `json:"time"`
	// Signature is the base64 ed25519 signature of "<sequence>/<hash>".
	Signature string `json:"signature"`
}

func (c Checkpoint) signed() []byte {
	return []byte(strconv.FormatUint(c.Sequence, 10) + "/" + c.Hash)
}

// VerifyCheckpoint checks that cp is signed by key and that recs, the whole
// chain as read, still holds its head: a chain that ends before it was cut
// short, and one without its record at all was replaced.
func VerifyCheckpoint(recs []AuditRecord, seqs []uint64, cp Checkpoint, key ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || !ed25519.Verify(key, cp.signed(), sig) {
		return errors.New("bus: the audit checkpoint is not signed by the audit key")
	}
	for i := range recs {
		if recs[i].Hash == cp.Hash {
			if i < len(seqs) && seqs[i] != cp.Sequence {
				return fmt.Errorf("bus: the checkpoint's record is at stream sequence %d, not %d: the stream was replaced", seqs[i], cp.Sequence)
			}
			return nil
		}
	}
	if n := len(seqs); n > 0 && seqs[n-1] < cp.Sequence {
		return fmt.Errorf("bus: the audit chain was truncated: it ends at stream sequence %d, before the checkpoint at %d (%s)", seqs[n-1], cp.Sequence, cp.Time.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("bus: the audit chain lacks the checkpoint's record (sequence %d, %s): records were removed or the stream replaced", cp.Sequence, cp.Time.UTC().Format(time.RFC3339))
}

// AuditLog appends to and reads one cluster's audit chain on the AUDIT
// stream. Several AuditLogs, in any number of processes, may append to the
// same chain.
type AuditLog struct {
	js      jetstream.JetStream
	cluster string
	subject string
	key     ed25519.PrivateKey

	mu     sync.Mutex
	stream jetstream.Stream
}

// ErrNoAuditKey is returned by Append on a log without a signing key.
var ErrNoAuditKey = errors.New("bus: the audit log has no signing key")

// NewAuditLog returns the audit log of cluster, for reading. Appending
// needs the audit key: see WithKey.
func NewAuditLog(js jetstream.JetStream, cluster string) *AuditLog {
	return &AuditLog{js: js, cluster: cluster, subject: AuditSubject(cluster)}
}

// WithKey returns a log that signs what it appends with key.
func (a *AuditLog) WithKey(key ed25519.PrivateKey) *AuditLog {
	return &AuditLog{js: a.js, cluster: a.cluster, subject: a.subject, key: key}
}

// Append links rec to the end of the chain, signs it and publishes it. It
// fills in the cluster and, if zero, the time, and sets KeyID, PrevHash,
// Hash and Signature. It returns the record as stored, and its stream
// sequence. A record with a Seq and an object UID is stored once, however
// often it is appended within the stream's duplicate window.
func (a *AuditLog) Append(ctx context.Context, rec AuditRecord) (AuditRecord, error) {
	stored, _, err := a.AppendSeq(ctx, rec)
	return stored, err
}

// AppendSeq is Append, returning the stream sequence too.
func (a *AuditLog) AppendSeq(ctx context.Context, rec AuditRecord) (AuditRecord, uint64, error) {
	if len(a.key) != ed25519.PrivateKeySize {
		return AuditRecord{}, 0, ErrNoAuditKey
	}
	if rec.Cluster == "" {
		rec.Cluster = a.cluster
	}
	switch {
	case rec.Cluster != a.cluster:
		return AuditRecord{}, 0, fmt.Errorf("bus: audit record is for cluster %q, log for %q", rec.Cluster, a.cluster)
	case rec.Object.Kind == "" || rec.Object.Name == "":
		return AuditRecord{}, 0, errors.New("bus: audit record needs an object kind and name")
	case rec.To == "":
		return AuditRecord{}, 0, errors.New("bus: audit record needs the phase it moves to")
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	rec.KeyID = AuditKeyID(a.key.Public().(ed25519.PublicKey))
	msgID := ""
	if rec.Seq > 0 && rec.Object.UID != "" {
		msgID = "audit/" + rec.Object.UID + "/" + strconv.FormatInt(rec.Seq, 10)
	}

	stream, err := a.auditStream(ctx)
	if err != nil {
		return AuditRecord{}, 0, err
	}
	for range maxAppendAttempts {
		prev, lastSeq, err := a.last(ctx, stream)
		if err != nil {
			return AuditRecord{}, 0, err
		}
		rec.PrevHash = prev
		if rec.Hash, err = rec.hash(); err != nil {
			return AuditRecord{}, 0, err
		}
		rec.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, []byte(rec.Hash)))
		data, err := marshal(rec)
		if err != nil {
			return AuditRecord{}, 0, fmt.Errorf("failed to encode audit record: %w", err)
		}
		id := msgID
		if id == "" {
			id = rec.Hash
		}
		// Expecting the last sequence we read makes the append a
		// compare-and-swap: a concurrent append makes it fail, and we relink.
		// The message ID makes a retried append of the same record a
		// duplicate JetStream drops.
		ack, err := a.js.Publish(ctx, a.subject, data,
			jetstream.WithExpectLastSequencePerSubject(lastSeq),
			jetstream.WithExpectStream(StreamAudit),
			jetstream.WithMsgID(id))
		if isWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return AuditRecord{}, 0, fmt.Errorf("failed to publish audit record: %w", err)
		}
		if ack.Duplicate {
			// Stored before: return the stored record, not this relinked copy.
			msg, err := stream.GetMsg(ctx, ack.Sequence)
			if err != nil {
				return AuditRecord{}, 0, fmt.Errorf("failed to read the audit record stored before: %w", err)
			}
			stored, err := decodeAuditRecord(msg.Data)
			return stored, ack.Sequence, err
		}
		publishedTotal.WithLabelValues(ack.Stream).Inc()
		// Return what was stored, as a reader will decode it.
		stored, err := decodeAuditRecord(data)
		return stored, ack.Sequence, err
	}
	return AuditRecord{}, 0, fmt.Errorf("failed to append audit record after %d attempts: %w", maxAppendAttempts, ErrAppendConflict)
}

// Checkpoint signs the head of the chain: the record stored at stream
// sequence seq.
func (a *AuditLog) Checkpoint(rec AuditRecord, seq uint64) (Checkpoint, error) {
	if len(a.key) != ed25519.PrivateKeySize {
		return Checkpoint{}, ErrNoAuditKey
	}
	cp := Checkpoint{Sequence: seq, Hash: rec.Hash, Time: rec.Time}
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, cp.signed()))
	return cp, nil
}

// ErrNoAuditStream means the AUDIT stream does not exist: never created,
// or deleted.
var ErrNoAuditStream = errors.New("bus: the AUDIT stream does not exist")

// Records reads the whole chain of the cluster, oldest first, up to the last
// record present when it was called. It does not verify it; see VerifyChain.
func (a *AuditLog) Records(ctx context.Context) ([]AuditRecord, error) {
	recs, _, err := a.RecordsSeq(ctx)
	return recs, err
}

// RecordsSeq is Records, with the stream sequence of each record.
func (a *AuditLog) RecordsSeq(ctx context.Context) ([]AuditRecord, []uint64, error) {
	stream, err := a.auditStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	last, err := stream.GetLastMsgForSubject(ctx, a.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the last audit record: %w", err)
	}
	var recs []AuditRecord
	var seqs []uint64
	for seq := uint64(1); seq <= last.Sequence; {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(a.subject))
		if err != nil {
			return nil, nil, fmt.Errorf("failed to read audit record at or after sequence %d: %w", seq, err)
		}
		rec, err := decodeAuditRecord(msg.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("audit record at sequence %d: %w", msg.Sequence, err)
		}
		recs = append(recs, rec)
		seqs = append(seqs, msg.Sequence)
		seq = msg.Sequence + 1
	}
	return recs, seqs, nil
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
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, ErrNoAuditStream
		}
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
