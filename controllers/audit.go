package controllers

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
)

// AuditKeyName is the ConfigMap, in tend's system namespace, that publishes
// the audit key's public half and the signed checkpoint of the audit chain's
// head, for `tend audit verify`.
const AuditKeyName = "tend-audit"

// Keys of the audit ConfigMap.
const (
	KeyAuditPublicKey  = "publicKey"
	KeyAuditKeyID      = "keyId"
	KeyAuditCheckpoint = "checkpoint"
)

// auditAppendFailures counts failed appends to the audit log; each is
// retried from the proposal's outbox.
var auditAppendFailures = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "tend_audit_append_failures_total",
	Help: "Appends to the audit log that failed; the transitions stay in their proposal's outbox and are retried.",
})

// RegisterAuditMetrics adds the audit metrics to r. Registering them again
// is not an error.
func RegisterAuditMetrics(r prometheus.Registerer) error {
	if err := r.Register(auditAppendFailures); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == auditAppendFailures {
			return nil
		}
		return fmt.Errorf("failed to register audit metrics: %w", err)
	}
	return nil
}

// auditRetry is how soon a failed audit append is tried again.
const auditRetry = 5 * time.Second

// maxOutbox bounds a proposal's outbox; a proposal's lifecycle has far fewer
// transitions.
const maxOutbox = 64

// auditLog receives every proposal transition. *bus.AuditLog implements it.
type auditLog interface {
	AppendSeq(ctx context.Context, rec bus.AuditRecord) (bus.AuditRecord, uint64, error)
	Checkpoint(rec bus.AuditRecord, seq uint64) (bus.Checkpoint, error)
}

var _ auditLog = (*bus.AuditLog)(nil)

// stageAudit puts the transitions s entered into the proposal's audit outbox,
// numbered, so that they are committed with the status that makes them true
// and appended to the audit log after, however often that takes.
func (r *ProposalReconciler) stageAudit(s *scope) {
	if r.Audit == nil {
		return
	}
	p := s.p
	from := s.recorded
	for i, to := range s.entered {
		msg := p.Status.Message
		if i < len(s.entered)-1 {
			msg = ""
		}
		if msg == "" {
			msg = string(to)
		}
		p.Status.AuditSequence++
		p.Status.AuditOutbox = append(p.Status.AuditOutbox, tendv1.PendingAudit{
			Sequence: p.Status.AuditSequence, Time: metav1.NewTime(s.now), From: from, To: to,
			Reason: phaseReason(p, to), Message: truncate(msg, 4096),
		})
		from = to
	}
	if n := len(p.Status.AuditOutbox); n > maxOutbox {
		// Cannot happen within one proposal's lifecycle; were it to, the
		// oldest go, with a record of it in the proposal's Events.
		r.event(p, corev1.EventTypeWarning, ReasonAuditPending, "%d audit records could not be kept for the audit log", n-maxOutbox)
		p.Status.AuditOutbox = p.Status.AuditOutbox[n-maxOutbox:]
	}
}

// flushAudit appends the proposal's outbox to the audit log, in order, and
// writes what is left back to the status. What fails stays in the outbox and
// is tried again; a retried append of a record already stored is dropped by
// JetStream as a duplicate.
func (r *ProposalReconciler) flushAudit(ctx context.Context, s *scope) error {
	p := s.p
	if r.Audit == nil || len(p.Status.AuditOutbox) == 0 {
		return nil
	}
	var (
		done    int
		last    bus.AuditRecord
		lastSeq uint64
		failed  error
	)
	for _, e := range p.Status.AuditOutbox {
		rec, seq, err := r.Audit.AppendSeq(ctx, bus.AuditRecord{
			Time:    e.Time.Time,
			Cluster: r.Options.Cluster,
			Object:  bus.ObjectRef{Kind: bus.KindProposal, Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)},
			Seq:     e.Sequence,
			From:    string(e.From),
			To:      string(e.To),
			Reason:  e.Reason,
			Message: e.Message,
			Actor:   r.Options.FieldManager,
		})
		if err != nil {
			failed = err
			break
		}
		done++
		last, lastSeq = rec, seq
	}
	if done > 0 {
		p.Status.AuditOutbox = p.Status.AuditOutbox[done:]
		if len(p.Status.AuditOutbox) == 0 {
			p.Status.AuditOutbox = nil
		}
		if err := r.Client.Status().Update(ctx, p); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to update proposal status: %w", err)
		}
		if err := r.checkpoint(ctx, last, lastSeq); err != nil {
			log.FromContext(ctx).Error(err, "Failed to checkpoint the audit chain")
		}
	}
	if failed != nil {
		log.FromContext(ctx).Error(failed, "Failed to append to the audit log; retrying", "proposal", klog.KObj(p), "pending", len(p.Status.AuditOutbox))
		r.event(p, corev1.EventTypeWarning, "AuditWriteFailed", "%d transition(s) wait for the audit log: %v", len(p.Status.AuditOutbox), failed)
		auditAppendFailures.Inc()
		s.requeueAfter(auditRetry)
	}
	return nil
}

