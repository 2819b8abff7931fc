// Package shim is tend's node agent, the runtime shim: one per node, it
// talks to the node's container runtime through CRI (k8s.io/cri-client,
// behind the small Runtime interface) and to the rest of tend through NATS.
//
// It publishes the node's telemetry (container states with restarts and exit
// details, CPU and memory stats, images with sizes and use, image filesystem
// usage) as bus envelopes, each kind at a bounded rate and only when it
// changed. It serves the proposal controller's requests on
// tend.shim.<cluster>.<node>.<verb>: RestartContainer, PruneImages,
// CollectDiagnostics and Status. Every request carries an attempt token the
// controller signed; an attempt ledger in NATS KV makes a retried request do
// nothing twice, also across a restart of the shim. docs/runtime-shim.md
// describes the protocol, the permissions and the telemetry.
//
// The package must never:
//   - act on a request whose attempt token it cannot verify, or that is for
//     another cluster or node, or on a container that is not on its node;
//   - remove an image a running container uses, an image the runtime pins,
//     or an image an allow-list names;
//   - carry out an attempt's effect twice: a retry resumes the recorded
//     plan, and a finished attempt replays its recorded reply;
//   - stop serving because a request is malformed or the container runtime
//     is missing or slow: those get an error reply;
//   - sleep or poll in a request handler (only the telemetry sampler runs
//     on a timer, because CRI has no watch this runtime serves);
//   - interpret untrusted text (log lines, exit messages), or import
//     controllers, agents, mcp, evals or cmd.
package shim
