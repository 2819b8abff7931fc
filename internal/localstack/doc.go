// Package localstack runs tend's local stack: a real Kubernetes control
// plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built
// from source) with kwok's simulated nodes, an embedded NATS server with
// JetStream, tend's CRDs, admission policy and default gate policies, and
// tend's components in-process: sensor, controllers, MCP server and the
// maintenance agent. `tend up`, `tend demo`, the end-to-end tests and the
// eval harness all start it through Start.
//
// Simulated pods get their state from their spec: kwok Stages with jq
// selectors decide, from a pod's containers, whether it runs, crash-loops,
// runs unready or cannot pull its image (see Fault).
// A fault is a spec problem and only a spec change clears it; nothing here
// keys on labels or annotations an agent could delete.
//
// It must never be used against a production cluster except through Attach
// mode, where it installs nothing but tend's own resources.
package localstack
