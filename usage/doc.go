// Package usage reads the resource usage history of workloads' containers,
// for the improvement analyzers: from tend's own telemetry (the pod metrics
// samples the sensor publishes, kept in the TELEMETRY stream for its
// configured retention) or from a Prometheus server's HTTP API.
//
// It only reads. It never decides what a workload should request; that is
// the analyzers' business, and it never fills a gap in the history with a
// guess: a sparse history is returned as it is.
package usage
