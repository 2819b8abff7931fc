// Package scenario is the eval suite's scenario format: the YAML types, a
// strict loader with clear errors, and validation. A scenario holds a
// healthy baseline (manifests, simulated nodes and the app profiles of its
// images), the fault to inject (patches and actions), the oracle (the
// fault-specific predicates; the global rules G1–G6 always apply),
// timeouts, its category and difficulty, and the benchmark problems it
// corresponds to. docs/scenarios.md documents the format.
//
// It must never talk to a cluster, and never accept a fault that is a label
// or an annotation an agent could delete to make the symptom go away.
package scenario
