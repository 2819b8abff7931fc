package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The runtime shim's request/reply protocol. The proposal controller sends a
// ShimRequest on ShimSubject(cluster, node, verb); the shim of that node
// answers with a ShimReply. Every request carries an attempt token the
// controller signed (see AttemptClaims). docs/runtime-shim.md describes the
// protocol.

// Shim verbs, the last token of a shim subject.
const (
	// VerbRestartContainer stops one container; the kubelet starts it again.
	VerbRestartContainer = "restart-container"
	// VerbPruneImages removes unused images, oldest first, down to a target.
	VerbPruneImages = "prune-images"
	// VerbCollectDiagnostics stores a pod's container inspect, stats and log
	// tails in the diagnostics object store.
	VerbCollectDiagnostics = "collect-diagnostics"
	// VerbStatus reads the image filesystem and a container's current state,
	// for verifying an action. It changes nothing.
	VerbStatus = "status"
)

// ShimVerbs lists the verbs a shim serves.
var ShimVerbs = []string{VerbRestartContainer, VerbPruneImages, VerbCollectDiagnostics, VerbStatus}

// Bounds of the shim protocol.
const (
	// MaxShimRequestSize is the largest request a shim decodes.
	MaxShimRequestSize = 64 << 10
	// MaxShimReplySize is the largest reply a shim sends and a client decodes.
	MaxShimReplySize = 256 << 10
	// MaxAttemptTokenSize bounds an attempt token.
	MaxAttemptTokenSize = 4 << 10
	// MaxGracePeriodSeconds bounds the grace period of RestartContainer.
	MaxGracePeriodSeconds = 600
	// DefaultGracePeriodSeconds is the grace period when a request sets none.
	DefaultGracePeriodSeconds = 30
	// MaxTailLines bounds the log lines CollectDiagnostics keeps per container.
	MaxTailLines = 5000
	// DefaultTailLines is the log tail when a request sets none.
	DefaultTailLines = 200
	// MaxDiagnosticsSize bounds a stored diagnostics object.
	MaxDiagnosticsSize = 4 << 20

	maxKeepPatterns = 64
	maxPrunedImages = MaxNodeImages
)

// The NATS stores of the shim. EnsureShimStores creates them.
const (
	// ShimLedgerBucket is the key-value bucket of the attempt ledger: what
	// each shim started and finished, per attempt, so that a retried
	// request does nothing twice.
	ShimLedgerBucket = "tend-shim-attempts"
	// DiagnosticsBucket is the object store CollectDiagnostics writes to.
	DiagnosticsBucket = "tend-diagnostics"
	// ShimLedgerTTL is how long the ledger remembers an attempt; it is far
	// longer than an attempt token lives (MaxAttemptLifetime).
	ShimLedgerTTL = 24 * time.Hour
	// DiagnosticsTTL is how long collected diagnostics are kept.
	DiagnosticsTTL = 7 * 24 * time.Hour
)

// ErrBadShimMessage is wrapped by every error DecodeShimRequest and
// DecodeShimReply return for a message that does not satisfy the protocol.
var ErrBadShimMessage = errors.New("bus: malformed shim message")

// ShimRequest asks the shim of Node to carry out Verb. Exactly one of the
// parameters is set, the one matching Verb.
type ShimRequest struct {
	SchemaVersion int    `json:"schemaVersion"`
	Verb          string `json:"verb"`
	Cluster       string `json:"cluster"`
	Node          string `json:"node"`
	// Attempt is the attempt token the controller signed for exactly this
	// request: its cluster, node, verb and parameters.
	Attempt string `json:"attempt"`

	RestartContainer   *RestartContainerParams   `json:"restartContainer,omitempty"`
	PruneImages        *PruneImagesParams        `json:"pruneImages,omitempty"`
	CollectDiagnostics *CollectDiagnosticsParams `json:"collectDiagnostics,omitempty"`
	Status             *StatusParams             `json:"status,omitempty"`
}

