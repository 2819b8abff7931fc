// Package bus is tend's NATS JetStream layer: subject names, the typed and
// versioned telemetry envelope, stream setup (with telemetry partitioned by
// object), the publisher, the durable pull consumer that agents run (with
// dead letters, lag metrics and per-object scale-out), the Alertmanager
// webhook receiver, per-component permissions and connection options, the
// hash-chained audit log, and an embedded nats-server for local use and
// tests. docs/telemetry.md and docs/nats-permissions.md describe them.
//
// Everything that crosses the bus is data. Decode (and DecodeAlertmanager
// for webhook bodies) is the trust boundary for telemetry that arrives from
// outside the process: it rejects anything that is not a well-formed,
// bounded envelope of a known schema version, and it carries untrusted text
// (log lines, event and alert messages) without interpreting it.
//
// The package must never:
//   - import another tend package or controller-runtime (it is a leaf; the
//     consumer satisfies manager.Runnable structurally);
//   - let a handler see a message that failed to decode, or crash on one;
//   - sleep in the message path (retries use NakWithDelay; the only wait is
//     the bounded copy of a terminated message to its dead-letter subject);
//   - act on the content of untrusted text;
//   - rewrite or delete audit records: the audit stream is append-only.
//
// etcd, not NATS, is the ledger of approvals; the audit stream is a
// tamper-evident record of what happened, not a source of authority.
package bus
