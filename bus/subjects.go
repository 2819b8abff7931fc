package bus

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subject roots. Every subject tend uses lives under one of these.
const (
	telemetryRoot = "tend.telemetry"
	proposalsRoot = "tend.proposals"
	auditRoot     = "tend.audit"
	shimRoot      = "tend.shim"
	deadRoot      = "tend.deadletter"
	findingsRoot  = "tend.findings"
	// transcriptsRoot holds the transcripts of agents' planner runs.
	transcriptsRoot = "tend.transcripts"
)

// telemetryTokens is the number of tokens of a telemetry subject as
// published: tend, telemetry, cluster, kind, namespace, name. The TELEMETRY
// stream stores it with one more token, the object's partition.
const telemetryTokens = 6

// TelemetrySubject is the subject a telemetry envelope about one object is
// published on: tend.telemetry.<cluster>.<kind>.<namespace>.<name>.
// A cluster-scoped object has an empty namespace, which becomes "_".
func TelemetrySubject(cluster string, kind Kind, namespace, name string) string {
	return join(telemetryRoot, cluster, string(kind), namespace, name)
}

// TelemetryFilter matches all telemetry of one cluster: tend.telemetry.<cluster>.>.
func TelemetryFilter(cluster string) string {
	return join(telemetryRoot, cluster) + ".>"
}

// TelemetryPartitionFilter matches the telemetry of one cluster stored in one
// partition: tend.telemetry.<cluster>.<partition>.>. The TELEMETRY stream
// stores every telemetry subject with the partition of its object, a hash
// of its kind, namespace and name, after the cluster (see EnsureStreams), so
// all messages about one object are in one partition.
func TelemetryPartitionFilter(cluster string, partition int) string {
	return join(telemetryRoot, cluster) + "." + strconv.Itoa(partition) + ".>"
}

// StoredTelemetryFilter matches the subject the TELEMETRY stream stores the
// telemetry of one object under, whatever its partition:
// tend.telemetry.<cluster>.*.<kind>.<namespace>.<name>.
func StoredTelemetryFilter(cluster string, kind Kind, namespace, name string) string {
	// join of an empty root gives ".<kind>.<namespace>.<name>".
	return join(telemetryRoot, cluster) + ".*" + join("", string(kind), namespace, name)
}

// ObjectSubject returns the subject a stored telemetry message was published
// on, without the partition token the TELEMETRY stream added. Other
// subjects are returned as they are.
func ObjectSubject(stored string) string {
	if !strings.HasPrefix(stored, telemetryRoot+".") || strings.Count(stored, ".") != telemetryTokens {
		return stored
	}
	// tend.telemetry.<cluster>.<partition>.<rest>: drop the fourth token.
	tokens := strings.SplitN(stored, ".", 5)
	return strings.Join([]string{tokens[0], tokens[1], tokens[2], tokens[4]}, ".")
}

// DeadLetterSubject is where a consumer puts the messages it gives up on:
// tend.deadletter.<durable>. The DEADLETTER stream keeps them.
func DeadLetterSubject(durable string) string {
	return join(deadRoot, durable)
}

// ProposalsSubject is the subject of a proposal lifecycle event:
// tend.proposals.<cluster>.<event>.
func ProposalsSubject(cluster, event string) string {
	return join(proposalsRoot, cluster, event)
}

// AuditSubject is the subject of a cluster's audit chain: tend.audit.<cluster>.
func AuditSubject(cluster string) string {
	return join(auditRoot, cluster)
}

// ShimSubject is the request/reply subject of a runtime-shim verb on one node:
// tend.shim.<cluster>.<node>.<verb>.
func ShimSubject(cluster, node, verb string) string {
	return join(shimRoot, cluster, node, verb)
}

// Token makes s safe to use as one subject token. Kubernetes names never
// contain "~", so "." maps to "~" and the mapping is lossless for them. An
// empty string (the namespace of a cluster-scoped object) becomes "_". The
// wildcards "*" and ">", whitespace, non-printable characters and invalid
// UTF-8 become "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '.':
			b.WriteByte('~')
		case r == '*', r == '>', r == utf8.RuneError && width == 1, unicode.IsSpace(r), !unicode.IsPrint(r):
			b.WriteByte('_')
		default:
			b.WriteString(s[i : i+width])
		}
		i += width
	}
	return b.String()
}

func join(root string, tokens ...string) string {
	var b strings.Builder
	b.WriteString(root)
	for _, t := range tokens {
		b.WriteByte('.')
		b.WriteString(Token(t))
	}
	return b.String()
}