// ContainerTarget names one container of one pod. PodUID and ContainerID,
// when set, must match the pod and the running container the shim finds, so
// that an action meant for one pod or container instance never reaches a
// later one.
type ContainerTarget struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	PodUID    string `json:"podUID,omitempty"`
	Container string `json:"container"`
	// ContainerID is the container's ID, with or without the runtime prefix
	// the kubelet reports ("containerd://…").
	ContainerID string `json:"containerID,omitempty"`
}

// RestartContainerParams are the parameters of VerbRestartContainer.
type RestartContainerParams struct {
	Target ContainerTarget `json:"target"`
	// GracePeriodSeconds is how long the container has to stop before it is
	// killed. Default DefaultGracePeriodSeconds; 0 kills it at once only
	// when ForceKill is set.
	GracePeriodSeconds int64 `json:"gracePeriodSeconds,omitempty"`
	ForceKill          bool  `json:"forceKill,omitempty"`
}

// Grace returns the grace period the shim uses.
func (p *RestartContainerParams) Grace() int64 {
	if p.GracePeriodSeconds == 0 && !p.ForceKill {
		return DefaultGracePeriodSeconds
	}
	return p.GracePeriodSeconds
}

// PruneImagesParams are the parameters of VerbPruneImages. Exactly one of
// TargetUsedBytes, TargetUsedPercent and All is set.
type PruneImagesParams struct {
	// TargetUsedBytes is the image filesystem usage to prune down to.
	TargetUsedBytes int64 `json:"targetUsedBytes,omitempty"`
	// TargetUsedPercent is the usage to prune down to, in percent of the
	// image filesystem's capacity; the shim must see that filesystem.
	TargetUsedPercent int32 `json:"targetUsedPercent,omitempty"`
	// All removes every image that may be removed, whatever the usage (as
	// `crictl rmi --prune` does).
	All bool `json:"all,omitempty"`
	// Keep lists more images never to remove, on top of the shim's own
	// allow-list: a reference ("registry.example.com/app:1.2"), an ID, or
	// a prefix ending in "*" ("registry.example.com/base/*").
	Keep []string `json:"keep,omitempty"`
}

// CollectDiagnosticsParams are the parameters of VerbCollectDiagnostics:
// a pod's (Namespace and Pod set), or the node's (neither set).
type CollectDiagnosticsParams struct {
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"podUID,omitempty"`
	// Container limits the diagnostics to one container of the pod.
	Container string `json:"container,omitempty"`
	// TailLines is how many log lines to keep per container. Default
	// DefaultTailLines, at most MaxTailLines.
	TailLines int32 `json:"tailLines,omitempty"`
}

// StatusParams are the parameters of VerbStatus.
type StatusParams struct {
	// Container, when set, asks for the newest container of that pod and name.
	Container *ContainerTarget `json:"container,omitempty"`
}

// ShimErrorCode classifies an error reply.
type ShimErrorCode string

// Error codes of a shim reply.
const (
	// ShimMalformed: the request does not decode or break the protocol's rules.
	ShimMalformed ShimErrorCode = "malformed"
	// ShimTooLarge: the request, or the reply it would get, is too large.
	ShimTooLarge ShimErrorCode = "too-large"
	// ShimUnauthorized: the attempt token is missing, not signed by a key the
	// shim trusts, expired, or not for this exact request.
	ShimUnauthorized ShimErrorCode = "unauthorized"
	// ShimWrongNode: the request is for another cluster or node.
	ShimWrongNode ShimErrorCode = "wrong-node"
	// ShimNotFound: no such pod, container or image on this node.
	ShimNotFound ShimErrorCode = "not-found"
	// ShimConflict: the target is not in a state the action applies to, or
	// the attempt was used before with other parameters.
	ShimConflict ShimErrorCode = "conflict"
	// ShimUnavailable: the container runtime or the NATS stores are missing
	// or too slow. Retry with the same attempt.
	ShimUnavailable ShimErrorCode = "unavailable"
	// ShimBusy: the attempt is in progress, or the shim has too many
	// requests in flight. Retry with the same attempt.
	ShimBusy ShimErrorCode = "busy"
	// ShimInternal: anything else.
	ShimInternal ShimErrorCode = "internal"
)

// Retryable reports whether a request that got this error may succeed when
// sent again with the same attempt.
func (c ShimErrorCode) Retryable() bool {
	return c == ShimUnavailable || c == ShimBusy
}

// ShimError is the error of a failed request. Message is for people.
type ShimError struct {
	Code    ShimErrorCode `json:"code"`
	Message string        `json:"message"`
}

func (e *ShimError) Error() string {
	return fmt.Sprintf("shim: %s: %s", e.Code, e.Message)
}

// ShimReply is a shim's answer. It has either Error or the result matching Verb.
type ShimReply struct {
	SchemaVersion int    `json:"schemaVersion"`
	Verb          string `json:"verb"`
	Node          string `json:"node"`
	AttemptID     string `json:"attemptID,omitempty"`
	// Replayed is true when the attempt had completed before: the result is
	// the one recorded then, and nothing was done again.
	Replayed bool       `json:"replayed,omitempty"`
	Error    *ShimError `json:"error,omitempty"`

	RestartContainer   *RestartContainerResult   `json:"restartContainer,omitempty"`
	PruneImages        *PruneImagesResult        `json:"pruneImages,omitempty"`
	CollectDiagnostics *CollectDiagnosticsResult `json:"collectDiagnostics,omitempty"`
	Status             *StatusResult             `json:"status,omitempty"`
}

// RestartContainerResult is what VerbRestartContainer did.
type RestartContainerResult struct {
	// ContainerID is the container that was stopped, StartedAt when it had
	// started. A restart is verified by the container of the same pod and
	// name running again with a later start (VerbStatus).
	ContainerID  string    `json:"containerID"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int32     `json:"restartCount,omitempty"`
	ExitCode     int32     `json:"exitCode,omitempty"`
	// AlreadyStopped is true when the container had stopped before the
	// shim stopped it (for example when a retry found it stopped).
	AlreadyStopped bool `json:"alreadyStopped,omitempty"`
}

