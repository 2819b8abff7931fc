// Package shimclient is how the proposal controller asks a node's runtime
// shim to act: typed RestartContainer, PruneImages, CollectDiagnostics and
// Status calls over NATS request/reply, each signed with the controller's
// nkey (an attempt token bound to the node, the verb and the exact
// parameters), and FetchDiagnostics to read collected diagnostics back with
// their digest checked. docs/runtime-shim.md describes the protocol.
//
// It is small on purpose: it imports bus and NATS only, never the shim
// itself or CRI, so the controller links none of the node agent.
//
// The package must never:
//   - send a request without a signed attempt token, or change an
//     attempt's ID between retries of the same action (the shim's ledger
//     keys on it: the same ID is what makes a retry do nothing twice);
//   - trust a reply it cannot decode, or one for another node, verb or
//     attempt;
//   - retry by itself: the caller decides, with the same Attempt, when an
//     error is Retryable.
package shimclient
