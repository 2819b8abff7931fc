package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
)

// Bounds of an Alertmanager webhook request.
const (
	// MaxAlertBody is the largest webhook body the receiver reads.
	MaxAlertBody = 1 << 20
	// maxAlertsPerRequest bounds the alerts of one request.
	maxAlertsPerRequest = 1000
	// alertPublishTimeout bounds publishing the alerts of one request.
	alertPublishTimeout = 10 * time.Second
)

// ErrMalformedAlert is wrapped by every error DecodeAlertmanager returns for
// a body that is not a valid Alertmanager webhook.
var ErrMalformedAlert = errors.New("bus: malformed Alertmanager webhook")

// alertmanagerWebhook is the body Alertmanager's webhook receiver posts
// (version 4). Fields tend does not use are ignored, so that a newer
// Alertmanager's additions do not break the receiver.
type alertmanagerWebhook struct {
	Version string              `json:"version"`
	Status  string              `json:"status"`
	Alerts  []alertmanagerAlert `json:"alerts"`
}

type alertmanagerAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// DecodeAlertmanager parses an Alertmanager webhook body into one telemetry
// envelope per alert, for cluster. It is a trust boundary: it rejects
// bodies over MaxAlertBody, invalid JSON, trailing data, versions other than
// 4, too many alerts, alerts without a status or an alertname label, and
// label sets beyond the envelope's bounds; every error wraps
// ErrMalformedAlert. Long annotations are cut to the envelope's text bound.
// Every envelope it returns encodes.
//
// An alert's object is <namespace label>/<alertname>, with the alert's
// fingerprint as UID; its ID is the fingerprint, status and start (and end,
// once resolved), so a notification Alertmanager repeats is a duplicate.
func DecodeAlertmanager(data []byte, cluster string) ([]*Envelope, error) {
	if len(data) > MaxAlertBody {
		return nil, fmt.Errorf("%w: size %d exceeds %d bytes", ErrMalformedAlert, len(data), MaxAlertBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var w alertmanagerWebhook
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedAlert, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the body", ErrMalformedAlert)
	}
	switch {
	case w.Version != "4":
		return nil, fmt.Errorf("%w: unsupported version %q, want \"4\"", ErrMalformedAlert, w.Version)
	case len(w.Alerts) > maxAlertsPerRequest:
		return nil, fmt.Errorf("%w: %d alerts, at most %d", ErrMalformedAlert, len(w.Alerts), maxAlertsPerRequest)
	}
	out := make([]*Envelope, 0, len(w.Alerts))
	for i, a := range w.Alerts {
		e, err := envelopeOfAlert(a, cluster)
		if err != nil {
			return nil, fmt.Errorf("%w: alert %d: %w", ErrMalformedAlert, i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func envelopeOfAlert(a alertmanagerAlert, cluster string) (*Envelope, error) {
	name := a.Labels["alertname"]
	if name == "" {
		return nil, errors.New("no alertname label")
	}
	fp := a.Fingerprint
	if fp == "" {
		fp = labelsFingerprint(a.Labels)
	}
	if len(fp) > 64 || strings.Trim(fp, "0123456789abcdefABCDEF") != "" {
		return nil, fmt.Errorf("fingerprint %q is not hexadecimal", truncate(fp, 80))
	}
	id := fmt.Sprintf("alert-%s-%s-%d", fp, a.Status, a.StartsAt.UnixNano())
	if a.Status == AlertResolved {
		id += fmt.Sprintf("-%d", a.EndsAt.UnixNano())
	}
	rec := &AlertRecord{
		Status:      a.Status,
		Severity:    truncate(a.Labels["severity"], maxTextLen),
		Summary:     truncate(a.Annotations["summary"], maxTextLen),
		Description: truncate(a.Annotations["description"], maxTextLen),
		Labels:      a.Labels,
		StartsAt:    a.StartsAt.UTC(),
	}
	if a.Status == AlertResolved {
		rec.EndsAt = a.EndsAt.UTC()
	}
	e := &Envelope{
		SchemaVersion: SchemaVersion,
		ID:            id,
		Cluster:       cluster,
		Source:        "alertmanager",
		Object:        ObjectRef{Kind: KindAlert, Namespace: a.Labels["namespace"], Name: name, UID: fp},
		Time:          time.Now().UTC(),
		Alert:         rec,
	}
	if _, err := Encode(e); err != nil {
		return nil, err
	}
	return e, nil
}

// labelsFingerprint stands in for the fingerprint an older Alertmanager does
// not send: a hash of the sorted label set.
func labelsFingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q;", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// truncate cuts s to at most n bytes of valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// alertPublisher publishes envelopes. *Publisher implements it.
type alertPublisher interface {
	Publish(ctx context.Context, e *Envelope) (uint64, error)
}

var _ alertPublisher = (*Publisher)(nil)

// AlertReceiver is the http.Handler Alertmanager's webhook receiver posts
// to. It publishes every alert of a request as telemetry and answers 200
// once JetStream stored them all, 503 when it could not (Alertmanager then
// retries), 400 for a body that does not decode, 413 for one over
// MaxAlertBody, and 401 without the bearer token when one is configured.
type AlertReceiver struct {
	publisher alertPublisher
	cluster   string
	token     string
	log       logr.Logger
}

var _ http.Handler = (*AlertReceiver)(nil)

// AlertReceiverOptions configures an AlertReceiver.
type AlertReceiverOptions struct {
	// Cluster is the cluster the alerts are about. Required.
	Cluster string
	// BearerToken, if set, must be sent as "Authorization: Bearer <token>";
	// Alertmanager sends it with http_config.authorization.
	BearerToken string
	// Log receives the receiver's logs.
	Log logr.Logger
}

// NewAlertReceiver returns an AlertReceiver publishing with p, whose
// cluster must be opts.Cluster.
func NewAlertReceiver(p *Publisher, opts AlertReceiverOptions) (*AlertReceiver, error) {
	switch {
	case p == nil:
		return nil, errors.New("bus: alert receiver needs a publisher")
	case opts.Cluster == "":
		return nil, errors.New("bus: alert receiver needs a cluster")
	case p.cluster != opts.Cluster:
		return nil, fmt.Errorf("bus: alert receiver for cluster %q, publisher for %q", opts.Cluster, p.cluster)
	}
	return &AlertReceiver{publisher: p, cluster: opts.Cluster, token: opts.BearerToken, log: opts.Log}, nil
}

func (a *AlertReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.reject(w, http.StatusMethodNotAllowed, "rejected", "method not allowed")
		return
	}
	if a.token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			a.reject(w, http.StatusUnauthorized, "rejected", "unauthorized")
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			a.reject(w, http.StatusUnsupportedMediaType, "rejected", "want application/json")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAlertBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.reject(w, http.StatusRequestEntityTooLarge, "rejected", fmt.Sprintf("body over %d bytes", MaxAlertBody))
			return
		}
		a.reject(w, http.StatusBadRequest, "rejected", "failed to read body")
		return
	}
	envs, err := DecodeAlertmanager(body, a.cluster)
	if err != nil {
		a.log.V(1).Info("Rejected an Alertmanager webhook", "error", err.Error())
		a.reject(w, http.StatusBadRequest, "rejected", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), alertPublishTimeout)
	defer cancel()
	for _, e := range envs {
		if _, err := a.publisher.Publish(ctx, e); err != nil {
			a.log.Error(err, "Failed to publish alerts")
			a.reject(w, http.StatusServiceUnavailable, "failed", "failed to publish alerts")
			return
		}
	}
	alertsReceivedTotal.WithLabelValues("published").Inc()
	w.WriteHeader(http.StatusOK)
}

func (a *AlertReceiver) reject(w http.ResponseWriter, code int, result, msg string) {
	alertsReceivedTotal.WithLabelValues(result).Inc()
	http.Error(w, truncate(msg, 512), code)
}