// PruneImagesResult is what VerbPruneImages did.
type PruneImagesResult struct {
	// UsedBytesBefore is the image filesystem's usage when pruning started,
	// TargetUsedBytes the target in bytes.
	UsedBytesBefore int64 `json:"usedBytesBefore"`
	TargetUsedBytes int64 `json:"targetUsedBytes"`
	// EstimatedUsedBytesAfter is UsedBytesBefore less the sizes of the
	// removed images. The runtime measures its usage periodically;
	// VerbStatus reads the measured value.
	EstimatedUsedBytesAfter int64 `json:"estimatedUsedBytesAfter"`
	// TargetReached is false when removing every image that may be removed
	// was not expected to reach the target; with All, when an image was
	// kept because a container started using it meanwhile.
	TargetReached bool          `json:"targetReached"`
	Removed       []PrunedImage `json:"removed,omitempty"`
	FreedBytes    int64         `json:"freedBytes,omitempty"`
	// Images kept because a running container uses them, another container
	// uses them, the runtime pins them, or an allow-list names them.
	KeptRunning     int `json:"keptRunning,omitempty"`
	KeptInUse       int `json:"keptInUse,omitempty"`
	KeptPinned      int `json:"keptPinned,omitempty"`
	KeptAllowListed int `json:"keptAllowListed,omitempty"`
}

// PrunedImage is one removed image.
type PrunedImage struct {
	ID        string   `json:"id"`
	Tags      []string `json:"tags,omitempty"`
	SizeBytes int64    `json:"sizeBytes,omitempty"`
}

// CollectDiagnosticsResult locates the stored diagnostics.
type CollectDiagnosticsResult struct {
	Bucket string `json:"bucket"`
	Object string `json:"object"`
	Size   int64  `json:"size"`
	// Digest is the object store's digest of the object ("SHA-256=…");
	// a reader checks it, so the object cannot be swapped unnoticed.
	Digest     string `json:"digest"`
	Containers int    `json:"containers"`
}

// StatusResult is the state VerbStatus read.
type StatusResult struct {
	ImageFS *ImageFSUsage `json:"imageFs,omitempty"`
	// Container is the newest container of the requested pod and name, nil
	// when there is none on the node.
	Container *RuntimeContainer `json:"container,omitempty"`
}