// checkpoint records the chain's head, signed, in the audit ConfigMap.
func (r *ProposalReconciler) checkpoint(ctx context.Context, head bus.AuditRecord, seq uint64) error {
	cp, err := r.Audit.Checkpoint(head, seq)
	if err != nil {
		return err
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("failed to encode the audit checkpoint: %w", err)
	}
	cm := &corev1.ConfigMap{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Options.SystemNamespace, Name: AuditKeyName}, cm); err != nil {
		return fmt.Errorf("failed to read the audit ConfigMap: %w", err)
	}
	if old, ok := cm.Data[KeyAuditCheckpoint]; ok {
		var prev bus.Checkpoint
		if json.Unmarshal([]byte(old), &prev) == nil && prev.Sequence >= cp.Sequence {
			return nil
		}
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[KeyAuditCheckpoint] = string(b)
	if err := r.Client.Update(ctx, cm); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to update the audit ConfigMap: %w", err)
	}
	return nil
}

// PublishAuditKey writes the audit key's public half to the audit ConfigMap
// in namespace, creating it if need be, and keeps the checkpoint it holds.
func PublishAuditKey(ctx context.Context, c client.Client, namespace string, pub ed25519.PublicKey) error {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: AuditKeyName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: AuditKeyName,
			Labels: map[string]string{"app.kubernetes.io/name": "tend"}}, Data: map[string]string{}}
	case err != nil:
		return fmt.Errorf("failed to read the audit ConfigMap: %w", err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if cm.Data[KeyAuditPublicKey] != bus.EncodeAuditPublicKey(pub) {
		// A new key starts a new chain of trust: the old checkpoint was
		// signed with the old key.
		delete(cm.Data, KeyAuditCheckpoint)
	}
	cm.Data[KeyAuditPublicKey] = bus.EncodeAuditPublicKey(pub)
	cm.Data[KeyAuditKeyID] = bus.AuditKeyID(pub)
	if cm.ResourceVersion == "" {
		if err := c.Create(ctx, cm); err != nil {
			return fmt.Errorf("failed to create the audit ConfigMap: %w", err)
		}
		return nil
	}
	if err := c.Update(ctx, cm); err != nil {
		return fmt.Errorf("failed to update the audit ConfigMap: %w", err)
	}
	return nil
}

// AuditTrust is what `tend audit verify` reads from the audit ConfigMap.
type AuditTrust struct {
	PublicKey  ed25519.PublicKey
	Checkpoint *bus.Checkpoint
}

// ReadAuditTrust reads the audit key's public half and the checkpoint from
// the audit ConfigMap in namespace.
func ReadAuditTrust(ctx context.Context, c client.Reader, namespace string) (AuditTrust, error) {
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: AuditKeyName}, cm); err != nil {
		return AuditTrust{}, fmt.Errorf("failed to read ConfigMap %s/%s: %w", namespace, AuditKeyName, err)
	}
	pub, err := bus.DecodeAuditPublicKey(cm.Data[KeyAuditPublicKey])
	if err != nil {
		return AuditTrust{}, fmt.Errorf("ConfigMap %s/%s: %w", namespace, AuditKeyName, err)
	}
	t := AuditTrust{PublicKey: pub}
	if raw, ok := cm.Data[KeyAuditCheckpoint]; ok {
		var cp bus.Checkpoint
		if err := json.Unmarshal([]byte(raw), &cp); err != nil {
			return AuditTrust{}, fmt.Errorf("ConfigMap %s/%s: the checkpoint does not decode: %w", namespace, AuditKeyName, err)
		}
		t.Checkpoint = &cp
	}
	return t, nil
}
