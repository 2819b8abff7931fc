// Package scalebench is tend's scale benchmark (`make bench BENCH=scale`):
// a kwok cluster of hundreds to a thousand nodes and ten pods per node,
// tend's sensor and controller running as processes of their own, and, in
// the same run, the reference: a bare client-go informer cache of the kinds
// the sensor watches, in its own process, as the memory floor. It measures
// memory and CPU at rest and under churn and a storm of faults, and how long
// a fault takes to reach the bus.
//
// It only measures. It must never assert a time: every figure goes to
// bench/results.json, where the goals are read.
package scalebench