// Diagnostics is the document CollectDiagnostics stores. Log, Info and the
// containers' messages are untrusted text. A node's diagnostics (no pod)
// hold every container's state and usage, without logs or inspect output,
// and the node's images.
type Diagnostics struct {
	SchemaVersion int                    `json:"schemaVersion"`
	Cluster       string                 `json:"cluster"`
	Node          string                 `json:"node"`
	AttemptID     string                 `json:"attemptID"`
	CollectedAt   time.Time              `json:"collectedAt"`
	Namespace     string                 `json:"namespace,omitempty"`
	Pod           string                 `json:"pod,omitempty"`
	PodUID        string                 `json:"podUID,omitempty"`
	Containers    []ContainerDiagnostics `json:"containers"`
	Images        []RuntimeImage         `json:"images,omitempty"`
	ImageFS       *ImageFSUsage          `json:"imageFs,omitempty"`
}

// ContainerDiagnostics is what was collected about one container.
type ContainerDiagnostics struct {
	Container RuntimeContainer       `json:"container"`
	LogPath   string                 `json:"logPath,omitempty"`
	Usage     *RuntimeContainerUsage `json:"usage,omitempty"`
	// Info is the runtime's verbose inspect output (JSON from the runtime),
	// cut at 64 KiB.
	Info string `json:"info,omitempty"`
	// Log is the tail of the container's log in the CRI log format
	// ("<time> <stream> <tag> <line>").
	Log          string `json:"log,omitempty"`
	LogTruncated bool   `json:"logTruncated,omitempty"`
	// LogError says why there is no log, when there is none.
	LogError string `json:"logError,omitempty"`
}

// ParamsDigest is the hex SHA-256 of the request's parameters, the value an
// attempt token binds the request to.
func (r *ShimRequest) ParamsDigest() (string, error) {
	var params any
	switch r.Verb {
	case VerbRestartContainer:
		params = r.RestartContainer
	case VerbPruneImages:
		params = r.PruneImages
	case VerbCollectDiagnostics:
		params = r.CollectDiagnostics
	case VerbStatus:
		params = r.Status
	default:
		return "", fmt.Errorf("%w: unknown verb %q", ErrBadShimMessage, r.Verb)
	}
	data, err := marshal(params)
	if err != nil {
		return "", fmt.Errorf("failed to encode the parameters: %w", err)
	}
	sum := sha256.Sum256(append([]byte(r.Verb+"\n"), data...))
	return hex.EncodeToString(sum[:]), nil
}

// EncodeShimRequest validates r and returns its encoding.
func EncodeShimRequest(r *ShimRequest) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	data, err := marshal(r)
	if err != nil {
		return nil, fmt.Errorf("failed to encode shim request: %w", err)
	}
	if len(data) > MaxShimRequestSize {
		return nil, fmt.Errorf("%w: encoded size %d exceeds %d bytes", ErrBadShimMessage, len(data), MaxShimRequestSize)
	}
	return data, nil
}

