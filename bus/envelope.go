package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	kjson "sigs.k8s.io/json"
)

// SchemaVersion is the version of the envelope schema this package writes and
// the only one it accepts.
const SchemaVersion = 1

// MaxMessageSize is the largest encoded envelope Decode accepts and Encode produces.
const MaxMessageSize = 256 << 10

// Bounds Decode enforces on outside input.
const (
	maxIDLen       = 256      // ID, used as the Nats-Msg-Id header
	maxNameLen     = 256      // cluster, source, kinds, namespaces, names, UIDs
	maxTextLen     = 32 << 10 // any other string
	maxContainers  = 64
	maxListLen     = 64      // conditions, images, labels
	maxNodeTextLen = 1 << 10 // text of the runtime shim's node-level kinds
)

// Bounds of the lists of the runtime shim's node-level kinds.
const (
	MaxNodeContainers = 512
	MaxNodeImages     = 512
)

// maxExpansion bounds how much larger the canonical encoding of a decoded
// envelope is than its input: one invalid UTF-8 byte becomes the three bytes
// of U+FFFD, and nothing grows more.
const maxExpansion = 3

// ErrMalformed is wrapped by every error Decode and Validate return for an
// envelope that does not satisfy the schema.
var ErrMalformed = errors.New("bus: malformed envelope")

// Kind is the kind of object a telemetry envelope or audit record is about.
type Kind string

// The kinds of telemetry envelopes, and the kind audit records refer to.
const (
	KindPod        Kind = "pod"
	KindDeployment Kind = "deployment"
	KindNode       Kind = "node"
	KindEvent      Kind = "event"
	KindAlert      Kind = "alert"
	KindProposal   Kind = "proposal"

	KindStatefulSet Kind = "statefulset"
	KindDaemonSet   Kind = "daemonset"
	KindJob         Kind = "job"
	KindHPA         Kind = "hpa"
	KindService     Kind = "service"
	// KindNetworkPolicy is a NetworkPolicy's spec: which pods it selects
	// and whom it admits to them.
	KindNetworkPolicy Kind = "networkpolicy"
	// KindPodMetrics and KindNodeMetrics are resource usage samples from
	// metrics.k8s.io, when the cluster serves it.
	KindPodMetrics  Kind = "podmetrics"
	KindNodeMetrics Kind = "nodemetrics"

	// The runtime shim's kinds, one object per node (no namespace, the
	// node's name), from the container runtime (CRI) of that node.
	//
	// KindContainers is the state of every container on the node, with
	// restarts and exit details.
	KindContainers Kind = "containers"
	// KindContainerStats is a CPU and memory sample of the node's containers.
	KindContainerStats Kind = "containerstats"
	// KindImages is the node's images, with sizes and whether a container uses them.
	KindImages Kind = "images"
	// KindImageFS is the capacity and usage of the node's image filesystem.
	KindImageFS Kind = "imagefs"
)

// NodeKinds are the kinds the runtime shim publishes about its node.
var NodeKinds = []Kind{KindContainers, KindContainerStats, KindImages, KindImageFS}

