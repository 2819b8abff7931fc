// Package harness runs eval scenarios on the local stack and scores them.
// For each scenario and run it creates a namespace (and the scenario's own
// simulated nodes), applies the healthy baseline and captures it, injects
// the fault under its own identity, lets tend's agents, gate and
// controllers act, evaluates the oracle until it passes for a stable
// window or times out, records what the agents proposed and what was
// applied, and tears everything down. Runs go concurrently, each in its own
// namespace. It writes summary.json, report.md and an SVG chart.
//
// It must never act on a scenario's workloads after injection (only tend's
// components may), never skip a scenario the agents cannot handle (it
// fails), and never leave anything in the cluster that names the fault.
package harness