// DecodeShimRequest parses and validates a request. It is the shim's trust
// boundary: it rejects oversized data, invalid JSON, unknown fields,
// trailing data, other schema versions, unknown verbs, parameters that do
// not match the verb and values beyond the protocol's bounds. It does not
// verify the attempt token. Every error wraps ErrBadShimMessage.
func DecodeShimRequest(data []byte) (*ShimRequest, error) {
	if len(data) > MaxShimRequestSize {
		return nil, fmt.Errorf("%w: size %d exceeds %d bytes", ErrBadShimMessage, len(data), MaxShimRequestSize)
	}
	var r ShimRequest
	if err := decodeStrict(data, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate reports whether r satisfies the protocol.
func (r *ShimRequest) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil request", ErrBadShimMessage)
	}
	c := shimChecker{}
	if r.SchemaVersion != SchemaVersion {
		c.failf("schemaVersion", "unsupported version %d (this build reads %d)", r.SchemaVersion, SchemaVersion)
	}
	c.name("cluster", r.Cluster, true)
	c.dnsName("node", r.Node, true)
	switch {
	case r.Attempt == "":
		c.failf("attempt", "required")
	case len(r.Attempt) > MaxAttemptTokenSize:
		c.failf("attempt", "longer than %d bytes", MaxAttemptTokenSize)
	}
	set := 0
	for _, ok := range []bool{r.RestartContainer != nil, r.PruneImages != nil, r.CollectDiagnostics != nil, r.Status != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		c.failf("verb", "want exactly one parameters object, got %d", set)
	}
	switch r.Verb {
	case VerbRestartContainer:
		c.require("restartContainer", r.RestartContainer != nil)
		if p := r.RestartContainer; p != nil {
			c.target("restartContainer.target", p.Target)
			if p.GracePeriodSeconds < 0 || p.GracePeriodSeconds > MaxGracePeriodSeconds {
				c.failf("restartContainer.gracePeriodSeconds", "must be between 0 and %d", MaxGracePeriodSeconds)
			}
			if p.ForceKill && p.GracePeriodSeconds != 0 {
				c.failf("restartContainer.forceKill", "a forced kill has no grace period")
			}
		}
	case VerbPruneImages:
		c.require("pruneImages", r.PruneImages != nil)
		if p := r.PruneImages; p != nil {
			targets := 0
			for _, set := range []bool{p.TargetUsedBytes != 0, p.TargetUsedPercent != 0, p.All} {
				if set {
					targets++
				}
			}
			switch {
			case targets != 1:
				c.failf("pruneImages", "set exactly one of targetUsedBytes, targetUsedPercent and all")
			case p.TargetUsedBytes < 0:
				c.failf("pruneImages.targetUsedBytes", "must not be negative")
			case p.TargetUsedPercent < 0 || p.TargetUsedPercent > 99:
				c.failf("pruneImages.targetUsedPercent", "must be between 1 and 99")
			}
			c.list("pruneImages.keep", len(p.Keep), maxKeepPatterns)
			for i, k := range p.Keep {
				c.imageRef(fmt.Sprintf("pruneImages.keep[%d]", i), k)
			}
		}
	case VerbCollectDiagnostics:
		c.require("collectDiagnostics", r.CollectDiagnostics != nil)
		if p := r.CollectDiagnostics; p != nil {
			if (p.Namespace == "") != (p.Pod == "") {
				c.failf("collectDiagnostics", "set both namespace and pod (a pod's diagnostics) or neither (the node's)")
			}
			if p.Pod == "" && (p.PodUID != "" || p.Container != "") {
				c.failf("collectDiagnostics", "a pod UID or a container needs a pod")
			}
			c.dnsName("collectDiagnostics.namespace", p.Namespace, false)
			c.dnsName("collectDiagnostics.pod", p.Pod, false)
			c.uid("collectDiagnostics.podUID", p.PodUID)
			c.dnsName("collectDiagnostics.container", p.Container, false)
			if p.TailLines < 0 || p.TailLines > MaxTailLines {
				c.failf("collectDiagnostics.tailLines", "must be between 0 and %d", MaxTailLines)
			}
		}
	case VerbStatus:
		c.require("status", r.Status != nil)
		if p := r.Status; p != nil && p.Container != nil {
			c.target("status.container", *p.Container)
		}
	default:
		c.failf("verb", "unknown verb %q (want one of %s)", clip(r.Verb), strings.Join(ShimVerbs, ", "))
	}
	return c.err
}

// DecodeShimReply parses and validates a reply; the client's trust boundary.
// Every error wraps ErrBadShimMessage.
func DecodeShimReply(data []byte) (*ShimReply, error) {
	if len(data) > MaxShimReplySize {
		return nil, fmt.Errorf("%w: size %d exceeds %d bytes", ErrBadShimMessage, len(data), MaxShimReplySize)
	}
	var r ShimReply
	if err := decodeStrict(data, &r); err != nil {
		return nil, err
	}
	c := shimChecker{}
	if r.SchemaVersion != SchemaVersion {
		c.failf("schemaVersion", "unsupported version %d (this build reads %d)", r.SchemaVersion, SchemaVersion)
	}
	results := 0
	for _, ok := range []bool{r.RestartContainer != nil, r.PruneImages != nil, r.CollectDiagnostics != nil, r.Status != nil} {
		if ok {
			results++
		}
	}
	switch {
	case r.Error != nil && results != 0:
		c.failf("error", "an error reply has no result")
	case r.Error != nil:
		c.name("error.code", string(r.Error.Code), true)
		c.text("error.message", r.Error.Message)
	case results != 1:
		c.failf("verb", "want exactly one result, got %d", results)
	}
	if r.PruneImages != nil {
		c.list("pruneImages.removed", len(r.PruneImages.Removed), maxPrunedImages)
	}
	return &r, c.err
}