// ObjectRef names an object. Namespace is empty for cluster-scoped objects.
type ObjectRef struct {
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Envelope is one observation of one object. Exactly one of the payloads is
// set, the one matching Object.Kind.
type Envelope struct {
	SchemaVersion int `json:"schemaVersion"`
	// ID is unique per observed state (for example UID and resourceVersion)
	// and is sent as Nats-Msg-Id, so republishing the same state is a no-op.
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Source  string    `json:"source,omitempty"`
	Object  ObjectRef `json:"object"`
	Time    time.Time `json:"time,omitzero"`

	Pod        *PodState        `json:"pod,omitempty"`
	Deployment *DeploymentState `json:"deployment,omitempty"`
	Node       *NodeState       `json:"node,omitempty"`
	Event      *EventRecord     `json:"event,omitempty"`
	Alert      *AlertRecord     `json:"alert,omitempty"`

	StatefulSet *WorkloadState   `json:"statefulSet,omitempty"`
	DaemonSet   *WorkloadState   `json:"daemonSet,omitempty"`
	Job         *JobState        `json:"job,omitempty"`
	HPA         *AutoscalerState `json:"hpa,omitempty"`
	Service     *ServiceState    `json:"service,omitempty"`
	// NetworkPolicy is the payload of KindNetworkPolicy.
	NetworkPolicy *NetworkPolicyState `json:"networkPolicy,omitempty"`
	// Usage is the payload of both KindPodMetrics and KindNodeMetrics.
	Usage *UsageSample `json:"usage,omitempty"`

	// The runtime shim's payloads.
	Containers     *NodeContainers     `json:"containers,omitempty"`
	ContainerStats *NodeContainerStats `json:"containerStats,omitempty"`
	Images         *NodeImages         `json:"images,omitempty"`
	ImageFS        *ImageFSUsage       `json:"imageFs,omitempty"`
}

// WorkloadState is the observed state of a StatefulSet or a DaemonSet. For a
// DaemonSet, Replicas is the number of nodes that should run its pod.
type WorkloadState struct {
	Deleted            bool  `json:"deleted,omitempty"`
	Generation         int64 `json:"generation,omitempty"`
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	Replicas           int32 `json:"replicas,omitempty"`
	CurrentReplicas    int32 `json:"currentReplicas,omitempty"`
	UpdatedReplicas    int32 `json:"updatedReplicas,omitempty"`
	ReadyReplicas      int32 `json:"readyReplicas,omitempty"`
	AvailableReplicas  int32 `json:"availableReplicas,omitempty"`
	// CurrentRevision and UpdateRevision name the controller revisions of a
	// StatefulSet's pods; empty for a DaemonSet.
	CurrentRevision string      `json:"currentRevision,omitempty"`
	UpdateRevision  string      `json:"updateRevision,omitempty"`
	Images          []string    `json:"images,omitempty"`
	Conditions      []Condition `json:"conditions,omitempty"`
	// Template is what the pod template declares for each container, in
	// order (declared facts only, no status).
	Template []ContainerState `json:"template,omitempty"`
}

// JobState is the observed state of a Job.
type JobState struct {
	Deleted        bool         `json:"deleted,omitempty"`
	Owner          *WorkloadRef `json:"owner,omitempty"` // its CronJob, if any
	Completions    int32        `json:"completions,omitempty"`
	Parallelism    int32        `json:"parallelism,omitempty"`
	BackoffLimit   int32        `json:"backoffLimit,omitempty"`
	Active         int32        `json:"active,omitempty"`
	Succeeded      int32        `json:"succeeded,omitempty"`
	Failed         int32        `json:"failed,omitempty"`
	StartTime      time.Time    `json:"startTime,omitzero"`
	CompletionTime time.Time    `json:"completionTime,omitzero"`
	Images         []string     `json:"images,omitempty"`
	Conditions     []Condition  `json:"conditions,omitempty"`
}

// AutoscalerState is the observed state of a HorizontalPodAutoscaler.
type AutoscalerState struct {
	Deleted         bool        `json:"deleted,omitempty"`
	Target          WorkloadRef `json:"target"`
	MinReplicas     int32       `json:"minReplicas,omitempty"`
	MaxReplicas     int32       `json:"maxReplicas,omitempty"`
	CurrentReplicas int32       `json:"currentReplicas,omitempty"`
	DesiredReplicas int32       `json:"desiredReplicas,omitempty"`
	LastScaleTime   time.Time   `json:"lastScaleTime,omitzero"`
	Conditions      []Condition `json:"conditions,omitempty"`
}

// ServiceState is the observed spec of a Service: where it sends traffic.
type ServiceState struct {
	Deleted bool   `json:"deleted,omitempty"`
	Type    string `json:"type,omitempty"`
	// Selector is nil for a Service without one (its endpoints are managed
	// by hand).
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports,omitempty"`
}

// ServicePort is one port of a Service. TargetPort is the container port
// it sends to by number, TargetPortName by name; one is set.
type ServicePort struct {
	Name           string `json:"name,omitempty"`
	Port           int32  `json:"port"`
	TargetPort     int32  `json:"targetPort,omitempty"`
	TargetPortName string `json:"targetPortName,omitempty"`
}

// NetworkPolicyState is the observed spec of a NetworkPolicy: the pods it
// selects, its policy types, and its ingress rules (egress rules are not
// carried). Selectors are pointers where Kubernetes tells an absent
// selector from an empty one (an empty one selects everything).
type NetworkPolicyState struct {
	Deleted    bool  `json:"deleted,omitempty"`
	Generation int64 `json:"generation,omitempty"`
	// PodSelector selects the pods the policy applies to; empty selects
	// every pod of the namespace.
	PodSelector LabelSelector `json:"podSelector,omitzero"`
	// PolicyTypes as the API server defaulted them: Ingress, Egress.
	PolicyTypes []string `json:"policyTypes,omitempty"`
	// Ingress rules; none with Ingress in PolicyTypes admits nothing.
	Ingress []NetworkPolicyIngressRule `json:"ingress,omitempty"`
	// Truncated is set when the spec holds more than an envelope carries
	// (more than 64 rules, peers, ports, labels or values in one list):
	// PodSelector and Ingress are then left empty, and a reader must not
	// judge the policy by them.
	Truncated bool `json:"truncated,omitempty"`
}

// NetworkPolicyIngressRule admits traffic from peers to ports. No peers
// admits every source; no ports, every port.
type NetworkPolicyIngressRule struct {
	From  []NetworkPolicyPeer `json:"from,omitempty"`
	Ports []NetworkPolicyPort `json:"ports,omitempty"`
}

// NetworkPolicyPeer is one source of an ingress rule: pods (of the
// policy's namespace when NamespaceSelector is nil), pods of the
// namespaces a NamespaceSelector selects, or an IP block.
type NetworkPolicyPeer struct {
	PodSelector       *LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *IPBlock       `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR and the CIDRs excepted from it.
type IPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// NetworkPolicyPort is a port (by number, or by name: Port or PortName),
// or a range up to EndPort, of a protocol (TCP when empty). Neither Port
// nor PortName set means every port of the protocol.
type NetworkPolicyPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int32  `json:"port,omitempty"`
	PortName string `json:"portName,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
}

// LabelSelector is a Kubernetes label selector: every label of MatchLabels
// and every requirement of MatchExpressions must hold. An empty selector
// selects everything.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one requirement of a selector: Operator In,
// NotIn, Exists or DoesNotExist, on Key, with Values for In and NotIn.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Label selector operators.
const (
	SelectorIn           = "In"
	SelectorNotIn        = "NotIn"
	SelectorExists       = "Exists"
	SelectorDoesNotExist = "DoesNotExist"
)

// UsageSample is one resource usage sample of a pod or a node from
// metrics.k8s.io. Containers is empty for a node.
type UsageSample struct {
	Timestamp     time.Time        `json:"timestamp,omitzero"`
	WindowSeconds float64          `json:"windowSeconds,omitempty"`
	CPUMillicores int64            `json:"cpuMillicores,omitempty"`
	MemoryBytes   int64            `json:"memoryBytes,omitempty"`
	Containers    []ContainerUsage `json:"containers,omitempty"`
}

// ContainerUsage is the resource usage of one container.
type ContainerUsage struct {
	Name          string `json:"name"`
	CPUMillicores int64  `json:"cpuMillicores,omitempty"`
	MemoryBytes   int64  `json:"memoryBytes,omitempty"`
}

// PodState is the observed state of a pod.
type PodState struct {
	Phase    string       `json:"phase,omitempty"`
	Ready    bool         `json:"ready,omitempty"`
	Deleted  bool         `json:"deleted,omitempty"`
	NodeName string       `json:"nodeName,omitempty"`
	Workload *WorkloadRef `json:"workload,omitempty"`
	// Revision is the deployment revision of the pod's ReplicaSet, 0 if unknown.
	Revision     int64  `json:"revision,omitempty"`
	TemplateHash string `json:"templateHash,omitempty"`
	// Containers are in the order of the pod spec (the order of the
	// workload's template), each with its declared facts and its status.
	Containers []ContainerState `json:"containers,omitempty"`
	// InitContainers are the init containers, in spec order.
	InitContainers []ContainerState `json:"initContainers,omitempty"`
	// Labels are the pod's labels, for matching Service selectors.
	Labels map[string]string `json:"labels,omitempty"`
	// Conditions are the pod's conditions (PodScheduled, Ready, ...).
	Conditions []Condition `json:"conditions,omitempty"`
	// NodeSelector is the pod's node selector.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
}

// WorkloadRef names the workload that owns a pod, such as its Deployment.
type WorkloadRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// ContainerState is the observed state of one container. Reason and Message
// are untrusted text.
type ContainerState struct {
	Name                  string `json:"name"`
	Image                 string `json:"image,omitempty"`
	Ready                 bool   `json:"ready,omitempty"`
	RestartCount          int32  `json:"restartCount,omitempty"`
	State                 string `json:"state,omitempty"` // waiting, running or terminated
	Reason                string `json:"reason,omitempty"`
	Message               string `json:"message,omitempty"`
	LastTerminationReason string `json:"lastTerminationReason,omitempty"`
	LastExitCode          int32  `json:"lastExitCode,omitempty"`

	// What the pod spec declares for the container.
	Ports              []ContainerPort `json:"ports,omitempty"`
	Liveness           *Probe          `json:"liveness,omitempty"`
	Readiness          *Probe          `json:"readiness,omitempty"`
	Startup            *Probe          `json:"startup,omitempty"`
	MemoryRequestBytes int64           `json:"memoryRequestBytes,omitempty"`
	MemoryLimitBytes   int64           `json:"memoryLimitBytes,omitempty"`
	// CPURequestMillicores is the container's CPU request, for rightsizing.
	CPURequestMillicores int64 `json:"cpuRequestMillicores,omitempty"`
}

// ContainerPort is a port a container declares.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// Probe is a container's probe: where it looks (an HTTP GET or a TCP
// connection, on a port by number or by name; Exec for a command) and its
// timing.
type Probe struct {
	// Handler is httpGet, tcpSocket, grpc or exec.
	Handler             string `json:"handler"`
	Path                string `json:"path,omitempty"`
	Port                int32  `json:"port,omitempty"`
	PortName            string `json:"portName,omitempty"`
	InitialDelaySeconds int32  `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32  `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int32  `json:"timeoutSeconds,omitempty"`
	FailureThreshold    int32  `json:"failureThreshold,omitempty"`
}

// Probe handlers.
const (
	ProbeHTTPGet   = "httpGet"
	ProbeTCPSocket = "tcpSocket"
	ProbeGRPC      = "grpc"
	ProbeExec      = "exec"
)

// Container states.
const (
	ContainerWaiting    = "waiting"
	ContainerRunning    = "running"
	ContainerTerminated = "terminated"
)

// DeploymentState is the observed state of a Deployment.
type DeploymentState struct {
	Deleted             bool        `json:"deleted,omitempty"`
	Generation          int64       `json:"generation,omitempty"`
	ObservedGeneration  int64       `json:"observedGeneration,omitempty"`
	Replicas            int32       `json:"replicas,omitempty"`
	UpdatedReplicas     int32       `json:"updatedReplicas,omitempty"`
	ReadyReplicas       int32       `json:"readyReplicas,omitempty"`
	AvailableReplicas   int32       `json:"availableReplicas,omitempty"`
	UnavailableReplicas int32       `json:"unavailableReplicas,omitempty"`
	Revision            int64       `json:"revision,omitempty"`
	Images              []string    `json:"images,omitempty"`
	Conditions          []Condition `json:"conditions,omitempty"`
	// Template is what the pod template declares for each container, in
	// order (declared facts only, no status).
	Template []ContainerState `json:"template,omitempty"`
}

// Condition is a status condition. Reason and Message are untrusted text.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// NodeState is the observed state of a node.
type NodeState struct {
	Deleted       bool        `json:"deleted,omitempty"`
	Ready         bool        `json:"ready,omitempty"`
	Unschedulable bool        `json:"unschedulable,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
	// Labels are the node's labels, for matching node selectors.
	Labels map[string]string `json:"labels,omitempty"`
	// Allocatable is what the node offers pods.
	AllocatableMemoryBytes   int64 `json:"allocatableMemoryBytes,omitempty"`
	AllocatableCPUMillicores int64 `json:"allocatableCPUMillicores,omitempty"`
}

// EventRecord is a Kubernetes Event. Reason and Message are untrusted text.
type EventRecord struct {
	Type     string    `json:"type,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Count    int32     `json:"count,omitempty"`
	Involved ObjectRef `json:"involved"`
	LastTime time.Time `json:"lastTime,omitzero"`
}

// AlertRecord is one Alertmanager alert. Everything in it is untrusted text.
type AlertRecord struct {
	Status      string            `json:"status"` // firing or resolved
	Severity    string            `json:"severity,omitempty"`
	Summary     string            `json:"summary,omitempty"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
}

// Alert statuses.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// NodeContainers is the state of every container on a node, as its
// container runtime reports it. Omitted counts the containers left out to
// keep the envelope within bounds (the oldest exited ones go first).
type NodeContainers struct {
	Containers []RuntimeContainer `json:"containers,omitempty"`
	Omitted    int                `json:"omitted,omitempty"`
}

// RuntimeContainer is one container as the container runtime reports it.
// Namespace, Pod, PodUID and Name come from the kubelet's labels on the
// container and are empty for a container the kubelet did not create.
// Reason and Message are untrusted text of at most 1 KiB each.
type RuntimeContainer struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"podUID,omitempty"`
	Name      string `json:"name,omitempty"`
	// Image is the image the container was created from as its spec names
	// it; ImageID the image's ID.
	Image   string `json:"image,omitempty"`
	ImageID string `json:"imageID,omitempty"`
	// State is created, running, exited or unknown.
	State string `json:"state"`
	// RestartCount is the kubelet's attempt number of the container.
	RestartCount int32     `json:"restartCount,omitempty"`
	CreatedAt    time.Time `json:"createdAt,omitzero"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	// ExitCode, Reason and Message are the exit details of an exited container.
	ExitCode int32  `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Runtime container states.
const (
	ContainerCreated = "created"
	ContainerExited  = "exited"
	ContainerUnknown = "unknown"
	// A running container's state is ContainerRunning.
)

// NodeContainerStats is one CPU and memory sample of a node's containers.
type NodeContainerStats struct {
	Timestamp  time.Time               `json:"timestamp,omitzero"`
	Containers []RuntimeContainerUsage `json:"containers,omitempty"`
	Omitted    int                     `json:"omitted,omitempty"`
}

// RuntimeContainerUsage is the resource usage of one container. CPUMillicores
// is the average over the time since the previous sample, absent in the
// first sample of a container; CPUCoreNanoseconds is cumulative.
type RuntimeContainerUsage struct {
	ID                    string `json:"id"`
	Namespace             string `json:"namespace,omitempty"`
	Pod                   string `json:"pod,omitempty"`
	Name                  string `json:"name,omitempty"`
	CPUMillicores         int64  `json:"cpuMillicores,omitempty"`
	CPUCoreNanoseconds    int64  `json:"cpuCoreNanoseconds,omitempty"`
	MemoryWorkingSetBytes int64  `json:"memoryWorkingSetBytes,omitempty"`
	WritableLayerBytes    int64  `json:"writableLayerBytes,omitempty"`
}

// NodeImages lists the images on a node. Omitted counts the images left out
// to keep the envelope within bounds (the smallest go first).
type NodeImages struct {
	Images  []RuntimeImage `json:"images,omitempty"`
	Omitted int            `json:"omitted,omitempty"`
}

// RuntimeImage is one image on a node. InUse is true when a container, in
// any state, was created from it; Running when a running container was.
// Pinned images (such as the pod sandbox image) are never pruned.
type RuntimeImage struct {
	ID        string   `json:"id"`
	Tags      []string `json:"tags,omitempty"`
	Digests   []string `json:"digests,omitempty"`
	SizeBytes int64    `json:"sizeBytes,omitempty"`
	Pinned    bool     `json:"pinned,omitempty"`
	InUse     bool     `json:"inUse,omitempty"`
	Running   bool     `json:"running,omitempty"`
}

// ImageFSUsage is the capacity and usage of a node's image filesystem.
// UsedBytes and InodesUsed are what the container runtime's images and
// containers take, as it last measured them at Timestamp. CapacityBytes and
// AvailableBytes are those of the filesystem holding Mountpoint, 0 when the
// shim cannot see that filesystem.
type ImageFSUsage struct {
	Mountpoint     string    `json:"mountpoint,omitempty"`
	Timestamp      time.Time `json:"timestamp,omitzero"`
	UsedBytes      int64     `json:"usedBytes"`
	InodesUsed     int64     `json:"inodesUsed,omitempty"`
	CapacityBytes  int64     `json:"capacityBytes,omitempty"`
	AvailableBytes int64     `json:"availableBytes,omitempty"`
}

// Encode validates e and returns its JSON encoding.
func Encode(e *Envelope) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeTo(&buf, e); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeTo is Encode into buf, which it resets first.
func encodeTo(buf *bytes.Buffer, e *Envelope) error {
	buf.Reset()
	if err := e.Validate(); err != nil {
		return err
	}
	if err := marshalTo(buf, e); err != nil {
		return fmt.Errorf("failed to encode envelope: %w", err)
	}
	if buf.Len() > MaxMessageSize {
		return fmt.Errorf("%w: encoded size %d exceeds %d bytes", ErrMalformed, buf.Len(), MaxMessageSize)
	}
	return nil
}

// Decode parses and validates an envelope received from the bus. It is the
// trust boundary for outside input: it rejects oversized data, invalid JSON,
// unknown fields, trailing data, other schema versions, missing identity,
// payloads that do not match the kind and values beyond the package's
// bounds. Every error wraps ErrMalformed.
func Decode(data []byte) (*Envelope, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: size %d exceeds %d bytes", ErrMalformed, len(data), MaxMessageSize)
	}
	// Strict and case-sensitive: a key given twice, or in another case than
	// the schema's, is refused like an unknown one, so that no two readers
	// of one message can see different envelopes. Invalid UTF-8 in a
	// string becomes U+FFFD, as encoding/json makes it. This is the
	// consumer's hot path: the decoder (JSON v2) takes about half the time
	// and a third of the allocations of a strict encoding/json one.
	var e Envelope
	if err := jsonv2.Unmarshal(data, &e, decodeOptions); err != nil {
		return nil, decodeFailure(data, err)
	}
	// Anything Decode accepts can be re-encoded and re-published: the
	// envelope is valid and its canonical form within bounds. Re-encoding
	// grows a string by at most maxExpansion (an invalid byte becomes
	// U+FFFD), so only large input needs to be encoded to check its size.
	if len(data)*maxExpansion <= MaxMessageSize {
		if err := e.Validate(); err != nil {
			return nil, err
		}
		return &e, nil
	}
	if _, err := Encode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// decodeOptions make Decode strict: no member the schema does not name
// (in its exact case), none given twice (JSON v2 refuses those by default).
var decodeOptions = jsonv2.JoinOptions(jsonv2.RejectUnknownMembers(true), jsontext.AllowInvalidUTF8(true))

// decodeFailure explains why data is not an envelope. Only failures take
// this path, so it can afford to decode again, by the standard decoder,
// whose errors tell trailing data and unknown fields apart best, and by a
// strict one that names a key in another case or given twice; err, JSON
// v2's own error, is the answer when both accept data (a time that only
// the standard decoder's looser parsing takes, for one).
func decodeFailure(data []byte, err error) error {
	if v, ok := peekSchemaVersion(data); ok && v != SchemaVersion {
		return unsupportedVersion(v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var e Envelope
	if err := dec.Decode(&e); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the envelope", ErrMalformed)
	}
	// encoding/json reads keys in any case and the last of two alike; a
	// strict reader names the key refused.
	if strict, serr := kjson.UnmarshalStrict(data, &e); serr != nil || len(strict) > 0 {
		return fmt.Errorf("%w: %w", ErrMalformed, errors.Join(append(strict, serr)...))
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// Validate reports whether e satisfies the schema, by the rules Decode applies.
func (e *Envelope) Validate() error {
	if e == nil {
		return fmt.Errorf("%w: nil envelope", ErrMalformed)
	}
	if e.SchemaVersion != SchemaVersion {
		return unsupportedVersion(e.SchemaVersion)
	}
	var c checker
	c.id("id", e.ID)
	c.name("cluster", e.Cluster, true)
	c.name("source", e.Source, false)
	c.ref("object", e.Object)

	payloads := 0
	for _, set := range []bool{
		e.Pod != nil, e.Deployment != nil, e.Node != nil, e.Event != nil, e.Alert != nil,
		e.StatefulSet != nil, e.DaemonSet != nil, e.Job != nil, e.HPA != nil, e.Usage != nil, e.Service != nil,
		e.NetworkPolicy != nil,
		e.Containers != nil, e.ContainerStats != nil, e.Images != nil, e.ImageFS != nil,
	} {
		if set {
			payloads++
		}
	}
	if payloads != 1 {
		c.failf("object", "want exactly one payload, got %d", payloads)
	}
	switch e.Object.Kind {
	case KindPod:
		c.require("pod", e.Pod != nil)
		c.pod(e.Pod)
	case KindDeployment:
		c.require("deployment", e.Deployment != nil)
		c.deployment(e.Deployment)
	case KindNode:
		c.require("node", e.Node != nil)
		c.node(e.Node)
	case KindEvent:
		c.require("event", e.Event != nil)
		c.event(e.Event)
	case KindAlert:
		c.require("alert", e.Alert != nil)
		c.alert(e.Alert)
	case KindStatefulSet:
		c.require("statefulSet", e.StatefulSet != nil)
		c.workload("statefulSet", e.StatefulSet)
	case KindDaemonSet:
		c.require("daemonSet", e.DaemonSet != nil)
		c.workload("daemonSet", e.DaemonSet)
	case KindJob:
		c.require("job", e.Job != nil)
		c.job(e.Job)
	case KindHPA:
		c.require("hpa", e.HPA != nil)
		c.hpa(e.HPA)
	case KindService:
		c.require("service", e.Service != nil)
		c.service(e.Service)
	case KindNetworkPolicy:
		c.require("networkPolicy", e.NetworkPolicy != nil)
		c.networkPolicy(e.NetworkPolicy)
	case KindPodMetrics, KindNodeMetrics:
		c.require("usage", e.Usage != nil)
		c.usage(e.Usage)
	case KindContainers:
		c.require("containers", e.Containers != nil)
		c.nodeScoped(e.Object)
		c.containers(e.Containers)
	case KindContainerStats:
		c.require("containerStats", e.ContainerStats != nil)
		c.nodeScoped(e.Object)
		c.containerStats(e.ContainerStats)
	case KindImages:
		c.require("images", e.Images != nil)
		c.nodeScoped(e.Object)
		c.nodeImages(e.Images)
	case KindImageFS:
		c.require("imageFs", e.ImageFS != nil)
		c.nodeScoped(e.Object)
		c.imageFS(e.ImageFS)
	default:
		c.failf("object.kind", "unsupported kind %q", e.Object.Kind)
	}
	return c.err
}

// checker records the first rule an envelope breaks.
type checker struct {
	err error
	// prefix, when set, comes before every field checked: the path of the
	// list item being checked, so that its fields' paths stay short.
	prefix string
}

// failf records a broken rule. It keeps a copy of field, never field
// itself, so that the paths callers build for every value checked need not
// be allocated on the heap: only a failure's path is.
func (c *checker) failf(field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: %s%s: %s", ErrMalformed, c.prefix, strings.Clone(field), fmt.Sprintf(format, args...))
	}
}

func (c *checker) require(field string, ok bool) {
	if !ok {
		c.failf(field, "payload missing for the object kind")
	}
}

// id checks a value that is sent as a NATS header: printable ASCII, no spaces.
func (c *checker) id(field, v string) {
	if v == "" {
		c.failf(field, "required")
		return
	}
	if len(v) > maxIDLen {
		c.failf(field, "longer than %d bytes", maxIDLen)
		return
	}
	for i := range len(v) {
		if v[i] <= ' ' || v[i] > '~' {
			c.failf(field, "must be printable ASCII without spaces")
			return
		}
	}
}

func (c *checker) name(field, v string, required bool) {
	switch {
	case required && v == "":
		c.failf(field, "required")
	case len(v) > maxNameLen:
		c.failf(field, "longer than %d bytes", maxNameLen)
	}
}

func (c *checker) text(field, v string) {
	if len(v) > maxTextLen {
		c.failf(field, "longer than %d bytes", maxTextLen)
	}
}

func (c *checker) count(field string, n int64) {
	if n < 0 {
		c.failf(field, "must not be negative")
	}
}

func (c *checker) list(field string, n int, limit int) {
	if n > limit {
		c.failf(field, "more than %d entries", limit)
	}
}

func (c *checker) oneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.failf(field, "unsupported value %q", v)
}

func (c *checker) ref(field string, r ObjectRef) {
	c.name(field+".kind", string(r.Kind), true)
	c.name(field+".namespace", r.Namespace, false)
	c.name(field+".name", r.Name, true)
	c.name(field+".uid", r.UID, false)
}

func (c *checker) conditions(field string, conds []Condition) {
	c.list(field, len(conds), maxListLen)
	for i, cond := range conds {
		f := field + "[" + strconv.Itoa(i) + "]"
		c.name(f+".type", cond.Type, true)
		c.name(f+".status", cond.Status, false)
		c.text(f+".reason", cond.Reason)
		c.text(f+".message", cond.Message)
	}
}

func (c *checker) pod(p *PodState) {
	if p == nil {
		return
	}
	c.text("pod.phase", p.Phase)
	c.name("pod.nodeName", p.NodeName, false)
	if p.Workload != nil {
		c.name("pod.workload.kind", p.Workload.Kind, true)
		c.name("pod.workload.name", p.Workload.Name, true)
	}
	c.count("pod.revision", p.Revision)
	c.text("pod.templateHash", p.TemplateHash)
	c.podContainers("pod.containers", p.Containers)
	c.podContainers("pod.initContainers", p.InitContainers)
	c.labels("pod.labels", p.Labels)
	c.conditions("pod.conditions", p.Conditions)
	c.labels("pod.nodeSelector", p.NodeSelector)
}

func (c *checker) podContainers(field string, cts []ContainerState) {
	c.list(field, len(cts), maxContainers)
	for i, ct := range cts {
		// The container's path is built once and prefixes the short
		// paths checked under it, which need no allocation.
		c.prefix = field + "[" + strconv.Itoa(i) + "]."
		c.name("name", ct.Name, true)
		c.text("image", ct.Image)
		c.count("restartCount", int64(ct.RestartCount))
		c.oneOf("state", ct.State, "", ContainerWaiting, ContainerRunning, ContainerTerminated)
		c.text("reason", ct.Reason)
		c.text("message", ct.Message)
		c.text("lastTerminationReason", ct.LastTerminationReason)
		c.list("ports", len(ct.Ports), maxListLen)
		for j, p := range ct.Ports {
			pf := "ports[" + strconv.Itoa(j) + "]"
			c.name(pf+".name", p.Name, false)
			c.port(pf+".containerPort", p.ContainerPort)
			c.name(pf+".protocol", p.Protocol, false)
		}
		c.probe("liveness", ct.Liveness)
		c.probe("readiness", ct.Readiness)
		c.probe("startup", ct.Startup)
		c.count("memoryRequestBytes", ct.MemoryRequestBytes)
		c.count("memoryLimitBytes", ct.MemoryLimitBytes)
		c.count("cpuRequestMillicores", ct.CPURequestMillicores)
	}
	c.prefix = ""
}

func (c *checker) probe(field string, p *Probe) {
	if p == nil {
		return
	}
	c.oneOf(field+".handler", p.Handler, ProbeHTTPGet, ProbeTCPSocket, ProbeGRPC, ProbeExec)
	c.text(field+".path", p.Path)
	if p.Port != 0 {
		c.port(field+".port", p.Port)
	}
	c.name(field+".portName", p.PortName, false)
	for _, n := range []int32{p.InitialDelaySeconds, p.PeriodSeconds, p.TimeoutSeconds, p.FailureThreshold} {
		c.count(field, int64(n))
	}
}

func (c *checker) port(field string, p int32) {
	if p < 0 || p > 65535 {
		c.failf(field, "must be a port number")
	}
}

func (c *checker) labels(field string, labels map[string]string) {
	c.list(field, len(labels), maxListLen)
	for k, v := range labels {
		c.name(field, k, true)
		c.name(field, v, false)
	}
}

func (c *checker) service(s *ServiceState) {
	if s == nil {
		return
	}
	c.name("service.type", s.Type, false)
	c.labels("service.selector", s.Selector)
	c.list("service.ports", len(s.Ports), maxListLen)
	for i, p := range s.Ports {
		f := fmt.Sprintf("service.ports[%d]", i)
		c.name(f+".name", p.Name, false)
		c.port(f+".port", p.Port)
		c.port(f+".targetPort", p.TargetPort)
		c.name(f+".targetPortName", p.TargetPortName, false)
	}
}

func (c *checker) networkPolicy(p *NetworkPolicyState) {
	if p == nil {
		return
	}
	c.count("networkPolicy.generation", p.Generation)
	c.selector("networkPolicy.podSelector", &p.PodSelector)
	c.list("networkPolicy.policyTypes", len(p.PolicyTypes), 2)
	for i, t := range p.PolicyTypes {
		c.oneOf(fmt.Sprintf("networkPolicy.policyTypes[%d]", i), t, "Ingress", "Egress")
	}
	c.list("networkPolicy.ingress", len(p.Ingress), maxListLen)
	for i, r := range p.Ingress {
		f := fmt.Sprintf("networkPolicy.ingress[%d]", i)
		c.list(f+".from", len(r.From), maxListLen)
		for j, peer := range r.From {
			pf := fmt.Sprintf("%s.from[%d]", f, j)
			c.selector(pf+".podSelector", peer.PodSelector)
			c.selector(pf+".namespaceSelector", peer.NamespaceSelector)
			if b := peer.IPBlock; b != nil {
				if peer.PodSelector != nil || peer.NamespaceSelector != nil {
					c.failf(pf, "an ipBlock peer has no selectors")
				}
				c.name(pf+".ipBlock.cidr", b.CIDR, true)
				c.list(pf+".ipBlock.except", len(b.Except), maxListLen)
				for k, e := range b.Except {
					c.name(fmt.Sprintf("%s.ipBlock.except[%d]", pf, k), e, true)
				}
			}
		}
		c.list(f+".ports", len(r.Ports), maxListLen)
		for j, p := range r.Ports {
			pf := f + ".ports[" + strconv.Itoa(j) + "]"
			c.name(pf+".protocol", p.Protocol, false)
			c.port(pf+".port", p.Port)
			c.name(pf+".portName", p.PortName, false)
			c.port(pf+".endPort", p.EndPort)
			if p.Port != 0 && p.PortName != "" {
				c.failf(pf, "a port is a number or a name, not both")
			}
		}
	}
}

// selector checks a label selector; nil is allowed.
func (c *checker) selector(field string, s *LabelSelector) {
	if s == nil {
		return
	}
	c.labels(field+".matchLabels", s.MatchLabels)
	c.list(field+".matchExpressions", len(s.MatchExpressions), maxListLen)
	for i, r := range s.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		c.name(f+".key", r.Key, true)
		c.oneOf(f+".operator", r.Operator, SelectorIn, SelectorNotIn, SelectorExists, SelectorDoesNotExist)
		c.list(f+".values", len(r.Values), maxListLen)
		for _, v := range r.Values {
			c.name(f+".values", v, false)
		}
	}
}

func (c *checker) deployment(d *DeploymentState) {
	if d == nil {
		return
	}
	for _, f := range []struct {
		name string
		n    int64
	}{
		{"generation", d.Generation},
		{"observedGeneration", d.ObservedGeneration},
		{"replicas", int64(d.Replicas)},
		{"updatedReplicas", int64(d.UpdatedReplicas)},
		{"readyReplicas", int64(d.ReadyReplicas)},
		{"availableReplicas", int64(d.AvailableReplicas)},
		{"unavailableReplicas", int64(d.UnavailableReplicas)},
		{"revision", d.Revision},
	} {
		c.count("deployment."+f.name, f.n)
	}
	c.list("deployment.images", len(d.Images), maxListLen)
	for i, img := range d.Images {
		c.text(fmt.Sprintf("deployment.images[%d]", i), img)
	}
	c.conditions("deployment.conditions", d.Conditions)
	c.podContainers("deployment.template", d.Template)
}

func (c *checker) node(n *NodeState) {
	if n == nil {
		return
	}
	c.conditions("node.conditions", n.Conditions)
	c.labels("node.labels", n.Labels)
	c.count("node.allocatableMemoryBytes", n.AllocatableMemoryBytes)
	c.count("node.allocatableCPUMillicores", n.AllocatableCPUMillicores)
}

func (c *checker) event(ev *EventRecord) {
	if ev == nil {
		return
	}
	c.text("event.type", ev.Type)
	c.text("event.reason", ev.Reason)
	c.text("event.message", ev.Message)
	c.count("event.count", int64(ev.Count))
	c.ref("event.involved", ev.Involved)
}

func (c *checker) alert(a *AlertRecord) {
	if a == nil {
		return
	}
	c.oneOf("alert.status", a.Status, AlertFiring, AlertResolved)
	c.text("alert.severity", a.Severity)
	c.text("alert.summary", a.Summary)
	c.text("alert.description", a.Description)
	c.list("alert.labels", len(a.Labels), maxListLen)
	for k, v := range a.Labels {
		c.name("alert.labels", k, true)
		c.text("alert.labels", v)
	}
}

func (c *checker) workload(field string, w *WorkloadState) {
	if w == nil {
		return
	}
	for _, f := range []struct {
		name string
		n    int64
	}{
		{"generation", w.Generation},
		{"observedGeneration", w.ObservedGeneration},
		{"replicas", int64(w.Replicas)},
		{"currentReplicas", int64(w.CurrentReplicas)},
		{"updatedReplicas", int64(w.UpdatedReplicas)},
		{"readyReplicas", int64(w.ReadyReplicas)},
		{"availableReplicas", int64(w.AvailableReplicas)},
	} {
		c.count(field+"."+f.name, f.n)
	}
	c.name(field+".currentRevision", w.CurrentRevision, false)
	c.name(field+".updateRevision", w.UpdateRevision, false)
	c.images(field+".images", w.Images)
	c.conditions(field+".conditions", w.Conditions)
	c.podContainers(field+".template", w.Template)
}

func (c *checker) images(field string, images []string) {
	c.list(field, len(images), maxListLen)
	for i, img := range images {
		c.text(field+"["+strconv.Itoa(i)+"]", img)
	}
}

func (c *checker) job(j *JobState) {
	if j == nil {
		return
	}
	if j.Owner != nil {
		c.name("job.owner.kind", j.Owner.Kind, true)
		c.name("job.owner.name", j.Owner.Name, true)
	}
	for _, f := range []struct {
		name string
		n    int32
	}{
		{"completions", j.Completions}, {"parallelism", j.Parallelism}, {"backoffLimit", j.BackoffLimit},
		{"active", j.Active}, {"succeeded", j.Succeeded}, {"failed", j.Failed},
	} {
		c.count("job."+f.name, int64(f.n))
	}
	c.images("job.images", j.Images)
	c.conditions("job.conditions", j.Conditions)
}

func (c *checker) hpa(h *AutoscalerState) {
	if h == nil {
		return
	}
	if !h.Deleted {
		c.name("hpa.target.kind", h.Target.Kind, true)
		c.name("hpa.target.name", h.Target.Name, true)
	} else {
		c.name("hpa.target.kind", h.Target.Kind, false)
		c.name("hpa.target.name", h.Target.Name, false)
	}
	for _, f := range []struct {
		name string
		n    int32
	}{
		{"minReplicas", h.MinReplicas}, {"maxReplicas", h.MaxReplicas},
		{"currentReplicas", h.CurrentReplicas}, {"desiredReplicas", h.DesiredReplicas},
	} {
		c.count("hpa."+f.name, int64(f.n))
	}
	c.conditions("hpa.conditions", h.Conditions)
}

func (c *checker) usage(u *UsageSample) {
	if u == nil {
		return
	}
	if u.WindowSeconds < 0 || u.WindowSeconds != u.WindowSeconds {
		c.failf("usage.windowSeconds", "must be a non-negative number")
	}
	c.count("usage.cpuMillicores", u.CPUMillicores)
	c.count("usage.memoryBytes", u.MemoryBytes)
	c.list("usage.containers", len(u.Containers), maxContainers)
	for i, ct := range u.Containers {
		f := fmt.Sprintf("usage.containers[%d]", i)
		c.name(f+".name", ct.Name, true)
		c.count(f+".cpuMillicores", ct.CPUMillicores)
		c.count(f+".memoryBytes", ct.MemoryBytes)
	}
}

// nodeScoped checks that a node-level envelope is about a node: no namespace.
func (c *checker) nodeScoped(r ObjectRef) {
	if r.Namespace != "" {
		c.failf("object.namespace", "must be empty for kind %s (the object is a node)", r.Kind)
	}
}

func (c *checker) containers(n *NodeContainers) {
	if n == nil {
		return
	}
	c.count("containers.omitted", int64(n.Omitted))
	c.list("containers.containers", len(n.Containers), MaxNodeContainers)
	for i, ct := range n.Containers {
		f := fmt.Sprintf("containers.containers[%d]", i)
		c.name(f+".id", ct.ID, true)
		c.name(f+".namespace", ct.Namespace, false)
		c.name(f+".pod", ct.Pod, false)
		c.name(f+".podUID", ct.PodUID, false)
		c.name(f+".name", ct.Name, false)
		c.text(f+".image", ct.Image)
		c.name(f+".imageID", ct.ImageID, false)
		c.oneOf(f+".state", ct.State, ContainerCreated, ContainerRunning, ContainerExited, ContainerUnknown)
		c.count(f+".restartCount", int64(ct.RestartCount))
		if len(ct.Reason) > maxNodeTextLen || len(ct.Message) > maxNodeTextLen {
			c.failf(f, "reason and message must have at most %d bytes", maxNodeTextLen)
		}
	}
}

func (c *checker) containerStats(s *NodeContainerStats) {
	if s == nil {
		return
	}
	c.count("containerStats.omitted", int64(s.Omitted))
	c.list("containerStats.containers", len(s.Containers), MaxNodeContainers)
	for i, u := range s.Containers {
		f := fmt.Sprintf("containerStats.containers[%d]", i)
		c.name(f+".id", u.ID, true)
		c.name(f+".namespace", u.Namespace, false)
		c.name(f+".pod", u.Pod, false)
		c.name(f+".name", u.Name, false)
		c.count(f+".cpuMillicores", u.CPUMillicores)
		c.count(f+".cpuCoreNanoseconds", u.CPUCoreNanoseconds)
		c.count(f+".memoryWorkingSetBytes", u.MemoryWorkingSetBytes)
		c.count(f+".writableLayerBytes", u.WritableLayerBytes)
	}
}

func (c *checker) nodeImages(n *NodeImages) {
	if n == nil {
		return
	}
	c.count("images.omitted", int64(n.Omitted))
	c.list("images.images", len(n.Images), MaxNodeImages)
	for i, img := range n.Images {
		f := fmt.Sprintf("images.images[%d]", i)
		c.name(f+".id", img.ID, true)
		c.images(f+".tags", img.Tags)
		c.images(f+".digests", img.Digests)
		c.count(f+".sizeBytes", img.SizeBytes)
		if img.Running && !img.InUse {
			c.failf(f+".running", "an image a running container uses is in use")
		}
	}
}

func (c *checker) imageFS(u *ImageFSUsage) {
	if u == nil {
		return
	}
	c.text("imageFs.mountpoint", u.Mountpoint)
	c.count("imageFs.usedBytes", u.UsedBytes)
	c.count("imageFs.inodesUsed", u.InodesUsed)
	c.count("imageFs.capacityBytes", u.CapacityBytes)
	c.count("imageFs.availableBytes", u.AvailableBytes)
}

func unsupportedVersion(v int) error {
	return fmt.Errorf("%w: unsupported schema version %d (this build reads %d)", ErrMalformed, v, SchemaVersion)
}

// peekSchemaVersion reads only the schema version, to explain why a message
// of another version does not decode.
func peekSchemaVersion(data []byte) (int, bool) {
	var v struct {
		SchemaVersion *int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.SchemaVersion == nil {
		return 0, false
	}
	return *v.SchemaVersion, true
}

// marshal encodes v as compact JSON without HTML escaping, so that text is
// carried as it came and the encoding stays small.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := marshalTo(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// marshalTo appends v's JSON to buf, without HTML escaping and without the
// encoder's trailing newline.
func marshalTo(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1)
	return nil
}
