// Package scalebench is tend's scale benchmark (`make bench BENCH=scale`):
// a kwok cluster of hundreds to a thousand nodes and ten pods per node,
// tend's sensor, controller, MCP server and maintenance agent running as
// processes of their own, each as its own service account, and, in the
// same run, the reference: a bare client-go informer cache of the kinds the
// sensor watches, in its own process, as the memory floor. It measures
// memory and CPU at rest and under churn and a storm of faults; how long a
// fault takes to reach the bus and to become a proposal; the gate's
// decisions per second and the proposal backlog in the storm, and what the
// rate limits held; and that no proposal was lost or applied twice.
//
// It only measures. It must never assert a time: every figure goes to
// bench/results.json, where the goals are read. A lost or twice-applied
// proposal fails it.
package scalebench