// EncodeShimReply encodes r. A reply larger than MaxShimReplySize becomes a
// ShimTooLarge error reply, so that the caller always gets an answer.
func EncodeShimReply(r *ShimReply) []byte {
	r.SchemaVersion = SchemaVersion
	data, err := marshal(r)
	if err == nil && len(data) <= MaxShimReplySize {
		return data
	}
	msg := fmt.Sprintf("the reply would be %d bytes, more than %d", len(data), MaxShimReplySize)
	if err != nil {
		msg = "failed to encode the reply: " + err.Error()
	}
	small := ShimReply{
		SchemaVersion: SchemaVersion, Verb: r.Verb, Node: r.Node, AttemptID: r.AttemptID,
		Error: &ShimError{Code: ShimTooLarge, Message: msg},
	}
	data, _ = marshal(&small) // a few short strings always encode
	return data
}

// EncodeDiagnostics encodes a diagnostics document within MaxDiagnosticsSize.
func EncodeDiagnostics(d *Diagnostics) ([]byte, error) {
	d.SchemaVersion = SchemaVersion
	data, err := marshal(d)
	if err != nil {
		return nil, fmt.Errorf("failed to encode diagnostics: %w", err)
	}
	if len(data) > MaxDiagnosticsSize {
		return nil, fmt.Errorf("%w: diagnostics of %d bytes exceed %d", ErrBadShimMessage, len(data), MaxDiagnosticsSize)
	}
	return data, nil
}

// DecodeDiagnostics parses a stored diagnostics document.
func DecodeDiagnostics(data []byte) (*Diagnostics, error) {
	if len(data) > MaxDiagnosticsSize {
		return nil, fmt.Errorf("%w: diagnostics of %d bytes exceed %d", ErrBadShimMessage, len(data), MaxDiagnosticsSize)
	}
	var d Diagnostics
	if err := decodeStrict(data, &d); err != nil {
		return nil, err
	}
	if d.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%w: unsupported diagnostics version %d", ErrBadShimMessage, d.SchemaVersion)
	}
	if len(d.Containers) > MaxNodeContainers || len(d.Images) > MaxNodeImages {
		return nil, fmt.Errorf("%w: more than %d containers or %d images", ErrBadShimMessage, MaxNodeContainers, MaxNodeImages)
	}
	return &d, nil
}

// ShimLedgerKey is the ledger key of an attempt on one node:
// <cluster>.<node>.<hash of the attempt ID>, with the cluster and node
// escaped for key-value keys. A shim may write only under its own
// <cluster>.<node> prefix.
func ShimLedgerKey(cluster, node, attemptID string) string {
	return ShimLedgerPrefix(cluster, node) + "." + attemptHash(attemptID)
}

// ShimLedgerPrefix is the ledger key prefix of one node's attempts.
func ShimLedgerPrefix(cluster, node string) string {
	return keyToken(cluster) + "." + keyToken(node)
}

// DiagnosticsObject is the object name of an attempt's diagnostics:
// <cluster>/<node>/<hash of the attempt ID>.json.
func DiagnosticsObject(cluster, node, attemptID string) string {
	return keyToken(cluster) + "/" + keyToken(node) + "/" + attemptHash(attemptID) + ".json"
}

func attemptHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// keyToken makes s one token of a key-value key, losslessly: letters,
// digits, '-' and '_' stay, every other byte becomes "=" and its two hex
// digits ("." becomes "=2e").
func keyToken(s string) string {
	if s == "" {
		return "="
	}
	var b strings.Builder
	for i := range len(s) {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "=%02x", ch)
	}
	return b.String()
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadShimMessage, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data", ErrBadShimMessage)
	}
	return nil
}

// shimChecker records the first rule a shim message breaks.
type shimChecker struct{ err error }

func (c *shimChecker) failf(field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: %s: %s", ErrBadShimMessage, field, fmt.Sprintf(format, args...))
	}
}

func (c *shimChecker) require(field string, ok bool) {
	if !ok {
		c.failf(field, "parameters missing for the verb")
	}
}

func (c *shimChecker) name(field, v string, required bool) {
	switch {
	case required && v == "":
		c.failf(field, "required")
	case len(v) > maxNameLen:
		c.failf(field, "longer than %d bytes", maxNameLen)
	}
}

func (c *shimChecker) text(field, v string) {
	if len(v) > maxTextLen {
		c.failf(field, "longer than %d bytes", maxTextLen)
	}
}

func (c *shimChecker) list(field string, n, limit int) {
	if n > limit {
		c.failf(field, "more than %d entries", limit)
	}
}

// dnsName checks a Kubernetes object or node name: lower-case letters,
// digits, '-' and '.', at most 253 bytes.
func (c *shimChecker) dnsName(field, v string, required bool) {
	if v == "" {
		if required {
			c.failf(field, "required")
		}
		return
	}
	if len(v) > 253 {
		c.failf(field, "longer than 253 bytes")
		return
	}
	for i := range len(v) {
		ch := v[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			c.failf(field, "%q is not a valid name (lower-case letters, digits, '-' and '.')", clip(v))
			return
		}
	}
}

// uid checks an optional Kubernetes UID or container ID: letters, digits,
// '-', '_', ':', '/', '.', at most 128 bytes.
func (c *shimChecker) uid(field, v string) {
	if len(v) > 128 {
		c.failf(field, "longer than 128 bytes")
		return
	}
	for i := range len(v) {
		ch := v[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-_:/.", ch) >= 0) {
			c.failf(field, "%q has characters other than letters, digits and -_:/.", clip(v))
			return
		}
	}
}

// imageRef checks an image reference or keep pattern: printable ASCII
// without spaces, at most 512 bytes.
func (c *shimChecker) imageRef(field, v string) {
	switch {
	case v == "":
		c.failf(field, "required")
		return
	case len(v) > 512:
		c.failf(field, "longer than 512 bytes")
		return
	}
	for i := range len(v) {
		if v[i] <= ' ' || v[i] > '~' {
			c.failf(field, "must be printable ASCII without spaces")
			return
		}
	}
}

func (c *shimChecker) target(field string, t ContainerTarget) {
	c.dnsName(field+".namespace", t.Namespace, true)
	c.dnsName(field+".pod", t.Pod, true)
	c.uid(field+".podUID", t.PodUID)
	c.dnsName(field+".container", t.Container, true)
	c.uid(field+".containerID", t.ContainerID)
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DiagnosticsMaxBytes bounds the diagnostics object store.
const DiagnosticsMaxBytes = 1 << 30

// EnsureShimStores creates the shim's attempt ledger (a key-value bucket)
// and the diagnostics object store, or updates them to these settings. It
// is idempotent; EnsureStreams runs it, so whatever owns the bus creates
// them. A shim never creates them: it may only write to them.
func EnsureShimStores(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas == 0 {
		replicas = 1
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ShimLedgerBucket,
		Description: "tend runtime shim attempts: what each shim started and finished",
		History:     1,
		TTL:         ShimLedgerTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}); err != nil {
		return fmt.Errorf("failed to create or update key-value bucket %s: %w", ShimLedgerBucket, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      DiagnosticsBucket,
		Description: "tend runtime shim diagnostics",
		TTL:         DiagnosticsTTL,
		MaxBytes:    DiagnosticsMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}); err != nil {
		return fmt.Errorf("failed to create or update object store %s: %w", DiagnosticsBucket, err)
	}
	return nil
}

// ShimNodeFilter matches the requests of every verb for one node's shim:
// tend.shim.<cluster>.<node>.*.
func ShimNodeFilter(cluster, node string) string {
	return join(shimRoot, cluster, node) + ".*"
}
